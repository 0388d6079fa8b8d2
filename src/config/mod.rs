//! The configuration file (`/etc/pbikiosk/pbikiosk.toml`) and where the secrets come from.
//!
//! Every refusal is a [`ConfigError`] that names the file, the key (a dotted path such as
//! `auth.client_secret_file` or `playlist[2].report`), the line when it is known, and a fix an
//! installer can act on. Playlist entries are numbered from 1, the way a person counts the
//! `[[playlist]]` blocks in the file.
//!
//! The file is walked as a spanned TOML tree ([`toml::de::DeTable`], whose values are
//! [`toml::Spanned`]) rather than through `serde` structs, so that unknown keys, wrong types and
//! bad values can all be reported with their dotted key and their line.
//!
//! Secret values never appear in an error: messages name keys, files and environment variables
//! only, and the values are wrapped in [`Secret`] as soon as they are read.
//!
//! One job per module: `walk` reads the TOML tree and words the refusals all sections share
//! (unknown keys with "did you mean", wrong types, ranges); `secrets` decides where each secret
//! comes from and which secret files are trusted; `auth`, `cloud`, `status`, `player`,
//! `display` and `playlist` hold the rules of their section; `ids` the shape of GUIDs and
//! domain names. This module holds the types, the errors and the entry points.

mod auth;
mod certificate;
mod cloud;
mod display;
pub mod edit;
mod fleet;
mod identity;
mod ids;
mod network;
mod player;
mod playlist;
mod secrets;
pub(crate) mod setup;
mod status;
#[cfg(test)]
mod test_support;
pub(crate) mod trust;
mod walk;
mod watched;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;
use url::Url;

use crate::content::ContentKind;
use crate::secret::Secret;
use crate::{Problem, ProblemId};

use self::auth::parse_auth;
use self::cloud::parse_cloud;
use self::display::parse_display;
use self::network::parse_network;
use self::player::parse_player;
use self::playlist::parse_playlist;
use self::status::parse_status;
use self::walk::{Ctx, Section, column_of, line_of};
use crate::report_layout::ReportLayout;

pub(crate) use self::fleet::{FleetConfig, FleetOverlay, parse_fleet_file, shown_url};
pub(crate) use self::secrets::SECRET_ENV_VARS;
pub use self::secrets::SecretSources;
pub(crate) use self::watched::{secret_files, watched_files};

pub(crate) const DEFAULT_PATH: &str = "/etc/pbikiosk/pbikiosk.toml";

/// Environment variable naming the configuration file (below `--config`, above [`DEFAULT_PATH`]).
pub(crate) const ENV_CONFIG: &str = "PBIKIOSK_CONFIG";

/// How long to wait between attempts after a failure only a person can fix (wrong password,
/// MFA, consent, ...), unless `permanent_retry_minutes` says otherwise. Rare enough that a
/// wrong password is sent only four times an hour, so the kiosk does not get its own service
/// account locked out (Entra ID smart lockout, AADSTS50053); often enough that a fix made in
/// the portal shows on the screen within a quarter of an hour, without a restart.
pub(crate) const DEFAULT_PERMANENT_RETRY: Duration = Duration::from_mins(15);

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
const DEFAULT_API: &str = "https://api.powerbi.com/";
const DEFAULT_RESOURCE: &str = "https://analysis.windows.net/powerbi/api";
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9520);

const TOP_KEYS: &[&str] = &[
    "auth", "cloud", "status", "player", "display", "playlist", "network", "setup", "fleet",
];

