//! Power BI REST API under `/v1.0/myorg`: workspaces, reports, pages, dashboards, GenerateToken,
//! with Power BI's error bodies (401 PowerBINotAuthorizedException, 403 TokenExpired,
//! 404 PowerBIEntityNotFound, 429 + Retry-After).

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::ids;
use super::scenario::{AccountState, Dashboard, Report, Workspace};
use super::server::Sim;
use super::state::{EmbedToken, State, Subject};

/// The cluster Power BI names in `@odata.context` and in the embed `config`.
pub(crate) const CLUSTER: &str = "wabi-north-europe-redirect.analysis.windows.net";

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/v1.0/myorg/groups", get(groups))
        .route("/v1.0/myorg/reports", get(my_workspace))
        .route("/v1.0/myorg/groups/{g}/reports", get(reports))
        .route("/v1.0/myorg/groups/{g}/reports/{r}", get(report))
        .route("/v1.0/myorg/groups/{g}/reports/{r}/pages", get(pages))
        .route(
            "/v1.0/myorg/groups/{g}/reports/{r}/GenerateToken",
            post(generate_token),
        )
        .route("/v1.0/myorg/GenerateToken", post(generate_token_multi))
        .route(
            "/v1.0/myorg/groups/{g}/dashboards/{d}/GenerateToken",
            post(generate_dashboard_token),
        )
        .route("/v1.0/myorg/groups/{g}/dashboards", get(dashboards))
        .route("/v1.0/myorg/groups/{g}/dashboards/{d}", get(dashboard))
        .route("/v1.0/myorg/{*rest}", any(other))
}

/// A Power BI answer: JSON plus the `RequestId` header Power BI puts on every response (what
/// Microsoft support asks for).
fn answer(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&ids::guid()) {
        r.headers_mut().insert("RequestId", v);
    }
    r
}

fn pbi_error(status: StatusCode, code: &str) -> Response {
    answer(
        status,
        json!({"error": {"code": code, "pbi.error": {"code": code, "parameters": {}, "details": [], "exceptionCulprit": 1}}}),
    )
}

pub(crate) fn not_found() -> Response {
    pbi_error(StatusCode::NOT_FOUND, "PowerBIEntityNotFound")
}

fn not_authorized() -> Response {
    pbi_error(StatusCode::UNAUTHORIZED, "PowerBINotAuthorizedException")
}

fn token_expired() -> Response {
    answer(
        StatusCode::FORBIDDEN,
        json!({"error": {"code": "TokenExpired", "message": "Access token has expired, resubmit with a new access token"}}),
    )
}

/// Who is calling, once the request got past counting, latency, throttling and the bearer check.
struct Caller {
    subject: Subject,
    expires_unix: u64,
    expires_at: Instant,
}

/// Count, wait, throttle, authenticate — in that order, so that every request is counted even
/// when a fault answers it.
async fn enter(sim: &Sim, kind: &str, headers: &HeaderMap) -> Result<Caller, Response> {
    let throttle = sim
        .count_and_wait(|st| {
            st.stats.api_requests += 1;
            *st.stats.api_by_kind.entry(kind.to_owned()).or_default() += 1;
            tracing::info!(kind, "sim: power bi request");
            State::take_throttle(&mut st.scenario.faults.api_throttle)
        })
        .await;
    if let Some(secs) = throttle {
        let mut r = answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"code": "TooManyRequests", "message": format!("Too many requests. Retry after {secs} seconds.")}}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(r);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let st = sim.lock();
    let Some(t) = token.and_then(|t| st.access_token(t)) else {
        return Err(not_authorized());
    };
    if Instant::now() >= t.expires_at {
        return Err(token_expired());
    }
    if let Subject::User(u) = &t.subject
        && st
            .scenario
            .account(u)
            .is_none_or(|a| a.state == AccountState::NoLicence)
    {
        return Err(not_authorized());
    }
    // The tenant setting "Allow service principals to use Power BI APIs" leaves the app out.
    if let Subject::App(c) = &t.subject
        && st.scenario.app(c).is_some_and(|a| !a.powerbi_allowed)
    {
        let mut r = not_authorized();
        r.headers_mut().insert(
            "X-PowerBI-Error-Info",
            HeaderValue::from_static("ServicePrincipalIsNotAllowedByTenantAdminSwitch"),
        );
        return Err(r);
    }
    Ok(Caller {
        subject: t.subject.clone(),
        expires_unix: t.expires_unix,
        expires_at: t.expires_at,
    })
}

