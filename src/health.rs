//! Health: the local status endpoint and systemd's watchdog.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

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
}

/// Serve `/status` (JSON) and `/metrics` (Prometheus text) on a loopback address.
pub async fn serve(
    listen: SocketAddr,
    snapshot: watch::Receiver<Snapshot>,
    first_render: FirstRender,
) -> std::io::Result<SocketAddr> {
    if !listen.ip().is_loopback() {
        // The config refuses this too; checked here as well because it is a security boundary.
        return Err(std::io::Error::other(format!(
            "status endpoint {listen} must be on loopback"
        )));
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        snapshot,
        started: Instant::now(),
        first_render,
    });
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "status endpoint stopped");
        }
    });
    Ok(addr)
}

fn current(s: &Shared) -> Status {
    Status {
        player: s.snapshot.borrow().clone(),
        version: crate::VERSION,
        uptime_seconds: s.started.elapsed().as_secs(),
        first_render_ms: s.first_render.get(),
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
    if let Some(gap) = p.last_switch_gap_ms {
        out.push_str(&format!(
            "# HELP pbikiosk_last_switch_gap_ms Frames between items at the last switch, in ms.\n# TYPE pbikiosk_last_switch_gap_ms gauge\npbikiosk_last_switch_gap_ms {gap}\n"
        ));
    }
    out
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
        let addr = serve("127.0.0.1:0".parse().unwrap(), rx, first)
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
    }

    #[tokio::test]
    async fn first_render_is_process_start_to_the_first_mark() {
        let (_tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        let start = Instant::now() - std::time::Duration::from_millis(1500);
        let first = FirstRender::new(start);
        let addr = serve("127.0.0.1:0".parse().unwrap(), rx, first.clone())
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

    #[tokio::test]
    async fn refuses_non_loopback() {
        let (_tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        let first = FirstRender::new(Instant::now());
        assert!(
            serve("0.0.0.0:0".parse().unwrap(), rx, first)
                .await
                .is_err()
        );
    }
}
