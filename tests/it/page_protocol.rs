//! The page protocol as a contract between the two languages that speak it.
//!
//! The core's messages (`bridge::ToPage`) are written to `web/test/fixtures/to-page.json`
//! exactly as the shell delivers them; the page's tests (`web/test/contract.test.mjs`) feed each
//! one to the page's own decoder. The page's messages are written down by hand in
//! `web/test/fixtures/from-page.json`, checked there against what `web/player.js` sends, and
//! parsed here with the core's own parser. A field renamed on either side fails one of the two.

use std::path::{Path, PathBuf};

use pbikiosk::bridge::{FromPage, Screen, ScreenLight, SetupView, SignInView, ToPage, TokenType};
use pbikiosk::content::ContentKind;
use pbikiosk::report_layout::ReportLayout;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const BLESS: &str = "PBIKIOSK_BLESS";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("web/test/fixtures")
        .join(name)
}

/// The Rust name of a `ToPage` variant. No wildcard arm: a new variant does not compile until
/// it is named here, and [`to_page_examples`] is next to it.
fn to_page_variant(m: &ToPage) -> &'static str {
    match m {
        ToPage::Starting { .. } => "Starting",
        ToPage::Prepare { .. } => "Prepare",
        ToPage::Show { .. } => "Show",
        ToPage::SetPage { .. } => "SetPage",
        ToPage::SetToken { .. } => "SetToken",
        ToPage::Refresh { .. } => "Refresh",
        ToPage::Reload { .. } => "Reload",
        ToPage::Discard { .. } => "Discard",
        ToPage::Status { .. } => "Status",
        ToPage::HideStatus => "HideStatus",
        ToPage::Badge { .. } => "Badge",
        ToPage::ScreenPower { .. } => "ScreenPower",
    }
}

/// The Rust name of a `FromPage` variant (no wildcard arm, as above).
fn from_page_variant(m: &FromPage) -> &'static str {
    match m {
        FromPage::Ready { .. } => "Ready",
        FromPage::Heartbeat { .. } => "Heartbeat",
        FromPage::Loaded { .. } => "Loaded",
        FromPage::Rendered { .. } => "Rendered",
        FromPage::Error { .. } => "Error",
        FromPage::PageChanged { .. } => "PageChanged",
        FromPage::Shown { .. } => "Shown",
        FromPage::TokenApplied { .. } => "TokenApplied",
        FromPage::JsError { .. } => "JsError",
    }
}

