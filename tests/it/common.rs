//! The end-to-end harness shared by the `e2e` and `faults` modules: Xvfb, the real binary
//! (`pbikiosk demo` / `run`), its `/status`, the simulator's `/_sim/stats` and `/_sim/control`.
//! Scenarios run one at a time (see [`lock`]): two WebKit instances at once on a 2-core machine
//! would make the timings meaningless.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Self {
        Self::start_sized(1280, 720)
    }

    /// An X server whose screen is `width`x`height` (a portrait screen: 1080x1920).
    pub fn start_sized(width: u32, height: u32) -> Self {
        let screen = format!("{width}x{height}x24");
        for n in 90..140 {
            if display_in_use(n) {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    &format!(":{n}"),
                    "-screen",
                    "0",
                    &screen,
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb is needed for the end-to-end tests (scripts/test.sh installs it)");
            let sock = format!("/tmp/.X11-unix/X{n}");
            let t = Instant::now();
            while !Path::new(&sock).exists() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(Path::new(&sock).exists(), "Xvfb :{n} did not start");
            return Self {
                child,
                display: format!(":{n}"),
            };
        }
        panic!("no free X display");
    }

    /// Saves the screen as `name` and fails on a (nearly) uniform image. The page reports
    /// `shown` from inside the frame that swaps the report in; on a busy machine the compositor
    /// can still be behind by a moment, so a blank capture is retried for a few seconds — a
    /// screen that stays blank still fails.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = out_dir().join(name);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ok = Command::new("import")
                .args(["-display", &self.display, "-window", "root"])
                .arg(&path)
                .status()
                .expect("ImageMagick's import is needed (scripts/test.sh installs it)");
            assert!(ok.success());
            let len = std::fs::metadata(&path).unwrap().len();
            if len > 10_000 {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "blank screenshot {} ({len} bytes) for 5 s",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Saves the screen as `name` as it is, uniform or not (a screen that is meant to be black).
    pub fn screenshot_any(&self, name: &str) -> PathBuf {
        let path = out_dir().join(name);
        let ok = Command::new("import")
            .args(["-display", &self.display, "-window", "root"])
            .arg(&path)
            .status()
            .expect("ImageMagick's import is needed (scripts/test.sh installs it)");
        assert!(ok.success());
        path
    }
}

/// A display is taken while the X server named in its lock file is alive. A lock left by a
/// server that was killed (a test run cut short) is stale: Xvfb removes it itself on start.
fn display_in_use(n: u32) -> bool {
    let Ok(lock) = std::fs::read_to_string(format!("/tmp/.X{n}-lock")) else {
        return Path::new(&format!("/tmp/.X11-unix/X{n}")).exists();
    };
    match lock.trim().parse::<u32>() {
        Ok(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => true,
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first: Xvfb then removes its lock file and socket, so runs do not use up
        // the display numbers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Player {
    pub child: Child,
    pub status: SocketAddr,
    pub sim: SocketAddr,
    pub http: reqwest::Client,
    pub started: Instant,
}

impl Player {
    pub fn demo(x: &Xvfb, name: &str, args: &[&str]) -> Self {
        Self::demo_env(x, name, args, &[])
    }

    /// `pbikiosk demo` with extra environment variables (e.g. libfaketime's).
    pub fn demo_env(x: &Xvfb, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::demo_window(x, name, args, env, "1280x720")
    }

    /// `pbikiosk demo` in a `window`-sized window ("1080x1920": a portrait screen).
    pub fn demo_window(
        x: &Xvfb,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        window: &str,
    ) -> Self {
        let sim: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let sim_arg = sim.to_string();
        let mut all = vec!["demo", "--sim-listen", &sim_arg];
        all.extend_from_slice(args);
        Self::launch(x, name, &all, env, sim, window)
    }

    /// `pbikiosk run --config <cfg>` (no simulator of its own: `sim` points nowhere).
    pub fn run_config(x: &Xvfb, name: &str, cfg: &std::path::Path) -> Self {
        Self::run_config_env(x, name, cfg, &[])
    }

    /// `pbikiosk run --config <cfg>` with extra environment variables (e.g. `https_proxy`
    /// towards a test's own front door).
    pub fn run_config_env(
        x: &Xvfb,
        name: &str,
        cfg: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let cfg = cfg.to_str().expect("a UTF-8 temp path");
        Self::launch(
            x,
            name,
            &["run", "--config", cfg],
            env,
            "127.0.0.1:9".parse().unwrap(),
            "1280x720",
        )
    }

    /// `pbikiosk run --config <cfg>` in a `window`-sized window ("1920x1080").
    pub fn run_config_window(
        x: &Xvfb,
        name: &str,
        cfg: &std::path::Path,
        env: &[(&str, &str)],
        window: &str,
    ) -> Self {
        let cfg = cfg.to_str().expect("a UTF-8 temp path");
        Self::launch(
            x,
            name,
            &["run", "--config", cfg],
            env,
            "127.0.0.1:9".parse().unwrap(),
            window,
        )
    }

    /// Start the player in a `window`-sized window on `x`, its status endpoint on a free port
    /// and its output in `target/e2e/<name>.log`.
    fn launch(
        x: &Xvfb,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        sim: SocketAddr,
        window: &str,
    ) -> Self {
        // A port is only reserved while bound: free_port() can hand out the simulator's port
        // again, and then one of the two servers cannot listen.
        let status_port = std::iter::repeat_with(free_port)
            .find(|p| *p != sim.port())
            .unwrap();
        let status: SocketAddr = format!("127.0.0.1:{status_port}").parse().unwrap();
        let log = std::fs::File::create(out_dir().join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
            .args(args)
            .args(["--status-listen", &status.to_string()])
            .args(["--window", window])
            .env("DISPLAY", &x.display)
            .env("RUST_LOG", "info,pbikiosk=debug")
            .env_remove("WAYLAND_DISPLAY")
            // The phone setup's certificate and saved file: never the machine's own folder.
            .env("STATE_DIRECTORY", out_dir().join(format!("{name}.state")))
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            status,
            sim,
            http: reqwest::Client::new(),
            started: Instant::now(),
        }
    }

    pub async fn status(&self) -> Option<Value> {
        let r = self
            .http
            .get(format!("http://{}/status", self.status))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn sim_stats(&self) -> Value {
        self.http
            .get(format!("http://{}/_sim/stats", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn control(&self, body: Value) {
        let r = self
            .http
            .post(format!("http://{}/_sim/control", self.sim))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "control {body}: {}", r.status());
    }

    /// Poll `/status` until `pred` holds; the last status on success.
    pub async fn wait_for(
        &mut self,
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Some(s) = self.status().await {
                if pred(&s) {
                    return s;
                }
                last = s;
            }
            if let Ok(Some(code)) = self.child.try_wait() {
                panic!("player exited ({code}) while waiting for {what}; last status {last}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        panic!("timed out after {secs}s waiting for {what}; last status {last}");
    }

    pub fn web_processes(&self) -> Vec<u32> {
        // WebKit's web process is a descendant of the player (maybe through a sandbox helper).
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim().starts_with("WebKitWebProces") && descends_from(pid, self.child.id()) {
                found.push(pid);
            }
        }
        found
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process below `ancestor` (children, grandchildren...).
pub fn descendants(ancestor: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| pid != ancestor && descends_from(pid, ancestor))
        .collect()
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 4 is the parent pid; the command (field 2) may contain spaces, so split after ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
}

pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..16 {
        if pid == ancestor {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 4 is the parent pid; the command (field 2) may contain spaces, so split after ')'.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            return false;
        };
        if ppid <= 1 {
            return false;
        }
        pid = ppid;
    }
    false
}

pub fn num(s: &Value, key: &str) -> u64 {
    s[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {s}"))
}

pub fn showing(s: &Value) -> Option<(String, String)> {
    let item = &s["item"];
    Some((
        item["name"].as_str()?.to_owned(),
        item["page_reported"].as_str()?.to_owned(),
    ))
}

pub async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// The mean brightness (0 dark … 1 light) of a screenshot.
pub fn brightness(path: &std::path::Path) -> f64 {
    let out = Command::new("convert")
        .arg(path)
        .args(["-colorspace", "Gray", "-format", "%[fx:mean]", "info:"])
        .output()
        .expect("ImageMagick's convert");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A simulator of the built-in scenario on a free loopback port, and the config its demo
/// account signs in with (secrets inline).
pub async fn builtin_sim() -> (pbikiosk::sim::SimHandle, String) {
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
    (sim, snippet)
}
