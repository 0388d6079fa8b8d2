//! Power BI REST client: what a playlist entry points at, and what the account can see.
//!
//! Calls take the access token as an argument instead of owning a token source: `check` uses
//! one token for a handful of calls, the player hands in whatever the token service holds.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::lifetime::{self, Bounds};
use crate::config;
use crate::content::ContentKind;
use crate::net;
use crate::playlist::Item;
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::secret::Secret;

/// How long one logical call may spend retrying 429/5xx answers before it reports them.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Pauses between retries of one call, within its retry budget.
const RETRY_BACKOFF: net::Backoff = net::Backoff {
    first: Duration::from_millis(500),
    max: Duration::from_secs(8),
};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub is_on_dedicated_capacity: bool,
    #[serde(default)]
    pub capacity_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: String,
    pub name: String,
    pub embed_url: String,
    #[serde(default)]
    pub dataset_id: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub report_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub order: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub id: String,
    pub display_name: String,
    pub embed_url: String,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// For sign-in with a service principal, which embeds with embed tokens instead of the AAD
/// token.
#[derive(Debug, Clone)]
pub struct EmbedToken {
    pub token: Secret,
    pub token_id: String,
    /// How long from now the token may be used, from Power BI's `expiration`, bounded like
    /// access token lifetimes (see [`crate::auth::lifetime`]).
    pub valid_for: Duration,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
}

#[derive(Deserialize)]
struct EmbedTokenBody {
    token: String,
    #[serde(rename = "tokenId", default)]
    token_id: String,
    #[serde(default)]
    expiration: String,
}

/// What a playlist entry resolved to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    pub kind: ContentKind,
    pub workspace: String,
    pub id: String,
    pub name: String,
    pub embed_url: String,
    /// Pages to show, in order. Empty for dashboards.
    pub pages: Vec<Page>,
}

#[derive(Clone)]
pub struct PowerBiClient {
    http: reqwest::Client,
    api: url::Url,
    retry_budget: Duration,
    /// Calls are made by a service principal: refusals are read as an app's refusals.
    app_only: bool,
}

impl PowerBiClient {
    /// `api` is the service root, e.g. `https://api.powerbi.com`; `/v1.0/myorg` is appended.
    pub fn new(http: reqwest::Client, api: url::Url) -> Self {
        Self {
            http,
            api,
            retry_budget: DEFAULT_RETRY_BUDGET,
            app_only: false,
        }
    }

    /// The caller is a service principal: a 401/403 means the app is not allowed, not that a
    /// user lacks a licence, and a 404 may mean the app is not a workspace member.
    pub(crate) fn for_app(mut self) -> Self {
        self.app_only = true;
        self
    }

    /// One embed token for every report and dataset of `request` (`POST GenerateToken`).
    pub(crate) async fn generate_embed_token(
        &self,
        token: &Secret,
        request: &crate::embed_token::TokenRequest,
        bounds: Bounds,
    ) -> Result<EmbedToken, Problem> {
        let url = self.url(&["GenerateToken"]);
        let b: EmbedTokenBody = self
            .send_with(|| self.http.post(url.clone()).json(request), token, true)
            .await?;
        embed_token_from(b, bounds)
    }

