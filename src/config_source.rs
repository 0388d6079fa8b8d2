//! Where the player's config comes from: a file, re-read when it changes, or the demo's own.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::{self, Config, ConfigError, SecretSources};

/// A cheap fingerprint of the config file: modification time and length.
pub(crate) type Stamp = Option<(SystemTime, u64)>;

pub(crate) enum Source {
    File(PathBuf, SecretSources),
    Demo(Box<Config>),
}

impl Source {
    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        match self {
            Source::File(p, s) => config::load(p, s),
            Source::Demo(c) => Ok((**c).clone()),
        }
    }

    /// Taken before each reading, compared every few seconds, to notice an edited (or newly
    /// created) config file. The demo's never changes.
    pub(crate) fn stamp(&self) -> Stamp {
        match self {
            Source::File(p, _) => std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
            Source::Demo(_) => None,
        }
    }

    /// How status screens name it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::File(p, _) => p.display().to_string(),
            Source::Demo(_) => "built-in demo".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_stamped_and_a_change_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.toml");
        let source = Source::File(path.clone(), SecretSources::default());
        assert_eq!(source.describe(), path.display().to_string());
        assert_eq!(source.stamp(), None, "no file yet");
        assert!(matches!(source.load(), Err(ConfigError::NotFound { .. })));
        std::fs::write(&path, "[auth]\n").unwrap();
        let created = source.stamp();
        assert!(created.is_some());
        assert_eq!(source.stamp(), created, "unchanged file, same stamp");
        std::fs::write(&path, "[auth]\ntenant = \"x\"\n").unwrap();
        assert_ne!(source.stamp(), created, "a longer file");
    }
}
