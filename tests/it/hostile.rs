//! Hostile input from the network, against the real binary: loopback servers only (an endless
//! "error page", absurd token lifetimes). The status port's slow-loris tests are unit tests in
//! `src/health.rs`, where the limits can be made short.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pbikiosk::sim::scenario::builtin_ids as ids;
use pbikiosk::sim::{Control, Scenario, SimHandle, Simulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What one `pbikiosk` run left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak resident set size, from `/usr/bin/time -f %M` (KiB).
    max_rss_kib: u64,
    took: Duration,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
    /// The JSON line of the named check.
    fn step(&self, name: &str) -> serde_json::Value {
        let j = self.json();
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} step: {j}"))
            .clone()
    }
    /// Ended by itself with check's own codes: no panic (101), no abort (signal).
    fn assert_no_crash(&self) {
        assert!(
            matches!(self.code, Some(0..=2)),
            "exit {:?}\n{}",
            self.code,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }
}

/// `pbikiosk check --json` under `/usr/bin/time`, off the runtime that serves the loopback
/// servers. HTTPS goes to a dead loopback proxy, so nothing can leave this machine.
async fn check(config: PathBuf) -> Run {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let rss = dir.path().join("rss");
        let dead_proxy = format!("http://127.0.0.1:{}", dead_port());
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&rss)
            .arg(env!("CARGO_BIN_EXE_pbikiosk"))
            .args(["check", "--json", "--config"])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .env_remove("PBIKIOSK_PASSWORD")
            .env_remove("PBIKIOSK_CLIENT_SECRET")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env("https_proxy", &dead_proxy)
            .env("HTTPS_PROXY", &dead_proxy)
            .env("no_proxy", "")
            .env("NO_PROXY", "")
            .output()
            .expect("/usr/bin/time runs pbikiosk");
        let took = t.elapsed();
        let rss = std::fs::read_to_string(&rss).unwrap();
        Run {
            // `time` exits with the command's code, or 128+signal when it was killed.
            code: out.status.code().filter(|c| *c < 128),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            max_rss_kib: rss
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or_else(|| panic!("no RSS figure in {rss:?}")),
            took,
        }
    })
    .await
    .unwrap()
}

/// A loopback port nobody listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn sim() -> SimHandle {
    Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The simulator's config for its kiosk account, with `authority` replaced if given.
fn config(sim: &SimHandle, dir: &Path, authority: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut text = sim.config_snippet(&format!("kiosk@{}", ids::TENANT_DOMAIN));
    if let Some(a) = authority {
        let old = format!("authority = {:?}\n", sim.base_url());
        assert!(text.contains(&old), "{text}");
        text = text.replace(&old, &format!("authority = {a:?}\n"));
    }
    let path = dir.join(format!("{}.toml", dead_port()));
    std::fs::write(&path, text).unwrap();
    // The file holds (test) secrets: pbikiosk refuses it if others can read it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

const HUGE: u64 = 400_000_000;

/// A server that answers every request with a 400 MB HTML error page, generated as it is sent
/// (this test never holds it), announced by `Content-Length` or chunked. Returns its base URL
/// and the most bytes it got to send on one connection.
async fn endless_error_page(chunked: bool) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let most = Arc::new(AtomicU64::new(0));
    let most2 = Arc::clone(&most);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let most = Arc::clone(&most2);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let head = if chunked {
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {HUGE}\r\n\r\n"
                    )
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let page = "<p>error</p>".repeat(64 * 1024 / 12);
                let piece = if chunked {
                    format!("{:x}\r\n{page}\r\n", page.len())
                } else {
                    page.clone()
                };
                let mut sent = 0u64;
                while sent < HUGE {
                    if sock.write_all(piece.as_bytes()).await.is_err() {
                        break;
                    }
                    sent += page.len() as u64;
                    most.fetch_max(sent, Ordering::Relaxed);
                }
                if chunked {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    (format!("http://{addr}/"), most)
}

/// A 400 MB error page from the authority: `check` reads at most the sign-in limit of it, stays
/// small and says what happened, whether the page announces its size or not.
#[tokio::test(flavor = "multi_thread")]
async fn a_400_mb_error_page_from_the_authority_leaves_check_small_and_clear() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for chunked in [false, true] {
        let (url, most) = endless_error_page(chunked).await;
        let cfg = config(&sim, dir.path(), Some(&url));
        runs.push((chunked, url, most, tokio::spawn(check(cfg))));
    }
    for (chunked, url, most, run) in runs {
        let r = run.await.unwrap();
        eprintln!(
            "400 MB page (chunked: {chunked}): check peak RSS {} KiB, {:?}, server sent at most {} bytes on one connection",
            r.max_rss_kib,
            r.took,
            most.load(Ordering::Relaxed)
        );
        r.assert_no_crash();
        assert!(
            r.max_rss_kib < 100 * 1024,
            "peak RSS {} KiB (chunked: {chunked})",
            r.max_rss_kib
        );
        // Reading stopped long before the end: what was sent is what the socket buffers took.
        assert!(
            most.load(Ordering::Relaxed) < HUGE / 8,
            "{} bytes sent",
            most.load(Ordering::Relaxed)
        );
        let j = r.json();
        assert_eq!(
            j["problems"],
            serde_json::json!(["service_unavailable"]),
            "{j}"
        );
        let step = r.step("sign-in");
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let message = step["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "the Microsoft sign-in service at {host} sent an answer larger than 1 MiB"
            )),
            "{message}"
        );
    }
}

/// `expires_in` of 0, 2^63 and "abc" from the token endpoint: `check` neither panics nor
/// retries; the absurd numbers are clamped, the text is named. The simulator counts the token
/// requests: one sign-in each.
#[tokio::test(flavor = "multi_thread")]
async fn absurd_expires_in_neither_crashes_nor_loops() {
    let dir = tempfile::tempdir().unwrap();
    for (value, says) in [
        (serde_json::json!(0), Ok("token valid 5 min")),
        (
            serde_json::json!(9223372036854775808u64),
            Ok("token valid 1440 min"),
        ),
        (
            serde_json::json!("abc"),
            Err("expires_in is \"abc\", which is not a number of seconds"),
        ),
    ] {
        let sim = sim().await;
        sim.control(Control::SetExpiresIn {
            value: Some(value.clone()),
        });
        let r = check(config(&sim, dir.path(), None)).await;
        eprintln!(
            "expires_in {value}: check peak RSS {} KiB, {:?}",
            r.max_rss_kib, r.took
        );
        r.assert_no_crash();
        let step = r.step("sign-in");
        let message = step["message"].as_str().unwrap_or_default();
        match says {
            Ok(text) => {
                assert_eq!(step["ok"], true, "{value}: {step}");
                assert!(message.contains(text), "{value}: {message}");
            }
            Err(text) => {
                assert_eq!(step["ok"], false, "{value}: {step}");
                assert_eq!(step["problem"], "unknown", "{value}: {step}");
                assert!(message.contains(text), "{value}: {message}");
            }
        }
        // One sign-in, not a retry loop (the token service's own loop is tested in
        // src/auth/service.rs).
        assert_eq!(sim.stats().token_requests, 1, "{value}");
    }
}
