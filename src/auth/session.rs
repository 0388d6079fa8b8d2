//! When to ask for tokens, and how long to wait after a failure.
//!
//! The session never reads a clock: every call takes `now`. That lets a test run a day of
//! sign-in attempts in milliseconds and count exactly how many requests reach Microsoft.
//!
//! Rules:
//! - Refresh proactively at 60 % of the token's lifetime (as Microsoft's own embedding samples
//!   do), through the refresh-token grant; keep serving the current token meanwhile.
//! - A refresh token that no longer works falls back to ROPC in the same step, so the page
//!   never goes without a token.
//! - Transient failures (network, 5xx, 429, timeouts) back off exponentially with jitter, up to
//!   [`MAX_BACKOFF`]; a `Retry-After` is a floor.
//! - Permanent failures (credentials, MFA, federated, locked, secrets, consent, tenant, app)
//!   wait `permanent_retry` (default 15 min) between attempts: retry loops lock accounts out.
//! - A federated realm is reported without sending the password at all.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::TokenGrant;
use super::client::{Secrets, TokenEndpoint};
use super::quiet::Quiet;
use super::realm::RealmKind;
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::secret::Secret;

pub const MIN_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Treat a token as expired this long before Microsoft would, for clock skew and the time a
/// request takes to reach Power BI (at most a tenth of the lifetime, for very short tokens).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

fn margin(lifetime: Duration) -> Duration {
    EXPIRY_MARGIN.min(lifetime / 10)
}
/// Refresh at this fraction of the lifetime.
const REFRESH_AT: f64 = 0.6;

struct Held {
    access: Secret,
    items: crate::embed_token::ItemTokens,
    refresh: Option<Secret>,
    issued: Instant,
    expires: Instant,
}

/// What one [`TokenSession::poll`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// Nothing was due.
    Idle,
    /// A new access token is held.
    NewToken,
    /// The attempt failed; the problem is also kept in [`TokenSession::problem`].
    Failed(Problem),
}

pub struct TokenSession<E> {
    endpoint: E,
    allow_federated: bool,
    permanent_retry: Duration,
    held: Option<Held>,
    /// Set after a failure: no request before this instant.
    not_before: Option<Instant>,
    transient_failures: u32,
    problem: Option<Problem>,
    rng: StdRng,
    /// Sign in as the app (client credentials) instead of as a user.
    app_only: bool,
    /// Out of the screen's hours renewals and retries wait (see [`super::quiet`]).
    quiet: Quiet,
    /// Nothing was tried yet: the first sign-in goes ahead, quiet or not, so a start out of
    /// hours still finds out whether the sign-in works.
    attempted: bool,
    /// A person changed a secret: the one attempt that follows is not held by the quiet hours.
    asked: bool,
}

impl<E: TokenEndpoint> TokenSession<E> {
    pub fn new(endpoint: E, allow_federated: bool, permanent_retry: Duration) -> Self {
        Self::with_rng(
            endpoint,
            allow_federated,
            permanent_retry,
            StdRng::from_os_rng(),
        )
    }

    /// For tests: a seeded jitter source makes runs repeatable.
    pub fn with_rng(
        endpoint: E,
        allow_federated: bool,
        permanent_retry: Duration,
        rng: StdRng,
    ) -> Self {
        Self {
            endpoint,
            allow_federated,
            permanent_retry,
            held: None,
            not_before: None,
            transient_failures: 0,
            problem: None,
            rng,
            app_only: false,
            quiet: Quiet::Awake,
            attempted: false,
            asked: false,
        }
    }

    /// Whether the player needs fresh tokens now; see [`super::quiet`].
    pub(crate) fn set_quiet(&mut self, quiet: Quiet) {
        self.quiet = quiet;
    }

    /// Sign in as the app itself (a service principal): no realm lookup, no password, no
    /// refresh token; every renewal is a new client-credentials grant.
    pub(crate) fn app_only(mut self) -> Self {
        self.app_only = true;
        self
    }

