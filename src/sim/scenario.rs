//! What the simulated tenant contains and how it misbehaves.
//!
//! A scenario is TOML (see `tests/fixtures/sim-scenario.toml` for a complete example):
//!
//! ```toml
//! resource = "https://analysis.windows.net/powerbi/api"  # scope prefix Power BI tokens need
//! embed_host = "https://app.powerbi.com"                  # host of embedUrl / webUrl
//! token_lifetime_seconds = 3599                           # access token lifetime (expires_in)
//! lockout_threshold = 10                                  # wrong passwords before 50053; 0 = never
//!
//! [[tenant]]
//! id = "8a3c1f52-..."                         # tenant GUID
//! name = "Contoso Demo"
//! domains = ["contoso-demo.onmicrosoft.com"]  # managed (cloud) domains
//! federated_domains = ["fabrikam-demo.com"]   # domains that sign in at their own IdP
//! allow_cloud_password_validation = false     # true: ROPC works for federated accounts too
//!
//! [[app]]
//! client_id = "6d3f8a52-..."
//! name = "pbikiosk"
//! secret = "..."
//! secret_expired = false    # true → AADSTS7000222
//! consented = true          # false → AADSTS65001 for user grants
//! workspaces = []           # what a client_credentials (service principal) token sees
//! certificates = []         # uploaded certificates (PEM, public part): an assertion signed
//!                           # by one of their keys stands in for the secret (else 700027)
//! powerbi_allowed = true    # false → Power BI 401s the app (tenant setting for service principals off)
//!
//! [[account]]
//! username = "kiosk@contoso-demo.onmicrosoft.com"
//! password = "..."
//! state = "ok"   # ok | mfa | locked | disabled | password_expired | conditional_access | no_licence
//! workspaces = ["Sales", "Operations"]   # ids or names of workspaces the account is a member of
//!
//! [[workspace]]
//! id = "..."
//! name = "Sales"
//! capacity = "premium"     # shared | premium | ppu
//! [[workspace.report]]
//! id = "..."
//! name = "Sales Overview"
//! dataset_id = "..."
//! pages = ["Summary", { name = "ReportSection2", display_name = "By Region" }]
//! mobile_layout = false     # true: the pages have a mobile (portrait) layout
//! rls = false               # true: embed tokens for its dataset need an effective identity
//! bookmarks = [{ name = "Bookmark7c1e...", display_name = "North", page = "ReportSection2" }]
//!                           # saved bookmarks; `page` (optional) is the page it opens
//! [[workspace.dashboard]]
//! id = "..."
//! name = "Executive Dashboard"
//!
//! [faults]
//! latency_ms = 0
//! token_outage = false                     # token endpoint answers 503 temporarily_unavailable
//! outage_retry_after_seconds = 30          # optional Retry-After on those 503s
//! token_throttle = { count = 3, retry_after_seconds = 10 }  # next 3 token answers are 429
//! api_throttle = { count = 1, retry_after_seconds = 5 }     # next Power BI answer is 429
//! userrealm_unavailable = false            # userrealm answers 404 (national clouds)
//! token_hang = false                       # token requests get no answer (client timeouts)
//! forge_page_messages = false              # the embed page posts forged player messages (IPC)
//! offer_download = false                   # the embed page clicks a download link (/_sim/download)
//!
//! [device_code]
//! interval_seconds = 5      # 0: never answer slow_down
//! expires_in_seconds = 900
//!
//! [demo]                    # whom `SimHandle::config_snippet` signs in by default
//! username = "kiosk@contoso-demo.onmicrosoft.com"
//! client_id = "6d3f8a52-..."
//! tenant = "contoso-demo.onmicrosoft.com"    # optional; default: the account's domain
//! password = "..."                            # optional: write this instead of the real one
//! bookmarks = false                            # true: the playlist rotates through bookmarks
//! client_certificate = "..."   # optional: PEM certificate + key; the config names a file with
//!                              # it (`SimHandle::demo_client_certificate`) instead of the secret
//! service_principal = false                    # true: sign in as the app, with embed tokens
//! ```
//!
//! Built-in variants for the demo's problem previews ([`Scenario::named`]): see [`NAMES`].

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::ids;

mod arg;
pub mod builtin_ids;
mod catalogue;

