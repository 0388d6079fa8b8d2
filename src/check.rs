//! `pbikiosk check`: the doctor an installer runs at the terminal.
//!
//! It walks the same path the player does — config, HTTPS client, home realm, sign-in, Power BI
//! access, every playlist item — and reports each step with the stable problem id, cause and
//! fix, then every host the screen must reach (sign-in, API, and the web view's: embed host,
//! the report's cluster, Microsoft's CDN). Unlike the player it does not back off for minutes:
//! a person is waiting, so transient failures are retried within a short budget (`BUDGET`),
//! the host probes end within it too, and then everything is reported.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::auth::SignInSettings;
use crate::auth::app_only;
use crate::auth::client::{AadClient, TokenEndpoint};
use crate::auth::realm::RealmKind;
use crate::config::{AuthMethod, Config, ConfigError, NetworkSetting};
use crate::content::ContentKind;
use crate::embed_token::TokenRequest;
use crate::net;
use crate::powerbi::{PowerBiClient, Workspace};
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::reach::{self, Route, Unreachable};
use crate::secret::Secret;

/// How long `check` keeps retrying transient failures before it reports them; its host probes
/// end within it too.
pub(crate) const BUDGET: Duration = Duration::from_secs(30);

/// The least time the host probes get, even when the steps before used up the budget: a
/// second, as a retried step's last attempt gets.
const LEAST_FOR_PROBES: Duration = Duration::from_secs(1);

/// Microsoft's content delivery network for Power BI, a required host in its allow-list for the
/// public cloud (the national clouds' lists name none).
const PUBLIC_CDN: &str = "content.powerapps.com";

/// Every check's outcome: printed as a table, or as JSON with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub(crate) problems: Vec<ProblemId>,
    pub(crate) checks: Vec<Line>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub(crate) name: String,
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) problem: Option<ProblemId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) aadsts: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trace_id: Option<String>,
    /// Microsoft's references as the table shows them after the problem id.
    #[serde(skip)]
    references: String,
}

impl Line {
    fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            problem: None,
            message: Some(message.into()),
            fix: None,
            aadsts: None,
            trace_id: None,
            references: String::new(),
        }
    }

    /// A step that passed with advice: shown with its fix, without failing the check.
    fn warning(name: impl Into<String>, message: String, fix: String) -> Self {
        Self {
            fix: Some(fix),
            ..Self::ok(name, message)
        }
    }

    /// A failed step.
    pub(crate) fn from_problem(name: impl Into<String>, p: &Problem) -> Self {
        Self {
            name: name.into(),
            ok: false,
            problem: Some(p.id),
            message: Some(p.cause.clone()),
            fix: Some(p.fix.clone()),
            aadsts: (!p.aadsts().is_empty()).then(|| p.aadsts().to_vec()),
            trace_id: p.trace_id().map(str::to_owned),
            references: p.reference_note(),
        }
    }
}

impl CheckReport {
    fn from_lines(checks: Vec<Line>) -> Self {
        let mut problems: Vec<ProblemId> = Vec::new();
        for id in checks.iter().filter_map(|c| c.problem) {
            if !problems.contains(&id) {
                problems.push(id);
            }
        }
        Self {
            ok: checks.iter().all(|c| c.ok),
            problems,
            checks,
        }
    }

    /// The steps that passed, then the one that failed.
    pub fn from_failure(passed: Vec<Line>, failure: &Failure) -> Self {
        let mut lines = passed;
        lines.push(Line::from_problem(failure.step.clone(), &failure.problem));
        Self::from_lines(lines)
    }

    /// With the boot partition's settings that were not imported, as the first line (the
    /// installer expects those settings, not the ones checked below). `true` when it added one.
    pub fn with_boot_import(self, sources: &crate::config::SecretSources) -> (Self, bool) {
        match crate::boot_import::pending_problem(sources) {
            Some(p) => {
                let mut lines = vec![Line::from_problem("boot partition", &p)];
                lines.extend(self.checks);
                (Self::from_lines(lines), true)
            }
            None => (self, false),
        }
    }

    /// The report for a config that could not be loaded (exit code 2).
    pub fn config_error(err: &ConfigError) -> Self {
        let p = err.to_problem();
        Self::from_lines(vec![Line::from_problem("config", &p)])
    }

    /// A table for people: one line a check, cause and fix under each failure.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let msg = c.message.as_deref().unwrap_or("");
            let _ = writeln!(out, "{mark}  {:<width$}  {msg}", c.name);
            if !c.ok
                && let Some(id) = c.problem
            {
                let refs = &c.references;
                let _ = writeln!(out, "      {:<width$}  problem: {id}{refs}", "");
            }
            // A passed line has a fix only when it carries a warning.
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "      {:<width$}  fix: {fix}", "");
            }
        }
        if self.ok {
            out.push_str("\nAll checks passed.\n");
        } else {
            let ids: Vec<&str> = self.problems.iter().map(|p| p.as_str()).collect();
            let _ = writeln!(out, "\nProblems found: {}", ids.join(", "));
        }
        out
    }
}

/// A person is waiting: retry soon, but not faster than once a second.
const BACKOFF: net::Backoff = net::Backoff {
    first: Duration::from_secs(1),
    max: Duration::from_secs(8),
};