    /// A view-only embed token for one dashboard: dashboards cannot share the multi-resource
    /// token of the reports.
    pub(crate) async fn generate_dashboard_token(
        &self,
        token: &Secret,
        workspace: &str,
        dashboard: &str,
        bounds: Bounds,
    ) -> Result<EmbedToken, Problem> {
        let url = self.url(&[
            "groups",
            workspace,
            "dashboards",
            dashboard,
            "GenerateToken",
        ]);
        let body = serde_json::json!({ "accessLevel": "View" });
        let b: EmbedTokenBody = self
            .send_with(|| self.http.post(url.clone()).json(&body), token, true)
            .await?;
        embed_token_from(b, bounds)
    }

    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.api.clone();
        {
            let mut path = url.path_segments_mut().expect("api is a base URL");
            path.pop_if_empty();
            path.extend(["v1.0", "myorg"]);
            path.extend(segments);
        }
        url
    }

    pub async fn workspaces(&self, token: &Secret) -> Result<Vec<Workspace>, Problem> {
        let l: List<Workspace> = self.get(token, &["groups"]).await?;
        Ok(l.value)
    }

    pub async fn reports(&self, token: &Secret, workspace: &str) -> Result<Vec<Report>, Problem> {
        let l: List<Report> = self.get(token, &["groups", workspace, "reports"]).await?;
        Ok(l.value)
    }

    pub async fn report(
        &self,
        token: &Secret,
        workspace: &str,
        report: &str,
    ) -> Result<Report, Problem> {
        self.get(token, &["groups", workspace, "reports", report])
            .await
    }

    /// The report's pages, in display order.
    pub async fn pages(
        &self,
        token: &Secret,
        workspace: &str,
        report: &str,
    ) -> Result<Vec<Page>, Problem> {
        let mut l: List<Page> = self
            .get(token, &["groups", workspace, "reports", report, "pages"])
            .await?;
        l.value.sort_by_key(|p| p.order);
        Ok(l.value)
    }

    pub async fn dashboards(
        &self,
        token: &Secret,
        workspace: &str,
    ) -> Result<Vec<Dashboard>, Problem> {
        let l: List<Dashboard> = self
            .get(token, &["groups", workspace, "dashboards"])
            .await?;
        Ok(l.value)
    }

    pub async fn dashboard(
        &self,
        token: &Secret,
        workspace: &str,
        dashboard: &str,
    ) -> Result<Dashboard, Problem> {
        self.get(token, &["groups", workspace, "dashboards", dashboard])
            .await
    }

    /// A view-only embed token for one report (optional; the player embeds with the AAD token).
    #[cfg_attr(not(test), expect(dead_code))]
    pub async fn generate_token(
        &self,
        token: &Secret,
        workspace: &str,
        report: &str,
    ) -> Result<EmbedToken, Problem> {
        let url = self.url(&["groups", workspace, "reports", report, "GenerateToken"]);
        let body = serde_json::json!({ "accessLevel": "View" });
        let b: EmbedTokenBody = self
            .send(|| self.http.post(url.clone()).json(&body), token)
            .await?;
        let valid_for = lifetime::until(
            "expiration",
            &b.expiration,
            chrono::Utc::now(),
            Bounds::SERVICE,
        )
        .map_err(|e| {
            Problem::new(ProblemId::ServiceUnavailable).with_cause(format!(
                "Power BI answered GenerateToken with an embed token whose {e}."
            ))
        })?;
        Ok(EmbedToken {
            token: Secret::new(b.token),
            token_id: b.token_id,
            valid_for,
        })
    }

    /// Resolve one playlist entry: its name, embed URL and the pages to show.
    /// `wanted_pages` are page names (`ReportSection...`) or, as a courtesy, display names.
    pub async fn resolve(
        &self,
        token: &Secret,
        workspace: &str,
        kind: ContentKind,
        id: &str,
        wanted_pages: &[String],
    ) -> Result<Resolved, Problem> {
        match kind {
            ContentKind::Report => {
                let report = self.report(token, workspace, id).await.map_err(|p| {
                    not_found_detail(p, format!("Report {id} in workspace {workspace}"))
                })?;
                checked_embed_url(
                    &report.embed_url,
                    &format!("report '{}' in workspace {workspace}", report.name),
                )?;
                let all = self.pages(token, workspace, id).await?;
                let pages = select_pages(&report.name, &all, wanted_pages)?;
                Ok(Resolved {
                    kind: ContentKind::Report,
                    workspace: workspace.to_owned(),
                    id: report.id,
                    name: report.name,
                    embed_url: report.embed_url,
                    pages,
                })
            }
            ContentKind::Dashboard => {
                let d = self.dashboard(token, workspace, id).await.map_err(|p| {
                    not_found_detail(p, format!("Dashboard {id} in workspace {workspace}"))
                })?;
                checked_embed_url(
                    &d.embed_url,
                    &format!("dashboard '{}' in workspace {workspace}", d.display_name),
                )?;
                Ok(Resolved {
                    kind: ContentKind::Dashboard,
                    workspace: workspace.to_owned(),
                    id: d.id,
                    name: d.display_name,
                    embed_url: d.embed_url,
                    pages: Vec::new(),
                })
            }
        }
    }
}

/// The embed URL the API gave, if the web view may open it: https on a Power BI host. Checked
/// here, where it arrives, so neither the player nor `check` goes on with another one.
fn checked_embed_url(url: &str, what: &str) -> Result<(), Problem> {
    crate::embed_url::check(url, &crate::shell::powerbi_hosts()).map_err(|e| e.to_problem(what))
}

