//! The memory policy: when the web process is replaced by a fresh one to bound the memory of
//! the process tree.
//!
//! WebKit's web process grows slowly with every item switch (a few hundred KiB per hundred
//! switches), which over months is more than a small screen has. The policy watches the tree's
//! PSS (sampled by the driver, fed in with an explicit `now`): its baseline is the highest
//! level seen over the first [`RecycleSettings::baseline_window`] after the first report
//! rendered; once the tree is more than [`RecycleSettings::margin_bytes`] above that, a recycle
//! is due, at most once per [`RecycleSettings::min_interval`]. The player decides *when*
//! (an item switch, no status screen); this only decides *whether*.
//!
//! A recycle frees only the web process. What grows elsewhere (the player, WebKit's network
//! process: about 0.2 MiB each per hundred switches in the soak) has a baseline of its own, and
//! once it is more than the margin above it the policy asks for a restart of the whole session
//! instead, which the service manager turns into a fresh start. Without a service manager the
//! restart would end the player, so it is not asked for then.

use std::time::{Duration, Instant};

use super::{Output, Player};

/// The policy's settings (`[player] memory_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecycleSettings {
    /// How far above the baseline the tree may grow; 0 turns recycling off.
    pub margin_bytes: u64,
    /// How long after the first render the baseline is measured.
    pub baseline_window: Duration,
    /// The least time between two recycles: a tree that is heavy right after a recycle (a
    /// heavier report than during the baseline) is not recycled over and over.
    pub min_interval: Duration,
    /// How often the driver samples the tree's PSS.
    pub sample_every: Duration,
    /// A service manager restarts the player when it exits, so growth outside the web process
    /// may be freed by a restart.
    pub restart_session: bool,
}

pub(crate) const MIB: u64 = 1024 * 1024;

/// The exit status of a planned restart (EX_TEMPFAIL): not a failure, so no repair and no
/// crash is counted, and `Restart=always` starts the session again.
pub(crate) const RESTART_EXIT_CODE: i32 = 75;

impl Default for RecycleSettings {
    fn default() -> Self {
        Self {
            margin_bytes: crate::config::DEFAULT_MEMORY_RECYCLE_MARGIN_MIB * MIB,
            baseline_window: Duration::from_mins(crate::config::DEFAULT_MEMORY_BASELINE_MINUTES),
            min_interval: Duration::from_hours(1),
            sample_every: Duration::from_secs(30),
            restart_session: false,
        }
    }
}

impl RecycleSettings {
    pub fn enabled(&self) -> bool {
        self.margin_bytes > 0
    }
}

/// The policy's state: samples, baseline, recycles.
#[derive(Debug, Default)]
pub(crate) struct RecyclePolicy {
    settings: RecycleSettings,
    first_render: Option<Instant>,
    baseline: Option<u64>,
    /// The latest sample of the tree that is running now (cleared by a recycle: the figure of
    /// the old web process must not trigger another one).
    current: Option<u64>,
    /// The latest sample, for `/status`, whatever process it was taken of.
    last_sample: Option<u64>,
    /// The same two for the tree without its web process.
    outside_baseline: Option<u64>,
    outside_current: Option<u64>,
    /// The highest sample of the running tree since the baseline window (cleared by a
    /// recycle): whether it has grown at all, over PSS's ups and downs.
    peak: Option<u64>,
    last_recycle: Option<Instant>,
    /// Why the last recycle happened.
    pub(super) last_reason: Option<RecycleReason>,
    recycles: u64,
}

