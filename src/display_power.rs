//! Screen power: what the `[display] on` hours say now, and an administrator's override of
//! them (`pbikiosk display on|off|auto`), kept as a one-word file in the service's state
//! directory so that it outlives a restart and needs no network endpoint: the status server
//! stays read-only, and nothing in a web page can turn a screen off.

use std::path::{Path, PathBuf};

use thiserror::Error;

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

/// What the screen should be now: the hours in the device's time zone, then the override.
pub(crate) fn power_now(on: &Schedule) -> Power {
    let by_hours = crate::schedule::power_at(on, &chrono::Local::now(), WAKE_LEAD);
    read_override(&state_dir()).apply(by_hours)
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
}