impl PowerBiClient {
    async fn get<T: DeserializeOwned>(&self, token: &Secret, path: &[&str]) -> Result<T, Problem> {
        let url = self.url(path);
        self.send(|| self.http.get(url.clone()), token).await
    }

    /// Send with bounded retries of transient answers (429/5xx/timeouts), honouring
    /// `Retry-After`, within the retry budget.
    async fn send<T: DeserializeOwned>(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        token: &Secret,
    ) -> Result<T, Problem> {
        self.send_with(request, token, false).await
    }

    /// [`Self::send`]; `generate` marks a GenerateToken call, whose refusals are the token's.
    async fn send_with<T: DeserializeOwned>(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        token: &Secret,
        generate: bool,
    ) -> Result<T, Problem> {
        let deadline = tokio::time::Instant::from_std(Instant::now() + self.retry_budget);
        net::retry(
            "Power BI",
            RETRY_BACKOFF,
            deadline,
            // TokenExpired is transient for the caller (get a new token), not for us.
            |p| p.retry_class() == RetryClass::Transient && p.id != ProblemId::TokenExpired,
            || self.send_once(&request, token, generate),
        )
        .await
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        request: &impl Fn() -> reqwest::RequestBuilder,
        token: &Secret,
        generate: bool,
    ) -> Result<T, Problem> {
        let answer = net::send_and_read(
            request().bearer_auth(token.expose()),
            "the Power BI service",
            net::API_BODY_LIMIT,
        )
        .await?;
        if !(200..300).contains(&answer.status) {
            if self.app_only {
                return Err(crate::embed_token::classify(
                    answer.status,
                    &answer.body,
                    answer.error_info.as_deref(),
                    answer.retry_after,
                    generate,
                ));
            }
            return Err(Problem::from_powerbi_error(
                answer.status,
                &answer.body,
                answer.retry_after,
            ));
        }
        serde_json::from_str(&answer.body).map_err(|e| {
            Problem::new(ProblemId::ServiceUnavailable).with_cause(format!(
                "Power BI answered with a document pbikiosk cannot read ({e})."
            ))
        })
    }
}

/// Read GenerateToken's answer: its `expiration` becomes a lifetime within `bounds`.
fn embed_token_from(b: EmbedTokenBody, bounds: Bounds) -> Result<EmbedToken, Problem> {
    let valid_for = lifetime::until("expiration", &b.expiration, chrono::Utc::now(), bounds)
        .map_err(|e| {
            Problem::new(ProblemId::ServiceUnavailable).with_cause(format!(
                "Power BI answered GenerateToken with an embed token whose {e}."
            ))
        })?;
    if b.token.is_empty() {
        return Err(Problem::new(ProblemId::ServiceUnavailable)
            .with_cause("Power BI answered GenerateToken without a token."));
    }
    Ok(EmbedToken {
        token: Secret::new(b.token),
        token_id: b.token_id,
        valid_for,
    })
}

fn not_found_detail(p: Problem, what: String) -> Problem {
    if p.id == ProblemId::ReportNotFound {
        p.with_cause(format!(
            "{what} does not exist or the account is not a member of the workspace."
        ))
    } else {
        p
    }
}

/// Pick the configured pages out of the report's pages. No list means every page.
pub fn select_pages(report: &str, all: &[Page], wanted: &[String]) -> Result<Vec<Page>, Problem> {
    if wanted.is_empty() {
        if all.is_empty() {
            return Err(Problem::new(ProblemId::ReportNotFound)
                .with_cause(format!("Report '{report}' has no pages.")));
        }
        return Ok(all.to_vec());
    }
    wanted
        .iter()
        .map(|w| {
            all.iter()
                .find(|p| p.name == *w)
                .or_else(|| all.iter().find(|p| p.display_name.eq_ignore_ascii_case(w)))
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<String> = all
                        .iter()
                        .map(|p| format!("{} ({})", p.name, p.display_name))
                        .collect();
                    Problem::new(ProblemId::ReportNotFound)
                        .with_cause(format!("Report '{report}' has no page '{w}'."))
                        .with_fix(format!(
                            "Use one of these page names in pages = [...]: {}",
                            known.join(", ")
                        ))
                })
        })
        .collect()
}

