//! Where the player's config comes from: a file, re-read when it changes, or the demo's own.
//! The secret files it names are watched too, so a fixed password is used at once.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{self, Config, ConfigError, SecretSources};

/// A cheap fingerprint of one file: modification time, length, inode (an editor or installer
/// that replaces the file by renaming gives a new inode even within one tick of the clock),
/// mode and owner (the fix for a refused file may be a `chmod` or `chown` alone). `None` when
/// the file is missing or unreadable.
type FileStamp = Option<(SystemTime, u64, u64, u32, u32)>;

#[cfg(unix)]
fn file_stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino(), m.mode(), m.uid()))
}

#[cfg(not(unix))]
fn file_stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), 0, 0, 0))
}

fn stamped(files: impl IntoIterator<Item = PathBuf>) -> Vec<(PathBuf, FileStamp)> {
    files
        .into_iter()
        .map(|f| {
            let s = file_stamp(&f);
            (f, s)
        })
        .collect()
}

/// Fingerprints of the config file (with `cloud.ca_file`) and of the secret files it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Stamp {
    config: Vec<(PathBuf, FileStamp)>,
    secrets: Vec<(PathBuf, FileStamp)>,
}

/// What changed between two stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// The config file or the CA file: everything is read again.
    Config,
    /// Only a secret file (the config names the same ones): the secrets are read again.
    Secrets,
}

impl Stamp {
    pub(crate) fn change_to(&self, newer: &Stamp) -> Change {
        if self.config != newer.config {
            Change::Config
        } else if self.secrets != newer.secrets {
            Change::Secrets
        } else {
            Change::None
        }
    }

    /// Whether the config file exists.
    #[cfg(test)]
    fn has_config(&self) -> bool {
        self.config.first().is_some_and(|(_, s)| s.is_some())
    }
}

#[derive(Clone)]
pub(crate) enum Source {
    /// The installer's file, and the one the phone setup saved in the state directory: the
    /// installer's wins as soon as it is configured; while it is missing or not configured
    /// (the package installs the commented example), the saved one is used if there is one.
    Layered {
        installer: PathBuf,
        saved: PathBuf,
        sources: SecretSources,
    },
    Demo(Box<Config>),
}

/// Which of the two files of [`Source::Layered`] is in use (pure: the caller says whether the
/// installer's file is configured and whether the saved one exists).
pub(crate) fn in_use<'a>(
    installer: &'a Path,
    installer_configured: bool,
    saved: &'a Path,
    saved_exists: bool,
) -> &'a Path {
    if !installer_configured && saved_exists {
        saved
    } else {
        installer
    }
}

/// Whether the installer's file holds a configuration (a refused one counts: its error is
/// what the screen must show, not the phone's file).
fn configured(path: &Path, sources: &SecretSources) -> bool {
    !matches!(
        config::load(path, sources),
        Err(ConfigError::NotFound { .. } | ConfigError::NotConfigured { .. })
    )
}

