//! Why the last boot-partition file was not imported, kept in the service's state folder so
//! that the kiosk (status screen, `/status`) and `check` can say so.
//!
//! Written by the root one-shot `pbikiosk import`, read by the unprivileged kiosk: the file is
//! 0644 and holds what a [`ConfigError`] says (file, line, key, fix), never a value from the
//! file, so nothing in it is secret.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::{Problem, ProblemId};

/// The state file's name in the state folder.
pub(crate) const FILE_NAME: &str = "boot-config-invalid.json";

/// A refusal is a few hundred bytes; a bigger file is not ours.
const MAX_STATE_FILE: u64 = 16 * 1024;

/// One refused import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refusal {
    /// The boot-partition file.
    pub(crate) file: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) key: Option<String>,
    /// The whole reason, as `check` words a config error (file, line, key, what is wrong).
    pub(crate) cause: String,
    pub(crate) fix: String,
}

impl Refusal {
    pub(crate) fn from_error(file: &Path, e: &ConfigError) -> Self {
        let (line, key) = match e {
            ConfigError::Invalid { line, key, .. } => (*line, Some(key.clone())),
            ConfigError::Syntax { line, .. } => (Some(*line), None),
            _ => (None, None),
        };
        Self {
            file: file.to_path_buf(),
            line,
            key,
            cause: e.to_string(),
            fix: e.fix(),
        }
    }

    /// What the screen, `/status` and `check` show.
    pub(crate) fn to_problem(&self) -> Problem {
        // The cause already starts with the boot file's path, line and key.
        Problem::new(ProblemId::BootConfigInvalid)
            .with_cause(format!(
                "{} (not imported: the settings in use are unchanged)",
                self.cause
            ))
            .with_fix(format!(
                "{} Then restart the screen, which imports the file as it starts; or delete the file from the boot partition to keep the settings in use.",
                self.fix
            ))
    }
}

/// The recorded refusal, if any. An unreadable or foreign file is logged and ignored: it only
/// ever adds a message to the screen.
pub(crate) fn read(dir: &Path) -> Option<Refusal> {
    let path = dir.join(FILE_NAME);
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_STATE_FILE {
        tracing::warn!(file = %path.display(), "ignoring the boot import state: not a small file");
        return None;
    }
    let mut text = String::new();
    let read = fs::File::open(&path)
        .and_then(|f| f.take(MAX_STATE_FILE).read_to_string(&mut text).map(|_| ()));
    if let Err(e) = read {
        tracing::warn!(file = %path.display(), error = %e, "cannot read the boot import state");
        return None;
    }
    match serde_json::from_str(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable boot import state");
            None
        }
    }
}

/// Record a refusal: written to a temporary file, flushed, renamed over the old one.
pub(crate) fn record(dir: &Path, refusal: &Refusal) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let json = serde_json::to_string_pretty(refusal).map_err(io::Error::other)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".boot-config-invalid.")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.write_all(json.as_bytes())?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(FILE_NAME)).map_err(|e| e.error)?;
    super::sync_dir(dir)
}

/// Forget the refusal (a good import, or no file on the boot partition any more).
pub(crate) fn clear(dir: &Path) -> io::Result<bool> {
    match fs::remove_file(dir.join(FILE_NAME)) {
        Ok(()) => {
            super::sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_round_trips_and_reads_as_the_boot_problem() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        let e = ConfigError::Invalid {
            path: "/boot/firmware/pbikiosk.toml".into(),
            key: "playlist[1].seconds".into(),
            line: Some(12),
            message: "must be from 5 to 86400".into(),
            fix: "Set seconds from 5 to 86400.".into(),
        };
        let r = Refusal::from_error(Path::new("/boot/firmware/pbikiosk.toml"), &e);
        record(dir.path(), &r).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.line, Some(12));
        assert_eq!(back.key.as_deref(), Some("playlist[1].seconds"));
        let p = back.to_problem();
        assert_eq!(p.id, ProblemId::BootConfigInvalid);
        assert!(
            p.cause
                .contains("/boot/firmware/pbikiosk.toml, line 12: playlist[1].seconds"),
            "{}",
            p.cause
        );
        assert!(
            p.fix.starts_with("Set seconds from 5 to 86400."),
            "{}",
            p.fix
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "the unprivileged kiosk reads it");
        assert!(clear(dir.path()).unwrap());
        assert!(!clear(dir.path()).unwrap());
        assert_eq!(read(dir.path()), None);
    }

    #[test]
    fn a_foreign_or_broken_state_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "not json").unwrap();
        assert_eq!(read(dir.path()), None);
        fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