/// Every message the core sends, with the values it really sends: each variant, each value of
/// its enums, and each optional field both filled and empty.
fn to_page_examples() -> Vec<ToPage> {
    const WORKSPACE: &str = "6d3f8a52-1b7e-4c19-9a2d-5e8b7c4f1a30";
    const REPORT: &str = "0b9c3f4e-2d1a-4e8b-9c7d-1f2e3a4b5c6d";
    const DASHBOARD: &str = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d";
    // JWT-shaped, like the Power BI access tokens the page is given, and obviously not one.
    const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJwb3dlcmJpIn0.bm90LWEtcmVhbC1zaWduYXR1cmU";
    let plain_report = |key: &str, report_layout| ToPage::Prepare {
        key: key.into(),
        kind: ContentKind::Report,
        id: REPORT.into(),
        group_id: WORKSPACE.into(),
        embed_url: format!(
            "https://app.powerbi.com/reportEmbed?reportId={REPORT}&groupId={WORKSPACE}"
        ),
        access_token: TOKEN.into(),
        token_type: TokenType::Aad,
        page: None,
        bookmark: None,
        report_layout,
    };
    vec![
        ToPage::Prepare {
            key: "e1".into(),
            kind: ContentKind::Report,
            id: REPORT.into(),
            group_id: WORKSPACE.into(),
            embed_url: format!(
                "https://app.powerbi.com/reportEmbed?reportId={REPORT}&groupId={WORKSPACE}"
            ),
            access_token: TOKEN.into(),
            token_type: TokenType::Aad,
            page: Some("ReportSection2".into()),
            bookmark: Some("Bookmark3f2a".into()),
            report_layout: ReportLayout::Auto,
        },
        ToPage::Prepare {
            key: "e2".into(),
            kind: ContentKind::Dashboard,
            id: DASHBOARD.into(),
            group_id: WORKSPACE.into(),
            embed_url: format!(
                "https://app.powerbi.com/dashboardEmbed?dashboardId={DASHBOARD}&groupId={WORKSPACE}"
            ),
            access_token: TOKEN.into(),
            token_type: TokenType::Embed,
            page: None,
            bookmark: None,
            report_layout: ReportLayout::Landscape,
        },
        // The other report layouts, on a plain report (no page, no bookmark).
        plain_report("e3", ReportLayout::Portrait),
        plain_report("e4", ReportLayout::FitWidth),
        ToPage::Starting {
            activity: "Signing in as kiosk@contoso.com…".into(),
            facts: vec![
                ("Device".into(), "kiosk-lobby".into()),
                ("IP address".into(), "10.0.0.7, 192.168.1.20".into()),
                ("pbikiosk".into(), "0.1.0".into()),
            ],
        },
        ToPage::Starting {
            activity: "Loading ‘Sales Overview’".into(),
            facts: vec![],
        },
        ToPage::Show { key: "e1".into() },
        ToPage::SetPage {
            key: "e1".into(),
            page: "ReportSection3".into(),
        },
        ToPage::SetToken {
            key: None,
            access_token: TOKEN.into(),
        },
        // A dashboard's own embed token, for that embed only.
        ToPage::SetToken {
            key: Some("e2".into()),
            access_token: TOKEN.into(),
        },
        ToPage::Refresh { key: "e1".into() },
        ToPage::Reload { key: "e1".into() },
        ToPage::Discard { key: "e2".into() },
        ToPage::Status {
            screen: Screen {
                problem: "invalid_credentials".into(),
                title: "Cannot sign in".into(),
                cause: "Microsoft refused the password of kiosk@contoso.com.".into(),
                fix: "Set the account's current password in /etc/pbikiosk/pbikiosk.toml.".into(),
                facts: vec![
                    ("Hostname".into(), "kiosk-lobby".into()),
                    ("Microsoft code".into(), "AADSTS50126".into()),
                    (
                        "Trace ID".into(),
                        "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0".into(),
                    ),
                ],
                next_attempt: Some("14:05 (in 3 min)".into()),
                sign_in: None,
                setup: None,
            },
        },
        ToPage::Status {
            screen: Screen {
                problem: "sign_in_required".into(),
                title: "Sign in to show reports".into(),
                cause: "No one has signed in on this screen yet.".into(),
                fix: "Open the address shown, enter the code and sign in.".into(),
                facts: vec![("Device".into(), "kiosk-lobby".into())],
                next_attempt: None,
                sign_in: Some(SignInView {
                    user_code: "ABCD1234E".into(),
                    verification_uri: "https://microsoft.com/devicelogin".into(),
                    qr: Some("data:image/svg+xml;base64,PHN2Zy8+".into()),
                    expires: "14:20".into(),
                    seconds_left: 900,
                }),
                setup: None,
            },
        },
        ToPage::Status {
            screen: Screen {
                problem: "not_configured".into(),
                title: "This screen is not set up yet".into(),
                cause: String::new(),
                fix: "Fill in /etc/pbikiosk/pbikiosk.toml.".into(),
                facts: vec![],
                next_attempt: None,
                sign_in: None,
                setup: None,
            },
        },
        ToPage::Status {
            screen: Screen {
                problem: "not_configured".into(),
                title: "This screen is not configured yet".into(),
                cause: "pbikiosk is not configured yet.".into(),
                fix: "Scan the QR code with a phone on the same network.".into(),
                facts: vec![("Device".into(), "kiosk-lobby".into())],
                next_attempt: None,
                sign_in: None,
                setup: Some(Box::new(SetupView {
                    url: "https://192.168.1.20:8443/".into(),
                    pin: "042917".into(),
                    fingerprint: "3A F1 09 C4 77 B2 0D 1E".into(),
                    qr: Some("data:image/svg+xml;base64,PHN2Zy8+".into()),
                })),
            },
        },
        ToPage::HideStatus,
        ToPage::Badge {
            text: Some("Offline since 14:02".into()),
        },
        ToPage::Badge { text: None },
        ToPage::ScreenPower {
            power: ScreenLight::Off,
        },
        ToPage::ScreenPower {
            power: ScreenLight::On,
        },
    ]
}

