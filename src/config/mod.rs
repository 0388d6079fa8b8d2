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

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use url::{Host, Url};

use crate::{Problem, ProblemId, Secret};

pub const DEFAULT_PATH: &str = "/etc/pbikiosk/pbikiosk.toml";

/// Environment variable naming the configuration file (below `--config`, above [`DEFAULT_PATH`]).
pub const ENV_CONFIG: &str = "PBIKIOSK_CONFIG";
const ENV_CLIENT_SECRET: &str = "PBIKIOSK_CLIENT_SECRET";
const ENV_PASSWORD: &str = "PBIKIOSK_PASSWORD";

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
const DEFAULT_API: &str = "https://api.powerbi.com/";
const DEFAULT_RESOURCE: &str = "https://analysis.windows.net/powerbi/api";
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9520);
const DEFAULT_RETRY_MINUTES: i64 = 15;
const DEFAULT_SECONDS: i64 = 30;

const TOP_KEYS: &[&str] = &["auth", "cloud", "status", "player", "display", "playlist"];
const AUTH_KEYS: &[&str] = &[
    "method",
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_file",
    "username",
    "password",
    "password_file",
    "allow_federated",
    "permanent_retry_minutes",
];
const CLOUD_KEYS: &[&str] = &["authority", "api", "resource", "ca_file"];
const STATUS_KEYS: &[&str] = &["listen"];
const PLAYER_KEYS: &[&str] = &["user_agent"];
const DISPLAY_KEYS: &[&str] = &["rotation", "gpu"];
const PLAYLIST_KEYS: &[&str] = &[
    "workspace",
    "report",
    "dashboard",
    "pages",
    "bookmarks",
    "seconds",
    "refresh_seconds",
];

/// `--config` flag > `PBIKIOSK_CONFIG` env > [`DEFAULT_PATH`].
pub fn resolve_path(cli: Option<&Path>, env: &SecretSources) -> PathBuf {
    if let Some(path) = cli {
        return path.to_path_buf();
    }
    match env.env.get(ENV_CONFIG) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub auth: AuthConfig,
    pub cloud: CloudConfig,
    pub playlist: Vec<PlaylistItem>,
    pub status: StatusConfig,
    pub player: PlayerConfig,
    pub display: DisplayConfig,
    /// The file this was read from (relative secret files were resolved against its folder).
    pub path: PathBuf,
}

/// How the service account signs in. Only ROPC (`"password"`) for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
}

impl AuthMethod {
    const SUPPORTED: &[(&str, AuthMethod)] = &[("password", AuthMethod::Password)];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// Tenant GUID, verified domain or `organizations`.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub username: String,
    pub password: Secret,
    pub allow_federated: bool,
    /// How long to wait between attempts after a failure a person must fix.
    pub permanent_retry: Duration,
}

#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// Always ends with `/`, so `authority.join("<tenant>/oauth2/v2.0/token")` appends.
    pub authority: Url,
    /// Always ends with `/`, so `api.join("v1.0/myorg/groups")` appends.
    pub api: Url,
    /// Without a trailing `/`.
    pub resource: String,
    pub ca_file: Option<PathBuf>,
}

impl CloudConfig {
    /// The OAuth scope for the Power BI API: `{resource}/.default`.
    pub fn scope(&self) -> String {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Report(String),
    Dashboard(String),
}

#[derive(Debug, Clone)]
pub struct PlaylistItem {
    pub workspace: String,
    pub content: Content,
    pub pages: Vec<String>,
    pub bookmarks: Vec<String>,
    pub seconds: u32,
    pub refresh_seconds: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Always a loopback address.
    pub listen: SocketAddr,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlayerConfig {
    pub user_agent: Option<String>,
}

/// `[display]`: `rotation` is applied by the kiosk session (cage), which asks
/// `pbikiosk display-rotation`; `gpu` by the webview when the player starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisplayConfig {
    /// Degrees the picture is turned clockwise: 0, 90, 180 or 270 (portrait screens).
    /// `None`: not set here (the kiosk unit's own setting applies, e.g. `install.sh --rotation`).
    pub rotation: Option<u16>,
    /// Whether the webview composites with the GPU.
    pub gpu: GpuMode,
}

/// `[display] gpu`: GPU compositing in the webview.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GpuMode {
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
    pub fn use_gpu(self, has_render_node: bool) -> bool {
        match self {
            GpuMode::Auto => has_render_node,
            GpuMode::On => true,
            GpuMode::Off => false,
        }
    }
}

/// Where secrets and environment come from; tests build it by hand, the binary uses
/// [`SecretSources::from_process`].
#[derive(Clone, Default)]
pub struct SecretSources {
    pub env: HashMap<String, String>,
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
    pub credentials_dir: Option<PathBuf>,
}

impl SecretSources {
    /// The process environment (variables that are valid UTF-8) and `$CREDENTIALS_DIRECTORY`.
    pub fn from_process() -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        Self {
            env,
            credentials_dir,
        }
    }
}

// Hand-written: the environment may hold PBIKIOSK_PASSWORD, so only the names are shown.
impl fmt::Debug for SecretSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.env.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("SecretSources")
            .field("env", &names)
            .field("credentials_dir", &self.credentials_dir)
            .finish()
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

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "it is a folder, not a file".to_owned(),
        _ => e.to_string(),
    }
}

