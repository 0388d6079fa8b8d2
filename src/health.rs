//! Health: the status endpoint and systemd's watchdog.
//!
//! `/status` (JSON), `/metrics` (Prometheus text, see [`crate::metrics`]) and
//! `/screenshot.png` (see [`crate::screenshot`]). On loopback every local client may read
//! them; on a LAN address (`[status] token_file`) a client from elsewhere must send the token
//! (see [`crate::status_access`]).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::page_gate::{DroppedMessages, PageMessageCounters};
use crate::player::Snapshot;
use crate::screenshot::{Camera, ShotError};
use crate::secret::Secret;
use crate::status_access::{self, Access};
use crate::textfile::{Textfile, TextfileStatus};

/// What `/status` answers: the player's snapshot plus process facts. Never a token or secret.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub player: Snapshot,
    pub version: &'static str,
    pub uptime_seconds: u64,
    /// Process start to the first rendered report, in ms (see [`FirstRender::mark`]).
    pub first_render_ms: Option<u64>,
    /// Page messages the core dropped: not from the player page (a report frame posting to
    /// the core), too large, or over the rate. See [`crate::page_gate`].
    pub page_messages_dropped_total: u64,
    pub page_messages_dropped: DroppedMessages,
    /// Seconds since an embed last finished rendering.
    pub last_render_age_seconds: Option<u64>,
    /// Seconds the page's token stays usable (0 once due); never the token.
    pub token_expires_in_seconds: Option<u64>,
    /// `[status] textfile`: when it was last written, or why it could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) textfile: Option<TextfileStatus>,
    /// The phone setup page while it is open: its address and PIN. Only loopback clients get
    /// it: the PIN is for the person in front of the screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) setup: Option<crate::setup::Announce>,
}

impl Status {
    /// The status of `player` at `now`.
    pub(crate) fn of(
        player: Snapshot,
        uptime_seconds: u64,
        first_render_ms: Option<u64>,
        dropped: DroppedMessages,
        now: Instant,
    ) -> Self {
        let age = |t: Instant| now.saturating_duration_since(t).as_secs();
        Self {
            last_render_age_seconds: player.last_rendered_at.map(age),
            token_expires_in_seconds: player
                .token_expires_at
                .map(|t| t.saturating_duration_since(now).as_secs()),
            player,
            version: crate::VERSION,
            uptime_seconds,
            first_render_ms,
            page_messages_dropped_total: dropped.total(),
            page_messages_dropped: dropped,
            textfile: None,
            setup: None,
        }
    }
}

/// How long the process took to put its first report on screen: set once by the player's
/// side, read by `/status` (the benchmark's start-up figure).
#[derive(Debug, Clone)]
pub struct FirstRender {
    process_start: Instant,
    ms: Arc<OnceLock<u64>>,
}

impl FirstRender {
    /// `process_start`: as early in `main` as possible, so the figure covers the whole start.
    pub fn new(process_start: Instant) -> Self {
        Self {
            process_start,
            ms: Arc::default(),
        }
    }

    /// Record, once, the time from process start to now; later calls keep the first figure.
    pub fn mark(&self) {
        let _ = self.ms.set(self.process_start.elapsed().as_millis() as u64);
    }

    pub fn get(&self) -> Option<u64> {
        self.ms.get().copied()
    }
}

/// Everything the endpoint and the textfile report, read at each request.
#[derive(Clone)]
pub(crate) struct Reporter(Arc<Shared>);

struct Shared {
    snapshot: watch::Receiver<Snapshot>,
    started: Instant,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
    textfile: Option<Textfile>,
    camera: Option<Camera>,
    setup: Option<watch::Receiver<Option<crate::setup::Announce>>>,
}

impl Reporter {
    /// `textfile`: also report that writer's state; `camera`: serve `/screenshot.png` with it.
    pub(crate) fn new(
        snapshot: watch::Receiver<Snapshot>,
        first_render: FirstRender,
        page_messages: PageMessageCounters,
        textfile: Option<Textfile>,
        camera: Option<Camera>,
        setup: Option<watch::Receiver<Option<crate::setup::Announce>>>,
    ) -> Self {
        Self(Arc::new(Shared {
            snapshot,
            started: Instant::now(),
            first_render,
            page_messages,
            textfile,
            camera,
            setup,
        }))
    }

