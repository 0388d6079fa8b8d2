//! The HTTP side: routes, the token, device-code and userrealm endpoints, and the test-only
//! `/_sim` paths. Power BI lives in `powerbi.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Request};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use super::aad::AadError;
use super::ids;
use super::powerbi;
use super::scenario::{AccountState, App, Tenant};
use super::state::{
    AccessToken, Control, DeviceCode, DeviceStatus, RefreshGrant, SimStats, State, Subject,
};

/// State shared by every handler.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) base_url: String,
}

impl Shared {
    pub(crate) fn new(state: State, base_url: String) -> Self {
        Self {
            state: Mutex::new(state),
            base_url,
        }
    }

    /// The state. A panic in one handler must not take the whole simulator down with a
    /// poisoned lock, so poisoning is ignored (the state stays consistent between statements).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The opening every handler shares: `count` runs under the lock (counting the request and
    /// reading whatever the handler decides on arrival, such as a fault to answer with), then
    /// the scenario's latency is waited out. Counting before the wait is what lets a test see a
    /// slow or faulted request at once.
    pub(crate) async fn count_and_wait<T>(&self, count: impl FnOnce(&mut State) -> T) -> T {
        let (latency_ms, out) = {
            let mut st = self.lock();
            let out = count(&mut st);
            (st.scenario.faults.latency_ms, out)
        };
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        }
        out
    }
}

pub(crate) type Sim = Arc<Shared>;

pub(crate) fn router(sim: Sim) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(devicecode))
        .route("/common/userrealm/{username}", get(userrealm))
        .route("/_sim/stats", get(stats))
        .route("/_sim/control", post(control))
        .route("/reportEmbed", get(super::embed_page::page))
        .route("/dashboardEmbed", get(super::embed_page::page))
        .route("/sim-embed.js", get(super::embed_page::script))
        .route("/_sim/embed-info", get(super::embed_page::info))
        .route("/_sim/download", get(super::embed_page::download))
        .route("/_sim/check-token", post(super::embed_page::check_token))
        .route(
            "/_sim/bookmark-applied",
            post(super::embed_page::bookmark_applied),
        )
        .merge(powerbi::routes())
        .with_state(sim)
}

/// An AADSTS error answer, with `Retry-After` when given.
pub(crate) fn aad_response(err: &AadError, retry_after: Option<u64>) -> Response {
    let mut resp = (err.status(), Json(err.body())).into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// The fields of a form body. A body that is not a form is treated as an empty form: Microsoft
/// answers that with "must contain grant_type" (or the missing parameter), not with a 415.
struct FormFields(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = Form::<HashMap<String, String>>::from_request(req, state).await;
        Ok(Self(form.map(|Form(f)| f).unwrap_or_default()))
    }
}

fn param<'a>(f: &'a HashMap<String, String>, name: &'static str) -> Result<&'a str, AadError> {
    f.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or(AadError::MissingParameter { name })
}

const PASSWORD: &str = "password";
const REFRESH: &str = "refresh_token";
const CLIENT_CREDENTIALS: &str = "client_credentials";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn token(
    AxState(sim): AxState<Sim>,
    Path(tenant): Path<String>,
    FormFields(f): FormFields,
) -> Response {
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    let (fault, hang) = sim.count_and_wait(|st| {
        let user = stats_username(st, &grant, &f);
        st.stats.token_requests += 1;
        *st.stats.token_by_grant.entry(grant.clone()).or_default() += 1;
        if let Some(u) = &user {
            *st.stats.token_by_username.entry(u.clone()).or_default() += 1;
        }
        // Usernames and grant types only: never the form, which holds passwords and secrets.
        tracing::info!(grant_type = %grant, username = user.as_deref().unwrap_or("-"), "sim: token request");
        let faults = &mut st.scenario.faults;
        let hang = faults.token_hang;
        let fault = if faults.token_outage {
            Some((
                AadError::TemporarilyUnavailable,
                faults.outage_retry_after_seconds,
            ))
        } else {
            State::take_throttle(&mut faults.token_throttle).map(|s| (AadError::Throttled, Some(s)))
        };
        (fault, hang)
    })
    .await;
    if hang {
        tokio::time::sleep(super::scenario::TOKEN_HANG).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    if let Some((err, retry)) = fault {
        return aad_response(&err, retry);
    }
    let result = {
        let mut st = sim.lock();
        grant_token(&mut st, &sim.base_url, &tenant, &grant, &f)
    };
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            tracing::info!(grant_type = %grant, code = ?e.code(), "sim: token refused");
            aad_response(&e, None)
        }
    }
}

