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
//! ```
//!
//! Built-in variants for the demo's problem previews ([`Scenario::named`]): see [`NAMES`].

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::ids;

/// Names accepted by [`Scenario::named`], each the built-in scenario with one twist:
///
/// | name | twist | problem the client should report |
/// |---|---|---|
/// | `good` | none | (plays) |
/// | `mfa` | signs in `mfa@` | `mfa_required` (50076) |
/// | `federated` | signs in `kiosk@fabrikam-demo.com` | `invalid_credentials` from the token endpoint (50126); `federated_account` if the client asks userrealm first |
/// | `wrong-password` | snippet has a wrong password | `invalid_credentials` (50126) |
/// | `locked` | signs in `locked@` | `account_locked` (50053) |
/// | `password-expired` | signs in `expired@` | `password_expired` (50055) |
/// | `disabled` | signs in `disabled@` | `account_disabled` (50057) |
/// | `conditional-access` | signs in `ca-blocked@` | `conditional_access` (53003) |
/// | `expired-secret` | app whose secret expired | `client_secret_expired` (7000222) |
/// | `consent-required` | app without consent | `consent_required` (65001) |
/// | `no-licence` | signs in `nolicence@` | `no_powerbi_access` (Power BI 401) |
/// | `outage` | token endpoint answers 503 (Retry-After 30) | `service_unavailable` |
/// | `throttled` | next 5 token answers are 429 (Retry-After 10), then recovers | `throttled` |
pub const NAMES: [&str; 13] = [
    "good",
    "mfa",
    "federated",
    "wrong-password",
    "locked",
    "password-expired",
    "disabled",
    "conditional-access",
    "expired-secret",
    "consent-required",
    "no-licence",
    "outage",
    "throttled",
];

/// Built-in tenant and app ids: stable so that screenshots, docs and configs do not churn.
pub mod builtin_ids {
    pub const TENANT_ID: &str = "8a3c1f52-7d4e-4b6a-9c2f-1e5d7b9a3c40";
    pub const TENANT_DOMAIN: &str = "contoso-demo.onmicrosoft.com";
    pub const FEDERATED_DOMAIN: &str = "fabrikam-demo.com";
    pub const APP_ID: &str = "6d3f8a52-1b7e-4c19-9a2d-5e8b7c4f1a30";
    /// Shaped like a real secret value (40 chars with a `~`); only valid against the simulator.
    pub const APP_SECRET: &str = "Sim8Q~kioskDemoSecret.NotReal-0123456789";
    pub const EXPIRED_APP_ID: &str = "b2e4c6a8-3d5f-4e7a-8b9c-0d1e2f3a4b5c";
    pub const UNCONSENTED_APP_ID: &str = "c7d9e1f3-5a7b-4c9d-8e0f-1a2b3c4d5e6f";
    pub const PASSWORD: &str = "Kiosk-Demo-Passw0rd!";
    pub const WS_SALES: &str = "3f2a9b1c-6d4e-4f8a-b1c2-d3e4f5a6b7c8";
    pub const WS_OPERATIONS: &str = "5b7d9f1a-2c4e-4a6b-8d0f-1e3a5c7e9b2d";
    pub const WS_SERVICE: &str = "7c9e1a3b-5d7f-4b9c-a1e3-5f7b9d1c3e5a";
    pub const WS_FINANCE: &str = "9e1b3d5f-7a9c-4e1f-b3a5-7c9e1b3d5f7a";
    pub const REPORT_SALES: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    pub const REPORT_OPERATIONS: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
    pub const REPORT_SERVICE: &str = "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f";
    pub const REPORT_BUDGET: &str = "4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f80";
    pub const DASHBOARD_EXEC: &str = "5e6f7a8b-9c0d-4e1f-a3b4-c5d6e7f8091a";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The Power BI resource: the scope must contain `{resource}/.default`.
    #[serde(default = "default_resource")]
    pub resource: String,
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
    pub tenants: Vec<Tenant>,
    #[serde(default, rename = "app")]
    pub apps: Vec<App>,
    #[serde(default, rename = "account")]
    pub accounts: Vec<Account>,
    #[serde(default, rename = "workspace")]
    pub workspaces: Vec<Workspace>,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub device_code: DeviceCodeSettings,
    #[serde(default)]
    pub demo: Option<DemoTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub federated_domains: Vec<String>,
    #[serde(default)]
    pub allow_cloud_password_validation: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub client_id: String,
    #[serde(default = "default_app_name")]
    pub name: String,
    pub secret: String,
    #[serde(default)]
    pub secret_expired: bool,
    #[serde(default = "yes")]
    pub consented: bool,
    /// Workspaces (ids or names) a client_credentials token of this app may read.
    #[serde(default)]
    pub workspaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub state: AccountState,
    #[serde(default)]
    pub display_name: Option<String>,
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
pub struct Workspace {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, rename = "report")]
    pub reports: Vec<Report>,
    #[serde(default, rename = "dashboard")]
    pub dashboards: Vec<Dashboard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    #[default]
    Shared,
    Premium,
    Ppu,
}