/// Resolving the whole playlist, for the player.
impl PowerBiClient {
    /// Resolve every playlist item, in order. A failure that concerns the whole account or the
    /// network stops the lot (the player retries soon); a missing report only drops its own
    /// item.
    pub async fn resolve_playlist(
        &self,
        token: &Secret,
        items: &[config::PlaylistItem],
    ) -> Result<Vec<Result<Item, Problem>>, Problem> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            match self
                .resolve(token, &it.workspace, it.kind, &it.id, &it.pages)
                .await
            {
                Ok(resolved) => out.push(Ok(Item {
                    resolved,
                    seconds: it.seconds,
                    bookmarks: it.bookmarks.clone(),
                    refresh_seconds: it.refresh_seconds,
                })),
                Err(p)
                    if p.retry_class() == RetryClass::Transient
                        || p.id == ProblemId::NoPowerbiAccess =>
                {
                    return Err(p);
                }
                Err(p) => out.push(Err(p)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str, display: &str, order: i64) -> Page {
        Page {
            name: name.into(),
            display_name: display.into(),
            order,
        }
    }

    #[test]
    fn page_selection() {
        let all = vec![
            page("ReportSection", "Overview", 0),
            page("ReportSection2", "Detail", 1),
        ];
        assert_eq!(select_pages("R", &all, &[]).unwrap().len(), 2);
        let picked =
            select_pages("R", &all, &["ReportSection2".into(), "overview".into()]).unwrap();
        assert_eq!(picked[0].name, "ReportSection2");
        assert_eq!(picked[1].name, "ReportSection");
        let err = select_pages("R", &all, &["Nope".into()]).unwrap_err();
        assert_eq!(err.id, ProblemId::ReportNotFound);
        assert!(err.cause.contains("'Nope'"));
        assert!(err.fix.contains("ReportSection2 (Detail)"));
        assert_eq!(
            select_pages("R", &[], &[]).unwrap_err().id,
            ProblemId::ReportNotFound
        );
    }

    #[test]
    fn urls() {
        let c = PowerBiClient::new(
            reqwest::Client::new(),
            url::Url::parse("https://api.powerbi.com").unwrap(),
        );
        assert_eq!(
            c.url(&["groups", "g", "reports", "r", "pages"]).as_str(),
            "https://api.powerbi.com/v1.0/myorg/groups/g/reports/r/pages"
        );
        let c = PowerBiClient::new(
            reqwest::Client::new(),
            url::Url::parse("http://127.0.0.1:1/").unwrap(),
        );
        assert_eq!(
            c.url(&["groups"]).as_str(),
            "http://127.0.0.1:1/v1.0/myorg/groups"
        );
    }
}

/// `resolve_playlist` against the simulator, over HTTP.
#[cfg(test)]
mod playlist_tests {
    use super::*;
    use crate::auth::SignInSettings;
    use crate::auth::client::{AadClient, TokenEndpoint as _};
    use crate::config::{Config, SecretSources};
    use crate::sim::scenario::builtin_ids::*;
    use crate::sim::{Control, Scenario, SimHandle, Simulator};

    /// The simulator, the config it writes for `user`, and a fresh access token for it.
    async fn setup(scenario: Scenario, user: &str) -> (SimHandle, Config, PowerBiClient, Secret) {
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cfg = config::parse(
            &sim.config_snippet(user),
            std::path::Path::new("(test)"),
            &SecretSources::default(),
        )
        .unwrap();
        let http = reqwest::Client::new();
        let grant = AadClient::new(http.clone(), SignInSettings::from_config(&cfg))
            .password()
            .await
            .unwrap();
        let api = PowerBiClient::new(http, cfg.cloud.api.clone());
        (sim, cfg, api, grant.access_token)
    }

    fn kiosk() -> String {
        format!("kiosk@{TENANT_DOMAIN}")
    }

    #[tokio::test]
    async fn generate_token_gives_a_view_token_for_a_report_the_account_sees() {
        let (_sim, _cfg, api, token) = setup(Scenario::builtin(), &kiosk()).await;
        let embed = api
            .generate_token(&token, WS_SALES, REPORT_SALES)
            .await
            .unwrap();
        assert!(embed.token.expose().starts_with("H4sI"));
        assert!(!embed.token_id.is_empty());
        // The simulator's embed tokens expire with the access token (about an hour).
        assert!(
            (Duration::from_secs(3000)..=Duration::from_secs(3600)).contains(&embed.valid_for),
            "{:?}",
            embed.valid_for
        );
        let unknown = "00000000-0000-4000-8000-000000000000";
        assert!(api.generate_token(&token, WS_SALES, unknown).await.is_err());
    }

