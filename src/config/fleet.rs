//! `[fleet]`: where this screen's fleet file comes from, and the rules a fetched fleet file
//! follows. A fleet file is read with the same section rules as the device's own file; it may
//! set only what a screen shows (`[[playlist]]`, `[display]`, `[player]`), never how it signs
//! in, where it connects, or a secret: whoever runs the web server must not be able to send the
//! screen's password elsewhere.

use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use url::{Host, Url};

use super::display::parse_display;
use super::player::parse_player;
use super::playlist::parse_playlist;
use super::secrets::secret_from_file;
use super::walk::{Ctx, Section, column_of, line_of};
use super::{Config, ConfigError, DisplayConfig, PlayerConfig, PlaylistItem, SecretSources};
use crate::fleet::placeholders;
use crate::secret::Secret;

const FLEET_KEYS: &[&str] = &["url", "poll_seconds", "bearer_token_file"];

/// `[fleet] poll_seconds` when not set: five minutes, so a change made on Monday morning is on
/// every screen within minutes, at one small request per screen per poll.
pub(crate) const DEFAULT_POLL_SECONDS: u64 = 300;
/// Below this a fleet of screens would be polling its web server for nothing.
pub(crate) const MIN_POLL_SECONDS: i64 = 30;

#[derive(Debug, Clone)]
pub(crate) struct FleetConfig {
    /// The address with its placeholders (`{hostname}`, `{serial}`, `{mac}`) still in it.
    pub(crate) url: String,
    pub(crate) poll: Duration,
    /// Sent as `Authorization: Bearer …`; never logged or shown.
    pub(crate) bearer: Option<Secret>,
}

impl FleetConfig {
    /// The address as logs, `check` and `/status` show it: scheme, host, port and path only
    /// (a pre-signed object-store address carries its signature in the query).
    pub(crate) fn shown_url(&self) -> String {
        shown_url(&self.url)
    }
}

/// `url` without user info, query or fragment.
pub(crate) fn shown_url(url: &str) -> String {
    let base = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

pub(super) fn parse_fleet(cx: &Ctx, s: &Section) -> Result<FleetConfig, ConfigError> {
    s.check_table_keys(cx, "[fleet]", FLEET_KEYS)?;
    let (url, span) = s.required(
        cx,
        "url",
        "Set url to the address of this screen's fleet file, e.g. url = \"https://config.example.com/screens/{hostname}.toml\", or remove [fleet].",
    )?;
    let key = s.key("url");
    let example = "https://config.example.com/screens/{hostname}.toml";
    let sample = placeholders::sample(url, "x").map_err(|e| {
        cx.invalid(
            &key,
            Some(&span),
            e.to_string(),
            format!(
                "Use only {{hostname}}, {{serial}} and {{mac}} in the address, like \"{example}\"."
            ),
        )
    })?;
    let parsed = Url::parse(&sample).map_err(|e| {
        cx.invalid(
            &key,
            Some(&span),
            format!("not a valid web address ({e})"),
            format!("Write a full address like \"{example}\"."),
        )
    })?;
    let loopback = match parsed.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(cx.invalid(
                &key,
                Some(&span),
                "the address must use https:// (http:// only for this device itself)",
                format!("Write the address with https://, like \"{example}\"."),
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Never repeat the value: it holds credentials.
        return Err(cx.invalid(
            &key,
            Some(&span),
            "must not contain a user name or password",
            "Remove the user:password@ part; put a token in a file and name it with bearer_token_file.",
        ));
    }
    let poll = s
        .int(
            cx,
            "poll_seconds",
            MIN_POLL_SECONDS..=86_400,
            "seconds",
            300,
        )?
        .map_or(DEFAULT_POLL_SECONDS, |n| n as u64);
    let bearer = match s.string(cx, "bearer_token_file")? {
        Some((file, span)) => {
            let key = s.key("bearer_token_file");
            if file.is_empty() {
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!("{key} is empty"),
                    "Set bearer_token_file to the file that holds the fleet server's token, or remove it.",
                ));
            }
            let path = cx.resolve(file);
            Some(secret_from_file(
                cx,
                &key,
                Some(&span),
                &path,
                "the fleet server's bearer token",
            )?)
        }
        None => None,
    };
    Ok(FleetConfig {
        url: url.to_owned(),
        poll: Duration::from_secs(poll),
        bearer,
    })
}