/// Retry a transient failure until `deadline`, honouring `Retry-After`. Each attempt gets what
/// is left of the budget (at least a second), so a hung service cannot outlast `check`.
async fn within<T, F, Fut>(deadline: Instant, mut f: F) -> Result<T, Problem>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Problem>>,
{
    let deadline = tokio::time::Instant::from_std(deadline);
    net::retry(
        "Microsoft",
        BACKOFF,
        deadline,
        |p| p.retry_class() == RetryClass::Transient,
        || {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(left.max(Duration::from_secs(1)), f());
            async move {
                attempt.await.unwrap_or_else(|_| {
                    Err(Problem::new(ProblemId::ServiceUnavailable)
                        .with_cause("Microsoft did not answer before check gave up."))
                })
            }
        },
    )
    .await
}

/// What sign-in gave, for `check` and `reports`.
pub(crate) struct SignedIn {
    pub(crate) token: Secret,
}

/// A step that failed, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step}: {problem}")]
pub struct Failure {
    pub(crate) step: String,
    pub(crate) problem: Problem,
}

impl Failure {
    pub(crate) fn new(step: impl Into<String>, problem: Problem) -> Self {
        Self {
            step: step.into(),
            problem,
        }
    }
}

/// Realm discovery then ROPC, as the player does. Each step that passes is added to `lines`;
/// the first that fails is returned.
pub(crate) async fn sign_in(
    cfg: &Config,
    http: &reqwest::Client,
    deadline: Instant,
    lines: &mut Vec<Line>,
) -> Result<SignedIn, Failure> {
    if cfg.auth.method == crate::config::AuthMethod::DeviceCode {
        return device_code_sign_in(cfg, http, deadline, lines).await;
    }
    let settings = SignInSettings::from_config(cfg);
    let client = AadClient::new(http.clone(), settings);
    let user = &cfg.auth.username;
    if cfg.auth.method == AuthMethod::ServicePrincipal {
        return match within(deadline, || client.client_credentials()).await {
            Ok(grant) => {
                let mins = grant.expires_in.as_secs() / 60;
                lines.push(Line::ok(
                    "sign-in",
                    format!(
                        "signed in as the app {} (service principal); token valid {mins} min",
                        cfg.auth.client_id
                    ),
                ));
                Ok(SignedIn {
                    token: grant.access_token,
                })
            }
            Err(p) => Err(Failure::new("sign-in", p)),
        };
    }

    match within(deadline, || client.realm()).await {
        Ok(Some(r)) if r.kind == RealmKind::Federated && !cfg.auth.allow_federated => {
            let p = crate::auth::realm::federated_problem(&r);
            let p = Problem {
                cause: format!("{user}: {}", p.cause),
                ..p
            };
            return Err(Failure::new("account type", p));
        }
        Ok(Some(r)) => {
            let kind = match r.kind {
                RealmKind::Managed => "managed by Microsoft Entra ID (password sign-in possible)",
                RealmKind::Federated => "federated (auth.allow_federated = true)",
                RealmKind::Unknown => "not known to Microsoft's realm lookup",
            };
            lines.push(Line::ok("account type", format!("{user}: {kind}")));
        }
        Ok(None) => lines.push(Line::ok(
            "account type",
            "realm lookup not offered by this cloud; skipped",
        )),
        // Discovery is advice: go on to the real sign-in, which will say what is wrong.
        Err(p) => lines.push(Line::ok(
            "account type",
            format!("realm lookup failed ({}); going on", p.id),
        )),
    }

    // The certificate's dates, before it is used: near its end a warning, so that it is
    // renewed before the screen goes dark. An expired one fails the sign-in step below, with
    // its own problem id, without being sent.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some((message, _)) = cfg.auth.client.describe(now)
        && !cfg.auth.client.is_expired(now)
    {
        lines.push(Line::ok("app certificate", message));
    }

    match within(deadline, || client.password()).await {
        Ok(grant) => {
            let mins = grant.expires_in.as_secs() / 60;
            let refresh = if grant.refresh_token.is_some() {
                "with a refresh token"
            } else {
                "without a refresh token"
            };
            lines.push(Line::ok(
                "sign-in",
                format!("signed in as {user}; token valid {mins} min, {refresh}"),
            ));
            Ok(SignedIn {
                token: grant.access_token,
            })
        }
        Err(p) => Err(Failure::new("sign-in", p)),
    }
}

