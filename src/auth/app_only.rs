//! Sign-in as a service principal, for the player: the client-credentials grant, then one
//! Power BI embed token for every report of the playlist, and one per dashboard.
//!
//! [`EmbedTokenEndpoint`] is a [`TokenEndpoint`] whose "access token" is the embed token, so
//! the session's rules (renew at 60 % of the lifetime, back off, wait out a failure a person
//! must fix) and the player's hand-over to live embeds (`setAccessToken`, no reload) apply to
//! embed tokens unchanged. The Entra token it was made from is kept in an [`ApiToken`] for the
//! REST calls that resolve the playlist: the page never sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TokenGrant;
use super::client::{AadClient, Secrets, TokenEndpoint};
use super::lifetime::Bounds;
use super::realm::Realm;
use crate::config::PlaylistItem;
use crate::content::ContentKind;
use crate::embed_token::{ItemTokens, Target, TokenRequest};
use crate::powerbi::PowerBiClient;
use crate::problem::{Problem, ProblemId};
use crate::secret::Secret;

/// The latest Entra token of the app, for REST calls. Shared between the endpoint (which
/// writes it) and the outlet (which resolves the playlist with it).
#[derive(Clone, Default)]
pub(crate) struct ApiToken(Arc<Mutex<Option<(Secret, Instant)>>>);

impl ApiToken {
    /// The token, if it is still good at `now`.
    pub(crate) fn current(&self, now: Instant) -> Option<Secret> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(t, _)| t.clone())
    }

    fn set(&self, token: Secret, until: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((token, until));
    }
}

pub(crate) struct EmbedTokenEndpoint {
    aad: AadClient,
    api: PowerBiClient,
    items: Vec<PlaylistItem>,
    bounds: Bounds,
    api_token: ApiToken,
    /// Report id → dataset id: a report's dataset rarely changes, so it is asked once.
    datasets: Mutex<HashMap<String, String>>,
}

