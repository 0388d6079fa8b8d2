//! The kiosk unit's state from `systemctl show` (parsed here, run by the caller).

use std::time::Duration;

use super::decide::Session;

/// The properties asked for, in `systemctl show -p` form.
pub(crate) const PROPERTIES: &str = "ActiveState,SubState,ExecMainStartTimestampMonotonic";

/// The session's state from `systemctl show -p PROPERTIES` output (`Key=Value` lines).
/// Anything unexpected reads as stopped: the hot-plug path then leaves the session alone.
pub(crate) fn parse(show: &str) -> Session {
    let mut active = "";
    let mut sub = "";
    let mut started_usec: Option<u64> = None;
    for line in show.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => active = v.trim(),
            Some(("SubState", v)) => sub = v.trim(),
            Some(("ExecMainStartTimestampMonotonic", v)) => started_usec = v.trim().parse().ok(),
            _ => {}
        }
    }
    match (active, sub) {
        ("failed", _) => Session::Failed,
        // Between a cage exit and the start `Restart=` makes.
        ("activating", "auto-restart") => Session::RestartingItself,
        ("active" | "reloading" | "activating", _) => Session::Running {
            started_at: Duration::from_micros(started_usec.unwrap_or(0)),
        },
        _ => Session::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(
            parse(
                "ActiveState=active\nSubState=running\nExecMainStartTimestampMonotonic=12500000\n"
            ),
            Session::Running {
                started_at: Duration::from_millis(12_500)
            }
        );
        assert_eq!(
            parse("ActiveState=activating\nSubState=start\nExecMainStartTimestampMonotonic=7\n"),
            Session::Running {
                started_at: Duration::from_micros(7)
            }
        );
        assert_eq!(
            parse(
                "ActiveState=activating\nSubState=auto-restart\nExecMainStartTimestampMonotonic=7\n"
            ),
            Session::RestartingItself
        );
        assert_eq!(
            parse("ActiveState=failed\nSubState=failed\nExecMainStartTimestampMonotonic=0\n"),
            Session::Failed
        );
        assert_eq!(
            parse("ActiveState=inactive\nSubState=dead\nExecMainStartTimestampMonotonic=0\n"),
            Session::Stopped
        );
        assert_eq!(parse("ActiveState=deactivating\n"), Session::Stopped);
        assert_eq!(parse(""), Session::Stopped);
    }
}
