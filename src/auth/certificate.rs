//! Certificate credentials: the app proves who it is with a signed JWT (a client assertion,
//! RFC 7523 as the Microsoft identity platform reads it) instead of sending a client secret.
//!
//! [`ClientCertificate::from_pem`] reads the PEM file an installer made with openssl (the
//! certificate and its RSA private key), checks that they belong together, and keeps the
//! certificate's thumbprints and validity. [`ClientCertificate::assertion`] is pure: the time
//! and the `jti` come from the caller, so the assertion's contents can be tested exactly.
//! The private key never leaves this module; `Debug` shows only the thumbprint.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::Secret;

/// `client_assertion_type` for a JWT client assertion.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid. Microsoft accepts up to a day; ten minutes covers a slow
/// network and a clock a little off without leaving a long-lived credential on the wire.
pub(crate) const ASSERTION_LIFETIME_SECS: i64 = 600;

/// `nbf` is set this far back, so a sign-in service whose clock is a little behind ours still
/// accepts the assertion.
const CLOCK_LEEWAY_SECS: i64 = 60;

/// Under this many days before the certificate expires, `check` warns.
pub(crate) const EXPIRY_WARNING_DAYS: i64 = 30;

/// Why a PEM file is not a usable client certificate. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertificateError {
    #[error("it is not PEM text (no -----BEGIN ...----- block could be read)")]
    NotPem,
    #[error("it holds no certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("it holds {0} certificates; only one is expected")]
    SeveralCertificates(usize),
    #[error(
        "it holds no private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
    )]
    NoPrivateKey,
    #[error("it holds {0} private keys; only one is expected")]
    SeveralKeys(usize),
    #[error("its private key is protected by a passphrase, which an unattended screen cannot type")]
    EncryptedKey,
    #[error("its certificate cannot be read as X.509")]
    BadCertificate,
    #[error(
        "its private key is not an RSA key of 2048 to 8192 bits (Microsoft's certificate credentials need RSA)"
    )]
    UnsupportedKey,
    #[error("its private key does not belong to its certificate")]
    KeyMismatch,
}

impl CertificateError {
    /// What an installer does about it, for `file` (as written in the config).
    pub(crate) fn fix(&self, file: &str) -> String {
        match self {
            Self::EncryptedKey => format!(
                "Remove the passphrase: `openssl pkey -in {file} -out key.pem` (asks for it once), then put the certificate and key.pem together into {file} again."
            ),
            Self::UnsupportedKey => {
                "Make an RSA certificate: `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj \"/CN=pbikiosk\"`, upload cert.pem, and put both files into one (see the README).".to_owned()
            }
            Self::KeyMismatch => format!(
                "Put the certificate together with the key it was made with into {file}: `cat cert.pem key.pem > {file}`."
            ),
            _ => format!(
                "{file} must hold one certificate and its private key, as PEM text: `cat cert.pem key.pem > {file}` (see the README for the openssl command that makes them)."
            ),
        }
    }
}

/// Where the certificate stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validity {
    /// Valid, with whole days left.
    Valid {
        days_left: i64,
    },
    /// Its `notBefore` is still ahead (or the device's clock is behind).
    NotYetValid,
    Expired,
}

