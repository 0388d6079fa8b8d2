//! `[network] proxy`: every request pbikiosk makes, and the web view's, go through the
//! configured proxy (counted at a test proxy on loopback), and `check` names a proxy that is
//! down, one that wants credentials, and one that inspects TLS.
//!
//! The hosts are Microsoft's real names (`login.microsoftonline.com`, `api.powerbi.com`,
//! `app.powerbi.com`), but nothing leaves the machine: the test proxy sends every tunnel on to
//! the simulator's front door, which answers for exactly these hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Player, Xvfb, lock};
use crate::test_proxy::TestProxy;
use pbikiosk::sim::front::{EmbedFront, FrontCert};
use pbikiosk::sim::scenario::EmbedFault;
use pbikiosk::sim::scenario::builtin_ids as ids;
use pbikiosk::sim::{Scenario, SimHandle, Simulator};

const LOGIN: &str = "login.microsoftonline.com";
const API: &str = "api.powerbi.com";
const EMBED: &str = "app.powerbi.com";
const CLUSTER: &str = "wabi-north-europe-redirect.analysis.windows.net";
const CDN: &str = "content.powerapps.com";
/// Distinctive, so a leak is found by a plain `contains`.
const PROXY_USER: &str = "kiosk-proxy-user";
const PROXY_PASSWORD: &str = "Pr0xy-Passw0rd-Never-Shown";

struct Net {
    sim: SimHandle,
    door: EmbedFront,
    dir: tempfile::TempDir,
}