impl EmbedTokenEndpoint {
    pub(crate) fn new(
        aad: AadClient,
        api: PowerBiClient,
        items: Vec<PlaylistItem>,
        bounds: Bounds,
    ) -> Self {
        Self {
            aad,
            api,
            items,
            bounds,
            api_token: ApiToken::default(),
            datasets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn api_token(&self) -> ApiToken {
        self.api_token.clone()
    }

    fn cached_dataset(&self, report: &str) -> Option<String> {
        let m = self.datasets.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&report.to_ascii_lowercase()).cloned()
    }

    fn remember_dataset(&self, report: &str, dataset: &str) {
        let mut m = self.datasets.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(report.to_ascii_lowercase(), dataset.to_owned());
    }

    async fn embed_grant(&self) -> Result<TokenGrant, Problem> {
        let grant = self.aad.client_credentials().await?;
        let now = Instant::now();
        self.api_token.set(
            grant.access_token.clone(),
            now.checked_add(grant.expires_in).unwrap_or(now),
        );
        let mut targets = Vec::new();
        for it in self.items.iter().filter(|i| i.kind == ContentKind::Report) {
            let dataset = match self.cached_dataset(&it.id) {
                Some(d) => d,
                None => match dataset_of(&self.api, &grant.access_token, it).await {
                    Ok(d) => {
                        self.remember_dataset(&it.id, &d);
                        d
                    }
                    // Resolving the playlist names the missing item; the others still play.
                    Err(p) if p.id == ProblemId::ReportNotFound => {
                        tracing::warn!(report = %it.id, problem = %p, "report left out of the embed token");
                        continue;
                    }
                    Err(p) => return Err(p),
                },
            };
            targets.push(target(it, dataset));
        }
        let items = self.dashboard_tokens(&grant.access_token).await?;
        let Some(request) = (!targets.is_empty())
            .then(|| TokenRequest::for_targets(&targets))
            .transpose()?
        else {
            // Dashboards only: each embeds with its own token, and the shared one is the
            // first dashboard's (no report uses it).
            let Some(shared) = items.tokens.first().cloned() else {
                return Err(nothing_found(
                    self.items.iter().any(|i| i.kind == ContentKind::Report),
                ));
            };
            return Ok(TokenGrant {
                access_token: shared,
                refresh_token: None,
                expires_in: items.valid_for.min(grant.expires_in),
                item_tokens: items.by_id,
            });
        };
        let embed = self
            .api
            .generate_embed_token(&grant.access_token, &request, self.bounds)
            .await?;
        tracing::info!(
            token_id = %embed.token_id,
            reports = targets.len(),
            dashboards = items.by_id.len(),
            valid_s = embed.valid_for.as_secs(),
            "embed token generated"
        );
        Ok(TokenGrant {
            access_token: embed.token,
            refresh_token: None,
            // An embed token dies with the Entra token it was made from; the renewal covers
            // the dashboards' tokens too, so the earliest of them all counts.
            expires_in: embed.valid_for.min(items.valid_for).min(grant.expires_in),
            item_tokens: items.by_id,
        })
    }

    /// One embed token per dashboard of the playlist (GenerateToken under the dashboard): a
    /// dashboard cannot be named in the reports' multi-resource call.
    async fn dashboard_tokens(&self, entra: &Secret) -> Result<DashboardTokens, Problem> {
        let mut out = DashboardTokens {
            by_id: ItemTokens::default(),
            tokens: Vec::new(),
            valid_for: Duration::MAX,
        };
        for it in self
            .items
            .iter()
            .filter(|i| i.kind == ContentKind::Dashboard)
        {
            if out.by_id.get(&it.id).is_some() {
                continue;
            }
            match self
                .api
                .generate_dashboard_token(entra, &it.workspace, &it.id, self.bounds)
                .await
            {
                Ok(t) => {
                    tracing::info!(
                        token_id = %t.token_id,
                        dashboard = %it.id,
                        valid_s = t.valid_for.as_secs(),
                        "dashboard embed token generated"
                    );
                    out.valid_for = out.valid_for.min(t.valid_for);
                    out.by_id.insert(&it.id, t.token.clone());
                    out.tokens.push(t.token);
                }
                // Resolving the playlist names the missing dashboard; the others still play.
                Err(p) if p.id == ProblemId::ReportNotFound => {
                    tracing::warn!(dashboard = %it.id, problem = %p, "dashboard left out of the embed tokens");
                }
                Err(p) => return Err(p),
            }
        }
        Ok(out)
    }
}

/// The dashboards' embed tokens of one renewal.
struct DashboardTokens {
    by_id: ItemTokens,
    /// The same tokens in playlist order.
    tokens: Vec<Secret>,
    /// The shortest lifetime among them (`Duration::MAX` for none).
    valid_for: Duration,
}

/// Nothing of the playlist was found for the app, so no embed token can be made.
fn nothing_found(any_report: bool) -> Problem {
    let what = if any_report {
        "report"
    } else {
        "report or dashboard"
    };
    Problem::new(ProblemId::ReportNotFound)
        .with_cause(format!(
            "No {what} of the playlist was found for the app, so there is nothing to make an embed token for."
        ))
        .with_fix("Add the app to the playlist's workspaces as Member, Contributor or Admin, or fix the ids in [[playlist]] (run `pbikiosk reports`).")
}

/// What the embed token must cover for one report item.
pub(crate) fn target(item: &PlaylistItem, dataset: String) -> Target {
    Target {
        report: item.id.clone(),
        dataset,
        identity: item
            .identity
            .as_ref()
            .map(|i| (i.username.clone(), i.roles.clone())),
    }
}

/// The dataset a report item shows, from the REST API.
pub(crate) async fn dataset_of(
    api: &PowerBiClient,
    token: &Secret,
    item: &PlaylistItem,
) -> Result<String, Problem> {
    let report = api.report(token, &item.workspace, &item.id).await?;
    report.dataset_id.filter(|d| !d.is_empty()).ok_or_else(|| {
        Problem::new(ProblemId::EmbedTokenRefused).with_cause(format!(
            "Report '{}' has no dataset (a paginated report?), so no embed token can name it.",
            report.name
        ))
    })
}

fn user_only() -> Problem {
    Problem::new(ProblemId::Config)
        .with_cause("A service principal signs in as the app; there is no user to sign in.")
}

impl TokenEndpoint for EmbedTokenEndpoint {
    async fn realm(&self) -> Result<Option<Realm>, Problem> {
        Ok(None)
    }

    async fn password(&self) -> Result<TokenGrant, Problem> {
        Err(user_only())
    }

    async fn refresh(&self, _refresh_token: &Secret) -> Result<TokenGrant, Problem> {
        Err(user_only())
    }

    fn replace_secrets(&mut self, secrets: Secrets) {
        self.aad.replace_secrets(secrets);
    }

    async fn client_credentials(&self) -> Result<TokenGrant, Problem> {
        self.embed_grant().await
    }
}

#[cfg(test)]
mod tests {
    //! Against the simulator over real HTTP: the embed tokens the player would be handed.

    use std::time::{Duration, Instant};

    use super::*;
    use crate::auth::SignInSettings;
    use crate::auth::service::{TokenService, TokenState};
    use crate::auth::session::TokenSession;
    use crate::config::SecretSources;
    use crate::problem::ProblemId;
    use crate::sim::{Scenario, SimHandle, Simulator};