impl Capacity {
    /// Premium and Premium Per User workspaces both run on dedicated capacity.
    pub fn is_dedicated(self) -> bool {
        !matches!(self, Capacity::Shared)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub id: String,
    pub name: String,
    pub dataset_id: String,
    #[serde(default)]
    pub pages: Vec<PageSpec>,
}

/// A page: just its display name (the internal name is derived like Power BI's
/// `ReportSection…`), or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PageSpec {
    DisplayName(String),
    Full { name: String, display_name: String },
}

/// A page with both names resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub name: String,
    pub display_name: String,
    pub order: usize,
}

impl Report {
    pub fn pages(&self) -> Vec<Page> {
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
pub struct Dashboard {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub token_outage: bool,
    #[serde(default)]
    pub outage_retry_after_seconds: Option<u64>,
    #[serde(default)]
    pub token_throttle: Option<Throttle>,
    #[serde(default)]
    pub api_throttle: Option<Throttle>,
    #[serde(default)]
    pub userrealm_unavailable: bool,
    /// Token requests get no answer for [`TOKEN_HANG`] (longer than any client waits): a
    /// timeout, as from a black-holed network path.
    #[serde(default)]
    pub token_hang: bool,
}

/// How long a hung token request is held before the simulator gives up on it.
pub const TOKEN_HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// The next `count` answers are HTTP 429 with `Retry-After: retry_after_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub count: u32,
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCodeSettings {
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    #[serde(default = "default_device_expiry")]
    pub expires_in_seconds: u64,
}

impl Default for DeviceCodeSettings {
    fn default() -> Self {
        Self {
            interval_seconds: default_interval(),
            expires_in_seconds: default_device_expiry(),
        }
    }
}

/// Whom the generated config signs in (see [`super::SimHandle::config_snippet`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoTarget {
    pub username: String,
    pub client_id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Written instead of the account's password (the `wrong-password` preview).
    #[serde(default)]
    pub password: Option<String>,
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

/// Why a `--scenario` argument gives no scenario. The argument leads each message, as typed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioArgError {
    #[error(
        "--scenario {arg}: not a built-in scenario name nor a readable file; choose one of: {} (or give a scenario file)",
        NAMES.join(", ")
    )]
    Unknown { arg: String },
    #[error("--scenario {arg}: {error}")]
    Unreadable { arg: String, error: std::io::Error },
    #[error("--scenario {arg}: {error}")]
    Invalid { arg: String, error: ScenarioError },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