impl Net {
    /// The simulator, and its front door for every host the screen reaches.
    async fn start(fault: EmbedFault) -> Self {
        let sim = Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let door = EmbedFront::start_for_hosts(
            sim.router(),
            &[EMBED, LOGIN, API, CLUSTER, CDN],
            FrontCert::RunCa,
            std::sync::Arc::new(move |_: &str| fault),
        )
        .await
        .unwrap();
        Self {
            sim,
            door,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// The simulator's config for the good account, at Microsoft's own addresses (the
    /// defaults), trusting the door's CA unless `trust` is false, with `network` appended.
    fn config(&self, name: &str, trust: bool, network: &str) -> PathBuf {
        let ca = self.write("door-ca.pem", self.door.ca_pem.as_deref().unwrap());
        let user = format!("kiosk@{}", ids::TENANT_DOMAIN);
        let mut text = String::new();
        for line in self.sim.config_snippet(&user).lines() {
            if line.starts_with("authority = ") || line.starts_with("api = ") {
                continue;
            }
            text.push_str(line);
            text.push('\n');
            if line == "[cloud]" && trust {
                text.push_str(&format!("ca_file = {:?}\n", ca.to_str().unwrap()));
            }
        }
        text.push_str(&format!("\n[network]\n{network}"));
        self.write(name, &text)
    }

    fn credentials(&self, text: &str) -> PathBuf {
        self.write("proxy-credentials", text)
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }

    fn problems(&self) -> Vec<String> {
        self.json()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn line(&self, name: &str) -> Value {
        self.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} line in {}", self.stdout))
    }

    /// Neither the proxy's password nor its Basic header is anywhere in the output.
    fn assert_no_leak(&self) {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
        for (what, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(!text.contains(PROXY_PASSWORD), "the password in {what}");
            assert!(!text.contains(&basic), "the Basic header in {what}");
        }
    }
}

/// `pbikiosk check --json` at trace level, with the environment's proxies pointing at a dead
/// port: `[network]` wins over them.
async fn check(cfg: &Path) -> Run {
    let cfg = cfg.to_path_buf();
    let dead = format!("http://127.0.0.1:{}", crate::common::free_port());
    tokio::task::spawn_blocking(move || {
        let Output {
            status,
            stdout,
            stderr,
        } = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
            .args(["check", "--json", "--budget-secs", "20", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "trace")
            .env_remove("PBIKIOSK_PASSWORD")
            .env_remove("PBIKIOSK_CLIENT_SECRET")
            .env("https_proxy", &dead)
            .env("HTTPS_PROXY", &dead)
            .env("http_proxy", &dead)
            .env("HTTP_PROXY", &dead)
            .env("no_proxy", "")
            .env("NO_PROXY", "")
            .output()
            .unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn proxy_lines(proxy: &TestProxy, credentials: Option<&Path>) -> String {
    let mut s = format!("proxy = \"http://{}\"\n", proxy.addr);
    if let Some(c) = credentials {
        s.push_str(&format!(
            "proxy_credentials_file = {:?}\n",
            c.to_str().unwrap()
        ));
    }
    s
}

/// Sign-in, the REST API and the probes of the web view's hosts all go through the configured
/// proxy, with its credentials; the environment's (dead) proxy is not used.
#[tokio::test(flavor = "multi_thread")]
async fn check_goes_through_the_configured_proxy_with_its_credentials() {
    let net = Net::start(EmbedFault::None).await;
    let basic = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    let proxy = TestProxy::start(Some(net.door.proxy), Some(&basic)).await;
    let creds = net.credentials(&format!("{basic}\n"));
    let cfg = net.config("good.toml", true, &proxy_lines(&proxy, Some(&creds)));
    let r = check(&cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["ok"], true, "{}", r.stdout);
    let line = r.line("proxy");
    assert_eq!(line["ok"], true, "{line}");
    let msg = line["message"].as_str().unwrap();
    assert!(msg.contains(&proxy.addr.to_string()), "{msg}");
    let host = r.line("embed host");
    assert!(
        host["message"]
            .as_str()
            .unwrap()
            .contains(&format!("through proxy {}", proxy.addr)),
        "{host}"
    );
    // Counted at the proxy: the sign-in host (the proxy line's tunnel and the sign-in), the
    // API, and the web view's hosts.
    for (host, least) in [(LOGIN, 2), (API, 1), (EMBED, 1), (CLUSTER, 1), (CDN, 1)] {
        assert!(
            proxy.count(host) >= least,
            "{host}: {:?}\n{}",
            proxy.hosts(),
            r.stdout
        );
    }
    assert_eq!(proxy.refused(), 0, "every request carried the credentials");
    let stats = net.sim.stats();
    assert!(
        stats.token_requests >= 1 && stats.api_requests >= 1,
        "{stats:?}"
    );
    r.assert_no_leak();
}

/// A proxy that wants credentials, given none: `proxy_auth_required`, before any sign-in is
/// tried; given wrong ones: the same, saying they were refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_407_is_proxy_auth_required() {
    let net = Net::start(EmbedFault::None).await;
    let proxy = TestProxy::start(
        Some(net.door.proxy),
        Some(&format!("{PROXY_USER}:{PROXY_PASSWORD}")),
    )
    .await;
    let none = net.config("none.toml", true, &proxy_lines(&proxy, None));
    let r = check(&none).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), ["proxy_auth_required"], "{}", r.stdout);
    let line = r.line("proxy");
    let msg = line["message"].as_str().unwrap();
    assert!(msg.contains("407 Proxy Authentication Required"), "{msg}");
    assert!(
        line["fix"]
            .as_str()
            .unwrap()
            .contains("proxy_credentials_file"),
        "{line}"
    );
    assert_eq!(net.sim.stats().token_requests, 0, "no sign-in was tried");

    let wrong = net.credentials(&format!("{PROXY_USER}:not-the-password\n"));
    let cfg = net.config("wrong.toml", true, &proxy_lines(&proxy, Some(&wrong)));
    let r = check(&cfg).await;
    assert_eq!(r.problems(), ["proxy_auth_required"], "{}", r.stdout);
    let line = r.line("proxy");
    let msg = line["message"].as_str().unwrap();
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(!r.stdout.contains("not-the-password") && !r.stderr.contains("not-the-password"));
    assert!(proxy.refused() >= 2, "{}", proxy.refused());
    assert_eq!(proxy.count(LOGIN), 0);
}

/// Nothing listens where the proxy should be: `proxy_unreachable`, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_proxy_is_proxy_unreachable() {
    let net = Net::start(EmbedFault::None).await;
    let port = crate::common::free_port();
    let cfg = net.config(
        "dead.toml",
        true,
        &format!("proxy = \"http://127.0.0.1:{port}\"\n"),
    );
    let r = check(&cfg).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), ["proxy_unreachable"], "{}", r.stdout);
    let line = r.line("proxy");
    let msg = line["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("the proxy 127.0.0.1:{port} cannot be reached")),
        "{msg}"
    );
    assert!(msg.contains("refused"), "{msg}");
    assert!(
        line["fix"].as_str().unwrap().contains("network.proxy"),
        "{line}"
    );
    assert_eq!(net.sim.stats().token_requests, 0);
}

