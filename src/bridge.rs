//! Every message between the core and the page, in one place (version 1).
//!
//! Core → page: [`ToPage`], delivered as `window.pbikiosk.receive(<json>)`.
//! Page → core: [`FromPage`], sent by the page through its authenticated channel
//! (`web/channel.js`) as the `message` of `{"auth": <secret>, "message": <json>}`; the shell's
//! page gate (`src/page_gate.rs`) unwraps it and drops what lacks the secret.
//! The page never sees a secret other than Power BI access tokens, which it needs to embed.

use serde::{Deserialize, Serialize};

use crate::content::ContentKind;
use crate::report_layout::ReportLayout;
use crate::secret::Secret;

pub(crate) const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Aad,
    Embed,
}

/// A status screen: what is wrong, how to fix it, and the facts an installer needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    pub problem: String,
    pub title: String,
    pub cause: String,
    pub fix: String,
    /// Label/value pairs: hostname, IP addresses, version, time, AADSTS code, trace id...
    pub facts: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// The sign-in screen's code, while a person is asked to sign in with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignInView>,
    /// The phone setup page, while it is open on a screen that is not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Box<SetupView>>,
}

/// What the not-configured screen shows for the phone setup: the page's address (also as a QR
/// code), the PIN to enter there, and the certificate's fingerprint to compare with the one the
/// phone shows. The PIN is meant for the person in front of the screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupView {
    pub url: String,
    pub pin: String,
    pub fingerprint: String,
    /// A `data:image/svg+xml` URI of the address as a QR code; `None` if none could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

/// What the sign-in screen shows: the code in large type, where to enter it (also as a QR
/// code of that address), and until when the code works. Never a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInView {
    pub user_code: String,
    pub verification_uri: String,
    /// A `data:image/svg+xml` URI of the address as a QR code; `None` if none could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    /// "09:15": the local time the code stops working.
    pub expires: String,
    /// Seconds the code still works when the screen is sent: the page counts them down, so
    /// the time left stays true while the screen is up.
    pub seconds_left: u64,
}

/// Tokens stay [`Secret`]s here, so a logged message shows `[redacted]`; only the JSON for
/// the page ([`ToPage::to_script`]) carries their text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToPage {
    /// What the start screen says until the first item is on screen: what the player is doing
    /// ("Signing in as kiosk@contoso.com…") and the device's label/value facts. Never a secret.
    Starting {
        activity: String,
        facts: Vec<(String, String)>,
    },
    /// Embed off-screen; show later with [`ToPage::Show`].
    Prepare {
        key: String,
        kind: ContentKind,
        id: String,
        group_id: String,
        embed_url: String,
        #[serde(with = "exposed")]
        access_token: Secret,
        token_type: TokenType,
        #[serde(default)]
        page: Option<String>,
        #[serde(default)]
        bookmark: Option<String>,
        /// Which layout of a report to show; the page decides "auto" from the viewport.
        #[serde(default)]
        report_layout: ReportLayout,
    },
    Show {
        key: String,
    },
    SetPage {
        key: String,
        page: String,
    },
    /// A renewed token for every live embed, or with `key` for that embed only (an item
    /// with a token of its own: a service principal's dashboard).
    SetToken {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(with = "exposed")]
        access_token: Secret,
    },
    Refresh {
        key: String,
    },
    Reload {
        key: String,
    },
    Discard {
        key: String,
    },
    Status {
        screen: Screen,
    },
    HideStatus,
    Badge {
        text: Option<String>,
    },
    /// Out of the screen's hours: a black layer over everything, or gone again.
    ScreenPower {
        power: ScreenLight,
    },
}

/// Whether the page lets its picture through ([`ToPage::ScreenPower`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenLight {
    On,
    Off,
}

/// The page needs the token's text: (de)serialise a [`Secret`] as the plain string.
mod exposed {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::Secret;