/// The app's certificate and private key, read from one PEM file.
#[derive(Clone)]
pub struct ClientCertificate {
    key: Arc<RsaKeyPair>,
    /// `x5t`: base64url SHA-1 of the certificate's DER.
    x5t: String,
    /// `x5t#S256`: base64url SHA-256 of the certificate's DER.
    x5t_s256: String,
    /// Upper-case hex SHA-1, as the Azure portal lists it under "Certificates & secrets".
    thumbprint: String,
    not_before: i64,
    not_after: i64,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.thumbprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The registered identity of a certificate: what the simulator keeps, as Entra ID keeps the
/// uploaded `.cer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicCertificate {
    /// `RSAPublicKey` DER, as signature verification takes it.
    pub(crate) public_key: Vec<u8>,
    pub(crate) x5t: String,
    pub(crate) x5t_s256: String,
    pub(crate) thumbprint: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

/// Read one DER certificate: its thumbprints, validity and public key.
pub(crate) fn read_certificate(der: &[u8]) -> Result<PublicCertificate, CertificateError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| CertificateError::BadCertificate)?;
    let validity = cert.validity();
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let sha256 = digest::digest(&digest::SHA256, der);
    Ok(PublicCertificate {
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
        x5t_s256: URL_SAFE_NO_PAD.encode(sha256.as_ref()),
        thumbprint: sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// The public certificates in PEM text (an uploaded `.cer` may be PEM), as DER.
pub(crate) fn certificates_in(pem_text: &str) -> Result<Vec<Vec<u8>>, CertificateError> {
    let blocks = pem::parse_many(pem_text).map_err(|_| CertificateError::NotPem)?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

impl ClientCertificate {
    /// Read a PEM file's text: exactly one certificate and one unencrypted RSA private key
    /// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), in either order.
    pub(crate) fn from_pem(text: &str) -> Result<Self, CertificateError> {
        let blocks = pem::parse_many(text).map_err(|_| CertificateError::NotPem)?;
        if blocks.is_empty() {
            return Err(CertificateError::NotPem);
        }
        let certs: Vec<&pem::Pem> = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").collect();
        let keys: Vec<&pem::Pem> = blocks
            .iter()
            .filter(|b| b.tag().ends_with("PRIVATE KEY"))
            .collect();
        let cert = match certs.as_slice() {
            [] => return Err(CertificateError::NoCertificate),
            [one] => *one,
            many => return Err(CertificateError::SeveralCertificates(many.len())),
        };
        let key = match keys.as_slice() {
            [] => return Err(CertificateError::NoPrivateKey),
            [one] => *one,
            many => return Err(CertificateError::SeveralKeys(many.len())),
        };
        let key = match key.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(key.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(key.contents()),
            "ENCRYPTED PRIVATE KEY" => return Err(CertificateError::EncryptedKey),
            _ => return Err(CertificateError::UnsupportedKey),
        }
        .map_err(|_| CertificateError::UnsupportedKey)?;
        let public = read_certificate(cert.contents())?;
        if key.public_key().as_ref() != public.public_key.as_slice() {
            return Err(CertificateError::KeyMismatch);
        }
        Ok(Self {
            key: Arc::new(key),
            x5t: public.x5t,
            x5t_s256: public.x5t_s256,
            thumbprint: public.thumbprint,
            not_before: public.not_before,
            not_after: public.not_after,
        })
    }

    /// The SHA-1 thumbprint in hex, as the Azure portal shows it.
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// `notAfter` as Unix seconds.
    #[cfg(test)]
    pub(crate) fn not_after(&self) -> i64 {
        self.not_after
    }

    /// `notAfter` as a date and time for people (UTC).
    pub(crate) fn not_after_text(&self) -> String {
        chrono::DateTime::from_timestamp(self.not_after, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| self.not_after.to_string())
    }

    /// Where the certificate stands at `now` (Unix seconds).
    pub(crate) fn validity(&self, now: i64) -> Validity {
        if now >= self.not_after {
            Validity::Expired
        } else if now < self.not_before {
            Validity::NotYetValid
        } else {
            Validity::Valid {
                days_left: (self.not_after - now) / 86_400,
            }
        }
    }

    /// A signed client assertion for `client_id` at the token endpoint `audience`, issued at
    /// `now` (Unix seconds) with the unique id `jti`. RS256, with both thumbprint headers:
    /// `x5t` is what every Entra ID cloud reads, `x5t#S256` what it is moving to.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
        jti: &str,
    ) -> Result<Secret, AssertionError> {
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.x5t,
            "x5t#S256": self.x5t_s256,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now - CLOCK_LEEWAY_SECS,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| AssertionError)?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig)
        )))
    }
}

/// The private key refused to sign (never seen with a key `from_pem` accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client certificate's private key could not sign the sign-in request")]
pub(crate) struct AssertionError;

/// A JWT's parts as the simulator's token endpoint reads them.
#[derive(Debug)]
pub(crate) struct ParsedAssertion {
    pub(crate) header: serde_json::Value,
    pub(crate) claims: serde_json::Value,
    pub(crate) signing_input: String,
    pub(crate) signature: Vec<u8>,
}