/// `--config` flag > `PBIKIOSK_CONFIG` env > `DEFAULT_PATH`.
pub fn resolve_path(cli: Option<&Path>, env: &SecretSources) -> PathBuf {
    if let Some(path) = cli {
        return path.to_path_buf();
    }
    match env.env.get(ENV_CONFIG) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// The configuration file in use: `path` (the installer's), or, while it is missing or not
/// configured, the one the phone setup saved in the service's state directory
/// (`$STATE_DIRECTORY/setup/pbikiosk.toml`) if there is one. `check`, `reports` and the
/// player all read this one, so they agree on which file is meant.
pub fn path_in_use(path: &Path, sources: &SecretSources) -> PathBuf {
    let state = crate::setup::state_dir(sources.env.get("STATE_DIRECTORY").map(String::as_str));
    crate::config_source::Source::Layered {
        installer: path.to_path_buf(),
        saved: crate::setup::save::config_path(&state),
        sources: sources.clone(),
    }
    .path()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) auth: AuthConfig,
    pub(crate) cloud: CloudConfig,
    pub(crate) playlist: Vec<PlaylistItem>,
    pub(crate) status: StatusConfig,
    pub(crate) player: PlayerConfig,
    pub display: DisplayConfig,
    /// `[network]`: the proxy pbikiosk and its web view go through.
    pub(crate) network: NetworkSetting,
    pub(crate) setup: setup::SetupConfig,
    /// `[fleet]`: where the playlist and screen settings come from, when they come from a
    /// web server.
    pub(crate) fleet: Option<FleetConfig>,
    /// The file this was read from (relative secret files were resolved against its folder).
    pub(crate) path: PathBuf,
}

/// How the screen signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// ROPC with a service account (user + password).
    Password,
    /// A person signs in on their phone with the code the screen shows; the refresh token is
    /// kept in `token_cache`. Works where MFA is required, and stores no password.
    DeviceCode,
    /// The app itself (client credentials), embedding with Power BI embed tokens.
    ServicePrincipal,
}

impl AuthMethod {
    const SUPPORTED: &[(&str, AuthMethod)] = &[
        ("password", AuthMethod::Password),
        ("device_code", AuthMethod::DeviceCode),
        ("service_principal", AuthMethod::ServicePrincipal),
    ];
}

/// Where the device-code sign-in keeps its refresh token when `token_cache` is not set: the
/// service's state directory (systemd `StateDirectory=pbikiosk`).
pub(crate) const DEFAULT_TOKEN_CACHE: &str = "/var/lib/pbikiosk/token-cache.json";

#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    pub(crate) method: AuthMethod,
    /// Tenant GUID, verified domain or `organizations`.
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    /// The app's client secret or certificate (`client_certificate_file`); none for a device
    /// code sign-in (a public client).
    pub(crate) client: crate::auth::ClientCredential,
    /// Empty for a service principal, which signs in as the app, and for a device code sign-in.
    pub(crate) username: String,
    /// Empty for a service principal.
    pub(crate) password: Secret,
    pub(crate) allow_federated: bool,
    /// How long to wait between attempts after a failure a person must fix.
    pub(crate) permanent_retry: Duration,
    /// `device_code` only: the file that keeps the refresh token across restarts.
    pub(crate) token_cache: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) struct CloudConfig {
    /// Always ends with `/`, so `authority.join("<tenant>/oauth2/v2.0/token")` appends.
    pub(crate) authority: Url,
    /// Always ends with `/`, so `api.join("v1.0/myorg/groups")` appends.
    pub(crate) api: Url,
    /// Without a trailing `/`.
    pub(crate) resource: String,
    pub(crate) ca_file: Option<PathBuf>,
}

impl CloudConfig {
    /// The OAuth scope for the Power BI API: `{resource}/.default`.
    pub(crate) fn scope(&self) -> String {
        format!("{}/.default", self.resource.trim_end_matches('/'))
    }
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            authority: Url::parse(DEFAULT_AUTHORITY).expect("valid default authority"),
            api: Url::parse(DEFAULT_API).expect("valid default api"),
            resource: DEFAULT_RESOURCE.to_owned(),
            ca_file: None,
        }
    }
}

/// How requests leave the device: `[network]`, or the environment when it is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum NetworkSetting {
    /// No `[network]`: `HTTPS_PROXY` / `NO_PROXY` from the environment (systemd
    /// `Environment=`), as before `[network]` existed.
    #[default]
    FromEnvironment,
    /// `[network]` without `proxy`: straight out, whatever the environment says.
    Direct,
    /// `[network] proxy`: everything but `no_proxy` and this device itself goes through it.
    Proxy(ProxySettings),
}

impl NetworkSetting {
    /// The configured proxy, if `[network]` names one.
    pub(crate) fn proxy(&self) -> Option<&ProxySettings> {
        match self {
            NetworkSetting::Proxy(p) => Some(p),
            _ => None,
        }
    }
}