    #[tokio::test]
    async fn every_item_resolves_in_order() {
        let (_sim, mut cfg, api, token) = setup(Scenario::builtin(), &kiosk()).await;
        cfg.playlist.push(config::PlaylistItem {
            workspace: WS_SALES.into(),
            kind: ContentKind::Dashboard,
            id: DASHBOARD_EXEC.into(),
            pages: Vec::new(),
            bookmarks: vec!["Bookmark1".into()],
            seconds: 12,
            refresh_seconds: Some(300),
            identity: None,
            when: Default::default(),
        });
        let items = api.resolve_playlist(&token, &cfg.playlist).await.unwrap();
        assert_eq!(items.len(), cfg.playlist.len());
        let ids: Vec<&str> = items
            .iter()
            .map(|i| i.as_ref().unwrap().resolved.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                REPORT_SALES,
                REPORT_OPERATIONS,
                REPORT_SERVICE,
                DASHBOARD_EXEC
            ]
        );
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.resolved.kind, ContentKind::Report);
        assert!(!first.resolved.pages.is_empty());
        let last = items[3].as_ref().unwrap();
        assert_eq!(last.resolved.kind, ContentKind::Dashboard);
        assert_eq!(
            (
                last.seconds,
                last.bookmarks.as_slice(),
                last.refresh_seconds
            ),
            (12, ["Bookmark1".to_owned()].as_slice(), Some(300))
        );
    }

    #[tokio::test]
    async fn a_missing_report_drops_only_its_own_item() {
        let (_sim, mut cfg, api, token) = setup(Scenario::builtin(), &kiosk()).await;
        let missing = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f";
        let mut gone = cfg.playlist[0].clone();
        gone.kind = ContentKind::Report;
        gone.id = missing.into();
        cfg.playlist.insert(1, gone);
        let items = api.resolve_playlist(&token, &cfg.playlist).await.unwrap();
        assert_eq!(items.len(), 4);
        let p = items[1].as_ref().unwrap_err();
        assert_eq!(p.id, ProblemId::ReportNotFound);
        assert!(p.cause.contains(missing), "{}", p.cause);
        for i in [0, 2, 3] {
            assert!(items[i].is_ok(), "item {i}: {:?}", items[i]);
        }
    }

    #[tokio::test]
    async fn an_embed_url_off_power_bi_is_refused_item_by_item_naming_the_host() {
        let mut scenario = Scenario::builtin();
        scenario.embed_host = "https://reports.example.net".into();
        let (_sim, cfg, api, token) = setup(scenario, &kiosk()).await;
        let items = api.resolve_playlist(&token, &cfg.playlist).await.unwrap();
        assert_eq!(items.len(), cfg.playlist.len());
        for item in &items {
            let p = item.as_ref().unwrap_err();
            assert_eq!(p.id, ProblemId::EmbedUrlRefused);
            assert!(p.cause.contains("on reports.example.net,"), "{}", p.cause);
        }
    }

    #[tokio::test]
    async fn a_transient_failure_stops_the_lot() {
        let (sim, cfg, api, token) = setup(Scenario::builtin(), &kiosk()).await;
        // Longer than the retry budget: the client gives up at once instead of waiting.
        sim.control(Control::ThrottleApi {
            count: 100,
            retry_after_seconds: 120,
        });
        let p = api
            .resolve_playlist(&token, &cfg.playlist)
            .await
            .unwrap_err();
        assert_eq!(p.id, ProblemId::Throttled);
    }

    #[tokio::test]
    async fn no_power_bi_access_stops_the_lot() {
        let (_sim, cfg, api, token) =
            setup(Scenario::builtin(), &format!("nolicence@{TENANT_DOMAIN}")).await;
        assert!(!cfg.playlist.is_empty());
        let p = api
            .resolve_playlist(&token, &cfg.playlist)
            .await
            .unwrap_err();
        assert_eq!(p.id, ProblemId::NoPowerbiAccess);
    }
}