impl Scenario {
    /// Parse and validate a TOML scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Check references and ids, so that a typo fails at start rather than as a puzzling 404.
    pub fn validate(&self) -> Result<(), ScenarioError> {
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
    pub fn tenant(&self, key: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(key)
                || t.domains
                    .iter()
                    .chain(&t.federated_domains)
                    .any(|d| d.eq_ignore_ascii_case(key))
        })
    }

    /// The tenant owning the domain of `username`.
    pub fn tenant_of_user(&self, username: &str) -> Option<&Tenant> {
        let domain = username.rsplit_once('@')?.1;
        self.tenant(domain)
            .filter(|t| !t.id.eq_ignore_ascii_case(domain))
    }

    /// Whether `username`'s domain is federated (and with which tenant).
    pub fn is_federated(&self, username: &str) -> bool {
        let Some((_, domain)) = username.rsplit_once('@') else {
            return false;
        };
        self.tenants.iter().any(|t| {
            t.federated_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        })
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn account(&self, username: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.username.eq_ignore_ascii_case(username))
    }

    pub fn account_mut(&mut self, username: &str) -> Option<&mut Account> {
        self.accounts
            .iter_mut()
            .find(|a| a.username.eq_ignore_ascii_case(username))
    }

    /// A workspace by id or name.
    pub fn workspace(&self, key: &str) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(key))
            .or_else(|| self.workspaces.iter().find(|w| w.name == key))
    }

    /// The built-in demo tenant: everything the demo and the tests need, no file required.
    pub fn builtin() -> Scenario {
        use builtin_ids::*;
        let d = TENANT_DOMAIN;
        let account = |user: &str, state: AccountState, workspaces: &[&str]| Account {
            username: format!("{user}@{d}"),
            password: PASSWORD.to_owned(),
            state,
            display_name: None,
            workspaces: workspaces.iter().map(|w| (*w).to_owned()).collect(),
        };
        let three = [WS_SALES, WS_OPERATIONS, WS_SERVICE];
        let app = |client_id: &str, name: &str, secret_expired: bool, consented: bool| App {
            client_id: client_id.to_owned(),
            name: name.to_owned(),
            secret: APP_SECRET.to_owned(),
            secret_expired,
            consented,
            workspaces: Vec::new(),
        };
        let pages = |names: &[&str]| {
            names
                .iter()
                .map(|n| PageSpec::DisplayName((*n).to_owned()))
                .collect::<Vec<_>>()
        };
        let mut fed = account("kiosk", AccountState::Ok, &three);
        fed.username = format!("kiosk@{FEDERATED_DOMAIN}");
        Scenario {
            resource: default_resource(),
            embed_host: default_embed_host(),
            token_lifetime_seconds: default_token_lifetime(),
            lockout_threshold: default_lockout(),
            tenants: vec![Tenant {
                id: TENANT_ID.to_owned(),
                name: "Contoso Demo".to_owned(),
                domains: vec![TENANT_DOMAIN.to_owned()],
                federated_domains: vec![FEDERATED_DOMAIN.to_owned()],
                allow_cloud_password_validation: false,
            }],
            apps: vec![
                app(APP_ID, "pbikiosk", false, true),
                app(EXPIRED_APP_ID, "pbikiosk (old secret)", true, true),
                app(UNCONSENTED_APP_ID, "pbikiosk (no consent)", false, false),
            ],
            accounts: vec![
                account("kiosk", AccountState::Ok, &three),
                account("mfa", AccountState::Mfa, &three),
                account("ca-blocked", AccountState::ConditionalAccess, &three),
                account("locked", AccountState::Locked, &three),
                account("expired", AccountState::PasswordExpired, &three),
                account("disabled", AccountState::Disabled, &three),
                account("nolicence", AccountState::NoLicence, &three),
                fed,
            ],
            workspaces: vec![
                Workspace {
                    id: WS_SALES.to_owned(),
                    name: "Sales".to_owned(),
                    capacity: Capacity::Premium,
                    read_only: false,
                    reports: vec![Report {
                        id: REPORT_SALES.to_owned(),
                        name: "Sales Overview".to_owned(),
                        dataset_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c01".to_owned(),
                        pages: pages(&["Summary", "By Region", "By Product", "Trends"]),
                    }],
                    dashboards: vec![Dashboard {
                        id: DASHBOARD_EXEC.to_owned(),
                        name: "Executive Dashboard".to_owned(),
                    }],
                },
                Workspace {
                    id: WS_OPERATIONS.to_owned(),
                    name: "Operations".to_owned(),
                    capacity: Capacity::Shared,
                    read_only: false,
                    reports: vec![Report {
                        id: REPORT_OPERATIONS.to_owned(),
                        name: "Operations".to_owned(),
                        dataset_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c02".to_owned(),
                        pages: pages(&["Overview", "Warehouse", "Logistics"]),
                    }],
                    dashboards: Vec::new(),
                },
                Workspace {
                    id: WS_SERVICE.to_owned(),
                    name: "Customer Service".to_owned(),
                    capacity: Capacity::Ppu,
                    read_only: true,
                    reports: vec![Report {
                        id: REPORT_SERVICE.to_owned(),
                        name: "Customer Service".to_owned(),
                        dataset_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c03".to_owned(),
                        pages: pages(&["Tickets", "Satisfaction", "Agents"]),
                    }],
                    dashboards: Vec::new(),
                },
                // Nobody is a member: ids here answer 404 like a workspace you were removed from.
                Workspace {
                    id: WS_FINANCE.to_owned(),
                    name: "Finance".to_owned(),
                    capacity: Capacity::Shared,
                    read_only: false,
                    reports: vec![Report {
                        id: REPORT_BUDGET.to_owned(),
                        name: "Budget vs Actual".to_owned(),
                        dataset_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c04".to_owned(),
                        pages: pages(&["Budget", "Variance", "Forecast"]),
                    }],
                    dashboards: Vec::new(),
                },
            ],
            faults: Faults::default(),
            device_code: DeviceCodeSettings::default(),
            demo: Some(DemoTarget {
                username: format!("kiosk@{d}"),
                client_id: APP_ID.to_owned(),
                tenant: None,
                password: None,
            }),
        }
    }

    /// A built-in variant by name (see [`NAMES`]), or `None` for an unknown name.
    pub fn named(name: &str) -> Option<Scenario> {
        use builtin_ids::*;
        let mut s = Scenario::builtin();
        let demo = s.demo.as_mut()?;
        let user = |u: &str| format!("{u}@{TENANT_DOMAIN}");
        match name {
            "good" => {}
            "mfa" => demo.username = user("mfa"),
            "federated" => demo.username = format!("kiosk@{FEDERATED_DOMAIN}"),
            "wrong-password" => demo.password = Some("Not-The-Password-1".to_owned()),
            "locked" => demo.username = user("locked"),
            "password-expired" => demo.username = user("expired"),
            "disabled" => demo.username = user("disabled"),
            "conditional-access" => demo.username = user("ca-blocked"),
            "expired-secret" => demo.client_id = EXPIRED_APP_ID.to_owned(),
            "consent-required" => demo.client_id = UNCONSENTED_APP_ID.to_owned(),
            "no-licence" | "no-license" => demo.username = user("nolicence"),
            "outage" => {
                s.faults.token_outage = true;
                s.faults.outage_retry_after_seconds = Some(30);
            }
            "throttled" => {
                s.faults.token_throttle = Some(Throttle {
                    count: 5,
                    retry_after_seconds: 10,
                })
            }
            _ => return None,
        }
        Some(s)
    }
}

