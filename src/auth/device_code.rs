//! Sign-in with a code shown on the screen: the OAuth 2.0 device authorization grant.
//!
//! A person opens the verification address on their phone (the screen shows it as text and as
//! a QR code), enters the code and signs in — with MFA, Conditional Access and all. The screen
//! then gets an access token and a refresh token; the refresh token is kept in the
//! [`TokenCache`] and renewed by use, so the screen stays signed in across restarts.
//!
//! - [`DeviceClient`]: the HTTP calls (device code, polling, refresh) as a public client.
//! - [`Pending`]: when to poll a code (pure: `interval`, `slow_down`, expiry).
//! - [`DeviceSession`]: the decisions, driven by an explicit clock.
//! - [`spawn`]: the task that runs a session for the player, as a [`TokenService`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::TokenGrant;
use super::lifetime::Bounds;
use super::service::{TokenService, TokenState};
use super::token_cache::{CachedGrant, TokenCache};
use crate::net;
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::secret::Secret;

/// How Microsoft asks to slow down: five seconds more between polls, for good (RFC 8628 §3.5).
pub(crate) const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Poll at least this far apart, whatever the server says (RFC 8628's default is 5 s).
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// A code lives between these (Microsoft's live 15 minutes; the simulator's may be seconds).
const MIN_CODE_LIFETIME: Duration = Duration::from_secs(5);
const MAX_CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// After a declined sign-in the screen says so this long before it shows a new code.
pub(crate) const DECLINED_WAIT: Duration = Duration::from_secs(60);
const MIN_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Refresh at this fraction of the access token's lifetime.
const REFRESH_AT: f64 = 0.6;

/// What the sign-in screen and `/status` show while a code waits for a person. Not a secret:
/// it is meant to be read off the screen, and alone it signs in no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignInPrompt {
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) expires_at: Instant,
    /// The same moment on the wall clock (RFC 3339, UTC), for `/status`.
    pub(crate) expires_utc: String,
}

/// A device code as Microsoft issued it, checked and bounded.
#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    /// What the client polls with: never shown or logged.
    pub(crate) device_code: Secret,
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) expires_in: Duration,
    pub(crate) interval: Duration,
}

/// One answer to a poll of the token endpoint with a device code.
#[derive(Debug, Clone)]
pub(crate) enum PollAnswer {
    Pending,
    SlowDown,
    Declined,
    Expired,
    Token(TokenGrant),
}

/// What the session needs from the identity platform; a trait so the decisions can be tested
/// against a script with a fake clock.
pub(crate) trait DeviceEndpoint {
    fn request_code(&self) -> impl Future<Output = Result<DeviceCode, Problem>> + Send;
    fn poll(&self, code: &Secret) -> impl Future<Output = Result<PollAnswer, Problem>> + Send;
    fn refresh(&self, rt: &Secret) -> impl Future<Output = Result<TokenGrant, Problem>> + Send;
}

/// The identity platform over HTTPS, as a public client (no secret).
#[derive(Clone)]
pub(crate) struct DeviceClient {
    http: reqwest::Client,
    authority: url::Url,
    tenant: String,
    client_id: String,
    scope: String,
    lifetimes: Bounds,
}

const SIGN_IN: &str = "the Microsoft sign-in service";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl DeviceClient {
    pub(crate) fn new(
        http: reqwest::Client,
        authority: url::Url,
        tenant: &str,
        client_id: &str,
        scope: &str,
    ) -> Self {
        Self {
            http,
            authority,
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            // offline_access: a refresh token, so the person signs in once, not every hour.
            scope: format!("{scope} offline_access"),
            lifetimes: Bounds::SERVICE,
        }
    }

    /// Accept short token lifetimes (the simulator's), as [`super::client::AadClient`] does.
    pub(crate) fn with_min_lifetime(mut self, min: Duration) -> Self {
        self.lifetimes = Bounds::with_min(min);
        self
    }

    fn url(&self, last: &str) -> url::Url {
        let mut url = self.authority.clone();
        {
            let mut path = url.path_segments_mut().expect("authority is a base URL");
            path.pop_if_empty();
            path.extend([self.tenant.as_str(), "oauth2", "v2.0", last]);
        }
        url
    }

    async fn post(&self, last: &str, form: &[(&str, &str)]) -> Result<net::Answer, Problem> {
        net::send_and_read(
            self.http.post(self.url(last)).form(form),
            SIGN_IN,
            net::SIGN_IN_BODY_LIMIT,
        )
        .await
    }
}

impl DeviceEndpoint for DeviceClient {
    async fn request_code(&self) -> Result<DeviceCode, Problem> {
        let a = self
            .post(
                "devicecode",
                &[("client_id", &self.client_id), ("scope", &self.scope)],
            )
            .await?;
        if a.status != 200 {
            return Err(device_problem(Problem::from_token_error(
                a.status,
                &a.body,
                a.retry_after,
            )));
        }
        parse_device_code(&a.body)
    }

    async fn poll(&self, code: &Secret) -> Result<PollAnswer, Problem> {
        let a = self
            .post(
                "token",
                &[
                    ("grant_type", DEVICE_CODE_GRANT),
                    ("client_id", &self.client_id),
                    ("device_code", code.expose()),
                    ("scope", &self.scope),
                ],
            )
            .await?;
        if a.status == 200 {
            return super::client::parse_grant(&a.body, self.lifetimes).map(PollAnswer::Token);
        }
        classify_poll(a.status, &a.body, a.retry_after)
    }

    async fn refresh(&self, rt: &Secret) -> Result<TokenGrant, Problem> {
        let a = self
            .post(
                "token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &self.client_id),
                    ("refresh_token", rt.expose()),
                    ("scope", &self.scope),
                ],
            )
            .await?;
        if a.status != 200 {
            return Err(device_problem(Problem::from_token_error(
                a.status,
                &a.body,
                a.retry_after,
            )));
        }
        super::client::parse_grant(&a.body, self.lifetimes)
    }
}

