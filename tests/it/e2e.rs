//! End to end: the real binary in WebKitGTK under Xvfb, the real powerbi-client, against the
//! simulator (`pbikiosk demo`). Asserts on what the player reports on `/status`, on what the
//! embed itself reported (`page_reported`), on the simulator's counters, and saves screenshots
//! under `target/e2e/` for a person to look at.
//!
//! Needs Xvfb and ImageMagick's `import` (scripts/test.sh installs them) and the built page
//! (`scripts/build-web.sh`). The scenarios run one at a time: two WebKit instances at once on a
//! 2-core machine would make the timings meaningless.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Rotation in order with the right pages, 60-second tokens refreshed without reloads, a short
/// sign-in outage ridden out with the report on screen, and a killed web process repaired.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn demo_rotates_refreshes_and_repairs() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "rotation",
        &["--seconds", "5", "--token-lifetime", "60"],
    );

    let first = p
        .wait_for("the first report", 60, |s| s["state"] == "playing")
        .await;
    println!(
        "start -> first report on screen: {} ms",
        p.started.elapsed().as_millis()
    );
    assert_eq!(first["problem"], Value::Null);

    // One full round (4 + 3 + 3 pages of 5 s) and the start of the next, as reported by the
    // embed itself.
    let mut seen: Vec<(String, String)> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(62) {
        if let Some(s) = p.status().await
            && let Some(now) = showing(&s)
            && seen.last() != Some(&now)
        {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected: Vec<(String, String)> = [
        ("Sales Overview", "Summary"),
        ("Sales Overview", "By Region"),
        ("Sales Overview", "By Product"),
        ("Sales Overview", "Trends"),
        ("Operations", "Overview"),
        ("Operations", "Warehouse"),
        ("Operations", "Logistics"),
        ("Customer Service", "Tickets"),
        ("Customer Service", "Satisfaction"),
        ("Customer Service", "Agents"),
        ("Sales Overview", "Summary"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let start = seen
        .windows(expected.len())
        .position(|w| w == expected.as_slice());
    assert!(
        start.is_some(),
        "the round in order was not seen; saw {seen:#?}"
    );
    x.screenshot("report.png");

    // Tokens live 60 s and are refreshed at ~36 s: by now (~65 s) and over the next minute at
    // least three refreshes reach the page, and the page is never reloaded for them.
    let s = p
        .wait_for("three token refreshes", 120, |s| {
            s["token_refreshes_total"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    let stats = p.sim_stats().await;
    assert!(
        stats["token_by_grant"]["refresh_token"].as_u64() >= Some(3),
        "{stats}"
    );
    assert_eq!(stats["token_by_grant"]["password"], 1, "{stats}");
    assert!(
        s["last_switch_gap_ms"].as_f64().is_some_and(|g| g < 100.0),
        "switch gap {s}"
    );

    // A sign-in outage longer than the token's remaining life: the report stays, with the
    // offline badge once the token has run out, and everything resumes afterwards.
    let before = num(&s, "rendered_total");
    p.control(json!({"action": "set_token_outage", "on": true}))
        .await;
    let s = p
        .wait_for("the offline badge", 90, |s| s["offline"] == true)
        .await;
    assert_eq!(s["state"], "playing", "{s}");
    x.screenshot("offline-badge.png");
    // Still rotating while offline (the content already embedded stays usable).
    let moving = p
        .wait_for("rotation during the outage", 20, |s| {
            s["switches_total"].as_u64() > Some(num(&first, "switches_total") + 10)
        })
        .await;
    assert_eq!(moving["state"], "playing");
    p.control(json!({"action": "set_token_outage", "on": false}))
        .await;
    let s = p
        .wait_for("recovery after the outage", 120, |s| {
            s["offline"] == false && s["state"] == "playing"
        })
        .await;
    assert!(num(&s, "rendered_total") > before, "{s}");

    // kill -9 the web process: the player notices, reloads the page and plays again.
    let pids = p.web_processes();
    assert!(
        !pids.is_empty(),
        "no WebKitWebProcess found under the player"
    );
    let reloads = num(&s, "page_reloads_total");
    for pid in &pids {
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    let crashed_at = Instant::now();
    let s = p
        .wait_for("a page reload after the crash", 40, |s| {
            s["page_reloads_total"].as_u64() > Some(reloads)
        })
        .await;
    // On screen again = the page confirmed it swapped a report in after the reload
    // (`rendered` alone can be the embed still prepared off-screen).
    let shown = num(&s, "shown_total");
    p.wait_for("a report on screen again after the crash", 60, |s| {
        s["state"] == "playing" && s["shown_total"].as_u64() > Some(shown)
    })
    .await;
    println!(
        "web process killed -> playing again: {} ms",
        crashed_at.elapsed().as_millis()
    );
    x.screenshot("after-crash.png");
    assert!(p.child.try_wait().unwrap().is_none(), "the player died");
}

/// A wrong password shows its status screen (not a loop of attempts) and the player recovers
/// by itself once the account is fixed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn wrong_password_shows_status_then_recovers() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(&x, "wrong-password", &["--scenario", "wrong-password"]);
    let s = p
        .wait_for("the wrong-password status screen", 60, |s| {
            s["problem"] == "invalid_credentials"
        })
        .await;
    assert_eq!(s["state"], "problem", "{s}");
    // Give the page a moment to paint the screen it was sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("status-wrong-password.png");
    let stats = p.sim_stats().await;
    assert_eq!(stats["token_requests"], 1, "retried in a loop: {stats}");

    // The admin sets the account's password to what the device has.
    let scenario = pbikiosk::sim::Scenario::named("wrong-password").unwrap();
    let demo = scenario.demo.as_ref().unwrap();
    let device_password = demo
        .password
        .clone()
        .expect("the scenario's wrong password");
    p.control(json!({
        "action": "set_password",
        "username": demo.username,
        "password": device_password,
    }))
    .await;
    // The demo retries a refused sign-in once a minute.
    let s = p
        .wait_for("recovery after the password fix", 100, |s| {
            s["state"] == "playing"
        })
        .await;
    assert_eq!(s["problem"], Value::Null);
    let stats = p.sim_stats().await;
    assert_eq!(stats["token_by_grant"]["password"], 2, "{stats}");
}

/// A device installed without a config shows "not configured", and picks the config up by
/// itself when it is written (no restart).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn not_configured_until_the_config_appears() {
    use std::os::unix::fs::PermissionsExt;
    let _one = lock().await;
    let sim = pbikiosk::sim::Simulator::start(
        pbikiosk::sim::Scenario::builtin(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pbikiosk.toml");
    let x = Xvfb::start();
    let mut p = Player::run_config(&x, "not-configured", &cfg);
    p.wait_for("the not-configured screen", 60, |s| {
        s["state"] == "not_configured"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("not-configured.png");

    let user = format!(
        "kiosk@{}",
        pbikiosk::sim::scenario::builtin_ids::TENANT_DOMAIN
    );
    std::fs::write(&cfg, sim.config_snippet(&user)).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Signed in and resolved the playlist against the simulator. (The embeds themselves point
    // at the real app.powerbi.com, which this machine cannot reach.)
    let s = p
        .wait_for("the config to be picked up", 30, |s| {
            s["state"] != "not_configured" && s["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
    assert_eq!(s["items"][0]["name"], "Sales Overview", "{s}");
    assert!(sim.stats().token_by_grant.get("password") == Some(&1));
}

/// The mean brightness (0 dark … 1 light) of a screenshot, or of the part `crop` names
/// (ImageMagick geometry, e.g. "1080x640+0+1280"). The page's start screen is dark, the
/// simulated reports are light.
pub(crate) fn brightness(path: &std::path::Path, crop: Option<&str>) -> f64 {
    gray_stat(path, crop, "mean")
}

/// How much the brightness varies (0: one plain colour, nothing drawn).
pub(crate) fn detail(path: &std::path::Path, crop: Option<&str>) -> f64 {
    gray_stat(path, crop, "standard_deviation")
}

fn gray_stat(path: &std::path::Path, crop: Option<&str>, stat: &str) -> f64 {
    let mut cmd = Command::new("convert");
    cmd.arg(path);
    if let Some(c) = crop {
        cmd.args(["-crop", c, "+repage"]);
    }
    let out = cmd
        .args([
            "-colorspace",
            "Gray",
            "-format",
            &format!("%[fx:{stat}]"),
            "info:",
        ])
        .output()
        .expect("ImageMagick's convert is needed (scripts/test.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The steps `pbikiosk` told the start screen, in order, from its debug log.
fn start_steps(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("Starting { activity: \"").nth(1)?;
            Some(rest.split('"').next()?.to_owned())
        })
        .collect()
}

/// On a slow network the screen says what it is doing from the first seconds (who signs in,
/// then which report loads) over the device's facts, and the first report replaces it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn start_screen_says_what_it_does_until_the_first_report() {
    let _one = lock().await;
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.toml");
    // The demo's scenario, where every answer of the simulated Microsoft services takes 1.5 s.
    let mut scenario = pbikiosk::sim::Scenario::builtin();
    scenario.faults.latency_ms = 1500;
    std::fs::write(&slow, toml::to_string(&scenario).unwrap()).unwrap();
    let x = Xvfb::start();
    let mut p = Player::demo(&x, "start-screen", &["--scenario", slow.to_str().unwrap()]);
    let s = p
        .wait_for("the status endpoint", 10, |s| s["state"].is_string())
        .await;
    let until = p.started + Duration::from_secs(2);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    let shot = x.screenshot("start-screen-2s.png");
    let s2 = p.status().await.unwrap();
    println!("status at ~2 s: {s2}");
    assert!(
        s2["state"] == "signing_in" || s2["state"] == "starting",
        "{s2} (first: {s})"
    );
    assert_eq!(s2["rendered_total"], 0, "{s2}");
    let dark = brightness(&shot, None);
    assert!(dark < 0.2, "the start screen is dark, not a report: {dark}");

    let s = p
        .wait_for("the first report", 90, |s| s["state"] == "playing")
        .await;
    assert_eq!(s["problem"], Value::Null);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shot = x.screenshot("start-screen-then-report.png");
    let light = brightness(&shot, None);
    assert!(light > 0.6, "the report replaced the start screen: {light}");

    let log = std::fs::read_to_string(out_dir().join("start-screen.log")).unwrap();
    let steps = start_steps(&log);
    let account = pbikiosk::sim::Scenario::builtin().demo.unwrap().username;
    assert_eq!(
        steps,
        [
            format!("Signing in as {account}…"),
            "Finding your reports".to_owned(),
            "Loading ‘Sales Overview’".to_owned(),
        ],
        "{log}"
    );
}

/// A portrait screen (1080x1920): a report with a mobile layout is shown in it, one without
/// fitted to the width (it is tried in its mobile layout off-screen first, then embedded again;
/// the browser test web/test/layout.test.mjs checks the settings sent).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn portrait_screen_shows_mobile_layouts_else_fits_the_width() {
    let _one = lock().await;
    let x = Xvfb::start_sized(1080, 1920);
    let mut p = Player::demo_window(&x, "portrait", &["--seconds", "4"], &[], "1080x1920");
    p.wait_for("Sales Overview", 60, |s| {
        s["state"] == "playing" && s["item"]["name"] == "Sales Overview"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mobile = x.screenshot("portrait-mobile-layout.png");

    p.wait_for("Operations", 60, |s| s["item"]["name"] == "Operations")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fit = x.screenshot("portrait-fit-width.png");
    // The mobile layout fills the screen to the bottom; the page fitted to the width leaves
    // the lower third empty (the page's plain background).
    let lower = "1080x640+0+1200";
    let (m, f) = (detail(&mobile, Some(lower)), detail(&fit, Some(lower)));
    println!("detail in the lower third: mobile {m:.3}, fit to width {f:.3}");
    assert!(m > 0.05, "the mobile layout reaches the bottom: {m}");
    assert!(f < 0.01, "fitted to the width, the bottom stays empty: {f}");
}

/// The log of a player started as `name`, without colours.
fn log_of(name: &str) -> String {
    let raw = std::fs::read_to_string(out_dir().join(format!("{name}.log"))).unwrap();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour sequence: ESC [ ... m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Behind a TLS-inspecting proxy whose CA is `cloud.ca_file` (the front door's leaf is signed
/// by a CA made for the run, and the web view is given nothing else), the web view trusts it
/// too and the report plays — well before the player's embed deadline would have retried.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn ca_file_covers_the_screen() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "ca-file",
        &["--front-trust", "ca-file", "--seconds", "3"],
    );
    let s = p
        .wait_for("the first report through the run CA", 40, |s| {
            s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
        })
        .await;
    println!(
        "start -> first report behind the inspecting proxy: {} ms",
        p.started.elapsed().as_millis()
    );
    assert_eq!(s["problem"], Value::Null, "{s}");
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    x.screenshot("ca-file-report.png");
    let s = p
        .wait_for("the next report", 30, |s| {
            s["shown_total"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(s["state"], "playing", "{s}");
    let log = log_of("ca-file");
    assert!(
        log.contains("certificate of app.powerbi.com trusted for app.powerbi.com only"),
        "{log}"
    );
    assert!(
        log.contains("CN=pbikiosk simulator inspection CA (this run only)"),
        "{log}"
    );
}

/// The same proxy without `cloud.ca_file`: nothing is trusted, the report does not play, and
/// the log says which certificate of which host the web view refused.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn without_ca_file_an_inspecting_proxy_is_not_trusted() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(&x, "ca-file-missing", &["--front-trust", "untrusted"]);
    p.wait_for("the playlist resolved", 30, |s| {
        s["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    // Refusals are logged as they happen; give the first embed time to fail.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log_of("ca-file-missing").contains("refused the certificate of app.powerbi.com")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Long enough for a trusted embed to have rendered several times over (about 2 s above).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = p.status().await.expect("status");
    assert_eq!(num(&s, "shown_total"), 0, "{s}");
    assert_ne!(s["state"], "playing", "{s}");
    x.screenshot("ca-file-missing.png");
    let log = log_of("ca-file-missing");
    assert!(
        log.contains("the web view refused the certificate of app.powerbi.com, and it stays refused: there is no cloud.ca_file to check it against"),
        "{log}"
    );
    assert!(log.contains("UNKNOWN_CA"), "{log}");
    assert!(!log.contains("trusted for app.powerbi.com only"), "{log}");
    // Not one request got through the refused TLS to the simulated embed.
    let stats = p.sim_stats().await;
    assert_eq!(stats["embed_requests"], 0, "{stats}");
}

/// The mean colour (red, green, blue, each 0 … 1) of the part `crop` names of a screenshot.
fn mean_rgb(path: &std::path::Path, crop: &str) -> [f64; 3] {
    let out = Command::new("convert")
        .arg(path)
        .args(["-crop", crop, "+repage", "-format"])
        .arg("%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]")
        .arg("info:")
        .output()
        .expect("ImageMagick's convert is needed (scripts/test.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2]]
}

/// What the screen shows along its top edge: the accent bar of an applied bookmark (the
/// simulated report draws one per bookmark), or the report's plain light background.
fn top_edge(path: &std::path::Path) -> [f64; 3] {
    mean_rgb(path, "1280x6+0+1")
}

/// One report with two bookmarks (the `bookmarks` demo): the player rotates through both,
/// each embed opening on its bookmark's page with its accent, round after round. Then the
/// report's author deletes one: that slide shows the report as if no bookmark was named — its
/// first page, no accent, no status screen — and the rotation carries on.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn bookmarks_rotate_and_a_deleted_one_shows_the_plain_report() {
    use pbikiosk::sim::scenario::builtin_ids::{BOOKMARK_NORTH, BOOKMARK_ONLINE};
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "bookmarks",
        &["--scenario", "bookmarks", "--seconds", "6"],
    );
    p.wait_for("the first bookmark", 60, |s| s["state"] == "playing")
        .await;

    // The page each bookmark opens, as the embed reports it, and the accent it is drawn with.
    let north = |c: [f64; 3]| c[0] > 0.6 && c[1] < 0.35 && c[2] < 0.35; // red
    let online = |c: [f64; 3]| c[2] > 0.6 && c[0] < 0.2 && c[1] < 0.6; // blue
    let plain = |c: [f64; 3]| c.iter().all(|v| *v > 0.85); // the report's light grey

    // Every slide change, for two rounds: a screenshot while it is on screen.
    let mut seen: Vec<(String, [f64; 3])> = Vec::new();
    let t = Instant::now();
    while seen.len() < 5 && t.elapsed() < Duration::from_secs(60) {
        let s = p.status().await;
        let now = s.as_ref().and_then(showing);
        if let Some((name, page)) = now
            && seen.last().map(|l| &l.0) != Some(&page)
        {
            assert_eq!(name, "Sales Overview");
            // Past the swap, well before the next one (6 s slides).
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let shot = x.screenshot(&format!("bookmarks-{}.png", seen.len() + 1));
            let still = p.status().await.as_ref().and_then(showing);
            assert_eq!(
                still.map(|s| s.1).as_ref(),
                Some(&page),
                "changed meanwhile"
            );
            seen.push((page, top_edge(&shot)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("bookmark slides: {seen:?}");
    assert!(seen.len() >= 5, "{seen:?}");
    // The first slide can be caught on its way in; from the second on, strictly alternating.
    for (page, colour) in &seen[1..] {
        match page.as_str() {
            "By Region" => assert!(north(*colour), "North region not red: {seen:?}"),
            "By Product" => assert!(online(*colour), "Online sales not blue: {seen:?}"),
            other => panic!("a bookmark slide showed page {other}: {seen:?}"),
        }
    }
    for pair in seen[1..].windows(2) {
        assert_ne!(pair[0].0, pair[1].0, "no alternation: {seen:?}");
    }
    let stats = p.sim_stats().await;
    for b in [BOOKMARK_NORTH, BOOKMARK_ONLINE] {
        assert!(
            stats["bookmarks_applied"][b].as_u64().unwrap_or(0) >= 2,
            "{b} applied fewer than twice: {stats}"
        );
    }
    assert_eq!(stats["bookmarks_unknown"], json!({}), "{stats}");

    // The author deletes "Online sales". An embed prepared before still has it; the next one
    // opens the report plain.
    p.control(json!({"action": "delete_bookmark", "name": BOOKMARK_ONLINE}))
        .await;
    let s = p
        .wait_for("the plain report in the deleted bookmark's slot", 40, |s| {
            assert_eq!(s["problem"], Value::Null, "{s}");
            showing(s).is_some_and(|(_, page)| page == "Summary")
        })
        .await;
    assert_eq!(s["state"], "playing", "{s}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shot = x.screenshot("bookmarks-deleted.png");
    let edge = top_edge(&shot);
    assert!(plain(edge), "an accent without a bookmark: {edge:?}");
    let stats = p.sim_stats().await;
    assert!(
        stats["bookmarks_unknown"][BOOKMARK_ONLINE]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{stats}"
    );
    // And on to the bookmark that still exists, without a status screen in between.
    let s = p
        .wait_for("North region again", 20, |s| {
            assert_eq!(s["problem"], Value::Null, "{s}");
            showing(s).is_some_and(|(_, page)| page == "By Region")
        })
        .await;
    assert_eq!(s["state"], "playing", "{s}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shot = x.screenshot("bookmarks-after-delete.png");
    assert!(north(top_edge(&shot)), "{:?}", top_edge(&shot));
}

/// `demo --scenario certificate` signs the app in with a client assertion and plays; an
/// expired certificate shows its status screen without anything being sent to Microsoft.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn certificate_demo_plays_and_an_expired_one_is_named() {
    let _one = lock().await;
    let x = Xvfb::start();
    {
        let mut p = Player::demo(&x, "certificate", &["--scenario", "certificate"]);
        let s = p
            .wait_for("the certificate demo playing", 90, |s| {
                s["state"] == "playing"
            })
            .await;
        assert_eq!(s["problem"], Value::Null, "{s}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let shot = x.screenshot("certificate-playing.png");
        assert!(detail(&shot, None) > 0.01, "a report is drawn");
        let stats = p.sim_stats().await;
        assert_eq!(stats["token_by_grant"]["password"], 1, "{stats}");
    }
    let mut p = Player::demo(
        &x,
        "certificate-expired",
        &["--scenario", "certificate-expired"],
    );
    let s = p
        .wait_for("the expired-certificate status screen", 60, |s| {
            s["problem"] == "client_certificate_expired"
        })
        .await;
    assert_eq!(s["state"], "problem", "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("status-certificate-expired.png");
    let stats = p.sim_stats().await;
    assert_eq!(stats["token_requests"], 0, "sent anyway: {stats}");
    drop(p);

    // A certificate Microsoft does not know: asked once, then the status screen waits for a
    // person (no loop of refused assertions).
    let mut p = Player::demo(
        &x,
        "certificate-unregistered",
        &["--scenario", "certificate-unregistered"],
    );
    let s = p
        .wait_for("the unregistered-certificate status screen", 60, |s| {
            s["problem"] == "client_certificate_not_registered"
        })
        .await;
    assert_eq!(s["state"], "problem", "{s}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    x.screenshot("status-certificate-unregistered.png");
    let stats = p.sim_stats().await;
    assert_eq!(stats["token_requests"], 1, "retried in a loop: {stats}");
}

/// A service principal's dashboard plays next to a report: it embeds with an embed token of
/// its own (the fake embed page opens a dashboard only with a token made for it), and each
/// renewal reaches it by key while both embeds are live, without reloading the page.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn service_principal_plays_a_dashboard_with_its_own_embed_token() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "sp-dashboard",
        &[
            "--scenario",
            "sp-dashboard",
            "--seconds",
            "5",
            "--token-lifetime",
            "60",
        ],
    );
    let dashboard = |s: &Value| s["item"]["name"] == "Executive Dashboard";
    p.wait_for("the dashboard on screen", 90, |s| {
        assert_eq!(s["problem"], Value::Null, "{s}");
        dashboard(s)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shot = x.screenshot("sp-dashboard.png");
    assert!(detail(&shot, None) > 0.01, "a dashboard is drawn");
    let s = p
        .wait_for("three embed token renewals", 200, |s| {
            assert_eq!(s["problem"], Value::Null, "{s}");
            s["token_refreshes_total"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    // Still switching to the dashboard on the renewed tokens.
    let before = num(&s, "shown_total");
    let s = p
        .wait_for("the dashboard again after the renewals", 30, |s| {
            num(s, "shown_total") > before && dashboard(s)
        })
        .await;
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    assert_eq!(s["state"], "playing", "{s}");
    x.screenshot("sp-dashboard-renewed.png");
    let stats = p.sim_stats().await;
    // Per renewal one GenerateToken for the report and one for the dashboard.
    let grants = stats["token_by_grant"]["client_credentials"]
        .as_u64()
        .unwrap_or(0);
    assert!(grants >= 4, "{stats}");
    // (A renewal may be under way while the stats are read: its second call not yet made.)
    let generated = stats["api_by_kind"]["generate_token"].as_u64().unwrap_or(0);
    assert!(
        (2 * grants - 2..=2 * grants).contains(&generated),
        "{stats}"
    );
    let log = std::fs::read_to_string(out_dir().join("sp-dashboard.log")).unwrap();
    assert!(
        log.contains("dashboard embed token generated"),
        "the log is empty?"
    );
    // Each live embed took its renewed token: none was refused.
    assert!(!log.contains("set_token failed"), "a renewal was refused");
    assert!(!log.contains("H4sI"), "an embed token in the log");
}

/// Signed in as a service principal, the rotation plays with embed tokens of 60 s (the fake
/// embed page accepts them only for the reports they were made for, only as embed tokens and
/// only until they expire), renewed at least three times without reloading the page.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn service_principal_plays_with_renewed_embed_tokens() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(
        &x,
        "service-principal",
        &[
            "--scenario",
            "service-principal",
            "--seconds",
            "5",
            "--token-lifetime",
            "60",
        ],
    );
    let first = p
        .wait_for("the first report", 60, |s| s["state"] == "playing")
        .await;
    assert_eq!(first["problem"], Value::Null);
    let s = p
        .wait_for("three embed token renewals", 200, |s| {
            s["token_refreshes_total"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    assert_eq!(s["state"], "playing", "{s}");
    assert_eq!(s["problem"], Value::Null, "{s}");
    // Still rotating on the renewed tokens: every report was shown by the embed itself.
    let mut seen = std::collections::BTreeSet::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(40) && seen.len() < 3 {
        if let Some(s) = p.status().await
            && let Some((report, _)) = showing(&s)
        {
            seen.insert(report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    x.screenshot("service-principal.png");
    let stats = p.sim_stats().await;
    let grants = &stats["token_by_grant"];
    // One grant per embed token: the first, and one per renewal; never a user sign-in.
    assert!(grants["client_credentials"].as_u64() >= Some(4), "{stats}");
    assert_eq!(grants["password"], Value::Null, "{stats}");
    assert!(
        stats["api_by_kind"]["generate_token"].as_u64() >= Some(4),
        "{stats}"
    );
    let s = p.status().await.unwrap();
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    // The player's log names embed tokens by id only.
    let log = std::fs::read_to_string(out_dir().join("service-principal.log")).unwrap();
    assert!(log.contains("embed token generated"), "the log is empty?");
    assert!(!log.contains("H4sI"), "an embed token in the log");
}
