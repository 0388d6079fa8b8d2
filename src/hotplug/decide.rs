//! Whether a change of the screen connectors calls for a restart of the kiosk session: pure
//! (the connector states, the session's state and the times come in; no clock, no I/O).
//!
//! Why a restart at all, from cage 0.1.4 and wlroots 0.15 (Debian 12), see the module above:
//! cage exits when its last output goes away and systemd starts it again with whatever is
//! connected then, possibly nothing; a session that started without a screen, or a connector
//! that came back and that nothing drives, stays dark until the session is started again.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One connector of `/sys/class/drm` (`card0-HDMI-A-1`): is a screen there (`status`), and is
/// something driving it (`enabled`: the kernel has an encoder on it, set by whoever holds the
/// card, the compositor while the session runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ConnectorState {
    pub(crate) connected: bool,
    pub(crate) enabled: bool,
}

/// Every connector by its sysfs name.
pub(crate) type Connectors = BTreeMap<String, ConnectorState>;

/// The kiosk unit as systemd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// Running (or starting); `started_at` is when its main process (cage) started, on the
    /// monotonic clock.
    Running { started_at: Duration },
    /// Waiting for its own `Restart=` (cage exited): it starts again within seconds and sees
    /// what is connected then.
    RestartingItself,
    /// Gave up after too many starts in a row (start limit).
    Failed,
    /// Stopped, or stopping: someone meant it; left alone.
    Stopped,
}

/// What the hot-plug path knows when it decides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation<'a> {
    /// The connectors at the previous look (the one before this change), if there was one
    /// since boot. They held from that look until `event_at`.
    pub(crate) previous: Option<&'a Connectors>,
    /// The connectors now, after the change settled.
    pub(crate) current: &'a Connectors,
    pub(crate) session: Session,
    /// When the change was reported (before settling).
    pub(crate) event_at: Duration,
    /// When this path last asked for a restart (this boot).
    pub(crate) last_restart: Option<Duration>,
    pub(crate) now: Duration,
}

/// How often a restart may happen at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// A TV that flaps its hot-plug line must not restart the session every second; two
    /// minutes also keeps these restarts well under the unit's start limit (6 in 10 min).
    pub(crate) min_interval: Duration,
    /// How long a session may take to drive its screens after it started (cage, then the
    /// player's window): until then an undriven screen is not yet a fault. The kiosk unit
    /// also starts at boot while the first look happens.
    pub(crate) startup_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_interval: Duration::from_secs(120),
            startup_grace: Duration::from_secs(30),
        }
    }
}

/// Why a restart is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestartReason {
    /// The session started while no screen was connected; one is now.
    StartedWithoutScreen { screens: Vec<String> },
    /// These connectors became connected and nothing drives them.
    NotDriven { screens: Vec<String> },
    /// A screen is connected but the running session drives none.
    NothingDriven { screens: Vec<String> },
    /// The session gave up (start limit) and a screen is connected.
    SessionFailed { screens: Vec<String> },
}

/// Why nothing is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaveReason {
    NoScreen,
    SessionStopped,
    SessionRestartingItself,
    /// The session started after the change, so it saw the screens as they are.
    SessionStartedAfterChange,
    /// The session started moments ago and may not have taken the screen yet.
    SessionStarting,
    /// Every newly connected screen is driven (the compositor took it).
    Driven,
    /// No connector became connected.
    NothingNew,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Restart(RestartReason),
    /// A restart is wanted but the last one was too recent: look again at this time.
    WaitUntil(Duration, RestartReason),
    Leave(LeaveReason),
}

/// The decision for one look at the connectors.
pub(crate) fn decide(obs: &Observation<'_>, policy: &Policy) -> Decision {
    let connected_now = names(obs.current, |c| c.connected);
    if connected_now.is_empty() {
        return Decision::Leave(LeaveReason::NoScreen);
    }
    let reason = match obs.session {
        Session::Stopped => return Decision::Leave(LeaveReason::SessionStopped),
        Session::RestartingItself => return Decision::Leave(LeaveReason::SessionRestartingItself),
        Session::Failed => RestartReason::SessionFailed {
            screens: connected_now,
        },
        Session::Running { started_at } => match running(obs, policy, started_at, connected_now) {
            Ok(reason) => reason,
            Err(leave) => return Decision::Leave(leave),
        },
    };
    match obs.last_restart {
        Some(last) if obs.now < last + policy.min_interval => {
            Decision::WaitUntil(last + policy.min_interval, reason)
        }
        _ => Decision::Restart(reason),
    }
}

