//! The last good fleet file, kept in the state directory so that a screen that boots while the
//! fleet server is down plays what it played before.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schedule::Validators;

/// The state directory, by the one rule every part of pbikiosk follows.
pub(crate) fn state_dir() -> PathBuf {
    crate::setup::state_dir(std::env::var("STATE_DIRECTORY").ok().as_deref())
}

/// What is kept besides the file itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The address it came from, as shown (no credentials): validators apply to it only.
    pub(crate) url: String,
    #[serde(flatten)]
    pub(crate) validators: Validators,
    /// When the server last gave or confirmed it (Unix seconds).
    pub(crate) confirmed_unix: u64,
}

/// The last good fleet file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    pub(crate) text: String,
    pub(crate) meta: Meta,
}

/// `fleet.toml` and `fleet.json` in one folder.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// A kept fleet file is a few KiB; anything near this is not one.
const MAX_KEPT: u64 = 1 << 20;

impl Store {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub(crate) fn file(&self) -> PathBuf {
        self.dir.join("fleet.toml")
    }

    fn meta_file(&self) -> PathBuf {
        self.dir.join("fleet.json")
    }

    /// The kept file, if there is a readable one.
    pub(crate) fn load(&self) -> Option<Kept> {
        let text = read_bounded(&self.file())?;
        let meta = read_bounded(&self.meta_file())
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default();
        Some(Kept { text, meta })
    }

    /// Keep `kept`, each file replaced atomically (written aside, synced, renamed): a power cut
    /// leaves the old file or the new one, never half of one. The file goes first: metadata
    /// describing a file that is not there would send validators for content we lack.
    pub(crate) fn save(&self, kept: &Kept) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.dir, &self.file(), kept.text.as_bytes())?;
        let meta = serde_json::to_vec_pretty(&kept.meta).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, &self.meta_file(), &meta)
    }

    /// Record that the server confirmed the kept file (a 304) at `unix`.
    pub(crate) fn confirm(&self, meta: &Meta) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, &self.meta_file(), &bytes)
    }
}

fn read_bounded(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(MAX_KEPT).read_to_string(&mut s).ok()?;
    Some(s)
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_survives_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        assert_eq!(store.load(), None);
        let kept = Kept {
            text: "[[playlist]]\n".into(),
            meta: Meta {
                url: "https://h/a.toml".into(),
                validators: Validators {
                    etag: Some("\"v1\"".into()),
                    last_modified: None,
                },
                confirmed_unix: 1_800_000_000,
            },
        };
        store.save(&kept).unwrap();
        assert_eq!(store.load(), Some(kept.clone()));
        let newer = Kept {
            text: "# v2\n".into(),
            ..kept
        };
        store.save(&newer).unwrap();
        assert_eq!(store.load().unwrap().text, "# v2\n");
        // Nothing but the two files is left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fleet.json", "fleet.toml"]);
        // Metadata lost: the file is still used, without validators.
        std::fs::remove_file(dir.path().join("state/fleet.json")).unwrap();
        assert_eq!(store.load().unwrap().meta, Meta::default());
    }
}