/// The user a token request is about, for the per-user counters.
fn stats_username(st: &State, grant: &str, f: &HashMap<String, String>) -> Option<String> {
    match grant {
        PASSWORD => f.get("username").map(|u| u.to_ascii_lowercase()),
        REFRESH => f
            .get("refresh_token")
            .and_then(|t| st.refresh.get(t))
            .map(|g| g.username.clone()),
        DEVICE_CODE => f
            .get("device_code")
            .and_then(|c| st.device.get(c))
            .and_then(|d| match &d.status {
                DeviceStatus::Approved(u) => Some(u.clone()),
                _ => None,
            }),
        _ => None,
    }
}

/// The app a request's `client_id` names. An unknown one is AADSTS700016, which names the
/// tenant: its display name when the path named one, else the path segment as given.
fn requested_app<'a>(
    st: &'a State,
    client_id: &str,
    tenant: Option<&Tenant>,
    tenant_key: &str,
) -> Result<&'a App, AadError> {
    st.scenario
        .app(client_id)
        .ok_or_else(|| AadError::AppNotFound {
            client_id: client_id.to_owned(),
            tenant: tenant
                .map(|t| t.name.clone())
                .unwrap_or_else(|| tenant_key.to_owned()),
        })
}

/// `Ok(None)` for `common`/`organizations`: the tenant comes from the user or the grant.
fn resolve_tenant(st: &State, tenant: &str) -> Result<Option<Tenant>, AadError> {
    if ["common", "organizations", "consumers"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant))
    {
        return Ok(None);
    }
    st.scenario
        .tenant(tenant)
        .cloned()
        .map(Some)
        .ok_or_else(|| AadError::TenantNotFound {
            tenant: tenant.to_owned(),
        })
}

