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