    /// The current access token, if it is still good at `now`.
    pub fn access_token(&self, now: Instant) -> Option<&Secret> {
        self.held
            .as_ref()
            .filter(|h| now + margin(h.expires - h.issued) < h.expires)
            .map(|h| &h.access)
    }

    /// The embed tokens of single items that came with the held token (none for a user).
    pub(crate) fn item_tokens(&self) -> crate::embed_token::ItemTokens {
        self.held
            .as_ref()
            .map(|h| h.items.clone())
            .unwrap_or_default()
    }

    /// When the held token stops being served.
    pub fn expires_at(&self) -> Option<Instant> {
        self.held
            .as_ref()
            .map(|h| h.expires - margin(h.expires - h.issued))
    }

    /// The last failure, until a token is obtained again.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// When the next attempt may happen, if a failure is being waited out.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.not_before
    }

    /// When [`poll`](Self::poll) next has work to do: a renewal, or the retry after a
    /// failure, both held while the screen is quiet (except the first sign-in and the one
    /// attempt after a person changed a secret).
    pub fn next_wake(&self, now: Instant) -> Instant {
        let due = self.due(now);
        if !self.attempted || self.asked {
            return due;
        }
        super::quiet::renewal_at(now, due, self.quiet, self.held.as_ref().map(|h| h.issued))
    }

    fn due(&self, now: Instant) -> Instant {
        if let Some(t) = self.not_before {
            return t;
        }
        match &self.held {
            Some(h) => {
                let lifetime = h.expires.saturating_duration_since(h.issued);
                h.issued + lifetime.mul_f64(REFRESH_AT)
            }
            None => now,
        }
    }

    /// A person changed a secret file: send the new secrets from now on. If the last attempt
    /// failed, make exactly one attempt at the next poll instead of waiting out the failure:
    /// the long wait after a wrong password is there so an *unchanged* password is not sent
    /// again and again (account lockout), and a fix should show on the screen at once. After
    /// that one attempt the usual waits apply again. A held, working session is left alone;
    /// the new secrets are used at its next sign-in.
    pub fn replace_secrets(&mut self, secrets: Secrets) {
        self.endpoint.replace_secrets(secrets);
        // A transient failure (network, throttling with Retry-After) has nothing to do with
        // the secrets and keeps its own, shorter wait.
        if self
            .problem
            .as_ref()
            .is_some_and(|p| p.retry_class() == RetryClass::Permanent)
        {
            self.not_before = None;
            self.asked = true;
        }
    }

    /// Power BI said the token expired (clock skew, revoked session): stop serving it and get
    /// a new one at the next poll — unless a failure is being waited out, which still holds.
    pub fn invalidate(&mut self) {
        if let Some(h) = &mut self.held {
            h.expires = h.issued;
        }
    }

    /// Do the one attempt that is due at `now`, if any. At most one sign-in sequence runs,
    /// and it sends at most one request per grant.
    pub async fn poll(&mut self, now: Instant) -> Polled {
        if now < self.next_wake(now) {
            return Polled::Idle;
        }
        self.attempted = true;
        self.asked = false;
        match self.attempt().await {
            Ok(grant) => {
                // The endpoint bounds lifetimes already; bounded again here because a zero
                // lifetime would poll in a tight loop and a huge one overflow `Instant`.
                let lifetime = grant.expires_in.clamp(
                    super::lifetime::ABSOLUTE_MIN_LIFETIME,
                    super::lifetime::MAX_LIFETIME,
                );
                let expires = now.checked_add(lifetime).unwrap_or(now);
                // Microsoft may omit a new refresh token on refresh; keep the old one then.
                let refresh = grant
                    .refresh_token
                    .or_else(|| self.held.take().and_then(|h| h.refresh));
                self.held = Some(Held {
                    access: grant.access_token,
                    items: grant.item_tokens,
                    refresh,
                    issued: now,
                    expires,
                });
                self.not_before = None;
                self.transient_failures = 0;
                self.problem = None;
                Polled::NewToken
            }
            Err(problem) => {
                let wait = match problem.retry_class() {
                    RetryClass::Permanent => self.permanent_retry,
                    RetryClass::Transient => {
                        let w = self.backoff();
                        self.transient_failures = self.transient_failures.saturating_add(1);
                        w
                    }
                };
                let wait = wait.max(problem.retry_after.unwrap_or_default());
                self.not_before = Some(now + wait);
                tracing::warn!(problem = %problem, retry_in_s = wait.as_secs(), "sign-in failed");
                self.problem = Some(problem.clone());
                Polled::Failed(problem)
            }
        }
    }

    fn backoff(&mut self) -> Duration {
        let exp = MIN_BACKOFF.saturating_mul(1u32 << self.transient_failures.min(16));
        let capped = exp.min(MAX_BACKOFF);
        // "Equal jitter": between half and all of the step, so devices that lost the network
        // together do not come back in lockstep.
        capped.mul_f64(self.rng.random_range(0.5..=1.0))
    }

    async fn attempt(&mut self) -> Result<TokenGrant, Problem> {
        if let Some(rt) = self.held.as_ref().and_then(|h| h.refresh.clone()) {
            match self.endpoint.refresh(&rt).await {
                Ok(grant) => return Ok(grant),
                Err(p) if p.retry_class() == RetryClass::Transient => return Err(p),
                // The app itself is refused: ROPC would be refused the same way.
                Err(p) if is_app_problem(p.id) => return Err(p),
                Err(p) => {
                    // Revoked or expired refresh token (password changed, 90-day inactivity,
                    // admin revoke): drop it and sign in again right away.
                    tracing::info!(problem = %p, "refresh token refused; signing in again");
                    if let Some(h) = &mut self.held {
                        h.refresh = None;
                    }
                }
            }
        }
        self.sign_in().await
    }

    async fn sign_in(&mut self) -> Result<TokenGrant, Problem> {
        if self.app_only {
            return self.endpoint.client_credentials().await;
        }
        if !self.allow_federated {
            match self.endpoint.realm().await {
                Ok(Some(realm)) if realm.kind == RealmKind::Federated => {
                    return Err(super::realm::federated_problem(&realm));
                }
                Ok(_) => {}
                // Discovery is advice, not a gate: a failure here must not block sign-in.
                Err(p) => tracing::debug!(problem = %p, "home realm discovery failed"),
            }
        }
        self.endpoint.password().await
    }
}

