//! Health: the local status endpoint and systemd's watchdog.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::page_gate::{DroppedMessages, PageMessageCounters};
use crate::player::Snapshot;

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

#[derive(Clone)]
struct Shared {
    snapshot: watch::Receiver<Snapshot>,
    started: Instant,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
}

/// What one local client may take of the status endpoint. Any local user can connect, and the
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
pub async fn serve(
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

pub(crate) async fn serve_with(
    listen: SocketAddr,
    snapshot: watch::Receiver<Snapshot>,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    if !listen.ip().is_loopback() {
        // The config refuses this too; checked here as well because it is a security boundary.
        return Err(std::io::Error::other(format!(
            "status endpoint {listen} must be on loopback"
        )));
    }
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        snapshot,
        started: Instant::now(),
        first_render,
        page_messages,
    });
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared);
    tokio::spawn(accept_loop(listener, app, limits));
    Ok(addr)
}

/// Our own accept loop rather than `axum::serve`, which has no connection cap and no
/// header-read timeout.
async fn accept_loop(listener: TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
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
        let service = TowerToHyperService::new(app.clone());
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

fn current(s: &Shared) -> Status {
    let dropped = s.page_messages.get();
    Status {
        player: s.snapshot.borrow().clone(),
        version: crate::VERSION,
        uptime_seconds: s.started.elapsed().as_secs(),
        first_render_ms: s.first_render.get(),
        page_messages_dropped_total: dropped.total(),
        page_messages_dropped: dropped,
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Json<Status> {
    Json(current(&s))
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&current(&s)),
    )
}

/// Prometheus text exposition of the counters.
pub fn render_metrics(s: &Status) -> String {
    let p = &s.player;
    let state = serde_json::to_value(p.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let problem = p.problem.map(|p| p.as_str()).unwrap_or("");
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP pbikiosk_{name} {help}\n# TYPE pbikiosk_{name} counter\npbikiosk_{name} {v}\n"
        ));
    };
    counter(
        "rendered_total",
        "Embeds that finished rendering.",
        p.rendered_total,
    );
    counter(
        "shown_total",
        "Items the page put on screen (confirmed by the page).",
        p.shown_total,
    );
    counter("switches_total", "Playlist steps shown.", p.switches_total);
    counter(
        "token_refreshes_total",
        "Access tokens handed to the page after the first.",
        p.token_refreshes_total,
    );
    counter(
        "page_reloads_total",
        "Reloads of the whole page (hung page, crashed web process).",
        p.page_reloads_total,
    );
    counter(
        "web_process_recycles_total",
        "Web processes replaced by a fresh one to bound memory (not counted as page reloads).",
        p.memory.web_process_recycles_total,
    );
    out.push_str(
        "# HELP pbikiosk_page_messages_dropped_total Page messages dropped: not from the player page, too large, or over the rate.\n# TYPE pbikiosk_page_messages_dropped_total counter\n",
    );
    for (reason, n) in s.page_messages_dropped.by_reason() {
        out.push_str(&format!(
            "pbikiosk_page_messages_dropped_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP pbikiosk_info Version, state and current problem.\n# TYPE pbikiosk_info gauge\npbikiosk_info{{version=\"{}\",state=\"{state}\",problem=\"{problem}\"}} 1\n",
        s.version
    ));
    out.push_str(&format!(
        "# HELP pbikiosk_uptime_seconds Seconds since start.\n# TYPE pbikiosk_uptime_seconds gauge\npbikiosk_uptime_seconds {}\n",
        s.uptime_seconds
    ));
    if let Some(b) = p.memory.tree_pss_bytes {
        out.push_str(&format!(
            "# HELP pbikiosk_tree_pss_bytes PSS of the process tree (player and web processes).\n# TYPE pbikiosk_tree_pss_bytes gauge\npbikiosk_tree_pss_bytes {b}\n"
        ));
    }
    if let Some(b) = p.memory.baseline_pss_bytes {
        out.push_str(&format!(
            "# HELP pbikiosk_tree_pss_baseline_bytes The tree's PSS baseline, taken after the first render.\n# TYPE pbikiosk_tree_pss_baseline_bytes gauge\npbikiosk_tree_pss_baseline_bytes {b}\n"
        ));
    }
    if let Some(f) = &p.fleet {
        render_fleet_metrics(&mut out, f);
    }
    if let Some(gap) = p.last_switch_gap_ms {
        out.push_str(&format!(
            "# HELP pbikiosk_last_switch_gap_ms Frames between items at the last switch, in ms.\n# TYPE pbikiosk_last_switch_gap_ms gauge\npbikiosk_last_switch_gap_ms {gap}\n"
        ));
    }
    out
}