#[derive(Deserialize)]
struct CodeBody {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
}

/// Read a device-code answer; everything shown on the screen is checked first, so a proxy's
/// page or a hostile answer cannot put arbitrary text or a link to anywhere on the screen.
pub(crate) fn parse_device_code(body: &str) -> Result<DeviceCode, Problem> {
    let odd = |what: &str| {
        Problem::new(ProblemId::Unknown).with_cause(format!(
            "The sign-in service answered the device code request without a usable {what} (a proxy may be in the way)."
        ))
    };
    let b: CodeBody = serde_json::from_str(body).map_err(|_| odd("answer"))?;
    let device_code = b
        .device_code
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| odd("device code"))?;
    let user_code = b
        .user_code
        .filter(|c| {
            (1..=32).contains(&c.len())
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        })
        .ok_or_else(|| odd("user code"))?;
    let verification_uri = b
        .verification_uri
        .filter(|u| u.len() <= 256)
        .and_then(|u| url::Url::parse(&u).ok())
        .filter(|u| u.scheme() == "https" && u.username().is_empty() && u.password().is_none())
        .map(String::from)
        .ok_or_else(|| odd("verification address"))?;
    let seconds = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
    };
    let expires_in = seconds(b.expires_in.as_ref()).ok_or_else(|| odd("expires_in"))?;
    // RFC 8628: 5 seconds when the server names no interval.
    let interval = seconds(b.interval.as_ref()).unwrap_or(5);
    Ok(DeviceCode {
        device_code: Secret::new(device_code),
        user_code,
        verification_uri: verification_uri.trim_end_matches('/').to_owned(),
        expires_in: Duration::from_secs(expires_in).clamp(MIN_CODE_LIFETIME, MAX_CODE_LIFETIME),
        interval: Duration::from_secs(interval).clamp(MIN_INTERVAL, MAX_INTERVAL),
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// An error answer to a device-code poll: the flow's own answers by their OAuth `error`,
/// everything else as a [`Problem`].
pub(crate) fn classify_poll(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> Result<PollAnswer, Problem> {
    if status == 400
        && let Ok(b) = serde_json::from_str::<ErrorBody>(body)
    {
        match b.error.as_str() {
            "authorization_pending" => return Ok(PollAnswer::Pending),
            "slow_down" => return Ok(PollAnswer::SlowDown),
            "authorization_declined" | "access_denied" => return Ok(PollAnswer::Declined),
            "expired_token" | "code_expired" | "bad_verification_code" => {
                return Ok(PollAnswer::Expired);
            }
            _ if b.error_codes.contains(&70020) => return Ok(PollAnswer::Expired),
            _ => {}
        }
    }
    Err(device_problem(Problem::from_token_error(
        status,
        body,
        retry_after,
    )))
}

/// The device-code flow's words for problems the token endpoint names generally.
pub(crate) fn device_problem(p: Problem) -> Problem {
    match p.id {
        ProblemId::ConditionalAccess => Problem {
            id: ProblemId::DeviceCodeBlocked,
            cause: ProblemId::DeviceCodeBlocked.cause().into(),
            fix: ProblemId::DeviceCodeBlocked.fix().into(),
            ..p
        },
        // A confidential client: the app registration does not allow public client flows.
        ProblemId::InvalidClientSecret => p
            .with_cause("The app registration asks for a client secret, which a screen signing in with a code does not have.")
            .with_fix("In the Azure portal > App registrations > Authentication, set \"Allow public client flows\" to Yes."),
        _ => p,
    }
}

/// A code on the screen: when to poll it next (pure).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) code: Secret,
    pub(crate) prompt: SignInPrompt,
    pub(crate) interval: Duration,
    pub(crate) next_poll: Instant,
}

impl Pending {
    /// Issued at `now`: the first poll waits one interval (the person cannot be faster).
    pub(crate) fn new(code: DeviceCode, now: Instant) -> Self {
        Self {
            prompt: SignInPrompt {
                user_code: code.user_code,
                verification_uri: code.verification_uri,
                expires_at: now + code.expires_in,
                expires_utc: String::new(),
            },
            code: code.device_code,
            interval: code.interval,
            next_poll: now + code.interval,
        }
    }

    /// An answer came at `now`: the next poll is one interval after it, so two polls are never
    /// closer than `interval` however long a request took.
    pub(crate) fn answered(&mut self, now: Instant, slow_down: bool) {
        if slow_down {
            self.interval = (self.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
        }
        self.next_poll = now + self.interval;
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.prompt.expires_at
    }

    /// When this code needs attention: its next poll, or its end.
    pub(crate) fn wake(&self) -> Instant {
        self.next_poll.min(self.prompt.expires_at)
    }
}

struct Held {
    access: Option<(Secret, Instant, Instant)>,
    refresh: Secret,
}

enum Phase {
    /// No grant and no code: ask for a code.
    NeedCode,
    Waiting(Pending),
    SignedIn(Held),
}

/// What one [`DeviceSession::poll`] did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Idle,
    NewToken,
    /// A (new) code is on the screen, or a poll found it still pending.
    Waiting,
    Failed(Problem),
}

/// A clock the session reads after a request, to schedule from the moment of the answer.
pub(crate) type ClockFn = Arc<dyn Fn() -> Instant + Send + Sync>;

pub(crate) struct DeviceSession<E> {
    endpoint: E,
    cache: TokenCache,
    tenant: String,
    client_id: String,
    permanent_retry: Duration,
    phase: Phase,
    not_before: Option<Instant>,
    failures: u32,
    problem: Option<Problem>,
    rng: StdRng,
    clock: ClockFn,
    /// Out of the screen's hours a held sign-in is not renewed (see [`super::quiet`]).
    quiet: super::quiet::Quiet,
    /// When a token last came, for the quiet hours' keep-alive.
    renewed: Option<Instant>,
    /// Nothing was tried yet: the first refresh of a cached sign-in goes ahead, quiet or not.
    attempted: bool,
}

impl DeviceSession<DeviceClient> {
    /// The session a configuration names: its cloud, tenant and app, its refresh token kept in
    /// `cache`. The player, `pbikiosk login` and the phone setup page all sign in through this
    /// one; `min_lifetime` accepts shorter token lifetimes (the demo's simulator).
    pub(crate) fn for_config(
        cfg: &crate::config::Config,
        http: &reqwest::Client,
        cache: impl Into<std::path::PathBuf>,
        min_lifetime: Option<Duration>,
    ) -> Self {
        let mut client = DeviceClient::new(
            http.clone(),
            cfg.cloud.authority.clone(),
            &cfg.auth.tenant,
            &cfg.auth.client_id,
            &cfg.cloud.scope(),
        );
        if let Some(min) = min_lifetime {
            client = client.with_min_lifetime(min);
        }
        DeviceSession::new(
            client,
            TokenCache::new(cache),
            &cfg.auth.tenant,
            &cfg.auth.client_id,
            cfg.auth.permanent_retry,
            Arc::new(Instant::now),
        )
    }
}

impl<E: DeviceEndpoint> DeviceSession<E> {
    /// Start from the cache: a cached refresh token is tried first; without one, a code.
    pub(crate) fn new(
        endpoint: E,
        cache: TokenCache,
        tenant: &str,
        client_id: &str,
        permanent_retry: Duration,
        clock: ClockFn,
    ) -> Self {
        let phase = match cache.load(tenant, client_id) {
            Ok(Some(refresh)) => Phase::SignedIn(Held {
                access: None,
                refresh,
            }),
            Ok(None) => Phase::NeedCode,
            Err(e) => {
                tracing::warn!(error = %e, "token cache not used");
                Phase::NeedCode
            }
        };
        Self {
            endpoint,
            cache,
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            permanent_retry,
            phase,
            not_before: None,
            failures: 0,
            problem: None,
            rng: StdRng::from_os_rng(),
            clock,
            quiet: super::quiet::Quiet::Awake,
            renewed: None,
            attempted: false,
        }
    }

    /// Whether the player needs fresh tokens now; see [`super::quiet`].
    pub(crate) fn set_quiet(&mut self, quiet: super::quiet::Quiet) {
        self.quiet = quiet;
    }

    /// The access token, if it is good at `now` (with a tenth of its lifetime, at most 10 s,
    /// to spare for clock skew and the way to Power BI).
    pub(crate) fn access_token(&self, now: Instant) -> Option<&Secret> {
        match &self.phase {
            Phase::SignedIn(Held {
                access: Some((t, issued, expires)),
                ..
            }) if now + margin(*expires - *issued) < *expires => Some(t),
            _ => None,
        }
    }

    pub(crate) fn expires_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::SignedIn(Held {
                access: Some((_, issued, expires)),
                ..
            }) => Some(*expires - margin(*expires - *issued)),
            _ => None,
        }
    }

    /// The code on the screen, while one waits for a person.
    pub(crate) fn prompt(&self) -> Option<&SignInPrompt> {
        match &self.phase {
            Phase::Waiting(p) => Some(&p.prompt),
            _ => None,
        }
    }

    pub(crate) fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.not_before
    }

    /// Power BI refused the access token: get a new one at the next poll.
    pub(crate) fn invalidate(&mut self) {
        if let Phase::SignedIn(h) = &mut self.phase {
            h.access = None;
        }
    }

    /// When [`poll`](Self::poll) next has work to do. While the screen is quiet a held
    /// sign-in waits (its renewal, or its retry after a failure); a code on the screen does
    /// not, since a person may be signing in with it right now.
    pub(crate) fn next_wake(&self, now: Instant) -> Instant {
        let due = self.due(now);
        match self.phase {
            Phase::SignedIn(_) if self.attempted => {
                super::quiet::renewal_at(now, due, self.quiet, self.renewed)
            }
            _ => due,
        }
    }

    fn due(&self, now: Instant) -> Instant {
        if let Some(t) = self.not_before {
            return t;
        }
        match &self.phase {
            Phase::NeedCode => now,
            Phase::Waiting(p) => p.wake(),
            Phase::SignedIn(Held {
                access: Some((_, issued, expires)),
                ..
            }) => {
                *issued
                    + expires
                        .saturating_duration_since(*issued)
                        .mul_f64(REFRESH_AT)
            }
            Phase::SignedIn(_) => now,
        }
    }

    /// Do what is due at `now`, if anything: one request, or two when a refused refresh token
    /// is followed at once by a new code.
    pub(crate) async fn poll(&mut self, now: Instant) -> Step {
        if now < self.next_wake(now) {
            return Step::Idle;
        }
        self.attempted = true;
        self.not_before = None;
        let result = match std::mem::replace(&mut self.phase, Phase::NeedCode) {
            Phase::SignedIn(held) => self.refresh(held).await,
            Phase::NeedCode => self.new_code().await,
            Phase::Waiting(p) if p.expired(now) => {
                tracing::info!("sign-in code expired; showing a new one");
                self.new_code().await
            }
            Phase::Waiting(p) => self.poll_code(p).await,
        };
        match result {
            Ok(step) => {
                self.failures = 0;
                step
            }
            Err(problem) => self.failed(problem),
        }
    }

    fn failed(&mut self, problem: Problem) -> Step {
        let now = (self.clock)();
        let wait = match problem.retry_class() {
            RetryClass::Permanent => self.permanent_retry,
            RetryClass::Transient => {
                let exp = MIN_BACKOFF.saturating_mul(1u32 << self.failures.min(16));
                self.failures = self.failures.saturating_add(1);
                exp.min(MAX_BACKOFF)
                    .mul_f64(self.rng.random_range(0.5..=1.0))
            }
        };
        let wait = wait.max(problem.retry_after.unwrap_or_default());
        self.not_before = Some(now + wait);
        tracing::warn!(problem = %problem, retry_in_s = wait.as_secs(), "device code sign-in failed");
        self.problem = Some(problem.clone());
        Step::Failed(problem)
    }

    async fn refresh(&mut self, held: Held) -> Result<Step, Problem> {
        match self.endpoint.refresh(&held.refresh).await {
            Ok(grant) => Ok(self.signed_in(grant, Some(held.refresh))),
            Err(p) if p.retry_class() == RetryClass::Transient || is_app_problem(p.id) => {
                self.phase = Phase::SignedIn(Held {
                    access: held.access,
                    refresh: held.refresh,
                });
                Err(p)
            }
            Err(p) => {
                // Revoked, expired or unknown grant: a person must sign in again.
                tracing::info!(problem = %p, "refresh token refused; asking for a sign-in");
                if let Err(e) = self.cache.clear() {
                    tracing::warn!(error = %e, "token cache not cleared");
                }
                self.new_code().await
            }
        }
    }

    async fn new_code(&mut self) -> Result<Step, Problem> {
        let code = self.endpoint.request_code().await?;
        let now = (self.clock)();
        let lifetime = code.expires_in;
        let mut pending = Pending::new(code, now);
        pending.prompt.expires_utc = chrono::Utc::now()
            .checked_add_signed(chrono::Duration::from_std(lifetime).unwrap_or_default())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        tracing::info!(
            verification_uri = %pending.prompt.verification_uri,
            expires_in_s = pending.prompt.expires_at.saturating_duration_since(now).as_secs(),
            "waiting for a person to sign in with the code on the screen"
        );
        self.problem = Some(self.sign_in_required(&pending.prompt));
        self.phase = Phase::Waiting(pending);
        Ok(Step::Waiting)
    }

    fn sign_in_required(&self, prompt: &SignInPrompt) -> Problem {
        let mut p = Problem::new(ProblemId::SignInRequired);
        p.sign_in = Some(Box::new(prompt.clone()));
        p
    }

    async fn poll_code(&mut self, mut p: Pending) -> Result<Step, Problem> {
        let answer = self.endpoint.poll(&p.code).await;
        let now = (self.clock)();
        match answer {
            Ok(PollAnswer::Token(grant)) => Ok(self.signed_in(grant, None)),
            Ok(a @ (PollAnswer::Pending | PollAnswer::SlowDown)) => {
                p.answered(now, matches!(a, PollAnswer::SlowDown));
                self.phase = Phase::Waiting(p);
                Ok(Step::Waiting)
            }
            Ok(PollAnswer::Expired) => self.new_code().await,
            Ok(PollAnswer::Declined) => {
                tracing::warn!("the sign-in was declined");
                let problem = Problem::new(ProblemId::SignInDeclined);
                self.problem = Some(problem.clone());
                self.not_before = Some(now + DECLINED_WAIT);
                Ok(Step::Failed(problem))
            }
            Err(problem) if problem.retry_class() == RetryClass::Transient => {
                // Keep the code on the screen; poll again after the back-off.
                p.answered(now, false);
                self.phase = Phase::Waiting(p);
                Err(problem)
            }
            Err(problem) => Err(problem),
        }
    }

    fn signed_in(&mut self, grant: TokenGrant, old_refresh: Option<Secret>) -> Step {
        let now = (self.clock)();
        let lifetime = grant.expires_in.clamp(
            super::lifetime::ABSOLUTE_MIN_LIFETIME,
            super::lifetime::MAX_LIFETIME,
        );
        let refresh = match (grant.refresh_token, old_refresh) {
            (Some(new), _) => {
                let stored = self.cache.store(&CachedGrant {
                    tenant: self.tenant.clone(),
                    client_id: self.client_id.clone(),
                    refresh_token: new.clone(),
                });
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "the sign-in is not kept across a restart");
                }
                Some(new)
            }
            (None, old) => old,
        };
        self.problem = None;
        match refresh {
            Some(refresh) => {
                self.renewed = Some(now);
                self.phase = Phase::SignedIn(Held {
                    access: Some((grant.access_token, now, now + lifetime)),
                    refresh,
                });
                Step::NewToken
            }
            None => {
                // Without a refresh token the screen would have to ask again within the hour:
                // the app must be allowed offline_access.
                let p = Problem::new(ProblemId::ConsentRequired).with_cause(
                    "Microsoft signed in without a refresh token, so the screen cannot stay signed in.",
                );
                self.problem = Some(p.clone());
                self.not_before = Some(now + self.permanent_retry);
                Step::Failed(p)
            }
        }
    }
}