/// `method = "device_code"`: sign in with the token cache's refresh token, as the screen does
/// after a restart. The cache is read, never written (check may run as another user, and a
/// file it wrote could lock the service out), and no code is requested: a person signs in on
/// the screen or with `pbikiosk login`.
async fn device_code_sign_in(
    cfg: &Config,
    http: &reqwest::Client,
    deadline: Instant,
    lines: &mut Vec<Line>,
) -> Result<SignedIn, Failure> {
    use crate::auth::device_code::{DeviceClient, DeviceEndpoint as _};
    use crate::auth::token_cache::TokenCache;
    let path = cfg
        .auth
        .token_cache
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_TOKEN_CACHE.into());
    let not_signed_in = |why: String| {
        Failure::new(
            "sign-in",
            Problem::new(ProblemId::SignInRequired)
                .with_cause(why)
                .with_fix("Sign in with the code on the screen, or run `pbikiosk login` as the user the service runs as; then run check again."),
        )
    };
    let refresh = match TokenCache::new(&path).load(&cfg.auth.tenant, &cfg.auth.client_id) {
        Ok(Some(rt)) => rt,
        Ok(None) => {
            return Err(not_signed_in(format!(
                "No one has signed in on this screen yet: {} holds no sign-in for this tenant and app.",
                path.display()
            )));
        }
        Err(e) => return Err(not_signed_in(e.to_string())),
    };
    let client = DeviceClient::new(
        http.clone(),
        cfg.cloud.authority.clone(),
        &cfg.auth.tenant,
        &cfg.auth.client_id,
        &cfg.cloud.scope(),
    );
    match within(deadline, || client.refresh(&refresh)).await {
        Ok(grant) => {
            let mins = grant.expires_in.as_secs() / 60;
            lines.push(Line::ok(
                "sign-in",
                format!(
                    "signed in with the code sign-in kept in {}; token valid {mins} min",
                    path.display()
                ),
            ));
            Ok(SignedIn {
                token: grant.access_token,
            })
        }
        Err(p) if p.retry_class() == RetryClass::Transient => Err(Failure::new("sign-in", p)),
        Err(p) => Err(not_signed_in(format!(
            "Microsoft refused the sign-in kept in {} ({}): it was revoked or has expired.",
            path.display(),
            p.id
        ))),
    }
}

/// Run every check against the configured (or simulated) cloud, within [`BUDGET`].
pub async fn run(cfg: &Config) -> CheckReport {
    run_within(cfg, BUDGET).await
}

/// [`run`] within `budget` (tests use less than [`BUDGET`]).
pub async fn run_within(cfg: &Config, budget: Duration) -> CheckReport {
    let deadline = Instant::now() + budget;
    let mut lines = vec![Line::ok(
        "config",
        format!(
            "{} ({} playlist item{})",
            cfg.path.display(),
            cfg.playlist.len(),
            if cfg.playlist.len() == 1 { "" } else { "s" }
        ),
    )];
    lines.extend(sandbox_lines(cfg));
    lines.push(screen_line(cfg).await);
    let http = match net::client_for(cfg) {
        Ok(h) => h,
        Err(p) => {
            lines.push(Line::from_problem("https client", &p));
            return CheckReport::from_lines(lines);
        }
    };
    // Through a proxy, the proxy is tried first: unreachable, a 407 or an inspecting proxy
    // is named as such, rather than as a sign-in that could not reach Microsoft.
    if let Some(line) = proxy_line(cfg, deadline).await {
        let failed = !line.ok;
        lines.push(line);
        if failed {
            return CheckReport::from_lines(lines);
        }
    }
    // A fleet screen plays the fleet file's playlist: the rest of the check looks at that one.
    let with_fleet = match crate::fleet::check(&http, cfg).await {
        Some((line, effective)) => {
            lines.push(match line {
                Ok(message) => Line::ok("fleet", message),
                Err(p) => Line::from_problem("fleet", &p),
            });
            Some(effective)
        }
        None => None,
    };
    let cfg = with_fleet.as_ref().unwrap_or(cfg);
    let signed = match sign_in(cfg, &http, deadline, &mut lines).await {
        Ok(s) => s,
        Err(failure) => {
            let authority = &cfg.cloud.authority;
            let stage = stage_line(Role::SignIn, authority, &failure.problem, cfg, deadline).await;
            lines.push(Line::from_problem(failure.step.clone(), &failure.problem));
            lines.extend(stage);
            return CheckReport::from_lines(lines);
        }
    };
    // Pages and items are resolved with what is left of the budget.
    let left = deadline.saturating_duration_since(Instant::now());
    let app_only = cfg.auth.method == AuthMethod::ServicePrincipal;
    let mut api = PowerBiClient::new(http, cfg.cloud.api.clone()).with_retry_budget(left);
    if app_only {
        api = api.for_app();
    }
    let token = &signed.token;

    // The sign-in and API hosts were reached by the steps, through the same client the player
    // uses: their lines say so, after the steps, and they are not probed again.
    let env = |k: &str| std::env::var(k).ok();
    let sign_in_host = proven_line(Role::SignIn, &cfg.cloud.authority, &cfg.network, env);
    let workspaces = match within(deadline, || api.workspaces(token)).await {
        Ok(ws) => {
            lines.push(Line::ok(
                "power bi",
                format!("{} workspace(s) visible to the account", ws.len()),
            ));
            ws
        }
        Err(p) => {
            let p = if p.id == ProblemId::NoPowerbiAccess && !app_only {
                p.with_cause(format!(
                    "{} signed in, but Power BI refused it: the account has no Power BI licence or has never used Power BI.",
                    cfg.auth.username
                ))
            } else {
                p
            };
            lines.push(Line::from_problem("power bi", &p));
            lines.push(sign_in_host);
            lines.extend(stage_line(Role::Api, &cfg.cloud.api, &p, cfg, deadline).await);
            return CheckReport::from_lines(lines);
        }
    };

    if cfg.playlist.is_empty() {
        let p = Problem::new(ProblemId::Config)
            .with_cause("The playlist is empty: nothing would be shown.")
            .with_fix("Run `pbikiosk reports --toml` and paste the [[playlist]] entries you want into the config.");
        lines.push(Line::from_problem("playlist", &p));
    }
    let mut embed_urls = Vec::new();
    let mut targets = Vec::new();
    for (i, item) in cfg.playlist.iter().enumerate() {
        // Counted from 1, like the config errors: the installer counts [[playlist]] blocks.
        let name = format!("playlist[{}]", i + 1);
        let res = within(deadline, || {
            api.resolve(token, &item.workspace, item.kind, &item.id, &item.pages)
        })
        .await;
        match res {
            Ok(r) => {
                let ws = workspace_name(&workspaces, &item.workspace);
                let what = match r.kind {
                    ContentKind::Report => {
                        let pages: Vec<&str> =
                            r.pages.iter().map(|p| p.display_name.as_str()).collect();
                        format!(
                            "report '{}' in '{ws}': {} page(s): {}",
                            r.name,
                            pages.len(),
                            pages.join(", ")
                        )
                    }
                    ContentKind::Dashboard => {
                        format!("dashboard '{}' in '{ws}'", r.name)
                    }
                };
                lines.push(Line::ok(name, what));
                embed_urls.push(r.embed_url);
                if app_only {
                    targets.push((i, item));
                }
            }
            Err(p) => {
                let p = if app_only {
                    explain_app_access(p, &workspaces, &item.workspace, &cfg.auth.client_id)
                } else {
                    explain_access(p, &workspaces, &item.workspace, &cfg.auth.username)
                };
                lines.push(Line::from_problem(name, &p));
            }
        }
    }
    if app_only {
        lines.extend(embed_token_lines(&api, token, &targets, deadline).await);
    }
    lines.push(sign_in_host);
    lines.push(proven_line(Role::Api, &cfg.cloud.api, &cfg.network, env));
    // The web view's hosts are probed, all at once, and by the end of the budget.
    let route = web_view_route(cfg);
    let targets = web_view_hosts(embed_urls.iter().map(String::as_str));
    let by = deadline.max(Instant::now() + LEAST_FOR_PROBES);
    let probes: Vec<_> = targets
        .iter()
        .map(|(_, host)| {
            let (host, route) = (host.clone(), route.clone());
            tokio::spawn(async move { reach::probe_by(&host, 443, &route, by).await })
        })
        .collect();
    for ((role, host), probe) in targets.into_iter().zip(probes) {
        let res = probe.await.unwrap_or_else(|e| {
            Err(Unreachable {
                host: host.clone(),
                stage: reach::Stage::Dns,
                failure: reach::Failure::Other {
                    detail: format!("the probe stopped: {e}"),
                },
            })
        });
        lines.push(reach_line(role, &host, &route, res));
    }
    CheckReport::from_lines(lines)
}

