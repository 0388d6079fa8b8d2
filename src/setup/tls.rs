//! The setup page's per-device TLS certificate: made on first use, kept in the state directory
//! (the key readable by the service's user only), and shown on screen by its fingerprint.
//!
//! No public CA can vouch for a screen on a private LAN, so the phone warns that the
//! certificate is not trusted. The installer checks the fingerprint the phone's certificate
//! viewer shows against the one on the screen: if they match, the connection goes to this
//! screen and nobody else on the network can read the password.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use tokio_rustls::TlsAcceptor;

use crate::config::trust;

/// Where the certificate lives inside the state directory.
const DIR: &str = "setup-tls";
const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Bad { path: PathBuf, message: String },
    #[error("the setup certificate cannot be made: {0}")]
    Make(String),
}

/// The device's certificate and key, ready to serve.
pub(crate) struct DeviceCert {
    pub(crate) acceptor: TlsAcceptor,
    /// DER of the certificate, for the fingerprint and for tests that trust exactly it.
    pub(crate) der: Vec<u8>,
}

impl DeviceCert {
    /// SHA-256 of the certificate, as certificate viewers show it: "3A F1 09 …".
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// The first eight bytes of [`Self::fingerprint`]: what the screen shows, enough to tell
    /// this certificate from an impostor's made to look like it.
    pub(crate) fn short_fingerprint(&self) -> String {
        short(&self.fingerprint())
    }
}

pub(crate) fn fingerprint(der: &[u8]) -> String {
    digest::digest(&digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn short(full: &str) -> String {
    full.split(' ').take(8).collect::<Vec<_>>().join(" ")
}

/// The certificate in `state_dir`, made now (for `names`: host names and addresses) if there
/// is none yet.
pub(crate) fn load_or_make(state_dir: &Path, names: &[String]) -> Result<DeviceCert, TlsError> {
    let dir = state_dir.join(DIR);
    let (cert_path, key_path) = (dir.join(CERT), dir.join(KEY));
    if !key_path.exists() || !cert_path.exists() {
        make(&dir, &cert_path, &key_path, names)?;
    }
    load(&cert_path, &key_path)
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn make(dir: &Path, cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    let err = |e: rcgen::Error| TlsError::Make(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pbikiosk setup (this device)");
    let cert = params.self_signed(&key).map_err(err)?;
    create_dir_private(dir)?;
    // The key first, created with its final mode: it is never readable by others, not even
    // for a moment.
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn create_dir_private(dir: &Path) -> Result<(), TlsError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io_err(dir))
}

/// Write `bytes` to a new file at `path` (replacing a leftover) with `mode`.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_trusted(path: &Path, private: bool) -> Result<String, TlsError> {
    let (file, meta) = trust::open_regular(path).map_err(|e| match e {
        trust::OpenError::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        trust::OpenError::NotAFile(kind) => TlsError::Bad {
            path: path.to_path_buf(),
            message: format!("this is {kind}, not a file"),
        },
    })?;
    if let Err(why) = trust::check(&meta) {
        return Err(TlsError::Bad {
            path: path.to_path_buf(),
            message: format!("{}; {}", why.describe(path), why.fix(path)),
        });
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::MetadataExt;
        if meta.mode() & 0o077 != 0 {
            return Err(TlsError::Bad {
                path: path.to_path_buf(),
                message: format!(
                    "the private key can be read by other users (mode {:04o}); run `chmod 0600 {}`",
                    meta.mode() & 0o7777,
                    path.display()
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    io::read_to_string(file).map_err(io_err(path))
}

fn load(cert_path: &Path, key_path: &Path) -> Result<DeviceCert, TlsError> {
    let bad = |path: &Path, message: String| TlsError::Bad {
        path: path.to_path_buf(),
        message,
    };
    let cert_pem = read_trusted(cert_path, false)?;
    let key_pem = read_trusted(key_path, true)?;
    let cert = pem::parse(&cert_pem).map_err(|e| bad(cert_path, e.to_string()))?;
    let key = pem::parse(&key_pem).map_err(|e| bad(key_path, e.to_string()))?;
    let der = cert.contents().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.contents().to_vec().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Make(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone().into()], key)
        .map_err(|e| bad(key_path, e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(DeviceCert {
        acceptor: TlsAcceptor::from(Arc::new(tls)),
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_private_and_the_same_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["kiosk".to_owned(), "192.168.1.20".to_owned()];
        let first = load_or_make(dir.path(), &names).unwrap();
        let again = load_or_make(dir.path(), &names).unwrap();
        assert_eq!(first.der, again.der, "the same certificate after a restart");
        let fp = first.fingerprint();
        assert_eq!(fp.split(' ').count(), 32);
        assert_eq!(first.short_fingerprint().split(' ').count(), 8);
        assert!(fp.starts_with(&first.short_fingerprint()));
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join(DIR).join(KEY);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A key others can read is refused, with the fix.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let Err(e) = load_or_make(dir.path(), &names) else {
            panic!("a readable key was used");
        };
        assert!(e.to_string().contains("chmod 0600"), "{e}");
    }
}