pub use arg::ScenarioArgError;
pub use catalogue::NAMES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The Power BI resource: the scope must contain `{resource}/.default`.
    #[serde(default = "default_resource")]
    pub(crate) resource: String,
    /// Scheme and host of `embedUrl` and `webUrl`.
    #[serde(default = "default_embed_host")]
    pub embed_host: String,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// Wrong passwords in a row after which an account is locked (Entra smart lockout
    /// defaults to 10). 0 disables it.
    #[serde(default = "default_lockout")]
    pub lockout_threshold: u32,
    #[serde(default, rename = "tenant")]
    pub(crate) tenants: Vec<Tenant>,
    #[serde(default, rename = "app")]
    pub apps: Vec<App>,
    #[serde(default, rename = "account")]
    pub accounts: Vec<Account>,
    #[serde(default, rename = "workspace")]
    pub(crate) workspaces: Vec<Workspace>,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub device_code: DeviceCodeSettings,
    #[serde(default)]
    pub demo: Option<DemoTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    #[serde(default)]
    pub(crate) federated_domains: Vec<String>,
    #[serde(default)]
    pub(crate) allow_cloud_password_validation: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub(crate) client_id: String,
    #[serde(default = "default_app_name")]
    pub(crate) name: String,
    pub secret: String,
    #[serde(default)]
    pub(crate) secret_expired: bool,
    #[serde(default = "yes")]
    pub(crate) consented: bool,
    /// Workspaces (ids or names) a client_credentials token of this app may read.
    #[serde(default)]
    pub(crate) workspaces: Vec<String>,
    /// Uploaded certificates (PEM, public part only), as under "Certificates & secrets": a
    /// client assertion signed by one of their keys authenticates the app.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// false: the tenant setting "Allow service principals to use Power BI APIs" leaves this
    /// app out, and Power BI answers its tokens 401 PowerBINotAuthorizedException.
    #[serde(default = "yes")]
    pub(crate) powerbi_allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub(crate) username: String,
    pub password: String,
    #[serde(default)]
    pub(crate) state: AccountState,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
    /// Workspace ids or names the account is a member of.
    #[serde(default)]
    pub workspaces: Vec<String>,
}

/// What stands between an account and a token (or Power BI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    #[default]
    Ok,
    Mfa,
    Locked,
    Disabled,
    PasswordExpired,
    ConditionalAccess,
    /// Signs in fine; Power BI answers 401 to everything.
    #[serde(alias = "no_license")]
    NoLicence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workspace {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) capacity: Capacity,
    #[serde(default)]
    pub(crate) read_only: bool,
    #[serde(default, rename = "report")]
    pub(crate) reports: Vec<Report>,
    #[serde(default, rename = "dashboard")]
    pub(crate) dashboards: Vec<Dashboard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Capacity {
    #[default]
    Shared,
    Premium,
    Ppu,
}

impl Capacity {
    /// Premium and Premium Per User workspaces both run on dedicated capacity.
    pub(crate) fn is_dedicated(self) -> bool {
        !matches!(self, Capacity::Shared)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) dataset_id: String,
    #[serde(default)]
    pub(crate) pages: Vec<PageSpec>,
    /// Its pages have a mobile (portrait) layout, which the embed page draws in one column.
    #[serde(default)]
    pub(crate) mobile_layout: bool,
    /// Bookmarks saved with the report, in the order of its bookmarks pane.
    #[serde(default)]
    pub(crate) bookmarks: Vec<Bookmark>,
    /// The dataset has row-level security: an embed token for it needs an effective identity.
    #[serde(default)]
    pub(crate) rls: bool,
}

/// A bookmark saved with a report. Applying it shows its page (when it names one) with the
/// bookmark's accent, so a screenshot tells bookmarks apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bookmark {
    /// What the API and the playlist use, e.g. `Bookmark` + 20 hex digits.
    pub(crate) name: String,
    pub(crate) display_name: String,
    /// The page name (`ReportSection…`) the bookmark opens; none: it keeps the page.
    #[serde(default)]
    pub(crate) page: Option<String>,
}

/// A page: just its display name (the internal name is derived like Power BI's
/// `ReportSection…`), or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum PageSpec {
    DisplayName(String),
    Full { name: String, display_name: String },
}

