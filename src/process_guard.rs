//! Protections the process takes for itself at start, while it is still single-threaded:
//! the secrets leave the environment, and the process cannot be dumped.
//!
//! A secret given in the environment (`PBIKIOSK_PASSWORD`, `PBIKIOSK_CLIENT_SECRET`) would
//! otherwise be inherited by every child (WebKit's network and web processes, which run
//! third-party JavaScript) and be readable in `/proc/<pid>/environ` and in a core dump.

use std::ffi::{CStr, c_char};

use crate::config::{SECRET_ENV_VARS, SecretSources};

/// Why the process could not be made undumpable.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot turn core dumps off (prctl PR_SET_DUMPABLE): {0}")]
    Dumpable(std::io::Error),
}

/// Read the secret sources (environment, credentials folder), then take the secrets out of
/// the environment, the bytes the kernel shows in `/proc/<pid>/environ` included.
///
/// The values read here are all the process will ever have: the returned sources are kept
/// for the life of the process and used again each time the service re-reads its changed
/// configuration, which still needs the password and the client secret.
///
/// # Safety
/// Call it first thing in `main`, before any other thread exists: it changes the
/// environment, which no other thread may read or write meanwhile.
pub unsafe fn take_secret_sources() -> SecretSources {
    let sources = SecretSources::from_process();
    for name in SECRET_ENV_VARS {
        // SAFETY: single-threaded, as this function's contract requires.
        unsafe { scrub_env_var(name) };
    }
    sources
}

/// No core dumps, and no `ptrace` or `/proc/<pid>/environ`/`mem` for other processes of the
/// same user: the process holds the password and tokens in memory.
pub fn forbid_core_dumps() -> Result<(), GuardError> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes integers only and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(GuardError::Dumpable(std::io::Error::last_os_error()))
    }
}

/// Overwrite `name`'s value in place with zeros, then remove it from the environment.
/// Removing alone is not enough: `/proc/<pid>/environ` shows the environment block the
/// process started with, which `unsetenv` leaves as it was.
///
/// # Safety
/// No other thread may use the environment meanwhile.
unsafe fn scrub_env_var(name: &str) {
    unsafe extern "C" {
        static mut environ: *mut *mut c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated strings, which
    // nothing else changes while we run (single-threaded); each string is writable memory of
    // this process (the initial block on the stack, or setenv's copies).
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let s = *entry;
            let bytes = CStr::from_ptr(s).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                std::ptr::write_bytes(s.add(prefix.len()), 0, bytes.len() - prefix.len());
            }
            entry = entry.add(1);
        }
        std::env::remove_var(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_dumps_can_be_turned_off() {
        // The test harness runs tests on threads; this one only asks the kernel.
        forbid_core_dumps().unwrap();
        // SAFETY: reads a flag only.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        assert_eq!(dumpable, 0);
    }
}