impl Scenario {
    /// What a `--scenario` argument names: nothing is the built-in scenario, a name one of its
    /// variants ([`NAMES`]), anything else a scenario file (TOML).
    pub fn from_arg(arg: Option<&str>) -> Result<Scenario, ScenarioArgError> {
        let Some(arg) = arg else {
            return Ok(Scenario::builtin());
        };
        if let Some(s) = Scenario::named(arg) {
            return Ok(s);
        }
        let text = std::fs::read_to_string(arg).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                ScenarioArgError::Unknown { arg: arg.into() }
            } else {
                ScenarioArgError::Unreadable {
                    arg: arg.into(),
                    error,
                }
            }
        })?;
        Scenario::from_toml(&text).map_err(|error| ScenarioArgError::Invalid {
            arg: arg.into(),
            error,
        })
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_valid_and_has_the_promised_content() {
        let s = Scenario::builtin();
        s.validate().unwrap();
        let kiosk = s.account("kiosk@contoso-demo.onmicrosoft.com").unwrap();
        assert_eq!(kiosk.workspaces.len(), 3);
        let reports: Vec<&Report> = s.workspaces.iter().flat_map(|w| &w.reports).collect();
        assert!(reports.len() >= 3);
        assert!(reports.iter().all(|r| r.pages.len() >= 3));
        assert!(s.workspaces.iter().any(|w| !w.dashboards.is_empty()));
        assert!(s.is_federated("kiosk@fabrikam-demo.com"));
        assert!(!s.is_federated("kiosk@contoso-demo.onmicrosoft.com"));
    }

    #[test]
    fn every_named_variant_exists_and_unknown_is_none() {
        for n in NAMES {
            let s = Scenario::named(n).unwrap_or_else(|| panic!("{n}"));
            s.validate().unwrap();
        }
        assert!(Scenario::named("nope").is_none());
        // The twists really differ from the plain built-in.
        assert_ne!(Scenario::named("mfa"), Scenario::named("good"));
        assert!(Scenario::named("outage").unwrap().faults.token_outage);
    }

    #[test]
    fn scenario_argument_is_a_name_or_a_file() {
        assert_eq!(Scenario::from_arg(None).unwrap(), Scenario::builtin());
        assert_eq!(
            Scenario::from_arg(Some("outage")).unwrap(),
            Scenario::named("outage").unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("s.toml");
        std::fs::write(&good, "token_lifetime_seconds = 60\n").unwrap();
        let s = Scenario::from_arg(good.to_str()).unwrap();
        assert_eq!(s.token_lifetime_seconds, 60);

        let e = Scenario::from_arg(Some("nope")).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Unknown { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "--scenario nope: not a built-in scenario name nor a readable file; choose one of: {} (or give a scenario file)",
                NAMES.join(", ")
            )
        );
        let e = Scenario::from_arg(dir.path().to_str()).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Unreadable { .. }), "{e:?}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "tokn_lifetime_seconds = 5\n").unwrap();
        let e = Scenario::from_arg(bad.to_str()).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Invalid { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "--scenario {}: scenario is not valid TOML",
                bad.display()
            )),
            "{shown}"
        );
    }

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