impl ConfigError {
    /// The dotted key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// How to fix it, in words an installer understands.
    pub fn fix(&self) -> String {
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
            ConfigError::Syntax { .. } => "Correct the TOML at that place: text values need double quotes, each [section] may appear only once, and each key only once per section.".to_owned(),
            ConfigError::Invalid { fix, .. } => fix.clone(),
        }
    }

    /// The error as a [`Problem`] for `check`, the status screen and the logs.
    pub fn to_problem(&self) -> Problem {
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
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(unreadable(e)),
    };
    let meta = file.metadata().map_err(unreadable)?;
    if meta.is_dir() {
        return Err(unreadable(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    let text = io::read_to_string(file).map_err(unreadable)?;
    parse_inner(&text, path, sources, file_mode(&meta))
}

/// Validate `text` as if it had been read from `path`. `path` is used in messages and to resolve
/// relative secret files; the mode of `path` itself is only checked by [`load`].
pub fn parse(text: &str, path: &Path, sources: &SecretSources) -> Result<Config, ConfigError> {
    parse_inner(text, path, sources, None)
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata) -> Option<u32> {
    None
}

/// Bits that let users other than owner and group read, write or run a file.
const OTHERS: u32 = 0o007;

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
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cx = Ctx {
        path,
        text,
        dir,
        sources,
        config_mode,
    };
    let root = Section {
        name: String::new(),
        title: "the top level of the file".to_owned(),
        table: doc.get_ref(),
        span: 0..0,
    };
    root.check_keys(
        &cx,
        TOP_KEYS,
        "Valid sections are [auth], [cloud], [status], [player], [display] and [[playlist]].",
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
    let playlist = parse_playlist(&cx, &root)?;
    Ok(Config {
        auth,
        cloud,
        playlist,
        status,
        player,
        display,
        path: path.to_path_buf(),
    })
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// The config file's folder: relative paths in the file are relative to it.
    dir: PathBuf,
    sources: &'a SecretSources,
    /// Mode of the config file, when it was read from disk.
    config_mode: Option<u32>,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        key: &str,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            line: span.map(|s| line_of(self.text, s.start)),
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn column_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    let start = text.as_bytes()[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    text.get(start..end)
        .map_or(end - start, |s| s.chars().count())
        + 1
}

type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

/// One TOML table with its dotted name, for messages.
struct Section<'a, 'i> {
    /// Dotted name (`auth`, `playlist[2]`); empty for the top level.
    name: String,
    /// How the table is shown to a person (`[auth]`, `[[playlist]] number 2`).
    title: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
}

impl<'a, 'i> Section<'a, 'i> {
    fn key(&self, k: &str) -> String {
        if self.name.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.name)
        }
    }

    fn get(&self, k: &str) -> Option<Value<'a, 'i>> {
        self.table.get(k)
    }

    /// [`Self::check_keys`] for a table whose fix lists its keys: "Valid keys in [header] are: ...".
    fn check_table_keys(
        &self,
        cx: &Ctx,
        header: &str,
        allowed: &[&str],
    ) -> Result<(), ConfigError> {
        let valid = format!("Valid keys in {header} are: {}.", allowed.join(", "));
        self.check_keys(cx, allowed, &valid)
    }

    /// Refuse the first (in file order) key not in `allowed`.
    fn check_keys(&self, cx: &Ctx, allowed: &[&str], valid: &str) -> Result<(), ConfigError> {
        let unknown = self
            .table
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        let Some(k) = unknown else {
            return Ok(());
        };
        let name: &str = k.get_ref();
        let mut fix = valid.to_owned();
        if let Some(near) = closest(name, allowed) {
            fix = format!("Did you mean `{near}`? {fix}");
        }
        Err(cx.invalid(
            &self.key(name),
            Some(&k.span()),
            format!("unknown key `{name}` in {}", self.title),
            fix,
        ))
    }

    fn wrong_type(
        &self,
        cx: &Ctx,
        k: &str,
        v: Value,
        expected: &str,
        example: &str,
    ) -> ConfigError {
        cx.invalid(
            &self.key(k),
            Some(&v.span()),
            format!("must be {expected}, not {}", describe_type(v.get_ref())),
            format!("Write it like {k} = {example}"),
        )
    }

    fn table(&self, cx: &Ctx, k: &str) -> Result<Option<Section<'a, 'i>>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => Ok(Some(Section {
                name: self.key(k),
                title: format!("[{}]", self.key(k)),
                table: t,
                span: v.span(),
            })),
            _ => Err(cx.invalid(
                &self.key(k),
                Some(&v.span()),
                format!("must be a section, not {}", describe_type(v.get_ref())),
                format!("Write it as a [{k}] section header with its keys on the lines below."),
            )),
        }
    }

    fn string(&self, cx: &Ctx, k: &str) -> Result<Option<(&'a str, Range<usize>)>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
            _ => Err(self.wrong_type(cx, k, v, "text in double quotes", "\"...\"")),
        }
    }

    fn required(
        &self,
        cx: &Ctx,
        k: &str,
        fix: &str,
    ) -> Result<(&'a str, Range<usize>), ConfigError> {
        self.string(cx, k)?.ok_or_else(|| {
            cx.invalid(
                &self.key(k),
                Some(&self.span),
                format!("{} is missing in {}", self.key(k), self.title),
                fix,
            )
        })
    }

    fn bool(&self, cx: &Ctx, k: &str) -> Result<Option<bool>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            _ => Err(self.wrong_type(cx, k, v, "true or false (without quotes)", "false")),
        }
    }

    /// A whole number within `range`; `unit` is shown in the message.
    fn int(
        &self,
        cx: &Ctx,
        k: &str,
        range: RangeInclusive<i64>,
        unit: &str,
        example: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::Integer(i) = v.get_ref() else {
            let example = example.to_string();
            return Err(self.wrong_type(cx, k, v, "a whole number without quotes", &example));
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            parsed => {
                let shown = parsed.map_or_else(|_| "too large".to_owned(), |n| n.to_string());
                Err(cx.invalid(
                    &self.key(k),
                    Some(&v.span()),
                    format!(
                        "{shown} is out of range: allowed are {} to {} {unit}",
                        range.start(),
                        range.end()
                    ),
                    format!(
                        "Set {k} to a value from {} to {}.",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        }
    }

    /// A list of non-empty names without spaces (page and bookmark names).
    fn names(&self, cx: &Ctx, k: &str, fix: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(cx, k, v, "a list", "[\"...\", \"...\"]"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::String(s) = item.get_ref() else {
                return Err(cx.invalid(
                    &self.key(k),
                    Some(&item.span()),
                    format!(
                        "every entry must be text in double quotes, not {}",
                        describe_type(item.get_ref())
                    ),
                    format!("Write it like {k} = [\"...\", \"...\"]"),
                ));
            };
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(cx.invalid(
                    &self.key(k),
                    Some(&item.span()),
                    format!("{s:?} is not a valid name: names are not empty and have no spaces"),
                    fix,
                ));
            }
            out.push(s.to_string());
        }
        Ok(Some(out))
    }
}

fn describe_type(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "text",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a section",
    }
}

/// The allowed key closest to a typo, if it is close enough to be a likely typo.
fn closest<'k>(name: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (edit_distance(&name.to_ascii_lowercase(), a), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Edit distance where swapping two neighbouring letters counts as one typo (`auht` → `auth`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn parse_auth(cx: &Ctx, s: &Section) -> Result<AuthConfig, ConfigError> {
    s.check_table_keys(cx, "[auth]", AUTH_KEYS)?;

    let method = match s.string(cx, "method")? {
        None => AuthMethod::Password,
        Some((m, span)) => AuthMethod::SUPPORTED
            .iter()
            .find(|(name, _)| *name == m)
            .map(|(_, method)| *method)
            .ok_or_else(|| {
                let names: Vec<String> = AuthMethod::SUPPORTED
                    .iter()
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect();
                cx.invalid(
                    &s.key("method"),
                    Some(&span),
                    format!(
                        "sign-in method {m:?} is not supported; supported: {}",
                        names.join(", ")
                    ),
                    "Set method = \"password\" (or remove the line: it is the default).",
                )
            })?,
    };

    let (tenant, span) = s.required(
        cx,
        "tenant",
        "Add tenant = \"<Directory (tenant) ID>\" (or a verified domain such as contoso.onmicrosoft.com) to [auth].",
    )?;
    check_tenant(cx, &s.key("tenant"), tenant, &span)?;

    let (client_id, span) = s.required(
        cx,
        "client_id",
        "Add client_id = \"<Application (client) ID>\" from the app registration's Overview page to [auth].",
    )?;
    if !is_guid(client_id) {
        return Err(cx.invalid(
            &s.key("client_id"),
            Some(&span),
            format!("{client_id:?} is not a GUID (like 00000000-0000-0000-0000-000000000000)"),
            "Copy the Application (client) ID from the app registration's Overview page in the Azure portal (not the Object ID, not the secret).",
        ));
    }

    let (username, span) = s.required(
        cx,
        "username",
        "Add username = \"<service account>@<domain>\" to [auth].",
    )?;
    if !looks_like_upn(username) {
        return Err(cx.invalid(
            &s.key("username"),
            Some(&span),
            format!("{username:?} does not look like user@domain"),
            "Set username to the service account's full sign-in name, e.g. svc-pbikiosk@contoso.onmicrosoft.com.",
        ));
    }

    let allow_federated = s.bool(cx, "allow_federated")?.unwrap_or(false);
    let minutes = s
        .int(
            cx,
            "permanent_retry_minutes",
            1..=1440,
            "minutes",
            DEFAULT_RETRY_MINUTES,
        )?
        .unwrap_or(DEFAULT_RETRY_MINUTES);

    let client_secret = resolve_secret(cx, s, &CLIENT_SECRET)?;
    let password = resolve_secret(cx, s, &PASSWORD)?;

    Ok(AuthConfig {
        method,
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        client_secret,
        username: username.to_owned(),
        password,
        allow_federated,
        permanent_retry: Duration::from_secs(minutes as u64 * 60),
    })
}

