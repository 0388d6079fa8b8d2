//! Screen power: what the `[display] on` hours say now, and an administrator's override of
//! them (`pbikiosk display on|off|auto`), kept as a one-word file in the service's state
//! directory so that it outlives a restart and needs no network endpoint: the status server
//! stays read-only, and nothing in a web page can turn a screen off.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::auth::quiet::Quiet;
use crate::schedule::{Power, Schedule};

/// How far ahead of the hours the report is prepared behind the black screen.
const WAKE_LEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
const OVERRIDE_FILE: &str = "display-override";

/// An administrator's override of the hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Override {
    /// Follow `[display] on`.
    #[default]
    Auto,
    /// On until set back to auto.
    On,
    /// Off (black) until set back to auto.
    Off,
}

impl Override {
    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "auto" => Some(Self::Auto),
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }

    fn apply(self, by_hours: Power) -> Power {
        match self {
            Self::Auto => by_hours,
            Self::On => Power::On,
            Self::Off => Power::Off,
        }
    }
}

#[derive(Debug, Error)]
pub enum OverrideError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OverrideError {
    pub fn fix(&self) -> &'static str {
        "Run it as root (sudo pbikiosk display ...) on the screen's device, where the kiosk's state directory exists."
    }
}

/// The state directory: systemd tells the service; an admin's shell falls back to the unit's.
fn state_dir() -> PathBuf {
    crate::setup::state_dir(std::env::var("STATE_DIRECTORY").ok().as_deref())
}

fn override_path(dir: &Path) -> PathBuf {
    dir.join(OVERRIDE_FILE)
}

/// Set the override; the running kiosk follows within seconds.
pub fn set_override(mode: Override) -> Result<PathBuf, OverrideError> {
    write_override(&state_dir(), mode)
}

fn write_override(dir: &Path, mode: Override) -> Result<PathBuf, OverrideError> {
    let path = override_path(dir);
    let tmp = dir.join(format!(".{OVERRIDE_FILE}.tmp"));
    let err = |source| OverrideError::Write {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, format!("{}\n", mode.as_str())).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

/// The override in force: none when the file is missing, unreadable or not one of the words
/// (a screen is never left dark by a file it cannot understand).
fn read_override(dir: &Path) -> Override {
    std::fs::read_to_string(override_path(dir))
        .ok()
        .and_then(|t| Override::parse(&t))
        .unwrap_or_default()
}

/// How long before the report is prepared the sign-in renews a token that went stale in the
/// night: the preparation then finds a fresh one in hand, with a minute to spare for a slow
/// answer or one retry.
const RENEW_LEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What the screen should be now (the hours in the device's time zone, then the override),
/// and whether the sign-in may rest meanwhile.
pub(crate) fn screen_now(on: &Schedule) -> (Power, Quiet) {
    quiet_at(
        on,
        read_override(&state_dir()),
        &chrono::Local::now(),
        std::time::Instant::now(),
    )
}

/// The power at `now` and the sign-in's quiet: while the screen is off (and not yet waking)
/// renewals wait until [`RENEW_LEAD`] before the report is prepared ([`WAKE_LEAD`] before the
/// hours), or, turned off by the administrator, until it is turned back on. `mono` is `now` on
/// the monotonic clock the sign-in runs on.
pub(crate) fn quiet_at<Tz: chrono::TimeZone>(
    on: &Schedule,
    over: Override,
    now: &chrono::DateTime<Tz>,
    mono: std::time::Instant,
) -> (Power, Quiet) {
    let power = over.apply(crate::schedule::power_at(on, now, WAKE_LEAD));
    if power != Power::Off {
        return (power, Quiet::Awake);
    }
    let resume = match over {
        Override::Off => None,
        // Off by the hours: they begin at their next change.
        Override::Auto | Override::On => on.next_change(now).map(|start| {
            let ahead = (start - WAKE_LEAD - RENEW_LEAD) - now.clone();
            mono + ahead.to_std().unwrap_or_default()
        }),
    };
    (power, Quiet::Until(resume))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_a_word_in_a_file_and_anything_else_means_auto() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_override(dir.path()), Override::Auto, "no file");
        for mode in [Override::Off, Override::On, Override::Auto] {
            let p = write_override(dir.path(), mode).unwrap();
            assert_eq!(p, dir.path().join("display-override"));
            assert_eq!(read_override(dir.path()), mode);
        }
        std::fs::write(dir.path().join("display-override"), "dim\n").unwrap();
        assert_eq!(read_override(dir.path()), Override::Auto);
        let missing = dir.path().join("nope");
        let e = write_override(&missing, Override::Off).unwrap_err();
        assert!(e.to_string().contains("display-override"), "{e}");
    }

    #[test]
    fn the_override_wins_over_the_hours() {
        assert_eq!(Override::Off.apply(Power::On), Power::Off);
        assert_eq!(Override::On.apply(Power::Off), Power::On);
        assert_eq!(Override::On.apply(Power::Waking), Power::On);
        assert_eq!(Override::Auto.apply(Power::Waking), Power::Waking);
    }

    /// The sign-in rests while the screen is off and resumes a minute before the report is
    /// prepared (three minutes before the hours); an administrator's `off` has no end.
    #[test]
    fn the_sign_in_rests_until_a_minute_before_the_preparation() {
        use chrono::TimeZone;
        let hours = Schedule::new(vec![
            crate::schedule::Window::parse("mon-fri 07:00-19:00").unwrap(),
        ]);
        let mono = std::time::Instant::now();
        let utc =
            |d: u32, h: u32, m: u32| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        // Friday 19:00 (Nov 27th 2026): off until Monday 06:57.
        let (power, quiet) = quiet_at(&hours, Override::Auto, &utc(27, 19, 0), mono);
        assert_eq!(power, Power::Off);
        let weekend = std::time::Duration::from_secs(((2 * 24 + 11) * 60 + 57) * 60);
        assert_eq!(quiet, Quiet::Until(Some(mono + weekend)));
        // 06:57 Monday: still off, resume now; 06:58: waking, awake.
        let (power, quiet) = quiet_at(&hours, Override::Auto, &utc(30, 6, 57), mono);
        assert_eq!((power, quiet), (Power::Off, Quiet::Until(Some(mono))));
        let (power, quiet) = quiet_at(&hours, Override::Auto, &utc(30, 6, 58), mono);
        assert_eq!((power, quiet), (Power::Waking, Quiet::Awake));
        // In hours: awake; the administrator's off: quiet with no end; on: awake.
        assert_eq!(
            quiet_at(&hours, Override::Auto, &utc(30, 12, 0), mono),
            (Power::On, Quiet::Awake)
        );
        assert_eq!(
            quiet_at(&hours, Override::Off, &utc(30, 12, 0), mono),
            (Power::Off, Quiet::Until(None))
        );
        assert_eq!(
            quiet_at(&hours, Override::On, &utc(28, 3, 0), mono),
            (Power::On, Quiet::Awake)
        );
        // No hours at all: always on, always awake.
        assert_eq!(
            quiet_at(&Schedule::default(), Override::Auto, &utc(28, 3, 0), mono),
            (Power::On, Quiet::Awake)
        );
    }
}