/// A service principal embeds with embed tokens: make the one the player would make for the
/// resolved reports, and one per dashboard, as proof that Power BI gives them.
/// A warning for each secret file WebKit's web-process sandbox can read (an older install's
/// `/etc/pbikiosk/password`): the player still uses it.
/// Which means turns this screen off out of hours, found without switching anything (a CEC
/// poll, a DDC/CI read). A screen with none still works, blacked out: a warning, not a failure.
async fn screen_line(cfg: &Config) -> Line {
    let settings = cfg.display.power.clone();
    let found = tokio::task::spawn_blocking(move || {
        crate::screen_power::check(&settings, &crate::screen_power::System)
    })
    .await;
    match found {
        Ok(Ok(message)) => Line::ok("screen power", message),
        Ok(Err((message, fix))) => Line::warning("screen power", message, fix),
        Err(e) => Line::warning(
            "screen power",
            format!("not looked at: {e}"),
            "Run the check again.".into(),
        ),
    }
}

fn sandbox_lines(cfg: &Config) -> Vec<Line> {
    let bound = crate::sandbox_view::bound_paths(|k| std::env::var(k).ok());
    crate::config::secret_files(&cfg.path)
        .into_iter()
        .filter_map(|(key, path)| {
            let real = std::fs::canonicalize(&path).unwrap_or(path);
            crate::sandbox_view::secret_warning(key, &real, &bound)
        })
        .map(|(message, fix)| Line::warning("secret files", message, fix))
        .collect()
}

async fn embed_token_lines(
    api: &PowerBiClient,
    token: &Secret,
    items: &[(usize, &crate::config::PlaylistItem)],
    deadline: Instant,
) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut targets = Vec::new();
    for (i, item) in items {
        let name = format!("playlist[{}]", i + 1);
        match item.kind {
            ContentKind::Report => {
                match within(deadline, || app_only::dataset_of(api, token, item)).await {
                    Ok(d) => targets.push(app_only::target(item, d)),
                    Err(p) => lines.push(Line::from_problem(name, &p)),
                }
            }
            ContentKind::Dashboard => {
                let res = within(deadline, || {
                    api.generate_dashboard_token(
                        token,
                        &item.workspace,
                        &item.id,
                        crate::auth::lifetime::Bounds::SERVICE,
                    )
                })
                .await;
                let line = match res {
                    Ok(_) => Line::ok(
                        "embed token",
                        format!("{name}: Power BI gives the dashboard its own embed token"),
                    ),
                    Err(p) => Line::from_problem("embed token", &p),
                };
                lines.push(line);
            }
        }
    }
    if targets.is_empty() {
        return lines;
    }
    let line = match TokenRequest::for_targets(&targets) {
        Err(p) => Line::from_problem("embed token", &p),
        Ok(req) => {
            let res = within(deadline, || {
                api.generate_embed_token(token, &req, crate::auth::lifetime::Bounds::SERVICE)
            })
            .await;
            match res {
                Ok(e) => Line::ok(
                    "embed token",
                    format!(
                        "one embed token for {} report(s) of the playlist, valid {} min",
                        targets.len(),
                        e.valid_for.as_secs() / 60
                    ),
                ),
                Err(p) => Line::from_problem("embed token", &p),
            }
        }
    };
    lines.insert(0, line);
    lines
}