/// The token endpoint's decision, in Azure AD's order: request shape → tenant → app → secret →
/// scope → user → account state → consent.
fn grant_token(
    st: &mut State,
    base_url: &str,
    tenant_key: &str,
    grant: &str,
    f: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let grant = param(f, "grant_type").map(|_| grant)?;
    if ![PASSWORD, REFRESH, CLIENT_CREDENTIALS, DEVICE_CODE].contains(&grant) {
        return Err(AadError::UnsupportedGrantType {
            grant_type: grant.to_owned(),
        });
    }
    let tenant = resolve_tenant(st, tenant_key)?;
    // ROPC and client credentials cannot work out the tenant from `common` (nor, for an app,
    // from `organizations`): Microsoft answers 50059 before looking at anything else.
    let generic =
        tenant_key.eq_ignore_ascii_case("common") || tenant_key.eq_ignore_ascii_case("consumers");
    if tenant.is_none() && (grant == CLIENT_CREDENTIALS || (grant == PASSWORD && generic)) {
        return Err(AadError::NoTenantInfo);
    }
    let client_id = param(f, "client_id")?;
    let app = requested_app(st, client_id, tenant.as_ref(), tenant_key)?.clone();
    // Device code is a public-client flow: the refresh tokens it gave are renewed without a
    // secret too.
    let public_refresh = grant == REFRESH
        && f.get("refresh_token")
            .and_then(|t| st.refresh.get(t))
            .is_some_and(|g| g.public);
    let public =
        !f.contains_key("client_assertion") && f.get("client_secret").is_none_or(|s| s.is_empty());
    // A client assertion (certificate credentials) stands in for the secret.
    if f.contains_key("client_assertion") || f.contains_key("client_assertion_type") {
        let aud_ok =
            |aud: &str| audience_names_this_endpoint(aud, base_url, tenant_key, tenant.as_ref());
        super::assertion::verify(
            &app,
            f.get("client_assertion_type").map(String::as_str),
            f.get("client_assertion").map(String::as_str),
            aud_ok,
            ids::unix_now() as i64,
        )?;
    } else {
        check_client_secret(&app, grant, public_refresh, f)?;
    }
    let scope = param(f, "scope")?;
    let resource_default = format!("{}/.default", st.scenario.resource);
    if !scope
        .split_whitespace()
        .any(|s| s.eq_ignore_ascii_case(&resource_default))
    {
        return Err(AadError::InvalidScope {
            scope: scope.to_owned(),
        });
    }
    let offline = scope.split_whitespace().any(|s| s == "offline_access");
    // Each grant decides whom the token speaks for and whether it carries a refresh token.
    let (subject, with_refresh) = match grant {
        PASSWORD => {
            let username = param(f, "username")?.to_ascii_lowercase();
            let password = param(f, "password")?;
            check_account(st, tenant.as_ref(), &app, &username, Some(password))?;
            (Subject::User(username), offline)
        }
        REFRESH => {
            let rt = param(f, "refresh_token")?;
            let g = st
                .refresh
                .get(rt)
                .cloned()
                .ok_or(AadError::MalformedRequest)?;
            if !g.client_id.eq_ignore_ascii_case(&app.client_id) {
                return Err(AadError::InvalidGrant);
            }
            if let Some(valid_from) = g.revoked_at {
                return Err(AadError::RefreshTokenRevoked {
                    issued: ids::aad_timestamp(g.issued_unix).replace('Z', ""),
                    valid_from: ids::aad_timestamp(valid_from).replace('Z', ""),
                });
            }
            if let Some(t) = &tenant
                && st
                    .scenario
                    .tenant_of_user(&g.username)
                    .is_none_or(|u| u.id != t.id)
            {
                return Err(AadError::InvalidGrant);
            }
            // Locked or disabled accounts cannot refresh either; MFA and the like were
            // satisfied when the grant was first issued.
            match st.scenario.account(&g.username).map(|a| a.state) {
                None => {
                    return Err(AadError::UserNotFound {
                        tenant_id: tenant.map(|t| t.id).unwrap_or_default(),
                    });
                }
                Some(AccountState::Locked) => return Err(AadError::AccountLocked),
                Some(AccountState::Disabled) => return Err(AadError::AccountDisabled),
                Some(_) => {}
            }
            // The refresh grant always rotates the refresh token; the old one stays valid.
            (Subject::User(g.username), true)
        }
        CLIENT_CREDENTIALS => {
            if scope.split_whitespace().count() != 1 {
                return Err(AadError::InvalidScope {
                    scope: scope.to_owned(),
                });
            }
            (Subject::App(app.client_id.clone()), false)
        }
        _ => {
            let code = param(f, "device_code")?;
            let username = device_grant(st, code, &app.client_id)?;
            check_account(st, tenant.as_ref(), &app, &username, None)?;
            st.device.remove(code);
            (Subject::User(username), offline)
        }
    };
    Ok(issue(
        st,
        subject,
        &app.client_id,
        scope,
        with_refresh,
        public,
    ))
}

/// The client secret of a request without an assertion. Device code is a public-client flow
/// (and so is the refresh of a grant it gave): a secret is optional there, but checked if sent.
fn check_client_secret(
    app: &App,
    grant: &str,
    public_refresh: bool,
    f: &HashMap<String, String>,
) -> Result<(), AadError> {
    match f.get("client_secret").filter(|s| !s.is_empty()) {
        None if grant == DEVICE_CODE || public_refresh => {}
        None => return Err(AadError::MissingClientSecret),
        Some(s) if *s != app.secret => return Err(AadError::InvalidClientSecret),
        Some(_) if app.secret_expired => return Err(AadError::ClientSecretExpired),
        Some(_) => {}
    }
    Ok(())
}