/// Workspaces the caller is a member of, in scenario order.
fn visible<'a>(st: &'a State, who: &Subject) -> Vec<&'a Workspace> {
    let keys: &[String] = match who {
        Subject::User(u) => st
            .scenario
            .account(u)
            .map(|a| a.workspaces.as_slice())
            .unwrap_or_default(),
        Subject::App(c) => st
            .scenario
            .app(c)
            .map(|a| a.workspaces.as_slice())
            .unwrap_or_default(),
    };
    st.scenario.workspaces_named(keys).collect()
}

/// A workspace the caller may see, by id. Anything else — unknown, not a member, not a GUID
/// (e.g. `me` for "My workspace") — is the same 404, as Power BI does not tell them apart.
fn workspace<'a>(st: &'a State, who: &Subject, g: &str) -> Option<&'a Workspace> {
    visible(st, who)
        .into_iter()
        .find(|w| w.id.eq_ignore_ascii_case(g))
}

/// A report in a workspace the caller may see.
fn report_in<'a>(
    st: &'a State,
    who: &Subject,
    g: &str,
    r: &str,
) -> Option<(&'a Workspace, &'a Report)> {
    let w = workspace(st, who, g)?;
    let rep = w.reports.iter().find(|x| x.id.eq_ignore_ascii_case(r))?;
    Some((w, rep))
}

/// A report's pages as Power BI lists them (`name`, `displayName`, `order`).
pub(crate) fn pages_json(r: &Report) -> Vec<Value> {
    r.pages()
        .into_iter()
        .map(|p| json!({"name": p.name, "displayName": p.display_name, "order": p.order}))
        .collect()
}

fn context(path: &str) -> String {
    format!("http://{CLUSTER}/v1.0/myorg/{path}")
}

/// The `config` parameter of real embed URLs: base64 JSON naming the cluster, `=` escaped.
fn embed_config() -> String {
    let cfg = r#"{"clusterUrl":"https://WABI-NORTH-EUROPE-redirect.analysis.windows.net","embedFeatures":{"usageMetricsVNext":true}}"#;
    ids::base64_std(cfg.as_bytes()).replace('=', "%3d")
}

fn report_json(st: &State, w: &Workspace, r: &Report) -> Value {
    let host = &st.scenario.embed_host;
    json!({
        "id": r.id,
        "reportType": "PowerBIReport",
        "name": r.name,
        "webUrl": format!("{host}/groups/{}/reports/{}", w.id, r.id),
        "embedUrl": format!("{host}/reportEmbed?reportId={}&groupId={}&w=2&config={}", r.id, w.id, embed_config()),
        "isFromPbix": true,
        "isOwnedByMe": false,
        "datasetId": r.dataset_id,
        "datasetWorkspaceId": w.id,
        "users": [],
        "subscriptions": [],
    })
}

fn dashboard_json(st: &State, w: &Workspace, d: &Dashboard) -> Value {
    let host = &st.scenario.embed_host;
    json!({
        "id": d.id,
        "displayName": d.name,
        "isReadOnly": w.read_only,
        "webUrl": format!("{host}/groups/{}/dashboards/{}", w.id, d.id),
        "embedUrl": format!("{host}/dashboardEmbed?dashboardId={}&groupId={}&w=2&config={}", d.id, w.id, embed_config()),
        "users": [],
        "subscriptions": [],
    })
}

