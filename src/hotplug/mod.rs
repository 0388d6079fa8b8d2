//! `pbikiosk hotplug`: keeps the kiosk session on the screen across TV power cycles, HDMI
//! re-plugs and a boot with no screen connected.
//!
//! # What Debian 12's compositor does (cage 0.1.4 on wlroots 0.15.1), read from their sources
//!
//! (cage at its tag v0.1.4, wlroots at its tag 0.15.1: the versions of Debian 12's `cage`
//! 0.1.4-4 and `libwlroots10` 0.15.1-6. Debian's cage adds patches to build against wlroots
//! 0.15, per its changelog (2022); cage stopped exiting there only upstream, in 2023.)
//!
//! - **No screen at start.** cage's `main()` (cage.c) starts the wlroots backend
//!   (`wlr_backend_start`) and spawns the player without looking at outputs; wlroots' DRM
//!   backend (`backend_start` → `scan_drm_connectors` in backend/drm/drm.c) creates an output
//!   only for a connector whose status is connected, so cage runs with no output at all. It
//!   does not exit. Measured with Debian's cage 0.1.4 binary on wlroots' headless backend
//!   (`WLR_HEADLESS_OUTPUTS=0`): cage runs its client; `pbikiosk demo` in it reports `playing`
//!   but its rotation stalls (after 60 s: 1 render, 0 pages shown, 3 switches and no more;
//!   with one output: 5 renders, 4 shown, 11 switches), and nothing restarts it: the page
//!   heartbeat keeps the watchdog fed.
//! - **The last screen goes away.** wlroots' `scan_drm_connectors` calls
//!   `disconnect_drm_connector` → `wlr_output_destroy` for a connector that reports
//!   disconnected; cage's `output_destroy()` (output.c) calls `wl_display_terminate()` when
//!   its output list becomes empty: cage exits (status 0), its child the player with it, and
//!   systemd's `Restart=always` starts the session again 10 s later, with whatever is connected
//!   then, often nothing (a TV in standby that drops its hot-plug line). Only cage 0.2 stopped
//!   exiting there (on the DRM backend).
//! - **A screen comes back.** The kernel sends a `change` uevent on the card (`HOTPLUG=1`);
//!   wlroots' session (`handle_udev_event` and `read_udev_change_event` in
//!   backend/session/session.c; `LEASE=1` events are leases, not screens) turns it into the
//!   device's `change` signal, the DRM backend rescans (`handle_dev_change` in
//!   backend/drm/backend.c → `scan_drm_connectors`) and emits `new_output`, which cage's
//!   `handle_new_output()` (output.c) enables.
//!   So cage itself can pick up a returning screen, but a session that started with no output
//!   (its web view was made for no monitor at all) is reported to stay dark, and on hardware
//!   where the connector comes back without the compositor taking it nothing else repairs it.
//!
//! # The mechanism
//!
//! A udev rule on the card's `change` uevent with `HOTPLUG=1` restarts the one-shot
//! `pbikiosk-hotplug.service` (a restart, so that a burst of uevents from a flapping TV keeps
//! pushing the look back until the line settles), which runs this: wait a few seconds for the
//! compositor to react, read every connector's `status` and `enabled` from `/sys/class/drm`,
//! compare with the previous look (kept in `/run`, one per boot; the unit also runs at boot for
//! a first look), and restart `pbikiosk.service` only when the session cannot be showing the
//! screen ([`decide`]) — at most once every two minutes. With no screen connected nothing
//! happens: a session without output costs little, and the first screen that appears restarts
//! it.

mod decide;
mod sysfs;
mod unit_state;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use decide::{Connectors, Decision, Observation, Policy};

