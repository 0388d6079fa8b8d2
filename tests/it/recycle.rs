//! The memory policy end to end: a tiny baseline window and margin force a recycle of the web
//! process; `/status` counts it (as no page reload), the screen goes through the start screen
//! only, and the report is back on a fresh web process.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::e2e::{brightness, detail};

/// Screenshots taken back to back until `stop`, as `<prefix>-NNN.png`, with when each was taken.
fn film(
    display: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Duration, std::path::PathBuf)>> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut frames = Vec::new();
        while !stop.load(Ordering::Relaxed) && frames.len() < 400 {
            let path = out_dir().join(format!("{prefix}-{:03}.png", frames.len()));
            let at = t0.elapsed();
            let ok = Command::new("import")
                .args(["-display", &display, "-window", "root"])
                .arg(&path)
                .status()
                .expect("ImageMagick's import is needed (scripts/test.sh installs it)");
            assert!(ok.success());
            frames.push((at, path));
        }
        frames
    })
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn memory_policy_recycles_the_web_process_behind_the_start_screen() {
    let _one = lock().await;
    let x = Xvfb::start();
    // Baseline: the first 4 s after the first render; then 1 MiB more is enough (the next
    // item rendering off-screen alone is more). One recycle at most in this test.
    let mut p = Player::demo(
        &x,
        "recycle",
        &[
            "--seconds",
            "4",
            "--memory-margin-mib",
            "1",
            "--memory-baseline-seconds",
            "4",
            "--memory-sample-seconds",
            "1",
            "--memory-min-interval-seconds",
            "3600",
        ],
    );
    let first = p
        .wait_for("the first report", 60, |s| s["state"] == "playing")
        .await;
    let old_web = p.web_processes();
    assert!(!old_web.is_empty(), "no web process under the player");
    let s = p
        .wait_for("a baseline", 30, |s| {
            s["memory"]["baseline_pss_mib"].is_number()
        })
        .await;
    println!("baseline: {}", s["memory"]);
    assert!(
        s["memory"]["tree_pss_mib"]
            .as_f64()
            .is_some_and(|m| m > 20.0),
        "{s}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let filming = film(x.display.clone(), "recycle-frame", stop.clone());
    let filming_since = Instant::now();
    // Watch /status closely through the recycle: never a problem, never a reload.
    let mut states: Vec<(Duration, String)> = Vec::new();
    let mut recycled_at = None;
    let mut back = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let Some(s) = p.status().await else { continue };
        let state = s["state"].as_str().unwrap_or("?").to_owned();
        if states.last().map(|(_, st)| st) != Some(&state) {
            states.push((filming_since.elapsed(), state.clone()));
        }
        assert_eq!(
            s["problem"],
            Value::Null,
            "a problem during the recycle: {s}"
        );
        assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
        let recycles = s["memory"]["web_process_recycles_total"].as_u64().unwrap();
        if recycles >= 1 && recycled_at.is_none() {
            recycled_at = Some((filming_since.elapsed(), num(&s, "shown_total")));
        }
        if let Some((_, shown)) = recycled_at
            && state == "playing"
            && num(&s, "shown_total") > shown
        {
            back = Some((filming_since.elapsed(), s));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A moment of the report after it came back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let frames = filming.join().unwrap();
    let (recycled_at, _) = recycled_at.expect("no recycle within 90 s");
    let (back_at, s) = back.expect("the report did not come back after the recycle");
    println!("states: {states:?}");
    println!(
        "recycle at {:.1} s, report back at {:.1} s: {}",
        recycled_at.as_secs_f64(),
        back_at.as_secs_f64(),
        s["memory"]
    );
    assert_eq!(s["memory"]["web_process_recycles_total"], 1, "{s}");
    assert!(s["memory"]["last_recycle"].is_string(), "{s}");
    assert!(num(&s, "switches_total") >= num(&first, "switches_total"));
    // A fresh web process: the old one is gone.
    let new_web = p.web_processes();
    assert!(!new_web.is_empty(), "no web process after the recycle");
    assert!(
        old_web.iter().all(|pid| !new_web.contains(pid)),
        "old {old_web:?}, now {new_web:?}"
    );
    let m = reqwest::get(format!("http://{}/metrics", p.status))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("pbikiosk_web_process_recycles_total 1"), "{m}");
    assert!(m.contains("pbikiosk_tree_pss_bytes "), "{m}");
    assert!(m.contains("pbikiosk_page_reloads_total 0"), "{m}");

    // What the screen showed, frame by frame: the report (light), or the start screen's
    // colour (dark: its plain background while the fresh page starts, then its text); never
    // a frame of another colour, and back to the report within seconds.
    let mut dark = Vec::new();
    let mut start_screen = false;
    for (at, path) in &frames {
        let (b, d) = (brightness(path, None), detail(path, None));
        let corner = pixel(path, 5, 5);
        println!(
            "{:6.2} s  brightness {b:.3}  detail {d:.3}  corner {corner}  {}",
            at.as_secs_f64(),
            path.display()
        );
        if b > 0.5 {
            continue;
        }
        assert_eq!(
            corner,
            START_SCREEN_COLOUR,
            "neither the report nor the start screen: {}",
            path.display()
        );
        start_screen |= d > 0.03;
        dark.push(*at);
    }
    let (Some(first_dark), Some(last_dark)) = (dark.first(), dark.last()) else {
        panic!("the recycle was not seen on screen (no frame of the start screen)");
    };
    let transition = *last_dark - *first_dark;
    println!(
        "transition: {} dark frames over {:.1} s, start screen text seen: {start_screen}",
        dark.len(),
        transition.as_secs_f64()
    );
    assert!(transition < Duration::from_secs(10), "{transition:?}");
    assert!(
        frames
            .last()
            .is_some_and(|(_, f)| brightness(f, None) > 0.5),
        "the report is back on screen"
    );
}

/// The page's start screen background (web/player.css `#10161d`), which the web view shows
/// too while a fresh page starts.
const START_SCREEN_COLOUR: &str = "srgb(16,22,29)";

/// The colour of one pixel, as ImageMagick names it (`srgb(r,g,b)`).
fn pixel(path: &std::path::Path, x: u32, y: u32) -> String {
    let out = Command::new("convert")
        .arg(path)
        .args(["-format", &format!("%[pixel:p{{{x},{y}}}]"), "info:"])
        .output()
        .expect("ImageMagick's convert is needed (scripts/test.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
