//! What the configuration tests share: a valid `[auth]`, a playlist entry, and assertions on
//! the key and line of a refusal.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, SecretSources, parse};

pub(super) const WS: &str = "11111111-2222-3333-4444-555555555555";
pub(super) const REPORT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub(super) const DASH: &str = "dddddddd-0000-1111-2222-333333333333";
pub(super) const APP: &str = "0f0f0f0f-1234-5678-9abc-def012345678";
// Distinctive values so a leak is found by a plain `contains`.
pub(super) const CS: &str = "cs-Sup3rSecretValue";
pub(super) const PW: &str = "pw-Hunter2Correct";

pub(super) fn path() -> &'static Path {
    Path::new("/etc/pbikiosk/pbikiosk.toml")
}

pub(super) fn no_sources() -> SecretSources {
    SecretSources::default()
}

/// [auth] with inline secrets: lines 1-6, so appended text starts at line 7.
pub(super) fn auth() -> String {
    format!(
        "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nusername = \"svc@contoso.onmicrosoft.com\"\nclient_secret = \"{CS}\"\npassword = \"{PW}\"\n"
    )
}

/// [auth] without secrets: lines 1-4.
pub(super) fn auth_no_secrets() -> String {
    format!(
        "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nusername = \"svc@contoso.onmicrosoft.com\"\n"
    )
}

pub(super) fn item(extra: &str) -> String {
    format!("[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{REPORT}\"\n{extra}")
}

pub(super) fn ok(text: &str) -> Config {
    parse(text, path(), &no_sources()).unwrap_or_else(|e| panic!("{e}\nfix: {}", e.fix()))
}

pub(super) fn err(text: &str) -> ConfigError {
    parse(text, path(), &no_sources()).expect_err("should be refused")
}

/// Asserts an Invalid error with this key and line; returns (message, fix).
pub(super) fn invalid(e: ConfigError, key: &str, line: Option<usize>) -> (String, String) {
    let shown = e.to_string();
    let fix = e.fix();
    match e {
        ConfigError::Invalid {
            key: k,
            line: l,
            message,
            ..
        } => {
            assert_eq!(k, key, "{shown}");
            assert_eq!(l, line, "{shown}");
            assert!(shown.contains(key), "{shown}");
            assert!(shown.contains("pbikiosk.toml"), "{shown}");
            if let Some(l) = line {
                assert!(shown.contains(&format!("line {l}")), "{shown}");
            }
            (message, fix)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub(super) fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