/// The fleet file's metrics (only when the config has a `[fleet]`).
fn render_fleet_metrics(out: &mut String, f: &crate::fleet::FleetStatus) {
    if let Some(age) = f.age_seconds {
        out.push_str(&format!(
            "# HELP pbikiosk_fleet_config_age_seconds Seconds since the fleet server last gave or confirmed the fleet file in use.\n# TYPE pbikiosk_fleet_config_age_seconds gauge\npbikiosk_fleet_config_age_seconds {age}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP pbikiosk_fleet_fetch_errors_total Fleet file fetches that gave no usable file (unreachable, error status, refused).\n# TYPE pbikiosk_fleet_fetch_errors_total counter\npbikiosk_fleet_fetch_errors_total {}\n",
        f.fetch_errors_total
    ));
    out.push_str(&format!(
        "# HELP pbikiosk_fleet_not_modified_total Fleet file fetches answered 304 Not Modified.\n# TYPE pbikiosk_fleet_not_modified_total counter\npbikiosk_fleet_not_modified_total {}\n",
        f.not_modified_total
    ));
    out.push_str(&format!(
        "# HELP pbikiosk_fleet_config_ok Whether the last fleet fetch gave a usable file (1) or not (0).\n# TYPE pbikiosk_fleet_config_ok gauge\npbikiosk_fleet_config_ok {}\n",
        u8::from(f.problem.is_none())
    ));
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

    #[test]
    fn memory_figures_in_metrics() {
        let mut player = Player::new(Settings::default()).snapshot();
        player.memory.tree_pss_bytes = Some(300 << 20);
        player.memory.baseline_pss_bytes = Some(250 << 20);
        player.memory.web_process_recycles_total = 2;
        let m = render_metrics(&Status {
            player,
            version: crate::VERSION,
            uptime_seconds: 1,
            first_render_ms: None,
            page_messages_dropped_total: 0,
            page_messages_dropped: Default::default(),
        });
        assert!(m.contains("\npbikiosk_tree_pss_bytes 314572800\n"), "{m}");
        assert!(
            m.contains("\npbikiosk_tree_pss_baseline_bytes 262144000\n"),
            "{m}"
        );
        assert!(
            m.contains("\npbikiosk_web_process_recycles_total 2\n"),
            "{m}"
        );
        assert!(m.contains("# TYPE pbikiosk_tree_pss_bytes gauge"), "{m}");
    }

    #[test]
    fn fleet_figures_in_status_and_metrics() {
        let status = |fleet| {
            let mut player = Player::new(Settings::default()).snapshot();
            player.fleet = fleet;
            Status {
                player,
                version: crate::VERSION,
                uptime_seconds: 1,
                first_render_ms: None,
                page_messages_dropped_total: 0,
                page_messages_dropped: Default::default(),
            }
        };
        // No [fleet]: neither a `fleet` object nor fleet metrics.
        let none = status(None);
        assert!(!render_metrics(&none).contains("fleet"));
        assert!(serde_json::to_value(&none).unwrap().get("fleet").is_none());
        let f = crate::fleet::FleetStatus {
            url: "https://cfg.example/screens/lobby-1.toml".into(),
            age_seconds: Some(42),
            last_success: Some("2026-12-02T05:00:00Z".into()),
            problem: Some(crate::problem::ProblemId::FleetUnreachable),
            problem_title: Some("The fleet configuration cannot be fetched".into()),
            fetch_errors_total: 3,
            not_modified_total: 7,
            ..Default::default()
        };
        let s = status(Some(f));
        let m = render_metrics(&s);
        assert!(
            m.contains("\npbikiosk_fleet_config_age_seconds 42\n"),
            "{m}"
        );
        assert!(m.contains("\npbikiosk_fleet_fetch_errors_total 3\n"), "{m}");
        assert!(m.contains("\npbikiosk_fleet_not_modified_total 7\n"), "{m}");
        assert!(m.contains("\npbikiosk_fleet_config_ok 0\n"), "{m}");
        assert!(
            m.contains("# TYPE pbikiosk_fleet_fetch_errors_total counter"),
            "{m}"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["fleet"]["problem"], "fleet_unreachable");
        assert_eq!(v["fleet"]["age_seconds"], 42);
        assert_eq!(
            v["fleet"]["url"],
            "https://cfg.example/screens/lobby-1.toml"
        );
        assert_eq!(v["fleet"]["fetch_errors_total"], 3);
    }

    #[tokio::test]
    async fn refuses_non_loopback() {
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
}
