//! The built-in scenario and its named variants, for the demo's problem previews and the
//! tests: a whole tenant without a scenario file.

use super::builtin_ids;
use super::{
    Account, AccountState, App, Bookmark, Capacity, Dashboard, DemoTarget, DeviceCodeSettings,
    EmbedFault, Faults, PageSpec, Report, Scenario, Tenant, Throttle, Workspace,
    default_embed_host, default_lockout, default_resource, default_token_lifetime,
};

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
/// | `embed-refuse`, `embed-reset`, `embed-hang`, `embed-http-502`, `embed-untrusted`, `embed-dns` | the embed host fails that way ([`EmbedFault`]) | `embed_unreachable` |
/// | `bookmarks` | the demo plays only Sales Overview, through its two bookmarks | (plays) |
/// | `certificate` | the app signs in with a certificate registered on it (made for the run) | (plays) |
/// | `certificate-expired` | the app's certificate ended yesterday | `client_certificate_expired` (before anything is sent) |
/// | `certificate-unregistered` | the app's certificate was never uploaded | `client_certificate_not_registered` (700027) |
/// | `device-code` | signs in with a code shown on the screen; the demo account approves it after 6 s | `sign_in_required`, then plays |
/// | `service-principal` | the app signs in (client credentials), is a member of Sales, Operations and Customer Service, and embeds with embed tokens | (plays) |
/// | `sp-not-allowed` | as `service-principal`, with the tenant setting for service principals off | `service_principal_not_allowed` (Power BI 401) |
/// | `sp-rls` | as `service-principal`, and Sales Overview's dataset has row-level security | `embed_token_refused` (GenerateToken 400) |
/// | `sp-not-member` | as `service-principal`, but the app is a member of no workspace | `report_not_found`, naming workspace membership (Power BI 404) |
/// | `sp-dashboard` | as `service-principal`, and the playlist is Sales Overview (first page) and the Executive Dashboard, which embeds with its own embed token | (plays) |
pub const NAMES: [&str; 29] = [
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
    "embed-refuse",
    "embed-reset",
    "embed-hang",
    "embed-http-502",
    "embed-untrusted",
    "embed-dns",
    "bookmarks",
    "certificate",
    "certificate-expired",
    "certificate-unregistered",
    "device-code",
    "service-principal",
    "sp-not-allowed",
    "sp-rls",
    "sp-not-member",
    "sp-dashboard",
];

impl Scenario {
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
            certificates: Vec::new(),
            powerbi_allowed: true,
        };
        let pages = |names: &[&str]| {
            names
                .iter()
                .map(|n| PageSpec::DisplayName((*n).to_owned()))
                .collect::<Vec<_>>()
        };
        let mut fed = account("kiosk", AccountState::Ok, &three);
        fed.username = format!("kiosk@{FEDERATED_DOMAIN}");
        let mut s = Scenario {
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
                        mobile_layout: true,
                        bookmarks: Vec::new(), // below: they name pages of this report
                        rls: false,
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
                        mobile_layout: false,
                        bookmarks: Vec::new(),
                        rls: false,
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
                        mobile_layout: false,
                        bookmarks: Vec::new(),
                        rls: false,
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
                        mobile_layout: false,
                        bookmarks: Vec::new(),
                        rls: false,
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
                bookmarks: false,
                client_certificate: None,
                device_code: false,
                service_principal: false,
                dashboards: false,
            }),
        };
        s.workspaces[0].reports[0].bookmarks = sales_bookmarks(&s.workspaces[0].reports[0]);
        s
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
            "bookmarks" => {
                demo.bookmarks = true;
                let kiosk = user("kiosk");
                s.accounts
                    .iter_mut()
                    .find(|a| a.username == kiosk)?
                    .workspaces = vec![WS_SALES.to_owned()];
            }
            "certificate" | "certificate-expired" | "certificate-unregistered" => {
                let now = super::super::ids::unix_now() as i64;
                const DAY: i64 = 86_400;
                let (from, to) = if name == "certificate-expired" {
                    (now - 366 * DAY, now - DAY)
                } else {
                    (now - DAY, now + 365 * DAY)
                };
                let (cert, both) = crate::auth::certificate::generate(from, to).ok()?;
                demo.client_certificate = Some(both);
                if name != "certificate-unregistered" {
                    s.apps
                        .iter_mut()
                        .find(|a| a.client_id == APP_ID)?
                        .certificates
                        .push(cert);
                }
            }
            "device-code" => {
                demo.device_code = true;
                s.device_code.auto_approve_seconds = Some(6);
            }
            "service-principal" | "sp-not-allowed" | "sp-rls" | "sp-not-member"
            | "sp-dashboard" => {
                demo.service_principal = true;
                demo.dashboards = name == "sp-dashboard";
                let app = s.apps.iter_mut().find(|a| a.client_id == APP_ID)?;
                app.workspaces = vec![
                    WS_SALES.to_owned(),
                    WS_OPERATIONS.to_owned(),
                    WS_SERVICE.to_owned(),
                ];
                app.powerbi_allowed = name != "sp-not-allowed";
                if name == "sp-rls" {
                    s.workspaces[0].reports[0].rls = true;
                }
                if name == "sp-not-member" {
                    app.workspaces.clear();
                }
            }
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
            other => {
                let fault = other.strip_prefix("embed-")?.replace('-', "_");
                s.faults.embed_fault = EmbedFault::ALL
                    .into_iter()
                    .find(|f| *f != EmbedFault::None && f.as_str() == fault)?;
            }
        }
        Some(s)
    }
}

/// Two bookmarks of Sales Overview, each opening another of its pages.
fn sales_bookmarks(sales: &Report) -> Vec<Bookmark> {
    use builtin_ids::*;
    let page = |display: &str| {
        sales
            .pages()
            .into_iter()
            .find(|p| p.display_name == display)
            .map(|p| p.name)
    };
    vec![
        Bookmark {
            name: BOOKMARK_NORTH.to_owned(),
            display_name: "North region".to_owned(),
            page: page("By Region"),
        },
        Bookmark {
            name: BOOKMARK_ONLINE.to_owned(),
            display_name: "Online sales".to_owned(),
            page: page("By Product"),
        },
    ]
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
        assert_eq!(
            Scenario::named("embed-http-502")
                .unwrap()
                .faults
                .embed_fault,
            EmbedFault::Http502
        );
        assert!(Scenario::named("embed-none").is_none());
        let b = Scenario::named("bookmarks").unwrap();
        assert!(b.demo.as_ref().unwrap().bookmarks);
        let kiosk = b.account("kiosk@contoso-demo.onmicrosoft.com").unwrap();
        assert_eq!(kiosk.workspaces, [builtin_ids::WS_SALES]);
    }

    #[test]
    fn sales_overview_has_two_bookmarks_on_its_own_pages() {
        let s = Scenario::builtin();
        let sales = &s.workspaces[0].reports[0];
        assert_eq!(sales.name, "Sales Overview");
        let pages: Vec<String> = sales.pages().into_iter().map(|p| p.name).collect();
        let shown: Vec<(&str, Option<&str>)> = sales
            .bookmarks
            .iter()
            .map(|b| (b.display_name.as_str(), b.page.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("North region", Some(pages[1].as_str())),
                ("Online sales", Some(pages[2].as_str()))
            ]
        );
    }
}