/// `[network] proxy`, `no_proxy` and `proxy_credentials_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxySettings {
    /// Lower case; an IPv6 address in brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Host names (`.corp` for the subdomains too), IP addresses and `address/prefix` ranges,
    /// in the form reqwest and GLib (the web view) both read.
    pub(crate) no_proxy: Vec<String>,
    pub(crate) credentials: Option<ProxyCredentials>,
}

impl ProxySettings {
    /// `http://host:port`, without credentials: safe to show.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// `host:port`.
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The hosts that never go through the proxy: `no_proxy`, and this device itself, which
    /// a proxy elsewhere cannot reach.
    pub(crate) fn bypass(&self) -> Vec<String> {
        let mut all: Vec<String> = ["localhost", "127.0.0.0/8", "::1"]
            .map(str::to_owned)
            .to_vec();
        all.extend(self.no_proxy.iter().cloned());
        all
    }
}

/// The proxy's user and password (`proxy_credentials_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyCredentials {
    pub(crate) user: String,
    pub(crate) password: Secret,
}

#[derive(Debug, Clone)]
pub(crate) struct PlaylistItem {
    pub(crate) workspace: String,
    pub(crate) kind: ContentKind,
    /// The report's or dashboard's GUID.
    pub(crate) id: String,
    pub(crate) pages: Vec<String>,
    pub(crate) bookmarks: Vec<String>,
    pub(crate) seconds: u32,
    pub(crate) refresh_seconds: Option<u32>,
    /// Row-level security for a service principal's embed token (reports only).
    pub(crate) identity: Option<RowIdentity>,
    /// When the entry plays, in the device's local time; always when not set.
    pub(crate) when: crate::schedule::Schedule,
}

/// The effective identity an embed token carries for a dataset with row-level security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowIdentity {
    /// What USERNAME() returns in the report; not a secret, not necessarily an account.
    pub(crate) username: String,
    pub(crate) roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct StatusConfig {
    /// A loopback address, or any address when `token` is set.
    pub(crate) listen: SocketAddr,
    /// `token_file`'s bearer token: every request from another machine must carry it.
    pub(crate) token: Option<Secret>,
    /// Where the metrics are written for node_exporter's textfile collector.
    pub(crate) textfile: Option<PathBuf>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            token: None,
            textfile: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PlayerConfig {
    pub(crate) user_agent: Option<String>,
    /// When the web process is replaced to bound memory (`memory_*` keys).
    pub(crate) memory: crate::player::RecycleSettings,
}

/// `[player] memory_recycle_margin_mib`: how far (MiB) the process tree may grow above its
/// baseline before the web process is replaced. WebKit grows by about 100 MiB a week at 30 s
/// per item, so a recycle every two weeks or so; a screen with 1 GB keeps its head room.
pub(crate) const DEFAULT_MEMORY_RECYCLE_MARGIN_MIB: u64 = 200;
/// `[player] memory_baseline_minutes`: how long after the first report the baseline is taken,
/// long enough for every item of a usual playlist to have been shown.
pub(crate) const DEFAULT_MEMORY_BASELINE_MINUTES: u64 = 60;

/// `[display]`: `rotation` is applied by the kiosk session (cage), which asks
/// `pbikiosk display-rotation`; `gpu` by the webview when the player starts; `report_layout` by
/// the page for each report it embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayConfig {
    /// Degrees the picture is turned clockwise: 0, 90, 180 or 270 (portrait screens).
    /// `None`: not set here (the kiosk unit's own setting applies, e.g. `install.sh --rotation`).
    pub rotation: Option<u16>,
    /// Whether the webview composites with the GPU.
    pub(crate) gpu: GpuMode,
    /// Which layout of a report to show (portrait screens want the mobile one).
    pub(crate) report_layout: ReportLayout,
    /// When the screen is on, in the device's local time; always when not set.
    pub(crate) on: crate::schedule::Schedule,
    /// `power_via` and `cec_device`: how the screen itself is turned off out of hours.
    pub(crate) power: crate::screen_power::Settings,
}

/// `[display] gpu`: GPU compositing in the webview.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum GpuMode {
    /// On when the machine has a GPU render node (`/dev/dri/renderD*`), off otherwise.
    #[default]
    Auto,
    On,
    Off,
}

