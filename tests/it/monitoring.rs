//! Monitoring as a fleet runs it: the example alert rules (promtool), a LAN status endpoint
//! without a token refused at config load, and — under Xvfb — `pbikiosk screenshot`, the
//! textfile and `/metrics` of a playing screen.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::check_sim::has_jwt;
use crate::common::*;

/// Run promtool with `args`; `None` (and a message saying the check was skipped) when it is
/// not installed. scripts/test.sh installs it (Debian's `prometheus` package).
fn promtool(args: &[&str], stdin: Option<&str>) -> Option<(bool, String)> {
    use std::io::Write as _;
    let mut cmd = Command::new("promtool");
    cmd.args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        eprintln!(
            "SKIPPED promtool {}: promtool is not installed (apt-get install prometheus; scripts/test.sh does)",
            args.join(" ")
        );
        return None;
    };
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

/// `promtool check metrics` on an exposition: no error and no lint finding.
fn assert_lint_clean(what: &str, text: &str) {
    if let Some((ok, said)) = promtool(&["check", "metrics"], Some(text)) {
        assert!(ok && said.trim().is_empty(), "{what}: {said}\n{text}");
    }
}

#[test]
fn the_example_alert_rules_are_valid_and_fire_as_documented() {
    let Some((ok, said)) = promtool(&["check", "rules", "docs/prometheus-alerts.yml"], None) else {
        return;
    };
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    let (ok, said) = promtool(&["test", "rules", "docs/prometheus-alerts.test.yml"], None).unwrap();
    assert!(ok, "{said}");
}

#[test]
fn a_lan_status_endpoint_without_a_token_is_refused_at_config_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(
        &cfg,
        "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"0f0f0f0f-1234-5678-9abc-def012345678\"\nusername = \"svc@contoso.onmicrosoft.com\"\n\n[status]\nlisten = \"0.0.0.0:9520\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .env("PBIKIOSK_CLIENT_SECRET", "s")
        .env("PBIKIOSK_PASSWORD", "p")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("status.listen"), "{text}");
    assert!(text.contains("line 7"), "{text}");
    assert!(text.contains("status.token_file"), "{text}");
    assert!(text.contains("127.0.0.1:9520"), "{text}");
}

/// Pixels (of all) that differ by more than 10 % between two images of the same size.
fn differing_share(a: &Path, b: &Path) -> f64 {
    let out = Command::new("compare")
        .args(["-metric", "AE", "-fuzz", "10%"])
        .arg(a)
        .arg(b)
        .arg("null:")
        .output()
        .expect("ImageMagick's compare");
    // compare prints the count on stderr, and exits 1 when the images differ at all.
    let n: f64 = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("compare said {out:?}"));
    n / (1280.0 * 720.0)
}

fn size_of(png: &Path) -> String {
    let out = Command::new("identify")
        .args(["-format", "%m %wx%h"])
        .arg(png)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The demo plays; `pbikiosk screenshot` returns a PNG of the report that is on screen (the
/// same picture as the X server's), the textfile is rewritten while it plays, and neither it
/// nor `/metrics` nor the log holds a token.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn screenshot_textfile_and_metrics_of_a_playing_screen() {
    let _one = lock().await;
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("pbikiosk.prom");
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "monitoring",
        &[
            "--seconds",
            "60",
            "--status-textfile",
            textfile.to_str().unwrap(),
        ],
    );
    p.wait_for("the first report", 60, |s| {
        s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
    })
    .await;
    // The compositor can be a frame behind the page's `shown`.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let shot = out_dir().join("monitoring-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let t = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .args(["screenshot", "--listen", &p.status.to_string()])
        .arg(&shot)
        .output()
        .unwrap();
    println!("pbikiosk screenshot took {} ms", t.elapsed().as_millis());
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(1280x720)"),
        "{out:?}"
    );
    assert_eq!(size_of(&shot), "PNG 1280x720");
    let root = x.screenshot("monitoring-root.png");
    let differing = differing_share(&shot, &root);
    println!("screenshot vs the X server's picture: {differing:.4} of the pixels differ");
    assert!(differing < 0.02, "{differing}");
    // The simulated reports are light; the start and status screens dark.
    let light = crate::e2e::brightness(&shot, None);
    assert!(light > 0.5, "not a report: brightness {light}");

    // The textfile: written while playing (the first write, at start, said signing_in),
    // rewritten every 15 s, lint-clean.
    let playing = "pbikiosk_state{state=\"playing\"} 1";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&textfile).unwrap_or_default();
        if text.contains(playing) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the textfile never said playing: {text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_lint_clean("the textfile", &text);
    let writes = |s: &Value| s["textfile"]["writes_total"].as_u64().unwrap_or(0);
    let first = writes(&p.status().await.unwrap());
    let s = p
        .wait_for("the textfile rewritten", 20, |s| writes(s) > first)
        .await;
    assert_eq!(s["textfile"]["error"], Value::Null, "{s}");
    let again = std::fs::read_to_string(&textfile).unwrap();
    assert!(again.contains(playing), "{again}");
    assert_ne!(text, again, "the uptime at least moved on");
    assert_lint_clean("the textfile, rewritten", &again);

    let metrics = p
        .http
        .get(format!("http://{}/metrics", p.status))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_lint_clean("/metrics", &metrics);
    for want in [
        "pbikiosk_state{state=\"playing\"} 1",
        "pbikiosk_last_render_age_seconds ",
        "pbikiosk_token_expires_in_seconds ",
        "pbikiosk_build_info{version=",
    ] {
        assert!(metrics.contains(want), "{want}:\n{metrics}");
    }
    let status = p.status().await.unwrap().to_string();
    let log = std::fs::read_to_string(out_dir().join("monitoring.log")).unwrap();
    assert!(log.contains("screenshot taken"), "the route logged: {log}");
    for (what, text) in [
        ("/metrics", &metrics),
        ("the textfile", &again),
        ("/status", &status),
        ("the log", &log),
    ] {
        assert!(!has_jwt(text), "a token in {what}");
        assert!(!text.contains("H4sI"), "an embed token in {what}");
    }
}
