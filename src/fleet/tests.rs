//! The fetcher against a local web server: conditional requests, the bearer token, refused and
//! broken files, and the last good file at boot.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::*;
use crate::config::SecretSources;

const WS: &str = "11111111-2222-3333-4444-555555555555";
const R1: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const R2: &str = "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff";
const TOKEN: &str = "fleet-Bearer-S3cretToken";
const PW: &str = "pw-Hunter2Correct";

/// One request as the server saw it: path, `Authorization`, `If-None-Match`.
type Seen = (String, Option<String>, Option<String>);

#[derive(Default)]
struct Server {
    /// The file served, and its ETag.
    file: Mutex<(String, String)>,
    /// Status to answer with instead of the file.
    fail: Mutex<Option<u16>>,
    /// (path, Authorization, If-None-Match) of each request.
    seen: Mutex<Vec<Seen>>,
}

async fn serve_file(
    State(s): State<Arc<Server>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    s.seen
        .lock()
        .unwrap()
        .push((name, h("authorization"), h("if-none-match")));
    if let Some(code) = *s.fail.lock().unwrap() {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    let (body, etag) = s.file.lock().unwrap().clone();
    if h("if-none-match").as_deref() == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (StatusCode::OK, [("etag", etag)], body).into_response()
}

async fn start_server() -> (SocketAddr, Arc<Server>) {
    let s = Arc::new(Server::default());
    let app = Router::new()
        .route("/screens/{name}", get(serve_file))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, s)
}

fn playlist(report: &str, seconds: u32) -> String {
    format!("[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{report}\"\nseconds = {seconds}\n")
}

/// A device config with `[fleet]` at `addr`, its token in a file, an own playlist of R1.
fn device(dir: &Path, addr: SocketAddr) -> Config {
    let token = dir.join("fleet-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"0f0f0f0f-1234-5678-9abc-def012345678\"\nusername = \"svc@contoso.onmicrosoft.com\"\nclient_secret = \"cs-Sup3rSecretValue\"\npassword = \"{PW}\"\n[fleet]\nurl = \"http://{addr}/screens/{{hostname}}-{{mac}}.toml\"\npoll_seconds = 30\nbearer_token_file = \"fleet-token\"\n{}",
        playlist(R1, 30)
    );
    config::parse(&text, &dir.join("pbikiosk.toml"), &SecretSources::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ids() -> DeviceIds {
    DeviceIds {
        hostname: Some("lobby-1".into()),
        serial: None,
        mac: Some("dca632010203".into()),
    }
}

struct Rig {
    dir: tempfile::TempDir,
    server: Arc<Server>,
    device: Config,
    store: Store,
    status: FleetStatus,
    client: reqwest::Client,
}

impl Rig {
    async fn new() -> Self {
        let (addr, server) = start_server().await;
        let dir = tempfile::tempdir().unwrap();
        let device = device(dir.path(), addr);
        let store = Store::new(dir.path().join("state"));
        Self {
            server,
            device,
            store,
            status: FleetStatus::default(),
            client: crate::net::build_client(None, &Default::default()).unwrap(),
            dir,
        }
    }

    fn serve(&self, body: &str, etag: &str) {
        *self.server.file.lock().unwrap() = (body.to_owned(), etag.to_owned());
    }

    async fn poll(&mut self, unix: u64) -> Fetched {
        poll_once(
            &self.client,
            &self.device,
            &ids(),
            &self.store,
            &mut self.status,
            unix,
        )
        .await
    }

    /// What the player would run now.
    fn effective(&self) -> Config {
        with_last_good(self.device.clone(), &self.store)
    }
}

#[tokio::test]
async fn an_etag_is_honoured_and_a_304_costs_no_parse() {
    let mut r = Rig::new().await;
    r.serve(&playlist(R2, 45), "\"v1\"");
    assert_eq!(r.poll(1000).await, Fetched::New);
    assert_eq!(r.status.parses_total, 1);
    assert_eq!(r.status.content_version, 1);
    assert_eq!(r.effective().playlist[0].id, R2);
    assert_eq!(r.effective().playlist[0].seconds, 45);
    for t in [1030, 1060, 1090] {
        assert_eq!(r.poll(t).await, Fetched::Same);
    }
    assert_eq!(r.status.parses_total, 1, "a 304 is not parsed");
    assert_eq!(r.status.not_modified_total, 3);
    assert_eq!(r.status.content_version, 1);
    assert_eq!(r.status.at(1100).age_seconds, Some(10));
    let seen = r.server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].2, None, "nothing held yet: no condition");
    assert!(seen[1..].iter().all(|s| s.2.as_deref() == Some("\"v1\"")));
    // Placeholders were filled in, the token was sent on every request.
    assert!(
        seen.iter().all(|s| s.0 == "lobby-1-dca632010203.toml"),
        "{seen:?}"
    );
    let bearer = format!("Bearer {TOKEN}");
    assert!(seen.iter().all(|s| s.1.as_deref() == Some(bearer.as_str())));
    // A changed file on the server is fetched and parsed again.
    r.serve(&playlist(R1, 60), "\"v2\"");
    assert_eq!(r.poll(1120).await, Fetched::New);
    assert_eq!(r.status.parses_total, 2);
    assert_eq!(r.effective().playlist[0].seconds, 60);
    // Kept on disk with its ETag, for the next boot.
    let kept = r.store.load().unwrap();
    assert_eq!(kept.meta.validators.etag.as_deref(), Some("\"v2\""));
    assert_eq!(kept.meta.confirmed_unix, 1120);
    let status = serde_json::to_string(&r.status.at(1121)).unwrap();
    assert!(!status.contains(TOKEN), "{status}");
    assert!(status.contains("lobby-1-dca632010203.toml"), "{status}");
}