async fn groups(AxState(sim): AxState<Sim>, headers: HeaderMap) -> Response {
    let c = match enter(&sim, "groups", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    let value: Vec<Value> = visible(&st, &c.subject)
        .into_iter()
        .map(|w| {
            let mut v = json!({
                "id": w.id,
                "isReadOnly": w.read_only,
                "isOnDedicatedCapacity": w.capacity.is_dedicated(),
                "type": "Workspace",
                "name": w.name,
            });
            if w.capacity.is_dedicated() {
                v["capacityId"] = json!(ids::stable_guid(&w.id).to_ascii_uppercase());
            }
            v
        })
        .collect();
    answer(
        StatusCode::OK,
        json!({"@odata.context": context("$metadata#groups"), "value": value}),
    )
}

/// "My workspace" (`/v1.0/myorg/reports`): a service account's own workspace, empty here.
/// Content there cannot be shown on a kiosk; the client should say so.
async fn my_workspace(AxState(sim): AxState<Sim>, headers: HeaderMap) -> Response {
    if let Err(r) = enter(&sim, "my_workspace", &headers).await {
        return r;
    }
    answer(
        StatusCode::OK,
        json!({"@odata.context": context("$metadata#reports"), "value": []}),
    )
}

async fn reports(
    AxState(sim): AxState<Sim>,
    Path(g): Path<String>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "reports", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    let Some(w) = workspace(&st, &c.subject, &g) else {
        return not_found();
    };
    let value: Vec<Value> = w.reports.iter().map(|r| report_json(&st, w, r)).collect();
    answer(
        StatusCode::OK,
        json!({"@odata.context": context(&format!("groups/{}/$metadata#reports", w.id)), "value": value}),
    )
}

async fn report(
    AxState(sim): AxState<Sim>,
    Path((g, r)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "report", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    match report_in(&st, &c.subject, &g, &r) {
        Some((w, rep)) => {
            let mut v = report_json(&st, w, rep);
            v["@odata.context"] = json!(context(&format!(
                "groups/{}/$metadata#reports/$entity",
                w.id
            )));
            answer(StatusCode::OK, v)
        }
        None => not_found(),
    }
}

async fn pages(
    AxState(sim): AxState<Sim>,
    Path((g, r)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "pages", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    match report_in(&st, &c.subject, &g, &r) {
        Some((w, rep)) => {
            let value = pages_json(rep);
            answer(
                StatusCode::OK,
                json!({"@odata.context": context(&format!("groups/{}/$metadata#pages", w.id)), "value": value}),
            )
        }
        None => not_found(),
    }
}

async fn dashboards(
    AxState(sim): AxState<Sim>,
    Path(g): Path<String>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "dashboards", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    let Some(w) = workspace(&st, &c.subject, &g) else {
        return not_found();
    };
    let value: Vec<Value> = w
        .dashboards
        .iter()
        .map(|d| dashboard_json(&st, w, d))
        .collect();
    answer(
        StatusCode::OK,
        json!({"@odata.context": context(&format!("groups/{}/$metadata#dashboards", w.id)), "value": value}),
    )
}

async fn dashboard(
    AxState(sim): AxState<Sim>,
    Path((g, d)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "dashboard", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = sim.lock();
    let Some(w) = workspace(&st, &c.subject, &g) else {
        return not_found();
    };
    match w.dashboards.iter().find(|x| x.id.eq_ignore_ascii_case(&d)) {
        Some(dash) => {
            let mut v = dashboard_json(&st, w, dash);
            v["@odata.context"] = json!(context(&format!(
                "groups/{}/$metadata#dashboards/$entity",
                w.id
            )));
            answer(StatusCode::OK, v)
        }
        None => not_found(),
    }
}

/// `POST .../GenerateToken {"accessLevel":"View"}`: an embed token that expires with the
/// caller's access token, kept so the fake embed page can check it.
async fn generate_token(
    AxState(sim): AxState<Sim>,
    Path((g, r)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "generate_token", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut st = sim.lock();
    let Some((group_id, report_id)) =
        report_in(&st, &c.subject, &g, &r).map(|(w, rep)| (w.id.clone(), rep.id.clone()))
    else {
        return not_found();
    };
    // Real embed tokens are base64 gzip ("H4sI..."); only the simulator can read this one.
    let token = format!("H4sIAAAAAAAEA{}", ids::random_b64url(240));
    let token_id = ids::guid();
    st.embed_tokens.insert(
        token.clone(),
        EmbedToken {
            items: vec![report_id.to_ascii_lowercase()],
            expires_at: c.expires_at,
        },
    );
    answer(
        StatusCode::OK,
        json!({
            "@odata.context": context(&format!("groups/{group_id}/$metadata#Microsoft.PowerBI.ServiceContracts.Api.V1.GenerateTokenResponse")),
            "token": token,
            "tokenId": token_id,
            "expiration": ids::iso_timestamp(c.expires_unix),
        }),
    )
}

/// Issue an embed token for `items`, as GenerateToken answers it.
fn issue(st: &mut State, c: &Caller, items: Vec<String>, context_path: &str) -> Response {
    // Real embed tokens are base64 gzip ("H4sI..."); only the simulator can read this one.
    let token = format!("H4sIAAAAAAAEA{}", ids::random_b64url(240));
    let token_id = ids::guid();
    st.embed_tokens.insert(
        token.clone(),
        EmbedToken {
            items,
            expires_at: c.expires_at,
        },
    );
    answer(
        StatusCode::OK,
        json!({
            "@odata.context": context(context_path),
            "token": token,
            "tokenId": token_id,
            "expiration": ids::iso_timestamp(c.expires_unix),
        }),
    )
}

/// GenerateToken's refusal of an effective identity, as Power BI words it.
fn identity_refused(dataset: &str, required: bool) -> Response {
    let message = if required {
        format!(
            "Creating embed token for accessing dataset {dataset} requires effective identity to be provided"
        )
    } else {
        format!(
            "Creating embed token for accessing dataset {dataset} shouldn't have effective identity"
        )
    };
    answer(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": "InvalidRequest", "message": message}}),
    )
}

/// `POST /v1.0/myorg/GenerateToken {"reports":[{"id"}],"datasets":[{"id"}],"identities":[...]}`:
/// one embed token for several reports. Every report must be in a workspace the caller is a
/// member of (404 otherwise); a dataset with row-level security needs an identity, one without
/// refuses one (400, Power BI's words).
async fn generate_token_multi(
    AxState(sim): AxState<Sim>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let c = match enter(&sim, "generate_token", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    };
    let ids_of = |key: &str| -> Vec<String> {
        req[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (reports, datasets) = (ids_of("reports"), ids_of("datasets"));
    let with_identity: Vec<String> = req["identities"]
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|i| i["datasets"].as_array().cloned().unwrap_or_default())
                .filter_map(|d| d.as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let mut st = sim.lock();
    let visible: Vec<&Report> = visible(&st, &c.subject)
        .into_iter()
        .flat_map(|w| &w.reports)
        .collect();
    for r in &reports {
        if !visible.iter().any(|x| x.id.eq_ignore_ascii_case(r)) {
            return not_found();
        }
    }
    for d in &datasets {
        let Some(rep) = visible
            .iter()
            .find(|x| x.dataset_id.eq_ignore_ascii_case(d))
        else {
            return not_found();
        };
        let has = with_identity.contains(d);
        if rep.rls != has {
            return identity_refused(&rep.dataset_id, rep.rls);
        }
    }
    if reports.is_empty() {
        return pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest");
    }
    issue(
        &mut st,
        &c,
        reports,
        "$metadata#Microsoft.PowerBI.ServiceContracts.Api.V1.GenerateTokenResponse",
    )
}

/// `POST groups/{g}/dashboards/{d}/GenerateToken`: an embed token for one dashboard.
async fn generate_dashboard_token(
    AxState(sim): AxState<Sim>,
    Path((g, d)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match enter(&sim, "generate_token", &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut st = sim.lock();
    let Some((group_id, dashboard_id)) = workspace(&st, &c.subject, &g).and_then(|w| {
        w.dashboards
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(&d))
            .map(|x| (w.id.clone(), x.id.to_ascii_lowercase()))
    }) else {
        return not_found();
    };
    issue(
        &mut st,
        &c,
        vec![dashboard_id],
        &format!(
            "groups/{group_id}/$metadata#Microsoft.PowerBI.ServiceContracts.Api.V1.GenerateTokenResponse"
        ),
    )
}

/// Any other Power BI path: authenticated like the rest, then 404.
async fn other(AxState(sim): AxState<Sim>, headers: HeaderMap) -> Response {
    match enter(&sim, "other", &headers).await {
        Ok(_) => not_found(),
        Err(r) => r,
    }
}