    pub(crate) fn status(&self) -> Status {
        let s = &self.0;
        let mut status = Status::of(
            s.snapshot.borrow().clone(),
            s.started.elapsed().as_secs(),
            s.first_render.get(),
            s.page_messages.get(),
            Instant::now(),
        );
        status.textfile = s.textfile.as_ref().map(Textfile::status);
        status.setup = s.setup.as_ref().and_then(|rx| rx.borrow().clone());
        status
    }

    /// The Prometheus exposition of [`Reporter::status`].
    pub(crate) fn metrics(&self) -> String {
        crate::metrics::render(&self.status())
    }
}

/// What one client may take of the status endpoint. Any local user can connect, and the
/// file descriptors and tasks it would hold are the player's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub(crate) max_connections: usize,
    /// A client must send its request headers within this time (slow-loris).
    pub(crate) header_read_timeout: Duration,
    /// A connection is closed after this long, keep-alive or not.
    pub(crate) connection_lifetime: Duration,
}

impl Limits {
    /// Plenty for a monitoring agent and a person with curl; a `/status` answer takes
    /// milliseconds, so 30 s is only ever reached by a client holding the connection.
    pub(crate) const DEFAULT: Limits = Limits {
        max_connections: 32,
        header_read_timeout: Duration::from_secs(5),
        connection_lifetime: Duration::from_secs(30),
    };
}

/// Serve `/status` (JSON) and `/metrics` (Prometheus text) on a loopback address.
#[cfg(test)]
pub(crate) async fn serve(
    listen: SocketAddr,
    snapshot: watch::Receiver<Snapshot>,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
) -> std::io::Result<SocketAddr> {
    serve_with(
        listen,
        snapshot,
        first_render,
        page_messages,
        Limits::DEFAULT,
    )
    .await
}

#[cfg(test)]
pub(crate) async fn serve_with(
    listen: SocketAddr,
    snapshot: watch::Receiver<Snapshot>,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    let reporter = Reporter::new(snapshot, first_render, page_messages, None, None, None);
    serve_reporter(listen, None, reporter, limits).await
}

/// Serve `reporter` on `listen`: a loopback address, or any address with a `token`.
pub(crate) async fn serve_reporter(
    listen: SocketAddr,
    token: Option<Secret>,
    reporter: Reporter,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    if !listen.ip().is_loopback() && token.is_none() {
        // The config refuses this too; checked here as well because it is a security boundary.
        return Err(std::io::Error::other(format!(
            "status endpoint {listen} must be on loopback, or have a token"
        )));
    }
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let access = Arc::new(Access::new(token));
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/screenshot.png", get(screenshot))
        .layer(middleware::from_fn_with_state(access, guard))
        .with_state(reporter);
    tokio::spawn(accept_loop(listener, app, limits));
    Ok(addr)
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// Our own accept loop rather than `axum::serve`, which has no connection cap and no
/// header-read timeout.
async fn accept_loop(listener: TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: pause rather than spin until some close.
                tracing::warn!(error = %e, "status endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("status endpoint at its connection limit; closing a new one");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone().layer(Extension(Peer(peer))));
        tokio::spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            // Whatever the outcome, the connection ends here; a client that broke off is not
            // worth a log line.
            let _ = tokio::time::timeout(limits.connection_lifetime, conn).await;
        });
    }
}

/// Every route: loopback is open, anyone else needs the token. The log names the peer and
/// the path, never the header.
async fn guard(
    State(access): State<Arc<Access>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let Some(Extension(Peer(peer))) = peer else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match access.decide(peer.ip(), authorization) {
        status_access::Decision::Allow => next.run(req).await,
        status_access::Decision::Refuse => {
            tracing::info!(%peer, path = %req.uri().path(), "status request without the right token refused");
            (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Bearer realm=\"pbikiosk\"")],
                "A bearer token is required ([status] token_file).\n",
            )
                .into_response()
        }
    }
}

