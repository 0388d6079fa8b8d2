//! Property tests: input the kiosk does not control never makes it panic.
//!
//! - The config loader, on arbitrary bytes, arbitrary TOML trees (with the real section and
//!   key names mixed in, so generated files get past the syntax into the validators), and
//!   random edits of a valid config.
//! - The Microsoft answer readers: token and Power BI error classifiers, the token grant, the
//!   realm answer, `Retry-After`, on arbitrary JSON (and non-JSON) bodies, statuses and headers.
//! - The client certificate file (arbitrary bytes in PEM armour) and, on the simulator's side,
//!   a client assertion of arbitrary text.
//!
//! Case counts are small by default so `cargo test` stays fast; `PROPTEST_CASES=n` runs
//! more (see README, "Testing").

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config as RunConfig;

use crate::auth::lifetime;
use crate::config::{self, SecretSources};
use crate::problem::{Problem, ProblemId, RetryClass};

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> RunConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    RunConfig {
        cases,
        failure_persistence: None,
        ..RunConfig::default()
    }
}

const SECTIONS: &[&str] = &["auth", "cloud", "playlist", "status", "display", "player"];
const KEYS: &[&str] = &[
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_certificate_file",
    "username",
    "password",
    "password_file",
    "allow_federated",
    "permanent_retry",
    "method",
    "authority",
    "api",
    "resource",
    "ca_file",
    "workspace",
    "report",
    "dashboard",
    "pages",
    "bookmarks",
    "seconds",
    "refresh_seconds",
    "listen",
    "rotation",
    "gpu",
    "report_layout",
];

/// A key: a real one most of the time, else anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => proptest::sample::select(SECTIONS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A leaf: values shaped like what the keys expect, and values that are not.
fn leaf() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        (-1000i64..100_000).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        any::<String>().prop_map(toml::Value::String),
        proptest::sample::select(vec![
            "11111111-2222-3333-4444-555555555555",
            "contoso.onmicrosoft.com",
            "svc@contoso.onmicrosoft.com",
            "https://login.microsoftonline.com",
            "http://127.0.0.1:1",
            "127.0.0.1:9520",
            "0.0.0.0:80",
            "auto",
            "common",
            "",
        ])
        .prop_map(|s| toml::Value::String(s.to_owned())),
    ]
}

/// A TOML value up to a few levels deep.
fn value() -> impl Strategy<Value = toml::Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// A whole document: a table of sections (tables, or arrays of tables like `[[playlist]]`).
fn document() -> impl Strategy<Value = toml::Table> {
    let section = prop_oneof![
        proptest::collection::btree_map(key(), value(), 0..8)
            .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        proptest::collection::vec(
            proptest::collection::btree_map(key(), value(), 0..6)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
            0..3
        )
        .prop_map(toml::Value::Array),
        value(),
    ];
    proptest::collection::btree_map(key(), section, 0..6).prop_map(|m| m.into_iter().collect())
}

/// Parse as the loader does; any outcome but a panic is fine, and a refusal must explain
/// itself.
fn load_text(text: &str) {
    if let Err(e) = config::parse(
        text,
        Path::new("/etc/pbikiosk/pbikiosk.toml"),
        &SecretSources::default(),
    ) {
        assert!(!e.to_string().is_empty());
        assert!(!e.fix().is_empty());
    }
}

