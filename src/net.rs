//! The one HTTP client every outgoing request uses, and how transport failures become problems.

use std::error::Error as _;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::problem::{Problem, ProblemId};

/// Every request gets a deadline: a hung proxy must not freeze sign-in or the status screen.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Build the HTTP client. `ca_file` (PEM, one or more certificates) is trusted *on top of* the
/// system roots, for corporate proxies that inspect TLS.
pub fn build_client(ca_file: Option<&Path>) -> Result<reqwest::Client, Problem> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("pbikiosk/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // Sign-in answers are never redirects; following one could send a password elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Problem::new(ProblemId::Config)
                .with_cause(format!("cloud.ca_file {}: {e}", path.display()))
                .with_fix("Point cloud.ca_file at a readable PEM file, or remove the key.")
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Problem::new(ProblemId::Config)
                .with_cause(format!(
                    "cloud.ca_file {} is not a PEM certificate bundle: {e}",
                    path.display()
                ))
                .with_fix("Export the proxy's CA certificate as PEM (BEGIN CERTIFICATE).")
        })?;
        if certs.is_empty() {
            return Err(Problem::new(ProblemId::Config)
                .with_cause(format!(
                    "cloud.ca_file {} holds no certificate",
                    path.display()
                ))
                .with_fix("Export the proxy's CA certificate as PEM (BEGIN CERTIFICATE)."));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        Problem::new(ProblemId::Tls).with_cause(format!("the HTTPS client could not start: {e}"))
    })
}

/// Classify a failure to get any answer at all.
pub fn transport_problem(err: &reqwest::Error, what: &str) -> Problem {
    let chain = error_chain(err);
    if err.is_timeout() {
        return Problem::new(ProblemId::ServiceUnavailable)
            .with_cause(format!("{what} did not answer within the time limit."));
    }
    // rustls/webpki name certificate trouble in their messages; there is no typed error to
    // match through reqwest's boxed sources.
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return Problem::new(ProblemId::Tls)
            .with_cause(format!("The secure connection to {what} failed ({chain})."));
    }
    Problem::new(ProblemId::Network).with_cause(format!("{what} could not be reached ({chain})."))
}

fn error_chain(err: &reqwest::Error) -> String {
    // reqwest's own Display includes the URL; keep only the causes, which never hold secrets
    // (form bodies are not part of transport errors) but avoid noise.
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.join(": ")
}

/// `Retry-After` in seconds. Microsoft sends delta-seconds; an HTTP date is ignored and the
/// caller's own backoff applies.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = value.parse().ok()?;
    // A buggy or hostile server must not park the device for days.
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_caps() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(17)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn bad_ca_file_is_a_config_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        let err = build_client(Some(&p)).unwrap_err();
        assert_eq!(err.id, ProblemId::Config);
        assert!(err.cause.contains("cloud.ca_file"));
        std::fs::write(&p, "not a pem").unwrap();
        // Garbage must not silently become "trust nothing extra".
        let err = build_client(Some(&p)).unwrap_err();
        assert_eq!(err.id, ProblemId::Config);
        assert!(err.cause.contains("no certificate") || err.cause.contains("not a PEM"));
    }

    #[tokio::test]
    async fn refused_connection_is_network() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = build_client(None).unwrap();
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let p = transport_problem(&err, "the sign-in service");
        assert_eq!(p.id, ProblemId::Network, "{p}");
        assert!(p.cause.contains("the sign-in service"));
    }
}
