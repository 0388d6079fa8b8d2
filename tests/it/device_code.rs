//! Device-code sign-in end to end: the real binary under Xvfb against the simulator
//! (`pbikiosk demo` with a device-code scenario file). The sign-in screen's QR code is read
//! back from a screenshot and must be the verification address.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Interval and lifetimes short enough for a test, long enough to see each step.
const INTERVAL: u64 = 2;
const CODE_LIFETIME: u64 = 16;

/// The sign-in screen shows a code and a QR code that decodes to the address; an expired code
/// is replaced on screen; approval plays without a restart; polls keep the interval; a revoked
/// grant brings the sign-in screen back by itself.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn sign_in_screen_qr_expiry_approval_and_revocation() {
    let _one = lock().await;
    let mut scenario = pbikiosk::sim::Scenario::named("device-code").unwrap();
    scenario.device_code.auto_approve_seconds = None;
    scenario.device_code.interval_seconds = INTERVAL;
    scenario.device_code.expires_in_seconds = CODE_LIFETIME;
    // Refreshed every ~12 s, so a revocation is noticed within seconds.
    scenario.token_lifetime_seconds = 20;
    let user = scenario.demo.as_ref().unwrap().username.clone();
    let file = out_dir().join("device-code-scenario.toml");
    std::fs::write(&file, toml::to_string(&scenario).unwrap()).unwrap();

    let x = Xvfb::start();
    let mut p = Player::demo(&x, "device-code", &["--scenario", file.to_str().unwrap()]);
    let s = p
        .wait_for("the sign-in screen", 60, |s| {
            s["state"] == "sign_in_required"
        })
        .await;
    assert_eq!(s["problem"], "sign_in_required", "{s}");
    let first = s["sign_in"]["user_code"].as_str().unwrap().to_owned();
    let uri = s["sign_in"]["verification_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(uri, "https://microsoft.com/devicelogin");
    assert!(
        s["sign_in"]["expires_at"].as_str().unwrap().ends_with('Z'),
        "{s}"
    );

    // Give the page a moment to paint, then read the QR code back from the screen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = x.screenshot("sign-in-device-code.png");
    assert_eq!(decode_qr(&shot), uri);

    // The code expires: a new one is shown by itself.
    let s = p
        .wait_for("a new code after expiry", CODE_LIFETIME + 20, |s| {
            s["sign_in"]["user_code"]
                .as_str()
                .is_some_and(|c| c != first)
        })
        .await;
    assert_eq!(s["state"], "sign_in_required");
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("sign-in-device-code-renewed.png");
    let stats = p.sim_stats().await;
    assert_eq!(stats["devicecode_requests"], 2, "{stats}");

    // A person signs in on their phone: the screen plays without a restart.
    p.control(json!({"action": "approve_device_code", "username": user}))
        .await;
    let s = p
        .wait_for("playing after approval", 60, |s| s["state"] == "playing")
        .await;
    assert_eq!(s["sign_in"], Value::Null, "{s}");
    let stats = p.sim_stats().await;
    let gaps: Vec<u64> = stats["device_poll_gaps_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    assert!(gaps.len() >= 4, "{stats}");
    assert!(
        gaps.iter().all(|g| *g >= INTERVAL * 1000),
        "a poll came sooner than the interval: {gaps:?}"
    );
    assert_eq!(stats["devicecode_requests"], 2, "{stats}");

    // The admin revokes the user's sessions: the next refresh is refused and the sign-in
    // screen comes back by itself, with a new code.
    p.control(json!({"action": "revoke_refresh_tokens"})).await;
    let s = p
        .wait_for("the sign-in screen after revocation", 60, |s| {
            s["state"] == "sign_in_required"
        })
        .await;
    assert_eq!(s["problem"], "sign_in_required", "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = x.screenshot("sign-in-device-code-revoked.png");
    assert_eq!(decode_qr(&shot), uri);
    let stats = p.sim_stats().await;
    assert_eq!(stats["devicecode_requests"], 3, "{stats}");
    let log = std::fs::read_to_string(out_dir().join("device-code.log")).unwrap();
    // The simulator's refresh tokens start "0.A" and device codes "DAQABAAEAAA", each followed
    // by base64url.
    for prefix in ["0.A", "DAQABAAEAAA"] {
        let leaked = log.match_indices(prefix).any(|(i, _)| {
            let rest = &log[i + prefix.len()..];
            rest.len() >= 40
                && rest[..40]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        assert!(!leaked, "a {prefix}… token reached the log");
    }
}

/// The text of the one QR code in a screenshot (ImageMagick makes it grey bytes, rqrr reads it).
pub(crate) fn decode_qr(png: &std::path::Path) -> String {
    let size = Command::new("identify")
        .args(["-format", "%w %h"])
        .arg(png)
        .output()
        .unwrap();
    let size = String::from_utf8(size.stdout).unwrap();
    let (w, h) = size.trim().split_once(' ').unwrap();
    let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
    let gray = Command::new("convert")
        .arg(png)
        .args(["-colorspace", "Gray", "-depth", "8", "gray:-"])
        .output()
        .unwrap();
    assert_eq!(gray.stdout.len(), w * h, "grey bytes of {}", png.display());
    let pixels = gray.stdout;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "QR codes in {}", png.display());
    let (_, text) = grids[0].decode().expect("the QR code decodes");
    text
}

/// `pbikiosk demo --scenario device-code`: the sign-in screen, then the demo account approves
/// by itself and the reports play, with one code.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn demo_scenario_signs_in_by_itself() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(&x, "device-code-demo", &["--scenario", "device-code"]);
    p.wait_for("the sign-in screen", 60, |s| {
        s["state"] == "sign_in_required"
    })
    .await;
    let s = p
        .wait_for("playing after the demo's own approval", 60, |s| {
            s["state"] == "playing"
        })
        .await;
    assert_eq!(s["problem"], Value::Null, "{s}");
    let stats = p.sim_stats().await;
    assert_eq!(stats["devicecode_requests"], 1, "{stats}");
}

/// A declined sign-in is a problem with its fix on the screen, not a silent new code.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn a_declined_sign_in_says_so() {
    let _one = lock().await;
    let mut scenario = pbikiosk::sim::Scenario::named("device-code").unwrap();
    scenario.device_code.auto_approve_seconds = None;
    scenario.device_code.interval_seconds = INTERVAL;
    let file = out_dir().join("device-code-decline-scenario.toml");
    std::fs::write(&file, toml::to_string(&scenario).unwrap()).unwrap();
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "device-code-declined",
        &["--scenario", file.to_str().unwrap()],
    );
    p.wait_for("the sign-in screen", 60, |s| {
        s["state"] == "sign_in_required"
    })
    .await;
    p.control(json!({"action": "decline_device_code"})).await;
    let s = p
        .wait_for("the declined screen", 30, |s| {
            s["problem"] == "sign_in_declined"
        })
        .await;
    assert_eq!(s["state"], "problem", "{s}");
    assert_eq!(s["sign_in"], Value::Null, "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("sign-in-declined.png");
    let stats = p.sim_stats().await;
    assert_eq!(
        stats["devicecode_requests"], 1,
        "no new code at once: {stats}"
    );
}

/// `pbikiosk run` signed in with a code, killed, and started again: the second start signs in
/// from the token cache, with no new code and no sign-in screen. The simulator (in this test's
/// process) outlives both players, as Microsoft outlives a restart of the screen.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn a_restart_plays_from_the_token_cache_without_a_new_code() {
    use pbikiosk::sim::front::{EmbedFront, FrontCert};
    use std::os::unix::fs::PermissionsExt as _;
    let _one = lock().await;
    let mut scenario = pbikiosk::sim::Scenario::named("device-code").unwrap();
    scenario.device_code.auto_approve_seconds = None;
    scenario.device_code.interval_seconds = INTERVAL;
    let user = scenario.demo.as_ref().unwrap().username.clone();
    let sim = pbikiosk::sim::Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // The embed host behind the simulator's front door, reached through https_proxy and
    // trusted through cloud.ca_file: nothing leaves the machine.
    let door = EmbedFront::start(sim.router(), "app.powerbi.com", FrontCert::RunCa)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("door-ca.pem");
    std::fs::write(&ca, door.ca_pem.as_deref().unwrap()).unwrap();
    let cache = dir.path().join("token-cache.json");
    let text: String = sim
        .config_snippet(&user)
        .lines()
        .map(|l| match l {
            "method = \"device_code\"" => {
                format!("{l}\ntoken_cache = {:?}\n", cache.to_str().unwrap())
            }
            "[cloud]" => format!("[cloud]\nca_file = {:?}\n", ca.to_str().unwrap()),
            l => format!("{l}\n"),
        })
        .collect();
    assert!(text.contains("token_cache"), "{text}");
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(&cfg, text).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let proxy = format!("http://{}", door.proxy);
    let env = [
        ("https_proxy", proxy.as_str()),
        ("no_proxy", ""),
        ("NO_PROXY", ""),
    ];
    let playing = |s: &Value| s["state"] == "playing" && !s["item"].is_null();
    let x = Xvfb::start();

    // First start: nobody has signed in yet.
    {
        let mut p = Player::run_config_env(&x, "device-code-restart-1", &cfg, &env);
        p.wait_for("the sign-in screen", 60, |s| {
            s["state"] == "sign_in_required"
        })
        .await;
        // A person signs in on their phone.
        let r = reqwest::Client::new()
            .post(format!("{}/_sim/control", sim.base_url()))
            .json(&json!({"action": "approve_device_code", "username": user}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        p.wait_for("playing after approval", 60, playing).await;
        assert!(cache.exists(), "no token cache after the sign-in");
        // Killed, as by a power cut: nothing is written on the way out.
    }
    assert_eq!(sim.stats().devicecode_requests, 1);

    // Second start: signed in from the cache, never a code.
    let mut p = Player::run_config_env(&x, "device-code-restart-2", &cfg, &env);
    let s = p
        .wait_for("playing from the cache", 60, |s| {
            assert_ne!(s["state"], "sign_in_required", "a new code: {s}");
            assert_eq!(s["sign_in"], Value::Null, "{s}");
            playing(s)
        })
        .await;
    assert_eq!(s["problem"], Value::Null, "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shot = x.screenshot("device-code-restart.png");
    assert!(shot.exists());
    let stats = sim.stats();
    assert_eq!(stats.devicecode_requests, 1, "a new code was asked for");
    assert!(
        stats
            .token_by_grant
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
            >= 1,
        "not signed in from the cache: {stats:?}"
    );
    let log = std::fs::read_to_string(out_dir().join("device-code-restart-2.log")).unwrap();
    assert!(!log.contains("DAQABAAEAAA"), "a device code in the log");
}

/// `sudo pbikiosk login`: run as root, the real binary writes the token cache for the owner of
/// the cache's folder (the service user), mode 0600, and that user can read it. Run as anyone
/// else, the cache is the runner's own.
#[tokio::test(flavor = "multi_thread")]
async fn login_as_root_leaves_a_cache_the_service_user_can_read() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mut scenario = pbikiosk::sim::Scenario::named("device-code").unwrap();
    scenario.device_code.auto_approve_seconds = None;
    scenario.device_code.interval_seconds = 1;
    let user = scenario.demo.as_ref().unwrap().username.clone();
    let sim = pbikiosk::sim::Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Others may pass through the test's folder (as through /var/lib), not list it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let root = me.trim() == "0";
    // As the package does for /var/lib/pbikiosk: the folder belongs to the service user
    // (here `nobody`).
    let service_uid = if root {
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        65534
    } else {
        std::fs::metadata(&state).unwrap().uid()
    };
    let cache = state.join("token-cache.json");
    let text: String = sim
        .config_snippet(&user)
        .lines()
        .map(|l| match l {
            "method = \"device_code\"" => {
                format!("{l}\ntoken_cache = {:?}\n", cache.to_str().unwrap())
            }
            l => format!("{l}\n"),
        })
        .collect();
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(&cfg, text).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out_file = dir.path().join("login.out");
    let mut login = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .args(["--config", cfg.to_str().unwrap(), "login"])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the code is out, a person signs in with it.
    let t = std::time::Instant::now();
    while sim.stats().devicecode_requests == 0 {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = login.kill();
            panic!("login asked for no code");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/control", sim.base_url()))
        .json(&json!({"action": "approve_device_code", "username": user}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = login.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = login.kill();
            panic!("login did not finish after the approval");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = std::fs::read_to_string(&out_file).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("Signed in."), "{out}");
    let m = std::fs::metadata(&cache).unwrap();
    assert_eq!(m.uid(), service_uid, "owner of the cache");
    assert_eq!(m.mode() & 0o777, 0o600);
    if root {
        // The service user reads it (what `pbikiosk run` as that user does first).
        let read = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&cache)
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
        assert!(String::from_utf8_lossy(&read.stdout).contains("refresh_token"));
    }
}