/// A page with both names resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Page {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) order: usize,
}

impl Report {
    pub(crate) fn pages(&self) -> Vec<Page> {
        self.pages
            .iter()
            .enumerate()
            .map(|(order, p)| match p {
                PageSpec::Full { name, display_name } => Page {
                    name: name.clone(),
                    display_name: display_name.clone(),
                    order,
                },
                PageSpec::DisplayName(display_name) => Page {
                    // Power BI names the first page "ReportSection" and later ones
                    // "ReportSection" + 20 hex digits; derived stably from report and title.
                    name: if order == 0 {
                        "ReportSection".to_owned()
                    } else {
                        let h = ids::stable_hash(&format!("{}/{display_name}", self.id));
                        format!("ReportSection{:016x}{:04x}", h, order)
                    },
                    display_name: display_name.clone(),
                    order,
                },
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dashboard {
    pub(crate) id: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub(crate) token_outage: bool,
    #[serde(default)]
    pub(crate) outage_retry_after_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) token_throttle: Option<Throttle>,
    #[serde(default)]
    pub(crate) api_throttle: Option<Throttle>,
    #[serde(default)]
    pub userrealm_unavailable: bool,
    /// Token requests get no answer for [`TOKEN_HANG`] (longer than any client waits): a
    /// timeout, as from a black-holed network path.
    #[serde(default)]
    pub(crate) token_hang: bool,
    /// How the embed host (the front door the web view reaches as `app.powerbi.com`) fails.
    #[serde(default)]
    pub(crate) embed_fault: EmbedFault,
    /// The embed page plays a hostile report (a custom visual's script): it posts forged
    /// player messages through every IPC path a frame can find, over and over.
    #[serde(default)]
    pub(crate) forge_page_messages: bool,
    /// The embed page starts a file download, as a report's "export data" or a custom visual
    /// could: the player must refuse it.
    #[serde(default)]
    pub(crate) offer_download: bool,
    /// Token answers carry this `expires_in` (any JSON: `0`, `9223372036854775808`, `"abc"`)
    /// instead of the lifetime, as a broken or hostile endpoint would. The token itself still
    /// lives `token_lifetime_seconds`.
    #[serde(default)]
    pub(crate) expires_in_override: Option<serde_json::Value>,
}

/// A failure of the embed host as the web view meets it on a company network: through the
/// proxy it was given, which is where firewalls, proxies and TLS inspection show themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedFault {
    /// The host works.
    #[default]
    None,
    /// The proxy answers the CONNECT with `502 Bad Gateway` (upstream refused the connection).
    Refuse,
    /// The CONNECT is accepted, then the connection is reset.
    Reset,
    /// The CONNECT is accepted, then nothing is ever answered (a black-holed path).
    Hang,
    /// TLS works, but the host answers every request with HTTP 502 and an HTML error page.
    #[serde(rename = "http_502")]
    Http502,
    /// The host presents a certificate the web view does not trust (a TLS-inspecting proxy).
    Untrusted,
    /// The proxy could not resolve the host's name (Squid's `ERR_DNS_FAIL`).
    Dns,
}

impl EmbedFault {
    pub const ALL: [EmbedFault; 7] = [
        Self::None,
        Self::Refuse,
        Self::Reset,
        Self::Hang,
        Self::Http502,
        Self::Untrusted,
        Self::Dns,
    ];

    /// The name used in scenario files and controls, e.g. `http_502`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Refuse => "refuse",
            Self::Reset => "reset",
            Self::Hang => "hang",
            Self::Http502 => "http_502",
            Self::Untrusted => "untrusted",
            Self::Dns => "dns",
        }
    }
}

/// How long a hung token request is held before the simulator gives up on it.
pub(crate) const TOKEN_HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// The next `count` answers are HTTP 429 with `Retry-After: retry_after_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Throttle {
    pub(crate) count: u32,
    #[serde(default = "default_retry_after")]
    pub(crate) retry_after_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCodeSettings {
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    #[serde(default = "default_device_expiry")]
    pub expires_in_seconds: u64,
    /// The demo account approves a pending code by itself this long after it was issued
    /// (`pbikiosk demo --scenario device-code`); `None`: only `/_sim/control` approves.
    #[serde(default)]
    pub auto_approve_seconds: Option<u64>,
}