/// Whether a client assertion's `aud` is this token endpoint: the simulator's address and
/// `/<tenant>/oauth2/v2.0/token`, the tenant as the path names it or by its id or a domain.
fn audience_names_this_endpoint(
    aud: &str,
    base_url: &str,
    tenant_key: &str,
    tenant: Option<&Tenant>,
) -> bool {
    let Some(rest) = aud.strip_prefix(base_url.trim_end_matches('/')) else {
        return false;
    };
    let Some(seg) = rest
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix("/oauth2/v2.0/token"))
    else {
        return false;
    };
    seg.eq_ignore_ascii_case(tenant_key)
        || tenant.is_some_and(|t| {
            t.id.eq_ignore_ascii_case(seg) || t.domains.iter().any(|d| d.eq_ignore_ascii_case(seg))
        })
}

/// User and account-state checks shared by ROPC (`password` given) and device code (the user
/// already proved who they are on the verification page, so MFA is satisfied).
fn check_account(
    st: &mut State,
    tenant: Option<&Tenant>,
    app: &App,
    username: &str,
    password: Option<&str>,
) -> Result<(), AadError> {
    let home = st.scenario.tenant_of_user(username).cloned();
    let tenant_id = tenant
        .or(home.as_ref())
        .map(|t| t.id.clone())
        .unwrap_or_default();
    let in_tenant = match (tenant, &home) {
        (Some(t), Some(h)) => t.id == h.id,
        (None, Some(_)) => true,
        _ => false,
    };
    let account = match st.scenario.account(username) {
        Some(a) if in_tenant => a.clone(),
        _ => return Err(AadError::UserNotFound { tenant_id }),
    };
    if password.is_some() {
        // A federated domain signs in at its own identity provider; without cloud password
        // validation Azure AD answers a plain 50126 — misleading, but that is what it sends.
        let cloud_ok = home
            .as_ref()
            .is_some_and(|t| t.allow_cloud_password_validation);
        if st.scenario.is_federated(username) && !cloud_ok {
            return Err(AadError::InvalidCredentials);
        }
    }
    match account.state {
        AccountState::Locked => return Err(AadError::AccountLocked),
        AccountState::Disabled => return Err(AadError::AccountDisabled),
        _ => {}
    }
    if let Some(password) = password {
        if password != account.password {
            // Smart lockout: the attempt that reaches the threshold still says 50126; the
            // next ones say 50053. This is why clients must not retry wrong passwords.
            let n = st.failed_logins.entry(username.to_owned()).or_default();
            *n += 1;
            let threshold = st.scenario.lockout_threshold;
            if threshold > 0 && *n >= threshold {
                tracing::info!(username, "sim: account locked by smart lockout");
                if let Some(a) = st.scenario.account_mut(username) {
                    a.state = AccountState::Locked;
                }
            }
            return Err(AadError::InvalidCredentials);
        }
        st.failed_logins.remove(username);
    }
    match account.state {
        AccountState::PasswordExpired if password.is_some() => Err(AadError::PasswordExpired),
        AccountState::Mfa if password.is_some() => Err(AadError::MfaRequired),
        AccountState::ConditionalAccess => Err(AadError::ConditionalAccess {
            // Stable per tenant, as a real policy id would be.
            policy_id: ids::stable_guid(&tenant_id),
        }),
        _ if !app.consented => Err(AadError::ConsentRequired {
            client_id: app.client_id.clone(),
            app_name: app.name.clone(),
        }),
        _ => Ok(()),
    }
}