impl RecyclePolicy {
    pub(crate) fn new(settings: RecycleSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// A report rendered: the first one starts the baseline window.
    pub(crate) fn rendered(&mut self, now: Instant) {
        self.first_render.get_or_insert(now);
    }

    /// The tree's PSS now, in bytes, and the part of it outside the web process.
    pub(crate) fn sample(&mut self, now: Instant, pss_bytes: u64, outside_web_bytes: u64) {
        self.current = Some(pss_bytes);
        self.last_sample = Some(pss_bytes);
        self.outside_current = Some(outside_web_bytes);
        let Some(first) = self.first_render else {
            // Start-up is no baseline: the first report has not even rendered.
            return;
        };
        // No sample inside the window (a window shorter than the sampling period): the first
        // one after it is the baseline.
        let in_window = now <= first + self.settings.baseline_window;
        if !in_window && self.baseline.is_some() {
            self.peak = Some(self.peak.map_or(pss_bytes, |p| p.max(pss_bytes)));
        }
        for (baseline, value) in [
            (&mut self.baseline, pss_bytes),
            (&mut self.outside_baseline, outside_web_bytes),
        ] {
            if in_window {
                *baseline = Some(baseline.map_or(value, |b| b.max(value)));
            } else if baseline.is_none() {
                *baseline = Some(value);
            }
        }
    }

    /// Has the tree outside its web process grown past its bound, which only a new session
    /// frees? Never without a service manager to start the new one.
    pub(crate) fn restart_due(&self, now: Instant) -> bool {
        if !self.settings.enabled() || !self.settings.restart_session {
            return false;
        }
        let (Some(first), Some(baseline), Some(current)) = (
            self.first_render,
            self.outside_baseline,
            self.outside_current,
        ) else {
            return false;
        };
        now >= first + self.settings.baseline_window
            && current > baseline.saturating_add(self.settings.margin_bytes)
    }

    /// How far the tree outside the web process is above its baseline, for the log.
    pub(crate) fn outside_growth(&self) -> u64 {
        match (self.outside_current, self.outside_baseline) {
            (Some(c), Some(b)) => c.saturating_sub(b),
            _ => 0,
        }
    }

    /// Is the tree over its bound, with the baseline known and the last recycle long enough ago?
    pub(crate) fn due(&self, now: Instant) -> bool {
        if !self.settings.enabled() {
            return false;
        }
        let (Some(first), Some(baseline), Some(current)) =
            (self.first_render, self.baseline, self.current)
        else {
            return false;
        };
        if now < first + self.settings.baseline_window {
            return false;
        }
        if self
            .last_recycle
            .is_some_and(|t| now < t + self.settings.min_interval)
        {
            return false;
        }
        current > baseline.saturating_add(self.settings.margin_bytes)
    }

    /// Going dark for the night: is a fresh web process worth having by morning? Yes if the
    /// tree has been above its baseline at all since the baseline (or the last recycle): it
    /// only grows from there, and a recycle now, behind the black screen, saves one while
    /// people watch. Its highest sample is what counts, not the last, since PSS goes up and
    /// down by a few MiB as reports come and go. Not within
    /// [`RecycleSettings::min_interval`] of another recycle: the tree is fresh already.
    pub(crate) fn worth_at_night(&self, now: Instant) -> bool {
        if !self.settings.enabled() {
            return false;
        }
        let (Some(first), Some(baseline), Some(peak)) =
            (self.first_render, self.baseline, self.peak)
        else {
            return false;
        };
        if now < first + self.settings.baseline_window
            || self
                .last_recycle
                .is_some_and(|t| now < t + self.settings.min_interval)
        {
            return false;
        }
        peak > baseline
    }

    /// The web process was replaced now.
    pub(crate) fn recycled(&mut self, now: Instant) {
        self.recycles += 1;
        self.last_recycle = Some(now);
        self.current = None;
        self.peak = None;
    }

    pub(crate) fn recycles(&self) -> u64 {
        self.recycles
    }

    pub(crate) fn last_recycle(&self) -> Option<Instant> {
        self.last_recycle
    }

    pub(crate) fn baseline(&self) -> Option<u64> {
        self.baseline
    }

    pub(crate) fn last_sample(&self) -> Option<u64> {
        self.last_sample
    }

    pub(crate) fn sample_every(&self) -> Duration {
        self.settings.sample_every
    }
}

impl Player {
    /// At an item switch: replace the web process if the policy says so and nothing else is
    /// going on (no status screen, not offline). The page comes back with its start screen and
    /// prepares `next`, the slide that was due; true when it did.
    pub(super) fn recycle_at_switch(
        &mut self,
        now: Instant,
        next: usize,
        out: &mut Vec<Output>,
    ) -> bool {
        if self.problem_shown.is_some()
            || self.offline_since.is_some()
            || self.blocking_problem().is_some()
        {
            return false;
        }
        if self.recycle.restart_due(now) {
            tracing::info!(
                grown_mib = self.recycle.outside_growth() / MIB,
                "restarting the session to bound memory: the player and WebKit's network process \
                 grew past the margin, which replacing the web process would not free"
            );
            out.push(Output::Exit(RESTART_EXIT_CODE));
            return true;
        }
        if !self.recycle.due(now) {
            return false;
        }
        tracing::info!(
            pss_mib = self.recycle.last_sample().unwrap_or(0) / MIB,
            baseline_mib = self.recycle.baseline().unwrap_or(0) / MIB,
            reason = RecycleReason::Memory.as_str(),
            "replacing the web process to bound memory"
        );
        self.replace_web_process(now, RecycleReason::Memory, out);
        self.slide = next;
        true
    }