/// Failures of the app registration or tenant, as opposed to the user or the refresh token.
fn is_app_problem(id: ProblemId) -> bool {
    matches!(
        id,
        ProblemId::InvalidClientSecret
            | ProblemId::ClientSecretExpired
            | ProblemId::AppNotFound
            | ProblemId::TenantNotFound
            | ProblemId::InvalidScope
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::realm::Realm;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// A scripted identity platform that counts what reaches it.
    #[derive(Clone, Default)]
    struct Script {
        inner: Arc<Mutex<ScriptInner>>,
    }
    #[derive(Default)]
    struct ScriptInner {
        realm: Option<Realm>,
        password: VecDeque<Result<TokenGrant, Problem>>,
        /// Used when the queue is empty.
        password_default: Option<Result<TokenGrant, Problem>>,
        refresh: VecDeque<Result<TokenGrant, Problem>>,
        refresh_default: Option<Result<TokenGrant, Problem>>,
        password_calls: u32,
        refresh_calls: u32,
        secrets_replaced: u32,
        realm_calls: u32,
    }

    impl Script {
        fn with<R>(&self, f: impl FnOnce(&mut ScriptInner) -> R) -> R {
            f(&mut self.inner.lock().unwrap())
        }
        fn token_requests(&self) -> u32 {
            self.with(|s| s.password_calls + s.refresh_calls)
        }
    }

    fn next(
        q: &mut VecDeque<Result<TokenGrant, Problem>>,
        d: &Option<Result<TokenGrant, Problem>>,
    ) -> Result<TokenGrant, Problem> {
        q.pop_front()
            .or_else(|| d.clone())
            .expect("script ran out of answers")
    }

    impl TokenEndpoint for Script {
        fn replace_secrets(&mut self, _secrets: Secrets) {
            self.with(|s| s.secrets_replaced += 1);
        }
        async fn realm(&self) -> Result<Option<Realm>, Problem> {
            self.with(|s| {
                s.realm_calls += 1;
                Ok(s.realm.clone())
            })
        }
        async fn password(&self) -> Result<TokenGrant, Problem> {
            self.with(|s| {
                s.password_calls += 1;
                next(&mut s.password, &s.password_default)
            })
        }
        async fn refresh(&self, _rt: &Secret) -> Result<TokenGrant, Problem> {
            self.with(|s| {
                s.refresh_calls += 1;
                next(&mut s.refresh, &s.refresh_default)
            })
        }
    }

    fn grant(n: u32, secs: u64) -> Result<TokenGrant, Problem> {
        Ok(TokenGrant {
            access_token: Secret::new(format!("at-{n}")),
            refresh_token: Some(Secret::new(format!("rt-{n}"))),
            expires_in: Duration::from_secs(secs),
            item_tokens: Default::default(),
        })
    }

    fn session(script: &Script) -> TokenSession<Script> {
        TokenSession::with_rng(
            script.clone(),
            false,
            Duration::from_secs(15 * 60),
            StdRng::seed_from_u64(7),
        )
    }

    /// Drive the session second by second like the service loop would.
    async fn run_for(s: &mut TokenSession<Script>, start: Instant, secs: u64) -> Vec<Instant> {
        let mut attempts = Vec::new();
        for t in 0..=secs {
            let now = start + Duration::from_secs(t);
            if s.poll(now).await != Polled::Idle {
                attempts.push(now);
            }
        }
        attempts
    }

    #[tokio::test]
    async fn permanent_failure_is_tried_at_most_once_per_window() {
        let script = Script::default();
        let bad = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50126]}"#,
            None,
        );
        script.with(|s| s.password_default = Some(Err(bad)));
        let mut s = session(&script);
        let start = Instant::now();
        // Six hours of a running kiosk.
        let attempts = run_for(&mut s, start, 6 * 3600).await;
        let requests = script.token_requests();
        assert_eq!(requests as usize, attempts.len());
        // One at start, then one every 15 minutes: 6*4 + 1.
        assert_eq!(requests, 25, "attempts at {attempts:?}");
        for w in attempts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(15 * 60));
        }
        assert_eq!(s.problem().unwrap().id, ProblemId::InvalidCredentials);
        assert!(s.access_token(start).is_none());
    }

    fn new_secrets() -> Secrets {
        Secrets {
            client: crate::auth::ClientCredential::Secret(Secret::new("cs-new")),
            password: Secret::new("pw-new"),
        }
    }

    #[tokio::test]
    async fn a_changed_secret_is_tried_once_at_once() {
        let script = Script::default();
        let bad = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50126]}"#,
            None,
        );
        script.with(|s| s.password_default = Some(Err(bad)));
        let mut s = session(&script);
        let start = Instant::now();
        assert_eq!(run_for(&mut s, start, 60).await, vec![start]);

        // Changed, but still wrong: one attempt now, then the full wait again.
        s.replace_secrets(new_secrets());
        let later = start + Duration::from_secs(61);
        let attempts = run_for(&mut s, later, 20 * 60).await;
        assert_eq!(
            attempts,
            vec![later, later + Duration::from_secs(15 * 60)],
            "one attempt at once, the next after 15 minutes"
        );
        assert_eq!(script.with(|s| s.secrets_replaced), 1);

        // Changed and right: one attempt, the problem is gone.
        script.with(|s| s.password.push_back(grant(1, 3600)));
        s.replace_secrets(new_secrets());
        let fixed = later + Duration::from_secs(16 * 60);
        assert_eq!(s.poll(fixed).await, Polled::NewToken);
        assert!(s.problem().is_none());
        assert_eq!(script.token_requests(), 4);

        // With a working session nothing is sent early.
        s.replace_secrets(new_secrets());
        assert_eq!(s.poll(fixed + Duration::from_secs(1)).await, Polled::Idle);
        assert_eq!(script.token_requests(), 4);
    }

    #[tokio::test]
    async fn a_changed_secret_keeps_a_throttling_wait() {
        let script = Script::default();
        let throttled = Problem::from_token_error(429, "", Some(Duration::from_secs(120)));
        script.with(|s| s.password_default = Some(Err(throttled)));
        let mut s = session(&script);
        let start = Instant::now();
        assert!(matches!(s.poll(start).await, Polled::Failed(_)));
        s.replace_secrets(new_secrets());
        assert_eq!(s.poll(start + Duration::from_secs(1)).await, Polled::Idle);
        assert_eq!(script.token_requests(), 1);
    }

    #[tokio::test]
    async fn federated_realm_sends_no_password() {
        let script = Script::default();
        script.with(|s| {
            s.realm = Some(Realm {
                kind: RealmKind::Federated,
                domain: Some("fabrikam.com".into()),
                federation_host: Some("sts.fabrikam.com".into()),
            })
        });
        let mut s = session(&script);
        let start = Instant::now();
        let attempts = run_for(&mut s, start, 3600).await;
        assert_eq!(script.token_requests(), 0);
        // t = 0, 15, 30, 45 and 60 minutes.
        assert_eq!(attempts.len(), 5, "realm re-checked once per 15 minutes");
        let p = s.problem().unwrap();
        assert_eq!(p.id, ProblemId::FederatedAccount);
        assert!(p.cause.contains("fabrikam.com") && p.cause.contains("sts.fabrikam.com"));
    }

    #[tokio::test]
    async fn allow_federated_skips_discovery() {
        let script = Script::default();
        script.with(|s| s.password.push_back(grant(1, 3600)));
        let mut s = TokenSession::with_rng(
            script.clone(),
            true,
            Duration::from_secs(900),
            StdRng::seed_from_u64(1),
        );
        assert_eq!(s.poll(Instant::now()).await, Polled::NewToken);
        assert_eq!(script.with(|s| s.realm_calls), 0);
    }

    #[tokio::test]
    async fn retry_after_is_a_floor() {
        let script = Script::default();
        let throttled = Problem::from_token_error(429, "", Some(Duration::from_secs(120)));
        script.with(|s| {
            s.password.push_back(Err(throttled));
            s.password.push_back(grant(1, 3600));
        });
        let mut s = session(&script);
        let start = Instant::now();
        let attempts = run_for(&mut s, start, 300).await;
        assert_eq!(attempts.len(), 2);
        assert!(attempts[1] - attempts[0] >= Duration::from_secs(120));
        assert!(s.access_token(start + Duration::from_secs(300)).is_some());
    }

    #[tokio::test]
    async fn transient_failures_back_off_exponentially_up_to_the_cap() {
        let script = Script::default();
        script.with(|s| s.password_default = Some(Err(Problem::new(ProblemId::Network))));
        let mut s = session(&script);
        let start = Instant::now();
        let attempts = run_for(&mut s, start, 2 * 3600).await;
        let gaps: Vec<u64> = attempts
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        // Grows: each early gap at least the previous step's lower bound.
        assert!(gaps[0] <= 2 && gaps[3] >= 8, "{gaps:?}");
        assert!(
            gaps.iter().all(|g| *g <= MAX_BACKOFF.as_secs() + 1),
            "{gaps:?}"
        );
        // Late gaps sit between half the cap and the cap.
        assert!(
            gaps.last().copied().unwrap() >= MAX_BACKOFF.as_secs() / 2,
            "{gaps:?}"
        );
        // Far fewer than one per second, far more than one per 15 min.
        assert!(
            attempts.len() > 24 && attempts.len() < 60,
            "{}",
            attempts.len()
        );
    }

    #[tokio::test]
    async fn short_tokens_are_refreshed_before_expiry_through_the_refresh_grant() {
        let script = Script::default();
        script.with(|s| {
            s.password.push_back(grant(0, 60));
            for n in 1..=100 {
                s.refresh.push_back(grant(n, 60));
            }
        });
        let mut s = session(&script);
        let start = Instant::now();
        for t in 0..=600 {
            let now = start + Duration::from_secs(t);
            s.poll(now).await;
            assert!(s.access_token(now).is_some(), "no token at t={t}s");
        }
        let (pw, rf) = script.with(|s| (s.password_calls, s.refresh_calls));
        assert_eq!(pw, 1);
        // Refreshed every 36 s (60 % of 60 s): 600/36 = 16.
        assert!((15..=17).contains(&rf), "refreshes {rf}");
    }

    #[tokio::test]
    async fn revoked_refresh_token_falls_back_to_ropc_without_a_gap() {
        let script = Script::default();
        let revoked = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[70008]}"#,
            None,
        );
        script.with(|s| {
            s.password.push_back(grant(0, 60));
            s.refresh.push_back(Err(revoked));
            s.password.push_back(grant(1, 60));
            s.refresh_default = Some(grant(2, 60));
        });
        let mut s = session(&script);
        let start = Instant::now();
        for t in 0..=200 {
            let now = start + Duration::from_secs(t);
            s.poll(now).await;
            assert!(s.access_token(now).is_some(), "gap at t={t}s");
        }
        let (pw, rf) = script.with(|s| (s.password_calls, s.refresh_calls));
        assert_eq!(pw, 2, "one initial sign-in, one fallback");
        assert!(rf >= 3);
        assert!(s.problem().is_none());
    }

    #[tokio::test]
    async fn app_problem_on_refresh_does_not_send_the_password() {
        let script = Script::default();
        let expired = Problem::from_token_error(
            401,
            r#"{"error":"invalid_client","error_codes":[7000222]}"#,
            None,
        );
        script.with(|s| {
            s.password.push_back(grant(0, 3600));
            s.refresh_default = Some(Err(expired));
        });
        let mut s = session(&script);
        let start = Instant::now();
        run_for(&mut s, start, 3 * 3600).await;
        assert_eq!(script.with(|s| s.password_calls), 1);
        assert_eq!(s.problem().unwrap().id, ProblemId::ClientSecretExpired);
        // The still-valid token was served until it expired.
        assert!(s.access_token(start + Duration::from_secs(3000)).is_some());
    }

    #[tokio::test]
    async fn invalidate_gets_a_new_token_now() {
        let script = Script::default();
        script.with(|s| {
            s.password.push_back(grant(0, 3600));
            s.refresh.push_back(grant(1, 3600));
        });
        let mut s = session(&script);
        let start = Instant::now();
        s.poll(start).await;
        let t = start + Duration::from_secs(5);
        assert_eq!(s.poll(t).await, Polled::Idle);
        s.invalidate();
        assert!(s.access_token(t).is_none());
        assert_eq!(s.poll(t).await, Polled::NewToken);
        assert_eq!(s.access_token(t).unwrap().expose(), "at-1");
    }

    #[tokio::test]
    async fn zero_and_huge_lifetimes_neither_panic_nor_poll_in_a_tight_loop() {
        for secs in [0, 1 << 63, u64::MAX] {
            let script = Script::default();
            script.with(|s| {
                s.password_default = Some(grant(0, secs));
                s.refresh_default = Some(grant(1, secs));
            });
            let mut s = session(&script);
            let now = Instant::now();
            assert_eq!(s.poll(now).await, Polled::NewToken, "{secs}");
            assert!(s.next_wake(now) > now, "{secs}: due again at once");
            assert!(s.access_token(now).is_some(), "{secs}");
            assert!(
                s.expires_at().unwrap() <= now + crate::auth::lifetime::MAX_LIFETIME,
                "{secs}"
            );
            assert_eq!(script.token_requests(), 1);
        }
    }

    // ----- quiet hours: no renewal while the screen is dark ------------------------------

    use crate::auth::quiet::{KEEPALIVE, Quiet};

    const HOUR: u64 = 3600;

    /// Drive the session from `from` to `to` seconds after `start`, every `step` seconds (and
    /// at `to`), like the service loop would; the instants at which it did something.
    async fn run_between(
        s: &mut TokenSession<Script>,
        start: Instant,
        from: u64,
        to: u64,
        step: u64,
    ) -> Vec<u64> {
        let mut attempts = Vec::new();
        let mut t = from;
        loop {
            if s.poll(start + Duration::from_secs(t)).await != Polled::Idle {
                attempts.push(t);
            }
            if t == to {
                return attempts;
            }
            t = (t + step).min(to);
        }
    }

    fn hourly(script: &Script) {
        script.with(|s| {
            s.password_default = Some(grant(0, HOUR));
            s.refresh_default = Some(grant(1, HOUR));
        });
    }

    /// Friday 19:00 the screen goes dark until Monday 06:57 (a minute before the report is
    /// prepared): no request all weekend, though the token ran out on Friday evening; the
    /// first renewal is at the resume, and the preparation finds a valid token.
    #[tokio::test]
    async fn off_for_a_weekend_renews_once_at_the_resume() {
        let script = Script::default();
        hourly(&script);
        let mut s = session(&script);
        let start = Instant::now();
        // Lit until 19:00, renewing every 36 minutes.
        assert_eq!(run_between(&mut s, start, 0, 2 * HOUR, 1).await.len(), 4);
        let resume = 2 * HOUR + 60 * HOUR;
        s.set_quiet(Quiet::Until(Some(start + Duration::from_secs(resume))));
        let before = script.token_requests();
        let night = run_between(&mut s, start, 2 * HOUR + 1, resume - 1, 10).await;
        assert_eq!(night, Vec::<u64>::new(), "requests while dark");
        assert_eq!(script.token_requests(), before);
        assert!(
            s.access_token(start + Duration::from_secs(3 * HOUR))
                .is_none(),
            "ran out in the night"
        );
        // The resume: one renewal, and a token in hand when the report is prepared.
        assert_eq!(
            run_between(&mut s, start, resume, resume + 60, 1).await,
            [resume]
        );
        assert_eq!(script.token_requests(), before + 1);
        assert_eq!(
            script.with(|s| s.refresh_calls),
            4,
            "through the refresh token"
        );
        assert!(
            s.access_token(start + Duration::from_secs(resume + 60))
                .is_some()
        );
        // Waking: the usual schedule again.
        s.set_quiet(Quiet::Awake);
        let day = run_between(&mut s, start, resume + 61, resume + 2 * HOUR, 1).await;
        assert_eq!(day.len(), 3, "{day:?}");
    }

    /// `pbikiosk display off` for three days: no request at all; `display auto` in hours
    /// renews at once.
    #[tokio::test]
    async fn an_administrators_off_for_three_days_sends_nothing_until_on() {
        let script = Script::default();
        hourly(&script);
        let mut s = session(&script);
        let start = Instant::now();
        s.poll(start).await;
        s.set_quiet(Quiet::Until(None));
        let three_days = 72 * HOUR;
        assert!(
            run_between(&mut s, start, 1, three_days, 10)
                .await
                .is_empty()
        );
        assert_eq!(script.token_requests(), 1);
        s.set_quiet(Quiet::Awake);
        let t = start + Duration::from_secs(three_days + 1);
        assert!(s.access_token(t).is_none());
        assert_eq!(s.poll(t).await, Polled::NewToken);
        assert!(s.access_token(t).is_some());
    }

    /// However long the screen stays dark, a held sign-in is renewed once every
    /// [`KEEPALIVE`], so its refresh token never goes unused for long.
    #[tokio::test]
    async fn a_dark_fortnight_still_renews_weekly() {
        let script = Script::default();
        hourly(&script);
        let mut s = session(&script);
        let start = Instant::now();
        s.poll(start).await;
        s.set_quiet(Quiet::Until(None));
        let week = KEEPALIVE.as_secs();
        let renewals = run_between(&mut s, start, 60, 2 * week + HOUR, 60).await;
        assert_eq!(renewals, [week, 2 * week], "{renewals:?}");
    }

    /// A failed sign-in while the screen is dark (the status screen is behind the black page):
    /// no retry all night, whether the failure is transient or a wrong password; one attempt
    /// at the resume. A secret changed by a person is tried at once, once.
    #[tokio::test]
    async fn a_problem_while_dark_is_retried_at_the_resume() {
        let bad_password = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50126]}"#,
            None,
        );
        for problem in [Problem::new(ProblemId::Network), bad_password] {
            let script = Script::default();
            script.with(|s| {
                s.password.push_back(grant(0, HOUR));
                s.refresh_default = Some(Err(Problem::from_token_error(
                    400,
                    r#"{"error":"invalid_grant","error_codes":[50173]}"#,
                    None,
                )));
                s.password_default = Some(Err(problem.clone()));
            });
            let mut s = session(&script);
            let start = Instant::now();
            s.poll(start).await;
            // The renewal at 36 minutes fails (refresh token revoked, then the password), and
            // the screen goes dark right after.
            let failed = run_between(&mut s, start, 1, 36 * 60, 1).await;
            assert_eq!(failed, [36 * 60], "{}", problem.id);
            assert!(s.problem().is_some());
            let resume = 12 * HOUR;
            s.set_quiet(Quiet::Until(Some(start + Duration::from_secs(resume))));
            let requests = script.token_requests();
            assert!(
                run_between(&mut s, start, 36 * 60 + 1, resume - 1, 10)
                    .await
                    .is_empty(),
                "{}: retried while dark",
                problem.id
            );
            assert_eq!(script.token_requests(), requests);
            assert_eq!(
                run_between(&mut s, start, resume, resume + 1, 1).await,
                [resume],
                "{}",
                problem.id
            );
        }

        // A person fixes the password in the night: one attempt at once, then quiet again.
        let script = Script::default();
        let bad = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50126]}"#,
            None,
        );
        script.with(|s| s.password_default = Some(Err(bad)));
        let mut s = session(&script);
        let start = Instant::now();
        s.poll(start).await;
        s.set_quiet(Quiet::Until(Some(start + Duration::from_secs(10 * HOUR))));
        s.replace_secrets(new_secrets());
        script.with(|s| s.password_default = Some(grant(0, 60)));
        let t = start + Duration::from_secs(HOUR);
        assert_eq!(s.poll(t).await, Polled::NewToken);
        assert!(
            run_between(&mut s, start, HOUR + 1, 10 * HOUR - 1, 10)
                .await
                .is_empty()
        );
        assert_eq!(script.token_requests(), 2);
    }

    /// The first sign-in of a kiosk that starts in the night goes ahead (it tells whether the
    /// sign-in works); its renewals then wait.
    #[tokio::test]
    async fn the_first_sign_in_goes_ahead_in_the_night() {
        let script = Script::default();
        hourly(&script);
        let mut s = session(&script);
        let start = Instant::now();
        s.set_quiet(Quiet::Until(Some(start + Duration::from_secs(8 * HOUR))));
        assert_eq!(s.poll(start).await, Polled::NewToken);
        assert!(
            run_between(&mut s, start, 1, 8 * HOUR - 1, 10)
                .await
                .is_empty()
        );
        assert_eq!(script.token_requests(), 1);
    }
}
