//! When to switch the screen, and a thread that does it. The run loop says what it wants every
//! few seconds; the screen is switched only when that changes, and a switch a device did not
//! take is tried again after minutes, longer each time, never in a loop: a TV with HDMI-CEC off
//! in its menu waits for a person, and the CEC bus is shared with every other device on it.
//!
//! The switching blocks (a CEC transmit waits for the TV's acknowledgement, a claim for the
//! bus), so it runs on its own thread, off the player's loop.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Hardware, Light, Outcome, PowerVia, Settings, Via};

/// Waits before another try of a switch a device did not take.
const RETRY_AFTER: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(60 * 60),
];

/// The last switch: what was asked and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) light: Light,
    pub(crate) outcome: Outcome,
}

/// The pure decision: what to switch now, given what was wanted and done.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    wanted: Option<(Light, Settings)>,
    done: Option<(Light, Settings)>,
    /// The means the screen was last switched off with, until it is switched on again: a
    /// screen put in standby by CEC is woken by CEC even after `power_via` became "black".
    off_by: Option<Settings>,
    failures: usize,
    retry_at: Option<Instant>,
}

impl Plan {
    pub(crate) fn want(&mut self, light: Light, settings: Settings) {
        if self.wanted.is_none() && light == Light::On {
            // The screen is on when the kiosk starts (it shows the boot): waking a TV and taking
            // its input at every restart would be a surprise to anyone using another input.
            self.done = Some((light, settings.clone()));
        }
        self.wanted = Some((light, settings));
    }

    /// What to switch now, if anything. A retry that has nothing left to do is dropped, so the
    /// thread never wakes for it again.
    pub(crate) fn due(&mut self, now: Instant) -> Option<(Light, Settings)> {
        let wanted = self.wanted.clone()?;
        let due = self.decide(wanted, now);
        if due.is_none() && self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            self.failures = 0;
        }
        due
    }

    fn decide(&self, wanted: (Light, Settings), now: Instant) -> Option<(Light, Settings)> {
        if wanted.1.via == PowerVia::Black {
            return match (wanted.0, &self.off_by) {
                (Light::On, Some(by)) => Some((Light::On, by.clone())),
                _ => None,
            };
        }
        if self.done.as_ref() != Some(&wanted) {
            return Some(wanted);
        }
        self.retry_at.filter(|at| now >= *at).map(|_| wanted)
    }

    pub(crate) fn done(
        &mut self,
        light: Light,
        settings: Settings,
        outcome: &Outcome,
        now: Instant,
    ) {
        let again = self.done.as_ref() == Some(&(light, settings.clone()));
        self.off_by = (light == Light::Off).then(|| settings.clone());
        self.done = Some((light, settings));
        if outcome.failed {
            // A new state starts the waits over; the same one waits longer each time.
            self.failures = if again { self.failures + 1 } else { 1 };
            let wait = RETRY_AFTER[(self.failures - 1).min(RETRY_AFTER.len() - 1)];
            self.retry_at = Some(now + wait);
        } else {
            self.failures = 0;
            self.retry_at = None;
        }
    }

    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

/// The handle the run loop holds; the thread ends when it is dropped.
pub(crate) struct ScreenSwitch {
    tx: mpsc::Sender<(Light, Settings)>,
    last: Arc<Mutex<Option<Applied>>>,
}

impl ScreenSwitch {
    pub(crate) fn start(hw: Box<dyn Hardware + Send>) -> Self {
        let (tx, rx) = mpsc::channel();
        let last = Arc::new(Mutex::new(None));
        let shared = last.clone();
        let spawned = std::thread::Builder::new()
            .name("screen-power".into())
            .spawn(move || run(rx, hw.as_ref(), &shared));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "screen power: no thread; the screen is blacked out only");
        }
        Self { tx, last }
    }

    /// What the screen should be; cheap, called every few seconds.
    pub(crate) fn want(&self, light: Light, settings: &Settings) {
        let _ = self.tx.send((light, settings.clone()));
    }

    pub(crate) fn last(&self) -> Option<Applied> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