/// The `type` tags (or values) serde knows for `T`, read from its refusal of an unknown one:
/// derived from the enum itself, so no list here can fall behind it.
fn serde_names<T: DeserializeOwned + std::fmt::Debug>(probe: Value) -> Vec<String> {
    let err = serde_json::from_value::<T>(probe).unwrap_err().to_string();
    let expected = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("no variant list in {err:?}"))
        .1;
    let names: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "no variant list in {err:?}");
    names
}

fn to_page_fixture() -> String {
    let entries: Vec<Value> = to_page_examples()
        .iter()
        .map(|m| {
            let script = m.to_script();
            let json = script
                .strip_prefix("window.pbikiosk && window.pbikiosk.receive(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("unexpected script shape: {script}"));
            let message: Value = serde_json::from_str(json).unwrap();
            json!({ "variant": to_page_variant(m), "script": script, "message": message })
        })
        .collect();
    serde_json::to_string_pretty(&entries).unwrap() + "\n"
}

#[test]
fn to_page_fixture_is_up_to_date_and_covers_every_message() {
    let examples = to_page_examples();
    let sent: Vec<String> = examples
        .iter()
        .map(|m| {
            serde_json::to_value(m).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for tag in serde_names::<ToPage>(json!({ "type": "?" })) {
        assert!(sent.contains(&tag), "no example of ToPage `{tag}`");
    }
    let with = |f: &dyn Fn(&ToPage) -> Option<Value>| -> Vec<Value> {
        examples.iter().filter_map(f).collect()
    };
    let kinds = with(&|m| match m {
        ToPage::Prepare { kind, .. } => Some(serde_json::to_value(kind).unwrap()),
        _ => None,
    });
    for k in serde_names::<ContentKind>(json!("?")) {
        assert!(kinds.contains(&json!(k)), "no Prepare of kind `{k}`");
    }
    let token_types = with(&|m| match m {
        ToPage::Prepare { token_type, .. } => Some(serde_json::to_value(token_type).unwrap()),
        _ => None,
    });
    for t in serde_names::<TokenType>(json!("?")) {
        assert!(
            token_types.contains(&json!(t)),
            "no Prepare with token_type `{t}`"
        );
    }
    let layouts = with(&|m| match m {
        ToPage::Prepare { report_layout, .. } => Some(serde_json::to_value(report_layout).unwrap()),
        _ => None,
    });
    for l in serde_names::<ReportLayout>(json!("?")) {
        assert!(
            layouts.contains(&json!(l)),
            "no Prepare with report_layout `{l}`"
        );
    }

    let path = fixture("to-page.json");
    let want = to_page_fixture();
    if std::env::var_os(BLESS).is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} does not match what the core sends: run `{BLESS}=1 cargo test --test it \
         page_protocol` to regenerate it, then `node --test web/test/contract.test.mjs`",
        path.display()
    );
}

/// Numbers compared by value: the page sends `16` where the core writes back `16.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_page_message_parses_into_its_variant_with_every_field() {
    let path = fixture("from-page.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut seen = Vec::new();
    for entry in &entries {
        let variant = entry["variant"]
            .as_str()
            .expect("each entry names its variant");
        let message = &entry["message"];
        // The text the shell's IPC handler receives.
        let parsed = FromPage::parse(&message.to_string())
            .unwrap_or_else(|e| panic!("{variant}: the core refuses {message}: {e}"));
        assert_eq!(from_page_variant(&parsed), variant, "{message}");
        // Nothing the page sends is dropped: every field lands in the parsed message.
        let mut sent = message.clone();
        sent.as_object_mut().unwrap().remove("v");
        let kept = serde_json::to_value(&parsed).unwrap();
        assert!(
            same(&sent, &kept),
            "{variant}: the page sends {sent} but the core reads {kept}"
        );
        seen.push(message["type"].as_str().unwrap().to_owned());
    }
    for tag in serde_names::<FromPage>(json!({ "type": "?" })) {
        assert!(
            seen.contains(&tag),
            "{} has no `{tag}` message",
            path.display()
        );
    }
}
