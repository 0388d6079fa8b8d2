//! Containment of the running player, seen from outside as an attacker on the device would:
//! WebKit's web processes in bubblewrap, and no secret in any process's environment.
//!
//! GUI tests (Xvfb, the real binary), `#[ignore]`d like the other end-to-end tests.

use std::os::unix::fs::PermissionsExt;

use pbikiosk::sim::front::{EmbedFront, FrontCert};
use std::time::Duration;

use crate::common::*;

fn namespace(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Every WebKit web process of the player runs inside bubblewrap (a `bwrap` between it and
/// the player, and mount and PID namespaces of its own), and the report still plays.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick, bubblewrap and the built page; scripts/test.sh runs it"]
async fn web_processes_run_in_bubblewrap() {
    let _one = lock().await;
    let x = Xvfb::start();
    let mut p = Player::demo(&x, "contain-sandbox", &["--seconds", "5"]);
    let s = p
        .wait_for("the first report", 60, |s| {
            s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(s["problem"], serde_json::Value::Null, "{s}");
    let player = p.child.id();
    let web = p.web_processes();
    assert!(!web.is_empty(), "no WebKitWebProcess below the player");
    for pid in web {
        let mut chain = Vec::new();
        let mut at = pid;
        while at != player {
            at = parent_of(at).expect("a parent");
            chain.push(comm(at));
        }
        println!("WebKitWebProcess {pid}: parents {chain:?}");
        assert!(
            chain.iter().any(|c| c == "bwrap"),
            "web process {pid} is not inside bwrap: parents {chain:?}"
        );
        for kind in ["mnt", "pid"] {
            assert_ne!(
                namespace(pid, kind),
                namespace(player, kind),
                "web process {pid} shares the player's {kind} namespace"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shot = x.screenshot("contain-sandbox.png");
    // The simulated reports are light, the page's own screens dark.
    let b = brightness(&shot);
    assert!(b > 0.6, "the report is on screen: brightness {b}");
}

/// The value of `key = "..."` in a config snippet.
fn value_of(snippet: &str, key: &str) -> String {
    let line = snippet
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} in {snippet}"));
    toml::from_str::<toml::Table>(line).unwrap()[key]
        .as_str()
        .unwrap()
        .to_owned()
}

/// With the password and client secret given in the environment, the player signs in with
/// them, yet neither is in its own `/proc/<pid>/environ` nor in any WebKit process's; and a
/// changed config is still read with them (the values stay in memory).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn secrets_are_in_no_environment() {
    let _one = lock().await;
    let (sim, snippet) = builtin_sim().await;
    let (password, secret) = (
        value_of(&snippet, "password"),
        value_of(&snippet, "client_secret"),
    );
    assert!(
        password.len() >= 8 && secret.len() >= 8,
        "too short to search for"
    );
    // The config without its secrets: they come from the environment only.
    let without: String = snippet
        .lines()
        .filter(|l| !l.starts_with("password = ") && !l.starts_with("client_secret = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(&cfg, &without).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();

    let x = Xvfb::start();
    let mut p = Player::run_config_env(
        &x,
        "contain-env",
        &cfg,
        &[
            ("PBIKIOSK_PASSWORD", &password),
            ("PBIKIOSK_CLIENT_SECRET", &secret),
        ],
    );
    let s = p
        .wait_for("sign-in with the secrets from the environment", 60, |s| {
            s["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
    assert_eq!(s["items"][0]["name"], "Sales Overview", "{s}");
    assert_eq!(sim.stats().token_by_grant.get("password"), Some(&1));
    // Wait for WebKit's processes (network, bwrap, web) to be up.
    let t = std::time::Instant::now();
    while p.web_processes().is_empty() && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!p.web_processes().is_empty(), "no WebKit web process");

    let player = p.child.id();
    let mut checked = Vec::new();
    for pid in std::iter::once(player).chain(descendants(player)) {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue; // gone meanwhile
        };
        let name = comm(pid);
        let text = String::from_utf8_lossy(&environ);
        if pid == player {
            // Really the player's environment: what the test gave it is there.
            assert!(text.contains("RUST_LOG=info,pbikiosk=debug"), "{text}");
        }
        for (what, value) in [("password", &password), ("client secret", &secret)] {
            assert!(
                !text.contains(value.as_str()),
                "the {what} is in the environment of {name} ({pid})"
            );
        }
        checked.push(name);
    }
    println!("environments checked: {checked:?}");
    assert!(
        checked.iter().any(|c| c.starts_with("WebKitWebProces"))
            && checked.iter().any(|c| c.starts_with("WebKitNetworkP")),
        "{checked:?}"
    );

    // A changed config (one report fewer) is read again, with the secrets kept in memory.
    let last = without.rfind("\n[[playlist]]").unwrap();
    std::fs::write(&cfg, &without[..last]).unwrap();
    let s = p
        .wait_for("the changed config", 30, |s| {
            s["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_ne!(s["problem"], "config", "{s}");
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A report that uses cookies and local storage (the simulator's embed page does, like the
/// real one) leaves nothing of WebKit's on disk: its website data lives in memory.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn website_data_stays_off_the_disk() {
    let _one = lock().await;
    let home = tempfile::tempdir().unwrap();
    let h = |sub: &str| home.path().join(sub).to_str().unwrap().to_owned();
    let (data, cache, config) = (h("data"), h("cache"), h("config"));
    let x = Xvfb::start();
    let mut p = Player::demo_env(
        &x,
        "contain-data",
        &["--seconds", "3"],
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_DATA_HOME", &data),
            ("XDG_CACHE_HOME", &cache),
            ("XDG_CONFIG_HOME", &config),
        ],
    );
    // Two reports shown: both loaded, set their cookie and used local storage.
    p.wait_for("two reports shown", 60, |s| {
        s["shown_total"].as_u64() >= Some(2)
    })
    .await;
    let files = files_below(home.path());
    println!("files under the player's HOME: {files:?}");
    let webkit: Vec<&String> = files
        .iter()
        // The sandbox's own bookkeeping (cache/.flatpak/webkit-*/bwrapinfo.json, for desktop
        // portals) is not website data.
        .filter(|f| !f.ends_with("/bwrapinfo.json"))
        .filter(|f| {
            let f = f.to_ascii_lowercase();
            f.contains("webkit")
                || f.contains("storage")
                || f.contains("cookie")
                || f.starts_with("data/pbikiosk")
                || f.starts_with("cache/pbikiosk")
        })
        .collect();
    assert!(webkit.is_empty(), "WebKit wrote website data: {webkit:?}");
}

/// What the web process sees at `path`: read through `/proc/<pid>/root`, the root of its own
/// mount namespace (bubblewrap's), as its own code would open it. (`nsenter -m cat` cannot be
/// used: the sandbox holds no `/usr/bin`.)
fn read_inside(pid: u32, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/root{}", path.display()))
}

/// The secret files, where install.sh puts them (a folder under /var/lib), are read by the
/// player and cannot be read from inside the web process's sandbox; a file under /etc, where
/// older installs kept them, can (so the probe itself works and the test can fail).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick, bubblewrap and the built page; scripts/test.sh runs it"]
async fn secret_files_are_out_of_the_web_sandbox() {
    let _one = lock().await;
    let (sim, snippet) = builtin_sim().await;
    let (password, secret) = (
        value_of(&snippet, "password"),
        value_of(&snippet, "client_secret"),
    );
    // A folder of its own beside where install.sh keeps the secrets (/var/lib/pbikiosk-secrets
    // belongs to an installed package), removed when the test ends.
    let secrets = tempfile::Builder::new()
        .prefix("pbikiosk-secrets-test-")
        .tempdir_in("/var/lib")
        .unwrap();
    let (pw_file, cs_file) = (
        secrets.path().join("password"),
        secrets.path().join("client-secret"),
    );
    for (file, value) in [(&pw_file, &password), (&cs_file, &secret)] {
        std::fs::write(file, format!("{value}\n")).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    // The control: a file where the sandbox does look.
    let etc = tempfile::Builder::new()
        .prefix("pbikiosk-test-")
        .tempdir_in("/etc")
        .unwrap();
    let shown = etc.path().join("shown");
    std::fs::write(&shown, "seen from the sandbox").unwrap();

    // The embed host behind the simulator's front door, reached through https_proxy and
    // trusted through cloud.ca_file: nothing leaves the machine.
    let door = EmbedFront::start(sim.router(), "app.powerbi.com", FrontCert::RunCa)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("door-ca.pem");
    std::fs::write(&ca, door.ca_pem.as_deref().unwrap()).unwrap();
    let config: String = snippet
        .lines()
        .map(|l| {
            if l.starts_with("password = ") {
                format!("password_file = {:?}\n", pw_file.to_str().unwrap())
            } else if l.starts_with("client_secret = ") {
                format!("client_secret_file = {:?}\n", cs_file.to_str().unwrap())
            } else if l == "[cloud]" {
                format!("[cloud]\nca_file = {:?}\n", ca.to_str().unwrap())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(!config.contains(&password) && !config.contains(&secret));
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(&cfg, &config).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();

    let proxy = format!("http://{}", door.proxy);
    let x = Xvfb::start();
    let mut p = Player::run_config_env(
        &x,
        "contain-secret-files",
        &cfg,
        &[("https_proxy", &proxy), ("no_proxy", ""), ("NO_PROXY", "")],
    );
    let s = p
        .wait_for("a report, signed in with the secret files", 90, |s| {
            s["state"] == "playing" && s["shown_total"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(s["problem"], serde_json::Value::Null, "{s}");
    // The player read both files: it signed in with them.
    assert_eq!(sim.stats().token_by_grant.get("password"), Some(&1));
    let web = p.web_processes();
    assert!(!web.is_empty(), "no WebKit web process");
    for pid in web {
        let seen = read_inside(pid, &shown)
            .unwrap_or_else(|e| panic!("web process {pid} cannot read {}: {e}", shown.display()));
        assert_eq!(seen, b"seen from the sandbox");
        for file in [&pw_file, &cs_file] {
            // The host sees the file; the sandbox sees no such path.
            assert!(file.exists());
            let inside = read_inside(pid, file);
            println!(
                "web process {pid}: {} -> {:?}",
                file.display(),
                inside.as_ref().map(|b| b.len())
            );
            assert!(
                inside.is_err(),
                "web process {pid} can read {}",
                file.display()
            );
        }
        let folder = format!("/proc/{pid}/root{}", secrets.path().display());
        assert!(
            std::fs::metadata(&folder).is_err(),
            "web process {pid} sees the secrets folder"
        );
    }
}

/// A report that starts a download (the simulator's embed page clicks a link to a CSV sent as
/// an attachment, as "export data" does) gets nothing written: no file under HOME or the XDG
/// folders, the refusal logged with the address (without its query), and the report plays on.
/// The logged refusal is what fails when the refusal goes: with `download.cancel()` taken out,
/// WebKitGTK wrote no file in this setup either, so the file check alone would not notice.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn downloads_are_refused() {
    let _one = lock().await;
    let home = tempfile::tempdir().unwrap();
    let h = |sub: &str| home.path().join(sub).to_str().unwrap().to_owned();
    let (data, cache, config) = (h("data"), h("cache"), h("config"));
    let x = Xvfb::start();
    let name = "contain-download";
    let mut p = Player::demo_env(
        &x,
        name,
        &["--seconds", "3"],
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_DATA_HOME", &data),
            ("XDG_CACHE_HOME", &cache),
            ("XDG_CONFIG_HOME", &config),
        ],
    );
    // Every embed page offers the download, from the first one on.
    let t = std::time::Instant::now();
    loop {
        let r = p
            .http
            .post(format!("http://{}/_sim/control", p.sim))
            .json(&serde_json::json!({"action": "offer_download", "on": true}))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "simulator never came up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = p
        .wait_for("three reports shown", 90, |s| {
            s["shown_total"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(s["problem"], serde_json::Value::Null, "{s}");
    assert_eq!(num(&s, "page_reloads_total"), 0, "{s}");
    // Time for a download that was not refused to be written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(out_dir().join(format!("{name}.log"))).unwrap();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("download refused"))
        .collect();
    println!(
        "{} refusal(s), the first: {:?}",
        refused.len(),
        refused.first()
    );
    assert!(
        refused.iter().any(|l| l.contains("/_sim/download")),
        "no download was refused (the page offered one for each report):\n{log}"
    );
    let files = files_below(home.path());
    println!("files under the player's HOME: {files:?}");
    let written: Vec<&String> = files
        .iter()
        .filter(|f| !f.ends_with("/bwrapinfo.json"))
        .filter(|f| {
            let f = f.to_ascii_lowercase();
            f.contains("export") || f.ends_with(".csv") || f.contains("download")
        })
        .collect();
    assert!(written.is_empty(), "a download was written: {written:?}");
    // Nor in the working folder, where a browser without a downloads folder may put it.
    assert!(
        !std::path::Path::new("pbikiosk-sim-export.csv").exists(),
        "written to the working folder"
    );
}