/// Where and how `pbikiosk hotplug` looks and acts.
#[derive(Debug, Clone)]
pub struct HotplugOptions {
    /// The `/sys/class/drm` folder (tests give a fake tree).
    pub sys: PathBuf,
    /// The previous look and the last restart, kept for the boot (`/run`).
    pub state_file: PathBuf,
    /// The `systemctl` to ask (tests give a stub that records its arguments).
    pub systemctl: PathBuf,
    /// The kiosk unit.
    pub unit: String,
    /// How long to let the compositor react to the change before looking.
    pub settle: Duration,
    /// Two restarts are at least this far apart.
    pub min_interval: Duration,
    /// How long a session may take to drive its screens after it started.
    pub startup_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HotplugError {
    #[error("cannot read {}: {source}", path.display())]
    Sysfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} says {value:?}, expected {expected}", path.display())]
    UnexpectedValue {
        path: PathBuf,
        value: String,
        expected: &'static str,
    },
    #[error("cannot write {}: {source}", path.display())]
    StateWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{} {args}` failed: {detail}", program.display())]
    Systemctl {
        program: PathBuf,
        args: String,
        detail: String,
    },
}

impl HotplugError {
    /// What to do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            HotplugError::Sysfs { .. } | HotplugError::UnexpectedValue { .. } => {
                "Check that the kernel's DRM driver is loaded (ls /sys/class/drm); --sys names \
                 another folder."
            }
            HotplugError::StateWrite { .. } => {
                "The unit's RuntimeDirectory= (/run/pbikiosk-hotplug) must be writable; --state \
                 names another file."
            }
            HotplugError::Systemctl { .. } => {
                "It asks systemd (PID 1) as root: run it through the unit (sudo systemctl \
                 restart pbikiosk-hotplug); journalctl -u pbikiosk-hotplug shows each look."
            }
        }
    }
}

/// What this path remembers between two looks (one boot: the file lives in `/run`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Memory {
    connectors: Option<Connectors>,
    /// Monotonic clock, microseconds.
    last_restart_usec: Option<u64>,
}

/// Looks at the connectors, decides, restarts the session if needed; returns what was done,
/// one line per look, for the journal.
pub fn run(opts: &HotplugOptions) -> Result<Vec<String>, HotplugError> {
    let event_at = monotonic_now();
    std::thread::sleep(opts.settle);
    let (mut memory, warning) = load_memory(&opts.state_file);
    let mut said: Vec<String> = warning.into_iter().collect();
    let policy = Policy {
        min_interval: opts.min_interval,
        startup_grace: opts.startup_grace,
    };
    // A second look only after waiting out the interval; then the wait cannot recur.
    for _ in 0..2 {
        let current = sysfs::read_connectors(&opts.sys)?;
        let session = unit_state::parse(&systemctl(
            opts,
            &["show", "-p", unit_state::PROPERTIES, &opts.unit],
        )?);
        let now = monotonic_now();
        let obs = Observation {
            previous: memory.connectors.as_ref(),
            current: &current,
            session,
            event_at,
            last_restart: memory.last_restart_usec.map(Duration::from_micros),
            now,
        };
        match decide::decide(&obs, &policy) {
            Decision::WaitUntil(until, reason) => {
                said.push(Decision::WaitUntil(until, reason).to_string());
                std::thread::sleep(until.saturating_sub(now));
                continue;
            }
            Decision::Restart(reason) => {
                // Kept before asking: if this run is cut short, the interval still holds.
                memory.last_restart_usec = Some(now.as_micros() as u64);
                memory.connectors = Some(current.clone());
                save_memory(&opts.state_file, &memory)?;
                if session == decide::Session::Failed {
                    systemctl(opts, &["reset-failed", &opts.unit])?;
                }
                systemctl(opts, &["--no-block", "restart", &opts.unit])?;
                said.push(format!(
                    "{} ({})",
                    Decision::Restart(reason),
                    describe(&current)
                ));
                return Ok(said);
            }
            leave @ Decision::Leave(_) => said.push(format!("{leave} ({})", describe(&current))),
        }
        memory.connectors = Some(current);
        save_memory(&opts.state_file, &memory)?;
        return Ok(said);
    }
    Ok(said)
}

fn describe(c: &Connectors) -> String {
    if c.is_empty() {
        return "no connectors".into();
    }
    c.iter()
        .map(|(name, s)| {
            let state = match (s.connected, s.enabled) {
                (true, true) => "connected, driven",
                (true, false) => "connected, not driven",
                (false, true) => "disconnected, enabled",
                (false, false) => "disconnected",
            };
            format!("{name} {state}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn systemctl(opts: &HotplugOptions, args: &[&str]) -> Result<String, HotplugError> {
    let failed = |detail: String| HotplugError::Systemctl {
        program: opts.systemctl.clone(),
        args: args.join(" "),
        detail,
    };
    let out = Command::new(&opts.systemctl)
        .args(args)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(failed(format!("{} {first}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The memory, or none (with a warning) when the file is unreadable or damaged: the decision
/// then only acts on screens nothing drives.
fn load_memory(path: &Path) -> (Memory, Option<String>) {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(m) => (m, None),
            Err(e) => (
                Memory::default(),
                Some(format!(
                    "ignoring {}: {e} (it is rewritten now)",
                    path.display()
                )),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Memory::default(), None),
        Err(e) => (
            Memory::default(),
            Some(format!("ignoring {}: {e}", path.display())),
        ),
    }
}

fn save_memory(path: &Path, memory: &Memory) -> Result<(), HotplugError> {
    let err = |source: std::io::Error| HotplugError::StateWrite {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let json = serde_json::to_vec(memory).map_err(|e| err(std::io::Error::other(e)))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, &json).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// CLOCK_MONOTONIC, the clock of systemd's `*TimestampMonotonic` properties.
fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trips_and_damage_is_survivable() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.json");
        let mut c = Connectors::new();
        c.insert(
            "card0-HDMI-A-1".into(),
            decide::ConnectorState {
                connected: true,
                enabled: false,
            },
        );
        let m = Memory {
            connectors: Some(c.clone()),
            last_restart_usec: Some(42),
        };
        save_memory(&path, &m).unwrap();
        let (back, warning) = load_memory(&path);
        assert!(warning.is_none());
        assert_eq!(back.connectors, Some(c));
        assert_eq!(back.last_restart_usec, Some(42));

        std::fs::write(&path, "{not json").unwrap();
        let (back, warning) = load_memory(&path);
        assert!(back.connectors.is_none());
        assert!(warning.unwrap().contains("state.json"));
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(monotonic_now() > a);
        assert!(a > Duration::ZERO);
    }
}