impl GpuMode {
    /// Use GPU compositing? Without a render node, OpenGL would be Mesa's software rasteriser,
    /// an emulated GPU in process memory. Measured on such a machine (README, Figures): the web
    /// process grew ~1 MiB per 100 page changes with compositing and ~0.2 MiB without, with the
    /// same one-frame switch gap.
    pub(crate) fn use_gpu(self, has_render_node: bool) -> bool {
        match self {
            GpuMode::Auto => has_render_node,
            GpuMode::On => true,
            GpuMode::Off => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("{}: the configuration file does not exist", path.display())]
    NotFound { path: PathBuf },
    /// The file exists but has no (or an empty) `[auth]` table.
    #[error("{}: pbikiosk is not configured yet (the file has no [auth] section)", path.display())]
    NotConfigured { path: PathBuf },
    #[error("{}: the configuration file cannot be read: {}", path.display(), describe_io(source))]
    Unreadable { path: PathBuf, source: io::Error },
    /// A folder, FIFO or device where the file should be.
    #[error("{}: the configuration must be a file, but this is {kind}", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    /// Users other than root and pbikiosk's own could change the file.
    #[error("{message}")]
    Untrusted {
        path: PathBuf,
        message: String,
        fix: String,
    },
    #[error("{}, line {line}, column {column}: TOML syntax error: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{}: {key}: {message}", path.display(), line_suffix(*line))]
    Invalid {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
        fix: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "it is a folder, not a file".to_owned(),
        _ => e.to_string(),
    }
}

impl ConfigError {
    /// The dotted key the error is about, when there is one.
    #[cfg(test)]
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// How to fix it, in words an installer understands.
    pub(crate) fn fix(&self) -> String {
        match self {
            ConfigError::NotFound { path } => format!(
                "Create {} (start from the example shipped with pbikiosk and fill in [auth] and [[playlist]]), or point --config or {ENV_CONFIG} at the right file.",
                path.display()
            ),
            ConfigError::NotConfigured { path } => format!(
                "Fill in the [auth] section of {} (tenant, client_id, username and the two secrets) and at least one [[playlist]] entry, then run `pbikiosk check`.",
                path.display()
            ),
            ConfigError::Unreadable { path, source } => match source.kind() {
                io::ErrorKind::InvalidData => {
                    format!("Save {} as UTF-8 text.", path.display())
                }
                _ => format!(
                    "Make {0} a readable file for the user pbikiosk runs as, e.g. `chown root:pbikiosk {0} && chmod 0640 {0}`.",
                    path.display()
                ),
            },
            ConfigError::NotAFile { path, .. } => format!(
                "Replace {0} with a regular file (start from the example shipped with pbikiosk), or point --config or {ENV_CONFIG} at the right file.",
                path.display()
            ),
            ConfigError::Untrusted { fix, .. } => fix.clone(),
            ConfigError::Syntax { .. } => "Correct the TOML at that place: text values need double quotes, each [section] may appear only once, and each key only once per section.".to_owned(),
            ConfigError::Invalid { fix, .. } => fix.clone(),
        }
    }

    /// The error as a [`Problem`] for `check`, the status screen and the logs.
    pub(crate) fn to_problem(&self) -> Problem {
        Problem::new(ProblemId::Config)
            .with_cause(self.to_string())
            .with_fix(self.fix())
    }
}

/// Read and validate the configuration file at `path`.
pub fn load(path: &Path, sources: &SecretSources) -> Result<Config, ConfigError> {
    let unreadable = |source| ConfigError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let (file, meta) = match trust::open_regular(path) {
        Ok(opened) => opened,
        Err(trust::OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(trust::OpenError::Io(e)) => return Err(unreadable(e)),
        Err(trust::OpenError::NotAFile(kind)) => {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
                kind,
            });
        }
    };
    // Whoever can change the file can point `authority` at their own server and receive the
    // password, whether the password is in the file or not.
    if let Err(why) = trust::check(&meta) {
        return Err(ConfigError::Untrusted {
            path: path.to_path_buf(),
            message: why.describe(path),
            fix: why.fix(path),
        });
    }
    let text = io::read_to_string(file).map_err(unreadable)?;
    parse_inner(&text, path, sources, secrets::file_mode(&meta))
}

