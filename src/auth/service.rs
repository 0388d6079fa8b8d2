//! The task that keeps a token fresh for the player and the REST client.
//!
//! One task owns the [`TokenSession`], so there is never more than one request to the token
//! endpoint in flight. Everyone else watches a [`TokenState`] and may ask for a new token when
//! Power BI says the current one expired.

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::client::{Secrets, TokenEndpoint};
use super::quiet::Quiet;
use super::session::TokenSession;
use crate::problem::Problem;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub enum TokenState {
    /// No answer yet.
    Starting,
    /// A usable token. `generation` grows with every new token, so watchers can tell a
    /// refresh from a repeat.
    Valid {
        token: Secret,
        /// Tokens of single items (a service principal's dashboards), renewed with `token`.
        item_tokens: crate::embed_token::ItemTokens,
        /// When the token stops being usable (its lifetime less the renewal margin): the
        /// service's tests prove it never serves an expired one; `/metrics` shows the time left.
        expires_at: Instant,
        generation: u64,
    },
    /// No usable token; `next_attempt` is when the session tries again.
    Failed {
        problem: Problem,
        next_attempt: Option<Instant>,
    },
}

#[derive(Clone)]
pub struct TokenService {
    state: watch::Receiver<TokenState>,
    expired: mpsc::Sender<()>,
    /// The latest secrets read after a secret file changed; only the newest matters.
    secrets: watch::Sender<Option<Secrets>>,
    /// Whether the player needs fresh tokens (see [`super::quiet`]).
    quiet: watch::Sender<Quiet>,
}

impl TokenService {
    /// Start the session on the current tokio runtime. It runs until every handle is dropped.
    pub fn spawn<E>(session: TokenSession<E>) -> Self
    where
        E: TokenEndpoint + Send + Sync + 'static,
    {
        let (tx, rx) = watch::channel(TokenState::Starting);
        let (expired_tx, expired_rx) = mpsc::channel(4);
        let (secrets_tx, secrets_rx) = watch::channel(None);
        let (quiet_tx, quiet_rx) = watch::channel(Quiet::Awake);
        tokio::spawn(run(session, tx, expired_rx, secrets_rx, quiet_rx));
        Self {
            state: rx,
            expired: expired_tx,
            secrets: secrets_tx,
            quiet: quiet_tx,
        }
    }