/// The proxy puts its own certificate in place of Microsoft's and `cloud.ca_file` does not
/// name its CA: the TLS problem, saying the proxy inspects TLS and where its CA goes.
#[tokio::test(flavor = "multi_thread")]
async fn an_inspecting_proxy_without_ca_file_is_named() {
    let net = Net::start(EmbedFault::None).await;
    let proxy = TestProxy::start(Some(net.door.proxy), None).await;
    let cfg = net.config("inspect.toml", false, &proxy_lines(&proxy, None));
    let r = check(&cfg).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), ["tls"], "{}", r.stdout);
    let line = r.line("sign-in host");
    let msg = line["message"].as_str().unwrap();
    assert!(msg.contains("not trusted"), "{msg}");
    assert!(
        msg.contains(&format!("your proxy {} inspects TLS", proxy.addr)),
        "{msg}"
    );
    let fix = line["fix"].as_str().unwrap();
    assert!(fix.contains("[cloud] ca_file"), "{fix}");
}

/// The player behind a proxy that wants credentials: its sign-in, its API calls and the web
/// view's own requests for the report all reach the proxy (counted there), the web view
/// answers the proxy's 407 with the file's credentials, a report plays, and the password is in
/// no log and not in `/status`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn the_player_and_its_web_view_go_through_the_configured_proxy() {
    let _one = lock().await;
    let net = Net::start(EmbedFault::None).await;
    let basic = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    let proxy = TestProxy::start(Some(net.door.proxy), Some(&basic)).await;
    let creds = net.credentials(&format!("{basic}\n"));
    let cfg = net.config("player.toml", true, &proxy_lines(&proxy, Some(&creds)));
    let x = Xvfb::start();
    let dead = format!("http://127.0.0.1:{}", crate::common::free_port());
    let mut p = Player::run_config_env(
        &x,
        "proxy-player",
        &cfg,
        &[
            ("https_proxy", &dead),
            ("HTTPS_PROXY", &dead),
            ("no_proxy", ""),
            ("NO_PROXY", ""),
        ],
    );
    // Nothing here resolves app.powerbi.com and the environment's proxy is dead: a report on
    // screen came through the configured proxy, which lets no request through without the
    // credentials. So the web view answered the proxy's 407 with the file's.
    let s = p
        .wait_for("a report shown through the proxy", 90, |s| {
            s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(s["problem"], Value::Null, "{s}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let shot = x.screenshot("proxy-player.png");
    println!("screenshot: {}", shot.display());
    // Sign-in and API by pbikiosk's client, the report by the web view: all at the proxy.
    for host in [LOGIN, API, EMBED] {
        assert!(proxy.count(host) >= 1, "{host}: {:?}", proxy.hosts());
    }
    let status = p.status().await.unwrap().to_string();
    drop(p);
    let log = std::fs::read_to_string(crate::common::out_dir().join("proxy-player.log")).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&basic);
    for (what, text) in [("log", &log), ("/status", &status)] {
        assert!(
            !text.contains(PROXY_PASSWORD),
            "the proxy password in the {what}"
        );
        assert!(!text.contains(&b64), "the Basic header in the {what}");
    }
    println!(
        "proxy counts: {:?}, 407s: {}",
        proxy.hosts(),
        proxy.refused()
    );
}

/// The configured proxy is down when the player starts: the screen names it
/// (`proxy_unreachable`), and once it answers where it should, a report plays without a
/// restart.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn a_dead_proxy_is_named_on_the_screen_then_recovered() {
    let _one = lock().await;
    let net = Net::start(EmbedFault::None).await;
    let at: std::net::SocketAddr = format!("127.0.0.1:{}", crate::common::free_port())
        .parse()
        .unwrap();
    let cfg = net.config("down.toml", true, &format!("proxy = \"http://{at}\"\n"));
    let x = Xvfb::start();
    let mut p = Player::run_config(&x, "proxy-down", &cfg);
    let s = p
        .wait_for("proxy_unreachable", 60, |s| {
            s["problem"] == "proxy_unreachable"
        })
        .await;
    let message = s["problem_message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot be reached"), "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = x.screenshot("proxy-down.png");
    println!("screenshot: {}", shot.display());
    assert_eq!(net.sim.stats().token_requests, 0);

    let proxy = TestProxy::start_at(at, Some(net.door.proxy), None).await;
    let pid = p.child.id();
    let s = p
        .wait_for("a report once the proxy answers", 90, |s| {
            s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(s["problem"], Value::Null, "{s}");
    assert_eq!(p.child.id(), pid, "no restart");
    assert!(proxy.count(LOGIN) >= 1, "{:?}", proxy.hosts());
}