/// Read `text` as a fetched fleet file; any outcome but a panic is fine, a refusal explains
/// itself and never repeats a secret.
fn fleet_text(text: &str) {
    let device = config::parse(
        VALID,
        Path::new("/etc/pbikiosk/pbikiosk.toml"),
        &SecretSources::default(),
    )
    .expect("the valid config loads");
    match config::parse_fleet_file(text, Path::new("https://cfg.example/a.toml"), &device) {
        Ok(overlay) => {
            // What a fleet file may set, and nothing else: the device's sign-in stays.
            let merged = device.clone().with_fleet(&overlay);
            assert_eq!(merged.auth.username, device.auth.username);
            assert_eq!(merged.cloud.authority, device.cloud.authority);
            assert_eq!(merged.status.listen, device.status.listen);
        }
        Err(e) => {
            let shown = format!("{e} {}", e.fix());
            assert!(!e.to_string().is_empty() && !e.fix().is_empty());
            for secret in ["pw-value", "cs-value"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }
}

/// A config that loads, touching every section.
const VALID: &str = r#"[auth]
tenant = "contoso.onmicrosoft.com"
client_id = "0f0f0f0f-1234-5678-9abc-def012345678"
username = "svc@contoso.onmicrosoft.com"
client_secret = "cs-value"
password = "pw-value"
allow_federated = false

[cloud]
authority = "https://login.microsoftonline.com"
api = "https://api.powerbi.com"

[[playlist]]
workspace = "11111111-2222-3333-4444-555555555555"
report = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
pages = ["ReportSection", "Overview"]
seconds = 30

[[playlist]]
workspace = "11111111-2222-3333-4444-555555555555"
dashboard = "dddddddd-0000-1111-2222-333333333333"
refresh_seconds = 600

[status]
listen = "127.0.0.1:9520"

[display]
rotation = 90
"#;

/// An edit of a text: delete, insert or overwrite a run of bytes at some position.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = proptest::collection::vec(
        prop_oneof![
            any::<u8>(),
            proptest::sample::select(b"[]=\"'\n#.,{}0123456789-".to_vec())
        ],
        1..8,
    );
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), bytes.clone()).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (any::<usize>(), bytes).prop_map(|(at, bytes)| Edit::Overwrite { at, bytes }),
    ]
}

fn apply(text: &mut Vec<u8>, e: &Edit) {
    let n = text.len();
    match e {
        Edit::Delete { at, len } => {
            let at = at % (n + 1);
            text.drain(at..(at + len).min(n));
        }
        Edit::Insert { at, bytes } => {
            let at = at % (n + 1);
            text.splice(at..at, bytes.iter().copied());
        }
        Edit::Overwrite { at, bytes } => {
            let at = at % (n + 1);
            let end = (at + bytes.len()).min(n);
            text.splice(at..end, bytes.iter().copied());
        }
    }
}