fn device_grant(st: &mut State, code: &str, client_id: &str) -> Result<String, AadError> {
    let interval = st.scenario.device_code.interval_seconds;
    let auto_approve = st.scenario.device_code.auto_approve_seconds;
    let approver = st.scenario.demo.as_ref().map(|d| d.username.clone());
    let d = st.device.get_mut(code).ok_or(AadError::InvalidGrant)?;
    if !d.client_id.eq_ignore_ascii_case(client_id) {
        return Err(AadError::InvalidGrant);
    }
    let now = Instant::now();
    let previous = d.last_poll.replace(now);
    if let Some(p) = previous {
        let gap = now.duration_since(p).as_millis();
        st.stats
            .device_poll_gaps_ms
            .push(u64::try_from(gap).unwrap_or(u64::MAX));
    }
    let d = st.device.get_mut(code).ok_or(AadError::InvalidGrant)?;
    if now >= d.expires_at {
        return Err(AadError::DeviceCodeExpired);
    }
    // The demo's "person" approves by themselves after a few seconds.
    if d.status == DeviceStatus::Pending
        && let Some(after) = auto_approve
        && now.duration_since(d.created) >= Duration::from_secs(after)
        && let Some(user) = &approver
    {
        d.status = DeviceStatus::Approved(user.to_ascii_lowercase());
    }
    match d.status.clone() {
        DeviceStatus::Declined => Err(AadError::AuthorizationDeclined),
        DeviceStatus::Approved(u) => Ok(u),
        DeviceStatus::Pending => {
            let too_fast = interval > 0
                && previous.is_some_and(|t| now.duration_since(t) < Duration::from_secs(interval));
            Err(if too_fast {
                AadError::SlowDown
            } else {
                AadError::AuthorizationPending
            })
        }
    }
}