impl Default for DeviceCodeSettings {
    fn default() -> Self {
        Self {
            interval_seconds: default_interval(),
            expires_in_seconds: default_device_expiry(),
            auto_approve_seconds: None,
        }
    }
}

/// Whom the generated config signs in (see [`super::SimHandle::config_snippet`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoTarget {
    pub username: String,
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) tenant: Option<String>,
    /// Written instead of the account's password (the `wrong-password` preview).
    #[serde(default)]
    pub password: Option<String>,
    /// The playlist lists each report's bookmarks, so it rotates through them rather than
    /// through the pages (the `bookmarks` preview).
    #[serde(default)]
    pub(crate) bookmarks: bool,
    /// The app signs in with this certificate and private key (PEM; a test credential valid
    /// only here) instead of its client secret (the `certificate` previews).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// The snippet signs in with `method = "device_code"` (no secret, no account).
    #[serde(default)]
    pub device_code: bool,
    /// The snippet signs in as the app (`method = "service_principal"`) and lists the app's
    /// reports.
    #[serde(default)]
    pub(crate) service_principal: bool,
    /// The playlist also lists the dashboards of those workspaces, after their reports.
    #[serde(default)]
    pub(crate) dashboards: bool,
}

fn default_resource() -> String {
    "https://analysis.windows.net/powerbi/api".to_owned()
}
fn default_embed_host() -> String {
    "https://app.powerbi.com".to_owned()
}
fn default_token_lifetime() -> u64 {
    3599
}
fn default_lockout() -> u32 {
    10
}
fn default_app_name() -> String {
    "pbikiosk".to_owned()
}
fn yes() -> bool {
    true
}
fn default_retry_after() -> u64 {
    5
}
fn default_interval() -> u64 {
    5
}
fn default_device_expiry() -> u64 {
    900
}

/// Why a scenario was refused. Each message names the offending key so it can be fixed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    #[error("scenario is not valid TOML: {0}")]
    Toml(String),
    #[error("scenario {path}: {message}")]
    Invalid { path: String, message: String },
}

/// A report's bookmarks: names a playlist can list (unique, no spaces), pages the report has.
fn validate_bookmarks(report_path: &str, r: &Report) -> Result<(), ScenarioError> {
    let pages: HashSet<String> = r.pages().into_iter().map(|p| p.name).collect();
    let mut names = HashSet::new();
    for (k, b) in r.bookmarks.iter().enumerate() {
        let path = format!("{report_path}.bookmarks[{k}]");
        if b.name.is_empty() || b.name.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{path}.name"),
                "must be a name without spaces, e.g. Bookmark3f2a9c",
            ));
        }
        if !names.insert(b.name.as_str()) {
            return Err(invalid(
                format!("{path}.name"),
                format!("duplicate bookmark name '{}'", b.name),
            ));
        }
        if let Some(page) = &b.page
            && !pages.contains(page)
        {
            return Err(invalid(
                format!("{path}.page"),
                format!("'{page}' is not a page name of this report (ReportSection…)"),
            ));
        }
    }
    Ok(())
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