impl Source {
    /// The configuration the player runs: the device's own, with the last good fleet file's
    /// sections in place of its own when it has a `[fleet]`.
    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        let store = crate::fleet::store::Store::new(crate::fleet::store::state_dir());
        self.load_device()
            .map(|c| crate::fleet::with_last_good(c, &store))
    }

    /// The device's own configuration, without any fleet file.
    pub(crate) fn load_device(&self) -> Result<Config, ConfigError> {
        match self {
            Source::Layered { sources, .. } => config::load(&self.path(), sources),
            Source::Demo(c) => Ok((**c).clone()),
        }
    }

    /// The file in use now (the demo has none).
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            Source::Layered {
                installer,
                saved,
                sources,
            } => in_use(
                installer,
                configured(installer, sources),
                saved,
                saved.exists(),
            )
            .to_path_buf(),
            Source::Demo(_) => PathBuf::new(),
        }
    }

    /// Taken before each reading, compared every few seconds, to notice an edited (or newly
    /// created) config file or secret file. The demo's never changes.
    pub(crate) fn stamp(&self) -> Stamp {
        match self {
            Source::Layered {
                installer,
                saved,
                sources,
            } => {
                let in_use = self.path();
                let named = config::watched_files(&in_use);
                // Both files: the installer's edit and the phone's save each start over. The
                // boot import's refusal counts as config too: recorded or cleared, the screen
                // says so.
                let mut files = vec![installer.clone(), saved.clone()];
                files.extend(named.ca_file);
                files.push(crate::boot_import::state_file(sources));
                Stamp {
                    config: stamped(files),
                    secrets: stamped(named.secrets),
                }
            }
            Source::Demo(_) => Stamp::default(),
        }
    }

    /// Why the settings on the boot partition were not imported, if they were not: shown
    /// instead of the config's own state, since the installer expects those settings.
    pub(crate) fn boot_import_problem(&self) -> Option<crate::Problem> {
        match self {
            Source::Layered { sources, .. } => crate::boot_import::pending_problem(sources),
            Source::Demo(_) => None,
        }
    }

    /// How status screens name it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Layered { .. } => self.path().display().to_string(),
            Source::Demo(_) => "built-in demo".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose saved file never exists: the installer's file alone.
    fn file(path: PathBuf) -> Source {
        Source::Layered {
            saved: path.with_extension("never-saved"),
            installer: path,
            sources: SecretSources::default(),
        }
    }

    #[test]
    fn a_file_is_stamped_and_a_change_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.toml");
        let source = file(path.clone());
        assert_eq!(source.describe(), path.display().to_string());
        assert!(!source.stamp().has_config(), "no file yet");
        assert!(matches!(source.load(), Err(ConfigError::NotFound { .. })));
        std::fs::write(&path, "[auth]\n").unwrap();
        let created = source.stamp();
        assert!(created.has_config());
        assert_eq!(source.stamp(), created, "unchanged file, same stamp");
        std::fs::write(&path, "[auth]\ntenant = \"x\"\n").unwrap();
        assert_eq!(
            created.change_to(&source.stamp()),
            Change::Config,
            "a longer file"
        );
    }

    #[test]
    fn a_secret_file_change_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.toml");
        std::fs::write(&path, "[auth]\npassword_file = \"pw\"\n").unwrap();
        let source = file(path.clone());
        let before = source.stamp();
        // Created after the config: a missing secret file that appears is a change.
        std::fs::write(dir.path().join("pw"), "wrong\n").unwrap();
        let created = source.stamp();
        assert_eq!(before.change_to(&created), Change::Secrets);
        // Same length, replaced by renaming (what editors and installers do).
        let tmp = dir.path().join("pw.new");
        std::fs::write(&tmp, "right\n").unwrap();
        std::fs::rename(&tmp, dir.path().join("pw")).unwrap();
        let replaced = source.stamp();
        assert_eq!(created.change_to(&replaced), Change::Secrets);
        assert_eq!(replaced.change_to(&source.stamp()), Change::None);
        // A `chmod` alone (the fix for a refused file) is a change too.
        use std::os::unix::fs::PermissionsExt;
        let pw = dir.path().join("pw");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        let chmodded = source.stamp();
        assert_eq!(replaced.change_to(&chmodded), Change::Secrets);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(chmodded.change_to(&source.stamp()), Change::Config);
        let replaced = source.stamp();
        // Both changed: the config wins, everything is read again.
        std::fs::write(&path, "[auth]\npassword_file = \"pw2\"\n").unwrap();
        assert_eq!(replaced.change_to(&source.stamp()), Change::Config);
    }

    #[test]
    fn the_installers_file_wins_once_configured_else_the_saved_one() {
        let (etc, saved) = (
            Path::new("/etc/p.toml"),
            Path::new("/var/lib/p/setup/p.toml"),
        );
        assert_eq!(in_use(etc, false, saved, true), saved);
        assert_eq!(in_use(etc, false, saved, false), etc);
        assert_eq!(in_use(etc, true, saved, true), etc);
        assert_eq!(in_use(etc, true, saved, false), etc);
    }

    #[test]
    fn layered_reads_the_saved_file_while_the_installers_is_the_example() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let installer = dir.path().join("etc.toml");
        std::fs::write(&installer, "# the example\n[auth]\n").unwrap();
        let saved = dir.path().join("saved.toml");
        let source = Source::Layered {
            installer: installer.clone(),
            saved: saved.clone(),
            sources: SecretSources::default(),
        };
        assert_eq!(source.describe(), installer.display().to_string());
        assert!(matches!(
            source.load(),
            Err(ConfigError::NotConfigured { .. })
        ));
        let before = source.stamp();
        std::fs::write(
            &saved,
            "[status]\nlisten = \"127.0.0.1:1\"\n[auth]\nnope = 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(before.change_to(&source.stamp()), Change::Config);
        assert_eq!(source.describe(), saved.display().to_string());
        let Err(ConfigError::Invalid { path, .. }) = source.load() else {
            panic!("the saved file was not read");
        };
        assert_eq!(path, saved);
        // The installer fills in their file: it wins (its own error shows, not the phone's).
        std::fs::write(&installer, "[auth]\ntenant = 1\n").unwrap();
        std::fs::set_permissions(&installer, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(source.describe(), installer.display().to_string());
    }

    #[test]
    fn a_ca_file_change_reads_the_config_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.toml");
        std::fs::write(&path, "[cloud]\nca_file = \"ca.pem\"\n").unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        let source = file(path);
        let before = source.stamp();
        std::fs::write(dir.path().join("ca.pem"), "PEM2").unwrap();
        assert_eq!(before.change_to(&source.stamp()), Change::Config);
    }
}
