//! A local simulator of the Microsoft services pbikiosk talks to: the identity platform's token,
//! device-code and home-realm endpoints and the Power BI REST API, on the real paths with the
//! real JSON shapes and AADSTS error bodies — so the same client code runs against it and
//! against the cloud, with `cloud.authority` and `cloud.api` both set to
//! [`SimHandle::base_url`]. The tests and `pbikiosk demo` stand on it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pbikiosk::sim::{Scenario, Simulator};
//! let sim = Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("{}", sim.config_snippet("kiosk@contoso-demo.onmicrosoft.com"));
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! - `POST /{tenant}/oauth2/v2.0/token` — grants `password`, `refresh_token`,
//!   `client_credentials`, `urn:ietf:params:oauth:grant-type:device_code`.
//! - `POST /{tenant}/oauth2/v2.0/devicecode`
//! - `GET /common/userrealm/{username}?api-version=1.0|2.1`
//! - `GET /v1.0/myorg/groups`, `/groups/{g}/reports`, `/groups/{g}/reports/{r}`,
//!   `/groups/{g}/reports/{r}/pages`, `/groups/{g}/dashboards`, `/groups/{g}/dashboards/{d}`,
//!   `/v1.0/myorg/reports` (My workspace, empty); `POST /groups/{g}/reports/{r}/GenerateToken`,
//!   `POST /v1.0/myorg/GenerateToken` (several reports and datasets, row-level security
//!   identities), `POST /groups/{g}/dashboards/{d}/GenerateToken`. An app left out by the
//!   tenant setting gets 401 with `X-PowerBI-Error-Info`.
//! - `GET /reportEmbed`, `GET /dashboardEmbed` — reserved for the fake embed page.
//! - Test-only, never Microsoft's: `GET /_sim/stats` ([`SimStats`]), `POST /_sim/control`
//!   ([`Control`] as JSON).
//!
//! The scenario format and the built-in accounts are documented in [`scenario`]; the AADSTS
//! table in `aad`.
//!
//! Secrets: the simulator logs usernames and grant types only, never a password, secret or
//! token.

pub(crate) mod aad;
mod assertion;
mod embed_page;
pub mod front;
mod ids;
mod powerbi;
pub mod scenario;
mod server;
pub(crate) mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::watch;

pub use scenario::Scenario;
pub(crate) use scenario::ScenarioArgError;
pub(crate) use state::ControlError;
pub use state::{Control, SimStats};

use server::Shared;

/// Starts simulators. See [`Simulator::start`].
pub struct Simulator;

impl Simulator {
    /// Bind `addr` (port 0 picks a free port) and serve the scenario on the current tokio
    /// runtime until [`SimHandle::shutdown`] (or the runtime ends).
    pub async fn start(scenario: Scenario, addr: SocketAddr) -> std::io::Result<SimHandle> {
        scenario
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            // Bound to every interface: the loopback address is the one a local client can use.
            local.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let base_url = format!("http://{local}");
        let shared = Arc::new(Shared::new(state::State::new(scenario), base_url));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "sim: server stopped");
            }
        });
        tracing::info!(url = %shared.base_url, "sim: Microsoft simulator listening");
        Ok(SimHandle {
            shared,
            stop: Arc::new(stop_tx),
        })
    }
}

