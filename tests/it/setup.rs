//! Setup from a phone, against the real binary: `pbikiosk run` on a device that is not
//! configured, the simulator as the tenant, a phone-sized headless Chromium as the phone.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use pbikiosk::sim::Control;
use pbikiosk::sim::front::{EmbedFront, FrontCert};

use crate::common::{Player, Xvfb, free_port, lock, out_dir};

fn value_of(snippet: &str, key: &str) -> String {
    snippet
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// The installer's file of a fresh device: the simulator as the cloud and the setup page on
/// loopback, no `[auth]`, no playlist.
fn installer_config(dir: &Path, snippet: &str, port: u16, ca: &Path) -> PathBuf {
    let cloud = snippet[snippet.find("[cloud]").unwrap()..]
        .split("[[playlist]]")
        .next()
        .unwrap()
        .replacen(
            "[cloud]",
            &format!("[cloud]\nca_file = {:?}", ca.to_str().unwrap()),
            1,
        );
    let path = dir.join("pbikiosk.toml");
    std::fs::write(
        &path,
        format!("# as installed\n{cloud}\n[setup]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A client that trusts exactly the device's certificate.
fn phone_client(state: &Path) -> reqwest::Client {
    let pem = std::fs::read(state.join("setup-tls/cert.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

/// One raw plain-HTTP request to the setup port, as a phone typing `http://` would send it;
/// the answer's first line and headers.
fn plain_request(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// The phone: web/testing/setup-phone.mjs in a phone-sized headless Chromium, given `input`;
/// what it reports.
fn run_phone(input: &Value) -> Value {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = Command::new("node")
        .current_dir(&web)
        .arg("testing/setup-phone.mjs")
        .arg(input.to_string())
        .output()
        .expect("node is needed for the phone test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "the phone said nothing usable: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The player goes on to play the two reports the phone picked, in the same process, with the
/// setup page closed.
async fn plays_the_picks_without_a_restart(p: &mut Player) {
    let pid = p.child.id();
    let s = p
        .wait_for("playing the two picked reports", 60, |s| {
            s["state"] == "playing"
                && !s["item"].is_null()
                && s["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_eq!(s["items"][0]["name"], "Sales Overview", "{s}");
    assert_eq!(s["items"][1]["name"], "Operations", "{s}");
    assert_eq!(p.child.id(), pid);
    assert!(p.child.try_wait().unwrap().is_none(), "restarted");
    assert!(s.get("setup").is_none(), "{s}");
}

/// A device that is not configured: the installer's config (setup on, no sign-in) for the
/// simulator's tenant, the player running it, and its status once the setup page is open.
struct Unconfigured {
    _door: EmbedFront,
    _dir: tempfile::TempDir,
    state: PathBuf,
    port: u16,
    x: Xvfb,
    p: Player,
    s: Value,
}

async fn unconfigured(sim: &pbikiosk::sim::SimHandle, snippet: &str, name: &str) -> Unconfigured {
    // The embed host behind the simulator's front door, reached through https_proxy and
    // trusted through cloud.ca_file: the reports really play, and nothing leaves the machine.
    let door = EmbedFront::start(sim.router(), "app.powerbi.com", FrontCert::RunCa)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("door-ca.pem");
    std::fs::write(&ca, door.ca_pem.as_deref().unwrap()).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let port = free_port();
    let cfg = installer_config(dir.path(), snippet, port, &ca);
    let state_env = state.to_str().unwrap().to_owned();
    let proxy = format!("http://{}", door.proxy);
    let x = Xvfb::start();
    let mut p = Player::run_config_env(
        &x,
        name,
        &cfg,
        &[
            ("STATE_DIRECTORY", &state_env),
            ("https_proxy", &proxy),
            ("no_proxy", ""),
            ("NO_PROXY", ""),
        ],
    );
    let s = p
        .wait_for("the setup page on the not-configured screen", 60, |s| {
            s["state"] == "not_configured" && s["setup"]["pin"].is_string()
        })
        .await;
    Unconfigured {
        _door: door,
        _dir: dir,
        state,
        port,
        x,
        p,
        s,
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick, the built page, node and Chromium; scripts/test.sh runs it"]
async fn a_phone_sets_the_screen_up_and_it_plays_without_a_restart() {
    let _one = lock().await;
    let sim = pbikiosk::sim::Simulator::start(
        pbikiosk::sim::Scenario::builtin(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let user = format!(
        "kiosk@{}",
        pbikiosk::sim::scenario::builtin_ids::TENANT_DOMAIN
    );
    let snippet = sim.config_snippet(&user);
    let password = value_of(&snippet, "password");
    let secret = value_of(&snippet, "client_secret");
    assert!(password.len() >= 8 && secret.len() >= 8);
    let Unconfigured {
        _door,
        _dir,
        state,
        port,
        x,
        mut p,
        s,
    } = unconfigured(&sim, &snippet, "setup-phone").await;
    let url = s["setup"]["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("https://127.0.0.1:{port}/"));
    let first_pin = s["setup"]["pin"].as_str().unwrap().to_owned();
    assert_eq!(first_pin.len(), 6);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let shot = x.screenshot("setup-screen-1280x720.png");
    assert_eq!(
        crate::device_code::decode_qr(&shot),
        url,
        "the QR code is the address"
    );

    // Plain HTTP: a GET is sent to the HTTPS address; a POST with a password is refused
    // without its body being read or acted on.
    let get = plain_request(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(get.starts_with("HTTP/1.1 301"), "{get}");
    assert!(get.contains(&format!("Location: {url}")), "{get}");
    let body = format!("{{\"method\":\"password\",\"password\":\"{password}\"}}");
    let post = plain_request(
        port,
        &format!(
            "POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(post.starts_with("HTTP/1.1 403"), "{post}");

    // Five wrong PINs (each after the wait) replace the PIN; /status (and the screen) show
    // the new one.
    let phone = phone_client(&state);
    let wrong = if first_pin == "000000" {
        "111111"
    } else {
        "000000"
    };
    for i in 0..5 {
        let r = phone
            .post(format!("{url}api/pin"))
            .json(&json!({ "pin": wrong }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "wrong PIN {}", i + 1);
        let too_soon = phone
            .post(format!("{url}api/pin"))
            .json(&json!({ "pin": first_pin }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            too_soon.status().as_u16(),
            429,
            "the wait after wrong PIN {}",
            i + 1
        );
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    let s = p
        .wait_for("a new PIN", 10, |s| s["setup"]["pin"].is_string())
        .await;
    let pin = s["setup"]["pin"].as_str().unwrap().to_owned();
    // One chance in a million that the new PIN is the old one.
    if pin != first_pin {
        let old = phone
            .post(format!("{url}api/pin"))
            .json(&json!({ "pin": first_pin }))
            .send()
            .await
            .unwrap();
        assert_eq!(old.status().as_u16(), 403, "the replaced PIN still works");
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    x.screenshot("setup-screen-new-pin.png");
    // The screen was sent the new PIN (the log holds the messages to the page).
    let log = std::fs::read_to_string(out_dir().join("setup-phone.log")).unwrap();
    assert!(
        log.contains(&format!("pin: \"{pin}\"")),
        "the screen never got the new PIN"
    );

    // The phone.
    let input = json!({
        "url": url,
        "pin": pin,
        "cert_pem_file": state.join("setup-tls/cert.pem"),
        "values": {
            "method": "password",
            "tenant": value_of(&snippet, "tenant"),
            "client_id": value_of(&snippet, "client_id"),
            "username": user,
            "password": password,
            "client_secret": secret,
        },
        "reports": 2,
        "out_dir": out_dir(),
    });
    let result = run_phone(&input);
    assert_eq!(result["done"], true, "{result}");
    // Every request the phone made went over TLS, and the password only in them.
    let requests = result["requests"].as_array().unwrap();
    assert!(requests.len() >= 6, "{result}");
    for r in requests {
        assert!(r["url"].as_str().unwrap().starts_with("https://"), "{r}");
    }
    assert!(
        requests
            .iter()
            .any(|r| r["body"].as_str().unwrap().contains(&password)),
        "the password went nowhere"
    );
    assert!(
        result["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{result}"
    );

    // Saved in the state directory; the player switches to it without a restart.
    let saved = state.join("setup/pbikiosk.toml");
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        !text.contains(&password) && !text.contains(&secret),
        "{text}"
    );
    plays_the_picks_without_a_restart(&mut p).await;
    assert!(
        sim.stats()
            .token_by_grant
            .get("password")
            .is_some_and(|n| *n >= 1)
    );
    // The listener is closed.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the setup port still answers"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    x.screenshot("setup-screen-after.png");

    // Leak sweep: the password and the client secret are nowhere in the log (which holds the
    // messages to the page, so the screens too) or /status.
    let status = p.status().await.unwrap().to_string();
    let log = std::fs::read_to_string(out_dir().join("setup-phone.log")).unwrap();
    for (what, v) in [("password", &password), ("client secret", &secret)] {
        assert!(!log.contains(v.as_str()), "the {what} is in the log");
        assert!(!status.contains(v.as_str()), "the {what} is in /status");
    }
    assert!(log.contains("setup page closed"), "{log}");
}

/// The not-configured screen with the setup page on a 1920x1080 screen (for a look).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick and the built page; scripts/test.sh runs it"]
async fn the_setup_screen_at_1920x1080() {
    let _one = lock().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let port = free_port();
    let cfg = dir.path().join("pbikiosk.toml");
    std::fs::write(&cfg, format!("[setup]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let x = Xvfb::start_sized(1920, 1080);
    let state_env = state.to_str().unwrap().to_owned();
    let mut p = Player::run_config_window(
        &x,
        "setup-1080",
        &cfg,
        &[("STATE_DIRECTORY", &state_env)],
        "1920x1080",
    );
    let s = p
        .wait_for("the setup page", 60, |s| {
            s["state"] == "not_configured" && s["setup"]["pin"].is_string()
        })
        .await;
    assert_eq!(s["setup"]["pin"].as_str().unwrap().len(), 6);
    tokio::time::sleep(Duration::from_secs(2)).await;
    x.screenshot("setup-screen-1920x1080.png");
}

/// `pbikiosk check` reads the file the player would: the phone's while the installer's is the
/// example, the installer's once it is configured; and it says which.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_and_reads_the_file_in_use() {
    let sim = pbikiosk::sim::Simulator::start(
        pbikiosk::sim::Scenario::builtin(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let user = format!(
        "kiosk@{}",
        pbikiosk::sim::scenario::builtin_ids::TENANT_DOMAIN
    );
    let dir = tempfile::tempdir().unwrap();
    let installer = dir.path().join("pbikiosk.toml");
    std::fs::write(&installer, "# the example\n[auth]\n").unwrap();
    std::fs::set_permissions(&installer, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("setup")).unwrap();
    let saved = state.join("setup/pbikiosk.toml");
    std::fs::write(&saved, sim.config_snippet(&user)).unwrap();
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
            .args(["check", "--json", "--config"])
            .arg(&installer)
            .env("STATE_DIRECTORY", &state)
            .env_remove("PBIKIOSK_PASSWORD")
            .env_remove("PBIKIOSK_CLIENT_SECRET")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["checks"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let line = check();
    assert!(line.contains(saved.to_str().unwrap()), "{line}");
    // The installer fills in their own file: it wins.
    std::fs::write(&installer, "[auth]\ntenant = \"x\"\n").unwrap();
    let line = check();
    assert!(line.contains(installer.to_str().unwrap()), "{line}");
    assert!(!line.contains("state/setup"), "{line}");
}

/// Where a token of the simulator's shows in `text`: refresh tokens start "0.A", device codes
/// "DAQABAAEAAA", access tokens with the JWT header below, each followed by base64url.
fn token_leaks(text: &str) -> Vec<&'static str> {
    const JWT_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6InNpbSJ9";
    ["0.A", "DAQABAAEAAA", JWT_HEADER]
        .into_iter()
        .filter(|prefix| {
            text.match_indices(prefix).any(|(i, _)| {
                let rest = &text[i + prefix.len()..];
                rest.len() >= 40
                    && rest[..40]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            })
        })
        .collect()
}

/// The device-code method on the phone: the phone shows the code and Microsoft's address; a
/// declined sign-in is shown with a button for a new code; a person signs in with that one
/// (the simulator approves the code the phone showed), the phone goes on to
/// the live check and the reports, and the screen plays them without a restart, signed in
/// through the token cache the service reads. No token reaches the phone, the log, `/status`
/// or the saved file.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb, ImageMagick, the built page, node and Chromium; scripts/test.sh runs it"]
async fn a_phone_signs_the_screen_in_with_a_code_and_it_plays_without_a_restart() {
    use std::os::unix::fs::MetadataExt as _;
    let _one = lock().await;
    let mut scenario = pbikiosk::sim::Scenario::builtin();
    scenario.device_code.interval_seconds = 1;
    scenario.device_code.auto_approve_seconds = None;
    let sim = pbikiosk::sim::Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ids = pbikiosk::sim::scenario::builtin_ids::TENANT_DOMAIN;
    let user = format!("kiosk@{ids}");
    let snippet = sim.config_snippet(&user);
    let Unconfigured {
        _door,
        _dir,
        state,
        port,
        x,
        mut p,
        s,
    } = unconfigured(&sim, &snippet, "setup-phone-code").await;
    let url = s["setup"]["url"].as_str().unwrap().to_owned();
    let pin = s["setup"]["pin"].as_str().unwrap().to_owned();

    // The person at the phone: they decline the first code the phone shows (on Microsoft's
    // page), then sign in with the new code the phone asks for.
    let code_file = out_dir().join("setup-phone-code.txt");
    let _ = std::fs::remove_file(&code_file);
    let approver = {
        let (sim, code_file, user) = (sim.clone(), code_file.clone(), user.clone());
        std::thread::spawn(move || {
            let mut declined: Option<String> = None;
            for _ in 0..900 {
                let code = std::fs::read_to_string(&code_file).unwrap_or_default();
                if code.is_empty() || declined.as_deref() == Some(code.as_str()) {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                std::thread::sleep(Duration::from_secs(2));
                let c = Some(code.clone());
                if declined.is_none() {
                    sim.try_control(Control::DeclineDeviceCode { user_code: c })
                        .map_err(|e| e.to_string())?;
                    declined = Some(code);
                    continue;
                }
                return sim
                    .try_control(Control::ApproveDeviceCode {
                        user_code: c,
                        username: user,
                    })
                    .map(|_| (declined.unwrap_or_default(), code))
                    .map_err(|e| e.to_string());
            }
            Err("the phone never showed two codes".to_owned())
        })
    };
    let input = json!({
        "url": url,
        "pin": pin,
        "cert_pem_file": state.join("setup-tls/cert.pem"),
        "values": {
            "method": "device_code",
            "tenant": value_of(&snippet, "tenant"),
            "client_id": value_of(&snippet, "client_id"),
        },
        "reports": 2,
        "out_dir": out_dir(),
        "code_file": code_file,
        "decline_first": true,
    });
    let result = tokio::task::spawn_blocking(move || run_phone(&input))
        .await
        .unwrap();
    let approved = approver.join().unwrap();
    assert_eq!(result["done"], true, "{result}");
    let (declined, approved) = approved.unwrap_or_else(|e| panic!("{e}: {result}"));
    assert_eq!(Some(declined.as_str()), result["first_code"].as_str());
    assert_eq!(Some(approved.as_str()), result["code"].as_str());
    assert!(
        result["declined_message"]
            .as_str()
            .is_some_and(|m| m.contains("declined")),
        "{result}"
    );
    assert_eq!(
        result["link"], "https://microsoft.com/devicelogin",
        "{result}"
    );
    assert_eq!(
        result["copied"], result["first_code"],
        "tap-to-copy: {result}"
    );
    assert!(
        result["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{result}"
    );
    for r in result["requests"].as_array().unwrap() {
        assert!(r["url"].as_str().unwrap().starts_with("https://"), "{r}");
    }

    // Saved: device_code with tenant and app, the token cache where the service reads it,
    // private to the service's user like one `pbikiosk login` writes.
    let saved = state.join("setup/pbikiosk.toml");
    let text = std::fs::read_to_string(&saved).unwrap();
    let cache = state.join("token-cache.json");
    for line in [
        "method = \"device_code\"".to_owned(),
        format!("tenant = \"{}\"", value_of(&snippet, "tenant")),
        format!("client_id = \"{}\"", value_of(&snippet, "client_id")),
        format!("token_cache = \"{}\"", cache.display()),
    ] {
        assert!(text.contains(&line), "{line} missing in {text}");
    }
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata(&state).unwrap().uid());
    let left: Vec<_> = std::fs::read_dir(state.join("setup"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sign-in-"))
        .collect();
    assert!(left.is_empty(), "a sign-in's cache was left: {left:?}");
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let refresh = cached["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.len() > 40);

    plays_the_picks_without_a_restart(&mut p).await;
    let stats = sim.stats();
    assert_eq!(
        stats.devicecode_requests, 2,
        "the declined code and the new one the phone asked for"
    );
    assert!(!stats.token_by_grant.contains_key("password"), "{stats:?}");
    assert!(
        stats
            .token_by_grant
            .get("refresh_token")
            .is_some_and(|n| *n >= 2),
        "the check and the player sign in with the cached grant: {stats:?}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the setup port still answers"
    );

    // Leak sweep: no token in what the phone received, the log, /status or the saved file.
    let status = p.status().await.unwrap().to_string();
    let log = std::fs::read_to_string(out_dir().join("setup-phone-code.log")).unwrap();
    let phone = result["responses"].to_string();
    assert!(
        result["responses"].as_array().unwrap().len() >= 5,
        "{result}"
    );
    for (what, t) in [
        ("the phone's answers", &phone),
        ("the log", &log),
        ("/status", &status),
        ("the saved file", &text),
    ] {
        assert!(!t.contains(&refresh), "the refresh token is in {what}");
        assert_eq!(token_leaks(t), Vec::<&str>::new(), "a token is in {what}");
    }
    assert!(log.contains("setup page closed"), "{log}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    x.screenshot("setup-code-screen-after.png");
}