    /// The screen just went dark for the night: replace the web process now, behind the black
    /// screen, if it has grown at all, so the day starts on a fresh one and no recycle is
    /// needed while people watch. The fresh page starts black.
    pub(super) fn recycle_for_the_night(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.page.ready {
            return;
        }
        if self.recycle.restart_due(now) {
            tracing::info!(
                grown_mib = self.recycle.outside_growth() / MIB,
                "restarting the session for the night to bound memory: the player and WebKit's \
                 network process grew past the margin, which replacing the web process would not free"
            );
            out.push(Output::Exit(RESTART_EXIT_CODE));
            return;
        }
        if !self.recycle.worth_at_night(now) {
            return;
        }
        tracing::info!(
            pss_mib = self.recycle.last_sample().unwrap_or(0) / MIB,
            baseline_mib = self.recycle.baseline().unwrap_or(0) / MIB,
            reason = RecycleReason::QuietHours.as_str(),
            "replacing the web process behind the black screen for the night"
        );
        self.replace_web_process(now, RecycleReason::QuietHours, out);
    }

    fn replace_web_process(&mut self, now: Instant, reason: RecycleReason, out: &mut Vec<Output>) {
        self.recycle.recycled(now);
        self.recycle.last_reason = Some(reason);
        // Not a repair: no page reload counted, no fruitless reload; a page that does not come
        // back is the watchdog's (see `recycling_since`).
        self.page.ready = false;
        self.page.recycling_since = Some(now);
        self.page.last_heartbeat = Some(now);
        self.visible = None;
        self.pending = None;
        self.problem_shown = None;
        self.slide_until = None;
        out.push(Output::RecyclePage {
            dark: self.fresh_page_dark(),
        });
    }
}

/// Why the web process was replaced: `/status` and the log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecycleReason {
    /// The tree passed its baseline plus the margin (at an item switch).
    Memory,
    /// The screen went dark for the night and the tree had grown.
    QuietHours,
}

