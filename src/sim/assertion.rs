//! The token endpoint's check of a client assertion (certificate credentials), in Entra ID's
//! order: the assertion's shape, the certificate it names (thumbprint among the app's
//! registered ones), the signature, the audience, then the time range.

use super::aad::AadError;
use super::scenario::App;
use crate::auth::certificate::{
    self, ASSERTION_TYPE, PublicCertificate, parse_assertion, read_certificate, verify_rs256,
};

/// Microsoft's clock leeway for `nbf` and `exp`.
const SKEW_SECS: i64 = 300;

/// The app's registered certificates (PEM in the scenario), read once per request; one that
/// cannot be read is skipped, as if it had not been uploaded.
fn registered(app: &App) -> Vec<PublicCertificate> {
    app.certificates
        .iter()
        .filter_map(|pem| certificate::certificates_in(pem).ok())
        .flatten()
        .filter_map(|der| read_certificate(&der).ok())
        .collect()
}

/// Check `client_assertion_type` and `client_assertion` from the form for `app`, at `now`,
/// where `audience_ok` says whether an `aud` names this token endpoint.
pub(crate) fn verify(
    app: &App,
    assertion_type: Option<&str>,
    assertion: Option<&str>,
    audience_ok: impl Fn(&str) -> bool,
    now: i64,
) -> Result<(), AadError> {
    if assertion_type != Some(ASSERTION_TYPE) {
        return Err(AadError::MissingParameter {
            name: "client_assertion_type",
        });
    }
    let jwt = assertion.ok_or(AadError::MissingParameter {
        name: "client_assertion",
    })?;
    let parsed = parse_assertion(jwt).ok_or(AadError::MalformedRequest)?;
    let x5t = parsed.header["x5t"].as_str();
    let x5t_s256 = parsed.header["x5t#S256"].as_str();
    let thumbprint_shown = x5t.or(x5t_s256).unwrap_or_default().to_owned();
    let certs = registered(app);
    let Some(cert) = certs
        .iter()
        .find(|c| x5t.is_some_and(|t| t == c.x5t) || x5t_s256.is_some_and(|t| t == c.x5t_s256))
    else {
        return Err(AadError::CertificateNotRegistered {
            thumbprint: thumbprint_shown,
            client_id: app.client_id.clone(),
        });
    };
    if parsed.header["alg"] != "RS256"
        || !verify_rs256(
            &cert.public_key,
            parsed.signing_input.as_bytes(),
            &parsed.signature,
        )
    {
        return Err(AadError::InvalidAssertionSignature {
            thumbprint: cert.thumbprint.clone(),
        });
    }
    if now >= cert.not_after {
        return Err(AadError::CertificateExpired {
            thumbprint: cert.thumbprint.clone(),
        });
    }
    let claims = &parsed.claims;
    if claims["iss"] != app.client_id.as_str() || claims["sub"] != app.client_id.as_str() {
        return Err(AadError::InvalidGrant);
    }
    if !claims["aud"].as_str().is_some_and(&audience_ok) {
        return Err(AadError::AssertionAudience);
    }
    let nbf = claims["nbf"].as_i64().unwrap_or(0);
    let exp = claims["exp"].as_i64();
    match exp {
        Some(exp) if nbf <= now + SKEW_SECS && now < exp + SKEW_SECS => Ok(()),
        _ => Err(AadError::AssertionTimeRange {
            now,
            nbf,
            exp: exp.unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::certificate::{ClientCertificate, generate};

    const NOW: i64 = 1_780_000_000;
    const DAY: i64 = 86_400;
    const AUD: &str = "http://127.0.0.1:1/contoso/oauth2/v2.0/token";

    fn app(certs: &[&str]) -> App {
        App {
            client_id: "c1".into(),
            name: "a".into(),
            secret: "s".into(),
            secret_expired: false,
            consented: true,
            workspaces: Vec::new(),
            certificates: certs.iter().map(|c| (*c).to_owned()).collect(),
            powerbi_allowed: true,
        }
    }

    fn check(app: &App, jwt: &str, now: i64) -> Result<(), AadError> {
        verify(app, Some(ASSERTION_TYPE), Some(jwt), |a| a == AUD, now)
    }

    #[test]
    fn each_refusal_is_microsofts() {
        let (cert, both) = generate(NOW - DAY, NOW + 30 * DAY).unwrap();
        let (_, other) = generate(NOW - DAY, NOW + 30 * DAY).unwrap();
        let c = ClientCertificate::from_pem(&both).unwrap();
        let o = ClientCertificate::from_pem(&other).unwrap();
        let good = app(&[&cert]);
        let jwt = |c: &ClientCertificate, aud: &str, at: i64| {
            c.assertion("c1", aud, at, "j").unwrap().expose().to_owned()
        };
        assert_eq!(check(&good, &jwt(&c, AUD, NOW), NOW), Ok(()));
        // A key whose certificate was never uploaded.
        assert!(matches!(
            check(&good, &jwt(&o, AUD, NOW), NOW),
            Err(AadError::CertificateNotRegistered { .. })
        ));
        // The registered certificate's thumbprint, signed with another key.
        let forged = {
            let mine = jwt(&c, AUD, NOW);
            let theirs = jwt(&o, AUD, NOW);
            let (head, _) = mine.rsplit_once('.').unwrap();
            let (_, sig) = theirs.rsplit_once('.').unwrap();
            format!("{head}.{sig}")
        };
        assert!(matches!(
            check(&good, &forged, NOW),
            Err(AadError::InvalidAssertionSignature { .. })
        ));
        assert_eq!(
            check(&good, &jwt(&c, "https://elsewhere/t", NOW), NOW),
            Err(AadError::AssertionAudience)
        );
        assert!(matches!(
            check(&good, &jwt(&c, AUD, NOW - 3600), NOW),
            Err(AadError::AssertionTimeRange { .. })
        ));
        assert!(matches!(
            check(&good, &jwt(&c, AUD, NOW), NOW + 31 * DAY),
            Err(AadError::CertificateExpired { .. })
        ));
        assert_eq!(
            verify(&good, None, Some("x"), |_| true, NOW),
            Err(AadError::MissingParameter {
                name: "client_assertion_type"
            })
        );
        assert_eq!(
            check(&good, "not.a-jwt", NOW),
            Err(AadError::MalformedRequest)
        );
    }
}
