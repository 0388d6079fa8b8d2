//! How the app registration proves itself in a token request: a client secret, or a
//! certificate (a signed client assertion). Every grant takes a [`ClientCredential`], so the
//! password flow and the service-principal flow authenticate the app the same way.

use super::certificate::{ASSERTION_TYPE, ClientCertificate, EXPIRY_WARNING_DAYS, Validity};
use crate::problem::{Problem, ProblemId};
use crate::secret::Secret;

/// The app's credential, as read from `[auth]`.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    /// `client_secret` / `client_secret_file` (or its environment and systemd sources).
    Secret(Secret),
    /// `client_certificate_file`.
    Certificate(Box<ClientCertificate>),
    /// A public client (`method = "device_code"`): a person signs in on their own phone, and
    /// the screen holds no credential of the app at all.
    Public,
}

impl ClientCredential {
    /// The client secret, when that is the credential.
    #[cfg(test)]
    pub(crate) fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Secret(s) => Some(s),
            Self::Certificate(_) | Self::Public => None,
        }
    }

    /// The form fields that authenticate `client_id` at `token_url`, at `now` (Unix seconds),
    /// with `jti` as the assertion's unique id. An expired certificate is refused here, before
    /// anything is sent: Microsoft would refuse it too, and the installer gets a problem that
    /// names the certificate and its date instead of a signature error.
    pub(crate) fn form_fields(
        &self,
        client_id: &str,
        token_url: &str,
        now: i64,
        jti: &str,
    ) -> Result<Vec<(&'static str, Secret)>, Problem> {
        match self {
            Self::Secret(s) => Ok(vec![("client_secret", s.clone())]),
            Self::Public => Ok(Vec::new()),
            Self::Certificate(c) => {
                if c.validity(now) == Validity::Expired {
                    return Err(expired_problem(c));
                }
                // Not seen with a key the config accepted; a person must look at the file.
                let assertion = c
                    .assertion(client_id, token_url, now, jti)
                    .map_err(|e| Problem::new(ProblemId::Config).with_cause(format!("{e}.")))?;
                Ok(vec![
                    ("client_assertion_type", Secret::new(ASSERTION_TYPE)),
                    ("client_assertion", assertion),
                ])
            }
        }
    }

    /// Name the certificate in a refusal that is about it, so the installer can compare the
    /// thumbprint with the ones the portal lists for the app.
    pub(crate) fn explain(&self, problem: Problem) -> Problem {
        match self {
            Self::Certificate(c) if problem.id == ProblemId::ClientCertificateNotRegistered => {
                let cause = format!(
                    "Microsoft does not know the certificate with thumbprint {} for this app, or the signature did not match it.",
                    c.thumbprint()
                );
                problem.with_cause(cause)
            }
            _ => problem,
        }
    }

    /// Whether this is a certificate past its end date at `now`.
    pub(crate) fn is_expired(&self, now: i64) -> bool {
        matches!(self, Self::Certificate(c) if c.validity(now) == Validity::Expired)
    }

    /// For `check`: what the certificate looks like at `now` (`None` for a client secret), and
    /// whether it expires soon.
    pub(crate) fn describe(&self, now: i64) -> Option<(String, bool)> {
        let Self::Certificate(c) = self else {
            return None;
        };
        let until = c.not_after_text();
        let thumb = c.thumbprint();
        Some(match c.validity(now) {
            Validity::Valid { days_left } if days_left < EXPIRY_WARNING_DAYS => (
                format!(
                    "WARNING: certificate {thumb} expires in {days_left} day(s), on {until}: make a new one and upload it to the app registration before then (see the README)"
                ),
                true,
            ),
            Validity::Valid { days_left } => (
                format!("certificate {thumb}, valid until {until} ({days_left} days)"),
                false,
            ),
            Validity::NotYetValid => (
                format!(
                    "certificate {thumb} is not valid yet by this device's clock (is the clock right? `timedatectl`)"
                ),
                true,
            ),
            Validity::Expired => (format!("certificate {thumb} expired on {until}"), true),
        })
    }
}

fn expired_problem(c: &ClientCertificate) -> Problem {
    Problem::new(ProblemId::ClientCertificateExpired).with_cause(format!(
        "The app's client certificate (thumbprint {}) expired on {}.",
        c.thumbprint(),
        c.not_after_text()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::certificate::{generate, parse_assertion};

    const NOW: i64 = 1_780_000_000;
    const DAY: i64 = 86_400;

    fn cert(from: i64, to: i64) -> ClientCredential {
        let (_, both) = generate(from, to).unwrap();
        ClientCredential::Certificate(Box::new(ClientCertificate::from_pem(&both).unwrap()))
    }

    #[test]
    fn a_secret_is_sent_as_client_secret() {
        let c = ClientCredential::Secret(Secret::new("s3cret"));
        let f = c.form_fields("id", "https://x/t", NOW, "j").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "client_secret");
        assert_eq!(f[0].1.expose(), "s3cret");
        assert_eq!(c.describe(NOW), None);
    }

    #[test]
    fn a_certificate_is_sent_as_a_jwt_bearer_assertion() {
        let c = cert(NOW - DAY, NOW + 100 * DAY);
        let f = c.form_fields("id", "https://x/t", NOW, "j").unwrap();
        assert_eq!(f[0].0, "client_assertion_type");
        assert_eq!(
            f[0].1.expose(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(f[1].0, "client_assertion");
        let p = parse_assertion(f[1].1.expose()).unwrap();
        assert_eq!(p.claims["aud"], "https://x/t");
        assert!(f.iter().all(|(k, _)| *k != "client_secret"));
        let (msg, warn) = c.describe(NOW).unwrap();
        assert!(!warn && msg.contains("100 days"), "{msg}");
    }

    #[test]
    fn an_unregistered_certificate_is_named_by_its_thumbprint() {
        let c = cert(NOW - DAY, NOW + DAY);
        let ClientCredential::Certificate(inner) = &c else {
            unreachable!()
        };
        let p = c.explain(Problem::new(ProblemId::ClientCertificateNotRegistered));
        assert!(p.cause.contains(inner.thumbprint()), "{}", p.cause);
        // Other refusals, and a secret, keep their own words.
        let other = c.explain(Problem::new(ProblemId::AppNotFound));
        assert_eq!(other.cause, ProblemId::AppNotFound.cause());
        let s = ClientCredential::Secret(Secret::new("x"))
            .explain(Problem::new(ProblemId::ClientCertificateNotRegistered));
        assert_eq!(s.cause, ProblemId::ClientCertificateNotRegistered.cause());
    }

    #[test]
    fn expiry_is_a_named_problem_and_near_expiry_a_warning() {
        let c = cert(NOW - 100 * DAY, NOW + 10 * DAY);
        let (msg, warn) = c.describe(NOW).unwrap();
        assert!(
            warn && msg.starts_with("WARNING") && msg.contains("10 day"),
            "{msg}"
        );
        // Still usable while it warns.
        assert!(c.form_fields("id", "u", NOW, "j").is_ok());
        let later = NOW + 10 * DAY;
        let p = c.form_fields("id", "u", later, "j").unwrap_err();
        assert_eq!(p.id, ProblemId::ClientCertificateExpired);
        assert!(p.cause.contains("expired on"), "{}", p.cause);
        let (msg, warn) = c.describe(later).unwrap();
        assert!(warn && msg.contains("expired"), "{msg}");
        assert!(c.is_expired(later) && !c.is_expired(NOW));
    }
}