fn run(
    rx: mpsc::Receiver<(Light, Settings)>,
    hw: &(dyn Hardware + Send),
    last: &Mutex<Option<Applied>>,
) {
    let mut plan = Plan::default();
    loop {
        let got = match plan.retry_at() {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok((light, settings)) => plan.want(light, settings),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Only the newest wish counts.
        while let Ok((light, settings)) = rx.try_recv() {
            plan.want(light, settings);
        }
        let Some((light, settings)) = plan.due(Instant::now()) else {
            continue;
        };
        let outcome = super::switch(light, &settings, hw);
        log(light, &outcome);
        plan.done(light, settings, &outcome, Instant::now());
        if let Ok(mut l) = last.lock() {
            *l = Some(Applied { light, outcome });
        }
    }
}

fn log(light: Light, outcome: &Outcome) {
    let light = light.as_str();
    let via = outcome.via.as_str();
    let detail = outcome.detail.as_str();
    match (outcome.via, outcome.failed) {
        (Via::Black, true) => tracing::warn!(light, via, detail, "screen power"),
        _ => tracing::info!(light, via, detail, "screen power"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failed: bool) -> Outcome {
        Outcome {
            via: if failed { Via::Black } else { Via::Cec },
            detail: String::new(),
            failed,
        }
    }

    fn auto() -> Settings {
        Settings::default()
    }

    #[test]
    fn on_at_start_is_left_alone_and_off_is_switched_once() {
        let t = Instant::now();
        let mut p = Plan::default();
        p.want(Light::On, auto());
        assert_eq!(p.due(t), None, "the screen is on at start");
        p.want(Light::Off, auto());
        assert_eq!(p.due(t), Some((Light::Off, auto())));
        p.done(Light::Off, auto(), &outcome(false), t);
        for s in 1..100 {
            p.want(Light::Off, auto());
            assert_eq!(p.due(t + Duration::from_secs(5 * s)), None);
        }
        p.want(Light::On, auto());
        assert_eq!(p.due(t), Some((Light::On, auto())));
    }

    #[test]
    fn off_at_start_is_switched() {
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        assert!(p.due(Instant::now()).is_some());
    }

    #[test]
    fn a_failed_switch_waits_longer_each_time_and_never_loops() {
        let t0 = Instant::now();
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        let mut t = t0;
        let mut tries = Vec::new();
        // A day of a TV that never answers, asked every 5 s.
        while t < t0 + Duration::from_secs(24 * 3600) {
            p.want(Light::Off, auto());
            if let Some((l, s)) = p.due(t) {
                tries.push(t - t0);
                p.done(l, s, &outcome(true), t);
            }
            t += Duration::from_secs(5);
        }
        assert_eq!(tries[..5].len(), 5);
        let gaps: Vec<u64> = tries.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(&gaps[..4], &[60, 300, 900, 3600]);
        assert!(gaps[4..].iter().all(|g| *g == 3600), "{gaps:?}");
        assert_eq!(tries.len(), 27, "{tries:?}");
    }

    #[test]
    fn a_new_state_is_tried_at_once_and_success_ends_the_retries() {
        let t = Instant::now();
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        p.done(Light::Off, auto(), &outcome(true), t);
        p.want(Light::On, auto());
        assert_eq!(
            p.due(t),
            Some((Light::On, auto())),
            "a boundary is not delayed"
        );
        p.done(Light::On, auto(), &outcome(false), t);
        assert_eq!(p.retry_at(), None);
        assert_eq!(p.due(t + Duration::from_secs(7200)), None);
    }

    #[test]
    fn changed_settings_switch_again_and_black_never_touches_a_device() {
        let t = Instant::now();
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        p.done(Light::Off, auto(), &outcome(false), t);
        let cec1 = Settings {
            via: PowerVia::Cec,
            cec_device: Some("/dev/cec1".into()),
        };
        p.want(Light::Off, cec1.clone());
        assert_eq!(p.due(t), Some((Light::Off, cec1)));
        let black = Settings {
            via: PowerVia::Black,
            cec_device: None,
        };
        let mut p = Plan::default();
        p.want(Light::Off, black);
        assert_eq!(p.due(t), None);
    }

    #[test]
    fn a_screen_put_in_standby_is_woken_by_the_same_means_after_power_via_became_black() {
        let t = Instant::now();
        let black = Settings {
            via: PowerVia::Black,
            cec_device: None,
        };
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        p.done(Light::Off, auto(), &outcome(false), t);
        // The administrator says the black page is enough, while the TV is in standby.
        p.want(Light::Off, black.clone());
        assert_eq!(p.due(t), None);
        p.want(Light::On, black.clone());
        assert_eq!(p.due(t), Some((Light::On, auto())), "woken once");
        p.done(Light::On, auto(), &outcome(false), t);
        p.want(Light::On, black.clone());
        assert_eq!(p.due(t), None);
        p.want(Light::Off, black);
        assert_eq!(p.due(t), None, "and left alone from then on");
    }

    #[test]
    fn a_retry_with_nothing_left_to_do_is_dropped() {
        let t = Instant::now();
        let mut p = Plan::default();
        p.want(Light::Off, auto());
        p.done(Light::Off, auto(), &outcome(true), t);
        assert!(p.retry_at().is_some());
        p.want(
            Light::Off,
            Settings {
                via: PowerVia::Black,
                cec_device: None,
            },
        );
        let later = t + Duration::from_secs(3600);
        assert_eq!(p.due(later), None);
        assert_eq!(
            p.retry_at(),
            None,
            "the thread would otherwise wake in a loop"
        );
    }

    #[test]
    fn the_thread_switches_and_reports() {
        struct NoDevices;
        impl Hardware for NoDevices {
            fn cec_devices(&self) -> Vec<std::path::PathBuf> {
                Vec::new()
            }
            fn open_cec(
                &self,
                _: &std::path::Path,
            ) -> std::io::Result<Box<dyn super::super::cec::CecDevice>> {
                unreachable!()
            }
            fn ddc_buses(&self) -> Vec<super::super::ddc::Bus> {
                Vec::new()
            }
            fn open_ddc(
                &self,
                _: &super::super::ddc::Bus,
            ) -> std::io::Result<Box<dyn super::super::ddc::DdcDevice>> {
                unreachable!()
            }
            fn sleep(&self, _: Duration) {}
        }
        let s = ScreenSwitch::start(Box::new(NoDevices));
        s.want(Light::Off, &auto());
        let t = Instant::now();
        while s.last().is_none() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let last = s.last().expect("switched");
        assert_eq!(last.light, Light::Off);
        assert_eq!(last.outcome.via, Via::Black);
        assert!(!last.outcome.failed);
    }
}
