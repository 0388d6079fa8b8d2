//! Health: the local status endpoint, device facts for status screens, and systemd's watchdog.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
    /// Process start to the first rendered report, in ms (see [`mark_first_render`]).
    pub first_render_ms: Option<u64>,
}

static FIRST_RENDER_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Record, once, how long the process took to put its first report on screen.
pub fn mark_first_render(since_process_start: std::time::Duration) {
    let _ = FIRST_RENDER_MS.set(since_process_start.as_millis() as u64);
}

#[derive(Clone)]
struct Shared {
    snapshot: watch::Receiver<Snapshot>,
    started: Instant,
}

/// Serve `/status` (JSON) and `/metrics` (Prometheus text) on a loopback address.
pub async fn serve(
    listen: SocketAddr,
    snapshot: watch::Receiver<Snapshot>,
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
        first_render_ms: FIRST_RENDER_MS.get().copied(),
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
    out.push_str(&format!(
        "# HELP pbikiosk_info Version, state and current problem.\n# TYPE pbikiosk_info gauge\npbikiosk_info{{version=\"{}\",state=\"{state}\",problem=\"{problem}\"}} 1\n",
        s.version
    ));
    out.push_str(&format!(
        "# HELP pbikiosk_uptime_seconds Seconds since start.\n# TYPE pbikiosk_uptime_seconds gauge\npbikiosk_uptime_seconds {}\n",
        s.uptime_seconds
    ));
    if let Some(gap) = p.last_switch_gap_ms {
        out.push_str(&format!(
            "# HELP pbikiosk_last_switch_gap_ms Frames between items at the last switch, in ms.\n# TYPE pbikiosk_last_switch_gap_ms gauge\npbikiosk_last_switch_gap_ms {gap}\n"
        ));
    }
    out
}

/// Facts an installer needs on a status screen: which device, where on the network, which
/// version, what time the device thinks it is.
pub fn device_facts() -> Vec<(String, String)> {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into());
    let nets = sysinfo::Networks::new_with_refreshed_list().ok();
    let mut ips: Vec<String> = nets
        .iter()
        .flatten()
        .flat_map(|(_, data)| data.ip_networks().iter().map(|n| n.addr))
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .map(|ip| ip.to_string())
        .collect();
    ips.sort();
    ips.dedup();
    vec![
        ("Device".into(), host),
        (
            "IP address".into(),
            if ips.is_empty() {
                "none (not connected)".into()
            } else {
                ips.join(", ")
            },
        ),
        ("pbikiosk".into(), crate::VERSION.into()),
        (
            "Time on device".into(),
            chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
        ),
    ]
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
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
        let addr = serve("127.0.0.1:0".parse().unwrap(), rx).await.unwrap();
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
        let m = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains("pbikiosk_rendered_total 0"), "{m}");
        assert!(m.contains("state=\"signing_in\""), "{m}");
    }

    #[tokio::test]
    async fn refuses_non_loopback() {
        let (_tx, rx) = watch::channel(Player::new(Settings::default()).snapshot());
        assert!(serve("0.0.0.0:0".parse().unwrap(), rx).await.is_err());
    }

    #[test]
    fn facts_name_the_device() {
        let f = device_facts();
        let labels: Vec<&str> = f.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["Device", "IP address", "pbikiosk", "Time on device"]
        );
        assert!(!f[0].1.is_empty());
    }
}