fn running(
    obs: &Observation<'_>,
    policy: &Policy,
    started_at: Duration,
    connected_now: Vec<String>,
) -> Result<RestartReason, LeaveReason> {
    if started_at >= obs.event_at {
        return Err(LeaveReason::SessionStartedAfterChange);
    }
    // Whatever the history, a session that drives no connected screen shows nothing.
    if obs.current.values().all(|c| !c.enabled) {
        if obs.now < started_at + policy.startup_grace {
            return Err(LeaveReason::SessionStarting);
        }
        return Ok(RestartReason::NothingDriven {
            screens: connected_now,
        });
    }
    // The connectors as the session found them at its start: the previous look's, which held
    // until this change. Without one (none since boot), or one taken before the card was
    // there (a driver that loads late), only undriven screens count.
    let Some(at_start) = obs.previous.filter(|p| !p.is_empty()) else {
        return Err(LeaveReason::Driven);
    };
    let new: Vec<String> = connected_now
        .iter()
        .filter(|name| !at_start.get(*name).is_some_and(|c| c.connected))
        .cloned()
        .collect();
    if new.is_empty() {
        return Err(LeaveReason::NothingNew);
    }
    if at_start.values().all(|c| !c.connected) {
        return Ok(RestartReason::StartedWithoutScreen { screens: new });
    }
    let undriven: Vec<String> = new
        .into_iter()
        .filter(|name| obs.current.get(name).is_some_and(|c| !c.enabled))
        .collect();
    if undriven.is_empty() {
        Err(LeaveReason::Driven)
    } else {
        Ok(RestartReason::NotDriven { screens: undriven })
    }
}

