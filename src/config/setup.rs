//! `[setup]`: when the screen may be set up from a phone on the LAN, and where that page
//! listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use toml::de::DeTable;

use super::walk::{Ctx, Section, shown};
use super::{ConfigError, SecretSources};

const SETUP_KEYS: &[&str] = &["enabled", "listen"];

/// When the setup page is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SetupMode {
    /// While the screen is not configured, until a save (the default).
    #[default]
    Unconfigured,
    /// Also on a configured screen: a phone can replace the configuration.
    Always,
    Never,
}

impl SetupMode {
    const SUPPORTED: &[(&str, SetupMode)] = &[
        ("unconfigured", SetupMode::Unconfigured),
        ("always", SetupMode::Always),
        ("never", SetupMode::Never),
    ];

    /// Whether the page is open for a screen that is (`false`) or is not yet configured.
    pub(crate) fn open_when(self, not_configured: bool) -> bool {
        match self {
            SetupMode::Unconfigured => not_configured,
            SetupMode::Always => true,
            SetupMode::Never => false,
        }
    }
}

/// The default port: 8443, the usual alternative HTTPS port, above 1024 so the unprivileged
/// service may listen on it.
pub(crate) const DEFAULT_SETUP_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetupConfig {
    pub(crate) enabled: SetupMode,
    pub(crate) listen: SocketAddr,
}

impl Default for SetupConfig {
    fn default() -> Self {
        Self {
            enabled: SetupMode::default(),
            listen: DEFAULT_SETUP_LISTEN,
        }
    }
}

pub(super) fn parse_setup(cx: &Ctx, s: &Section) -> Result<SetupConfig, ConfigError> {
    s.check_table_keys(cx, "[setup]", SETUP_KEYS)?;
    let mut out = SetupConfig::default();
    if let Some((v, span)) = s.string(cx, "enabled")? {
        out.enabled = SetupMode::SUPPORTED
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                cx.invalid(
                    &s.key("enabled"),
                    Some(&span),
                    format!("{} is not a setup mode", shown(v)),
                    "Write enabled = \"unconfigured\" (the phone setup page only while the screen is not configured), \"always\" or \"never\".",
                )
            })?;
    }
    if let Some((v, span)) = s.string(cx, "listen")? {
        let key = s.key("listen");
        let addr: SocketAddr = v.parse().map_err(|_| {
            cx.invalid(
                &key,
                Some(&span),
                format!("{} is not an IP address with a port", shown(v)),
                "Write it like listen = \"0.0.0.0:8443\" (every network of the device) or one address of the device, with a port.",
            )
        })?;
        if addr.port() == 0 {
            return Err(cx.invalid(
                &key,
                Some(&span),
                "port 0 is not a fixed port",
                "Set listen = \"0.0.0.0:8443\" (or another fixed port): the screen shows the address to open.",
            ));
        }
        out.listen = addr;
    }
    Ok(out)
}

/// `[setup]` of the file at `path` alone, for a configuration that is not usable yet (the
/// setup page is what makes it usable). A missing or unreadable file gives the defaults; a
/// bad `[setup]` gives its error.
pub(crate) fn setup_of_file(path: &Path) -> Result<SetupConfig, ConfigError> {
    use std::io::Read as _;
    const MAX_CONFIG: u64 = 1 << 20;
    let Ok((file, _)) = super::trust::open_regular(path) else {
        return Ok(SetupConfig::default());
    };
    let mut text = String::new();
    if file.take(MAX_CONFIG).read_to_string(&mut text).is_err() {
        return Ok(SetupConfig::default());
    }
    setup_of_text(&text, path)
}

pub(crate) fn setup_of_text(text: &str, path: &Path) -> Result<SetupConfig, ConfigError> {
    // A syntax error elsewhere in the file is the configuration's to report.
    let Ok(doc) = DeTable::parse(text) else {
        return Ok(SetupConfig::default());
    };
    let sources = SecretSources::default();
    let cx = Ctx::new(path, text, &sources, None);
    let root = Section {
        name: String::new(),
        title: "the top level of the file".to_owned(),
        table: doc.get_ref(),
        span: 0..0,
    };
    match root.table(&cx, "setup")? {
        Some(s) => parse_setup(&cx, &s),
        None => Ok(SetupConfig::default()),
    }
}