/// Split and decode a compact JWS; `None` when it is not one.
pub(crate) fn parse_assertion(jwt: &str) -> Option<ParsedAssertion> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    Some(ParsedAssertion {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

/// Whether `signature` over `message` was made by the key of `public_key` (RS256).
pub(crate) fn verify_rs256(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Test and demo certificates: a fresh RSA key and a self-signed certificate valid from
/// `not_before` to `not_after` (Unix seconds), as PEM: `(certificate, certificate + key)`.
pub(crate) fn generate(not_before: i64, not_after: i64) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["pbikiosk".to_owned()])?;
    params.not_before = time_of(not_before);
    params.not_after = time_of(not_after);
    let cert = params.self_signed(&key)?;
    let cert_pem = cert.pem();
    let both = format!("{cert_pem}{}", key.serialize_pem());
    Ok((cert_pem, both))
}

fn time_of(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const NOW: i64 = 1_780_000_000;
    const DAY: i64 = 86_400;

    fn pair(from: i64, to: i64) -> (String, String) {
        generate(from, to).unwrap()
    }

    #[test]
    fn assertion_has_microsofts_header_and_claims_and_verifies() {
        let (cert_pem, both) = pair(NOW - DAY, NOW + 365 * DAY);
        let c = ClientCertificate::from_pem(&both).unwrap();
        let aud = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let client = "00000000-0000-0000-0000-000000000001";
        let jwt = c.assertion(client, aud, NOW, "jti-1").unwrap();
        let p = parse_assertion(jwt.expose()).unwrap();
        assert_eq!(p.header["alg"], "RS256");
        assert_eq!(p.header["typ"], "JWT");
        let der = &certificates_in(&cert_pem).unwrap()[0];
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let sha256 = digest::digest(&digest::SHA256, der);
        assert_eq!(p.header["x5t"], URL_SAFE_NO_PAD.encode(sha1.as_ref()));
        assert_eq!(
            p.header["x5t#S256"],
            URL_SAFE_NO_PAD.encode(sha256.as_ref())
        );
        assert_eq!(p.claims["aud"], aud);
        assert_eq!(p.claims["iss"], client);
        assert_eq!(p.claims["sub"], client);
        assert_eq!(p.claims["jti"], "jti-1");
        assert_eq!(p.claims["iat"], NOW);
        assert_eq!(p.claims["nbf"], NOW - CLOCK_LEEWAY_SECS);
        assert_eq!(p.claims["exp"], NOW + 600);
        let public = read_certificate(der).unwrap();
        assert!(verify_rs256(
            &public.public_key,
            p.signing_input.as_bytes(),
            &p.signature
        ));
        // A changed claim no longer verifies.
        let other = c.assertion(client, aud, NOW + 1, "jti-1").unwrap();
        let o = parse_assertion(other.expose()).unwrap();
        assert!(!verify_rs256(
            &public.public_key,
            p.signing_input.as_bytes(),
            &o.signature
        ));
        // Nothing of the key in Debug.
        let dbg = format!("{c:?}");
        assert!(
            dbg.contains(c.thumbprint()) && !dbg.contains("PRIVATE"),
            "{dbg}"
        );
    }

    /// The thumbprint of a fixed certificate, as `openssl x509 -fingerprint -sha1` prints it
    /// (colons removed): the value the Azure portal lists for the uploaded certificate.
    #[test]
    fn thumbprint_of_a_known_certificate() {
        let der = certificates_in(KNOWN_CERT).unwrap().remove(0);
        let p = read_certificate(&der).unwrap();
        assert_eq!(p.thumbprint, KNOWN_SHA1);
        assert_eq!(
            p.x5t,
            URL_SAFE_NO_PAD.encode(
                (0..KNOWN_SHA1.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&KNOWN_SHA1[i..i + 2], 16).unwrap())
                    .collect::<Vec<u8>>()
            )
        );
        assert_eq!(der_to_pem(&der), KNOWN_CERT);
    }

    #[test]
    fn validity_over_time() {
        let (_, both) = pair(NOW, NOW + 40 * DAY);
        let c = ClientCertificate::from_pem(&both).unwrap();
        assert_eq!(c.validity(NOW - 1), Validity::NotYetValid);
        assert_eq!(c.validity(NOW), Validity::Valid { days_left: 40 });
        assert_eq!(
            c.validity(NOW + 39 * DAY + 1),
            Validity::Valid { days_left: 0 }
        );
        assert_eq!(c.validity(NOW + 40 * DAY), Validity::Expired);
        assert_eq!(c.not_after(), NOW + 40 * DAY);
    }

    #[test]
    fn bad_files_are_named() {
        let (cert_a, both_a) = pair(NOW, NOW + DAY);
        let (_, both_b) = pair(NOW, NOW + DAY);
        let key_b = &both_b[both_b.find("-----BEGIN PRIVATE KEY").unwrap()..];
        let key_a = &both_a[both_a.find("-----BEGIN PRIVATE KEY").unwrap()..];
        let cases = [
            ("hello".to_owned(), CertificateError::NotPem),
            (cert_a.clone(), CertificateError::NoPrivateKey),
            (key_a.to_owned(), CertificateError::NoCertificate),
            (format!("{cert_a}{key_b}"), CertificateError::KeyMismatch),
            (
                format!("{cert_a}{cert_a}{key_a}"),
                CertificateError::SeveralCertificates(2),
            ),
            (
                format!("{cert_a}{key_a}{key_a}"),
                CertificateError::SeveralKeys(2),
            ),
            (
                format!(
                    "{cert_a}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                ),
                CertificateError::EncryptedKey,
            ),
            (
                format!("{cert_a}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                CertificateError::UnsupportedKey,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ClientCertificate::from_pem(&text).unwrap_err(), want);
            // No message or fix repeats the file's contents.
            let said = format!(
                "{want} {}",
                want.fix("/etc/pbikiosk/client-certificate.pem")
            );
            assert!(!said.contains("MII"), "{said}");
        }
        // Key first, then the certificate, is fine too.
        assert!(ClientCertificate::from_pem(&format!("{key_a}{cert_a}")).is_ok());
        // An EC key (not accepted by Microsoft's RS256 assertions) is named.
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_cert = rcgen::CertificateParams::new(vec!["x".to_owned()])
            .unwrap()
            .self_signed(&ec)
            .unwrap();
        assert_eq!(
            ClientCertificate::from_pem(&format!("{}{}", ec_cert.pem(), ec.serialize_pem()))
                .unwrap_err(),
            CertificateError::UnsupportedKey
        );
    }

    /// A certificate's DER as PEM text, as openssl writes it.
    fn der_to_pem(der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    const KNOWN_SHA1: &str = "F9170CDB32FF23CD0024CE69FF31DDEC3F96A40E";
    /// Made with `openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=pbikiosk-test`.
    const KNOWN_CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDETCCAfmgAwIBAgIULtYKAx6zi1ziInJJPTt9bUOmtZswDQYJKoZIhvcNAQEL\n\
BQAwGDEWMBQGA1UEAwwNcGJpa2lvc2stdGVzdDAeFw0yNjEyMDIwMjM2MTlaFw0z\n\
NjExMjkwMjM2MTlaMBgxFjAUBgNVBAMMDXBiaWtpb3NrLXRlc3QwggEiMA0GCSqG\n\
SIb3DQEBAQUAA4IBDwAwggEKAoIBAQCwQiFwtrhiYDzck3blRcMujjxr5cTMNBTo\n\
RyVEd4yaWJkZdQg5onngLHSymqAZ1FiSJI5Rug+fDLNkiLMXdoMKscJKQoA294EM\n\
5dWOCiKz2xm3gQQ8Djg/hq6d2dZhcF9NUNuMKmegmroovmckoRriBW+J4qXh2gCW\n\
HRW/wYQcKFR+OVzrKhXTSzpFD+WudGVi3X1kkq57pwyHWsdQIm2A0jrAWsctTs15\n\
ktOMyxYx5esIEmxNfDMuPxbwR4DKAOGkefItSC1aDc00iEqovDekCILZZS72/Xuc\n\
NoYVx1IRszqYUHj/fhrFzyFfXuHVbl7QkvUTtte9FUbsQ0vDKshdAgMBAAGjUzBR\n\
MB0GA1UdDgQWBBTqjoXqVQH00sTM/sna79Z45vZxbDAfBgNVHSMEGDAWgBTqjoXq\n\
VQH00sTM/sna79Z45vZxbDAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUA\n\
A4IBAQBRFfeC6hW8vzEARzdOoA0MPVQQa13A/5Q4Zws1Gc8/73zNWJRuBKH5im2E\n\
ndevlah6p6oknYm5AaPWkyJwQAsyxhRC4BS5fuCKEfMhGTEq6ctd7jziCJuPPnrm\n\
xohho8B+OMgHF9XDk8+VZjbYP1F72v6IFskoIkclNU+GS2GiqArqjWi3I/m3DbaQ\n\
LEhkIUVr9Oglc07VAxirGhpiC4kHfCO6GZy/LHKYeaOAD7MHT3MM+yjF3ziBPI7W\n\
D4RRHdu4MK6V4xBrg4TSdPxOx9RwAx4AHZUQvg/udIhF3zFiMJqSuCAMJw70DznZ\n\
lEnufNoBIExLIMpti3gDIjAt1HwP\n\
-----END CERTIFICATE-----\n\
";
}
