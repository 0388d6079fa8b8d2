//! `pbikiosk import`: the settings an installer put on the FAT boot partition
//! (`/boot/firmware/pbikiosk.toml`, else `/boot/pbikiosk.toml`) become the device's config.
//!
//! The boot partition has no permissions, and a card pulled from the device can be read
//! anywhere: so the secrets become files in the secrets folder (0640 root:pbikiosk, as
//! `install.sh` writes them), and the boot copy is overwritten and removed, but only once
//! everything is written and flushed. The file is validated by the config's own rules
//! ([`crate::config::parse`]), with the boot file's name and lines in every error; an invalid
//! file is neither imported nor removed, and why is recorded in the service's state folder
//! ([`state`]) for the screen, `/status` and `check`.
//!
//! Order of writes, so that a power cut at any moment leaves whole files and a rerun finishes
//! the job: every new file is staged (written, flushed) beside its target and the staged set
//! validated; the files being replaced are copied to `.bak` (0600); the secret files are
//! renamed into place, then the config; the folder is flushed; only then is the boot copy
//! wiped and removed. Until that last step the boot file is still there, so the next boot
//! imports it again.

mod plan;
pub(crate) mod state;

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::Problem;
use crate::config::{self, ConfigError, SecretSources};

use self::plan::{Origin, Plan, SecretKind};
pub(crate) use self::state::Refusal;

/// The boot file's name on the FAT partition.
pub const BOOT_FILE: &str = "pbikiosk.toml";

/// Where the boot partition is mounted: Raspberry Pi OS Bookworm, then older systems and
/// FullPageOS.
pub const BOOT_DIRS: [&str; 2] = ["/boot/firmware", "/boot"];

/// An installer's file is a few KiB; anything bigger is not one.
const MAX_BOOT_FILE: u64 = 64 * 1024;
/// A certificate with its key is about 5 KiB.
const MAX_BOOT_SECRET_FILE: u64 = 16 * 1024;

/// Who owns what an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// root, group `pbikiosk` (what the package and `install.sh` set up).
    RootPbikiosk,
    /// Whoever runs the import, with its own group: for tests, which cannot chown.
    Unchanged,
    /// root and this group id: tests running as root, where group pbikiosk may not exist.
    #[doc(hidden)]
    RootGroup(u32),
}

/// What `pbikiosk import` was asked.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The boot folder; `None`: the first of [`BOOT_DIRS`] that holds [`BOOT_FILE`].
    pub from: Option<PathBuf>,
    /// The device's config file.
    pub config: PathBuf,
    /// Where the secret files go: outside `/etc`, which WebKit's web-process sandbox shows to
    /// report content.
    pub secrets_dir: PathBuf,
    /// Where a refusal is recorded (the service's state folder).
    pub state_dir: PathBuf,
    pub ownership: Ownership,
}

/// What an import did, for its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No boot file: nothing to do (a stale refusal is forgotten).
    NothingToImport,
    Imported {
        from: PathBuf,
        config: PathBuf,
        secret_files: Vec<PathBuf>,
        /// The config replaced, kept as `.bak`.
        backup: Option<PathBuf>,
        /// The boot-partition files removed.
        removed: Vec<PathBuf>,
    },
}