/// Why a screen must reach a host, as `check` names its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `cloud.authority`: sign-in.
    SignIn,
    /// `cloud.api`: the REST API.
    Api,
    /// Where the web view loads the embedded report or dashboard from.
    Embed,
    /// The report's data and cluster host (`*.analysis.windows.net` in the public cloud).
    Cluster,
    /// Microsoft's content delivery network.
    Content,
}

impl Role {
    fn line_name(self) -> &'static str {
        match self {
            Role::SignIn => "sign-in host",
            Role::Api => "api host",
            Role::Embed => "embed host",
            Role::Cluster => "cluster host",
            Role::Content => "content host",
        }
    }

    /// The step that reached the host, for the hosts `check` does not probe.
    fn proven_by(self) -> &'static str {
        match self {
            Role::SignIn => "the sign-in",
            _ => "the power bi step",
        }
    }
}

/// After a step could not reach `url` for a network reason, a probe of its host names the
/// stage it stopped at (name lookup, connection, proxy, TLS), the way pbikiosk's own client
/// goes out. The line keeps the step's problem id: it explains that failure, it is not another.
/// Only for HTTPS, which is all a real cloud serves.
async fn stage_line(
    role: Role,
    url: &url::Url,
    failed: &Problem,
    cfg: &Config,
    deadline: Instant,
) -> Option<Line> {
    let network = matches!(
        failed.id,
        ProblemId::Network | ProblemId::Tls | ProblemId::ServiceUnavailable
    );
    if !network || url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let name = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let route = Route::for_network(
        &cfg.network,
        "https",
        false,
        |k| std::env::var(k).ok(),
        web_view_route(cfg).extra_roots,
    );
    let by = deadline.max(Instant::now() + LEAST_FOR_PROBES);
    Some(match reach::probe_by(&host, port, &route, by).await {
        Ok(()) => {
            let way = match route.proxy_for(&host, port) {
                Some(proxy) => format!("through proxy {proxy}"),
                None => "direct".to_owned(),
            };
            Line::ok(
                role.line_name(),
                format!("{name}: reachable ({way}, TLS ok); the failure came after connecting"),
            )
        }
        Err(u) => {
            let p = Problem::new(u.problem_id(failed.id))
                .with_cause(format!("{name}: {}.", u.what()))
                .with_fix(u.fix());
            Line::from_problem(role.line_name(), &p)
        }
    })
}

/// The line for a host a step above already reached: what that proved, and which way it went.
fn proven_line(
    role: Role,
    url: &url::Url,
    network: &NetworkSetting,
    env: impl Fn(&str) -> Option<String>,
) -> Line {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    let name = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let route = Route::for_network(network, url.scheme(), false, env, Vec::new());
    let way = match route.proxy_for(&host, port) {
        Some(proxy) => format!("through proxy {proxy}"),
        None => "direct".to_owned(),
    };
    let tls = if url.scheme() == "https" {
        "TLS ok"
    } else {
        "plain HTTP"
    };
    Line::ok(
        role.line_name(),
        format!(
            "{name}: reached by {} above ({way}, {tls})",
            role.proven_by()
        ),
    )
}

/// The way out the player's web view takes: `[network] proxy`, else `https_proxy` from the
/// environment, trusting `cloud.ca_file` on top of the system's roots.
fn web_view_route(cfg: &Config) -> Route {
    let extra = cfg
        .cloud
        .ca_file
        .as_deref()
        .map(reach::ca_file_certificates)
        .unwrap_or_default();
    Route::for_network(
        &cfg.network,
        "https",
        true,
        |k| std::env::var(k).ok(),
        extra,
    )
}

/// When the sign-in goes through a proxy: a tunnel through it to the sign-in host, as the
/// `proxy` line. A failure that is the proxy's own (unreachable, `407`) fails the line; any
/// other (the name, a certificate an inspecting proxy put in place of Microsoft's) is left to
/// the sign-in step, whose host line names the stage and the fix.
async fn proxy_line(cfg: &Config, deadline: Instant) -> Option<Line> {
    let url = &cfg.cloud.authority;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let route = Route::for_network(
        &cfg.network,
        "https",
        false,
        |k| std::env::var(k).ok(),
        web_view_route(cfg).extra_roots,
    );
    let proxy = route.proxy_for(&host, port)?.to_owned();
    let by = deadline.max(Instant::now() + LEAST_FOR_PROBES);
    match reach::probe_by(&host, port, &route, by).await {
        Ok(()) => Some(Line::ok(
            "proxy",
            format!("{proxy}: {host} reached through it (TLS ok)"),
        )),
        Err(u) => {
            let id = u.problem_id(ProblemId::Network);
            (id != ProblemId::Network).then(|| {
                let p = Problem::new(id)
                    .with_cause(format!("{host}: {}.", u.what()))
                    .with_fix(u.fix());
                Line::from_problem("proxy", &p)
            })
        }
    }
}