/// What a fleet file sets; `None` where it leaves the device's own setting.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetOverlay {
    pub(crate) playlist: Option<Vec<PlaylistItem>>,
    pub(crate) display: Option<DisplayConfig>,
    pub(crate) player: Option<PlayerConfig>,
}

/// The sections a fleet file may set.
const FLEET_FILE_SECTIONS: &[&str] = &["playlist", "display", "player"];
/// The device's own sections, refused by name in a fleet file.
const DEVICE_ONLY_SECTIONS: &[&str] = &["auth", "cloud", "status", "fleet"];
/// Key names that hold or name a secret anywhere in a configuration.
const SECRET_KEYS: &[&str] = &[
    "password",
    "password_file",
    "client_secret",
    "client_secret_file",
    "client_certificate_file",
    "bearer_token_file",
    "token_file",
    "token_cache",
    "token",
];

/// Validate a fetched fleet file for the device whose config is `device`. `origin` names the
/// file in messages (the address as [`shown_url`] gives it).
pub(crate) fn parse_fleet_file(
    text: &str,
    origin: &Path,
    device: &Config,
) -> Result<FleetOverlay, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        ConfigError::Syntax {
            path: origin.to_path_buf(),
            line: line_of(text, offset),
            column: column_of(text, offset),
            message: e.message().to_owned(),
        }
    })?;
    let sources = SecretSources::default();
    let cx = Ctx::new(origin, text, &sources, None);
    // Secrets first, wherever they are: the message must say why, not "unknown key".
    if let Some((key, span)) = find_secret_key(doc.get_ref(), "") {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("a fleet file may not set {key}: secrets stay on the device"),
            "Remove the line from the fleet file; put secrets in the device's own /etc/pbikiosk/pbikiosk.toml and its secret files.",
        ));
    }
    let root = Section {
        name: String::new(),
        title: "the top level of the fleet file".to_owned(),
        table: doc.get_ref(),
        span: 0..0,
    };
    if let Some(k) = doc
        .get_ref()
        .iter()
        .map(|(k, _)| k)
        .filter(|k| DEVICE_ONLY_SECTIONS.contains(&k.get_ref().as_ref()))
        .min_by_key(|k| k.span().start)
    {
        let name: &str = k.get_ref();
        return Err(cx.invalid(
            name,
            Some(&k.span()),
            format!("a fleet file may not set [{name}]: sign-in, cloud, status and fleet settings stay on the device"),
            format!("Remove [{name}] from the fleet file; set it in the device's own configuration if it is needed."),
        ));
    }
    root.check_keys(
        &cx,
        FLEET_FILE_SECTIONS,
        "A fleet file may set [[playlist]], [display] and [player].",
    )?;
    let playlist = match root.get("playlist") {
        Some(_) => Some(parse_playlist(&cx, &root)?),
        None => None,
    };
    let display = match root.table(&cx, "display")? {
        Some(s) => Some(parse_display(&cx, &s)?),
        None => None,
    };
    let player = match root.table(&cx, "player")? {
        Some(s) => Some(parse_player(&cx, &s)?),
        None => None,
    };
    if let Some(items) = &playlist {
        super::check_identities(&cx, device.auth.method, items)?;
    }
    Ok(FleetOverlay {
        playlist,
        display,
        player,
    })
}

