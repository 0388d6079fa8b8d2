//! Which files pbikiosk trusts: the configuration, the secret files and `cloud.ca_file`.
//!
//! Whoever can change one of them can send the password elsewhere (a changed `authority`),
//! swap the password, or make the kiosk trust their own proxy. So each must be owned by root or
//! by the user running pbikiosk (a developer's own file), and not be writable by group or
//! others. The decision ([`writers`]) is pure; [`open_regular`] does the I/O and never blocks
//! on a FIFO or device put where a file should be.

use std::fs;
use std::io;
use std::path::Path;

/// Why a file is not trusted, with the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Untrusted {
    /// Group or others may write it.
    Writable { mode: u32 },
    /// Owned by someone who is neither root nor the user running pbikiosk.
    Owner { uid: u32 },
}

impl Untrusted {
    /// What is wrong with `path`, for a message.
    pub(crate) fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            Untrusted::Writable { mode } => format!(
                "{p} can be changed by other users on this device (mode {:04o})",
                mode & 0o7777
            ),
            Untrusted::Owner { uid } => format!(
                "{p} belongs to user id {uid}, who is neither root nor the user pbikiosk runs as, so that user could change it"
            ),
        }
    }

    /// The exact command that fixes it.
    pub(crate) fn fix(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            Untrusted::Writable { .. } => {
                format!("Run `chmod go-w {p}` (as root), so only its owner can change it.")
            }
            Untrusted::Owner { .. } => {
                format!("Run `chown root {p}` (as root), so only root can change it.")
            }
        }
    }
}

/// Bits that let group or others change a file.
const GROUP_OTHERS_WRITE: u32 = 0o022;

/// Whether a file with this owner and mode may steer pbikiosk when it runs as `euid`.
pub(crate) fn writers(owner: u32, mode: u32, euid: u32) -> Result<(), Untrusted> {
    if owner != 0 && owner != euid {
        return Err(Untrusted::Owner { uid: owner });
    }
    if mode & GROUP_OTHERS_WRITE != 0 {
        return Err(Untrusted::Writable { mode });
    }
    Ok(())
}

/// [`writers`] for a file's metadata and this process.
#[cfg(unix)]
pub(crate) fn check(meta: &fs::Metadata) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    writers(meta.uid(), meta.mode(), euid)
}

#[cfg(not(unix))]
pub(crate) fn check(_meta: &fs::Metadata) -> Result<(), Untrusted> {
    Ok(())
}

/// Why [`open_regular`] gave up.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// A folder, FIFO, socket or device where a file should be.
    NotAFile(&'static str),
    Io(io::Error),
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading only if it is a regular file, without ever blocking: the type is
/// checked before opening, and the open itself is non-blocking so a FIFO swapped in between
/// cannot hang the caller (it is then refused by the second check, on the open file).
pub(crate) fn open_regular(path: &Path) -> Result<(fs::File, fs::Metadata), OpenError> {
    let before = fs::metadata(path).map_err(OpenError::Io)?;
    if !before.is_file() {
        return Err(OpenError::NotAFile(kind_of(&before)));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotAFile(kind_of(&meta)));
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn owner_must_be_root_or_the_user_running_pbikiosk() {
        assert_eq!(writers(0, 0o640, ME), Ok(()));
        assert_eq!(writers(ME, 0o600, ME), Ok(()));
        assert_eq!(writers(0, 0o600, 0), Ok(()));
        assert_eq!(
            writers(1001, 0o600, ME),
            Err(Untrusted::Owner { uid: 1001 })
        );
        // The service user itself never owns /etc/pbikiosk files; root's are fine for it.
        assert_eq!(writers(ME, 0o640, 0), Err(Untrusted::Owner { uid: ME }));
    }

    #[test]
    fn group_or_others_may_not_write() {
        for mode in [0o660, 0o666, 0o602, 0o620, 0o100622] {
            assert_eq!(
                writers(0, mode, ME),
                Err(Untrusted::Writable { mode }),
                "{mode:o}"
            );
        }
        for mode in [0o644, 0o640, 0o600, 0o400, 0o100640] {
            assert_eq!(writers(0, mode, ME), Ok(()), "{mode:o}");
        }
    }

    #[test]
    fn fixes_are_exact_commands() {
        let p = Path::new("/etc/pbikiosk/pbikiosk.toml");
        let w = Untrusted::Writable { mode: 0o100666 };
        assert!(w.describe(p).contains("0666"), "{}", w.describe(p));
        assert_eq!(
            w.fix(p),
            "Run `chmod go-w /etc/pbikiosk/pbikiosk.toml` (as root), so only its owner can change it."
        );
        let o = Untrusted::Owner { uid: 1001 };
        assert!(o.describe(p).contains("1001"));
        assert!(
            o.fix(p)
                .contains("`chown root /etc/pbikiosk/pbikiosk.toml`")
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Nobody writes to it: a blocking open would never return.
        match open_regular(&fifo) {
            Err(OpenError::NotAFile(kind)) => assert!(kind.contains("FIFO"), "{kind}"),
            other => panic!("{other:?}"),
        }
        match open_regular(dir.path()) {
            Err(OpenError::NotAFile(kind)) => assert_eq!(kind, "a folder"),
            other => panic!("{other:?}"),
        }
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(open_regular(&file).is_ok());
    }
}
