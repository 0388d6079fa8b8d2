//! Fleet configuration from a URL, with the real binary: a local web server serves the fleet
//! file, the simulator plays Microsoft. A new playlist switches at the next item boundary
//! without a reload; a server down at boot leaves the last good playlist playing; a broken file
//! leaves it playing too and `/status` names the problem; the bearer token is sent and appears
//! in no log, `/status` or `/metrics`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::common::*;

const TOKEN: &str = "fleet-Bearer-S3cretToken-e2e";

/// One request: file name asked for, `Authorization`, `If-None-Match`, status answered.
type Request = (String, Option<String>, Option<String>, u16);

#[derive(Default)]
struct FleetServer {
    /// The file and its ETag.
    file: Mutex<(String, String)>,
    seen: Mutex<Vec<Request>>,
}

async fn fleet_file(
    State(s): State<Arc<FleetServer>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (body, etag) = s.file.lock().unwrap().clone();
    let not_modified = h("if-none-match").as_deref() == Some(etag.as_str());
    let code = if not_modified { 304 } else { 200 };
    s.seen
        .lock()
        .unwrap()
        .push((name, h("authorization"), h("if-none-match"), code));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (StatusCode::OK, [("etag", etag)], body).into_response()
}

/// Serve on `addr` until the task is aborted.
async fn serve_fleet(addr: SocketAddr, s: Arc<FleetServer>) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/screens/{name}", get(fleet_file))
        .with_state(s);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

fn item_name(s: &Value) -> Option<String> {
    s["item"]["name"].as_str().map(str::to_owned)
}