    /// Start another kind of sign-in task (device code) behind the same handle: `task` gets
    /// the state to publish, the "Power BI said expired" requests and the quiet hours.
    pub(crate) fn spawn_with<F>(
        task: impl FnOnce(watch::Sender<TokenState>, mpsc::Receiver<()>, watch::Receiver<Quiet>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = watch::channel(TokenState::Starting);
        let (expired_tx, expired_rx) = mpsc::channel(4);
        // No secret files to watch: the sender only keeps the handle's shape.
        let (secrets_tx, _) = watch::channel(None);
        let (quiet_tx, quiet_rx) = watch::channel(Quiet::Awake);
        tokio::spawn(task(tx, expired_rx, quiet_rx));
        Self {
            state: rx,
            expired: expired_tx,
            secrets: secrets_tx,
            quiet: quiet_tx,
        }
    }

    /// The player idles out of hours (or wakes): renewals wait, or go on (see
    /// [`super::quiet`]). A hold within a second of the one in force changes nothing.
    pub(crate) fn set_quiet(&self, quiet: Quiet) {
        self.quiet.send_if_modified(|held| {
            let changed = !held.same_as(quiet);
            if changed {
                *held = quiet;
            }
            changed
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<TokenState> {
        self.state.clone()
    }

    #[cfg(test)]
    pub fn current(&self) -> TokenState {
        self.state.borrow().clone()
    }

    /// Power BI refused the token as expired: get a new one now.
    pub fn report_expired(&self) {
        // A full queue already holds a request; one is as good as many.
        let _ = self.expired.try_send(());
    }

    /// A secret file changed: sign in with these from now on, and at once (one attempt) if
    /// the last attempt failed.
    pub fn replace_secrets(&self, secrets: Secrets) {
        self.secrets.send_replace(Some(secrets));
    }

    /// Wait for the first answer: a token, or the problem that stops one.
    #[cfg(test)]
    pub async fn token(&self) -> Result<Secret, Problem> {
        let mut rx = self.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                TokenState::Valid { token, .. } => return Ok(token.clone()),
                TokenState::Failed { problem, .. } => return Err(problem.clone()),
                TokenState::Starting => {}
            }
            if rx.changed().await.is_err() {
                return Err(
                    Problem::new(crate::ProblemId::Unknown).with_cause("the sign-in task stopped")
                );
            }
        }
    }
}

async fn run<E: TokenEndpoint>(
    mut session: TokenSession<E>,
    tx: watch::Sender<TokenState>,
    mut expired: mpsc::Receiver<()>,
    mut secrets: watch::Receiver<Option<Secrets>>,
    mut quiet: watch::Receiver<Quiet>,
) {
    let mut generation = 0u64;
    loop {
        let now = Instant::now();
        let polled = session.poll(now).await;
        let now = Instant::now();
        let state = match (session.access_token(now), polled) {
            (Some(token), super::session::Polled::NewToken) => {
                generation += 1;
                Some(TokenState::Valid {
                    token: token.clone(),
                    item_tokens: session.item_tokens(),
                    expires_at: session.expires_at().unwrap_or(now),
                    generation,
                })
            }
            // A failed refresh while the old token is still good changes nothing for viewers.
            (Some(_), _) => None,
            (None, _) => session.problem().map(|p| TokenState::Failed {
                problem: p.clone(),
                next_attempt: session.next_attempt(),
            }),
        };
        if let Some(state) = state {
            tx.send_replace(state);
        }
        if tx.is_closed() {
            return;
        }
        let wake = session.next_wake(Instant::now());
        // Also wake when the held token runs out, so watchers learn it is gone.
        let wake = match session.expires_at() {
            Some(e) if e > Instant::now() => wake.min(e),
            _ => wake,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            msg = expired.recv() => match msg {
                Some(()) => session.invalidate(),
                None => return,
            },
            changed = secrets.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(s) = secrets.borrow_and_update().clone() {
                    session.replace_secrets(s);
                }
            }
            changed = quiet.changed() => {
                if changed.is_err() {
                    return;
                }
                session.set_quiet(*quiet.borrow_and_update());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The token service over real HTTP against the simulator: short tokens are refreshed
    //! through the refresh grant before they expire, and a revoked refresh token falls back to
    //! ROPC with no moment without a token.

    use std::time::{Duration, Instant};

    use super::{TokenService, TokenState};
    use crate::auth::SignInSettings;
    use crate::auth::client::AadClient;
    use crate::auth::session::TokenSession;
    use crate::secret::Secret;
    use crate::sim::scenario::builtin_ids as ids;
    use crate::sim::state::Control;
    use crate::sim::{Scenario, Simulator};

    /// The simulator's good account, signing in with the password grant.
    fn sim_client(sim: &crate::sim::SimHandle) -> AadClient {
        let settings = SignInSettings {
            authority: url::Url::parse(&sim.base_url()).unwrap(),
            tenant: ids::TENANT_DOMAIN.into(),
            client_id: ids::APP_ID.into(),
            client: crate::auth::ClientCredential::Secret(Secret::new(ids::APP_SECRET)),
            username: format!("kiosk@{}", ids::TENANT_DOMAIN),
            password: Secret::new(ids::PASSWORD),
            scope: "https://analysis.windows.net/powerbi/api/.default".into(),
        };
        AadClient::new(
            crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
                .unwrap(),
            settings,
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn short_tokens_refresh_and_revocation_falls_back_without_a_gap() {
        let mut scenario = Scenario::builtin();
        scenario.token_lifetime_seconds = 5;
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = sim_client(&sim).with_min_lifetime(Duration::from_secs(1));
        let service =
            TokenService::spawn(TokenSession::new(client, false, Duration::from_secs(900)));
        service.token().await.expect("first sign-in");

        let start = Instant::now();
        let mut generations = Vec::new();
        let mut revoked = false;
        while start.elapsed() < Duration::from_secs(14) {
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
            if !revoked && start.elapsed() > Duration::from_secs(7) {
                sim.control(Control::RevokeRefreshTokens { username: None });
                revoked = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = sim.stats();
        let by = |g: &str| stats.token_by_grant.get(g).copied().unwrap_or(0);
        // Refreshed every ~3 s (60 % of 5 s) for 14 s.
        assert!(generations.len() >= 4, "{generations:?}");
        assert!(
            by("refresh_token") >= 3,
            "{stats:?}",
            stats = stats.token_by_grant
        );
        // One sign-in at start, one after the revocation.
        assert_eq!(by("password"), 2, "{:?}", stats.token_by_grant);
    }

    /// `expires_in` of 0, 2^63 and "abc" from the (simulated) token endpoint: the service
    /// neither panics nor asks again and again.
    #[tokio::test(flavor = "multi_thread")]
    async fn hostile_expires_in_neither_panics_nor_loops() {
        for (value, usable) in [
            (serde_json::json!(0), true),
            (serde_json::json!(9223372036854775808u64), true),
            (serde_json::json!("abc"), false),
        ] {
            let sim = Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            sim.control(Control::SetExpiresIn {
                value: Some(value.clone()),
            });
            let client = sim_client(&sim);
            let service =
                TokenService::spawn(TokenSession::new(client, false, Duration::from_secs(900)));
            let first = service.token().await;
            assert_eq!(first.is_ok(), usable, "{value}: {first:?}");
            if let Err(p) = &first {
                assert!(p.cause.contains("expires_in is \"abc\""), "{}", p.cause);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(
                sim.stats().token_requests,
                1,
                "{value}: asked again within 3 s"
            );
        }
    }

    /// Through the running service against the simulator, with 4-second tokens: told quiet,
    /// it sends nothing while two lifetimes pass; told awake, it renews at once.
    #[tokio::test(flavor = "multi_thread")]
    async fn quiet_sends_nothing_and_awake_renews_at_once() {
        use crate::auth::quiet::Quiet;
        let mut scenario = Scenario::builtin();
        scenario.token_lifetime_seconds = 4;
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = sim_client(&sim).with_min_lifetime(Duration::from_secs(1));
        let service =
            TokenService::spawn(TokenSession::new(client, false, Duration::from_secs(900)));
        service.token().await.expect("first sign-in");
        service.set_quiet(Quiet::Until(None));
        let before = sim.stats().token_requests;
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(sim.stats().token_requests, before, "renewed while quiet");
        let TokenState::Valid { expires_at, .. } = service.current() else {
            panic!("{:?}", service.current());
        };
        assert!(expires_at < Instant::now(), "the token ran out meanwhile");
        let mut rx = service.subscribe();
        rx.mark_unchanged();
        service.set_quiet(Quiet::Awake);
        tokio::time::timeout(Duration::from_secs(3), rx.changed())
            .await
            .expect("renewed within 3 s of waking")
            .unwrap();
        assert!(
            matches!(service.current(), TokenState::Valid { expires_at, .. } if expires_at > Instant::now())
        );
        assert_eq!(sim.stats().token_requests, before + 1);
    }
}