fn check_tenant(cx: &Ctx, key: &str, tenant: &str, span: &Range<usize>) -> Result<(), ConfigError> {
    let lower = tenant.to_ascii_lowercase();
    if lower == "common" || lower == "consumers" {
        return Err(cx.invalid(
            key,
            Some(span),
            format!("{tenant:?} cannot be used: password sign-in (ROPC) needs the account's own tenant"),
            "Set tenant to the Directory (tenant) ID GUID from Entra ID > Overview, or to the tenant's domain (e.g. contoso.onmicrosoft.com).",
        ));
    }
    if lower == "organizations" || is_guid(tenant) || is_domain(&lower) {
        return Ok(());
    }
    Err(cx.invalid(
        key,
        Some(span),
        format!("{tenant:?} is neither a tenant GUID nor a domain name"),
        "Set tenant to the Directory (tenant) ID GUID from Entra ID > Overview, or to a verified domain such as contoso.onmicrosoft.com.",
    ))
}

fn looks_like_upn(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && !user.chars().any(|c| c.is_whitespace() || c.is_control())
                && is_domain(&domain.to_ascii_lowercase())
        }
        None => false,
    }
}

/// The four places one secret can come from.
struct SecretSpec {
    /// Inline key in [auth].
    key: &'static str,
    /// File key in [auth].
    file_key: &'static str,
    env: &'static str,
    /// File name in `$CREDENTIALS_DIRECTORY`.
    credential: &'static str,
    /// What it is, for a person.
    what: &'static str,
}

const CLIENT_SECRET: SecretSpec = SecretSpec {
    key: "client_secret",
    file_key: "client_secret_file",
    env: ENV_CLIENT_SECRET,
    credential: "client-secret",
    what: "the app registration's client secret",
};

const PASSWORD: SecretSpec = SecretSpec {
    key: "password",
    file_key: "password_file",
    env: ENV_PASSWORD,
    credential: "password",
    what: "the service account's password",
};

fn resolve_secret(cx: &Ctx, s: &Section, spec: &SecretSpec) -> Result<Secret, ConfigError> {
    let inline = s.string(cx, spec.key)?;
    let file = s.string(cx, spec.file_key)?;
    match (inline, file) {
        (Some(_), Some((_, span))) => Err(cx.invalid(
            &s.key(spec.file_key),
            Some(&span),
            format!(
                "both {} and {} are set",
                s.key(spec.key),
                s.key(spec.file_key)
            ),
            format!(
                "Keep only one of them: {} (recommended) or {}.",
                spec.file_key, spec.key
            ),
        )),
        (Some((value, span)), None) => {
            let key = s.key(spec.key);
            if value.is_empty() {
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!("{key} is empty"),
                    format!(
                        "Put {} there, or remove the line and use {} instead.",
                        spec.what, spec.file_key
                    ),
                ));
            }
            if let Some(mode) = cx.config_mode
                && mode & OTHERS != 0
            {
                let p = cx.path.display();
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!(
                        "the file holds {} and every user on this device can read it (mode {:04o})",
                        spec.what,
                        mode & 0o7777
                    ),
                    format!(
                        "Move the secret into its own file and set {} to it (mode 0600, or 0640 with owner root and group pbikiosk), or run `chmod o-rwx {p}`.",
                        spec.file_key
                    ),
                ));
            }
            tracing::debug!(key = %key, "secret taken from the configuration file");
            Ok(Secret::new(value))
        }
        (None, Some((file, span))) => {
            let key = s.key(spec.file_key);
            if file.is_empty() {
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!("{key} is empty"),
                    format!(
                        "Set {} to the file that holds {}.",
                        spec.file_key, spec.what
                    ),
                ));
            }
            let path = cx.resolve(file);
            let secret = read_secret_file(cx, &key, Some(&span), &path, spec, true)?;
            tracing::debug!(key = %key, file = %path.display(), "secret read from file");
            Ok(secret)
        }
        (None, None) => {
            if let Some(value) = cx.sources.env.get(spec.env) {
                if value.is_empty() {
                    return Err(cx.invalid(
                        &s.key(spec.key),
                        None,
                        format!("the environment variable {} is set but empty", spec.env),
                        format!(
                            "Put {} into {}, or unset it and set {} in [auth].",
                            spec.what, spec.env, spec.file_key
                        ),
                    ));
                }
                tracing::debug!(env = spec.env, "secret taken from the environment");
                return Ok(Secret::new(value.as_str()));
            }
            if let Some(dir) = &cx.sources.credentials_dir {
                let path = dir.join(spec.credential);
                if path.exists() {
                    let key = s.key(spec.key);
                    let secret = read_secret_file(cx, &key, None, &path, spec, false)?;
                    tracing::debug!(file = %path.display(), "secret read from systemd credentials");
                    return Ok(secret);
                }
            }
            Err(cx.invalid(
                &s.key(spec.key),
                Some(&s.span),
                format!("{} is not configured", spec.what),
                format!(
                    "Give {} in one of four ways: {file_key} = \"/etc/pbikiosk/{cred}\" in [auth] (recommended; the file readable only by root and group pbikiosk, mode 0640), {key} = \"...\" in [auth], the environment variable {env}, or a systemd credential named {cred} (LoadCredential={cred}:/path/to/file in the service unit).",
                    spec.what,
                    file_key = spec.file_key,
                    key = spec.key,
                    env = spec.env,
                    cred = spec.credential,
                ),
            ))
        }
    }
}

/// Read a secret from a file, refusing files that other users may read or change when
/// `check_mode` (systemd's credential files are systemd's business).
fn read_secret_file(
    cx: &Ctx,
    key: &str,
    span: Option<&Range<usize>>,
    path: &Path,
    spec: &SecretSpec,
    check_mode: bool,
) -> Result<Secret, ConfigError> {
    let p = path.display();
    let fix_create = format!(
        "Create {p} containing only {} (owner root, group pbikiosk, mode 0640), or correct {key}.",
        spec.what
    );
    let fail = |message: String, fix: String| Err(cx.invalid(key, span, message, fix));
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return fail(format!("the file {p} does not exist"), fix_create);
        }
        Err(e) => {
            return fail(
                format!("the file {p} cannot be read: {}", describe_io(&e)),
                fix_create,
            );
        }
    };
    if meta.is_dir() {
        return fail(format!("{p} is a folder, not a file"), fix_create);
    }
    if check_mode
        && let Some(mode) = file_mode(&meta)
        && mode & OTHERS != 0
    {
        return fail(
            format!(
                "the file {p} can be read or changed by every user on this device (mode {:04o})",
                mode & 0o7777
            ),
            format!(
                "Run `chmod o-rwx {p}` (the file should be mode 0600, or 0640 with owner root and group pbikiosk)."
            ),
        );
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                format!("the file {p} cannot be read: {}", describe_io(&e)),
                format!("Let pbikiosk read it: `chown root:pbikiosk {p} && chmod 0640 {p}`."),
            );
        }
    };
    let Ok(mut text) = String::from_utf8(bytes) else {
        return fail(
            format!("the file {p} is not UTF-8 text"),
            format!("Save {} in {p} as plain UTF-8 text.", spec.what),
        );
    };
    // One trailing line break is what editors and `echo` add; anything else is part of the secret.
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return fail(format!("the file {p} is empty"), fix_create);
    }
    // A line break inside a secret is almost always a stray extra line; sending it would be a
    // wrong password every time, which is how the account gets locked out.
    if text.contains(['\n', '\r']) {
        return fail(
            format!("the file {p} holds more than one line"),
            format!(
                "Put {} alone on the first line of {p}, with no blank lines after it.",
                spec.what
            ),
        );
    }
    Ok(Secret::new(text))
}