fn names(connectors: &Connectors, keep: impl Fn(&ConnectorState) -> bool) -> Vec<String> {
    connectors
        .iter()
        .filter(|(_, c)| keep(c))
        .map(|(name, _)| name.clone())
        .collect()
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartReason::StartedWithoutScreen { screens } => write!(
                f,
                "the kiosk session started with no screen connected; now {} is",
                screens.join(", ")
            ),
            RestartReason::NotDriven { screens } => write!(
                f,
                "{} became connected and the kiosk session does not drive it",
                screens.join(", ")
            ),
            RestartReason::NothingDriven { screens } => write!(
                f,
                "{} is connected and the kiosk session drives no screen",
                screens.join(", ")
            ),
            RestartReason::SessionFailed { screens } => write!(
                f,
                "the kiosk session gave up and {} is connected",
                screens.join(", ")
            ),
        }
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaveReason::NoScreen => "no screen is connected",
            LeaveReason::SessionStopped => "the kiosk session is stopped (left alone)",
            LeaveReason::SessionRestartingItself => {
                "the kiosk session is restarting by itself and will see the screens as they are"
            }
            LeaveReason::SessionStartedAfterChange => {
                "the kiosk session started after the change and sees the screens as they are"
            }
            LeaveReason::SessionStarting => {
                "the kiosk session started moments ago and is still taking the screens"
            }
            LeaveReason::Driven => "the kiosk session drives the connected screens",
            LeaveReason::NothingNew => "no screen became connected",
        })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Restart(r) => write!(f, "restarting the kiosk session: {r}"),
            Decision::WaitUntil(_, r) => {
                write!(f, "the last restart was too recent; waiting: {r}")
            }
            Decision::Leave(r) => write!(f, "nothing to do: {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn conns(list: &[(&str, bool, bool)]) -> Connectors {
        list.iter()
            .map(|(n, connected, enabled)| {
                (
                    n.to_string(),
                    ConnectorState {
                        connected: *connected,
                        enabled: *enabled,
                    },
                )
            })
            .collect()
    }

    const HDMI1: &str = "card0-HDMI-A-1";
    const HDMI2: &str = "card0-HDMI-A-2";

    fn obs<'a>(
        previous: Option<&'a Connectors>,
        current: &'a Connectors,
        session: Session,
    ) -> Observation<'a> {
        Observation {
            previous,
            current,
            session,
            event_at: s(1000),
            last_restart: None,
            now: s(1003),
        }
    }

    fn running_since(secs: u64) -> Session {
        Session::Running {
            started_at: s(secs),
        }
    }

    fn restart_screens(d: &Decision) -> Vec<String> {
        match d {
            Decision::Restart(
                RestartReason::StartedWithoutScreen { screens }
                | RestartReason::NotDriven { screens }
                | RestartReason::NothingDriven { screens }
                | RestartReason::SessionFailed { screens },
            ) => screens.clone(),
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn tv_back_after_the_session_started_without_screen_restarts_it() {
        let before = conns(&[(HDMI1, false, false), (HDMI2, false, false)]);
        // cage took the new output, but a session started without one stays dark.
        let now = conns(&[(HDMI1, true, true), (HDMI2, false, false)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(
            d,
            Decision::Restart(RestartReason::StartedWithoutScreen {
                screens: vec![HDMI1.into()]
            })
        );
        assert!(d.to_string().contains("started with no screen"), "{d}");
    }

    #[test]
    fn connected_but_undriven_restarts_even_without_history() {
        let now = conns(&[(HDMI1, true, false)]);
        let d = decide(&obs(None, &now, running_since(500)), &Policy::default());
        assert_eq!(
            d,
            Decision::Restart(RestartReason::NothingDriven {
                screens: vec![HDMI1.into()]
            })
        );
    }

    #[test]
    fn a_session_starting_at_boot_gets_time_to_take_the_screen() {
        let now = conns(&[(HDMI1, true, false)]);
        // Started 2 s before the first look of the boot (now = 1003): still setting up.
        let d = decide(&obs(None, &now, running_since(998)), &Policy::default());
        assert_eq!(d, Decision::Leave(LeaveReason::SessionStarting));
        // 30 s after its start it should drive the screen.
        let mut o = obs(None, &now, running_since(973));
        assert_eq!(
            decide(&o, &Policy::default()),
            Decision::Restart(RestartReason::NothingDriven {
                screens: vec![HDMI1.into()]
            })
        );
        // The grace is not for a session known to have started without a screen.
        let before = conns(&[(HDMI1, false, false)]);
        o.previous = Some(&before);
        o.session = running_since(998);
        let now_driven = conns(&[(HDMI1, true, true)]);
        o.current = &now_driven;
        assert_eq!(
            decide(&o, &Policy::default()),
            Decision::Restart(RestartReason::StartedWithoutScreen {
                screens: vec![HDMI1.into()]
            })
        );
    }

    #[test]
    fn a_look_taken_before_the_card_appeared_proves_nothing() {
        let before = Connectors::new();
        let now = conns(&[(HDMI1, true, true)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::Driven));
        // ...but an undriven screen still does.
        let now = conns(&[(HDMI1, true, false)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(restart_screens(&d), vec![HDMI1.to_string()]);
    }

    #[test]
    fn a_second_screen_nothing_drives_restarts() {
        let before = conns(&[(HDMI1, true, true), (HDMI2, false, false)]);
        let now = conns(&[(HDMI1, true, true), (HDMI2, true, false)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(
            d,
            Decision::Restart(RestartReason::NotDriven {
                screens: vec![HDMI2.into()]
            })
        );
    }

    #[test]
    fn a_screen_the_compositor_took_is_left_alone() {
        let before = conns(&[(HDMI1, true, true), (HDMI2, false, false)]);
        let now = conns(&[(HDMI1, true, true), (HDMI2, true, true)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::Driven));
        // cage -m last: the old screen is disabled when the new one is taken; still fine.
        let now = conns(&[(HDMI1, true, false), (HDMI2, true, true)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::Driven));
    }

    #[test]
    fn a_screen_going_away_is_not_a_reason() {
        let before = conns(&[(HDMI1, true, true), (HDMI2, true, true)]);
        let now = conns(&[(HDMI1, true, true), (HDMI2, false, false)]);
        let d = decide(
            &obs(Some(&before), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::NothingNew));
        // The same uevent again (EDID or link status): nothing new either.
        let d = decide(
            &obs(Some(&now), &now, running_since(500)),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::NothingNew));
    }

    #[test]
    fn no_screen_at_all_waits_for_one() {
        let before = conns(&[(HDMI1, true, true)]);
        let now = conns(&[(HDMI1, false, false)]);
        for session in [
            running_since(500),
            Session::Failed,
            Session::RestartingItself,
        ] {
            let d = decide(&obs(Some(&before), &now, session), &Policy::default());
            assert_eq!(d, Decision::Leave(LeaveReason::NoScreen));
        }
        assert_eq!(
            decide(
                &obs(None, &Connectors::new(), running_since(500)),
                &Policy::default()
            ),
            Decision::Leave(LeaveReason::NoScreen)
        );
    }

    #[test]
    fn a_session_that_started_after_the_change_saw_it() {
        let before = conns(&[(HDMI1, false, false)]);
        let now = conns(&[(HDMI1, true, false)]);
        // Started at the event itself or later: the compositor is still setting up.
        for started in [1000, 1002] {
            let d = decide(
                &obs(Some(&before), &now, running_since(started)),
                &Policy::default(),
            );
            assert_eq!(d, Decision::Leave(LeaveReason::SessionStartedAfterChange));
        }
    }

    #[test]
    fn stopped_and_self_restarting_sessions_are_left_alone() {
        let before = conns(&[(HDMI1, false, false)]);
        let now = conns(&[(HDMI1, true, false)]);
        let d = decide(
            &obs(Some(&before), &now, Session::Stopped),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::SessionStopped));
        let d = decide(
            &obs(Some(&before), &now, Session::RestartingItself),
            &Policy::default(),
        );
        assert_eq!(d, Decision::Leave(LeaveReason::SessionRestartingItself));
    }

    #[test]
    fn a_session_that_gave_up_is_started_when_a_screen_is_there() {
        let now = conns(&[(HDMI1, true, true), (HDMI2, false, false)]);
        let d = decide(&obs(None, &now, Session::Failed), &Policy::default());
        assert_eq!(restart_screens(&d), vec![HDMI1.to_string()]);
        assert!(d.to_string().contains("gave up"), "{d}");
    }

    #[test]
    fn restarts_are_at_most_one_per_interval() {
        let before = conns(&[(HDMI1, false, false)]);
        let now = conns(&[(HDMI1, true, true)]);
        let policy = Policy {
            min_interval: s(120),
            ..Policy::default()
        };
        let mut o = obs(Some(&before), &now, running_since(500));
        o.last_restart = Some(s(950));
        let d = decide(&o, &policy);
        assert_eq!(
            d,
            Decision::WaitUntil(
                s(1070),
                RestartReason::StartedWithoutScreen {
                    screens: vec![HDMI1.into()]
                }
            )
        );
        // Exactly at the end of the interval, and later: a restart.
        o.now = s(1070);
        assert_eq!(
            restart_screens(&decide(&o, &policy)),
            vec![HDMI1.to_string()]
        );
        o.last_restart = Some(s(10));
        assert_eq!(
            restart_screens(&decide(&o, &policy)),
            vec![HDMI1.to_string()]
        );
    }

    /// A TV that flaps every second for ten minutes, looked at after each change: the
    /// decisions allow at most one restart per interval.
    #[test]
    fn a_flapping_tv_restarts_at_most_once_per_interval() {
        let policy = Policy::default();
        let off = conns(&[(HDMI1, false, false)]);
        let on = conns(&[(HDMI1, true, false)]);
        let mut previous = off.clone();
        let mut last_restart = None;
        let mut restarts = 0;
        let mut session_started = s(0);
        for t in 1..=600u64 {
            let current = if t % 2 == 1 { &on } else { &off };
            let o = Observation {
                previous: Some(&previous),
                current,
                session: running_since(session_started.as_secs()),
                event_at: s(t),
                last_restart,
                now: s(t) + Duration::from_millis(500),
            };
            if let Decision::Restart(_) = decide(&o, &policy) {
                restarts += 1;
                last_restart = Some(o.now);
                session_started = o.now;
            }
            previous = current.clone();
        }
        assert!(restarts >= 1, "the first appearance restarts");
        assert!(restarts <= 5, "{restarts} restarts in 10 min");
    }
}