fn margin(lifetime: Duration) -> Duration {
    super::session::EXPIRY_MARGIN.min(lifetime / 10)
}

/// Failures of the app registration or tenant: a new code would be refused the same way.
fn is_app_problem(id: ProblemId) -> bool {
    matches!(
        id,
        ProblemId::InvalidClientSecret
            | ProblemId::AppNotFound
            | ProblemId::TenantNotFound
            | ProblemId::InvalidScope
            | ProblemId::DeviceCodeBlocked
    )
}

/// Run a session on the current tokio runtime for the player.
pub(crate) fn spawn<E>(session: DeviceSession<E>) -> TokenService
where
    E: DeviceEndpoint + Send + Sync + 'static,
{
    TokenService::spawn_with(|tx, expired, quiet| run(session, tx, expired, quiet))
}

async fn run<E: DeviceEndpoint>(
    mut session: DeviceSession<E>,
    tx: watch::Sender<TokenState>,
    mut expired: mpsc::Receiver<()>,
    mut quiet: watch::Receiver<super::quiet::Quiet>,
) {
    let mut generation = 0u64;
    loop {
        let step = session.poll(Instant::now()).await;
        let now = Instant::now();
        let state = match (step, session.access_token(now)) {
            (Step::NewToken, Some(token)) => {
                generation += 1;
                Some(TokenState::Valid {
                    token: token.clone(),
                    item_tokens: Default::default(),
                    expires_at: session.expires_at().unwrap_or(now),
                    generation,
                })
            }
            (Step::Idle, _) | (_, Some(_)) => None,
            (_, None) => session.problem().map(|p| TokenState::Failed {
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
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    fn code(user: &str, interval: u64, expires: u64) -> DeviceCode {
        DeviceCode {
            device_code: Secret::new(format!("dc-{user}")),
            user_code: user.into(),
            verification_uri: "https://microsoft.com/devicelogin".into(),
            expires_in: Duration::from_secs(expires),
            interval: Duration::from_secs(interval),
        }
    }

    fn grant(rt: Option<&str>) -> TokenGrant {
        TokenGrant {
            access_token: Secret::new("at"),
            refresh_token: rt.map(Secret::new),
            expires_in: Duration::from_secs(3600),
            item_tokens: Default::default(),
        }
    }

    #[derive(Default)]
    struct Inner {
        codes: VecDeque<Result<DeviceCode, Problem>>,
        polls: VecDeque<Result<PollAnswer, Problem>>,
        refresh: VecDeque<Result<TokenGrant, Problem>>,
        code_calls: u32,
        poll_calls: u32,
        refresh_calls: u32,
    }

    #[derive(Clone, Default)]
    struct Script(Arc<Mutex<Inner>>);

    impl DeviceEndpoint for Script {
        async fn request_code(&self) -> Result<DeviceCode, Problem> {
            let mut s = self.0.lock().unwrap();
            s.code_calls += 1;
            s.codes.pop_front().expect("script: no code")
        }
        async fn poll(&self, _code: &Secret) -> Result<PollAnswer, Problem> {
            let mut s = self.0.lock().unwrap();
            s.poll_calls += 1;
            s.polls.pop_front().unwrap_or(Ok(PollAnswer::Pending))
        }
        async fn refresh(&self, _rt: &Secret) -> Result<TokenGrant, Problem> {
            let mut s = self.0.lock().unwrap();
            s.refresh_calls += 1;
            s.refresh.pop_front().expect("script: no refresh answer")
        }
    }

    /// A clock the test moves by hand.
    fn clock(start: Instant) -> (Arc<Mutex<Instant>>, ClockFn) {
        let t = Arc::new(Mutex::new(start));
        let read = t.clone();
        (t, Arc::new(move || *read.lock().unwrap()))
    }

    fn session(script: &Script, dir: &tempfile::TempDir, c: ClockFn) -> DeviceSession<Script> {
        DeviceSession::new(
            script.clone(),
            TokenCache::new(dir.path().join("cache.json")),
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
            Duration::from_secs(900),
            c,
        )
    }

    #[test]
    fn polls_wait_the_interval_and_slow_down_adds_five_seconds_for_good() {
        let t0 = Instant::now();
        let mut p = Pending::new(code("ABC", 5, 900), t0);
        assert_eq!(p.next_poll, t0 + Duration::from_secs(5));
        assert_eq!(p.prompt.expires_at, t0 + Duration::from_secs(900));
        // A slow answer: the next poll counts from the answer, not from the request.
        p.answered(t0 + Duration::from_secs(7), false);
        assert_eq!(p.next_poll, t0 + Duration::from_secs(12));
        p.answered(t0 + Duration::from_secs(12), true);
        assert_eq!(p.interval, Duration::from_secs(10));
        assert_eq!(p.next_poll, t0 + Duration::from_secs(22));
        p.answered(t0 + Duration::from_secs(22), false);
        assert_eq!(p.next_poll, t0 + Duration::from_secs(32), "slow_down stays");
        assert!(!p.expired(t0 + Duration::from_secs(899)));
        assert!(p.expired(t0 + Duration::from_secs(900)));
        // Near the end, the code's end wakes the session before the next poll.
        p.answered(t0 + Duration::from_secs(895), false);
        assert_eq!(p.wake(), t0 + Duration::from_secs(900));
    }

    #[test]
    fn device_code_answers_are_bounded_and_checked() {
        let ok = parse_device_code(
            r#"{"user_code":"ABCD1234E","device_code":"DAQ","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5}"#,
        )
        .unwrap();
        assert_eq!(ok.user_code, "ABCD1234E");
        assert_eq!(ok.interval, Duration::from_secs(5));
        assert_eq!(ok.expires_in, Duration::from_secs(900));
        let clamped = parse_device_code(
            r#"{"user_code":"A","device_code":"D","verification_uri":"https://x.example/","expires_in":"999999","interval":0}"#,
        )
        .unwrap();
        assert_eq!(clamped.interval, MIN_INTERVAL);
        assert_eq!(clamped.expires_in, MAX_CODE_LIFETIME);
        assert_eq!(clamped.verification_uri, "https://x.example");
        for bad in [
            "<html>",
            r#"{"user_code":"A B","device_code":"D","verification_uri":"https://x.example","expires_in":9}"#,
            r#"{"user_code":"A","device_code":"D","verification_uri":"http://x.example","expires_in":9}"#,
            r#"{"user_code":"A","device_code":"D","verification_uri":"javascript:alert(1)","expires_in":9}"#,
            r#"{"user_code":"A","device_code":"","verification_uri":"https://x.example","expires_in":9}"#,
            r#"{"user_code":"A","device_code":"D","verification_uri":"https://x.example"}"#,
        ] {
            let p = parse_device_code(bad).unwrap_err();
            assert_eq!(p.id, ProblemId::Unknown, "{bad}");
        }
    }

    #[test]
    fn poll_answers_by_their_oauth_error() {
        let body = |e: &str, c: u32| {
            format!(r#"{{"error":"{e}","error_description":"AADSTS{c}: x","error_codes":[{c}]}}"#)
        };
        let kind = |s: u16, b: &str| match classify_poll(s, b, None) {
            Ok(a) => format!("{a:?}"),
            Err(p) => p.id.as_str().to_owned(),
        };
        assert_eq!(kind(400, &body("authorization_pending", 70016)), "Pending");
        assert_eq!(kind(400, r#"{"error":"slow_down"}"#), "SlowDown");
        assert_eq!(
            kind(400, r#"{"error":"authorization_declined"}"#),
            "Declined"
        );
        assert_eq!(kind(400, &body("expired_token", 70020)), "Expired");
        assert_eq!(
            kind(400, &body("invalid_grant", 53003)),
            "device_code_blocked"
        );
        assert_eq!(
            kind(400, &body("invalid_grant", 50097)),
            "device_code_blocked"
        );
        assert_eq!(kind(400, &body("invalid_grant", 70000)), "unknown");
        assert_eq!(
            kind(503, &body("temporarily_unavailable", 90033)),
            "service_unavailable"
        );
        let p = classify_poll(401, &body("invalid_client", 7000218), None).unwrap_err();
        assert!(p.fix.contains("Allow public client flows"), "{}", p.fix);
        let p = classify_poll(400, &body("invalid_grant", 53003), None).unwrap_err();
        assert_eq!(p.aadsts(), [53003], "Microsoft's references are kept");
        // As Microsoft words them when Conditional Access stops a device-code sign-in: a block
        // (53003), a device that must be managed or compliant (53000), device authentication
        // required (50097, seen answered with 401).
        for (status, code, text) in [
            (
                400,
                53003,
                "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
            ),
            (
                400,
                53000,
                "Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant.",
            ),
            (401, 50097, "Device authentication is required."),
        ] {
            let body = format!(
                r#"{{"error":"invalid_grant","error_description":"AADSTS{code}: {text}\r\nTrace ID: 2f8ccb7a-459e-44fb-b615-232475945800\r\nCorrelation ID: 824fc737-3721-428a-adb8-e51aec8c4cce\r\nTimestamp: 2026-02-17 18:39:09Z","error_codes":[{code}],"timestamp":"2026-02-17 18:39:09Z","trace_id":"2f8ccb7a-459e-44fb-b615-232475945800","correlation_id":"824fc737-3721-428a-adb8-e51aec8c4cce","suberror":"message_only"}}"#
            );
            let p = classify_poll(status, &body, None).unwrap_err();
            assert_eq!(p.id, ProblemId::DeviceCodeBlocked, "{code}");
            assert_eq!(p.trace_id(), Some("2f8ccb7a-459e-44fb-b615-232475945800"));
            assert_eq!(p.retry_class(), RetryClass::Permanent);
        }
    }

    #[tokio::test]
    async fn code_then_approval_then_cached_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let (t, c) = clock(t0);
        let script = Script::default();
        {
            let mut s = script.0.lock().unwrap();
            s.codes.push_back(Ok(code("FIRST", 5, 900)));
            s.polls.push_back(Ok(PollAnswer::Pending));
            s.polls
                .push_back(Ok(PollAnswer::Token(grant(Some("rt-1")))));
        }
        let mut s = session(&script, &dir, c.clone());
        assert_eq!(s.poll(t0).await, Step::Waiting);
        let prompt = s.prompt().unwrap().clone();
        assert_eq!(prompt.user_code, "FIRST");
        assert_eq!(s.problem().unwrap().id, ProblemId::SignInRequired);
        assert_eq!(s.problem().unwrap().sign_in.as_deref(), Some(&prompt));
        // Nothing before the interval.
        assert_eq!(s.poll(t0 + Duration::from_secs(4)).await, Step::Idle);
        *t.lock().unwrap() = t0 + Duration::from_secs(5);
        assert_eq!(s.poll(t0 + Duration::from_secs(5)).await, Step::Waiting);
        *t.lock().unwrap() = t0 + Duration::from_secs(10);
        assert_eq!(s.poll(t0 + Duration::from_secs(10)).await, Step::NewToken);
        assert!(s.access_token(t0 + Duration::from_secs(10)).is_some());
        assert!(s.problem().is_none());
        assert_eq!(script.0.lock().unwrap().poll_calls, 2);

        // A restart: the cache's refresh token, no new code.
        script
            .0
            .lock()
            .unwrap()
            .refresh
            .push_back(Ok(grant(Some("rt-2"))));
        let mut s = session(&script, &dir, c.clone());
        assert_eq!(s.poll(t0 + Duration::from_secs(11)).await, Step::NewToken);
        let inner = script.0.lock().unwrap();
        assert_eq!((inner.code_calls, inner.refresh_calls), (1, 1));
        drop(inner);
        let cache = TokenCache::new(dir.path().join("cache.json"));
        let rt = cache
            .load(
                "contoso.onmicrosoft.com",
                "00000000-0000-0000-0000-000000000001",
            )
            .unwrap()
            .unwrap();
        assert_eq!(rt.expose(), "rt-2", "the renewed refresh token is kept");
    }

    #[tokio::test]
    async fn expiry_gives_a_new_code_and_a_revoked_grant_brings_the_sign_in_back() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let (t, c) = clock(t0);
        let script = Script::default();
        {
            let mut s = script.0.lock().unwrap();
            s.codes.push_back(Ok(code("ONE", 5, 12)));
            s.codes.push_back(Ok(code("TWO", 5, 900)));
            s.codes.push_back(Ok(code("THREE", 5, 900)));
        }
        let mut s = session(&script, &dir, c.clone());
        s.poll(t0).await;
        assert_eq!(s.prompt().unwrap().user_code, "ONE");
        let at = |secs| t0 + Duration::from_secs(secs);
        for secs in [5, 10] {
            *t.lock().unwrap() = at(secs);
            assert_eq!(s.poll(at(secs)).await, Step::Waiting);
        }
        // The code's end wakes the session before the next poll (at 15).
        assert_eq!(s.next_wake(at(10)), at(12));
        *t.lock().unwrap() = at(12);
        assert_eq!(s.poll(at(12)).await, Step::Waiting);
        assert_eq!(s.prompt().unwrap().user_code, "TWO");
        assert_eq!(
            script.0.lock().unwrap().poll_calls,
            2,
            "no poll of a dead code"
        );

        // Signed in; later the refresh token is revoked: a new code, in the same step.
        script
            .0
            .lock()
            .unwrap()
            .polls
            .push_back(Ok(PollAnswer::Token(grant(Some("rt")))));
        *t.lock().unwrap() = at(17);
        assert_eq!(s.poll(at(17)).await, Step::NewToken);
        let revoked = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50173]}"#,
            None,
        );
        script.0.lock().unwrap().refresh.push_back(Err(revoked));
        s.invalidate();
        *t.lock().unwrap() = at(20);
        assert_eq!(s.poll(at(20)).await, Step::Waiting);
        assert_eq!(s.prompt().unwrap().user_code, "THREE");
        assert_eq!(s.problem().unwrap().id, ProblemId::SignInRequired);
        let cache = TokenCache::new(dir.path().join("cache.json"));
        assert!(
            cache
                .load(
                    "contoso.onmicrosoft.com",
                    "00000000-0000-0000-0000-000000000001"
                )
                .unwrap()
                .is_none(),
            "the revoked grant is forgotten"
        );
    }

    /// Against the simulator over HTTP: a code, approval, the cache filled; `check` signs in
    /// from the cache; a restart signs in from it with no new code; a revoked grant gives a
    /// new code at once.
    #[tokio::test(flavor = "multi_thread")]
    async fn over_http_approval_check_restart_and_revocation() {
        use crate::sim::scenario::builtin_ids as ids;
        use crate::sim::state::Control;
        use crate::sim::{Scenario, Simulator};

        let mut scenario = Scenario::named("device-code").unwrap();
        scenario.device_code.interval_seconds = 1;
        scenario.device_code.auto_approve_seconds = None;
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("token-cache.json");
        let mut cfg = crate::config::parse(
            &sim.config_snippet(&format!("kiosk@{}", ids::TENANT_DOMAIN)),
            std::path::Path::new("/tmp/pbikiosk.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        cfg.auth.token_cache = Some(cache_path.clone());
        let new_session = || {
            let client = DeviceClient::new(
                crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
                    .unwrap(),
                cfg.cloud.authority.clone(),
                &cfg.auth.tenant,
                &cfg.auth.client_id,
                &cfg.cloud.scope(),
            );
            DeviceSession::new(
                client,
                TokenCache::new(&cache_path),
                &cfg.auth.tenant,
                &cfg.auth.client_id,
                Duration::from_secs(900),
                Arc::new(Instant::now),
            )
        };
        async fn until_token(s: &mut DeviceSession<DeviceClient>) -> Step {
            for _ in 0..20 {
                let step = s.poll(Instant::now()).await;
                if step != Step::Idle && step != Step::Waiting {
                    return step;
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(
                    s.next_wake(Instant::now()),
                ))
                .await;
            }
            panic!("no token after 20 steps");
        }

        // check's sign-in step (only that: the later steps would probe the real embed hosts)
        // before anyone signed in says so, and asks for no code.
        let check_sign_in = || async {
            let http =
                crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
                    .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut lines = Vec::new();
            crate::check::sign_in(&cfg, &http, deadline, &mut lines)
                .await
                .map(|_| lines)
        };
        let failure = check_sign_in().await.unwrap_err();
        assert_eq!(failure.problem.id, ProblemId::SignInRequired, "{failure}");
        assert!(failure.problem.fix.contains("pbikiosk login"), "{failure}");
        assert_eq!(sim.stats().devicecode_requests, 0);

        let mut first = new_session();
        assert_eq!(first.poll(Instant::now()).await, Step::Waiting);
        sim.control(Control::ApproveDeviceCode {
            user_code: Some(first.prompt().unwrap().user_code.clone()),
            username: format!("kiosk@{}", ids::TENANT_DOMAIN),
        });
        assert_eq!(until_token(&mut first).await, Step::NewToken);
        assert_eq!(sim.stats().devicecode_requests, 1);

        let lines = check_sign_in().await.unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ok, "{lines:?}");

        let mut restarted = new_session();
        assert_eq!(restarted.poll(Instant::now()).await, Step::NewToken);
        let stats = sim.stats();
        assert_eq!(stats.devicecode_requests, 1, "no new code after a restart");
        // One by check, one by the restarted session.
        assert_eq!(stats.token_by_grant.get("refresh_token"), Some(&2));

        sim.control(Control::RevokeRefreshTokens { username: None });
        restarted.invalidate();
        assert_eq!(restarted.poll(Instant::now()).await, Step::Waiting);
        assert_eq!(
            restarted.problem().map(|p| p.id),
            Some(ProblemId::SignInRequired)
        );
        assert_eq!(sim.stats().devicecode_requests, 2);
        assert!(!cache_path.exists(), "the revoked grant is forgotten");
    }

    /// The demo's scenario: the simulator approves a pending code by itself, so `pbikiosk demo
    /// --scenario device-code` plays after a few seconds with nobody at a phone.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_demo_scenario_approves_by_itself() {
        use crate::sim::{Scenario, Simulator};
        let mut scenario = Scenario::named("device-code").unwrap();
        scenario.device_code.interval_seconds = 1;
        scenario.device_code.auto_approve_seconds = Some(2);
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let user = sim.demo_username().unwrap();
        let cfg = crate::config::parse(
            &sim.config_snippet(&user),
            std::path::Path::new("/tmp/pbikiosk.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        assert_eq!(cfg.auth.method, crate::config::AuthMethod::DeviceCode);
        let client = DeviceClient::new(
            crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
                .unwrap(),
            cfg.cloud.authority.clone(),
            &cfg.auth.tenant,
            &cfg.auth.client_id,
            &cfg.cloud.scope(),
        );
        let mut s = DeviceSession::new(
            client,
            TokenCache::new(dir.path().join("c.json")),
            &cfg.auth.tenant,
            &cfg.auth.client_id,
            Duration::from_secs(900),
            Arc::new(Instant::now),
        );
        let start = Instant::now();
        let mut polls = 0;
        loop {
            match s.poll(Instant::now()).await {
                Step::NewToken => break,
                Step::Failed(p) => panic!("{p}"),
                Step::Waiting => polls += 1,
                Step::Idle => {}
            }
            assert!(start.elapsed() < Duration::from_secs(10), "not approved");
            tokio::time::sleep_until(tokio::time::Instant::from_std(s.next_wake(Instant::now())))
                .await;
        }
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(polls >= 2, "{polls}");
        let stats = sim.stats();
        assert_eq!(stats.devicecode_requests, 1, "one code, approved");
    }

    proptest::proptest! {
        /// Whatever the network sends, reading it never panics, and nothing but an https
        /// address and a short code of letters and digits reaches the screen.
        #[test]
        fn hostile_answers_never_panic(status in 100u16..600, body in ".{0,300}") {
            let _ = classify_poll(status, &body, None);
            if let Ok(c) = parse_device_code(&body) {
                proptest::prop_assert!(c.verification_uri.starts_with("https://"));
                proptest::prop_assert!(c.user_code.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
            }
        }

        #[test]
        fn well_formed_answers_keep_interval_and_lifetime_in_bounds(
            interval in proptest::prelude::any::<u64>(),
            expires in proptest::prelude::any::<u64>(),
        ) {
            let body = format!(
                r#"{{"user_code":"A1","device_code":"d","verification_uri":"https://microsoft.com/devicelogin","expires_in":{expires},"interval":{interval}}}"#
            );
            let c = parse_device_code(&body).unwrap();
            proptest::prop_assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&c.interval));
            proptest::prop_assert!((MIN_CODE_LIFETIME..=MAX_CODE_LIFETIME).contains(&c.expires_in));
        }
    }

    #[tokio::test]
    async fn declined_and_blocked_are_problems_that_wait() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let (t, c) = clock(t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        let script = Script::default();
        {
            let mut s = script.0.lock().unwrap();
            s.codes.push_back(Ok(code("ONE", 5, 900)));
            s.polls.push_back(Ok(PollAnswer::Declined));
            let blocked = classify_poll(
                400,
                r#"{"error":"invalid_grant","error_codes":[53003]}"#,
                None,
            )
            .unwrap_err();
            s.codes.push_back(Err(blocked));
        }
        let mut s = session(&script, &dir, c.clone());
        s.poll(at(0)).await;
        *t.lock().unwrap() = at(5);
        let step = s.poll(at(5)).await;
        assert!(
            matches!(step, Step::Failed(ref p) if p.id == ProblemId::SignInDeclined),
            "{step:?}"
        );
        assert_eq!(s.next_attempt(), Some(at(5) + DECLINED_WAIT));
        assert_eq!(s.poll(at(30)).await, Step::Idle);
        *t.lock().unwrap() = at(65);
        let step = s.poll(at(65)).await;
        assert!(
            matches!(step, Step::Failed(ref p) if p.id == ProblemId::DeviceCodeBlocked),
            "{step:?}"
        );
        // A person must change the policy: the next request waits permanent_retry.
        assert_eq!(s.next_attempt(), Some(at(65 + 900)));
        assert_eq!(s.poll(at(600)).await, Step::Idle);
        assert_eq!(script.0.lock().unwrap().code_calls, 2);
    }

    /// A device-code sign-in over a weekend with the screen dark: its refresh token is not
    /// used all weekend (fine for one that lasts 90 days unused), then renewed at the resume,
    /// before the report is prepared. A code waiting on the screen is polled as usual, dark or
    /// not: a person may be signing in with it.
    #[tokio::test]
    async fn a_dark_weekend_renews_at_the_resume_and_a_waiting_code_is_still_polled() {
        use crate::auth::quiet::Quiet;
        let dir = tempfile::tempdir().unwrap();
        let script = Script::default();
        let t0 = Instant::now();
        let (t, c) = clock(t0);
        {
            let mut s = script.0.lock().unwrap();
            s.codes.push_back(Ok(code("ONE", 5, 900)));
            s.polls
                .push_back(Ok(PollAnswer::Token(grant(Some("rt-1")))));
            s.refresh.push_back(Ok(grant(Some("rt-2"))));
        }
        let mut s = session(&script, &dir, c);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let resume = 60 * 3600;
        let quiet = Quiet::Until(Some(at(resume)));
        s.set_quiet(quiet);
        // Dark, but a person signs in with the code on their phone: polled at its interval.
        assert_eq!(s.poll(at(0)).await, Step::Waiting);
        *t.lock().unwrap() = at(5);
        assert_eq!(s.poll(at(5)).await, Step::NewToken);
        // The weekend: the token (an hour) runs out, nothing is sent.
        let mut secs = 6;
        while secs < resume {
            *t.lock().unwrap() = at(secs);
            assert_eq!(s.poll(at(secs)).await, Step::Idle, "at {secs} s");
            secs += 60;
        }
        assert!(s.access_token(at(resume - 1)).is_none());
        {
            let s = script.0.lock().unwrap();
            assert_eq!((s.code_calls, s.poll_calls, s.refresh_calls), (1, 1, 0));
        }
        // The resume: renewed with the refresh token, a token in hand for the preparation.
        *t.lock().unwrap() = at(resume);
        assert_eq!(s.poll(at(resume)).await, Step::NewToken);
        assert!(s.access_token(at(resume + 60)).is_some());
        assert_eq!(script.0.lock().unwrap().refresh_calls, 1);
    }
}