/// Store and return a token answer. `scope` echoes what was asked, as the v2 endpoint does.
fn issue(
    st: &mut State,
    subject: Subject,
    client_id: &str,
    scope: &str,
    with_refresh: bool,
    public: bool,
) -> Value {
    let lifetime = st.token_lifetime();
    let now = ids::unix_now();
    let exp = now + lifetime.as_secs();
    let (tid, who) = match &subject {
        Subject::User(u) => (
            st.scenario
                .tenant_of_user(u)
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            json!({ "upn": u, "unique_name": u, "scp": "Dashboard.Read.All Report.Read.All Workspace.Read.All" }),
        ),
        Subject::App(_) => (
            st.scenario
                .tenants
                .first()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            json!({ "roles": ["Tenant.Read.All"] }),
        ),
    };
    let mut claims = json!({
        "aud": st.scenario.resource,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now, "nbf": now, "exp": exp,
        "appid": client_id, "tid": tid, "ver": "1.0",
        "uti": ids::random_b64url(16),
    });
    if let (Some(c), Some(w)) = (claims.as_object_mut(), who.as_object()) {
        c.extend(w.clone());
    }
    // Shaped like a real (JWT) access token, so clients that peek at it are not surprised;
    // the signature is random — only this simulator accepts it.
    let access_token = format!(
        "{}.{}.{}",
        ids::base64_url(br#"{"typ":"JWT","alg":"RS256","kid":"sim"}"#),
        ids::base64_url(claims.to_string().as_bytes()),
        ids::random_b64url(64)
    );
    st.access.insert(
        access_token.clone(),
        AccessToken {
            subject: subject.clone(),
            expires_at: Instant::now() + lifetime,
            expires_unix: exp,
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": st.scenario.faults.expires_in_override.clone().unwrap_or(json!(lifetime.as_secs())),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    });
    if let (true, Subject::User(u)) = (with_refresh, &subject) {
        let rt = format!("0.A{}", ids::random_b64url(180));
        st.refresh.insert(
            rt.clone(),
            RefreshGrant {
                username: u.clone(),
                client_id: client_id.to_owned(),
                issued_unix: now,
                revoked_at: None,
                public,
            },
        );
        body["refresh_token"] = Value::String(rt);
    }
    body
}

async fn devicecode(
    AxState(sim): AxState<Sim>,
    Path(tenant): Path<String>,
    FormFields(f): FormFields,
) -> Response {
    sim.count_and_wait(|st| {
        st.stats.devicecode_requests += 1;
        tracing::info!("sim: devicecode request");
    })
    .await;
    let mut st = sim.lock();
    let result = (|| {
        let t = resolve_tenant(&st, &tenant)?;
        let client_id = param(&f, "client_id")?;
        requested_app(&st, client_id, t.as_ref(), &tenant)?;
        param(&f, "scope")?;
        Ok(client_id.to_owned())
    })();
    let client_id = match result {
        Ok(v) => v,
        Err(e) => return aad_response(&e, None),
    };
    let settings = st.scenario.device_code.clone();
    // Microsoft's user codes are 9 upper-case letters and digits.
    let user_code: String = ids::random_b64url(24)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(9)
        .collect();
    let device_code = format!("DAQABAAEAAA{}", ids::random_b64url(96));
    let now = Instant::now();
    st.device.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            client_id,
            expires_at: now + Duration::from_secs(settings.expires_in_seconds),
            last_poll: None,
            status: DeviceStatus::Pending,
            created: now,
        },
    );
    let uri = "https://microsoft.com/devicelogin";
    Json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": settings.expires_in_seconds,
        "interval": settings.interval_seconds,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

async fn userrealm(
    AxState(sim): AxState<Sim>,
    Path(username): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (unavailable, body) = sim
        .count_and_wait(|st| {
            st.stats.userrealm_requests += 1;
            tracing::info!(username = %username, "sim: userrealm request");
            let v2 = q.get("api-version").is_some_and(|v| v.starts_with('2'));
            (
                st.scenario.faults.userrealm_unavailable,
                realm_body(st, &username, v2),
            )
        })
        .await;
    if unavailable {
        // What national clouds and some proxies answer: the client must carry on without it.
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(body).into_response()
}

/// Home realm discovery answer, v1 (snake_case) or v2.x (PascalCase).
fn realm_body(st: &State, username: &str, v2: bool) -> Value {
    let domain = username
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase());
    let tenant = domain
        .as_deref()
        .and_then(|d| st.scenario.tenant_of_user(&format!("x@{d}")));
    let kind = match (tenant, &domain) {
        (Some(_), Some(d)) if st.scenario.is_federated(&format!("x@{d}")) => "Federated",
        (Some(_), Some(_)) => "Managed",
        _ => "Unknown",
    };
    let domain = domain.unwrap_or_default();
    let sts = format!("https://sts.{domain}");
    let brand = tenant.map(|t| t.name.clone()).unwrap_or_default();
    if v2 {
        let mut b = json!({
            "NameSpaceType": kind,
            "Login": username,
            "DomainName": domain,
            "CloudInstanceName": "microsoftonline.com",
            "CloudInstanceIssuerUri": "urn:federation:MicrosoftOnline",
        });
        match kind {
            "Managed" => {
                b["State"] = json!(4);
                b["UserState"] = json!(1);
                b["FederationBrandName"] = json!(brand);
            }
            "Federated" => {
                b["State"] = json!(3);
                b["UserState"] = json!(2);
                b["FederationBrandName"] = json!(brand);
                b["FederationGlobalVersion"] = json!(-1);
                b["AuthURL"] = json!(format!(
                    "{sts}/adfs/ls/?username={username}&wa=wsignin1.0&wtrealm=urn%3afederation%3aMicrosoftOnline&wctx="
                ));
            }
            _ => {
                b["State"] = json!(4);
                b["UserState"] = json!(1);
            }
        }
        return b;
    }
    match kind {
        "Managed" => json!({
            "ver": "1.0",
            "account_type": "Managed",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }),
        "Federated" => json!({
            "ver": "1.0",
            "account_type": "Federated",
            "domain_name": domain,
            "federation_protocol": "WSTrust",
            "federation_metadata_url": format!("{sts}/adfs/services/trust/mex"),
            "federation_active_auth_url": format!("{sts}/adfs/services/trust/2005/usernamemixed"),
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }),
        _ => json!({
            "ver": "1.0",
            "account_type": "Unknown",
            "cloud_instance_name": "microsoftonline.com",
        }),
    }
}

async fn stats(AxState(sim): AxState<Sim>) -> Json<SimStats> {
    Json(sim.lock().stats.clone())
}

async fn control(AxState(sim): AxState<Sim>, Json(c): Json<Control>) -> Response {
    tracing::info!(action = c.action(), "sim: control");
    match sim.lock().apply(c) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