    pub(super) fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
        String::deserialize(de).map(Secret::new)
    }
}

impl ToPage {
    /// The JS that delivers this message to the page.
    pub fn to_script(&self) -> String {
        let mut v = serde_json::to_value(self).expect("plain data serializes");
        v["v"] = PROTOCOL_VERSION.into();
        // JSON is valid JS; the page's receive() takes the object as is.
        format!("window.pbikiosk && window.pbikiosk.receive({v})")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromPage {
    Ready {
        #[serde(default)]
        version: Option<String>,
    },
    Heartbeat {
        #[serde(default)]
        t: f64,
    },
    Loaded {
        key: String,
    },
    Rendered {
        key: String,
        #[serde(default)]
        ms: Option<f64>,
    },
    Error {
        key: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    },
    PageChanged {
        key: String,
        page: String,
        #[serde(default)]
        display_name: Option<String>,
    },
    Shown {
        key: String,
        #[serde(default)]
        gap_ms: Option<f64>,
    },
    TokenApplied {
        key: String,
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    },
    JsError {
        message: String,
    },
}

impl FromPage {
    /// Parse a message from the page. Unknown or malformed messages are errors, not panics:
    /// the page is content we ship, but it runs next to third-party frames.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_page_shape_matches_the_page_protocol() {
        let m = ToPage::Prepare {
            key: "k1".into(),
            kind: ContentKind::Report,
            id: "r".into(),
            group_id: "g".into(),
            embed_url: "https://app.powerbi.com/reportEmbed?reportId=r".into(),
            access_token: "TOKEN-XYZ".into(),
            token_type: TokenType::Aad,
            page: Some("ReportSection".into()),
            bookmark: None,
            report_layout: ReportLayout::FitWidth,
        };
        let js = m.to_script();
        assert!(js.starts_with("window.pbikiosk && window.pbikiosk.receive({"));
        let json = &js[js.find('{').unwrap()..js.len() - 1];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["type"], "prepare");
        assert_eq!(v["v"], 1);
        assert_eq!(v["kind"], "report");
        assert_eq!(v["token_type"], "aad");
        assert_eq!(v["page"], "ReportSection");
        assert_eq!(v["report_layout"], "fit_width");
        assert!(!format!("{m:?}").contains("TOKEN-XYZ"));
        let t = ToPage::SetToken {
            key: None,
            access_token: "TOKEN-XYZ".into(),
        };
        assert!(!format!("{t:?}").contains("TOKEN-XYZ"));
        assert!(serde_json::to_value(&t).unwrap().get("key").is_none());
        let keyed = ToPage::SetToken {
            key: Some("e2".into()),
            access_token: "TOKEN-XYZ".into(),
        };
        assert_eq!(serde_json::to_value(&keyed).unwrap()["key"], "e2");
        assert_eq!(
            serde_json::to_value(ToPage::HideStatus).unwrap()["type"],
            "hide_status"
        );
        let v = serde_json::to_value(ToPage::ScreenPower {
            power: ScreenLight::Off,
        })
        .unwrap();
        assert_eq!(
            (&v["type"], &v["power"]),
            (&"screen_power".into(), &"off".into())
        );
    }

    #[test]
    fn from_page_parses_and_rejects() {
        let m = FromPage::parse(r#"{"v":1,"type":"shown","key":"a","gap_ms":16.5}"#).unwrap();
        assert_eq!(
            m,
            FromPage::Shown {
                key: "a".into(),
                gap_ms: Some(16.5)
            }
        );
        let m = FromPage::parse(
            r#"{"type":"error","key":"a","message":"TokenExpired","detail":{"errorCode":"403"}}"#,
        )
        .unwrap();
        assert!(matches!(m, FromPage::Error { message: Some(ref s), .. } if s == "TokenExpired"));
        assert!(FromPage::parse(r#"{"type":"nope"}"#).is_err());
        assert!(FromPage::parse("not json").is_err());
    }
}