    async fn start(scenario: Scenario) -> (SimHandle, TokenService, ApiToken) {
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let user = sim.demo_username().unwrap();
        let cfg = crate::config::parse(
            &sim.config_snippet(&user),
            std::path::Path::new("(test)"),
            &SecretSources::default(),
        )
        .unwrap();
        let http = crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
            .unwrap();
        let aad = AadClient::new(http.clone(), SignInSettings::from_config(&cfg))
            .with_min_lifetime(Duration::from_secs(1));
        let api = PowerBiClient::new(http, cfg.cloud.api.clone()).for_app();
        let bounds = aad.lifetimes();
        let endpoint = EmbedTokenEndpoint::new(aad, api, cfg.playlist.clone(), bounds);
        let api_token = endpoint.api_token();
        let session = TokenSession::new(endpoint, false, Duration::from_secs(900)).app_only();
        (sim, TokenService::spawn(session), api_token)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn embed_tokens_are_renewed_before_they_expire() {
        let mut scenario = Scenario::named("service-principal").unwrap();
        scenario.token_lifetime_seconds = 5;
        let (sim, service, api_token) = start(scenario).await;
        let first = service.token().await.expect("an embed token");
        assert!(first.expose().starts_with("H4sI"), "not an embed token");
        let entra = api_token
            .current(Instant::now())
            .expect("the Entra token is kept");
        assert_ne!(entra.expose(), first.expose());

        let start = Instant::now();
        let mut generations = Vec::new();
        while start.elapsed() < Duration::from_secs(12) {
            match service.current() {
                TokenState::Valid {
                    generation,
                    expires_at,
                    ..
                } => {
                    assert!(expires_at > Instant::now(), "an expired token was served");
                    if generations.last() != Some(&generation) {
                        generations.push(generation);
                    }
                }
                other => panic!("no token at {:?}: {other:?}", start.elapsed()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Renewed every ~3 s (60 % of 5 s).
        assert!(generations.len() >= 3, "{generations:?}");
        let stats = sim.stats();
        assert_eq!(stats.token_by_grant.get("password"), None);
        assert!(stats.token_by_grant.get("client_credentials") >= Some(&3));
        // The datasets were looked up once, not at every renewal.
        assert_eq!(stats.api_by_kind.get("report").copied(), Some(3));
    }

    /// What the simulator's embed page says of `token` for `item` (`reportId` / `dashboardId`).
    async fn opens(sim: &SimHandle, param: &str, item: &str, token: &Secret) -> bool {
        let v: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/_sim/check-token?{param}={item}&tokenType=1",
                sim.base_url()
            ))
            .body(token.expose().to_owned())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["valid"] == true
    }

    /// A dashboard cannot be named in the reports' token: it gets one of its own, which opens
    /// it (and the reports' token does not), renewed together with the reports' token.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_dashboard_gets_its_own_embed_token_renewed_with_the_reports() {
        use crate::sim::scenario::builtin_ids::{DASHBOARD_EXEC, REPORT_SALES};
        let mut scenario = Scenario::named("sp-dashboard").unwrap();
        scenario.token_lifetime_seconds = 5;
        let (sim, service, _) = start(scenario).await;
        service.token().await.expect("an embed token");
        let held = |s: TokenState| match s {
            TokenState::Valid {
                token,
                item_tokens,
                generation,
                ..
            } => (token, item_tokens, generation),
            other => panic!("no token: {other:?}"),
        };
        let (shared, items, first) = held(service.current());
        assert_eq!(items.len(), 1);
        let dash = items
            .get(DASHBOARD_EXEC)
            .expect("the dashboard's token")
            .clone();
        assert_ne!(dash, shared);
        assert!(opens(&sim, "dashboardId", DASHBOARD_EXEC, &dash).await);
        assert!(!opens(&sim, "dashboardId", DASHBOARD_EXEC, &shared).await);
        assert!(opens(&sim, "reportId", REPORT_SALES, &shared).await);
        assert!(!opens(&sim, "reportId", REPORT_SALES, &dash).await);

        // Renewed at 60 % of 5 s: a new dashboard token comes with the new shared one.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (shared2, items2, second) = held(service.current());
        assert!(second > first, "not renewed");
        let dash2 = items2.get(DASHBOARD_EXEC).expect("renewed dashboard token");
        assert_ne!(dash2, &dash);
        assert_ne!(shared2, shared);
        assert!(opens(&sim, "dashboardId", DASHBOARD_EXEC, dash2).await);
        // One GenerateToken for the reports and one for the dashboard per renewal.
        let stats = sim.stats();
        let generated = stats
            .api_by_kind
            .get("generate_token")
            .copied()
            .unwrap_or(0);
        assert_eq!(
            generated,
            2 * stats
                .token_by_grant
                .get("client_credentials")
                .copied()
                .unwrap_or(0),
            "{stats:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refusal_is_waited_out_not_hammered() {
        for (name, want) in [
            ("sp-not-allowed", ProblemId::ServicePrincipalNotAllowed),
            ("sp-rls", ProblemId::EmbedTokenRefused),
        ] {
            let (sim, service, _) = start(Scenario::named(name).unwrap()).await;
            let p = service.token().await.unwrap_err();
            assert_eq!(p.id, want, "{name}: {p:?}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(sim.stats().token_requests, 1, "{name}: asked again");
        }
    }
}