/// A running simulator. Clones share it.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: both `cloud.authority` and `cloud.api`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.shared.lock().stats = SimStats::default();
    }

    /// Apply a runtime change; an impossible one (unknown account, no pending device code) is
    /// logged and ignored. Use [`SimHandle::try_control`] to see the error.
    pub fn control(&self, c: Control) {
        let action = c.action();
        if let Err(e) = self.try_control(c) {
            tracing::warn!(action, error = %e, "sim: control ignored");
        }
    }

    pub fn try_control(&self, c: Control) -> Result<(), ControlError> {
        self.shared.lock().apply(c)
    }

    /// The scenario as it is now, with runtime changes applied.
    #[cfg(test)]
    pub(crate) fn scenario(&self) -> Scenario {
        self.shared.lock().scenario.clone()
    }

    /// How the embed host fails right now (see [`front`]).
    pub fn embed_fault(&self) -> scenario::EmbedFault {
        self.shared.lock().scenario.faults.embed_fault
    }

    /// The account the scenario's `[demo]` section signs in (the twist of a named variant).
    pub fn demo_username(&self) -> Option<String> {
        self.shared
            .lock()
            .scenario
            .demo
            .as_ref()
            .map(|d| d.username.clone())
    }

    /// The demo's client certificate file, when the scenario signs in with one: the name
    /// [`Self::config_snippet`] gives `auth.client_certificate_file` (relative to the config's
    /// folder) and its PEM text (certificate and private key; a test credential).
    pub fn demo_client_certificate(&self) -> Option<(String, String)> {
        let st = self.shared.lock();
        let pem = st.scenario.demo.as_ref()?.client_certificate.clone()?;
        Some((certificate_file_name(&pem), pem))
    }

    /// A ready `pbikiosk.toml` for `username`: `[auth]` with the inline client secret and
    /// password (test credentials, valid only here), `[cloud]` pointing at this simulator, and
    /// one `[[playlist]]` entry per report the account can see. The app, tenant and password
    /// follow the scenario's `[demo]` section (so `Scenario::named("expired-secret")` yields a
    /// config with the expired app).
    pub fn config_snippet(&self, username: &str) -> String {
        let st = self.shared.lock();
        let sc = &st.scenario;
        let demo = sc.demo.as_ref();
        let app = demo
            .and_then(|d| sc.app(&d.client_id))
            .or_else(|| sc.apps.first());
        let account = sc.account(username);
        let password = demo
            .filter(|d| d.username.eq_ignore_ascii_case(username))
            .and_then(|d| d.password.clone())
            .or_else(|| account.map(|a| a.password.clone()))
            .unwrap_or_default();
        let tenant = demo
            .and_then(|d| d.tenant.clone())
            .or_else(|| {
                sc.tenant_of_user(username)
                    .map(|t| t.domains.first().cloned().unwrap_or_else(|| t.id.clone()))
            })
            .unwrap_or_else(|| "organizations".to_owned());
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let base = &self.shared.base_url;
        if demo.is_some_and(|d| d.service_principal) {
            let keys = account.map(|a| a.workspaces.as_slice()).unwrap_or_default();
            let dashboards = demo.is_some_and(|d| d.dashboards);
            return service_principal_snippet(sc, app, &tenant, base, keys, dashboards);
        }
        if demo.is_some_and(|d| d.device_code) {
            // A public client: no secret and no account; a person signs in with a code.
            let mut out = format!(
                "# pbikiosk configuration for the Microsoft simulator at {base}.\n\n\
                 [auth]\nmethod = \"device_code\"\ntenant = {}\nclient_id = {}\n\n\
                 [cloud]\nauthority = {}\napi = {}\nresource = {}\n",
                q(&tenant),
                q(app.map(|a| a.client_id.as_str()).unwrap_or_default()),
                q(base),
                q(base),
                q(&sc.resource),
            );
            self.playlist_snippet(sc, account, demo, &mut out);
            return out;
        }
        let mut out = format!(
            "# pbikiosk configuration for the Microsoft simulator at {base}.\n\
             # Test credentials: valid against the simulator only.\n\n\
             [auth]\n\
             tenant = {}\nclient_id = {}\n{}\nusername = {}\npassword = {}\n\n\
             [cloud]\nauthority = {}\napi = {}\nresource = {}\n",
            q(&tenant),
            q(app.map(|a| a.client_id.as_str()).unwrap_or_default()),
            match demo.and_then(|d| d.client_certificate.as_deref()) {
                Some(pem) => format!(
                    "client_certificate_file = {}",
                    q(&certificate_file_name(pem))
                ),
                None => format!(
                    "client_secret = {}",
                    q(app.map(|a| a.secret.as_str()).unwrap_or_default())
                ),
            },
            q(username),
            q(&password),
            q(base),
            q(base),
            q(&sc.resource),
        );
        self.playlist_snippet(sc, account, demo, &mut out);
        out
    }

    /// Every report the account can see, as `[[playlist]]` entries.
    fn playlist_snippet(
        &self,
        sc: &Scenario,
        account: Option<&scenario::Account>,
        demo: Option<&scenario::DemoTarget>,
        out: &mut String,
    ) {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let keys = account.map(|a| a.workspaces.as_slice()).unwrap_or_default();
        let bookmarks = demo.is_some_and(|d| d.bookmarks);
        for w in sc.workspaces_named(keys) {
            for r in &w.reports {
                out.push_str(&format!(
                    "\n[[playlist]]\n# {} / {}\nworkspace = {}\nreport = {}\n",
                    w.name,
                    r.name,
                    q(&w.id),
                    q(&r.id)
                ));
                if bookmarks && !r.bookmarks.is_empty() {
                    let names: Vec<String> = r.bookmarks.iter().map(|b| q(&b.name)).collect();
                    out.push_str(&format!("bookmarks = [{}]\n", names.join(", ")));
                }
            }
        }
    }

    /// Stop accepting connections; in-flight requests finish.
    /// The simulator's routes, to serve them elsewhere too (the HTTPS front door the webview
    /// reaches as `https://app.powerbi.com`).
    pub fn router(&self) -> axum::Router {
        server::router(self.shared.clone())
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// A file name for a demo certificate, distinct per certificate so that scenarios sharing a
/// folder do not overwrite each other's.
fn certificate_file_name(pem: &str) -> String {
    let tag = crate::auth::certificate::ClientCertificate::from_pem(pem)
        .map(|c| c.thumbprint()[..8].to_ascii_lowercase())
        .unwrap_or_else(|_| "invalid".to_owned());
    format!("client-certificate-{tag}.pem")
}

/// The snippet for the `service-principal` scenarios: the app signs in as itself, and the
/// playlist is every report of `keys`' workspaces (with `dashboards`: a report and the
/// dashboards of each workspace that has some) (the demo account's: the same screen as with
/// a user, so a scenario where the app is no member shows what that looks like).
fn service_principal_snippet(
    sc: &Scenario,
    app: Option<&scenario::App>,
    tenant: &str,
    base: &str,
    keys: &[String],
    dashboards: bool,
) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = format!(
        "# pbikiosk configuration for the Microsoft simulator at {base}.\n\
         # Test credentials: valid against the simulator only.\n\n\
         [auth]\n\
         method = \"service_principal\"\n\
         tenant = {}\nclient_id = {}\nclient_secret = {}\n\n\
         [cloud]\nauthority = {}\napi = {}\nresource = {}\n",
        q(tenant),
        q(app.map(|a| a.client_id.as_str()).unwrap_or_default()),
        q(app.map(|a| a.secret.as_str()).unwrap_or_default()),
        q(base),
        q(base),
        q(&sc.resource),
    );
    if dashboards {
        // Short, so both embeds stay live and every renewal reaches the dashboard's embed:
        // each workspace's first report on its first page, then its dashboards.
        for w in sc.workspaces_named(keys) {
            if w.dashboards.is_empty() {
                continue;
            }
            if let Some(r) = w.reports.first() {
                out.push_str(&format!(
                    "\n[[playlist]]\n# {} / {}\nworkspace = {}\nreport = {}\n",
                    w.name,
                    r.name,
                    q(&w.id),
                    q(&r.id)
                ));
                if let Some(p) = r.pages().first() {
                    out.push_str(&format!("pages = [{}]\n", q(&p.name)));
                }
            }
            for d in &w.dashboards {
                out.push_str(&format!(
                    "\n[[playlist]]\n# {} / {}\nworkspace = {}\ndashboard = {}\n",
                    w.name,
                    d.name,
                    q(&w.id),
                    q(&d.id)
                ));
            }
        }
        return out;
    }
    for w in sc.workspaces_named(keys) {
        for r in &w.reports {
            out.push_str(&format!(
                "\n[[playlist]]\n# {} / {}\nworkspace = {}\nreport = {}\n",
                w.name,
                r.name,
                q(&w.id),
                q(&r.id)
            ));
        }
    }
    out
}