impl Scenario {
    /// Parse and validate a TOML scenario.
    pub(crate) fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Check references and ids, so that a typo fails at start rather than as a puzzling 404.
    pub(crate) fn validate(&self) -> Result<(), ScenarioError> {
        if self.token_lifetime_seconds == 0 {
            return Err(invalid("token_lifetime_seconds", "must be at least 1"));
        }
        if !self.resource.starts_with("https://") || self.resource.ends_with('/') {
            return Err(invalid(
                "resource",
                "must be an https:// URL without a trailing slash",
            ));
        }
        let mut domains = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !ids::is_guid(&t.id) {
                return Err(invalid(
                    format!("tenant[{i}].id"),
                    format!("'{}' is not a GUID", t.id),
                ));
            }
            for d in t.domains.iter().chain(&t.federated_domains) {
                if !domains.insert(d.to_ascii_lowercase()) {
                    return Err(invalid(
                        format!("tenant[{i}]"),
                        format!("domain '{d}' is listed twice"),
                    ));
                }
            }
        }
        let mut ws_ids = HashSet::new();
        let mut item_ids = HashSet::new();
        for (i, w) in self.workspaces.iter().enumerate() {
            if !ids::is_guid(&w.id) {
                return Err(invalid(
                    format!("workspace[{i}].id"),
                    format!("'{}' is not a GUID", w.id),
                ));
            }
            if !ws_ids.insert(w.id.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("workspace[{i}].id"),
                    "duplicate workspace id",
                ));
            }
            for (j, r) in w.reports.iter().enumerate() {
                let path = format!("workspace[{i}].report[{j}]");
                if !ids::is_guid(&r.id) || !ids::is_guid(&r.dataset_id) {
                    return Err(invalid(path, "id and dataset_id must be GUIDs"));
                }
                if !item_ids.insert(r.id.to_ascii_lowercase()) {
                    return Err(invalid(path, format!("duplicate id '{}'", r.id)));
                }
                validate_bookmarks(&path, r)?;
            }
            for (j, d) in w.dashboards.iter().enumerate() {
                let path = format!("workspace[{i}].dashboard[{j}]");
                if !ids::is_guid(&d.id) {
                    return Err(invalid(path, "id must be a GUID"));
                }
                if !item_ids.insert(d.id.to_ascii_lowercase()) {
                    return Err(invalid(path, format!("duplicate id '{}'", d.id)));
                }
            }
        }
        let mut client_ids = HashSet::new();
        for (i, a) in self.apps.iter().enumerate() {
            if !client_ids.insert(a.client_id.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("app[{i}].client_id"),
                    "duplicate client_id",
                ));
            }
            for w in &a.workspaces {
                if self.workspace(w).is_none() {
                    return Err(invalid(
                        format!("app[{i}].workspaces"),
                        format!("unknown workspace '{w}'"),
                    ));
                }
            }
        }
        let mut users = HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let path = format!("account[{i}]");
            if !users.insert(a.username.to_ascii_lowercase()) {
                return Err(invalid(
                    path,
                    format!("duplicate username '{}'", a.username),
                ));
            }
            if self.tenant_of_user(&a.username).is_none() {
                return Err(invalid(
                    format!("{path}.username"),
                    format!(
                        "'{}' is not in any tenant's domains or federated_domains",
                        a.username
                    ),
                ));
            }
            for w in &a.workspaces {
                if self.workspace(w).is_none() {
                    return Err(invalid(
                        format!("{path}.workspaces"),
                        format!("unknown workspace '{w}'"),
                    ));
                }
            }
        }
        if let Some(d) = &self.demo {
            if self.account(&d.username).is_none() {
                return Err(invalid(
                    "demo.username",
                    format!("no account '{}'", d.username),
                ));
            }
            if self.app(&d.client_id).is_none() {
                return Err(invalid(
                    "demo.client_id",
                    format!("no app '{}'", d.client_id),
                ));
            }
        }
        Ok(())
    }

    /// The tenant for a path segment: its GUID or one of its domains (case-insensitive).
    pub(crate) fn tenant(&self, key: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(key)
                || t.domains
                    .iter()
                    .chain(&t.federated_domains)
                    .any(|d| d.eq_ignore_ascii_case(key))
        })
    }

    /// The tenant owning the domain of `username`.
    pub(crate) fn tenant_of_user(&self, username: &str) -> Option<&Tenant> {
        let domain = username.rsplit_once('@')?.1;
        self.tenant(domain)
            .filter(|t| !t.id.eq_ignore_ascii_case(domain))
    }

    /// Whether `username`'s domain is federated (and with which tenant).
    pub(crate) fn is_federated(&self, username: &str) -> bool {
        let Some((_, domain)) = username.rsplit_once('@') else {
            return false;
        };
        self.tenants.iter().any(|t| {
            t.federated_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        })
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub(crate) fn account(&self, username: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.username.eq_ignore_ascii_case(username))
    }

    pub(crate) fn account_mut(&mut self, username: &str) -> Option<&mut Account> {
        self.accounts
            .iter_mut()
            .find(|a| a.username.eq_ignore_ascii_case(username))
    }

    /// The workspaces that `keys` (an account's or app's `workspaces`) name, in scenario order:
    /// a key names a workspace by its id in any case, or by its exact name.
    pub(crate) fn workspaces_named<'a>(
        &'a self,
        keys: &'a [String],
    ) -> impl Iterator<Item = &'a Workspace> + 'a {
        self.workspaces.iter().filter(move |w| {
            keys.iter()
                .any(|k| k.eq_ignore_ascii_case(&w.id) || *k == w.name)
        })
    }

    /// A workspace by id or name.
    pub(crate) fn workspace(&self, key: &str) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(key))
            .or_else(|| self.workspaces.iter().find(|w| w.name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_are_stable_and_look_like_power_bi() {
        let s = Scenario::builtin();
        let r = &s.workspaces[0].reports[0];
        let a = r.pages();
        assert_eq!(a[0].name, "ReportSection");
        assert!(
            a[1].name.starts_with("ReportSection") && a[1].name.len() == 33,
            "{}",
            a[1].name
        );
        assert_eq!(a, r.pages(), "same names on every call");
        assert_ne!(a[1].name, a[2].name);
        assert_eq!(a[2].order, 2);
    }

    #[test]
    fn bad_bookmarks_are_refused_naming_the_field() {
        let with = |bookmarks: &str| {
            format!(
                "[[workspace]]\nid = \"3f2a9b1c-6d4e-4f8a-b1c2-d3e4f5a6b7c8\"\nname = \"W\"\n\
                 [[workspace.report]]\nid = \"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\"\n\
                 name = \"R\"\ndataset_id = \"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e\"\n\
                 pages = [\"One\", {{ name = \"ReportSection2\", display_name = \"Two\" }}]\n\
                 bookmarks = [{bookmarks}]\n"
            )
        };
        let ok = Scenario::from_toml(&with(
            r#"{ name = "Bm1", display_name = "A", page = "ReportSection2" }, { name = "Bm2", display_name = "B" }"#,
        ))
        .unwrap();
        assert_eq!(ok.workspaces[0].reports[0].bookmarks.len(), 2);
        let e = Scenario::from_toml(&with(
            r#"{ name = "Bm1", display_name = "A" }, { name = "Bm1", display_name = "B" }"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario workspace[0].report[0].bookmarks[1].name: duplicate bookmark name 'Bm1'"
        );
        let e = Scenario::from_toml(&with(r#"{ name = "Bm 1", display_name = "A" }"#)).unwrap_err();
        assert!(e.to_string().contains("bookmarks[0].name"), "{e}");
        let e = Scenario::from_toml(&with(
            r#"{ name = "Bm1", display_name = "A", page = "ReportSection9" }"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario workspace[0].report[0].bookmarks[0].page: 'ReportSection9' is not a page name of this report (ReportSection…)"
        );
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../tests/fixtures/sim-scenario.toml");
        let s = Scenario::from_toml(text).unwrap();
        assert!(!s.accounts.is_empty());
        assert_eq!(s.faults.token_throttle.map(|t| t.count), Some(2));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let e = Scenario::from_toml("token_lifetime_seconds = \"soon\"").unwrap_err();
        assert!(
            matches!(&e, ScenarioError::Toml(m) if m.contains("token_lifetime_seconds")),
            "{e}"
        );
        let e = Scenario::from_toml("tokn_lifetime_seconds = 5").unwrap_err();
        assert!(e.to_string().contains("tokn_lifetime_seconds"), "{e}");
        let e = Scenario::from_toml("[[tenant]]\nid = \"nope\"\nname = \"x\"\n").unwrap_err();
        assert_eq!(e.to_string(), "scenario tenant[0].id: 'nope' is not a GUID");
        let e = Scenario::from_toml(
            "[[tenant]]\nid = \"8a3c1f52-7d4e-4b6a-9c2f-1e5d7b9a3c40\"\nname = \"x\"\ndomains = [\"a.com\"]\n[[account]]\nusername = \"u@a.com\"\npassword = \"p\"\nworkspaces = [\"Nowhere\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario account[0].workspaces: unknown workspace 'Nowhere'"
        );
        let e = Scenario::from_toml(
            "[[tenant]]\nid = \"8a3c1f52-7d4e-4b6a-9c2f-1e5d7b9a3c40\"\nname = \"x\"\n[[account]]\nusername = \"u@b.com\"\npassword = \"p\"\nstate = \"sleepy\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("sleepy"), "{e}");
    }
}