async fn status(State(r): State<Reporter>, peer: Option<Extension<Peer>>) -> Json<Status> {
    let mut status = r.status();
    if !peer.is_some_and(|Extension(Peer(p))| p.ip().is_loopback()) {
        status.setup = None;
    }
    Json(status)
}

async fn metrics(State(r): State<Reporter>) -> impl IntoResponse {
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], r.metrics())
}

async fn screenshot(State(r): State<Reporter>, peer: Option<Extension<Peer>>) -> Response {
    let peer = peer
        .map(|Extension(Peer(p))| p.to_string())
        .unwrap_or_default();
    let Some(camera) = r.0.camera.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "This player has no window to take a screenshot of.\n",
        )
            .into_response();
    };
    let t = Instant::now();
    match camera.take(crate::screenshot::TIMEOUT).await {
        Ok(png) => {
            tracing::info!(%peer, bytes = png.len(), ms = t.elapsed().as_millis() as u64, "screenshot taken");
            (
                [(CONTENT_TYPE, "image/png"), (CACHE_CONTROL, "no-store")],
                png,
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "screenshot failed");
            let code = match e {
                ShotError::NoWindow => StatusCode::SERVICE_UNAVAILABLE,
                ShotError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                ShotError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (code, format!("No screenshot: {e}.\n")).into_response()
        }
    }
}