/// A JSON value up to a few levels deep, with the field names Microsoft's answers use.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let name = prop_oneof![
        proptest::sample::select(vec![
            "error",
            "error_codes",
            "error_description",
            "trace_id",
            "correlation_id",
            "code",
            "message",
            "access_token",
            "refresh_token",
            "expires_in",
            "account_type",
            "NameSpaceType",
            "domain_name",
            "federation_active_auth_url",
            "AuthURL",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
        proptest::sample::select(vec![
            "invalid_grant",
            "invalid_client",
            "TokenExpired",
            "Federated",
            "Managed",
            "https://sts.example.com/adfs",
            "3599",
            "-1",
            "1e999",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(name.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON (often an object), or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json().prop_map(|v| v.to_string()),
        1 => proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn retry_after_header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..24),
        Just(b"Wed, 21 Oct 2015 07:28:00 GMT".to_vec()),
    ]
}

/// What holds for every classified error answer, whatever the body.
fn assert_sound(p: &Problem, status: u16, retry_after: Option<Duration>) {
    match status {
        429 => assert_eq!(p.id, ProblemId::Throttled),
        500..=599 => assert_eq!(p.id, ProblemId::ServiceUnavailable),
        _ => {}
    }
    assert_eq!(p.retry_after, retry_after);
    assert!(!p.cause.is_empty() && !p.fix.is_empty());
    // Every rendering a person or a log sees.
    let _ = p.to_string();
    let _ = p.references();
    let _ = serde_json::to_string(p).unwrap();
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn config_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_from_arbitrary_toml_trees(doc in document()) {
        // Some generated trees have no TOML text (e.g. a key only a quoted form can hold in
        // some positions); the serializer says so and those are skipped.
        if let Ok(text) = toml::to_string(&doc) {
            load_text(&text);
        }
    }

    #[test]
    fn config_from_edits_of_a_valid_one(edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = VALID.as_bytes().to_vec();
        for e in &edits {
            apply(&mut text, e);
        }
        load_text(&String::from_utf8_lossy(&text));
    }

    /// A fleet file is whatever a web server sends: arbitrary trees and edits of a valid
    /// config (secrets and device sections included) never panic, a refusal explains itself,
    /// and a secret value never appears in it.
    #[test]
    fn fleet_file_from_arbitrary_toml_trees(doc in document()) {
        if let Ok(text) = toml::to_string(&doc) {
            fleet_text(&text);
        }
    }

    #[test]
    fn fleet_file_from_edits_of_a_valid_config(edits in proptest::collection::vec(edit(), 0..6)) {
        let mut text = VALID.as_bytes().to_vec();
        for e in &edits {
            apply(&mut text, e);
        }
        fleet_text(&String::from_utf8_lossy(&text));
    }

    #[test]
    fn token_error_answers(status in 100u16..1000, body in body(), header in retry_after_header()) {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(v) = reqwest::header::HeaderValue::from_bytes(&header) {
            headers.insert(reqwest::header::RETRY_AFTER, v);
        }
        let retry_after = crate::net::retry_after(&headers);
        prop_assert!(retry_after.is_none_or(|d| d <= Duration::from_secs(3600)));
        let p = Problem::from_token_error(status, &body, retry_after);
        assert_sound(&p, status, retry_after);
    }

    #[test]
    fn powerbi_error_answers(status in 100u16..1000, body in body(), secs in proptest::option::of(0u64..4000)) {
        let retry_after = secs.map(Duration::from_secs);
        let p = Problem::from_powerbi_error(status, &body, retry_after);
        assert_sound(&p, status, retry_after);
        if matches!(status, 401 | 403) {
            prop_assert!(matches!(p.id, ProblemId::TokenExpired | ProblemId::NoPowerbiAccess));
        }
    }

    #[test]
    fn token_and_realm_answers(body in body()) {
        match crate::auth::client::parse_grant(&body, lifetime::Bounds::SERVICE) {
            Ok(g) => prop_assert!(
                (lifetime::MIN_LIFETIME..=lifetime::MAX_LIFETIME).contains(&g.expires_in)
            ),
            Err(p) => prop_assert_eq!(p.retry_class(), RetryClass::Permanent),
        }
        let _ = crate::auth::realm::parse(&body);
    }
}

/// The base of the edits loads: edits start from a config the validators accept.
#[test]
fn the_valid_config_loads() {
    config::parse(
        VALID,
        Path::new("/etc/pbikiosk/pbikiosk.toml"),
        &SecretSources::default(),
    )
    .unwrap();
}

/// Generated trees reach the validators, not only the TOML syntax check: otherwise the tree
/// property would test the parser alone.
#[test]
fn generated_trees_get_past_the_syntax() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = document();
    let mut past_syntax = 0;
    for _ in 0..200 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(text) = toml::to_string(&doc) else {
            continue;
        };
        match config::parse(
            &text,
            Path::new("/etc/pbikiosk/pbikiosk.toml"),
            &SecretSources::default(),
        ) {
            Err(config::ConfigError::Syntax { .. }) => {}
            _ => past_syntax += 1,
        }
    }
    assert!(past_syntax > 100, "{past_syntax} of 200");
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whatever lies between PEM armour, a certificate file is refused with a reason, and
    /// nothing panics.
    #[test]
    fn client_certificate_from_arbitrary_pem(
        blocks in proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "CERTIFICATE",
                    "PRIVATE KEY",
                    "RSA PRIVATE KEY",
                    "ENCRYPTED PRIVATE KEY",
                    "EC PRIVATE KEY",
                ]),
                proptest::collection::vec(any::<u8>(), 0..700),
            ),
            0..4,
        )
    ) {
        use base64::Engine as _;
        let mut text = String::new();
        for (tag, body) in &blocks {
            let b64 = base64::engine::general_purpose::STANDARD.encode(body);
            text.push_str(&format!("-----BEGIN {tag}-----\n{b64}\n-----END {tag}-----\n"));
        }
        prop_assert!(crate::auth::certificate::ClientCertificate::from_pem(&text).is_err());
    }

    /// The simulator reads a client assertion from any text without panicking.
    #[test]
    fn client_assertion_from_arbitrary_text(text in ".{0,400}", dots in 0usize..4) {
        let _ = crate::auth::certificate::parse_assertion(&text);
        let _ = crate::auth::certificate::parse_assertion(&vec![text.as_str(); dots].join("."));
    }
}