#[tokio::test]
async fn a_broken_or_refused_file_keeps_the_last_good_one() {
    let mut r = Rig::new().await;
    r.serve(&playlist(R2, 45), "\"v1\"");
    assert_eq!(r.poll(1000).await, Fetched::New);
    for (body, key) in [
        (
            format!("{}[auth]\ntenant = \"evil\"\n", playlist(R1, 30)),
            "auth",
        ),
        (
            format!("[auth]\npassword = \"{PW}-evil\"\n"),
            "auth.password",
        ),
        (playlist(R1, 2), "playlist[1].seconds"),
        ("[[playlist]\n".to_owned(), "line 1"),
    ] {
        r.serve(&body, "\"bad\"");
        assert_eq!(r.poll(1030).await, Fetched::Failed, "{body}");
        assert_eq!(r.status.problem, Some(ProblemId::FleetConfigInvalid));
        let msg = r.status.problem_message.clone().unwrap();
        assert!(msg.contains(key), "{body}: {msg}");
        assert!(!msg.contains(PW), "{msg}");
        // The last good file is still the one in use, on disk and for the player.
        assert_eq!(r.effective().playlist[0].id, R2);
        assert_eq!(r.effective().playlist[0].seconds, 45);
        assert_eq!(
            r.store.load().unwrap().meta.validators.etag.as_deref(),
            Some("\"v1\"")
        );
    }
    assert_eq!(r.status.fetch_errors_total, 4);
    assert_eq!(
        r.status.problem_title.as_deref(),
        Some("The fleet configuration was refused")
    );
    // Fixed on the server: the problem clears.
    r.serve(&playlist(R1, 50), "\"v3\"");
    assert_eq!(r.poll(1060).await, Fetched::New);
    assert_eq!(r.status.problem, None);
    assert_eq!(r.effective().playlist[0].seconds, 50);
}

#[tokio::test]
async fn an_unreachable_server_at_boot_leaves_the_last_good_playlist() {
    let mut r = Rig::new().await;
    r.serve(&playlist(R2, 45), "\"v1\"");
    assert_eq!(r.poll(1000).await, Fetched::New);
    // Error statuses: the last good file stays.
    for code in [404, 401, 500] {
        *r.server.fail.lock().unwrap() = Some(code);
        assert_eq!(r.poll(1030).await, Fetched::Failed);
        assert_eq!(r.status.problem, Some(ProblemId::FleetUnreachable));
        assert!(
            r.status
                .problem_message
                .as_deref()
                .unwrap()
                .contains(&code.to_string()),
            "{:?}",
            r.status.problem_message
        );
    }
    // A new boot with the server gone: the kept file is used, and the fetch says why it failed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let rebooted = device(r.dir.path(), dead_addr);
    let mut status = FleetStatus::default();
    let got = poll_once(&r.client, &rebooted, &ids(), &r.store, &mut status, 2000).await;
    assert_eq!(got, Fetched::Failed);
    assert_eq!(status.problem, Some(ProblemId::FleetUnreachable));
    let effective = with_last_good(rebooted.clone(), &r.store);
    assert_eq!(effective.playlist[0].id, R2, "the last good playlist plays");
    // Without a kept file, the device's own playlist.
    let empty = Store::new(r.dir.path().join("nothing"));
    assert_eq!(with_last_good(rebooted, &empty).playlist[0].id, R1);
}

#[tokio::test]
async fn a_placeholder_without_a_value_is_a_problem_not_a_request() {
    let mut r = Rig::new().await;
    let mut status = FleetStatus::default();
    let got = poll_once(
        &r.client,
        &r.device,
        &DeviceIds::default(),
        &r.store,
        &mut status,
        1,
    )
    .await;
    assert_eq!(got, Fetched::Failed);
    assert!(status.problem_message.unwrap().contains("{hostname}"));
    assert!(r.server.seen.lock().unwrap().is_empty());
    // An answer larger than the cap is refused without being kept.
    r.serve(&"#".repeat(FLEET_BODY_LIMIT + 1), "\"big\"");
    assert_eq!(r.poll(2).await, Fetched::Failed);
    assert_eq!(r.status.problem, Some(ProblemId::FleetUnreachable));
    assert!(r.store.load().is_none());
}
