//! Setup from a phone: while the screen is not configured, it shows a QR code of a page on
//! the LAN (HTTPS with a per-device certificate, whose fingerprint is on screen too) and a
//! PIN. The installer's phone opens the page, enters the PIN and the sign-in values, watches
//! the live check, picks reports and saves; the player picks the saved file up and plays.
//!
//! - [`pin`]: the PIN, wrong-PIN limits and sessions (pure).
//! - [`tls`]: the device certificate.
//! - [`save`]: values to configuration, checked and written into the state directory.
//! - [`device`]: the device-code sign-in the phone starts and shows.
//! - [`server`]: the listener; [`page`]: the phone page.

pub(crate) mod device;
pub(crate) mod page;
pub(crate) mod pin;
pub(crate) mod save;
pub(crate) mod server;
pub(crate) mod tls;

use std::path::PathBuf;

use serde::Serialize;

/// What the screen and the loopback `/status` show while the setup page is open. The PIN is
/// a short-lived key for the person in front of the screen: it is on that screen anyway, and
/// `/status` only answers on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Announce {
    pub(crate) url: String,
    pub(crate) pin: String,
    /// The first bytes of the certificate's SHA-256 fingerprint.
    pub(crate) fingerprint: String,
}

/// The default state directory (systemd's `StateDirectory=pbikiosk`).
const DEFAULT_STATE_DIR: &str = "/var/lib/pbikiosk";

/// The service's state directory: systemd's `$STATE_DIRECTORY` (the first, if it names
/// several), else [`DEFAULT_STATE_DIR`].
pub(crate) fn state_dir(env: Option<&str>) -> PathBuf {
    env.and_then(|v| v.split(':').next())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_systemds_or_the_default() {
        assert_eq!(state_dir(None), PathBuf::from("/var/lib/pbikiosk"));
        assert_eq!(state_dir(Some("")), PathBuf::from("/var/lib/pbikiosk"));
        assert_eq!(
            state_dir(Some("/srv/k:/srv/other")),
            PathBuf::from("/srv/k")
        );
    }
}