impl Outcome {
    /// What to print: paths only, never a value.
    pub fn describe(&self) -> String {
        match self {
            Outcome::NothingToImport => {
                "no pbikiosk.toml on the boot partition: nothing to import".to_owned()
            }
            Outcome::Imported {
                from,
                config,
                secret_files,
                backup,
                removed,
            } => {
                let mut out = format!("imported {} into {}", from.display(), config.display());
                for f in secret_files {
                    out += &format!("\nsecret written to {} (mode 0640)", f.display());
                }
                if let Some(b) = backup {
                    out += &format!("\nthe previous configuration is kept as {}", b.display());
                }
                for f in removed {
                    out += &format!("\nremoved {} from the boot partition", f.display());
                }
                out
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The boot file breaks a config rule: not imported, left on the boot partition.
    #[error("{0}")]
    Invalid(ConfigError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The package's group is missing, so the kiosk could not read what would be written.
    #[error("the group pbikiosk does not exist, so the kiosk could not read the imported files")]
    NoGroup,
}

impl ImportError {
    pub fn fix(&self) -> String {
        match self {
            ImportError::Invalid(e) => format!(
                "{} The file stays on the boot partition until it is correct.",
                e.fix()
            ),
            ImportError::Io { path, .. } => format!(
                "Run `pbikiosk import` as root, and check that {} is writable and the disk not full.",
                path.display()
            ),
            ImportError::NoGroup => {
                "Install the pbikiosk package (it creates the user and group pbikiosk).".to_owned()
            }
        }
    }

    /// 2: the file is invalid; 1: the device could not be written.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> ImportError + 'p {
    move |source| ImportError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The boot file to import, if any.
fn find(from: Option<&Path>) -> Option<PathBuf> {
    match from {
        Some(d) => Some(d.join(BOOT_FILE)).filter(|f| f.exists()),
        None => BOOT_DIRS
            .iter()
            .map(|d| Path::new(d).join(BOOT_FILE))
            .find(|f| f.exists()),
    }
}

/// The problem a recorded refusal shows, for the kiosk and `check`.
pub(crate) fn pending_problem(sources: &SecretSources) -> Option<Problem> {
    let dir = crate::setup::state_dir(sources.env.get("STATE_DIRECTORY").map(String::as_str));
    state::read(&dir).map(|r| r.to_problem())
}

/// The state file the kiosk watches, to notice a refusal recorded or cleared.
pub(crate) fn state_file(sources: &SecretSources) -> PathBuf {
    crate::setup::state_dir(sources.env.get("STATE_DIRECTORY").map(String::as_str))
        .join(state::FILE_NAME)
}

/// Run one import. An invalid file is recorded in the state folder (and returned as
/// [`ImportError::Invalid`]); a good import clears the record.
pub fn import(opts: &ImportOptions, sources: &SecretSources) -> Result<Outcome, ImportError> {
    let Some(fat_file) = find(opts.from.as_deref()) else {
        // The installer took the file away: what was said about it no longer applies.
        state::clear(&opts.state_dir).map_err(io_err("cannot update", &opts.state_dir))?;
        return Ok(Outcome::NothingToImport);
    };
    match import_file(&fat_file, opts, sources) {
        Ok(outcome) => {
            state::clear(&opts.state_dir).map_err(io_err("cannot update", &opts.state_dir))?;
            Ok(outcome)
        }
        Err(ImportError::Invalid(e)) => {
            let refusal = Refusal::from_error(&fat_file, &e);
            state::record(&opts.state_dir, &refusal)
                .map_err(io_err("cannot record the refusal in", &opts.state_dir))?;
            Err(ImportError::Invalid(e))
        }
        Err(e) => Err(e),
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ImportError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("cannot read", path))?;
    if !meta.is_file() {
        return Err(ImportError::Io {
            what: "not a regular file:",
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        });
    }
    if meta.len() > max {
        return Err(ImportError::Io {
            what: "too big to be a pbikiosk file:",
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::FileTooLarge),
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(max).read_to_end(&mut bytes))
        .map_err(io_err("cannot read", path))?;
    Ok(bytes)
}

fn import_file(
    fat_file: &Path,
    opts: &ImportOptions,
    sources: &SecretSources,
) -> Result<Outcome, ImportError> {
    let bytes = read_bounded(fat_file, MAX_BOOT_FILE)?;
    // The boot copy must go once imported: a boot partition mounted read-only would otherwise
    // have the same file imported at every boot, each time over the `.bak` of the one before.
    fs::OpenOptions::new()
        .write(true)
        .open(fat_file)
        .map_err(io_err(
            "the boot file cannot be removed, so it was not imported:",
            fat_file,
        ))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ImportError::Invalid(ConfigError::Unreadable {
            path: fat_file.to_path_buf(),
            source: io::Error::from(io::ErrorKind::InvalidData),
        })
    })?;
    let plan = match Plan::make(&text, fat_file).map_err(ImportError::Invalid)? {
        Some(plan) => plan,
        // A syntax error: the config rules word it.
        None => {
            return Err(ImportError::Invalid(
                config::parse(&text, fat_file, sources)
                    .err()
                    .unwrap_or_else(|| ConfigError::NotConfigured {
                        path: fat_file.to_path_buf(),
                    }),
            ));
        }
    };
    let config_dir = match opts.config.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let gid = match opts.ownership {
        Ownership::RootPbikiosk => Some(group_id("pbikiosk").ok_or(ImportError::NoGroup)?),
        Ownership::RootGroup(gid) => Some(gid),
        Ownership::Unchanged => None,
    };
    ensure_dir(&config_dir, gid)?;
    ensure_dir(&opts.secrets_dir, gid)?;

    // Stage the secret files.
    let mut staged_secrets = Vec::new();
    for s in &plan.secrets {
        let bytes = match &s.origin {
            Origin::Inline(secret) => format!("{}\n", secret.expose()).into_bytes(),
            Origin::BootFile(f) => read_bounded(f, MAX_BOOT_SECRET_FILE).map_err(|e| match e {
                ImportError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    ImportError::Invalid(ConfigError::Invalid {
                        path: fat_file.to_path_buf(),
                        key: s.original_key.clone(),
                        line: line_of_key(&text, &s.original_key),
                        message: format!("{} does not exist", f.display()),
                        fix: format!(
                            "Put the file beside {} on the boot partition, or correct {}.",
                            fat_file.display(),
                            s.original_key
                        ),
                    })
                }
                other => other,
            })?,
        };
        let target = opts.secrets_dir.join(s.kind.file_name());
        let tmp = stage(&target, &bytes, 0o640, gid)?;
        staged_secrets.push((s, target, tmp));
    }

    // Validate what the device would run: the config rules, on the changed text pointing at
    // the staged secret files, with the boot file's name (its lines are unchanged).
    let check_text = plan.render(|kind| {
        staged_secrets
            .iter()
            .find(|(s, _, _)| s.kind == kind)
            .map(|(_, _, tmp)| tmp.path().display().to_string())
            .unwrap_or_default()
    });
    if let Err(e) = config::parse(&check_text, fat_file, sources) {
        let staged: Vec<(String, &plan::SecretOut)> = staged_secrets
            .iter()
            .map(|(s, _, tmp)| (tmp.path().display().to_string(), *s))
            .collect();
        return Err(ImportError::Invalid(as_written(e, &staged)));
    }
    let final_text = plan.render(|kind: SecretKind| {
        opts.secrets_dir
            .join(kind.file_name())
            .display()
            .to_string()
    });
    let staged_config = stage(&opts.config, final_text.as_bytes(), 0o640, gid)?;

    // Keep what is replaced.
    let config_backup = backup(&opts.config)?;
    for (_, target, _) in &staged_secrets {
        backup(target)?;
    }
    let mut secret_files = Vec::new();
    for (_, target, tmp) in staged_secrets {
        tmp.persist(&target)
            .map_err(|e| io_err("cannot write", &target)(e.error))?;
        secret_files.push(target);
    }
    staged_config
        .persist(&opts.config)
        .map_err(|e| io_err("cannot write", &opts.config)(e.error))?;
    sync_dir(&config_dir).map_err(io_err("cannot flush", &config_dir))?;
    sync_dir(&opts.secrets_dir).map_err(io_err("cannot flush", &opts.secrets_dir))?;

    // Everything is on the device: now the boot copies go.
    let mut removed = Vec::new();
    let boot_secret_files = plan.secrets.iter().filter_map(|s| match &s.origin {
        Origin::BootFile(f) => Some(f.clone()),
        Origin::Inline(_) => None,
    });
    for f in boot_secret_files.chain(std::iter::once(fat_file.to_path_buf())) {
        wipe_and_remove(&f)?;
        removed.push(f);
    }
    if let Some(dir) = fat_file.parent() {
        sync_dir(dir).map_err(io_err("cannot flush", dir))?;
    }
    Ok(Outcome::Imported {
        from: fat_file.to_path_buf(),
        config: opts.config.clone(),
        secret_files,
        backup: config_backup,
        removed,
    })
}

/// The first line that sets `dotted`'s last part, for an error about a file the plan named.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let name = dotted.rsplit('.').next()?;
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// An error about the changed text, told in the words of the boot file: the key the installer
/// wrote and no staged file's name.
fn as_written(e: ConfigError, staged: &[(String, &plan::SecretOut)]) -> ConfigError {
    let words = |mut s: String| {
        for (tmp, out) in staged {
            s = s.replace(
                tmp,
                &format!(
                    "the {} file made from {}",
                    out.kind.file_name(),
                    out.original_key
                ),
            );
            s = s.replace(&out.written_key, &out.original_key);
        }
        s
    };
    match e {
        ConfigError::Invalid {
            path,
            key,
            line,
            message,
            fix,
        } => ConfigError::Invalid {
            path,
            key: words(key),
            line,
            message: words(message),
            fix: words(fix),
        },
        ConfigError::Untrusted { path, message, fix } => ConfigError::Untrusted {
            path,
            message: words(message),
            fix: words(fix),
        },
        other => other,
    }
}

#[cfg(unix)]
fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated name; the result is read at once, before any other call
    // into the group database, and this runs on one thread.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        None
    } else {
        // SAFETY: non-null pointer to the static group entry getgrnam returned.
        Some(unsafe { (*g).gr_gid })
    }
}

/// The config folder: 0750 root:pbikiosk as the package makes it, when it is missing.
fn ensure_dir(dir: &Path, gid: Option<u32>) -> Result<(), ImportError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750))
        .map_err(io_err("cannot set the mode of", dir))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(dir, Some(0), Some(gid)).map_err(io_err("cannot chown", dir))?;
    }
    Ok(())
}