impl RecycleReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::QuietHours => "quiet_hours",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(margin_mib: u64) -> (RecyclePolicy, Instant) {
        let p = RecyclePolicy::new(RecycleSettings {
            margin_bytes: margin_mib * MIB,
            baseline_window: Duration::from_mins(60),
            min_interval: Duration::from_mins(60),
            sample_every: Duration::from_secs(30),
            restart_session: false,
        });
        (p, Instant::now())
    }

    fn at(t0: Instant, mins: u64) -> Instant {
        t0 + Duration::from_mins(mins)
    }

    #[test]
    fn baseline_is_the_highest_level_of_the_first_hour_after_the_first_render() {
        let (mut p, t0) = policy(100);
        // Before the first render: start-up, not the baseline.
        p.sample(t0, 900 * MIB, 0);
        assert_eq!(p.baseline(), None);
        assert_eq!(p.last_sample(), Some(900 * MIB));
        p.rendered(at(t0, 1));
        p.rendered(at(t0, 5)); // only the first render counts
        p.sample(at(t0, 2), 300 * MIB, 0);
        p.sample(at(t0, 30), 340 * MIB, 0);
        p.sample(at(t0, 61), 320 * MIB, 0);
        assert_eq!(p.baseline(), Some(340 * MIB));
        // Past the window, growth does not move the baseline.
        p.sample(at(t0, 62), 500 * MIB, 0);
        assert_eq!(p.baseline(), Some(340 * MIB));
    }

    #[test]
    fn due_only_past_baseline_plus_margin_after_the_window() {
        let (mut p, t0) = policy(100);
        p.rendered(t0);
        p.sample(at(t0, 10), 300 * MIB, 0);
        // Far above, but the window is not over: the baseline is not known yet.
        p.sample(at(t0, 20), 450 * MIB, 0);
        assert!(!p.due(at(t0, 20)));
        p.sample(at(t0, 70), 549 * MIB, 0);
        assert!(!p.due(at(t0, 70)), "450 + 100 not exceeded");
        p.sample(at(t0, 71), 551 * MIB, 0);
        assert!(p.due(at(t0, 71)));
    }

    #[test]
    fn at_most_once_per_interval_and_the_old_figure_does_not_count() {
        let (mut p, t0) = policy(100);
        p.rendered(t0);
        p.sample(at(t0, 1), 300 * MIB, 0);
        p.sample(at(t0, 61), 500 * MIB, 0);
        assert!(p.due(at(t0, 61)));
        p.recycled(at(t0, 61));
        assert_eq!(p.recycles(), 1);
        assert_eq!(p.last_recycle(), Some(at(t0, 61)));
        // The old process's sample is gone: nothing is due until a new sample says so.
        assert!(!p.due(at(t0, 200)));
        // Still heavy right after: not again within the interval.
        p.sample(at(t0, 90), 500 * MIB, 0);
        assert!(!p.due(at(t0, 90)));
        assert!(p.due(at(t0, 121)));
        // A fresh tree back near the baseline is not due.
        p.recycled(at(t0, 121));
        p.sample(at(t0, 200), 310 * MIB, 0);
        assert!(!p.due(at(t0, 200)));
        assert_eq!(p.baseline(), Some(300 * MIB));
    }

    #[test]
    fn growth_outside_the_web_process_asks_for_a_restart_and_only_when_supervised() {
        for supervised in [true, false] {
            let (mut p, t0) = policy(100);
            p.settings.restart_session = supervised;
            p.rendered(t0);
            p.sample(at(t0, 1), 300 * MIB, 150 * MIB);
            // Within the baseline hour nothing is due, however high.
            p.sample(at(t0, 30), 300 * MIB, 400 * MIB);
            assert!(!p.restart_due(at(t0, 30)));
            // The baseline outside the web process is the highest of the hour: 400 MiB.
            p.sample(at(t0, 61), 420 * MIB, 500 * MIB);
            assert!(!p.restart_due(at(t0, 61)), "exactly at the margin");
            // The web process grew: a recycle, not a restart.
            p.sample(at(t0, 62), 900 * MIB, 450 * MIB);
            assert!(p.due(at(t0, 62)) && !p.restart_due(at(t0, 62)));
            // Outside the web process past the margin: a restart, if someone starts us again.
            p.sample(at(t0, 63), 520 * MIB, 501 * MIB);
            assert_eq!(p.restart_due(at(t0, 63)), supervised);
            assert_eq!(p.outside_growth(), 101 * MIB);
        }
    }

    #[test]
    fn margin_zero_turns_it_off() {
        let (mut p, t0) = policy(0);
        p.rendered(t0);
        p.sample(at(t0, 1), 300 * MIB, 0);
        p.sample(at(t0, 100), 3000 * MIB, 0);
        assert!(!p.due(at(t0, 100)));
    }

    #[test]
    fn a_window_shorter_than_the_sampling_takes_the_first_sample_after_it() {
        let mut p = RecyclePolicy::new(RecycleSettings {
            margin_bytes: MIB,
            baseline_window: Duration::ZERO,
            min_interval: Duration::ZERO,
            sample_every: Duration::from_secs(1),
            restart_session: false,
        });
        let t0 = Instant::now();
        p.rendered(t0);
        assert!(
            !p.due(t0 + Duration::from_secs(1)),
            "no sample, no baseline"
        );
        p.sample(t0 + Duration::from_secs(1), 200 * MIB, 0);
        assert_eq!(p.baseline(), Some(200 * MIB));
        p.sample(t0 + Duration::from_secs(2), 202 * MIB, 0);
        assert!(p.due(t0 + Duration::from_secs(2)));
    }

    // ----- the player's side: when it recycles, and how the page comes back ---------------

    use super::super::tests::{Rig, has, prepared, shown, three_items, token};
    use super::super::{Input, Settings, State};
    use crate::auth::service::TokenState;
    use crate::bridge::FromPage;
    use crate::problem::{Problem, ProblemId};

    /// Playing the three items (10 s each), baseline 300 MiB taken 1 s after the first render,
    /// margin 10 MiB.
    fn recycling() -> Rig {
        rig(10, false, 0)
    }

    /// The same with `margin_mib`, `restart_session` and the tree outside the web process at
    /// `outside_mib` for its baseline.
    fn rig(margin_mib: u64, restart_session: bool, outside_mib: u64) -> Rig {
        let mut r = Rig::new();
        r.p = Player::new(Settings {
            recycle: RecycleSettings {
                margin_bytes: margin_mib * MIB,
                baseline_window: Duration::from_secs(5),
                min_interval: Duration::from_secs(600),
                sample_every: Duration::from_secs(1),
                restart_session,
            },
            ..Settings::default()
        });
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        r.send(Input::Resolved(Ok(three_items())));
        assert_eq!(shown(&r.rendered("e1")), ["e1"]);
        r.at(1).send(Input::Memory {
            pss_bytes: 300 * MIB,
            outside_web_bytes: outside_mib * MIB,
        });
        r.rendered("e2");
        r
    }

    fn recycled(out: &[Output]) -> bool {
        out.iter().any(|o| matches!(o, Output::RecyclePage { .. }))
    }

    #[test]
    fn recycles_at_the_next_switch_and_the_page_comes_back_with_the_next_slide() {
        let mut r = recycling();
        // Over the bound mid-item: the item stays its full time.
        let out = r.at(8).send(Input::Memory {
            pss_bytes: 311 * MIB,
            outside_web_bytes: 0,
        });
        assert!(!recycled(&out), "{out:?}");
        assert!(!recycled(&r.at(9).tick()));
        // At the switch: recycle instead of switching.
        let out = r.at(10).tick();
        assert!(recycled(&out), "{out:?}");
        assert!(
            !has(&out, |o| matches!(o, Output::ReloadPage { .. })),
            "{out:?}"
        );
        assert!(
            shown(&out).is_empty() && prepared(&out).is_empty(),
            "{out:?}"
        );
        let s = r.p.snapshot();
        assert_eq!(s.memory.web_process_recycles_total, 1);
        assert_eq!(s.page_reloads_total, 0, "a recycle is no repair");
        assert_eq!(s.memory.baseline_pss_mib, Some(300.0));
        assert_eq!(s.memory.tree_pss_mib, Some(311.0));
        // The fresh page: its start screen names what comes next, which is the slide that
        // was due (Sales, page 2), not the one shown before.
        let out = r.at(12).page(FromPage::Ready { version: None });
        assert_eq!(
            prepared(&out),
            [("e3".to_string(), Some("Sales-p1".to_string()))]
        );
        assert!(
            out.contains(&Output::Starting(super::super::Activity::Loading(
                "Sales".into()
            ))),
            "{out:?}"
        );
        assert_eq!(shown(&r.at(14).rendered("e3")), ["e3"]);
        let s = r.p.snapshot();
        assert_eq!(s.state, State::Playing);
        assert_eq!(s.item.unwrap().page.as_deref(), Some("Regions"));
        assert_eq!((s.page_reloads_total, s.problem), (0, None));
        // Still heavy right after: not again within the interval.
        r.at(15).send(Input::Memory {
            pss_bytes: 400 * MIB,
            outside_web_bytes: 0,
        });
        r.rendered("e4");
        assert!(!recycled(&r.at(24).tick()));
        assert_eq!(r.p.snapshot().switches_total, 1);
    }

    #[test]
    fn not_while_offline_and_a_page_that_does_not_come_back_is_repaired() {
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 400 * MIB,
            outside_web_bytes: 0,
        });
        // Offline: the report stays up with its badge; a fresh page could not load anything.
        r.at(9).send(Input::Token(TokenState::Failed {
            problem: Problem::new(ProblemId::Network),
            next_attempt: None,
        }));
        for t in [10, 20, 30] {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            assert!(!recycled(&r.tick()), "offline at {t}");
        }
        // Back online, the overdue switch happens, and with it the recycle.
        let out = r.at(31).send(Input::Token(token(2)));
        assert!(recycled(&out), "{out:?}");
        // The fresh page never says ready: after the heartbeat timeout, a repair as usual.
        assert!(!has(&r.at(60).tick(), |o| matches!(
            o,
            Output::ReloadPage { .. }
        )));
        let out = r.at(61).tick();
        assert!(
            has(&out, |o| matches!(o, Output::ReloadPage { .. })),
            "{out:?}"
        );
        let s = r.p.snapshot();
        assert_eq!(
            (s.page_reloads_total, s.memory.web_process_recycles_total),
            (1, 1)
        );
    }

    #[test]
    fn growth_outside_the_web_process_restarts_the_session_at_a_switch() {
        let mut r = rig(10, true, 120);
        // The whole tree is over its bound too, but the growth is outside the web process:
        // replacing the web process would not free it.
        let out = r.at(8).send(Input::Memory {
            pss_bytes: 312 * MIB,
            outside_web_bytes: 131 * MIB,
        });
        assert!(!has(&out, |o| matches!(o, Output::Exit(_))), "{out:?}");
        let out = r.at(10).tick();
        assert!(out.contains(&Output::Exit(RESTART_EXIT_CODE)), "{out:?}");
        assert!(!recycled(&out), "{out:?}");
        assert_eq!(r.p.snapshot().page_reloads_total, 0);
    }

    #[test]
    fn not_while_a_status_screen_is_up() {
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 400 * MIB,
            outside_web_bytes: 0,
        });
        // A wrong password covers the screen; the rotation has no token to go on with.
        let out = r.at(9).send(Input::Token(TokenState::Failed {
            problem: Problem::new(ProblemId::InvalidCredentials),
            next_attempt: None,
        }));
        assert!(has(&out, |o| matches!(o, Output::ShowProblem { .. })));
        for t in [10, 20, 30] {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            assert!(!recycled(&r.tick()), "status screen at {t}");
        }
        let now = r.now();
        assert!(!r.p.recycle_at_switch(now, 0, &mut Vec::new()));
        assert_eq!(r.p.snapshot().memory.web_process_recycles_total, 0);
    }

    // ----- quiet hours: the recycle behind the black screen --------------------------------

    use crate::bridge::{ScreenLight, ToPage};
    use crate::schedule::Power;

    fn light(out: &[Output]) -> Option<ScreenLight> {
        out.iter().find_map(|o| match o {
            Output::Page(ToPage::ScreenPower { power }) => Some(*power),
            _ => None,
        })
    }

    /// The screen goes dark for the night with the tree a little above its baseline (far
    /// below the margin): the web process is replaced then, after the page went black, and the
    /// fresh page starts black; `/status` names the reason. The fresh page is told to stay
    /// black and loads nothing until the morning.
    #[test]
    fn going_dark_with_a_grown_tree_recycles_behind_the_black_screen() {
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 302 * MIB,
            outside_web_bytes: 0,
        });
        let out = r.at(9).send(Input::ScreenPower(Power::Off));
        let black = out.iter().position(|o| {
            *o == Output::Page(ToPage::ScreenPower {
                power: ScreenLight::Off,
            })
        });
        let recycle = out
            .iter()
            .position(|o| *o == Output::RecyclePage { dark: true });
        assert!(
            matches!((black, recycle), (Some(b), Some(c)) if b < c),
            "black first, then a dark recycle: {out:?}"
        );
        let s = r.p.snapshot();
        assert_eq!(s.memory.web_process_recycles_total, 1);
        assert_eq!(s.memory.last_recycle_reason, Some("quiet_hours"));
        assert_eq!(s.page_reloads_total, 0, "a recycle is no repair");
        // The fresh page: told to be black at once, nothing prepared all night.
        let out = r.at(11).page(FromPage::Ready { version: None });
        assert_eq!(light(&out), Some(ScreenLight::Off), "{out:?}");
        assert!(prepared(&out).is_empty(), "{out:?}");
        for t in (12..3600).step_by(5) {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            let out = r.tick();
            assert!(!recycled(&out) && prepared(&out).is_empty(), "{t}: {out:?}");
        }
        // The morning: prepared behind the black page, then lit, with no recycle due.
        let out = r.at(3600).send(Input::ScreenPower(Power::Waking));
        assert_eq!(prepared(&out).len(), 1, "{out:?}");
        r.rendered(&prepared(&out)[0].0);
        let out = r.at(3720).send(Input::ScreenPower(Power::On));
        assert_eq!(light(&out), Some(ScreenLight::On));
        assert!(!recycled(&out));
        assert_eq!(r.p.snapshot().memory.web_process_recycles_total, 1);
    }

    /// Grown outside the web process past the margin by the evening: the session restarts
    /// as the screen goes dark, after the page went black, rather than at a switch by day.
    #[test]
    fn going_dark_with_growth_outside_the_web_process_restarts_the_session() {
        let mut r = rig(10, true, 120);
        r.at(8).send(Input::Memory {
            pss_bytes: 305 * MIB,
            outside_web_bytes: 131 * MIB,
        });
        let out = r.at(9).send(Input::ScreenPower(Power::Off));
        let black = out.iter().position(|o| {
            *o == Output::Page(ToPage::ScreenPower {
                power: ScreenLight::Off,
            })
        });
        let exit = out
            .iter()
            .position(|o| *o == Output::Exit(RESTART_EXIT_CODE));
        assert!(
            matches!((black, exit), (Some(b), Some(e)) if b < e),
            "black first, then the restart: {out:?}"
        );
        assert!(!recycled(&out), "{out:?}");
    }

    /// The highest sample since the baseline counts: a tree that went above its baseline
    /// and came back down a little by the evening has still grown.
    #[test]
    fn growth_is_the_highest_sample_since_the_baseline() {
        let (mut p, t0) = policy(100);
        p.rendered(t0);
        p.sample(at(t0, 10), 300 * MIB, 0);
        p.sample(at(t0, 70), 300 * MIB, 0);
        assert!(!p.worth_at_night(at(t0, 70)), "level");
        p.sample(at(t0, 80), 304 * MIB, 0);
        p.sample(at(t0, 90), 299 * MIB, 0);
        assert!(p.worth_at_night(at(t0, 90)), "was above");
        p.recycled(at(t0, 90));
        p.sample(at(t0, 200), 300 * MIB, 0);
        assert!(!p.worth_at_night(at(t0, 200)), "fresh since the recycle");
    }

    /// Not grown (at or below its baseline), recycled within the hour, or recycling off: the
    /// night starts without a recycle.
    #[test]
    fn going_dark_without_growth_keeps_the_web_process() {
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 300 * MIB,
            outside_web_bytes: 0,
        });
        let out = r.at(9).send(Input::ScreenPower(Power::Off));
        assert!(!recycled(&out), "{out:?}");
        assert_eq!(light(&out), Some(ScreenLight::Off));

        // Recycled for memory ten minutes ago: fresh enough.
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 400 * MIB,
            outside_web_bytes: 0,
        });
        assert!(recycled(&r.at(10).tick()));
        r.at(12).page(FromPage::Ready { version: None });
        r.at(20).send(Input::Memory {
            pss_bytes: 305 * MIB,
            outside_web_bytes: 0,
        });
        assert!(!recycled(&r.at(600).send(Input::ScreenPower(Power::Off))));

        // Margin 0: recycling is off, at night too, and so is the session restart.
        let mut r = rig(0, true, 0);
        r.at(8).send(Input::Memory {
            pss_bytes: 900 * MIB,
            outside_web_bytes: 900 * MIB,
        });
        let out = r.at(9).send(Input::ScreenPower(Power::Off));
        assert!(!recycled(&out), "{out:?}");
        assert!(!has(&out, |o| matches!(o, Output::Exit(_))), "{out:?}");
    }

    /// Any fresh page out of hours starts black: a crashed web process reloaded at night too.
    /// By day a recycle or reload comes up lit, as before.
    #[test]
    fn fresh_pages_start_black_out_of_hours_only() {
        let mut r = recycling();
        r.at(8).send(Input::Memory {
            pss_bytes: 311 * MIB,
            outside_web_bytes: 0,
        });
        assert!(
            r.at(10)
                .tick()
                .contains(&Output::RecyclePage { dark: false })
        );
        r.at(12).page(FromPage::Ready { version: None });
        let out = r.at(13).send(Input::WebProcessCrashed);
        assert!(out.contains(&Output::ReloadPage { dark: false }), "{out:?}");
        r.at(14).page(FromPage::Ready { version: None });
        r.at(15).send(Input::ScreenPower(Power::Off));
        let out = r.at(16).send(Input::WebProcessCrashed);
        assert!(out.contains(&Output::ReloadPage { dark: true }), "{out:?}");
        // Waking (black, report prepared behind): still black.
        r.at(17).page(FromPage::Ready { version: None });
        r.at(18).send(Input::ScreenPower(Power::Waking));
        let out = r.at(19).send(Input::WebProcessCrashed);
        assert!(out.contains(&Output::ReloadPage { dark: true }), "{out:?}");
    }
}