/// The hosts the web view needs for the resolved items, each once: their embed hosts, their
/// data clusters, and in the public cloud Microsoft's CDN.
fn web_view_hosts<'a>(urls: impl IntoIterator<Item = &'a str> + Clone) -> Vec<(Role, String)> {
    let embed = embed_hosts(urls.clone());
    let mut hosts: Vec<(Role, String)> = embed.iter().map(|h| (Role::Embed, h.clone())).collect();
    for cluster in urls.into_iter().filter_map(cluster_host) {
        if !hosts.iter().any(|(_, h)| *h == cluster) {
            hosts.push((Role::Cluster, cluster));
        }
    }
    if embed.iter().any(|h| h.ends_with(".powerbi.com")) {
        hosts.push((Role::Content, PUBLIC_CDN.to_owned()));
    }
    hosts
}

/// The report's cluster host, named by the embed URL's `config` parameter: base64 JSON with
/// `clusterUrl`, e.g. `https://WABI-WEST-EUROPE-B-PRIMARY-redirect.analysis.windows.net`. Read
/// tolerantly (padding or not, `+` turned into a space by form decoding, URL-safe alphabet):
/// it is Microsoft's undocumented format, so anything unexpected means no cluster line rather
/// than a failed check.
fn cluster_host(embed_url: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
    let url = url::Url::parse(embed_url).ok()?;
    let (_, config) = url
        .query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("config"))?;
    let config = config.trim().replace(' ', "+");
    let json = STANDARD_PAD_INDIFFERENT
        .decode(&config)
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(&config))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let cluster = url::Url::parse(value.get("clusterUrl")?.as_str()?).ok()?;
    if cluster.scheme() != "https" {
        return None;
    }
    cluster.host_str().map(str::to_ascii_lowercase)
}

/// The hosts the web view loads the resolved items from, each once, in playlist order.
fn embed_hosts<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for url in urls {
        let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            continue;
        };
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// The line for one probed host: what was checked on the way, or where it stopped and the fix.
fn reach_line(role: Role, host: &str, route: &Route, res: Result<(), Unreachable>) -> Line {
    let name = role.line_name();
    match res {
        Ok(()) => {
            let way = match route.proxy_for(host, 443) {
                Some(proxy) => format!("through proxy {proxy}"),
                None => "direct".to_owned(),
            };
            Line::ok(name, format!("{host}: reachable ({way}, TLS ok)"))
        }
        Err(u) => Line::from_problem(name, &u.to_problem()),
    }
}

fn workspace_name<'a>(all: &'a [Workspace], id: &'a str) -> &'a str {
    all.iter()
        .find(|w| w.id.eq_ignore_ascii_case(id))
        .map_or(id, |w| w.name.as_str())
}

/// A service principal needs no licence, but must be a workspace Member, Contributor or Admin
/// to make embed tokens: name the membership when the workspace is not visible to it.
fn explain_app_access(p: Problem, all: &[Workspace], id: &str, client_id: &str) -> Problem {
    if p.id != ProblemId::ReportNotFound || all.iter().any(|w| w.id.eq_ignore_ascii_case(id)) {
        return p;
    }
    Problem::new(p.id)
        .with_cause(format!(
            "Workspace {id} is not visible to the app {client_id}: wrong id, or the app (its service principal) is not a member of the workspace."
        ))
        .with_fix("Add the app to the workspace as Member, Contributor or Admin in Power BI > Workspace > Manage access (search it by the app registration's name), or fix the workspace id (run `pbikiosk reports`).")
}