/// The first key (depth first, in file order) that names a secret, as a dotted key.
fn find_secret_key(table: &DeTable, prefix: &str) -> Option<(String, std::ops::Range<usize>)> {
    let mut keys: Vec<_> = table.iter().collect();
    keys.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in keys {
        let name: &str = k.get_ref();
        let dotted = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        if SECRET_KEYS.contains(&name) {
            return Some((dotted, k.span()));
        }
        match v.get_ref() {
            DeValue::Table(t) => {
                if let Some(hit) = find_secret_key(t, &dotted) {
                    return Some(hit);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref()
                        && let Some(hit) = find_secret_key(t, &format!("{dotted}[{}]", i + 1))
                    {
                        return Some(hit);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

impl Config {
    /// This config with a fleet file's sections in place of its own.
    pub(crate) fn with_fleet(mut self, overlay: &FleetOverlay) -> Config {
        if let Some(p) = &overlay.playlist {
            self.playlist = p.clone();
        }
        if let Some(d) = &overlay.display {
            self.display = d.clone();
        }
        if let Some(p) = &overlay.player {
            self.player = p.clone();
        }
        self
    }

    /// Whether only the playlist tells `self` and `other` apart as far as the screen goes: the
    /// player can then take the new playlist at the next item boundary.
    pub(crate) fn differs_only_in_playlist(&self, other: &Config) -> bool {
        self.display == other.display && self.player == other.player
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    fn device() -> Config {
        ok(&format!("{}{}", auth(), item("")))
    }

    fn origin() -> &'static Path {
        Path::new("https://cfg.example/lobby.toml")
    }

    fn fleet_err(text: &str) -> (String, String, Option<usize>) {
        match parse_fleet_file(text, origin(), &device()).unwrap_err() {
            ConfigError::Invalid {
                key, line, message, ..
            } => (key, message, line),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fleet_file_sets_playlist_display_and_player() {
        let text = format!(
            "[display]\nreport_layout = \"portrait\"\n[player]\nuser_agent = \"fleet/1\"\n[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{REPORT}\"\nseconds = 20\n[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"{DASH}\"\n"
        );
        let o = parse_fleet_file(&text, origin(), &device()).unwrap();
        let merged = device().with_fleet(&o);
        assert_eq!(merged.playlist.len(), 2);
        assert_eq!(merged.playlist[0].seconds, 20);
        assert_eq!(merged.playlist[1].id, DASH);
        assert_eq!(merged.player.user_agent.as_deref(), Some("fleet/1"));
        assert_ne!(merged.display, device().display);
        assert!(!device().differs_only_in_playlist(&merged));
        // Only a playlist: the device's [display] and [player] stay.
        let o = parse_fleet_file(
            &format!("[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{REPORT}\"\nseconds = 90\n"),
            origin(),
            &device(),
        )
        .unwrap();
        let merged = device().with_fleet(&o);
        assert_eq!(merged.playlist[0].seconds, 90);
        assert!(device().differs_only_in_playlist(&merged));
        // Nothing at all leaves the device's playlist.
        let o = parse_fleet_file("", origin(), &device()).unwrap();
        assert_eq!(device().with_fleet(&o).playlist.len(), 1);
    }

    #[test]
    fn device_sections_and_secrets_are_refused_by_name() {
        let (key, msg, line) = fleet_err(&format!("{}{}", item(""), "[auth]\ntenant = \"x\"\n"));
        assert_eq!(key, "auth");
        assert!(msg.contains("may not set [auth]"), "{msg}");
        assert_eq!(line, Some(4));
        for section in ["cloud", "status", "fleet"] {
            let (key, msg, _) = fleet_err(&format!("[{section}]\nx = 1\n"));
            assert_eq!(key, section);
            assert!(msg.contains(&format!("[{section}]")), "{msg}");
        }
        let (key, msg, line) = fleet_err("[auth]\npassword = \"hunter2-secret\"\n");
        assert_eq!(key, "auth.password");
        assert!(msg.contains("secrets stay on the device"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(line, Some(2));
        let (key, _, _) = fleet_err(&format!("{}password_file = \"/tmp/x\"\n", item("")));
        assert_eq!(key, "playlist[1].password_file");
        let (key, _, _) = fleet_err("[player]\nclient_secret = \"s\"\n");
        assert_eq!(key, "player.client_secret");
    }

    #[test]
    fn fleet_sections_follow_the_device_rules() {
        let (key, msg, line) = fleet_err(&item("seconds = 2\n"));
        assert_eq!(key, "playlist[1].seconds");
        assert!(msg.contains("out of range"), "{msg}");
        assert_eq!(line, Some(4));
        let (key, msg, _) = fleet_err("[playlsit]\n");
        assert_eq!(key, "playlsit");
        assert!(msg.contains("unknown key"), "{msg}");
        // Identities are for a service principal only, as in the device's file.
        let (key, _, _) = fleet_err(&item("identity_username = \"u@x\"\n"));
        assert_eq!(key, "playlist[1].identity_username");
        match parse_fleet_file("[[playlist]\n", origin(), &device()).unwrap_err() {
            ConfigError::Syntax { path, line, .. } => {
                assert_eq!(path, origin());
                assert_eq!(line, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fleet_section_keys() {
        let c = ok(&format!(
            "{}[fleet]\nurl = \"https://cfg.example/{{hostname}}/{{serial}}/{{mac}}.toml\"\n",
            auth()
        ));
        let f = c.fleet.unwrap();
        assert_eq!(f.poll, Duration::from_secs(300));
        assert!(f.bearer.is_none());
        let c = ok(&format!(
            "{}[fleet]\nurl = \"http://127.0.0.1:8080/a.toml\"\npoll_seconds = 30\n",
            auth()
        ));
        assert_eq!(c.fleet.unwrap().poll, Duration::from_secs(30));
        let cases = [
            (
                "url = \"https://h/{host}.toml\"",
                "fleet.url",
                "unknown placeholder {host}",
            ),
            (
                "url = \"http://cfg.example/a.toml\"",
                "fleet.url",
                "must use https://",
            ),
            (
                "url = \"https://u:p@cfg.example/a.toml\"",
                "fleet.url",
                "user name or password",
            ),
            (
                "url = \"https://h/a\"\npoll_seconds = 29",
                "fleet.poll_seconds",
                "out of range",
            ),
            (
                "url = \"https://h/a\"\nprobe = 1",
                "fleet.probe",
                "unknown key",
            ),
            ("poll_seconds = 60", "fleet.url", "missing"),
        ];
        for (body, want_key, want) in cases {
            let e = err(&format!("{}[fleet]\n{body}\n", auth()));
            let msg = e.to_string();
            assert_eq!(e.key(), Some(want_key), "{body}: {msg}");
            assert!(msg.contains(want), "{body}: {msg}");
            assert!(msg.contains("line "), "{body}: {msg}");
        }
    }

    #[test]
    fn the_bearer_token_file_follows_the_secret_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fleet-token", "tok-123\n", 0o640);
        let text = format!(
            "{}[fleet]\nurl = \"https://cfg.example/a.toml\"\nbearer_token_file = \"fleet-token\"\n",
            auth()
        );
        let cfg = write(dir.path(), "pbikiosk.toml", &text, 0o640);
        let c = crate::config::load(&cfg, &no_sources()).unwrap();
        assert_eq!(c.fleet.unwrap().bearer.unwrap().expose(), "tok-123");
        // Others may read it: refused, and the token is not repeated.
        write(dir.path(), "fleet-token", "tok-123\n", 0o644);
        let e = crate::config::load(&cfg, &no_sources()).unwrap_err();
        assert_eq!(e.key(), Some("fleet.bearer_token_file"), "{e}");
        assert!(!e.to_string().contains("tok-123") && !e.fix().contains("tok-123"));
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            shown_url("https://b.s3.example/x.toml?X-Amz-Signature=abc"),
            "https://b.s3.example/x.toml"
        );
        assert_eq!(shown_url("https://u:p@h/x"), "https://h/x");
        assert_eq!(
            shown_url("https://h/{hostname}.toml#f"),
            "https://h/{hostname}.toml"
        );
    }
}
