//! The Prometheus text exposition of the status (`/metrics` and the node_exporter textfile).
//!
//! Prometheus conventions, as `promtool check metrics` lints them: base units (seconds,
//! bytes) in the name, counters end in `_total`, a HELP and TYPE line for every family. What a
//! fleet alerts on is a label or a gauge here: the state (one-hot), the current problem id,
//! the age of the last render, the token's time left. Never a token or a secret: the labels
//! are versions, state names, problem ids and drop reasons, all from fixed vocabularies.

use std::fmt::Write as _;

use crate::health::Status;
use crate::player::State;

/// The exposition format's content type.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One exposition being written: a family header, then its samples.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
        self
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Into<f64>) {
        self.family(name, kind, help).sample(name, &[], value);
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts as f64 sample values: exact up to 2^53, far beyond any counter here.
fn n(v: u64) -> f64 {
    v as f64
}

/// The whole exposition of `s`.
pub(crate) fn render(s: &Status) -> String {
    let p = &s.player;
    let mut e = Exposition::default();
    e.family(
        "pbikiosk_build_info",
        Kind::Gauge,
        "The running version (always 1).",
    )
    .sample("pbikiosk_build_info", &[("version", s.version)], 1.0);
    e.family(
        "pbikiosk_state",
        Kind::Gauge,
        "The player's state: 1 for the current one, 0 for the others.",
    );
    for st in State::ALL {
        let on = if st == p.state { 1.0 } else { 0.0 };
        e.sample("pbikiosk_state", &[("state", st.as_str())], on);
    }
    e.family(
        "pbikiosk_problem",
        Kind::Gauge,
        "The problem the screen shows (README, Problems), by id; no sample while there is none.",
    );
    if let Some(id) = p.problem {
        e.sample("pbikiosk_problem", &[("id", id.as_str())], 1.0);
    }
    e.single(
        "pbikiosk_offline",
        Kind::Gauge,
        "1 while the network is down and the screen keeps showing the last report.",
        if p.offline { 1.0 } else { 0.0 },
    );
    e.single(
        "pbikiosk_uptime_seconds",
        Kind::Gauge,
        "Seconds since the player started.",
        n(s.uptime_seconds),
    );
    if let Some(ms) = s.first_render_ms {
        e.single(
            "pbikiosk_first_render_seconds",
            Kind::Gauge,
            "Seconds from process start to the first report on screen.",
            ms as f64 / 1000.0,
        );
    }
    if let Some(age) = s.last_render_age_seconds {
        e.single(
            "pbikiosk_last_render_age_seconds",
            Kind::Gauge,
            "Seconds since an item last finished rendering (with one item and no refresh, this grows while it plays).",
            n(age),
        );
    }
    if let Some(left) = s.token_expires_in_seconds {
        e.single(
            "pbikiosk_token_expires_in_seconds",
            Kind::Gauge,
            "Seconds the page's access or embed token stays usable before it must be renewed.",
            n(left),
        );
    }
    let counters = [
        (
            "pbikiosk_rendered_total",
            "Embeds that finished rendering.",
            p.rendered_total,
        ),
        (
            "pbikiosk_shown_total",
            "Items the page put on screen (confirmed by the page).",
            p.shown_total,
        ),
        (
            "pbikiosk_switches_total",
            "Playlist steps shown.",
            p.switches_total,
        ),
        (
            "pbikiosk_token_refreshes_total",
            "Access tokens handed to the page after the first.",
            p.token_refreshes_total,
        ),
        (
            "pbikiosk_page_reloads_total",
            "Reloads of the whole page (hung page, crashed web process).",
            p.page_reloads_total,
        ),
        (
            "pbikiosk_web_process_recycles_total",
            "Web processes replaced by a fresh one to bound memory (not counted as page reloads).",
            p.memory.web_process_recycles_total,
        ),
    ];
    for (name, help, v) in counters {
        e.single(name, Kind::Counter, help, n(v));
    }
    e.family(
        "pbikiosk_page_messages_dropped_total",
        Kind::Counter,
        "Page messages dropped: not from the player page, too large, or over the rate.",
    );
    for (reason, v) in s.page_messages_dropped.by_reason() {
        e.sample(
            "pbikiosk_page_messages_dropped_total",
            &[("reason", reason)],
            n(v),
        );
    }
    if let Some(b) = p.memory.tree_pss_bytes {
        e.single(
            "pbikiosk_tree_pss_bytes",
            Kind::Gauge,
            "PSS of the process tree (player and web processes).",
            n(b),
        );
    }
    if let Some(b) = p.memory.baseline_pss_bytes {
        e.single(
            "pbikiosk_tree_pss_baseline_bytes",
            Kind::Gauge,
            "The tree's PSS baseline, taken after the first render.",
            n(b),
        );
    }
    if let Some(gap) = p.last_switch_gap_ms {
        e.single(
            "pbikiosk_last_switch_gap_seconds",
            Kind::Gauge,
            "Time between the old item's last frame and the new one's first at the last switch.",
            gap / 1000.0,
        );
    }
    e.family(
        "pbikiosk_display_on",
        Kind::Gauge,
        "Whether the screen is lit (1) or off by its [display] on hours or an override (0), and by what means.",
    )
    .sample(
        "pbikiosk_display_on",
        &[("via", p.display.via.unwrap_or("none"))],
        u8::from(p.display.power == "on"),
    );
    if let Some(f) = &p.fleet {
        fleet(&mut e, f);
    }
    e.out
}

/// The fleet file's figures (only when the config has a `[fleet]`).
fn fleet(e: &mut Exposition, f: &crate::fleet::FleetStatus) {
    if let Some(age) = f.age_seconds {
        e.single(
            "pbikiosk_fleet_config_age_seconds",
            Kind::Gauge,
            "Seconds since the fleet server last gave or confirmed the fleet file in use.",
            n(age),
        );
    }
    e.single(
        "pbikiosk_fleet_fetch_errors_total",
        Kind::Counter,
        "Fleet file fetches that gave no usable file (unreachable, error status, refused).",
        n(f.fetch_errors_total),
    );
    e.single(
        "pbikiosk_fleet_not_modified_total",
        Kind::Counter,
        "Fleet file fetches answered 304 Not Modified.",
        n(f.not_modified_total),
    );
    e.single(
        "pbikiosk_fleet_config_ok",
        Kind::Gauge,
        "Whether the last fleet fetch gave a usable file (1) or not (0).",
        u8::from(f.problem.is_none()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::player::{Player, Settings};
    use crate::problem::ProblemId;

    pub(crate) fn status() -> Status {
        Status::of(
            Player::new(Settings::default()).snapshot(),
            1,
            None,
            Default::default(),
            std::time::Instant::now(),
        )
    }

    #[test]
    fn fleet_figures_in_status_and_metrics() {
        // No [fleet]: neither a `fleet` object nor fleet metrics.
        let none = status();
        assert!(!render(&none).contains("fleet"));
        assert!(serde_json::to_value(&none).unwrap().get("fleet").is_none());
        let mut s = status();
        s.player.fleet = Some(crate::fleet::FleetStatus {
            url: "https://cfg.example/screens/lobby-1.toml".into(),
            age_seconds: Some(42),
            last_success: Some("2026-12-02T05:00:00Z".into()),
            problem: Some(ProblemId::FleetUnreachable),
            problem_title: Some("The fleet configuration cannot be fetched".into()),
            fetch_errors_total: 3,
            not_modified_total: 7,
            ..Default::default()
        });
        let m = render(&s);
        assert!(
            m.contains("\npbikiosk_fleet_config_age_seconds 42\n"),
            "{m}"
        );
        assert!(m.contains("\npbikiosk_fleet_fetch_errors_total 3\n"), "{m}");
        assert!(m.contains("\npbikiosk_fleet_not_modified_total 7\n"), "{m}");
        assert!(m.contains("\npbikiosk_fleet_config_ok 0\n"), "{m}");
        assert!(
            m.contains("# TYPE pbikiosk_fleet_fetch_errors_total counter"),
            "{m}"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["fleet"]["problem"], "fleet_unreachable");
        assert_eq!(v["fleet"]["age_seconds"], 42);
        assert_eq!(
            v["fleet"]["url"],
            "https://cfg.example/screens/lobby-1.toml"
        );
        assert_eq!(v["fleet"]["fetch_errors_total"], 3);
    }

    #[test]
    fn display_power_in_metrics() {
        let mut s = status();
        assert!(render(&s).contains("\npbikiosk_display_on{via=\"none\"} 1\n"));
        s.player.display = crate::player::DisplayStatus {
            power: "off",
            via: Some("black"),
            detail: None,
        };
        assert!(render(&s).contains("\npbikiosk_display_on{via=\"black\"} 0\n"));
        s.player.display = crate::player::DisplayStatus {
            power: "off",
            via: Some("cec"),
            detail: Some("off: HDMI-CEC /dev/cec0: the TV acknowledged <Standby>".into()),
        };
        let text = render(&s);
        assert!(
            text.contains("\npbikiosk_display_on{via=\"cec\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("Standby"),
            "the detail is for /status, not a label"
        );
    }

    #[test]
    fn memory_figures_in_metrics() {
        let mut s = status();
        s.player.memory.tree_pss_bytes = Some(300 << 20);
        s.player.memory.baseline_pss_bytes = Some(250 << 20);
        s.player.memory.web_process_recycles_total = 2;
        let m = render(&s);
        assert!(m.contains("\npbikiosk_tree_pss_bytes 314572800\n"), "{m}");
        assert!(
            m.contains("\npbikiosk_tree_pss_baseline_bytes 262144000\n"),
            "{m}"
        );
        assert!(
            m.contains("\npbikiosk_web_process_recycles_total 2\n"),
            "{m}"
        );
        assert!(m.contains("# TYPE pbikiosk_tree_pss_bytes gauge"), "{m}");
    }

    #[test]
    fn state_is_one_hot_and_the_problem_a_label() {
        let mut s = status();
        s.player.state = State::Problem;
        s.player.problem = Some(ProblemId::InvalidCredentials);
        let m = render(&s);
        assert!(m.contains("\npbikiosk_state{state=\"problem\"} 1\n"), "{m}");
        assert!(m.contains("\npbikiosk_state{state=\"playing\"} 0\n"), "{m}");
        let on = m
            .lines()
            .filter(|l| l.starts_with("pbikiosk_state{") && l.ends_with(" 1"))
            .count();
        assert_eq!(on, 1, "{m}");
        assert!(
            m.contains("\npbikiosk_problem{id=\"invalid_credentials\"} 1\n"),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "\npbikiosk_build_info{{version=\"{}\"}} 1\n",
                crate::VERSION
            )),
            "{m}"
        );
        // No problem: the family is there, without a sample.
        s.player.problem = None;
        let m = render(&s);
        assert!(m.contains("# TYPE pbikiosk_problem gauge"), "{m}");
        assert!(!m.contains("pbikiosk_problem{"), "{m}");
    }

    #[test]
    fn units_are_seconds() {
        let mut s = status();
        s.player.last_switch_gap_ms = Some(16.5);
        s.first_render_ms = Some(2500);
        s.last_render_age_seconds = Some(12);
        s.token_expires_in_seconds = Some(3000);
        let m = render(&s);
        assert!(
            m.contains("\npbikiosk_last_switch_gap_seconds 0.0165\n"),
            "{m}"
        );
        assert!(m.contains("\npbikiosk_first_render_seconds 2.5\n"), "{m}");
        assert!(m.contains("\npbikiosk_last_render_age_seconds 12\n"), "{m}");
        assert!(
            m.contains("\npbikiosk_token_expires_in_seconds 3000\n"),
            "{m}"
        );
        assert!(!m.contains("_ms"), "{m}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// Every family has HELP and TYPE, and every sample belongs to the family above it
    /// (promtool checks the rest where it is installed: `tests/it/metrics.rs`).
    #[test]
    fn every_sample_has_its_family() {
        let mut s = status();
        s.player.memory.tree_pss_bytes = Some(1);
        s.player.last_switch_gap_ms = Some(1.0);
        s.player.problem = Some(ProblemId::Network);
        let m = render(&s);
        let mut family = None;
        let mut helped = None;
        for l in m.lines() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                helped = rest.split(' ').next();
            } else if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next();
                assert_eq!(name, helped, "{l}");
                family = name;
            } else {
                let name = l.split(['{', ' ']).next();
                assert_eq!(name, family, "{l}");
            }
        }
    }
}