/// Turn a bare "refused" into the licence or membership advice that fits the workspace.
fn explain_access(p: Problem, all: &[Workspace], id: &str, user: &str) -> Problem {
    if !matches!(p.id, ProblemId::NoPowerbiAccess | ProblemId::ReportNotFound) {
        return p;
    }
    match all.iter().find(|w| w.id.eq_ignore_ascii_case(id)) {
        None => Problem::new(p.id)
            .with_cause(format!(
                "Workspace {id} is not visible to {user}: wrong id, or the account is not a member."
            ))
            .with_fix(
                "Add the account to the workspace (Viewer or higher) in Power BI > Workspace > Manage access, or fix the workspace id (run `pbikiosk reports`).",
            ),
        Some(w) if p.id == ProblemId::NoPowerbiAccess => {
            let licence = if w.is_on_dedicated_capacity {
                "it is on a Premium/Fabric capacity, so no extra licence is needed: check the account's role in the workspace"
            } else {
                "it is on shared capacity, so the account needs a Power BI Pro (or Premium Per User) licence"
            };
            p.with_cause(format!("Power BI refused access to workspace '{}': {licence}.", w.name))
        }
        Some(_) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_problem_fix_and_refs() {
        let p = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50076],"trace_id":"t-9"}"#,
            None,
        );
        let r = CheckReport::from_lines(vec![
            Line::ok("config", "fine"),
            Line::from_problem("sign-in", &p),
        ]);
        assert!(!r.ok);
        assert_eq!(r.problems, vec![ProblemId::MfaRequired]);
        let text = r.render();
        assert!(text.contains("FAIL  sign-in"), "{text}");
        assert!(
            text.contains("problem: mfa_required (AADSTS50076, trace id t-9)"),
            "{text}"
        );
        assert!(text.contains("fix: Exclude the service account"), "{text}");
        assert!(text.contains("Problems found: mfa_required"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["problems"][0], "mfa_required");
        assert_eq!(json["checks"][1]["aadsts"][0], 50076);
        assert_eq!(json["checks"][1]["trace_id"], "t-9");
        assert!(json["checks"][0].get("problem").is_none());
    }

    #[test]
    fn a_failure_follows_the_steps_that_passed() {
        let failure = Failure::new("power bi", Problem::new(ProblemId::NoPowerbiAccess));
        let r = CheckReport::from_failure(vec![Line::ok("sign-in", "signed in")], &failure);
        assert!(!r.ok);
        assert_eq!(r.problems, vec![ProblemId::NoPowerbiAccess]);
        assert_eq!(r.checks.len(), 2);
        assert_eq!(r.checks[1].name, "power bi");
        let text = r.render();
        assert!(
            text.starts_with("ok    sign-in   signed in\nFAIL  power bi  "),
            "{text}"
        );
        assert!(text.contains("problem: no_powerbi_access\n"), "{text}");
        assert_eq!(
            failure.to_string(),
            format!("power bi: {}", Problem::new(ProblemId::NoPowerbiAccess))
        );
    }

    #[test]
    fn licence_advice_follows_capacity() {
        let ws = vec![
            Workspace {
                id: "A".into(),
                name: "Shared".into(),
                is_on_dedicated_capacity: false,
                capacity_id: None,
            },
            Workspace {
                id: "B".into(),
                name: "Prem".into(),
                is_on_dedicated_capacity: true,
                capacity_id: None,
            },
        ];
        let denied = Problem::new(ProblemId::NoPowerbiAccess);
        let a = explain_access(denied.clone(), &ws, "a", "u@x");
        assert!(a.cause.contains("Pro"), "{}", a.cause);
        let b = explain_access(denied.clone(), &ws, "B", "u@x");
        assert!(b.cause.contains("no extra licence"), "{}", b.cause);
        let c = explain_access(denied, &ws, "C", "u@x");
        assert!(c.cause.contains("not a member"), "{}", c.cause);
    }
    #[test]
    fn embed_hosts_are_named_once_in_playlist_order() {
        let hosts = embed_hosts([
            "https://app.powerbi.com/reportEmbed?reportId=1&config=x",
            "https://APP.powerbi.com/dashboardEmbed?dashboardId=2",
            "https://app.powerbigov.us/reportEmbed?reportId=3",
            "not a url",
            "https://app.powerbi.com/reportEmbed?reportId=4",
        ]);
        assert_eq!(hosts, ["app.powerbi.com", "app.powerbigov.us"]);
        assert!(embed_hosts([]).is_empty());
    }

    /// An embed URL as the Power BI API gives it: `config` is base64 JSON, `=` escaped.
    fn embed_url(host: &str, config_json: &str) -> String {
        use base64::Engine as _;
        let config = base64::engine::general_purpose::STANDARD
            .encode(config_json)
            .replace('=', "%3d");
        format!("https://{host}/reportEmbed?reportId=r1&groupId=g1&w=2&config={config}")
    }

    #[test]
    fn the_cluster_is_read_from_the_embed_urls_config() {
        let real = r#"{"clusterUrl":"https://WABI-WEST-EUROPE-B-PRIMARY-redirect.analysis.windows.net","embedFeatures":{"modernEmbed":true}}"#;
        assert_eq!(
            cluster_host(&embed_url("app.powerbi.com", real)).as_deref(),
            Some("wabi-west-europe-b-primary-redirect.analysis.windows.net")
        );
        // A `+` in the base64 that arrived unescaped reads as a space in a query: still read.
        let plus = r#"{"clusterUrl":"https://x.analysis.windows.net","k":"~~~>"}"#;
        let url = embed_url("app.powerbi.com", plus);
        assert!(url.contains('+'), "{url}");
        assert_eq!(
            cluster_host(&url).as_deref(),
            Some("x.analysis.windows.net")
        );
        let gov =
            r#"{"clusterUrl":"https://WABI-US-GOV-VIRGINIA-redirect.analysis.usgovcloudapi.net"}"#;
        assert_eq!(
            cluster_host(&embed_url("app.powerbigov.us", gov)).as_deref(),
            Some("wabi-us-gov-virginia-redirect.analysis.usgovcloudapi.net")
        );
    }

    #[test]
    fn a_malformed_config_gives_no_cluster() {
        for url in [
            "https://app.powerbi.com/reportEmbed?reportId=1".to_owned(),
            "https://app.powerbi.com/reportEmbed?reportId=1&config=%%%not-base64%%%".to_owned(),
            "https://app.powerbi.com/reportEmbed?config=bm90IGpzb24%3d".to_owned(),
            embed_url("app.powerbi.com", r#"{"embedFeatures":{}}"#),
            embed_url("app.powerbi.com", r#"{"clusterUrl":42}"#),
            embed_url("app.powerbi.com", r#"{"clusterUrl":"not a url"}"#),
            embed_url(
                "app.powerbi.com",
                r#"{"clusterUrl":"http://plain.example"}"#,
            ),
            "not a url".to_owned(),
        ] {
            assert_eq!(cluster_host(&url), None, "{url}");
        }
    }

    #[test]
    fn the_web_view_hosts_are_embed_cluster_and_the_public_cdn_each_once() {
        let public = embed_url(
            "app.powerbi.com",
            r#"{"clusterUrl":"https://wabi-a-redirect.analysis.windows.net"}"#,
        );
        let other = embed_url(
            "app.powerbi.com",
            r#"{"clusterUrl":"https://WABI-A-redirect.analysis.windows.net"}"#,
        );
        let hosts = web_view_hosts([public.as_str(), other.as_str(), "broken"]);
        assert_eq!(
            hosts,
            [
                (Role::Embed, "app.powerbi.com".to_owned()),
                (
                    Role::Cluster,
                    "wabi-a-redirect.analysis.windows.net".to_owned()
                ),
                (Role::Content, PUBLIC_CDN.to_owned()),
            ]
        );
        // National clouds: Microsoft's list names no CDN for them, so none is probed.
        let gov = embed_url(
            "app.powerbigov.us",
            r#"{"clusterUrl":"https://wabi-g-redirect.analysis.usgovcloudapi.net"}"#,
        );
        let hosts = web_view_hosts([gov.as_str()]);
        assert_eq!(
            hosts,
            [
                (Role::Embed, "app.powerbigov.us".to_owned()),
                (
                    Role::Cluster,
                    "wabi-g-redirect.analysis.usgovcloudapi.net".to_owned()
                ),
            ]
        );
        assert!(web_view_hosts([]).is_empty());
    }

    #[test]
    fn proven_lines_say_which_step_reached_the_host_and_how() {
        let login = url::Url::parse("https://login.microsoftonline.com/").unwrap();
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://10.0.0.5:3128".to_owned()),
            "NO_PROXY" => Some("api.powerbi.com".to_owned()),
            _ => None,
        };
        let l = proven_line(Role::SignIn, &login, &NetworkSetting::FromEnvironment, env);
        assert!(l.ok);
        assert_eq!(l.name, "sign-in host");
        assert_eq!(
            l.message.as_deref(),
            Some(
                "login.microsoftonline.com: reached by the sign-in above (through proxy 10.0.0.5:3128, TLS ok)"
            )
        );
        let api = url::Url::parse("https://api.powerbi.com/").unwrap();
        let l = proven_line(Role::Api, &api, &NetworkSetting::FromEnvironment, env);
        assert_eq!(l.name, "api host");
        assert_eq!(
            l.message.as_deref(),
            Some("api.powerbi.com: reached by the power bi step above (direct, TLS ok)")
        );
        let sim = url::Url::parse("http://127.0.0.1:8080/").unwrap();
        let l = proven_line(
            Role::SignIn,
            &sim,
            &NetworkSetting::FromEnvironment,
            |_: &str| None,
        );
        assert_eq!(
            l.message.as_deref(),
            Some("127.0.0.1:8080: reached by the sign-in above (direct, plain HTTP)")
        );
    }

    #[test]
    fn reach_lines_say_what_was_checked_or_where_it_stopped() {
        let proxied = Route {
            proxy: Some("127.0.0.1:3128".into()),
            ..Route::default()
        };
        let ok = reach_line(Role::Embed, "app.powerbi.com", &proxied, Ok(()));
        assert!(ok.ok);
        assert_eq!(ok.name, "embed host");
        assert_eq!(
            ok.message.as_deref(),
            Some("app.powerbi.com: reachable (through proxy 127.0.0.1:3128, TLS ok)")
        );
        let direct = reach_line(Role::Embed, "app.powerbi.com", &Route::default(), Ok(()));
        assert_eq!(
            direct.message.as_deref(),
            Some("app.powerbi.com: reachable (direct, TLS ok)")
        );

        let refused = Unreachable {
            host: "app.powerbi.com".into(),
            stage: reach::Stage::Proxy,
            failure: reach::Failure::ProxyRefused {
                proxy: "127.0.0.1:3128".into(),
                status: "502 Bad Gateway".into(),
            },
        };
        let line = reach_line(Role::Embed, "app.powerbi.com", &proxied, Err(refused));
        assert!(!line.ok);
        assert_eq!(line.problem, Some(ProblemId::EmbedUnreachable));
        let msg = line.message.as_deref().unwrap();
        assert!(msg.contains("app.powerbi.com"), "{msg}");
        assert!(msg.contains("502 Bad Gateway"), "{msg}");
        assert!(line.fix.as_deref().unwrap().contains("127.0.0.1:3128"));
        let r = CheckReport::from_lines(vec![Line::ok("config", "fine"), line]);
        assert!(!r.ok);
        assert_eq!(r.problems, vec![ProblemId::EmbedUnreachable]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][1]["name"], "embed host");
        assert_eq!(json["checks"][1]["problem"], "embed_unreachable");
    }
}
