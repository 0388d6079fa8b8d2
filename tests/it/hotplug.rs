//! `pbikiosk hotplug` as pbikiosk-hotplug.service runs it, on a fake `/sys/class/drm` tree and
//! with a stub `systemctl` that answers `show` from a file and records what it was asked; and
//! the udev rule that starts it, parsed and matched against the uevents a card sends.
//! (The real DRM hot-plug needs a graphics card and a screen: docs/install-raspberry-pi.md
//! says how to check it on a device.)

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const RULE_FILE: &str = "udev/70-pbikiosk-hotplug.rules";
const UNIT_FILE: &str = "systemd/pbikiosk-hotplug.service";

struct Device {
    root: tempfile::TempDir,
}

impl Device {
    fn new() -> Self {
        let d = Device {
            root: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(d.drm()).unwrap();
        fs::create_dir_all(d.drm().join("card0")).unwrap();
        fs::write(d.drm().join("version"), "drm 1.1.0 20060810\n").unwrap();
        let stub = d.path("systemctl");
        fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"$*\" >>{calls}\nif [ \"$1\" = show ]; then cat {show}; fi\nexit 0\n",
                calls = d.path("calls").display(),
                show = d.path("show").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        d.session("active", "running");
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn drm(&self) -> PathBuf {
        self.path("drm")
    }

    fn connector(&self, name: &str, status: &str, enabled: &str) {
        let dir = self.drm().join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("status"), format!("{status}\n")).unwrap();
        fs::write(dir.join("enabled"), format!("{enabled}\n")).unwrap();
    }

    /// The kiosk unit's state; its main process started 1 µs after boot, long before any
    /// change these tests make.
    fn session(&self, active: &str, sub: &str) {
        fs::write(
            self.path("show"),
            format!("ActiveState={active}\nSubState={sub}\nExecMainStartTimestampMonotonic=1\n"),
        )
        .unwrap();
    }

    fn hotplug(&self, min_interval: u64) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
            .arg("hotplug")
            .arg("--sys")
            .arg(self.drm())
            .arg("--state")
            .arg(self.path("state.json"))
            .arg("--settle")
            .arg("0")
            .arg("--min-interval")
            .arg(min_interval.to_string())
            .arg("--systemctl")
            .arg(self.path("systemctl"))
            .output()
            .unwrap()
    }

    /// What systemctl was asked besides `show`, and forget it.
    fn take_actions(&self) -> Vec<String> {
        let calls = fs::read_to_string(self.path("calls")).unwrap_or_default();
        let _ = fs::remove_file(self.path("calls"));
        calls
            .lines()
            .filter(|l| !l.starts_with("show "))
            .map(str::to_string)
            .collect()
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const RESTART: &str = "--no-block restart pbikiosk.service";

#[test]
fn tv_off_and_on_again_restarts_the_session_once() {
    let d = Device::new();
    // Boot: the TV is on and cage drives it. The first look records it.
    d.connector("card0-HDMI-A-1", "connected", "enabled");
    d.connector("card0-HDMI-A-2", "disconnected", "disabled");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("nothing to do"), "{said}");
    assert!(d.take_actions().is_empty());
    // The look is kept for the next one.
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.path("state.json")).unwrap()).unwrap();
    assert_eq!(state["connectors"]["card0-HDMI-A-1"]["connected"], true);

    // The TV goes to standby and drops its hot-plug line: cage exits, systemd restarts it with
    // no screen. Nothing to do yet.
    d.connector("card0-HDMI-A-1", "disconnected", "disabled");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("no screen is connected"), "{said}");
    assert!(d.take_actions().is_empty());

    // The TV comes back and (say) cage does not take it: a restart, named and explained.
    d.connector("card0-HDMI-A-1", "connected", "disabled");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("restarting the kiosk session"), "{said}");
    assert!(said.contains("card0-HDMI-A-1"), "{said}");
    assert_eq!(d.take_actions(), vec![RESTART.to_string()]);

    // The same uevent again moments later (the TV flaps): no second restart right away; with
    // a short interval for the test it waits it out, then restarts once.
    d.connector("card0-HDMI-A-1", "disconnected", "disabled");
    stdout(&d.hotplug(120));
    d.connector("card0-HDMI-A-1", "connected", "disabled");
    let t = Instant::now();
    let said = stdout(&d.hotplug(3));
    assert!(said.contains("too recent; waiting"), "{said}");
    assert!(said.contains("restarting the kiosk session"), "{said}");
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(d.take_actions(), vec![RESTART.to_string()]);
}