/// `bytes` in a flushed temporary file beside `target`, with its final mode and owner.
fn stage(
    target: &Path,
    bytes: &[u8],
    mode: u32,
    gid: Option<u32>,
) -> Result<tempfile::NamedTempFile, ImportError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let write = || -> io::Result<tempfile::NamedTempFile> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.import."))
            .tempfile_in(dir)?;
        // Mode first: no moment where the content is readable by more than it will be.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(gid) = gid {
            std::os::unix::fs::fchown(tmp.as_file(), Some(0), Some(gid))?;
        }
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        Ok(tmp)
    };
    write().map_err(io_err("cannot write beside", target))
}

/// Copy `file` to `file.bak` (0600, owner the importer: root on a device), if it exists.
fn backup(file: &Path) -> Result<Option<PathBuf>, ImportError> {
    let bytes = match fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read", file)(e)),
    };
    let mut name = file.as_os_str().to_owned();
    name.push(".bak");
    let bak = PathBuf::from(name);
    let tmp = stage(&bak, &bytes, 0o600, None)?;
    tmp.persist(&bak)
        .map_err(|e| io_err("cannot write", &bak)(e.error))?;
    Ok(Some(bak))
}

/// Overwrite with zeros, flush, remove: a plain unlink on FAT leaves the clusters readable.
fn wipe_and_remove(file: &Path) -> Result<(), ImportError> {
    let wipe = || -> io::Result<()> {
        let len = fs::metadata(file)?.len();
        let mut f = fs::OpenOptions::new().write(true).open(file)?;
        f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
        f.sync_all()?;
        fs::remove_file(file)
    };
    wipe().map_err(io_err("cannot remove", file))
}

/// Flush a folder's entries (renames, removals) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
