//! `pbikiosk check`, the real binary, on files it must not trust or read: a FIFO as the
//! password file (refused at once, not hung on), a config or CA file others can change, and
//! secret files with a BOM, spaces or too many bytes. Each refusal names the key and the fix.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pbikiosk::sim::scenario::builtin_ids as ids;
use pbikiosk::sim::{Scenario, SimHandle, Simulator};

/// What `check --json` said about the config, or `None` when it did not finish in time.
struct Checked {
    code: i32,
    config: serde_json::Value,
    took: Duration,
}

/// Run `check --json` on `config`, killing it after `limit`.
fn check(config: &Path, limit: Duration) -> Option<Checked> {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .args(["check", "--json", "--config"])
        .arg(config)
        .env_remove("PBIKIOSK_PASSWORD")
        .env_remove("PBIKIOSK_CLIENT_SECRET")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            return Some(Checked {
                code: status.code().unwrap_or(-1),
                config: v["checks"][0].clone(),
                took: start.elapsed(),
            });
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn sim() -> SimHandle {
    Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn write(path: &Path, content: &[u8], mode: u32) -> PathBuf {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// The simulator's config with the password moved to `password_file = "password"`.
fn config_with_password_file(sim: &SimHandle, dir: &Path, mode: u32, extra: &str) -> PathBuf {
    let snippet = sim.config_snippet(&format!("kiosk@{}", ids::TENANT_DOMAIN));
    let text = snippet
        .lines()
        .map(|l| {
            if l.starts_with("password = ") {
                "password_file = \"password\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.replace("[cloud]\n", &format!("[cloud]\n{extra}"));
    write(&dir.join("pbikiosk.toml"), text.as_bytes(), mode)
}

/// A refusal of the config: exit 2, the config check failed with this key, message and fix.
fn assert_refused(c: &Checked, key: &str, message: &str, fix: &str) {
    let line = &c.config;
    assert_eq!(c.code, 2, "{line}");
    assert_eq!(line["name"], "config", "{line}");
    assert_eq!(line["ok"], false, "{line}");
    assert_eq!(line["problem"], "config", "{line}");
    let msg = line["message"].as_str().unwrap();
    let shown_fix = line["fix"].as_str().unwrap();
    assert!(msg.contains(key), "{key} not named: {msg}");
    assert!(msg.contains(message), "{message:?} not in: {msg}");
    assert!(shown_fix.contains(fix), "{fix:?} not in: {shown_fix}");
}

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_password_file_is_refused_at_once() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_password_file(&sim, dir.path(), 0o600, "");
    let fifo = dir.path().join("password");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cfg2 = cfg.clone();
    // Nobody ever writes to the FIFO: a blocking read would hang until the limit.
    let c = tokio::task::spawn_blocking(move || check(&cfg2, LIMIT))
        .await
        .unwrap()
        .expect("check hung on a FIFO password file");
    assert!(c.took < Duration::from_secs(5), "took {:?}", c.took);
    assert_refused(
        &c,
        "auth.password_file",
        "named pipe (FIFO), not a file",
        "Create",
    );

    // The same config with a regular file passes the config check: the FIFO was the reason.
    std::fs::remove_file(&fifo).unwrap();
    write(&fifo, format!("{}\n", ids::PASSWORD).as_bytes(), 0o600);
    let c = tokio::task::spawn_blocking(move || check(&cfg, LIMIT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.config["ok"], true, "{}", c.config);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_writable_config_is_refused_with_the_fix() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("password"),
        format!("{}\n", ids::PASSWORD).as_bytes(),
        0o600,
    );
    let cfg = config_with_password_file(&sim, dir.path(), 0o666, "");
    let cfg2 = cfg.clone();
    let c = tokio::task::spawn_blocking(move || check(&cfg2, LIMIT))
        .await
        .unwrap()
        .unwrap();
    assert_refused(
        &c,
        &cfg.display().to_string(),
        "can be changed by other users on this device (mode 0666)",
        &format!("Run `chmod go-w {}`", cfg.display()),
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = tokio::task::spawn_blocking(move || check(&cfg, LIMIT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.config["ok"], true, "{}", c.config);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_writable_ca_file_is_refused_with_the_fix() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("password"),
        format!("{}\n", ids::PASSWORD).as_bytes(),
        0o600,
    );
    let ca = write(&dir.path().join("corp-ca.pem"), b"not used", 0o664);
    let cfg = config_with_password_file(&sim, dir.path(), 0o600, &format!("ca_file = {:?}\n", ca));
    let c = tokio::task::spawn_blocking(move || check(&cfg, LIMIT))
        .await
        .unwrap()
        .unwrap();
    assert_refused(
        &c,
        "cloud.ca_file",
        "can be changed by other users on this device (mode 0664)",
        &format!("Run `chmod go-w {}`", ca.display()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_files_with_a_bom_spaces_or_too_many_bytes_are_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_password_file(&sim, dir.path(), 0o600, "");
    let pw = ids::PASSWORD;
    let cases: [(Vec<u8>, &str, &str); 4] = [
        (
            format!("\u{feff}{pw}\n").into_bytes(),
            "byte order mark",
            "without BOM",
        ),
        (
            format!("{pw} \n").into_bytes(),
            "spaces or tabs",
            "Remove the spaces",
        ),
        (
            format!(" {pw}").into_bytes(),
            "spaces or tabs",
            "Remove the spaces",
        ),
        (vec![b'p'; 5000], "5000 bytes", "Put only"),
    ];
    for (content, message, fix) in cases {
        write(&dir.path().join("password"), &content, 0o600);
        let cfg = cfg.clone();
        let c = tokio::task::spawn_blocking(move || check(&cfg, LIMIT))
            .await
            .unwrap()
            .unwrap();
        assert_refused(&c, "auth.password_file", message, fix);
        let all = c.config.to_string();
        assert!(!all.contains(pw), "the password is shown: {all}");
    }
}