#[test]
fn a_screen_the_session_drives_is_left_alone() {
    let d = Device::new();
    d.connector("card0-HDMI-A-1", "connected", "enabled");
    d.connector("card0-HDMI-A-2", "disconnected", "disabled");
    stdout(&d.hotplug(120));
    // A second screen, taken by the compositor.
    d.connector("card0-HDMI-A-2", "connected", "enabled");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("drives the connected screens"), "{said}");
    assert!(d.take_actions().is_empty());
    // A second screen nothing drives: a restart.
    d.connector("card0-HDMI-A-2", "disconnected", "disabled");
    stdout(&d.hotplug(120));
    d.connector("card0-HDMI-A-2", "connected", "disabled");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("card0-HDMI-A-2 became connected"), "{said}");
    assert_eq!(d.take_actions(), vec![RESTART.to_string()]);
}

#[test]
fn a_stopped_session_stays_stopped_and_a_failed_one_is_reset() {
    let d = Device::new();
    d.connector("card0-HDMI-A-1", "disconnected", "disabled");
    stdout(&d.hotplug(120));
    d.connector("card0-HDMI-A-1", "connected", "disabled");
    d.session("inactive", "dead");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("stopped (left alone)"), "{said}");
    assert!(d.take_actions().is_empty());

    d.session("failed", "failed");
    let said = stdout(&d.hotplug(120));
    assert!(said.contains("gave up"), "{said}");
    assert_eq!(
        d.take_actions(),
        vec![
            "reset-failed pbikiosk.service".to_string(),
            RESTART.to_string()
        ]
    );
}

#[test]
fn a_damaged_sysfs_value_is_named_and_exits_1() {
    let d = Device::new();
    d.connector("card0-HDMI-A-1", "sideways", "enabled");
    let out = d.hotplug(120);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("card0-HDMI-A-1/status"), "{err}");
    assert!(err.contains("fix:"), "{err}");
    assert!(d.take_actions().is_empty());
}

// ---- the udev rule ----