fn parse_cloud(cx: &Ctx, s: &Section) -> Result<CloudConfig, ConfigError> {
    s.check_table_keys(cx, "[cloud]", CLOUD_KEYS)?;
    let defaults = CloudConfig::default();
    let authority = match s.string(cx, "authority")? {
        Some((v, span)) => base_url(cx, &s.key("authority"), v, &span, DEFAULT_AUTHORITY)?,
        None => defaults.authority,
    };
    let api = match s.string(cx, "api")? {
        Some((v, span)) => base_url(cx, &s.key("api"), v, &span, DEFAULT_API)?,
        None => defaults.api,
    };
    let resource = match s.string(cx, "resource")? {
        Some((v, span)) => {
            let trimmed = v.trim_end_matches('/');
            if trimmed.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(cx.invalid(
                    &s.key("resource"),
                    Some(&span),
                    format!("{v:?} is not a resource identifier"),
                    format!("Set resource to the Power BI resource of your cloud, e.g. \"{DEFAULT_RESOURCE}\" (or remove it for the public cloud)."),
                ));
            }
            trimmed.to_owned()
        }
        None => defaults.resource,
    };
    let ca_file = match s.string(cx, "ca_file")? {
        Some((v, span)) => Some(check_ca_file(cx, &s.key("ca_file"), v, &span)?),
        None => None,
    };
    Ok(CloudConfig {
        authority,
        api,
        resource,
        ca_file,
    })
}