/// The e2e log of `name`, `/status` and `/metrics`: the token must be in none of them.
async fn assert_no_token(p: &Player, name: &str) {
    let log = std::fs::read_to_string(out_dir().join(format!("{name}.log"))).unwrap();
    assert!(log.contains("fleet"), "the log has fleet lines to look at");
    assert!(!log.contains(TOKEN), "the bearer token is in the log");
    let status = p.status().await.unwrap().to_string();
    assert!(!status.contains(TOKEN), "{status}");
    let metrics = p
        .http
        .get(format!("http://{}/metrics", p.status))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pbikiosk_fleet_fetch_errors_total"),
        "{metrics}"
    );
    assert!(!metrics.contains(TOKEN), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn fleet_playlist_from_a_url() {
    use pbikiosk::sim::front::{EmbedFront, FrontCert};
    use pbikiosk::sim::scenario::builtin_ids as ids;
    let _one = lock().await;
    let sim = pbikiosk::sim::Simulator::start(
        pbikiosk::sim::Scenario::builtin(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let door = EmbedFront::start(sim.router(), "app.powerbi.com", FrontCert::RunCa)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("door-ca.pem");
    std::fs::write(&ca, door.ca_pem.as_deref().unwrap()).unwrap();
    let token = dir.path().join("fleet-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The device keeps sign-in and cloud; its playlist comes from the fleet file.
    let snippet = sim.config_snippet(&format!("kiosk@{}", ids::TENANT_DOMAIN));
    let (device, playlist) = snippet.split_at(snippet.find("\n[[playlist]]").unwrap());
    let blocks: Vec<String> = playlist
        .split("\n[[playlist]]")
        .filter(|b| !b.trim().is_empty())
        .map(|b| format!("[[playlist]]{b}seconds = 8\n"))
        .collect();
    assert!(blocks.len() >= 2, "{snippet}");
    let fleet_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Arc::new(FleetServer::default());
    *server.file.lock().unwrap() = (blocks[0].clone(), "\"v1\"".into());
    let mut running = serve_fleet(fleet_addr, server.clone()).await;
    let device = device.replace(
        "[cloud]",
        &format!("[cloud]\nca_file = {:?}", ca.to_str().unwrap()),
    );
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(
        &cfg,
        format!(
            "{device}\n[fleet]\nurl = \"http://{fleet_addr}/screens/{{hostname}}.toml\"\npoll_seconds = 30\nbearer_token_file = \"fleet-token\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let state_env = state.to_str().unwrap().to_owned();
    let proxy = format!("http://{}", door.proxy);
    let env = [
        ("https_proxy", proxy.as_str()),
        ("no_proxy", ""),
        ("NO_PROXY", ""),
        ("STATE_DIRECTORY", state_env.as_str()),
    ];
    let x = Xvfb::start();

    // 1. The fleet file's playlist plays; the placeholder was filled in, the token sent.
    let mut p = Player::run_config_env(&x, "fleet-switch", &cfg, &env);
    let s = p
        .wait_for("the fleet playlist playing", 90, |s| {
            s["state"] == "playing" && s["items"].as_array().is_some_and(|i| i.len() == 1)
        })
        .await;
    let first = item_name(&s).unwrap();
    assert_eq!(s["fleet"]["problem"], Value::Null, "{s}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, format!("{}.toml", host.trim()), "{seen:?}");
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        seen.iter().all(|r| r.1.as_deref() == Some(bearer.as_str())),
        "{seen:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_png = x.screenshot("fleet-switch-before.png");
    println!("screenshot {}", before_png.display());

    // 2. A new file on the server: the next poll (30 s) takes it, the item on screen keeps its
    //    time, then the new playlist's item follows. No reload, never anything but playing.
    *server.file.lock().unwrap() = (blocks[1].clone(), "\"v2\"".into());
    let reloads = num(&p.status().await.unwrap(), "page_reloads_total");
    let changed_at = Instant::now();
    let mut states = Vec::new();
    let second = loop {
        assert!(
            changed_at.elapsed() < Duration::from_secs(70),
            "no switch: {states:?}"
        );
        if let Some(s) = p.status().await {
            states.push((s["state"].as_str().unwrap_or("").to_owned(), item_name(&s)));
            if let Some(name) = item_name(&s)
                && name != first
            {
                break name;
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    let took = changed_at.elapsed();
    let s = p.status().await.unwrap();
    assert_eq!(
        num(&s, "page_reloads_total"),
        reloads,
        "the page was reloaded: {s}"
    );
    assert!(
        states
            .iter()
            .all(|(st, item)| st == "playing" && item.is_some()),
        "not playing during the switch: {states:?}"
    );
    assert_eq!(s["items"].as_array().unwrap().len(), 1, "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_png = x.screenshot("fleet-switch-after.png");
    println!(
        "switched from {first:?} to {second:?} {took:?} after the change; screenshot {}",
        after_png.display()
    );
    // The unchanged file was asked for with its ETag and cost a 304 from then on.
    tokio::time::sleep(Duration::from_secs(32)).await;
    let s = p.status().await.unwrap();
    assert!(
        s["fleet"]["not_modified_total"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(s["fleet"]["parses_total"], 2, "a 304 is not parsed: {s}");
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|r| r.2.as_deref() == Some("\"v2\"") && r.3 == 304),
        "{seen:?}"
    );
    assert_no_token(&p, "fleet-switch").await;
    drop(p);

    // 3. The server is down at boot: the last good playlist plays, /status says why.
    running.abort();
    let _ = running.await;
    let mut p = Player::run_config_env(&x, "fleet-down", &cfg, &env);
    let s = p
        .wait_for("the last good playlist with the server down", 90, |s| {
            s["state"] == "playing" && s["fleet"]["problem"] == "fleet_unreachable"
        })
        .await;
    assert_eq!(item_name(&s).as_deref(), Some(second.as_str()), "{s}");
    assert_eq!(s["problem"], Value::Null, "the screen is not covered: {s}");
    assert!(s["fleet"]["age_seconds"].as_u64().is_some(), "{s}");

    // 4. A broken file (it sets [auth]): refused, the last good playlist keeps playing.
    *server.file.lock().unwrap() = (
        format!("{}[auth]\ntenant = \"evil.example\"\n", blocks[0]),
        "\"bad\"".into(),
    );
    running = serve_fleet(fleet_addr, server.clone()).await;
    let s = p
        .wait_for("the broken fleet file refused", 60, |s| {
            s["fleet"]["problem"] == "fleet_config_invalid"
        })
        .await;
    assert_eq!(s["state"], "playing", "{s}");
    assert_eq!(item_name(&s).as_deref(), Some(second.as_str()), "{s}");
    let msg = s["fleet"]["problem_message"].as_str().unwrap();
    assert!(msg.contains("[auth]"), "{msg}");
    let metrics = p
        .http
        .get(format!("http://{}/metrics", p.status))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\npbikiosk_fleet_config_ok 0\n"),
        "{metrics}"
    );
    assert_no_token(&p, "fleet-down").await;
    running.abort();
}

/// A fleet screen with no playlist of its own and no kept fleet file, its server down: the
/// fleet problem is what the screen shows (not "the playlist is empty").
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn fleet_problem_without_a_playlist_is_on_screen() {
    use pbikiosk::sim::scenario::builtin_ids as ids;
    let _one = lock().await;
    let sim = pbikiosk::sim::Simulator::start(
        pbikiosk::sim::Scenario::builtin(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snippet = sim.config_snippet(&format!("kiosk@{}", ids::TENANT_DOMAIN));
    let device = &snippet[..snippet.find("\n[[playlist]]").unwrap()];
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(
        &cfg,
        format!("{device}\n[fleet]\nurl = \"http://{down_addr}/screens/{{mac}}.toml\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let x = Xvfb::start();
    let mut p = Player::run_config_env(
        &x,
        "fleet-problem",
        &cfg,
        &[("STATE_DIRECTORY", state.to_str().unwrap())],
    );
    let s = p
        .wait_for("the fleet problem on screen", 60, |s| {
            s["problem"] == "fleet_unreachable"
        })
        .await;
    // An unreachable server passes by itself: the screen waits for the network.
    assert_eq!(s["state"], "waiting_network", "{s}");
    assert_eq!(s["fleet"]["problem"], "fleet_unreachable", "{s}");
    let cause = s["problem_message"].as_str().unwrap();
    assert!(
        cause.starts_with(&format!("http://{down_addr}/screens/")),
        "{cause}"
    );
    assert!(
        s["fleet"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{down_addr}/screens/")),
        "{s}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let png = x.screenshot("fleet-problem.png");
    println!("screenshot {}", png.display());
}