/// One `KEY{attr}OP"value"` of a rule line.
#[derive(Debug)]
struct Term {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

/// Parses a rules file as udev reads it: a rule per line, comma-separated terms, values in
/// double quotes. Unknown keys or operators fail the test.
fn parse_rules(text: &str) -> Vec<Vec<Term>> {
    const MATCH_KEYS: &[&str] = &[
        "ACTION",
        "SUBSYSTEM",
        "KERNEL",
        "ENV",
        "DEVPATH",
        "DRIVER",
        "ATTR",
        "TAG",
    ];
    const ASSIGN_KEYS: &[&str] = &["RUN", "TAG", "ENV"];
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut terms = Vec::new();
        let mut rest = line;
        while !rest.is_empty() {
            let key_end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or_else(|| panic!("line {}: no operator in {rest:?}", n + 1));
            let key = &rest[..key_end];
            rest = &rest[key_end..];
            let mut attr = None;
            if let Some(r) = rest.strip_prefix('{') {
                let close = r.find('}').expect("unclosed {");
                attr = Some(r[..close].to_string());
                rest = &r[close + 1..];
            }
            let op = ["==", "!=", "+=", "-=", ":=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap_or_else(|| panic!("line {}: bad operator after {key}", n + 1));
            rest = rest[op.len()..]
                .strip_prefix('"')
                .expect("value not quoted");
            let close = rest.find('"').expect("unclosed value");
            let value = rest[..close].to_string();
            rest = rest[close + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            let allowed = if op == "==" || op == "!=" {
                MATCH_KEYS
            } else {
                ASSIGN_KEYS
            };
            assert!(
                allowed.contains(&key),
                "line {}: {key} with {op} is not a udev key we expect",
                n + 1
            );
            terms.push(Term {
                key: key.into(),
                attr,
                op: op.into(),
                value,
            });
        }
        rules.push(terms);
    }
    rules
}

/// udev's patterns: `*`, `?`, `[...]` and `|` between alternatives.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    pattern.split('|').any(|p| glob(p.as_bytes(), s.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let close = p.iter().position(|&c| c == b']').expect("unclosed [");
            let set = &p[1..close];
            let Some(&c) = s.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit && glob(&p[close + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

/// The programs the rules run for a uevent.
fn run_for(
    rules: &[Vec<Term>],
    action: &str,
    subsystem: &str,
    kernel: &str,
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut runs = Vec::new();
    for rule in rules {
        let matched = rule
            .iter()
            .filter(|t| t.op == "==" || t.op == "!=")
            .all(|t| {
                let actual = match (t.key.as_str(), &t.attr) {
                    ("ACTION", None) => action.to_string(),
                    ("SUBSYSTEM", None) => subsystem.to_string(),
                    ("KERNEL", None) => kernel.to_string(),
                    ("ENV", Some(var)) => env
                        .iter()
                        .find(|(k, _)| k == var)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default(),
                    other => panic!("the test does not evaluate {other:?}"),
                };
                pattern_matches(&t.value, &actual) == (t.op == "==")
            });
        if matched {
            runs.extend(
                rule.iter()
                    .filter(|t| t.key == "RUN")
                    .map(|t| t.value.clone()),
            );
        }
    }
    runs
}

fn repo(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_udev_rule_restarts_the_unit_on_a_cards_hotplug_uevent_only() {
    let rules = parse_rules(&repo(RULE_FILE));
    assert_eq!(rules.len(), 1, "one rule");
    let hotplug = [("HOTPLUG", "1"), ("CONNECTOR", "33"), ("PROPERTY", "34")];
    assert_eq!(
        run_for(&rules, "change", "drm", "card0", &hotplug),
        vec!["/bin/systemctl --no-block restart pbikiosk-hotplug.service".to_string()]
    );
    // A second card (a Pi 4's HDMI is card1 under vc4, with v3d as card0).
    assert_eq!(
        run_for(&rules, "change", "drm", "card1", &[("HOTPLUG", "1")]).len(),
        1
    );
    // Not: the boot's coldplug ("add"), a lease change, other subsystems, the render node.
    assert!(run_for(&rules, "add", "drm", "card0", &[]).is_empty());
    assert!(run_for(&rules, "change", "drm", "card0", &[("LEASE", "1")]).is_empty());
    assert!(run_for(&rules, "change", "usb", "card0", &hotplug).is_empty());
    assert!(run_for(&rules, "change", "drm", "renderD128", &hotplug).is_empty());
    assert!(run_for(&rules, "change", "sound", "card0", &hotplug).is_empty());

    // What it runs exists: the unit, and the command line the unit runs.
    let unit = repo(UNIT_FILE);
    assert!(unit.contains("\nType=oneshot\n"), "{unit}");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut args = exec.split_whitespace();
    assert_eq!(args.next(), Some("/usr/bin/pbikiosk"));
    let out = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the package installs both.
    let cargo = repo("Cargo.toml");
    assert!(
        cargo.contains(&format!(
            "[\"{RULE_FILE}\", \"lib/udev/rules.d/\", \"644\"]"
        )),
        "the .deb lacks the rule"
    );
    assert!(
        cargo.contains(&format!(
            "[\"{UNIT_FILE}\", \"lib/systemd/system/\", \"644\"]"
        )),
        "the .deb lacks the unit"
    );
}

#[test]
fn the_rule_parser_and_patterns_are_sound() {
    // So that the rule test above cannot pass on a parser that matches everything.
    assert!(pattern_matches("card[0-9]*", "card0"));
    assert!(pattern_matches("card[0-9]*", "card12"));
    assert!(!pattern_matches("card[0-9]*", "cardX"));
    assert!(!pattern_matches("card[0-9]*", "renderD128"));
    assert!(pattern_matches("a|b", "b"));
    assert!(!pattern_matches("a?", "a"));
    let rules = parse_rules("ACTION==\"add\", ENV{X}!=\"1\", RUN+=\"/bin/x\"\n");
    assert_eq!(run_for(&rules, "add", "drm", "card0", &[]), vec!["/bin/x"]);
    assert!(run_for(&rules, "add", "drm", "card0", &[("X", "1")]).is_empty());
    assert!(run_for(&rules, "change", "drm", "card0", &[]).is_empty());
    let bad = std::panic::catch_unwind(|| parse_rules("ACTOIN==\"add\"\n"));
    assert!(bad.is_err(), "a misspelt key must fail");
}