/// Validate `text` as if it had been read from `path`. `path` is used in messages and to resolve
/// relative secret files; the mode of `path` itself is only checked by [`load`].
pub(crate) fn parse(
    text: &str,
    path: &Path,
    sources: &SecretSources,
) -> Result<Config, ConfigError> {
    parse_inner(text, path, sources, None)
}

fn parse_inner(
    text: &str,
    path: &Path,
    sources: &SecretSources,
    config_mode: Option<u32>,
) -> Result<Config, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            column: column_of(text, offset),
            message: e.message().to_owned(),
        }
    })?;
    let cx = Ctx::new(path, text, sources, config_mode);
    let root = Section {
        name: String::new(),
        title: "the top level of the file".to_owned(),
        table: doc.get_ref(),
        span: 0..0,
    };
    root.check_keys(
        &cx,
        TOP_KEYS,
        "Valid sections are [auth], [cloud], [status], [player], [display], [network], [setup], [fleet] and [[playlist]].",
    )?;

    // A typo'd section is reported above; a missing or empty [auth] means "not set up yet".
    let auth = match root.table(&cx, "auth")? {
        Some(auth) if !auth.table.is_empty() => auth,
        _ => {
            return Err(ConfigError::NotConfigured {
                path: path.to_path_buf(),
            });
        }
    };
    let auth = parse_auth(&cx, &auth)?;
    let cloud = match root.table(&cx, "cloud")? {
        Some(s) => parse_cloud(&cx, &s)?,
        None => CloudConfig::default(),
    };
    let status = match root.table(&cx, "status")? {
        Some(s) => parse_status(&cx, &s)?,
        None => StatusConfig::default(),
    };
    let player = match root.table(&cx, "player")? {
        Some(s) => parse_player(&cx, &s)?,
        None => PlayerConfig::default(),
    };
    let display = match root.table(&cx, "display")? {
        Some(s) => parse_display(&cx, &s)?,
        None => DisplayConfig::default(),
    };
    let network = match root.table(&cx, "network")? {
        Some(s) => parse_network(&cx, &s)?,
        None => NetworkSetting::FromEnvironment,
    };
    let setup = match root.table(&cx, "setup")? {
        Some(s) => setup::parse_setup(&cx, &s)?,
        None => setup::SetupConfig::default(),
    };
    let fleet = match root.table(&cx, "fleet")? {
        Some(s) => Some(self::fleet::parse_fleet(&cx, &s)?),
        None => None,
    };
    let playlist = parse_playlist(&cx, &root)?;
    check_identities(&cx, auth.method, &playlist)?;
    Ok(Config {
        auth,
        cloud,
        playlist,
        status,
        player,
        display,
        network,
        setup,
        fleet,
        path: path.to_path_buf(),
    })
}