/// The settings of an installer's file that is not configured yet (no `[auth]`): its other
/// sections (`[cloud] ca_file`, `[display]`, `[player]`) read with the usual rules, so the
/// window made at start-up already follows them and a configuration saved from the phone
/// plays in it without a restart. `None` when the file is missing, configured or refused.
pub(crate) fn settings_before_sign_in(path: &Path) -> Option<super::Config> {
    use std::io::Read as _;
    let (file, _) = super::trust::open_regular(path).ok()?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    let mut doc: toml_edit::DocumentMut = text.parse().ok()?;
    if doc
        .get("auth")
        .is_some_and(|a| a.as_table().is_none_or(|t| !t.is_empty()))
    {
        return None;
    }
    // A placeholder sign-in that needs no secret: never used to sign in, only to read the rest.
    let mut auth = toml_edit::Table::new();
    auth["method"] = toml_edit::value("device_code");
    auth["tenant"] = toml_edit::value("organizations");
    auth["client_id"] = toml_edit::value("00000000-0000-0000-0000-000000000000");
    doc["auth"] = toml_edit::Item::Table(auth);
    super::parse(&doc.to_string(), path, &SecretSources::default()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn defaults_and_each_mode() {
        let c = ok(&format!("{}{}", auth(), item("")));
        assert_eq!(c.setup, SetupConfig::default());
        assert_eq!(c.setup.listen.to_string(), "0.0.0.0:8443");
        for (text, mode) in [
            ("unconfigured", SetupMode::Unconfigured),
            ("always", SetupMode::Always),
            ("never", SetupMode::Never),
        ] {
            let c = ok(&format!(
                "{}[setup]\nenabled = \"{text}\"\nlisten = \"192.168.1.20:9443\"\n{}",
                auth(),
                item("")
            ));
            assert_eq!(c.setup.enabled, mode);
            assert_eq!(c.setup.listen.to_string(), "192.168.1.20:9443");
        }
        assert!(SetupMode::Unconfigured.open_when(true));
        assert!(!SetupMode::Unconfigured.open_when(false));
        assert!(SetupMode::Always.open_when(false));
        assert!(!SetupMode::Never.open_when(true));
    }

    #[test]
    fn bad_values_name_line_key_and_fix() {
        let bad = |setup: &str| err(&format!("{}[setup]\n{setup}\n{}", auth(), item("")));
        let (_, fix) = invalid(bad("enabled = \"sometimes\""), "setup.enabled", Some(8));
        assert!(fix.contains("always"), "{fix}");
        let (_, fix) = invalid(bad("listen = \"localhost:8443\""), "setup.listen", Some(8));
        assert!(fix.contains("0.0.0.0:8443"), "{fix}");
        let (msg, _) = invalid(bad("listen = \"0.0.0.0:0\""), "setup.listen", Some(8));
        assert!(msg.contains("fixed port"), "{msg}");
        assert_eq!(bad("port = 1").key(), Some("setup.port"));
    }

    #[test]
    fn a_not_configured_file_gives_its_other_settings_for_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.toml",
            "# the example\n[display]\nrotation = 90\n[auth]\n",
            0o600,
        );
        let c = settings_before_sign_in(&p).expect("the example's settings");
        assert_eq!(c.display.rotation, Some(90));
        let p = write(
            dir.path(),
            "b.toml",
            &format!("{}{}", auth(), item("")),
            0o600,
        );
        assert!(
            settings_before_sign_in(&p).is_none(),
            "a configured file is read as such"
        );
        let p = write(dir.path(), "c.toml", "[display]\nrotation = 7\n", 0o600);
        assert!(
            settings_before_sign_in(&p).is_none(),
            "refused: the player shows why"
        );
        assert!(settings_before_sign_in(&dir.path().join("none.toml")).is_none());
    }

    #[test]
    fn a_not_configured_file_still_gives_its_setup_section() {
        let p = std::path::Path::new("/etc/pbikiosk/pbikiosk.toml");
        let s = setup_of_text("[setup]\nenabled = \"never\"\n", p).unwrap();
        assert_eq!(s.enabled, SetupMode::Never);
        assert_eq!(setup_of_text("", p).unwrap(), SetupConfig::default());
        assert_eq!(
            setup_of_text("[auth\n", p).unwrap(),
            SetupConfig::default(),
            "a syntax error is the configuration's to report"
        );
        let e = setup_of_text("[setup]\nenabled = 1\n", p).unwrap_err();
        assert!(e.to_string().contains("setup.enabled"), "{e}");
        let missing = setup_of_file(std::path::Path::new("/nonexistent/pbikiosk.toml")).unwrap();
        assert_eq!(missing, SetupConfig::default());
    }
}
