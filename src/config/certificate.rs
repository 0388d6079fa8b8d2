//! `auth.client_certificate_file`: the app's certificate and private key, an alternative to
//! the client secret. Read with the same file checks as the secret files; whether it is
//! usable (one certificate, its RSA key, the two matching) is decided by
//! [`ClientCertificate::from_pem`]. Its dates are not a config error: an expired certificate is
//! the sign-in's problem `client_certificate_expired`, shown on screen and by `check`.

use super::ConfigError;
use super::secrets::{self, SecretFile};
use super::walk::{Ctx, Section};
use crate::auth::ClientCredential;
use crate::auth::certificate::ClientCertificate;

/// The `[auth]` key.
pub(super) const CERTIFICATE_FILE_KEY: &str = "client_certificate_file";

/// A PEM certificate with a 4096-bit RSA key is about 5 KiB; a chain or a stray file is not
/// read into memory whole.
const MAX_CERTIFICATE_FILE: u64 = 16 * 1024;

/// The app's credential: the certificate when `client_certificate_file` is set, else the
/// client secret from wherever it is given. Exactly one of the two may be configured.
pub(super) fn client_credential(cx: &Ctx, s: &Section) -> Result<ClientCredential, ConfigError> {
    let Some((file, span)) = s.string(cx, CERTIFICATE_FILE_KEY)? else {
        return Ok(ClientCredential::Secret(secrets::client_secret(cx, s)?));
    };
    let key = s.key(CERTIFICATE_FILE_KEY);
    for other in ["client_secret", "client_secret_file"] {
        if s.string(cx, other)?.is_some() {
            return Err(cx.invalid(
                &key,
                Some(&span),
                format!("both {key} and {} are set", s.key(other)),
                format!(
                    "Keep only one way for the app to prove itself: remove {other} to sign in with the certificate, or remove {CERTIFICATE_FILE_KEY} to use the client secret."
                ),
            ));
        }
    }
    if file.is_empty() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("{key} is empty"),
            format!(
                "Set {CERTIFICATE_FILE_KEY} to the PEM file with the app's certificate and private key, e.g. \"/var/lib/pbikiosk-secrets/client-certificate.pem\"."
            ),
        ));
    }
    let path = cx.resolve(file);
    let p = path.display();
    let fix_create = format!(
        "Create {p} with the certificate and its private key (`cat cert.pem key.pem > {p}`, owner root, group pbikiosk, mode 0640), or correct {key}."
    );
    let text = secrets::read_checked(
        cx,
        &SecretFile {
            key: &key,
            span: Some(&span),
            path: &path,
            what: "the app's certificate and private key",
            fix_create: &fix_create,
            check_mode: true,
            max: MAX_CERTIFICATE_FILE,
        },
    )?;
    let cert = ClientCertificate::from_pem(&text).map_err(|e| {
        cx.invalid(
            &key,
            Some(&span),
            format!("{p} cannot be used: {e}"),
            e.fix(&p.to_string()),
        )
    })?;
    tracing::debug!(key = %key, file = %p, thumbprint = cert.thumbprint(), "client certificate read");
    let credential = ClientCredential::Certificate(Box::new(cert));
    // Checked at load too, so the log says it as soon as the file is read; the sign-in refuses
    // an expired certificate itself (`client_certificate_expired`), with the clock of the day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some((said, true)) = credential.describe(now) {
        tracing::warn!(key = %key, file = %p, "{said}");
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use crate::auth::ClientCredential;
    use crate::auth::certificate::generate;
    use crate::config::test_support::*;
    use crate::config::{SecretSources, load};

    use std::fs;
    use std::path::Path;

    const NOW: i64 = 1_780_000_000;

    /// A config that names `cert.pem` next to it, with the rest of `auth_no_secrets()`.
    fn with_cert(dir: &Path, extra: &str) -> std::path::PathBuf {
        let text = format!(
            "{}password = \"{PW}\"\nclient_certificate_file = \"cert.pem\"\n{extra}",
            auth_no_secrets()
        );
        write(dir, "pbikiosk.toml", &text, 0o600)
    }

    #[test]
    fn a_certificate_file_is_the_apps_credential() {
        let dir = tempfile::tempdir().unwrap();
        let (_, both) = generate(NOW, NOW + 86_400).unwrap();
        write(dir.path(), "cert.pem", &both, 0o640);
        let cfg = load(&with_cert(dir.path(), ""), &SecretSources::default()).unwrap();
        match &cfg.auth.client {
            ClientCredential::Certificate(c) => assert_eq!(c.not_after(), NOW + 86_400),
            other => panic!("{other:?}"),
        }
        // The key never shows in the config's Debug.
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("PRIVATE KEY") && !dbg.contains("MII"),
            "{dbg}"
        );
    }

    #[test]
    fn certificate_and_secret_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, both) = generate(NOW, NOW + 86_400).unwrap();
        write(dir.path(), "cert.pem", &both, 0o600);
        for extra in ["client_secret = \"cs\"\n", "client_secret_file = \"cs\"\n"] {
            let e = load(&with_cert(dir.path(), extra), &SecretSources::default()).unwrap_err();
            let (msg, fix) = invalid(e, "auth.client_certificate_file", Some(6));
            assert!(msg.contains("both"), "{msg}");
            assert!(fix.contains("Keep only one"), "{fix}");
        }
    }

    #[test]
    fn certificate_file_checks_name_the_field_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_cert(dir.path(), "");
        let e = |cfg: &Path| load(cfg, &SecretSources::default()).unwrap_err();

        let (msg, fix) = invalid(e(&cfg), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(fix.contains("cat cert.pem key.pem"), "{fix}");

        let (_, both) = generate(NOW, NOW + 86_400).unwrap();
        write(dir.path(), "cert.pem", &both, 0o644);
        let (msg, fix) = invalid(e(&cfg), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("every user"), "{msg}");
        assert!(fix.contains("chmod o-rwx"), "{fix}");
        assert!(!msg.contains("PRIVATE") && !fix.contains("PRIVATE"));

        write(dir.path(), "cert.pem", &"x".repeat(16 * 1024 + 1), 0o600);
        let (msg, _) = invalid(e(&cfg), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("at most 16384"), "{msg}");

        let cert_only = &both[..both.find("-----BEGIN PRIVATE KEY").unwrap()];
        write(dir.path(), "cert.pem", cert_only, 0o600);
        let (msg, fix) = invalid(e(&cfg), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("no private key"), "{msg}");
        assert!(fix.contains("cat cert.pem key.pem"), "{fix}");

        fs::remove_file(dir.path().join("cert.pem")).unwrap();
        fs::create_dir(dir.path().join("cert.pem")).unwrap();
        let (msg, _) = invalid(e(&cfg), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("a folder"), "{msg}");

        let sub = dir.path().join("e");
        fs::create_dir(&sub).unwrap();
        let empty = write(
            &sub,
            "pbikiosk.toml",
            &format!(
                "{}password = \"{PW}\"\nclient_certificate_file = \"\"\n",
                auth_no_secrets()
            ),
            0o600,
        );
        let (msg, _) = invalid(e(&empty), "auth.client_certificate_file", Some(6));
        assert!(msg.contains("empty"), "{msg}");
    }
}
