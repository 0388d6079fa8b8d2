//! The device-code sign-in's refresh token on disk, so a restart (or a power cut) does not
//! send a person back to the sign-in screen.
//!
//! The file is written the way that survives a power cut at any moment: a temporary file in
//! the same folder (mode 0600 from its creation), fsync, rename over the old file, fsync of the
//! folder. A reader sees the old file or the new one, never half of one. The refresh token is a
//! [`Secret`]: no error or log line carries it, only this file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The file format's version; another version is ignored (and a new sign-in replaces it).
const VERSION: u32 = 1;
/// A cache larger than this is not ours (a refresh token is a few kilobytes).
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    #[error("cannot read the token cache {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token cache {} is not a pbikiosk token cache ({why}); a new sign-in replaces it", path.display())]
    Unusable { path: PathBuf, why: &'static str },
    #[error("cannot write the token cache {}: {source} (pbikiosk must be able to write to its folder)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the cache keeps: whose refresh token it is, so a changed tenant or app is not sent a
/// token it never issued.
#[derive(Debug, Clone)]
pub(crate) struct CachedGrant {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) refresh_token: Secret,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    tenant: String,
    client_id: String,
    refresh_token: String,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenCache {
    path: PathBuf,
}

impl TokenCache {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cached grant for this tenant and app. `Ok(None)`: no file, or one for another tenant
    /// or app.
    pub(crate) fn load(&self, tenant: &str, client_id: &str) -> Result<Option<Secret>, CacheError> {
        let unusable = |why| CacheError::Unusable {
            path: self.path.clone(),
            why,
        };
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if meta.len() > MAX_BYTES {
            return Err(unusable("larger than 64 KiB"));
        }
        let text = fs::read_to_string(&self.path).map_err(|source| CacheError::Read {
            path: self.path.clone(),
            source,
        })?;
        let d: OnDisk = serde_json::from_str(&text).map_err(|_| unusable("not valid JSON"))?;
        if d.version != VERSION {
            return Err(unusable("another version"));
        }
        if d.refresh_token.is_empty() {
            return Err(unusable("no refresh token"));
        }
        if !d.tenant.eq_ignore_ascii_case(tenant) || !d.client_id.eq_ignore_ascii_case(client_id) {
            return Ok(None);
        }
        Ok(Some(Secret::new(d.refresh_token)))
    }

    /// Replace the cache with `grant`, atomically and durably.
    pub(crate) fn store(&self, grant: &CachedGrant) -> Result<(), CacheError> {
        let text = serde_json::to_string(&OnDisk {
            version: VERSION,
            tenant: grant.tenant.clone(),
            client_id: grant.client_id.clone(),
            refresh_token: grant.refresh_token.expose().to_owned(),
        })
        .expect("plain data serializes");
        self.write_atomically(text.as_bytes())
            .map_err(|source| CacheError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Forget the grant (revoked or expired): the next start asks for a sign-in.
    pub(crate) fn clear(&self) -> Result<(), CacheError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(CacheError::Write {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        sync_dir(self.dir()).map_err(|source| CacheError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = self.dir();
        // tempfile creates the file with mode 0600, so the token is never readable by others,
        // not even for a moment.
        let mut tmp = tempfile::Builder::new()
            .prefix(".token-cache.")
            .tempfile_in(dir)?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
        let folder = fs::metadata(dir)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if let Some((uid, gid)) = owner_for(euid, folder.uid(), folder.gid()) {
            // Before the rename, so the file appears with its final owner.
            std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid))?;
        }
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(dir)
    }
}

/// Who a cache file written by `euid` into a folder owned by `folder_uid:folder_gid` must
/// belong to, if not to the writer. `pbikiosk login` is usually run with sudo, but the player
/// runs as the service user and must read and renew the file: when root writes into a folder
/// another user owns (the service's state directory), the file goes to that user, mode 0600
/// as always. Anyone else writes as themselves (they cannot give a file away anyway).
pub(crate) fn owner_for(euid: u32, folder_uid: u32, folder_gid: u32) -> Option<(u32, u32)> {
    (euid == 0 && folder_uid != 0).then_some((folder_uid, folder_gid))
}

/// fsync a folder, so a rename or removal in it survives a power cut.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn grant(rt: &str) -> CachedGrant {
        CachedGrant {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            refresh_token: Secret::new(rt),
        }
    }

    #[test]
    fn store_then_load_with_mode_0600_and_no_temp_files_left() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path().join("token-cache.json"));
        let (t, c) = (
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
        );
        assert!(cache.load(t, c).unwrap().is_none(), "no file yet");
        cache.store(&grant("rt-1")).unwrap();
        cache.store(&grant("rt-2")).unwrap();
        assert_eq!(cache.load(t, c).unwrap().unwrap().expose(), "rt-2");
        // Case of the tenant does not matter; another app's token is not used.
        assert!(cache.load("CONTOSO.onmicrosoft.com", c).unwrap().is_some());
        assert!(
            cache
                .load(t, "00000000-0000-0000-0000-000000000002")
                .unwrap()
                .is_none()
        );
        let mode = fs::metadata(cache.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["token-cache.json"]);
        cache.clear().unwrap();
        assert!(cache.load(t, c).unwrap().is_none());
        cache.clear().unwrap();
    }

    #[test]
    fn root_writes_the_cache_for_the_folders_owner() {
        // `sudo pbikiosk login` into the service's folder (pbikiosk:pbikiosk, uid 998).
        assert_eq!(owner_for(0, 998, 997), Some((998, 997)));
        // Root into a root folder, and the service user into its own: nothing to change.
        assert_eq!(owner_for(0, 0, 0), None);
        assert_eq!(owner_for(998, 998, 997), None);
        // Another user never tries to give the file away.
        assert_eq!(owner_for(1000, 998, 997), None);
    }

    /// On the real file system: written by root into a folder another user owns, the cache
    /// belongs to that user with mode 0600; written by anyone else, it stays theirs.
    #[test]
    fn a_cache_written_into_anothers_folder_is_theirs() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("state");
        fs::create_dir(&folder).unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let (uid, gid) = if euid == 0 {
            // Root: hand the folder to `nobody`, as the package hands /var/lib/pbikiosk to
            // the service user.
            std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).unwrap();
            (65534, 65534)
        } else {
            let m = fs::metadata(&folder).unwrap();
            (m.uid(), m.gid())
        };
        let cache = TokenCache::new(folder.join("token-cache.json"));
        cache.store(&grant("rt-owned")).unwrap();
        let m = fs::metadata(cache.path()).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        assert_eq!(m.mode() & 0o777, 0o600);
        // A second write (a renewal by login again) keeps it so.
        cache.store(&grant("rt-owned-2")).unwrap();
        let m = fs::metadata(cache.path()).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o600));
    }

    #[test]
    fn garbage_is_unusable_and_the_error_never_shows_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let cache = TokenCache::new(&path);
        for (text, why) in [
            ("not json rt-secret", "not valid JSON"),
            (
                r#"{"version":9,"tenant":"t","client_id":"c","refresh_token":"rt-secret"}"#,
                "another version",
            ),
            (
                r#"{"version":1,"tenant":"t","client_id":"c","refresh_token":""}"#,
                "no refresh token",
            ),
        ] {
            fs::write(&path, text).unwrap();
            let e = cache.load("t", "c").unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("rt-secret"), "{e}");
        }
        fs::write(&path, vec![b' '; 70 * 1024]).unwrap();
        let e = cache.load("t", "c").unwrap_err().to_string();
        assert!(e.contains("64 KiB"), "{e}");
    }

    #[test]
    fn a_folder_that_cannot_be_written_is_a_clear_error() {
        let cache = TokenCache::new("/proc/pbikiosk-no-such-dir/token-cache.json");
        let e = cache.store(&grant("rt-secret")).unwrap_err().to_string();
        assert!(e.contains("cannot write the token cache"), "{e}");
        assert!(!e.contains("rt-secret"), "{e}");
    }
}