fn base_url(
    cx: &Ctx,
    key: &str,
    value: &str,
    span: &Range<usize>,
    example: &str,
) -> Result<Url, ConfigError> {
    let example = example.trim_end_matches('/');
    let mut url = Url::parse(value).map_err(|e| {
        cx.invalid(
            key,
            Some(span),
            format!("not a valid web address ({e})"),
            format!("Write a full address like \"{example}\"."),
        )
    })?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        scheme => {
            return Err(cx.invalid(
                key,
                Some(span),
                format!("{scheme}:// is not allowed: the address must use https:// (http:// only for this device itself)"),
                format!("Write the address with https://, like \"{example}\"."),
            ));
        }
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(cx.invalid(
            key,
            Some(span),
            "must be a plain address with a host and no ?query or #fragment",
            format!("Write only the base address, like \"{example}\"."),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never repeat the value: it holds credentials.
        return Err(cx.invalid(
            key,
            Some(span),
            "must not contain a user name or password",
            format!("Remove the user:password@ part, like \"{example}\"."),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn check_ca_file(
    cx: &Ctx,
    key: &str,
    value: &str,
    span: &Range<usize>,
) -> Result<PathBuf, ConfigError> {
    let path = cx.resolve(value);
    let p = path.display();
    let fix = format!(
        "Put the proxy's CA certificate (PEM) at {p}, readable by pbikiosk, or correct or remove {key}."
    );
    match fs::File::open(&path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(cx.invalid(key, Some(span), format!("{p} is not a file"), fix)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(cx.invalid(key, Some(span), format!("the file {p} does not exist"), fix))
        }
        Err(e) => Err(cx.invalid(
            key,
            Some(span),
            format!("the file {p} cannot be read: {}", describe_io(&e)),
            fix,
        )),
    }
}

fn parse_status(cx: &Ctx, s: &Section) -> Result<StatusConfig, ConfigError> {
    s.check_table_keys(cx, "[status]", STATUS_KEYS)?;
    let Some((v, span)) = s.string(cx, "listen")? else {
        return Ok(StatusConfig::default());
    };
    let key = s.key("listen");
    let addr: SocketAddr = v.parse().map_err(|_| {
        cx.invalid(
            &key,
            Some(&span),
            format!("{v:?} is not an IP address with a port"),
            "Write it like listen = \"127.0.0.1:9520\" (a host name such as localhost is not accepted).",
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("{addr} is reachable from the network; the status endpoint must only listen on this device (127.0.0.1 or [::1])"),
            "Set listen = \"127.0.0.1:9520\". To read the status from another machine, use an SSH tunnel: ssh -L 9520:127.0.0.1:9520 <device>.",
        ));
    }
    if addr.port() == 0 {
        return Err(cx.invalid(
            &key,
            Some(&span),
            "port 0 is not a fixed port",
            "Set listen = \"127.0.0.1:9520\" (or another fixed port).",
        ));
    }
    Ok(StatusConfig { listen: addr })
}

fn parse_player(cx: &Ctx, s: &Section) -> Result<PlayerConfig, ConfigError> {
    s.check_table_keys(cx, "[player]", PLAYER_KEYS)?;
    let user_agent = match s.string(cx, "user_agent")? {
        Some((v, span)) => {
            if v.trim().is_empty() || v.chars().any(char::is_control) {
                return Err(cx.invalid(
                    &s.key("user_agent"),
                    Some(&span),
                    "must be non-empty text on one line",
                    "Set user_agent to one line of text, or remove it to use the browser's own.",
                ));
            }
            Some(v.to_owned())
        }
        None => None,
    };
    Ok(PlayerConfig { user_agent })
}

fn parse_display(cx: &Ctx, s: &Section) -> Result<DisplayConfig, ConfigError> {
    s.check_table_keys(cx, "[display]", DISPLAY_KEYS)?;
    let rotation = match s.int(cx, "rotation", 0..=270, "degrees", 90)? {
        None => None,
        Some(r @ (0 | 90 | 180 | 270)) => Some(r as u16),
        Some(r) => {
            let span = s.get("rotation").map(|v| v.span());
            return Err(cx.invalid(
                &s.key("rotation"),
                span.as_ref(),
                format!("{r} is not a quarter turn"),
                "Set rotation to 0, 90, 180 or 270 (degrees clockwise; 90 or 270 for a portrait screen).",
            ));
        }
    };
    let gpu = match s.string(cx, "gpu")? {
        None | Some(("auto", _)) => GpuMode::Auto,
        Some(("on", _)) => GpuMode::On,
        Some(("off", _)) => GpuMode::Off,
        Some((other, span)) => {
            return Err(cx.invalid(
                &s.key("gpu"),
                Some(&span),
                format!("\"{other}\" is not a GPU setting"),
                "Set gpu to \"auto\" (GPU compositing when the machine has a GPU), \"on\" or \"off\" (try \"off\" if the screen flickers or stays black with a GPU driver).",
            ));
        }
    };
    Ok(DisplayConfig { rotation, gpu })
}

fn parse_playlist(cx: &Ctx, root: &Section) -> Result<Vec<PlaylistItem>, ConfigError> {
    let Some(v) = root.get("playlist") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.invalid(
            "playlist",
            Some(&v.span()),
            format!(
                "must be a list of [[playlist]] entries, not {}",
                describe_type(v.get_ref())
            ),
            "Write each entry as a [[playlist]] block (double brackets) with workspace, report and seconds below it.",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let DeValue::Table(table) = item.get_ref() else {
            return Err(cx.invalid(
                &format!("playlist[{n}]"),
                Some(&item.span()),
                format!(
                    "must be a [[playlist]] entry, not {}",
                    describe_type(item.get_ref())
                ),
                "Write each entry as a [[playlist]] block with workspace, report and seconds below it.",
            ));
        };
        let s = Section {
            name: format!("playlist[{n}]"),
            title: format!("[[playlist]] number {n}"),
            table,
            span: item.span(),
        };
        out.push(parse_item(cx, &s)?);
    }
    Ok(out)
}

const MY_WORKSPACE_NAMES: &[&str] = &[
    "me",
    "my",
    "myorg",
    "myworkspace",
    "personal",
    "personalworkspace",
];

fn parse_item(cx: &Ctx, s: &Section) -> Result<PlaylistItem, ConfigError> {
    s.check_table_keys(cx, "[[playlist]]", PLAYLIST_KEYS)?;
    let (workspace, span) = s.required(
        cx,
        "workspace",
        "Add workspace = \"<workspace GUID>\": the part after /groups/ in the report's address (https://app.powerbi.com/groups/<workspace GUID>/reports/...).",
    )?;
    let squashed: String = workspace
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '\''))
        .collect::<String>()
        .to_lowercase();
    if MY_WORKSPACE_NAMES.contains(&squashed.as_str()) {
        return Err(cx.invalid(
            &s.key("workspace"),
            Some(&span),
            "content in \"My workspace\" cannot be reached through the Power BI REST API by a signage player",
            "Move the report to a shared workspace: create a workspace in Power BI, add the service account as Viewer, publish the report there, and use that workspace's GUID (the part after /groups/ in its address).",
        ));
    }
    if !is_guid(workspace) {
        return Err(cx.invalid(
            &s.key("workspace"),
            Some(&span),
            format!("{workspace:?} is not a workspace GUID"),
            "Copy the GUID after /groups/ in the report's address (https://app.powerbi.com/groups/<workspace GUID>/reports/...), or run `pbikiosk reports`.",
        ));
    }

    let report = s.string(cx, "report")?;
    let dashboard = s.string(cx, "dashboard")?;
    let content = match (report, dashboard) {
        (Some(_), Some((_, span))) => {
            return Err(cx.invalid(
                &s.key("dashboard"),
                Some(&span),
                "both report and dashboard are set; an entry shows exactly one of them",
                "Keep either report or dashboard in this entry, and add another [[playlist]] entry for the other.",
            ));
        }
        (None, None) => {
            return Err(cx.invalid(
                &s.key("report"),
                Some(&s.span),
                format!("{} has neither report nor dashboard", s.title),
                "Add report = \"<report GUID>\" (or dashboard = \"<dashboard GUID>\") to this entry; `pbikiosk reports` lists them.",
            ));
        }
        (Some((id, span)), None) => {
            check_content_id(cx, &s.key("report"), id, &span, "reports")?;
            Content::Report(id.to_owned())
        }
        (None, Some((id, span))) => {
            check_content_id(cx, &s.key("dashboard"), id, &span, "dashboards")?;
            Content::Dashboard(id.to_owned())
        }
    };

    let names_fix = "Use the page or bookmark name, not its title: a page name is the last part of the page's address (e.g. ReportSection2 in .../reports/<id>/ReportSection2).";
    let pages = s.names(cx, "pages", names_fix)?;
    let bookmarks = s.names(cx, "bookmarks", names_fix)?;
    if matches!(content, Content::Dashboard(_)) {
        for k in ["pages", "bookmarks"] {
            if let Some(v) = s.get(k) {
                return Err(cx.invalid(
                    &s.key(k),
                    Some(&v.span()),
                    format!("dashboards have no {k}; {k} only apply to reports"),
                    format!(
                        "Remove {k} from this entry, or show a report instead of the dashboard."
                    ),
                ));
            }
        }
    }

    let seconds = s
        .int(cx, "seconds", 5..=86400, "seconds", DEFAULT_SECONDS)?
        .unwrap_or(DEFAULT_SECONDS);
    let refresh_seconds = s.int(cx, "refresh_seconds", 15..=86400, "seconds", 900)?;

    Ok(PlaylistItem {
        workspace: workspace.to_owned(),
        content,
        pages: pages.unwrap_or_default(),
        bookmarks: bookmarks.unwrap_or_default(),
        // Both were range-checked above, so they fit.
        seconds: seconds as u32,
        refresh_seconds: refresh_seconds.map(|r| r as u32),
    })
}

fn check_content_id(
    cx: &Ctx,
    key: &str,
    id: &str,
    span: &Range<usize>,
    kind: &str,
) -> Result<(), ConfigError> {
    if is_guid(id) {
        return Ok(());
    }
    Err(cx.invalid(
        key,
        Some(span),
        format!("{id:?} is not a GUID (like 00000000-0000-0000-0000-000000000000)"),
        format!(
            "Copy the GUID after /{kind}/ in its address (https://app.powerbi.com/groups/<workspace>/{kind}/<GUID>), or run `pbikiosk reports`."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    const WS: &str = "11111111-2222-3333-4444-555555555555";
    const REPORT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const DASH: &str = "dddddddd-0000-1111-2222-333333333333";
    const APP: &str = "0f0f0f0f-1234-5678-9abc-def012345678";
    // Distinctive values so a leak is found by a plain `contains`.
    const CS: &str = "cs-Sup3rSecretValue";
    const PW: &str = "pw-Hunter2Correct";

    fn path() -> &'static Path {
        Path::new("/etc/pbikiosk/pbikiosk.toml")
    }

    fn no_sources() -> SecretSources {
        SecretSources::default()
    }

    /// [auth] with inline secrets: lines 1-6, so appended text starts at line 7.
    fn auth() -> String {
        format!(
            "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nusername = \"svc@contoso.onmicrosoft.com\"\nclient_secret = \"{CS}\"\npassword = \"{PW}\"\n"
        )
    }

    /// [auth] without secrets: lines 1-4.
    fn auth_no_secrets() -> String {
        format!(
            "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nusername = \"svc@contoso.onmicrosoft.com\"\n"
        )
    }

    fn item(extra: &str) -> String {
        format!("[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{REPORT}\"\n{extra}")
    }

    fn ok(text: &str) -> Config {
        parse(text, path(), &no_sources()).unwrap_or_else(|e| panic!("{e}\nfix: {}", e.fix()))
    }

    fn err(text: &str) -> ConfigError {
        parse(text, path(), &no_sources()).expect_err("should be refused")
    }

    /// Asserts an Invalid error with this key and line; returns (message, fix).
    fn invalid(e: ConfigError, key: &str, line: Option<usize>) -> (String, String) {
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

    fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

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
        assert_eq!(c.auth.client_secret.expose(), CS);
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
        assert_eq!(first.content, Content::Report(REPORT.to_owned()));
        assert_eq!(first.pages, ["ReportSection", "ReportSection2"]);
        assert_eq!(first.bookmarks, ["Bookmark123"]);
        assert_eq!(first.seconds, 45);
        assert_eq!(first.refresh_seconds, Some(900));
        assert_eq!(c.playlist[1].content, Content::Dashboard(DASH.to_owned()));
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
    fn scope_has_no_double_slash() {
        let c = ok(&format!(
            "{}[cloud]\nresource = \"https://analysis.windows.net/powerbi/api/\"\n",
            auth()
        ));
        assert_eq!(
            c.cloud.scope(),
            "https://analysis.windows.net/powerbi/api/.default"
        );
        let hand = CloudConfig {
            resource: "https://x.example/api/".to_owned(),
            ..CloudConfig::default()
        };
        assert_eq!(hand.scope(), "https://x.example/api/.default");
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
        assert!(matches!(e, ConfigError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("folder"), "{e}");

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
    fn unknown_keys_are_typos() {
        let text = auth().replace("tenant =", "tenat =");
        let (msg, fix) = invalid(err(&text), "auth.tenat", Some(2));
        assert!(msg.contains("unknown key `tenat` in [auth]"), "{msg}");
        assert!(fix.contains("Did you mean `tenant`?"), "{fix}");
        assert!(
            fix.contains("client_secret_file"),
            "valid keys listed: {fix}"
        );

        let text = format!("{}{}", auth(), item("sconds = 30\n"));
        let (_, fix) = invalid(err(&text), "playlist[1].sconds", Some(10));
        assert!(fix.contains("Did you mean `seconds`?"), "{fix}");
        assert!(fix.contains("refresh_seconds"), "{fix}");

        let text = format!("{}[cloud]\nauthorty = \"https://x.example\"\n", auth());
        let (_, fix) = invalid(err(&text), "cloud.authorty", Some(8));
        assert!(fix.contains("`authority`"), "{fix}");

        let (_, fix) = invalid(
            err(&format!("{}[status]\nport = 1\n", auth())),
            "status.port",
            Some(8),
        );
        assert!(fix.contains("listen"), "{fix}");
        invalid(
            err(&format!("{}[player]\nuseragent = \"x\"\n", auth())),
            "player.useragent",
            Some(8),
        );
    }

    #[test]
    fn unknown_key_reported_in_file_order() {
        // BTreeMap order would pick `aaa`; the installer expects the first one in the file.
        let text = format!("{}zzz = 1\naaa = 2\n", auth());
        invalid(err(&text), "auth.zzz", Some(7));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let text = format!("{}{}", auth(), item("seconds = \"30\"\n"));
        let (msg, fix) = invalid(err(&text), "playlist[1].seconds", Some(10));
        assert!(
            msg.contains("whole number") && msg.contains("not text"),
            "{msg}"
        );
        assert!(fix.contains("seconds = 30"), "{fix}");

        let text = format!("{}allow_federated = \"yes\"\n", auth());
        let (msg, _) = invalid(err(&text), "auth.allow_federated", Some(7));
        assert!(msg.contains("true or false"), "{msg}");

        let text = format!("{}{}", auth(), item("pages = \"ReportSection\"\n"));
        invalid(err(&text), "playlist[1].pages", Some(10));

        invalid(err("auth = 3\n"), "auth", Some(1));
        // Top-level keys must come before [auth], or they would belong to it.
        invalid(
            err(&format!("playlist = 3\n{}", auth())),
            "playlist",
            Some(1),
        );
        let text = format!("playlist = [\"x\"]\n{}", auth());
        invalid(err(&text), "playlist[1]", Some(1));
    }

    #[test]
    fn method_other_than_password_lists_supported() {
        let text = format!("{}method = \"certificate\"\n", auth());
        let (msg, fix) = invalid(err(&text), "auth.method", Some(7));
        assert!(
            msg.contains("\"certificate\"") && msg.contains("\"password\""),
            "{msg}"
        );
        assert!(fix.contains("method = \"password\""), "{fix}");
    }

    #[test]
    fn tenant_rules() {
        for bad in ["common", "Consumers"] {
            let text = auth().replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                &format!("tenant = \"{bad}\""),
            );
            let (msg, fix) = invalid(err(&text), "auth.tenant", Some(2));
            assert!(msg.contains("ROPC"), "{msg}");
            assert!(fix.contains("Directory (tenant) ID"), "{fix}");
        }
        let text = auth().replace(
            "tenant = \"contoso.onmicrosoft.com\"",
            "tenant = \"not a tenant\"",
        );
        invalid(err(&text), "auth.tenant", Some(2));
        for good in ["organizations", WS, "fabrikam.com"] {
            let text = auth().replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                &format!("tenant = \"{good}\""),
            );
            assert_eq!(ok(&text).auth.tenant, good);
        }
    }

    #[test]
    fn required_auth_keys() {
        let text = auth().replace(&format!("client_id = \"{APP}\"\n"), "");
        let (msg, fix) = invalid(err(&text), "auth.client_id", Some(1));
        assert!(msg.contains("missing"), "{msg}");
        assert!(fix.contains("Application (client) ID"), "{fix}");
        let text = auth().replace("tenant = \"contoso.onmicrosoft.com\"\n", "");
        invalid(err(&text), "auth.tenant", Some(1));
        let text = auth().replace("username = \"svc@contoso.onmicrosoft.com\"\n", "");
        invalid(err(&text), "auth.username", Some(1));
    }

    #[test]
    fn client_id_must_be_guid() {
        let text = auth().replace(APP, "my-app");
        let (msg, fix) = invalid(err(&text), "auth.client_id", Some(3));
        assert!(msg.contains("not a GUID"), "{msg}");
        assert!(fix.contains("Overview"), "{fix}");
    }

    #[test]
    fn username_must_look_like_upn() {
        for bad in ["svc", "svc@localhost", "@contoso.com", "svc pb@contoso.com"] {
            let text = auth().replace("svc@contoso.onmicrosoft.com", bad);
            invalid(err(&text), "auth.username", Some(4));
        }
    }

    #[test]
    fn permanent_retry_range() {
        for bad in [0, 1441, -5] {
            let text = format!("{}permanent_retry_minutes = {bad}\n", auth());
            let (msg, fix) = invalid(err(&text), "auth.permanent_retry_minutes", Some(7));
            assert!(msg.contains("1 to 1440"), "{msg}");
            assert!(fix.contains("from 1 to 1440"), "{fix}");
        }
        let huge = format!("{}permanent_retry_minutes = 0xFFFFFFFFFFFFFFFF\n", auth());
        invalid(err(&huge), "auth.permanent_retry_minutes", Some(7));
        for good in [1, 1440] {
            let text = format!("{}permanent_retry_minutes = {good}\n", auth());
            assert_eq!(ok(&text).auth.permanent_retry.as_secs(), good * 60);
        }
    }

    #[test]
    fn urls_need_https_except_on_loopback() {
        for bad in [
            "http://login.microsoftonline.com",
            "ftp://login.microsoftonline.com",
            "http://10.0.0.1:8080",
        ] {
            let text = format!("{}[cloud]\nauthority = \"{bad}\"\n", auth());
            let (msg, fix) = invalid(err(&text), "cloud.authority", Some(8));
            assert!(msg.contains("https://"), "{msg}");
            assert!(fix.contains("https://"), "{fix}");
        }
        for good in [
            "http://127.0.0.1:8080",
            "http://127.5.0.1",
            "http://[::1]:8080",
            "http://localhost:9000/sim",
        ] {
            let text = format!(
                "{}[cloud]\nauthority = \"{good}\"\napi = \"{good}\"\n",
                auth()
            );
            let c = ok(&text);
            assert!(
                c.cloud.authority.as_str().ends_with('/'),
                "{}",
                c.cloud.authority
            );
            assert!(c.cloud.api.as_str().ends_with('/'), "{}", c.cloud.api);
        }
        let c = ok(&format!(
            "{}[cloud]\napi = \"http://localhost:9000/sim\"\n",
            auth()
        ));
        assert_eq!(c.cloud.api.as_str(), "http://localhost:9000/sim/");

        for bad in [
            "not a url",
            "https://x.example/?a=b",
            "https://x.example/#f",
        ] {
            let text = format!("{}[cloud]\napi = \"{bad}\"\n", auth());
            invalid(err(&text), "cloud.api", Some(8));
        }
    }

    #[test]
    fn ca_file_must_exist() {
        let text = format!(
            "{}[cloud]\nca_file = \"/nonexistent/corp-ca.pem\"\n",
            auth()
        );
        let (msg, fix) = invalid(err(&text), "cloud.ca_file", Some(8));
        assert!(
            msg.contains("/nonexistent/corp-ca.pem") && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(fix.contains("CA certificate"), "{fix}");
    }

    #[test]
    fn status_listen_must_be_loopback() {
        for bad in ["0.0.0.0:9520", "192.168.1.10:9520", "[::]:9520"] {
            let text = format!("{}[status]\nlisten = \"{bad}\"\n", auth());
            let (msg, fix) = invalid(err(&text), "status.listen", Some(8));
            assert!(msg.contains("network"), "{msg}");
            assert!(fix.contains("127.0.0.1:9520"), "{fix}");
        }
        let text = format!("{}[status]\nlisten = \"localhost:9520\"\n", auth());
        let (_, fix) = invalid(err(&text), "status.listen", Some(8));
        assert!(fix.contains("127.0.0.1:9520"), "{fix}");
        let text = format!("{}[status]\nlisten = \"127.0.0.2:80\"\n", auth());
        assert_eq!(ok(&text).status.listen, "127.0.0.2:80".parse().unwrap());
    }

    #[test]
    fn display_gpu_setting() {
        assert_eq!(ok(&auth()).display.gpu, GpuMode::Auto);
        for (v, mode) in [
            ("auto", GpuMode::Auto),
            ("on", GpuMode::On),
            ("off", GpuMode::Off),
        ] {
            let text = format!("{}[display]\ngpu = \"{v}\"\n", auth());
            assert_eq!(ok(&text).display.gpu, mode, "{v}");
        }
        let text = format!("{}[display]\ngpu = \"yes\"\n", auth());
        let (msg, fix) = invalid(err(&text), "display.gpu", Some(8));
        assert!(msg.contains("\"yes\""), "{msg}");
        assert!(fix.contains("\"auto\"") && fix.contains("\"off\""), "{fix}");
        let text = format!("{}[display]\ngpu = true\n", auth());
        let e = err(&text).to_string();
        assert!(e.contains("display.gpu"), "{e}");
        // auto follows the machine; on and off do not.
        assert!(GpuMode::Auto.use_gpu(true));
        assert!(!GpuMode::Auto.use_gpu(false));
        assert!(GpuMode::On.use_gpu(false));
        assert!(!GpuMode::Off.use_gpu(true));
    }

    #[test]
    fn display_rotation_is_a_quarter_turn() {
        assert_eq!(ok(&auth()).display.rotation, None);
        let text = format!("{}[display]\nrotation = 90\n", auth());
        assert_eq!(ok(&text).display.rotation, Some(90));
        let text = format!("{}[display]\nrotation = 45\n", auth());
        let (msg, fix) = invalid(err(&text), "display.rotation", Some(8));
        assert!(msg.contains("quarter turn"), "{msg}");
        assert!(fix.contains("0, 90, 180 or 270"), "{fix}");
        let text = format!("{}[display]\nrotate = 90\n", auth());
        let (msg, _) = invalid(err(&text), "display.rotate", Some(8));
        assert!(
            msg.contains("unknown") || msg.contains("not a key"),
            "{msg}"
        );
    }

    #[test]
    fn player_user_agent_is_one_line() {
        let text = format!("{}[player]\nuser_agent = \"a\\nb\"\n", auth());
        invalid(err(&text), "player.user_agent", Some(8));
    }

    #[test]
    fn playlist_ids_must_be_guids() {
        // Second entry is the bad one: the key says [2] and the line is its own.
        let text = format!(
            "{}{}{}",
            auth(),
            item(""),
            item("").replace(REPORT, "Sales")
        );
        let (msg, fix) = invalid(err(&text), "playlist[2].report", Some(12));
        assert!(msg.contains("not a GUID"), "{msg}");
        assert!(fix.contains("/reports/"), "{fix}");

        let text = format!("{}{}", auth(), item("").replace(WS, "Sales team"));
        let (_, fix) = invalid(err(&text), "playlist[1].workspace", Some(8));
        assert!(fix.contains("/groups/"), "{fix}");

        let text = format!(
            "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"dash\"\n",
            auth()
        );
        let (_, fix) = invalid(err(&text), "playlist[1].dashboard", Some(9));
        assert!(fix.contains("/dashboards/"), "{fix}");
    }

    #[test]
    fn my_workspace_is_refused_specifically() {
        for name in ["me", "My workspace", "myorg", "MY_WORKSPACE"] {
            let text = format!("{}{}", auth(), item("").replace(WS, name));
            let (msg, fix) = invalid(err(&text), "playlist[1].workspace", Some(8));
            assert!(msg.contains("My workspace"), "{msg}");
            assert!(fix.contains("shared workspace"), "{fix}");
        }
    }

    #[test]
    fn exactly_one_of_report_and_dashboard() {
        let text = format!("{}{}", auth(), item(&format!("dashboard = \"{DASH}\"\n")));
        let (msg, _) = invalid(err(&text), "playlist[1].dashboard", Some(10));
        assert!(msg.contains("both"), "{msg}");

        let text = format!("{}[[playlist]]\nworkspace = \"{WS}\"\n", auth());
        let (msg, fix) = invalid(err(&text), "playlist[1].report", Some(7));
        assert!(msg.contains("neither"), "{msg}");
        assert!(fix.contains("dashboard ="), "{fix}");

        let text = format!("{}[[playlist]]\nreport = \"{REPORT}\"\n", auth());
        invalid(err(&text), "playlist[1].workspace", Some(7));
    }

    #[test]
    fn dashboards_have_no_pages_or_bookmarks() {
        for k in ["pages", "bookmarks"] {
            let text = format!(
                "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"{DASH}\"\n{k} = [\"X\"]\n",
                auth()
            );
            let (msg, fix) = invalid(err(&text), &format!("playlist[1].{k}"), Some(10));
            assert!(msg.contains("dashboards"), "{msg}");
            assert!(fix.contains(&format!("Remove {k}")), "{fix}");
        }
    }

    #[test]
    fn page_names_without_spaces() {
        let text = format!(
            "{}{}",
            auth(),
            item("pages = [\"ReportSection\", \"Sales overview\"]\n")
        );
        let (msg, fix) = invalid(err(&text), "playlist[1].pages", Some(10));
        assert!(msg.contains("Sales overview"), "{msg}");
        assert!(fix.contains("not its title"), "{fix}");
    }

    #[test]
    fn seconds_ranges() {
        for (extra, key) in [
            ("seconds = 4", "seconds"),
            ("seconds = 86401", "seconds"),
            ("refresh_seconds = 14", "refresh_seconds"),
            ("refresh_seconds = 86401", "refresh_seconds"),
        ] {
            let text = format!("{}{}", auth(), item(&format!("{extra}\n")));
            let (msg, _) = invalid(err(&text), &format!("playlist[1].{key}"), Some(10));
            assert!(msg.contains("out of range"), "{msg}");
        }
        let text = format!("{}{}", auth(), item("seconds = 5\nrefresh_seconds = 15\n"));
        let c = ok(&text);
        assert_eq!(
            (c.playlist[0].seconds, c.playlist[0].refresh_seconds),
            (5, Some(15))
        );
        let text = format!(
            "{}{}",
            auth(),
            item("seconds = 86400\nrefresh_seconds = 86400\n")
        );
        assert_eq!(ok(&text).playlist[0].seconds, 86400);
    }

    // ---- secrets ----

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inline_and_file_together_are_refused() {
        let text = format!("{}password_file = \"/etc/pbikiosk/password\"\n", auth());
        let (msg, fix) = invalid(err(&text), "auth.password_file", Some(7));
        assert!(
            msg.contains("auth.password") && msg.contains("both"),
            "{msg}"
        );
        assert!(fix.contains("only one"), "{fix}");
    }

    #[test]
    fn secret_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        fs::create_dir(&creds).unwrap();
        // systemd's files: no mode check even when readable by others.
        write(&creds, "client-secret", "cs-from-creds\n", 0o644);
        write(&creds, "password", "pw-from-creds\r\n", 0o644);
        write(dir.path(), "pw", "pw-from-file\n", 0o600);
        let all = SecretSources {
            env: env(&[
                ("PBIKIOSK_CLIENT_SECRET", "cs-from-env"),
                ("PBIKIOSK_PASSWORD", "pw-from-env"),
            ]),
            credentials_dir: Some(creds.clone()),
        };
        let cfg = dir.path().join("pbikiosk.toml");

        // Config (inline or file) beats env and credentials.
        let text = format!(
            "{}client_secret = \"cs-inline\"\npassword_file = \"pw\"\n",
            auth_no_secrets()
        );
        let c = parse(&text, &cfg, &all).unwrap();
        assert_eq!(c.auth.client_secret.expose(), "cs-inline");
        assert_eq!(c.auth.password.expose(), "pw-from-file");

        // Env beats credentials.
        let c = parse(&auth_no_secrets(), &cfg, &all).unwrap();
        assert_eq!(c.auth.client_secret.expose(), "cs-from-env");
        assert_eq!(c.auth.password.expose(), "pw-from-env");

        // Credentials last; one \n or \r\n stripped.
        let only_creds = SecretSources {
            env: HashMap::new(),
            credentials_dir: Some(creds),
        };
        let c = parse(&auth_no_secrets(), &cfg, &only_creds).unwrap();
        assert_eq!(c.auth.client_secret.expose(), "cs-from-creds");
        assert_eq!(c.auth.password.expose(), "pw-from-creds");
    }

    #[test]
    fn empty_env_secret_is_refused() {
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "x"), ("PBIKIOSK_PASSWORD", "")]),
            credentials_dir: None,
        };
        let e = parse(&auth_no_secrets(), path(), &s).unwrap_err();
        let (msg, _) = invalid(e, "auth.password", None);
        assert!(msg.contains("PBIKIOSK_PASSWORD"), "{msg}");
    }

    #[test]
    fn missing_secret_names_all_four_ways() {
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "x")]),
            // A credentials folder without our files falls through to the error.
            credentials_dir: Some(PathBuf::from("/nonexistent-creds")),
        };
        let e = parse(&auth_no_secrets(), path(), &s).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password", Some(1));
        assert!(msg.contains("password"), "{msg}");
        for way in [
            "password_file =",
            "password =",
            "PBIKIOSK_PASSWORD",
            "LoadCredential=password",
        ] {
            assert!(fix.contains(way), "{way} missing in: {fix}");
        }
        let e = parse(&auth_no_secrets(), path(), &no_sources()).unwrap_err();
        let (_, fix) = invalid(e, "auth.client_secret", Some(1));
        for way in [
            "client_secret_file =",
            "client_secret =",
            "PBIKIOSK_CLIENT_SECRET",
            "LoadCredential=client-secret",
        ] {
            assert!(fix.contains(way), "{way} missing in: {fix}");
        }
    }

    #[test]
    fn secret_file_relative_to_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("secrets")).unwrap();
        write(&dir.path().join("secrets"), "cs", "abc", 0o600);
        let text = format!(
            "{}client_secret_file = \"secrets/cs\"\npassword = \"p\"\n",
            auth_no_secrets()
        );
        let c = parse(&text, &dir.path().join("pbikiosk.toml"), &no_sources()).unwrap();
        assert_eq!(c.auth.client_secret.expose(), "abc");
    }

    fn with_pw_file(dir: &Path, content: &str, mode: u32) -> Result<Config, ConfigError> {
        let file = write(dir, "password", content, mode);
        let text = format!(
            "{}client_secret = \"c\"\npassword_file = \"{}\"\n",
            auth_no_secrets(),
            file.display()
        );
        parse(&text, &dir.join("pbikiosk.toml"), &no_sources())
    }

    #[test]
    fn secret_file_permissions() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o640, 0o400] {
            let c =
                with_pw_file(dir.path(), "pw", mode).unwrap_or_else(|e| panic!("{mode:o}: {e}"));
            assert_eq!(c.auth.password.expose(), "pw");
        }
        for mode in [0o644, 0o604, 0o602, 0o666] {
            let e = with_pw_file(dir.path(), "pw", mode).unwrap_err();
            let file = dir.path().join("password");
            let (msg, fix) = invalid(e, "auth.password_file", Some(6));
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(
                fix.contains(&format!("chmod o-rwx {}", file.display())),
                "{fix}"
            );
            assert!(
                fix.contains("0600")
                    && fix.contains("0640")
                    && fix.contains("root")
                    && fix.contains("pbikiosk"),
                "{fix}"
            );
        }
    }

    #[test]
    fn secret_file_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let e = with_pw_file(dir.path(), "\n", 0o600).unwrap_err();
        let (msg, _) = invalid(e, "auth.password_file", Some(6));
        assert!(msg.contains("empty"), "{msg}");

        let text = format!(
            "{}client_secret = \"c\"\npassword_file = \"nope\"\n",
            auth_no_secrets()
        );
        let e = parse(&text, &dir.path().join("pbikiosk.toml"), &no_sources()).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password_file", Some(6));
        let expected = dir.path().join("nope").display().to_string();
        assert!(
            msg.contains(&expected) && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(fix.contains("0640"), "{fix}");
    }

    #[test]
    fn one_trailing_newline_is_stripped_and_more_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            (" pw \n", " pw "),
        ] {
            let c = with_pw_file(dir.path(), content, 0o600).unwrap();
            assert_eq!(c.auth.password.expose(), expected, "{content:?}");
        }
        // A second line would be sent as part of the password: refused, not stripped.
        for content in ["pw\n\n", "pw\nsecond", "p\rw"] {
            let e = with_pw_file(dir.path(), content, 0o600).unwrap_err();
            assert!(e.to_string().contains("more than one line"), "{e}");
            assert!(!e.to_string().contains("second"));
        }
    }

    #[test]
    fn config_file_with_inline_secret_must_not_be_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "pbikiosk.toml", &auth(), 0o644);
        let e = load(&cfg, &no_sources()).unwrap_err();
        let (msg, fix) = invalid(e, "auth.client_secret", Some(5));
        assert!(msg.contains("0644"), "{msg}");
        assert!(fix.contains("client_secret_file"), "{fix}");
        assert!(
            fix.contains(&format!("chmod o-rwx {}", cfg.display())),
            "{fix}"
        );

        fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            load(&cfg, &no_sources()).unwrap().auth.password.expose(),
            PW
        );

        // Without inline secrets a readable config is fine.
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "c"), ("PBIKIOSK_PASSWORD", "p")]),
            credentials_dir: None,
        };
        let cfg = write(dir.path(), "open.toml", &auth_no_secrets(), 0o644);
        assert!(load(&cfg, &s).is_ok());
    }

    #[test]
    fn secrets_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let mut errors = Vec::new();
        // World-readable config with inline secrets.
        let cfg = write(dir.path(), "a.toml", &auth(), 0o644);
        errors.push(load(&cfg, &no_sources()).unwrap_err());
        // Inline and file together.
        errors.push(err(&format!("{}password_file = \"x\"\n", auth())));
        // Unquoted secret: a syntax error must not quote the line.
        errors.push(err(
            &auth_no_secrets().replace("[auth]\n", &format!("[auth]\npassword = {PW}\n"))
        ));
        errors.push(err(
            &auth_no_secrets().replace("[auth]\n", &format!("[auth]\npassword = \"{PW}\n"))
        ));
        // Typo'd key holding the secret.
        errors.push(err(&auth().replace("password =", "pasword =")));
        // Credentials in a URL.
        errors.push(err(&format!(
            "{}[cloud]\nauthority = \"https://u:{PW}@login.example\"\n",
            auth()
        )));
        errors.push(err(&format!(
            "{}[cloud]\nauthority = \"http://u:{PW}@evil.example\"\n",
            auth()
        )));
        // World-readable secret file.
        let f = write(dir.path(), "pw", PW, 0o644);
        let text = format!(
            "{}client_secret = \"{CS}\"\npassword_file = \"{}\"\n",
            auth_no_secrets(),
            f.display()
        );
        errors.push(parse(&text, path(), &no_sources()).unwrap_err());
        // Secrets in the environment, other error later.
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", CS), ("PBIKIOSK_PASSWORD", PW)]),
            credentials_dir: None,
        };
        errors.push(
            parse(
                &format!("{}{}", auth_no_secrets(), item("seconds = 1\n")),
                path(),
                &s,
            )
            .unwrap_err(),
        );
        assert!(!format!("{s:?}").contains(PW), "SecretSources Debug leaks");

        assert_eq!(errors.len(), 9);
        for e in &errors {
            let texts = [
                e.to_string(),
                format!("{e:?}"),
                e.fix(),
                format!("{:?}", e.to_problem()),
            ];
            for t in texts {
                assert!(!t.contains(PW) && !t.contains(CS), "leak in: {t}");
            }
        }

        let c = ok(&auth());
        let shown = format!("{c:?} {:?} {:?}", c.auth, c.clone());
        assert!(!shown.contains(PW) && !shown.contains(CS), "{shown}");
        assert!(shown.contains("[redacted]"));
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