/// systemd notifications; no-ops when not started by systemd.
pub mod notify {
    /// Tell systemd the service is up (Type=notify).
    pub fn ready() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Feed the watchdog. Called only while the page's heartbeat is alive, so a hung page
    /// gets the service restarted.
    pub fn watchdog() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }

    pub fn status(text: &str) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(text)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::player::{Player, Settings};

    #[tokio::test]
    async fn status_and_metrics_over_http() {
        let snap = Player::new(Settings::default()).snapshot();
        let (_tx, rx) = watch::channel(snap);
        let first = FirstRender::new(Instant::now());
        let dropped = PageMessageCounters::default();
        let addr = serve("127.0.0.1:0".parse().unwrap(), rx, first, dropped.clone())
            .await
            .unwrap();
        let v: serde_json::Value = reqwest::get(format!("http://{addr}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["state"], "signing_in");
        assert_eq!(v["problem"], serde_json::Value::Null);
        assert_eq!(v["version"], crate::VERSION);
        for key in [
            "rendered_total",
            "shown_total",
            "switches_total",
            "token_refreshes_total",
            "page_reloads_total",
            "page_messages_dropped_total",
            "item",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        for key in [
            "tree_pss_mib",
            "baseline_pss_mib",
            "recycle_margin_mib",
            "web_process_recycles_total",
            "last_recycle",
            "last_recycle_reason",
        ] {
            assert!(v["memory"].get(key).is_some(), "memory.{key} missing: {v}");
        }
        assert_eq!(v["memory"]["recycle_margin_mib"], 200.0);
        let m = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains("pbikiosk_rendered_total 0"), "{m}");
        assert!(m.contains("pbikiosk_web_process_recycles_total 0"), "{m}");
        // No sample yet: no PSS gauge rather than a made-up 0.
        assert!(!m.contains("pbikiosk_tree_pss_bytes"), "{m}");
        assert!(m.contains("state=\"signing_in\""), "{m}");
        assert!(
            m.contains("pbikiosk_page_messages_dropped_total{reason=\"unauthenticated\"} 0"),
            "{m}"
        );
        dropped.record(crate::page_gate::DropReason::Unauthenticated);
        dropped.record(crate::page_gate::DropReason::Oversized);
        let v: serde_json::Value = reqwest::get(format!("http://{addr}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["page_messages_dropped_total"], 2);
        assert_eq!(v["page_messages_dropped"]["unauthenticated"], 1);
        assert_eq!(v["page_messages_dropped"]["oversized"], 1);
        let m = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            m.contains("pbikiosk_page_messages_dropped_total{reason=\"oversized\"} 1"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn first_render_is_process_start_to_the_first_mark() {
        let (_tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        let start = Instant::now() - std::time::Duration::from_millis(1500);
        let first = FirstRender::new(start);
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            rx,
            first.clone(),
            PageMessageCounters::default(),
        )
        .await
        .unwrap();
        let get = || async {
            reqwest::get(format!("http://{addr}/status"))
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["first_render_ms"]
                .clone()
        };
        assert_eq!(get().await, serde_json::Value::Null);
        first.mark();
        let ms = get().await.as_u64().expect("a number once marked");
        assert!((1500..60_000).contains(&ms), "{ms}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        first.mark();
        assert_eq!(get().await.as_u64(), Some(ms), "the first figure stays");
    }

    #[tokio::test]
    async fn refuses_non_loopback_without_a_token() {
        let (_tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        let first = FirstRender::new(Instant::now());
        assert!(
            serve(
                "0.0.0.0:0".parse().unwrap(),
                rx,
                first,
                PageMessageCounters::default()
            )
            .await
            .is_err()
        );
    }

    /// A connection that sent part of a request and stalls.
    async fn stalled(addr: SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        c
    }

    /// Whether the server closed `c` within `within` (end of stream, or a reset).
    async fn closed_within(c: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(within, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    async fn status_code(addr: SocketAddr) -> u16 {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        client
            .get(format!("http://{addr}/status"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    async fn start(limits: Limits) -> SocketAddr {
        let (tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        // The sender lives as long as the test: the endpoint keeps serving.
        std::mem::forget(tx);
        serve_with(
            "127.0.0.1:0".parse().unwrap(),
            rx,
            FirstRender::new(Instant::now()),
            PageMessageCounters::default(),
            limits,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_slow_loris_does_not_block_status_and_is_cut_off() {
        let addr = start(Limits::DEFAULT).await;
        let mut slow = Vec::new();
        for _ in 0..24 {
            slow.push(stalled(addr).await);
        }
        let t = Instant::now();
        assert_eq!(status_code(addr).await, 200);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        // Each stalled request is dropped once its headers are overdue.
        for c in &mut slow {
            assert!(closed_within(c, std::time::Duration::from_secs(8)).await);
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(8),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn beyond_the_cap_new_connections_are_closed_until_slots_free_up() {
        let limits = Limits {
            max_connections: 4,
            header_read_timeout: std::time::Duration::from_secs(1),
            connection_lifetime: std::time::Duration::from_secs(30),
        };
        let addr = start(limits).await;
        let mut slow = Vec::new();
        for _ in 0..4 {
            slow.push(stalled(addr).await);
        }
        // Give the accept loop time to take all four.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut extra = stalled(addr).await;
        assert!(
            closed_within(&mut extra, std::time::Duration::from_millis(500)).await,
            "a connection over the cap is closed at once"
        );
        // The stalled ones time out; then the endpoint serves again.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(status_code(addr).await, 200);
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_by_the_header_timeout() {
        let limits = Limits {
            max_connections: 4,
            header_read_timeout: std::time::Duration::from_millis(500),
            connection_lifetime: std::time::Duration::from_secs(30),
        };
        let addr = start(limits).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut c, std::time::Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn a_connection_is_closed_after_its_lifetime_even_when_active() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let limits = Limits {
            max_connections: 4,
            header_read_timeout: std::time::Duration::from_secs(5),
            connection_lifetime: std::time::Duration::from_secs(1),
        };
        let addr = start(limits).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        // Keep-alive requests, one after another, until the server hangs up.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let sent = c
                .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await;
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(3), c.read(&mut buf)).await;
            if sent.is_err() || matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
                break;
            }
            assert!(read.is_ok(), "no answer and no close");
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "never closed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            t.elapsed() >= std::time::Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }

    const TOKEN: &str = "Zm9vYmFyLXN0YXR1cy10b2tlbi0xMjM0NTY=";

    /// A status as a playing screen reports it: every optional figure present.
    fn playing() -> Snapshot {
        let now = Instant::now();
        let mut s = Player::new(Settings::default()).snapshot();
        s.state = crate::player::State::Playing;
        s.problem = Some(crate::problem::ProblemId::EmbedFailed);
        s.rendered_total = 3;
        s.last_switch_gap_ms = Some(16.7);
        s.memory.tree_pss_bytes = Some(300 << 20);
        s.memory.baseline_pss_bytes = Some(250 << 20);
        s.last_rendered_at = Some(now - Duration::from_secs(20));
        s.token_expires_at = Some(now + Duration::from_secs(1800));
        s
    }

    fn fake_png() -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&360u32.to_be_bytes());
        png
    }

    /// This machine's address on its network (not loopback): a client connecting from it is
    /// a client from the network as far as the endpoint can tell.
    fn lan_ip() -> std::net::IpAddr {
        let nets = sysinfo::Networks::new_with_refreshed_list().expect("network interfaces");
        nets.values()
            .flat_map(|d| d.ip_networks().iter().map(|n| n.addr))
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            .expect("the test needs a network interface with an IPv4 address besides loopback")
    }

    /// Logs written while `f` runs on this thread (a current-thread runtime keeps every task
    /// here).
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn from_the_network_every_route_needs_the_token_loopback_does_not() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (_tx, rx) = watch::channel(playing());
        let camera = Camera::new(|r| r.send(Ok(fake_png())).is_ok());
        let reporter = Reporter::new(
            rx,
            FirstRender::new(Instant::now()),
            PageMessageCounters::default(),
            None,
            Some(camera),
            None,
        );
        let addr = serve_reporter(
            "0.0.0.0:0".parse().unwrap(),
            Some(Secret::new(TOKEN)),
            reporter,
            Limits::DEFAULT,
        )
        .await
        .unwrap();
        let lan = lan_ip();
        let from_lan = reqwest::Client::builder()
            .no_proxy()
            .local_address(lan)
            .build()
            .unwrap();
        let at = SocketAddr::new(lan, addr.port());
        let get = |path: &'static str, auth: Option<String>| {
            let from_lan = from_lan.clone();
            async move {
                let mut req = from_lan.get(format!("http://{at}{path}"));
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                let r = req.send().await.unwrap();
                let code = r.status().as_u16();
                let www = r.headers().get("www-authenticate").cloned();
                (code, www, r.bytes().await.unwrap())
            }
        };
        for path in ["/status", "/metrics", "/screenshot.png"] {
            let (code, www, _) = get(path, None).await;
            assert_eq!(code, 401, "{path}");
            assert_eq!(www.unwrap(), "Bearer realm=\"pbikiosk\"");
            let (code, _, _) = get(path, Some(format!("Bearer {TOKEN}x"))).await;
            assert_eq!(code, 401, "{path}");
            let (code, _, _) = get(path, Some(format!("Basic {TOKEN}"))).await;
            assert_eq!(code, 401, "{path}");
            let (code, _, body) = get(path, Some(format!("Bearer {TOKEN}"))).await;
            assert_eq!(code, 200, "{path}");
            assert!(!body.is_empty());
        }
        let (_, _, png) = get("/screenshot.png", Some(format!("Bearer {TOKEN}"))).await;
        assert_eq!(&png[..], &fake_png()[..]);
        // On this device: open, as always.
        let local = SocketAddr::new("127.0.0.1".parse().unwrap(), addr.port());
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{local}/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["state"], "playing");
        assert_eq!(v["last_render_age_seconds"], 20);
        let left = v["token_expires_in_seconds"].as_u64().unwrap();
        assert!((1790..=1800).contains(&left), "{v}");

        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        // The sweep looked at real route logs: the refusals and the screenshot are there.
        assert!(log.contains("without the right token refused"), "{log}");
        assert!(log.contains("screenshot taken"), "{log}");
        assert!(
            !log.contains(&TOKEN[..12]),
            "the token reached the log: {log}"
        );
    }

    #[tokio::test]
    async fn screenshot_without_a_window_is_503() {
        let (_tx, rx) = watch::channel(playing());
        let gone = Camera::new(|_| false);
        let reporter = Reporter::new(
            rx,
            FirstRender::new(Instant::now()),
            PageMessageCounters::default(),
            None,
            Some(gone),
            None,
        );
        let addr = serve_reporter(
            "127.0.0.1:0".parse().unwrap(),
            None,
            reporter,
            Limits::DEFAULT,
        )
        .await
        .unwrap();
        let r = reqwest::get(format!("http://{addr}/screenshot.png"))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("window is not open"));
    }

    /// `promtool check metrics` (Debian's `prometheus` package): the text it reads.
    fn promtool_check(what: &str, text: &str) {
        use std::io::Write as _;
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!(
                "SKIPPED promtool check of {what}: promtool is not installed (apt-get install prometheus; scripts/test.sh does)"
            );
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool on {what}: {said}\n{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_and_textfile_pass_promtool_and_the_textfile_follows_the_player() {
        let (tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.prom");
        let textfile = Textfile::new(path.clone());
        let dropped = PageMessageCounters::default();
        dropped.record(crate::page_gate::DropReason::Oversized);
        let first = FirstRender::new(Instant::now());
        first.mark();
        let reporter = Reporter::new(rx, first, dropped, Some(textfile.clone()), None, None);
        let addr = serve_reporter(
            "127.0.0.1:0".parse().unwrap(),
            None,
            reporter.clone(),
            Limits::DEFAULT,
        )
        .await
        .unwrap();
        let task = tokio::spawn(
            textfile
                .clone()
                .run(Duration::from_millis(100), move || reporter.metrics()),
        );
        let read_until = |want: &'static str| {
            let path = path.clone();
            async move {
                for _ in 0..100 {
                    if let Ok(t) = std::fs::read_to_string(&path)
                        && t.contains(want)
                    {
                        return t;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("the textfile never said {want}");
            }
        };
        let starting = read_until("pbikiosk_state{state=\"signing_in\"} 1").await;
        promtool_check("the textfile while signing in", &starting);
        // The player starts playing: the next write says so.
        tx.send_replace(playing());
        let text = read_until("pbikiosk_state{state=\"playing\"} 1").await;
        promtool_check("the textfile while playing", &text);
        for family in [
            "pbikiosk_problem{id=\"embed_failed\"} 1",
            "pbikiosk_last_render_age_seconds ",
            "pbikiosk_token_expires_in_seconds ",
            "pbikiosk_tree_pss_bytes 314572800",
            "pbikiosk_last_switch_gap_seconds 0.0167",
            "pbikiosk_uptime_seconds ",
            "pbikiosk_first_render_seconds ",
            "pbikiosk_build_info{version=",
            "pbikiosk_page_messages_dropped_total{reason=\"oversized\"} 1",
        ] {
            assert!(text.contains(family), "{family} missing:\n{text}");
        }
        let r = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(
            r.headers()["content-type"],
            crate::metrics::CONTENT_TYPE,
            "the exposition format's content type"
        );
        let m = r.text().await.unwrap();
        promtool_check("/metrics", &m);
        let v: serde_json::Value = reqwest::get(format!("http://{addr}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["textfile"]["path"], path.to_str().unwrap(), "{v}");
        assert_eq!(v["textfile"]["error"], serde_json::Value::Null, "{v}");
        assert!(v["textfile"]["writes_total"].as_u64().unwrap() >= 2, "{v}");
        task.abort();
    }

    #[tokio::test]
    async fn a_textfile_write_failure_is_in_status() {
        let (_tx, rx) = watch::channel(playing());
        let textfile = Textfile::new("/nonexistent-pbikiosk-dir/pbikiosk.prom".into());
        let reporter = Reporter::new(
            rx,
            FirstRender::new(Instant::now()),
            PageMessageCounters::default(),
            Some(textfile.clone()),
            None,
            None,
        );
        let task = tokio::spawn(
            textfile
                .clone()
                .run(Duration::from_millis(20), move || String::from("a 1\n")),
        );
        let addr = serve_reporter(
            "127.0.0.1:0".parse().unwrap(),
            None,
            reporter,
            Limits::DEFAULT,
        )
        .await
        .unwrap();
        let mut v = serde_json::Value::Null;
        for _ in 0..100 {
            v = reqwest::get(format!("http://{addr}/status"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["textfile"]["error"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e = v["textfile"]["error"]
            .as_str()
            .expect("an error in /status");
        assert!(e.contains("/nonexistent-pbikiosk-dir"), "{v}");
        assert_eq!(v["state"], "playing", "not fatal: {v}");
        task.abort();
    }
}
