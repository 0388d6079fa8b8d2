//! End-to-end tests over real HTTP (reqwest against `Simulator::start` on 127.0.0.1:0), driving
//! the simulator the way pbikiosk's client will, and classifying the answers with the client's
//! own `Problem` mapping so the two cannot drift apart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pbikiosk::sim::scenario::builtin_ids::*;
use pbikiosk::sim::*;
use pbikiosk::{Problem, ProblemId};

const SCOPE: &str = "https://analysis.windows.net/powerbi/api/.default offline_access";
const KIOSK: &str = "kiosk@contoso-demo.onmicrosoft.com";

async fn start(s: Scenario) -> SimHandle {
    Simulator::start(s, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

fn user(name: &str) -> String {
    format!("{name}@{TENANT_DOMAIN}")
}

struct Reply {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
    text: String,
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        body,
        text,
    }
}

async fn post_form(sim: &SimHandle, tenant: &str, form: &[(&str, &str)]) -> Reply {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url());
    reply(
        reqwest::Client::new()
            .post(url)
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn ropc_as(
    sim: &SimHandle,
    client_id: &str,
    secret: &str,
    username: &str,
    password: &str,
) -> Reply {
    post_form(
        sim,
        TENANT_DOMAIN,
        &[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("username", username),
            ("password", password),
            ("scope", SCOPE),
        ],
    )
    .await
}

async fn ropc(sim: &SimHandle, username: &str, password: &str) -> Reply {
    ropc_as(sim, APP_ID, APP_SECRET, username, password).await
}

async fn refresh(sim: &SimHandle, rt: &str) -> Reply {
    post_form(
        sim,
        TENANT_DOMAIN,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", APP_ID),
            ("client_secret", APP_SECRET),
            ("refresh_token", rt),
            ("scope", SCOPE),
        ],
    )
    .await
}

async fn api(sim: &SimHandle, token: &str, path: &str) -> Reply {
    let url = format!("{}/v1.0/myorg{path}", sim.base_url());
    reply(
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn access_token(sim: &SimHandle, username: &str) -> String {
    let r = ropc(sim, username, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

fn problem(r: &Reply) -> Problem {
    Problem::from_token_error(r.status, &r.text, None)
}

/// A GUID as Microsoft writes it: 8-4-4-4-12 hex digits. Written out here rather than taken
/// from the simulator, so the answers are checked against the format, not against the code
/// that produced them.
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn ropc_success_then_refresh_rotates() {
    let sim = start(Scenario::builtin()).await;
    let r = ropc(&sim, KIOSK, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    // An integer, not a string: the v1 endpoint's "3599" strings break naive clients.
    assert_eq!(r.body["expires_in"].as_u64(), Some(3599));
    assert!(
        r.body["scope"]
            .as_str()
            .unwrap()
            .contains("powerbi/api/.default")
    );
    let at = r.body["access_token"].as_str().unwrap();
    assert_eq!(at.split('.').count(), 3, "JWT-shaped");
    let rt1 = r.body["refresh_token"].as_str().unwrap().to_owned();

    let r2 = refresh(&sim, &rt1).await;
    assert_eq!(r2.status, 200, "{}", r2.text);
    let rt2 = r2.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "refresh rotates the refresh token");
    assert_ne!(r2.body["access_token"], r.body["access_token"]);
    // The old one still works (Microsoft does not invalidate it on rotation).
    assert_eq!(refresh(&sim, &rt1).await.status, 200);
    // A refresh token that was never issued.
    let bad = refresh(&sim, "0.Anot-a-token").await;
    assert_eq!(bad.body["error_codes"][0], 9002313);

    let s = sim.stats();
    assert_eq!(s.token_requests, 4);
    assert_eq!(s.token_by_grant["password"], 1);
    assert_eq!(s.token_by_grant["refresh_token"], 3);
    assert_eq!(
        s.token_by_username[KIOSK], 3,
        "the garbage token has no owner"
    );
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let sim = start(Scenario::builtin()).await;
    let r = post_form(
        &sim,
        TENANT_ID,
        &[
            ("grant_type", "password"),
            ("client_id", APP_ID),
            ("client_secret", APP_SECRET),
            ("username", KIOSK),
            ("password", PASSWORD),
            ("scope", "https://analysis.windows.net/powerbi/api/.default"),
        ],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "tenant GUID works as well as the domain: {}",
        r.text
    );
    assert!(r.body.get("refresh_token").is_none());
}

/// Every built-in problem account and app gives its AADSTS code, status and problem id.
#[tokio::test]
async fn builtin_problem_accounts_yield_their_codes() {
    let sim = start(Scenario::builtin()).await;
    let cases: Vec<(&str, String, &str, u32, u16, ProblemId)> = vec![
        (
            "mfa",
            user("mfa"),
            PASSWORD,
            50076,
            400,
            ProblemId::MfaRequired,
        ),
        (
            "ca",
            user("ca-blocked"),
            PASSWORD,
            53003,
            400,
            ProblemId::ConditionalAccess,
        ),
        (
            "locked",
            user("locked"),
            PASSWORD,
            50053,
            400,
            ProblemId::AccountLocked,
        ),
        (
            "expired",
            user("expired"),
            PASSWORD,
            50055,
            400,
            ProblemId::PasswordExpired,
        ),
        (
            "disabled",
            user("disabled"),
            PASSWORD,
            50057,
            400,
            ProblemId::AccountDisabled,
        ),
        (
            "federated",
            format!("kiosk@{FEDERATED_DOMAIN}"),
            PASSWORD,
            50126,
            400,
            ProblemId::InvalidCredentials,
        ),
        (
            "wrong password",
            KIOSK.into(),
            "nope",
            50126,
            400,
            ProblemId::InvalidCredentials,
        ),
        (
            "unknown user",
            user("ghost"),
            PASSWORD,
            50034,
            400,
            ProblemId::UserNotFound,
        ),
    ];
    for (what, username, password, code, status, id) in cases {
        let r = ropc(&sim, &username, password).await;
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert_eq!(r.body["error_codes"][0], code, "{what}: {}", r.text);
        assert_eq!(problem(&r).id, id, "{what}");
    }
    // The wrong answer for an expired password must not be given to a wrong password: the
    // password is checked first.
    assert_eq!(
        ropc(&sim, &user("expired"), "nope").await.body["error_codes"][0],
        50126
    );
    // nolicence signs in fine; Power BI refuses it later.
    assert_eq!(ropc(&sim, &user("nolicence"), PASSWORD).await.status, 200);

    let app_cases = [
        (
            "expired secret",
            EXPIRED_APP_ID,
            APP_SECRET,
            7000222,
            401,
            ProblemId::ClientSecretExpired,
        ),
        (
            "no consent",
            UNCONSENTED_APP_ID,
            APP_SECRET,
            65001,
            400,
            ProblemId::ConsentRequired,
        ),
        (
            "bad secret",
            APP_ID,
            "the-secret-id-not-its-value",
            7000215,
            401,
            ProblemId::InvalidClientSecret,
        ),
        (
            "unknown app",
            "00000000-1111-4222-8333-444444444444",
            APP_SECRET,
            700016,
            400,
            ProblemId::AppNotFound,
        ),
    ];
    for (what, client, secret, code, status, id) in app_cases {
        let r = ropc_as(&sim, client, secret, KIOSK, PASSWORD).await;
        assert_eq!(
            (r.status, r.body["error_codes"][0].as_u64()),
            (status, Some(code)),
            "{what}: {}",
            r.text
        );
        assert_eq!(problem(&r).id, id, "{what}");
    }
}

#[tokio::test]
async fn tenant_and_scope_checks() {
    let sim = start(Scenario::builtin()).await;
    let form = |scope: &'static str| {
        [
            ("grant_type", "password"),
            ("client_id", APP_ID),
            ("client_secret", APP_SECRET),
            ("username", KIOSK),
            ("password", PASSWORD),
            ("scope", scope),
        ]
    };
    let r = post_form(&sim, "nowhere.onmicrosoft.com", &form(SCOPE)).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_tenant"))
    );
    assert_eq!(problem(&r).id, ProblemId::TenantNotFound);
    assert!(
        r.text.contains("nowhere.onmicrosoft.com"),
        "names the tenant: {}",
        r.text
    );

    let r = post_form(&sim, "common", &form(SCOPE)).await;
    assert_eq!(
        r.body["error_codes"][0], 50059,
        "ROPC cannot use /common: {}",
        r.text
    );
    assert_eq!(problem(&r).id, ProblemId::Config);

    // /organizations works: the tenant comes from the username.
    assert_eq!(
        post_form(&sim, "organizations", &form(SCOPE)).await.status,
        200
    );

    let r = post_form(
        &sim,
        TENANT_DOMAIN,
        &form("https://graph.microsoft.com/.default"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert_eq!(problem(&r).id, ProblemId::InvalidScope);

    let r = post_form(&sim, TENANT_DOMAIN, &[("grant_type", "password")]).await;
    assert_eq!(
        r.body["error_codes"][0], 900144,
        "missing client_id: {}",
        r.text
    );
}

/// The simulator's body for each captured Microsoft error has the same `error`, `error_codes`,
/// HTTP status and key set as the real one.
#[tokio::test]
async fn bodies_match_the_real_fixtures() {
    let sim = start(Scenario::builtin()).await;
    let mut seen = 0;
    for entry in std::fs::read_dir("tests/fixtures/aad").unwrap() {
        let path = entry.unwrap().path();
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if fixture["endpoint"] != "token" {
            continue;
        }
        let problem_id = fixture["problem"].as_str().unwrap();
        let r = match problem_id {
            "invalid_credentials" => ropc(&sim, KIOSK, "wrong").await,
            "user_not_found" => ropc(&sim, &user("ghost"), PASSWORD).await,
            "account_locked" => ropc(&sim, &user("locked"), PASSWORD).await,
            "mfa_required" => ropc(&sim, &user("mfa"), PASSWORD).await,
            "conditional_access" => ropc(&sim, &user("ca-blocked"), PASSWORD).await,
            "invalid_client_secret" => ropc_as(&sim, APP_ID, "wrong", KIOSK, PASSWORD).await,
            "client_secret_expired" => {
                ropc_as(&sim, EXPIRED_APP_ID, APP_SECRET, KIOSK, PASSWORD).await
            }
            "app_not_found" => {
                ropc_as(
                    &sim,
                    "8060e3ec-cbe3-4174-94cf-80065f998444",
                    APP_SECRET,
                    KIOSK,
                    PASSWORD,
                )
                .await
            }
            "consent_required" => {
                ropc_as(&sim, UNCONSENTED_APP_ID, APP_SECRET, KIOSK, PASSWORD).await
            }
            "tenant_not_found" => {
                post_form(
                    &sim,
                    "contoso-typo.onmicrosoft.com",
                    &[("grant_type", "password")],
                )
                .await
            }
            other => panic!(
                "{}: no simulator case for problem '{other}'",
                path.display()
            ),
        };
        let want = &fixture["body"];
        let name = path.display();
        assert_eq!(
            r.status as u64,
            fixture["http_status"].as_u64().unwrap(),
            "{name}: {}",
            r.text
        );
        assert_eq!(r.body["error"], want["error"], "{name}");
        assert_eq!(r.body["error_codes"], want["error_codes"], "{name}");
        assert_eq!(keys(&r.body), keys(want), "{name}");
        assert_eq!(problem(&r).id.as_str(), problem_id, "{name}");
        // The trace lines Microsoft appends, with this answer's own ids.
        let desc = r.body["error_description"].as_str().unwrap();
        let trace = r.body["trace_id"].as_str().unwrap();
        assert!(
            desc.contains(&format!("Trace ID: {trace}")),
            "{name}: {desc}"
        );
        assert!(desc.ends_with(&format!(
            "Timestamp: {}",
            r.body["timestamp"].as_str().unwrap()
        )));
        assert!(is_guid(r.body["correlation_id"].as_str().unwrap()));
        seen += 1;
    }
    assert!(seen >= 10, "all token fixtures compared, saw {seen}");
}

#[tokio::test]
async fn trace_ids_are_fresh_per_answer() {
    let sim = start(Scenario::builtin()).await;
    let a = ropc(&sim, KIOSK, "x").await;
    let b = ropc(&sim, KIOSK, "x").await;
    assert_ne!(a.body["trace_id"], b.body["trace_id"]);
    assert_ne!(a.body["correlation_id"], b.body["correlation_id"]);
}

async fn realm(sim: &SimHandle, username: &str, version: &str) -> Reply {
    let url = format!(
        "{}/common/userrealm/{username}?api-version={version}",
        sim.base_url()
    );
    reply(reqwest::get(url).await.unwrap()).await
}

#[tokio::test]
async fn userrealm_v1_v2_unknown_and_404() {
    let sim = start(Scenario::builtin()).await;
    let fixture = |f: &str| -> Value {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("tests/fixtures/aad/{f}")).unwrap(),
        )
        .unwrap();
        v["body"].clone()
    };
    let managed = realm(&sim, KIOSK, "1.0").await;
    assert_eq!(managed.body["account_type"], "Managed");
    assert_eq!(managed.body["domain_name"], TENANT_DOMAIN);
    assert_eq!(keys(&managed.body), keys(&fixture("U1_v1_managed.json")));

    let fed = realm(&sim, &format!("kiosk@{FEDERATED_DOMAIN}"), "1.0").await;
    assert_eq!(fed.body["account_type"], "Federated");
    assert_eq!(keys(&fed.body), keys(&fixture("U2_v1_federated.json")));

    let unknown = realm(&sim, "someone@unknown.example", "1.0").await;
    assert_eq!(unknown.body["account_type"], "Unknown");

    let v2 = realm(&sim, &format!("kiosk@{FEDERATED_DOMAIN}"), "2.1").await;
    assert_eq!(v2.body["NameSpaceType"], "Federated");
    assert_eq!(v2.body["DomainName"], FEDERATED_DOMAIN);
    assert_eq!(v2.body["FederationBrandName"], "Contoso Demo");
    assert!(
        v2.body.get("account_type").is_none(),
        "v2.1 is PascalCase only"
    );
    assert_eq!(
        realm(&sim, KIOSK, "2.1").await.body["NameSpaceType"],
        "Managed"
    );

    sim.control(Control::SetUserrealmAvailable { available: false });
    assert_eq!(realm(&sim, KIOSK, "1.0").await.status, 404);
    assert_eq!(sim.stats().userrealm_requests, 6);

    // The same fault from a scenario.
    let mut s = Scenario::builtin();
    s.faults.userrealm_unavailable = true;
    let sim2 = start(s).await;
    assert_eq!(realm(&sim2, KIOSK, "1.0").await.status, 404);
}

#[tokio::test]
async fn powerbi_listing_pages_dashboards_and_embed_token() {
    let sim = start(Scenario::builtin()).await;
    let t = access_token(&sim, KIOSK).await;

    let groups = api(&sim, &t, "/groups").await;
    assert_eq!(groups.status, 200, "{}", groups.text);
    let names: Vec<&str> = groups.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Sales", "Operations", "Customer Service"]);
    assert!(
        groups.body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#groups")
    );
    assert_eq!(groups.body["value"][0]["type"], "Workspace");
    assert_eq!(groups.body["value"][0]["isOnDedicatedCapacity"], true);
    assert_eq!(groups.body["value"][1]["isOnDedicatedCapacity"], false);

    let reports = api(&sim, &t, &format!("/groups/{WS_SALES}/reports")).await;
    let r0 = &reports.body["value"][0];
    assert_eq!(r0["name"], "Sales Overview");
    let embed = r0["embedUrl"].as_str().unwrap();
    let prefix = format!(
        "https://app.powerbi.com/reportEmbed?reportId={REPORT_SALES}&groupId={WS_SALES}&w=2&config="
    );
    assert!(embed.starts_with(&prefix), "{embed}");
    // base64 of a JSON object starts with "eyJ" ('{"').
    assert!(embed[prefix.len()..].starts_with("eyJ"), "{embed}");

    let one = api(
        &sim,
        &t,
        &format!("/groups/{WS_SALES}/reports/{REPORT_SALES}"),
    )
    .await;
    for k in [
        "id",
        "reportType",
        "name",
        "webUrl",
        "embedUrl",
        "datasetId",
        "datasetWorkspaceId",
        "isFromPbix",
        "isOwnedByMe",
        "users",
        "subscriptions",
    ] {
        assert!(one.body.get(k).is_some(), "report lacks {k}: {}", one.text);
    }
    assert_eq!(one.body["reportType"], "PowerBIReport");

    let pages = api(
        &sim,
        &t,
        &format!("/groups/{WS_SALES}/reports/{REPORT_SALES}/pages"),
    )
    .await;
    let p = pages.body["value"].as_array().unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p[1]["displayName"], "By Region");
    assert_eq!(p[1]["order"], 1);
    assert_eq!(p[0]["name"], "ReportSection");

    let dashes = api(&sim, &t, &format!("/groups/{WS_SALES}/dashboards")).await;
    assert_eq!(
        dashes.body["value"][0]["displayName"],
        "Executive Dashboard"
    );
    let d = api(
        &sim,
        &t,
        &format!("/groups/{WS_SALES}/dashboards/{DASHBOARD_EXEC}"),
    )
    .await;
    assert!(d.body["embedUrl"].as_str().unwrap().starts_with(&format!(
        "https://app.powerbi.com/dashboardEmbed?dashboardId={DASHBOARD_EXEC}&groupId={WS_SALES}&w=2&config="
    )));

    let url = format!(
        "{}/v1.0/myorg/groups/{WS_SALES}/reports/{REPORT_SALES}/GenerateToken",
        sim.base_url()
    );
    let gt = reply(
        reqwest::Client::new()
            .post(url)
            .bearer_auth(&t)
            .json(&serde_json::json!({"accessLevel": "View"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(gt.status, 200, "{}", gt.text);
    assert!(gt.body["token"].as_str().unwrap().starts_with("H4sI"));
    assert!(is_guid(gt.body["tokenId"].as_str().unwrap()));
    assert!(gt.body["expiration"].as_str().unwrap().ends_with('Z'));

    let s = sim.stats();
    assert_eq!(s.api_requests, 7);
    assert_eq!(s.api_by_kind["generate_token"], 1);
    assert_eq!(s.api_by_kind["pages"], 1);
}

#[tokio::test]
async fn powerbi_refusals() {
    let sim = start(Scenario::builtin()).await;
    let t = access_token(&sim, KIOSK).await;
    let pbi = |r: &Reply| Problem::from_powerbi_error(r.status, &r.text, None).id;

    // A workspace the account is not a member of, an unknown report, "My workspace" as "me".
    for path in [
        format!("/groups/{WS_FINANCE}/reports"),
        format!("/groups/{WS_SALES}/reports/{REPORT_BUDGET}"),
        "/groups/me/reports".to_owned(),
    ] {
        let r = api(&sim, &t, &path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body["error"]["code"], "PowerBIEntityNotFound");
        assert_eq!(r.body["error"]["pbi.error"]["exceptionCulprit"], 1);
        assert_eq!(pbi(&r), ProblemId::ReportNotFound);
    }

    // A token never issued, and no token at all.
    let r = api(&sim, "eyJnot.a.token", "/groups").await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("PowerBINotAuthorizedException"))
    );
    let r = reply(
        reqwest::get(format!("{}/v1.0/myorg/groups", sim.base_url()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);

    // No licence: the token is fine, Power BI refuses everything, with fixture C2's shape.
    let nl = access_token(&sim, &user("nolicence")).await;
    let c2: Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/aad/C2_401_not_authorized.json").unwrap(),
    )
    .unwrap();
    for path in ["/groups".to_owned(), format!("/groups/{WS_SALES}/reports")] {
        let r = api(&sim, &nl, &path).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.body, c2["body"]);
        assert_eq!(pbi(&r), ProblemId::NoPowerbiAccess);
    }
}

#[tokio::test]
async fn expired_access_token_is_403_token_expired() {
    let mut s = Scenario::builtin();
    s.token_lifetime_seconds = 1;
    let sim = start(s).await;
    let r = ropc(&sim, KIOSK, PASSWORD).await;
    assert_eq!(r.body["expires_in"], 1);
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api(&sim, &t, "/groups").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = api(&sim, &t, "/groups").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let c1: Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/aad/C1_403_token_expired.json").unwrap(),
    )
    .unwrap();
    assert_eq!(r.body, c1["body"]);
    assert_eq!(
        Problem::from_powerbi_error(r.status, &r.text, None).id,
        ProblemId::TokenExpired
    );

    // The same without waiting, through control.
    sim.control(Control::SetTokenLifetime { seconds: 3600 });
    let t2 = access_token(&sim, KIOSK).await;
    assert_eq!(api(&sim, &t2, "/groups").await.status, 200);
    sim.control(Control::ExpireAccessTokens {
        username: Some(KIOSK.into()),
    });
    assert_eq!(api(&sim, &t2, "/groups").await.status, 403);
}

#[tokio::test]
async fn throttling_outage_and_counting_before_faults() {
    let sim = start(Scenario::builtin()).await;
    let t = access_token(&sim, KIOSK).await;

    sim.control(Control::ThrottleApi {
        count: 1,
        retry_after_seconds: 7,
    });
    let r = api(&sim, &t, "/groups").await;
    assert_eq!((r.status, r.retry_after), (429, Some(7)));
    assert_eq!(
        Problem::from_powerbi_error(r.status, &r.text, None).id,
        ProblemId::Throttled
    );
    assert_eq!(api(&sim, &t, "/groups").await.status, 200, "one 429 only");

    sim.reset_stats();
    sim.control(Control::ThrottleToken {
        count: 2,
        retry_after_seconds: 3,
    });
    for _ in 0..2 {
        let r = ropc(&sim, KIOSK, PASSWORD).await;
        assert_eq!((r.status, r.retry_after), (429, Some(3)), "{}", r.text);
        assert_eq!(problem(&r).id, ProblemId::Throttled);
    }
    assert_eq!(ropc(&sim, KIOSK, PASSWORD).await.status, 200);

    sim.control(Control::SetTokenOutage {
        on: true,
        retry_after_seconds: Some(30),
    });
    let r = ropc(&sim, KIOSK, PASSWORD).await;
    assert_eq!((r.status, r.retry_after), (503, Some(30)));
    assert_eq!(r.body["error"], "temporarily_unavailable");
    assert_eq!(problem(&r).id, ProblemId::ServiceUnavailable);
    sim.control(Control::SetTokenOutage {
        on: false,
        retry_after_seconds: None,
    });
    assert_eq!(ropc(&sim, KIOSK, PASSWORD).await.status, 200);

    // Faulted answers were counted too: 2 throttled + 1 ok + 1 outage + 1 ok.
    let s = sim.stats();
    assert_eq!(s.token_requests, 5);
    assert_eq!(s.token_by_username[KIOSK], 5);
    assert_eq!(
        s.api_requests, 0,
        "reset_stats cleared the earlier API calls"
    );

    // The scenario form of the outage, as `Scenario::named("outage")`.
    let sim2 = start(Scenario::named("outage").unwrap()).await;
    assert_eq!(ropc(&sim2, KIOSK, PASSWORD).await.status, 503);
    assert_eq!(sim2.stats().token_requests, 1);
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = start(Scenario::builtin()).await;
    sim.control(Control::SetLatency { ms: 300 });
    let t0 = Instant::now();
    assert_eq!(realm(&sim, KIOSK, "1.0").await.status, 200);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn control_over_http_changes_password_and_state() {
    let sim = start(Scenario::builtin()).await;
    let rt = ropc(&sim, KIOSK, PASSWORD).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let ctl = |body: Value| {
        let req = http
            .post(format!("{}/_sim/control", sim.base_url()))
            .json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        ctl(
            serde_json::json!({"action":"set_password","username":KIOSK,"password":"New-Passw0rd!"})
        )
        .await,
        204
    );
    assert_eq!(
        ropc(&sim, KIOSK, PASSWORD).await.body["error_codes"][0],
        50126
    );
    assert_eq!(ropc(&sim, KIOSK, "New-Passw0rd!").await.status, 200);
    // A password reset revokes refresh tokens issued before it.
    let r = refresh(&sim, &rt).await;
    assert_eq!(
        (r.status, r.body["error_codes"][0].as_u64()),
        (400, Some(50173)),
        "{}",
        r.text
    );

    assert_eq!(
        ctl(serde_json::json!({"action":"set_account_state","username":KIOSK,"state":"mfa"})).await,
        204
    );
    assert_eq!(
        ropc(&sim, KIOSK, "New-Passw0rd!").await.body["error_codes"][0],
        50076
    );
    assert_eq!(
        ctl(serde_json::json!({"action":"set_account_state","username":"ghost@x","state":"ok"}))
            .await,
        400
    );
    assert_eq!(
        ctl(serde_json::json!({"action":"no_such_action"})).await,
        422
    );

    let stats: SimStats = http
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, sim.stats());
    assert_eq!(stats.token_requests, 5);
}

#[tokio::test]
async fn revoking_refresh_tokens_and_smart_lockout() {
    let mut s = Scenario::builtin();
    s.lockout_threshold = 3;
    let sim = start(s).await;
    let rt = ropc(&sim, KIOSK, PASSWORD).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.control(Control::RevokeRefreshTokens { username: None });
    let r = refresh(&sim, &rt).await;
    assert_eq!(r.body["error"], "invalid_grant");
    assert_eq!(r.body["error_codes"][0], 50173);

    // Three wrong passwords lock the account: the fourth try fails even with the right one.
    for _ in 0..3 {
        assert_eq!(
            ropc(&sim, KIOSK, "guess").await.body["error_codes"][0],
            50126
        );
    }
    assert_eq!(
        ropc(&sim, KIOSK, PASSWORD).await.body["error_codes"][0],
        50053
    );
    sim.control(Control::SetAccountState {
        username: KIOSK.into(),
        state: scenario::AccountState::Ok,
    });
    assert_eq!(ropc(&sim, KIOSK, PASSWORD).await.status, 200);
}

async fn devicecode(sim: &SimHandle) -> Value {
    let url = format!("{}/organizations/oauth2/v2.0/devicecode", sim.base_url());
    let r = reply(
        reqwest::Client::new()
            .post(url)
            .form(&[("client_id", APP_ID), ("scope", SCOPE)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn poll(sim: &SimHandle, device_code: &str) -> Reply {
    post_form(
        sim,
        "organizations",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", APP_ID),
            ("device_code", device_code),
            ("scope", SCOPE),
        ],
    )
    .await
}

#[tokio::test]
async fn device_code_pending_slow_down_approve() {
    let sim = start(Scenario::builtin()).await;
    let dc = devicecode(&sim).await;
    assert_eq!(dc["interval"], 5);
    assert_eq!(dc["verification_uri"], "https://microsoft.com/devicelogin");
    let user_code = dc["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert!(dc["message"].as_str().unwrap().contains(user_code));
    let code = dc["device_code"].as_str().unwrap();

    let r = poll(&sim, code).await;
    assert_eq!(
        (r.body["error"].as_str(), r.body["error_codes"][0].as_u64()),
        (Some("authorization_pending"), Some(70016))
    );
    // Polled again within the 5 s interval.
    assert_eq!(poll(&sim, code).await.body["error"], "slow_down");

    sim.try_control(Control::ApproveDeviceCode {
        user_code: Some(user_code.into()),
        username: KIOSK.into(),
    })
    .unwrap();
    let r = poll(&sim, code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["refresh_token"].is_string());
    assert_eq!(
        sim.stats().token_by_username[KIOSK],
        1,
        "counted for the approving user"
    );
    // Single use.
    assert_eq!(poll(&sim, code).await.body["error_codes"][0], 70000);
}

#[tokio::test]
async fn device_code_declined_and_expired() {
    let mut s = Scenario::builtin();
    s.device_code.interval_seconds = 0;
    let sim = start(s.clone()).await;
    let dc = devicecode(&sim).await;
    sim.try_control(Control::DeclineDeviceCode { user_code: None })
        .unwrap();
    assert_eq!(
        poll(&sim, dc["device_code"].as_str().unwrap()).await.body["error"],
        "authorization_declined"
    );
    assert!(
        sim.try_control(Control::DeclineDeviceCode {
            user_code: Some("NOPE".into())
        })
        .is_err()
    );

    s.device_code.expires_in_seconds = 0;
    let sim = start(s).await;
    let dc = devicecode(&sim).await;
    let r = poll(&sim, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (r.body["error"].as_str(), r.body["error_codes"][0].as_u64()),
        (Some("expired_token"), Some(70020))
    );
}

#[tokio::test]
async fn client_credentials_has_no_refresh_token_and_needs_a_tenant() {
    let sim = start(Scenario::builtin()).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", APP_ID),
        ("client_secret", APP_SECRET),
        ("scope", "https://analysis.windows.net/powerbi/api/.default"),
    ];
    let r = post_form(&sim, TENANT_ID, &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("refresh_token").is_none());
    // The built-in app's service principal is in no workspace.
    let t = r.body["access_token"].as_str().unwrap();
    assert_eq!(
        api(&sim, t, "/groups").await.body["value"],
        serde_json::json!([])
    );
    assert_eq!(
        post_form(&sim, "organizations", &form).await.body["error_codes"][0],
        50059
    );
}

#[tokio::test]
async fn config_snippet_is_ready_to_use() {
    let sim = start(Scenario::builtin()).await;
    let text = sim.config_snippet(KIOSK);
    let v: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(v["auth"]["client_id"].as_str(), Some(APP_ID));
    assert_eq!(v["auth"]["client_secret"].as_str(), Some(APP_SECRET));
    assert_eq!(v["auth"]["password"].as_str(), Some(PASSWORD));
    assert_eq!(v["auth"]["tenant"].as_str(), Some(TENANT_DOMAIN));
    assert_eq!(
        v["cloud"]["authority"].as_str(),
        Some(sim.base_url().as_str())
    );
    assert_eq!(v["cloud"]["api"].as_str(), Some(sim.base_url().as_str()));
    let playlist = v["playlist"].as_array().unwrap();
    assert_eq!(playlist.len(), 3);
    assert_eq!(playlist[0]["report"].as_str(), Some(REPORT_SALES));

    // Named variants point the snippet at their problem.
    let bad = start(Scenario::named("expired-secret").unwrap()).await;
    let v: toml::Value = toml::from_str(&bad.config_snippet(KIOSK)).unwrap();
    assert_eq!(v["auth"]["client_id"].as_str(), Some(EXPIRED_APP_ID));
    let wrong = start(Scenario::named("wrong-password").unwrap()).await;
    let v: toml::Value =
        toml::from_str(&wrong.config_snippet(&wrong.demo_username().unwrap())).unwrap();
    let pw = v["auth"]["password"].as_str().unwrap();
    assert_ne!(pw, PASSWORD);
    assert_eq!(ropc(&wrong, KIOSK, pw).await.body["error_codes"][0], 50126);
    let mfa = start(Scenario::named("mfa").unwrap()).await;
    assert_eq!(mfa.demo_username().as_deref(), Some(user("mfa").as_str()));
}

#[tokio::test]
async fn embed_page_helpers_and_shutdown() {
    let sim = start(Scenario::builtin()).await;
    let r = reqwest::get(format!(
        "{}/reportEmbed?reportId={REPORT_SALES}",
        sim.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("/sim-embed.js"));
    assert_eq!(sim.stats().embed_requests, 1);
    let js = reqwest::get(format!("{}/sim-embed.js", sim.base_url()))
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // What the fake embed page asks about the report it draws.
    let info: Value = reqwest::get(format!(
        "{}/_sim/embed-info?reportId={REPORT_SALES}",
        sim.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(info["name"], "Sales Overview");
    assert_eq!(info["pages"][0]["displayName"], "Summary");
    // And whether the token it was given is good.
    let check = |token: String| {
        let url = format!("{}/_sim/check-token", sim.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .body(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let token = ropc(&sim, KIOSK, PASSWORD).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(check(token).await, json!({"valid": true, "expired": false}));
    assert_eq!(
        check("not-a-token".into()).await,
        json!({"valid": false, "expired": false})
    );

    sim.shutdown();
    // New connections are refused once the listener is gone.
    let mut refused = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if fresh
            .get(format!("{}/_sim/stats", sim.base_url()))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "server still answering after shutdown");
}

#[tokio::test]
async fn invalid_scenario_is_refused_at_start() {
    let mut s = Scenario::builtin();
    s.accounts[0].workspaces.push("Nowhere".into());
    let err = Simulator::start(s, "127.0.0.1:0".parse().unwrap())
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("Nowhere"), "{err}");
}

/// The `bookmarks` preview: the demo plays Sales Overview alone, through its two bookmarks,
/// which the embed page learns from `embed-info`; what it applies is counted by name, and a
/// deleted bookmark is gone for the embeds that load after.
#[tokio::test]
async fn bookmarks_reach_the_config_and_the_embed_page_and_are_counted() {
    let sim = start(Scenario::named("bookmarks").unwrap()).await;
    let v: toml::Value =
        toml::from_str(&sim.config_snippet(&sim.demo_username().unwrap())).unwrap();
    let playlist = v["playlist"].as_array().unwrap();
    assert_eq!(playlist.len(), 1, "{playlist:?}");
    assert_eq!(playlist[0]["report"].as_str(), Some(REPORT_SALES));
    let listed: Vec<&str> = playlist[0]["bookmarks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    assert_eq!(listed, [BOOKMARK_NORTH, BOOKMARK_ONLINE]);
    // The plain demo keeps rotating through pages.
    let plain = start(Scenario::builtin()).await;
    let v: toml::Value = toml::from_str(&plain.config_snippet(KIOSK)).unwrap();
    assert!(
        v["playlist"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("bookmarks").is_none())
    );

    let info = || async {
        reqwest::get(format!(
            "{}/_sim/embed-info?reportId={REPORT_SALES}",
            sim.base_url()
        ))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    };
    let i = info().await;
    assert_eq!(i["bookmarks"][0]["name"], BOOKMARK_NORTH);
    assert_eq!(i["bookmarks"][0]["displayName"], "North region");
    assert_eq!(i["bookmarks"][0]["page"], i["pages"][1]["name"]);
    assert_eq!(i["bookmarks"][1]["displayName"], "Online sales");

    let tell = |name: &str, known: bool| {
        let url = format!("{}/_sim/bookmark-applied", sim.base_url());
        let body = json!({"name": name, "known": known});
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    };
    tell(BOOKMARK_NORTH, true).await;
    tell(BOOKMARK_NORTH, true).await;
    tell("BookmarkMisspelt", false).await;
    let stats = sim.stats();
    assert_eq!(stats.bookmarks_applied.get(BOOKMARK_NORTH), Some(&2));
    assert_eq!(stats.bookmarks_applied.get(BOOKMARK_ONLINE), None);
    assert_eq!(stats.bookmarks_unknown.get("BookmarkMisspelt"), Some(&1));
    // /_sim/stats carries them too.
    let s: Value = reqwest::get(format!("{}/_sim/stats", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["bookmarks_applied"][BOOKMARK_NORTH], 2);

    sim.try_control(Control::DeleteBookmark {
        name: BOOKMARK_ONLINE.into(),
    })
    .unwrap();
    let i = info().await;
    assert_eq!(i["bookmarks"].as_array().unwrap().len(), 1, "{i}");
    let e = sim
        .try_control(Control::DeleteBookmark {
            name: BOOKMARK_ONLINE.into(),
        })
        .unwrap_err();
    assert!(e.to_string().contains(BOOKMARK_ONLINE), "{e}");
}