/// Row-level security identities are for a service principal's embed tokens only.
fn check_identities(
    cx: &Ctx,
    method: AuthMethod,
    playlist: &[PlaylistItem],
) -> Result<(), ConfigError> {
    if method != AuthMethod::ServicePrincipal
        && let Some(i) = playlist.iter().position(|p| p.identity.is_some())
    {
        // A user signs in as themselves: Power BI applies their own row-level security, and
        // an identity in the file would promise a filter that is never applied.
        return Err(cx.invalid(
            &format!("playlist[{}].identity_username", i + 1),
            None,
            "identity_username and identity_roles only apply with method = \"service_principal\"",
            "Remove them: with method = \"password\" Power BI filters by the service account's own roles.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    use std::fs;

    #[test]
    fn full_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "client-secret", &format!("{CS}\n"), 0o600);
        write(dir.path(), "password", &format!("{PW}\n"), 0o640);
        write(
            dir.path(),
            "corp-ca.pem",
            "-----BEGIN CERTIFICATE-----\n",
            0o644,
        );
        let text = format!(
            r#"# pbikiosk
[auth]
method = "password"
tenant = "{WS}"
client_id = "{APP}"
client_secret_file = "client-secret"
username = "svc-pbikiosk@contoso.onmicrosoft.com"
password_file = "{pw}"
allow_federated = true
permanent_retry_minutes = 60

[cloud]
authority = "https://login.microsoftonline.us"
api = "https://api.powerbigov.us/"
resource = "https://analysis.usgovcloudapi.net/powerbi/api"
ca_file = "corp-ca.pem"

[status]
listen = "[::1]:9600"

[player]
user_agent = "pbikiosk-test/1"

[[playlist]]
workspace = "{WS}"
report = "{REPORT}"
pages = ["ReportSection", "ReportSection2"]
bookmarks = ["Bookmark123"]
seconds = 45
refresh_seconds = 900

[[playlist]]
workspace = "{WS}"
dashboard = "{DASH}"
"#,
            pw = dir.path().join("password").display()
        );
        let cfg_path = write(dir.path(), "pbikiosk.toml", &text, 0o640);
        let c = load(&cfg_path, &no_sources()).unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(c.path, cfg_path);
        assert_eq!(c.auth.method, AuthMethod::Password);
        assert_eq!(c.auth.tenant, WS);
        assert_eq!(c.auth.client_id, APP);
        assert_eq!(c.auth.client.secret().unwrap().expose(), CS);
        assert_eq!(c.auth.username, "svc-pbikiosk@contoso.onmicrosoft.com");
        assert_eq!(c.auth.password.expose(), PW);
        assert!(c.auth.allow_federated);
        assert_eq!(c.auth.permanent_retry, Duration::from_secs(3600));
        // Trailing slash added so Url::join appends instead of replacing the last segment.
        assert_eq!(
            c.cloud.authority.as_str(),
            "https://login.microsoftonline.us/"
        );
        assert_eq!(
            c.cloud
                .authority
                .join("t/oauth2/v2.0/token")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        );
        assert_eq!(c.cloud.api.as_str(), "https://api.powerbigov.us/");
        assert_eq!(
            c.cloud.scope(),
            "https://analysis.usgovcloudapi.net/powerbi/api/.default"
        );
        assert_eq!(c.cloud.ca_file, Some(dir.path().join("corp-ca.pem")));
        assert_eq!(c.status.listen, "[::1]:9600".parse().unwrap());
        assert_eq!(c.player.user_agent.as_deref(), Some("pbikiosk-test/1"));
        assert_eq!(c.playlist.len(), 2);
        let first = &c.playlist[0];
        assert_eq!(first.workspace, WS);
        assert_eq!(
            (first.kind, first.id.as_str()),
            (ContentKind::Report, REPORT)
        );
        assert_eq!(first.pages, ["ReportSection", "ReportSection2"]);
        assert_eq!(first.bookmarks, ["Bookmark123"]);
        assert_eq!(first.seconds, 45);
        assert_eq!(first.refresh_seconds, Some(900));
        assert_eq!(
            (c.playlist[1].kind, c.playlist[1].id.as_str()),
            (ContentKind::Dashboard, DASH)
        );
    }

    #[test]
    fn defaults() {
        let c = ok(&format!("{}{}", auth(), item("")));
        assert_eq!(c.auth.method, AuthMethod::Password);
        assert!(!c.auth.allow_federated);
        assert_eq!(c.auth.permanent_retry, Duration::from_secs(15 * 60));
        assert_eq!(
            c.cloud.authority.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(c.cloud.api.as_str(), "https://api.powerbi.com/");
        assert_eq!(c.cloud.resource, "https://analysis.windows.net/powerbi/api");
        assert_eq!(
            c.cloud.scope(),
            "https://analysis.windows.net/powerbi/api/.default"
        );
        assert_eq!(c.cloud.ca_file, None);
        assert_eq!(c.status.listen, "127.0.0.1:9520".parse().unwrap());
        assert_eq!(c.player.user_agent, None);
        let it = &c.playlist[0];
        assert_eq!(it.seconds, 30);
        assert_eq!(it.refresh_seconds, None);
        assert!(it.pages.is_empty() && it.bookmarks.is_empty());
    }

    #[test]
    fn empty_playlist_is_allowed() {
        // `pbikiosk reports` runs before any playlist exists.
        assert!(ok(&auth()).playlist.is_empty());
    }

    #[test]
    fn not_configured() {
        for text in [
            "",
            "   \n\n",
            "# [auth]\n# tenant = \"contoso.onmicrosoft.com\"\n",
            "[player]\nuser_agent = \"x\"\n",
            // The shipped example may keep the header but comment out every key.
            "[auth]\n# tenant = \"\"\n",
        ] {
            match err(text) {
                ConfigError::NotConfigured { path: p } => assert_eq!(p, path()),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let e = err("");
        assert!(e.fix().contains("[auth]"), "{}", e.fix());
        assert_eq!(e.key(), None);
    }

    #[test]
    fn misspelt_section_is_not_mistaken_for_not_configured() {
        let (msg, fix) = invalid(err("[auht]\ntenant = \"x\"\n"), "auht", Some(1));
        assert!(msg.contains("unknown key `auht`"), "{msg}");
        assert!(fix.contains("Did you mean `auth`?"), "{fix}");
        assert!(fix.contains("[[playlist]]"), "{fix}");
    }

    #[test]
    fn config_others_may_change_is_refused_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        // No inline secret: the password is safe in its file, but whoever writes the config
        // can change `authority` and have the password sent to them.
        write(dir.path(), "password", "pw\n", 0o600);
        let text = format!(
            "{}client_secret_file = \"password\"\npassword_file = \"password\"\n",
            auth_no_secrets()
        );
        for mode in [0o666, 0o664, 0o646] {
            let cfg = write(dir.path(), "pbikiosk.toml", &text, mode);
            let e = load(&cfg, &no_sources()).unwrap_err();
            assert!(matches!(e, ConfigError::Untrusted { .. }), "{e:?}");
            assert!(e.to_string().contains(&format!("{mode:04o}")), "{e}");
            assert_eq!(
                e.fix(),
                format!(
                    "Run `chmod go-w {}` (as root), so only its owner can change it.",
                    cfg.display()
                )
            );
            assert_eq!(e.to_problem().id, ProblemId::Config);
        }
        let cfg = write(dir.path(), "pbikiosk.toml", &text, 0o644);
        assert!(load(&cfg, &no_sources()).is_ok());
    }

    #[test]
    fn load_not_found_and_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        match load(&missing, &no_sources()) {
            Err(ConfigError::NotFound { path: p }) => assert_eq!(p, missing),
            other => panic!("{other:?}"),
        }
        let e = load(&missing, &no_sources()).unwrap_err();
        assert!(e.fix().contains("PBIKIOSK_CONFIG"), "{}", e.fix());

        // A folder where the file should be.
        let e = load(dir.path(), &no_sources()).unwrap_err();
        assert!(matches!(e, ConfigError::NotAFile { .. }), "{e:?}");
        assert!(e.to_string().contains("folder"), "{e}");
        assert!(e.fix().contains("regular file"), "{}", e.fix());

        let latin1 = dir.path().join("latin1.toml");
        fs::write(&latin1, b"[auth]\ntenant = \"caf\xe9\"\n").unwrap();
        let e = load(&latin1, &no_sources()).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(e.fix().contains("UTF-8"), "{}", e.fix());
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let text = format!("{}seconds = \n", auth());
        match err(&text) {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (7, 11), "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let e = err("[auth]\n[auth]\n");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("pbikiosk.toml"), "{e}");
    }

    #[test]
    fn to_problem_carries_key_line_and_fix() {
        let e = err(&format!("{}{}", auth(), item("seconds = 2\n")));
        assert_eq!(e.key(), Some("playlist[1].seconds"));
        let p = e.to_problem();
        assert_eq!(p.id, ProblemId::Config);
        assert!(
            p.cause.contains("playlist[1].seconds") && p.cause.contains("line 10"),
            "{}",
            p.cause
        );
        assert_eq!(p.fix, e.fix());
        assert!(p.fix.contains("from 5 to 86400"), "{}", p.fix);
    }

    #[test]
    fn resolve_path_precedence() {
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CONFIG", "/srv/kiosk.toml")]),
            credentials_dir: None,
        };
        assert_eq!(
            resolve_path(Some(Path::new("/tmp/cli.toml")), &s),
            PathBuf::from("/tmp/cli.toml")
        );
        assert_eq!(resolve_path(None, &s), PathBuf::from("/srv/kiosk.toml"));
        assert_eq!(
            resolve_path(None, &no_sources()),
            PathBuf::from(DEFAULT_PATH)
        );
        let empty = SecretSources {
            env: env(&[("PBIKIOSK_CONFIG", "")]),
            credentials_dir: None,
        };
        assert_eq!(resolve_path(None, &empty), PathBuf::from(DEFAULT_PATH));
    }
}
