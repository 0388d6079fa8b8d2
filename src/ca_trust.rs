//! Whether the web view may trust a certificate it refused, because it chains to
//! `cloud.ca_file`.
//!
//! pbikiosk's own HTTP client trusts `cloud.ca_file` on top of the system roots (see
//! [`crate::net::build_client`]). WebKitGTK has no way to add a CA; it only reports the
//! certificates it refuses and lets us accept one certificate for one host. So the shell asks
//! this module about each refused certificate, and accepts it only when it chains to one of the
//! `ca_file` CAs, names the host, is valid now, and the host is one the web view may navigate
//! to. Pure: the PEM is read by the caller's I/O, and the clock is explicit.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Why `cloud.ca_file` cannot be used to judge certificates.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaFileError {
    #[error("it cannot be read: {0}")]
    Read(#[source] std::io::Error),
    #[error("it is not a PEM certificate bundle: {0}")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("it holds no certificate")]
    Empty,
    #[error("a certificate in it is not a usable CA: {0}")]
    BadCa(#[source] rustls::Error),
    #[error("its CAs cannot verify certificates: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

/// Why a refused certificate stays refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("there is no cloud.ca_file to check it against")]
    NoCaFile,
    #[error("{0} is not a host the web view may navigate to")]
    HostNotAllowed(String),
    #[error("{0} is not a DNS name")]
    NotADnsName(String),
    #[error("no certificate was presented")]
    NoCertificate,
    #[error("it does not pass verification against cloud.ca_file: {0}")]
    NotFromCaFile(#[source] rustls::Error),
}

/// The CAs of `cloud.ca_file`, ready to judge certificates the web view refused.
#[derive(Debug)]
pub(crate) struct CaFileTrust {
    verifier: Arc<WebPkiServerVerifier>,
    /// How many CAs the file holds, for the log.
    cas: usize,
}

impl CaFileTrust {
    /// The CAs of a PEM bundle (the contents of `cloud.ca_file`).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, CaFileError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(CaFileError::Pem)?)
                .map_err(CaFileError::BadCa)?;
        }
        if roots.is_empty() {
            return Err(CaFileError::Empty);
        }
        let cas = roots.len();
        // The same crypto provider as the HTTP client's, so both judge certificates alike.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(CaFileError::Verifier)?;
        Ok(Self { verifier, cas })
    }

    pub(crate) fn ca_count(&self) -> usize {
        self.cas
    }

    /// May the web view accept `chain` (DER: the presented certificate first, then the issuers
    /// the server sent) for `host`? Only when `host` is on `allowed_hosts` (as for navigation)
    /// and the certificate verifies against the `ca_file` CAs alone, for that host name, at
    /// `now`: the system roots play no part, so this never widens what WebKit already trusts
    /// beyond what the file's owner asked for.
    pub(crate) fn judge(
        &self,
        host: &str,
        chain: &[Vec<u8>],
        allowed_hosts: &[String],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        if !crate::shell::navigation_allowed(&format!("https://{host}/"), allowed_hosts) {
            return Err(Refusal::HostNotAllowed(host.to_owned()));
        }
        let name = ServerName::try_from(host).map_err(|_| Refusal::NotADnsName(host.to_owned()))?;
        if matches!(name, ServerName::IpAddress(_)) {
            return Err(Refusal::NotADnsName(host.to_owned()));
        }
        let (leaf, issuers) = chain.split_first().ok_or(Refusal::NoCertificate)?;
        let leaf = CertificateDer::from(leaf.as_slice());
        let issuers: Vec<CertificateDer<'_>> = issuers
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verifier
            .verify_server_cert(&leaf, &issuers, &name, &[], now)
            .map(|_| ())
            .map_err(Refusal::NotFromCaFile)
    }
}

/// How often a certificate already accepted is accepted again when refused once more: a frame
/// can load again before WebKit has taken the acceptance in. Bounded, so that a certificate
/// WebKit keeps refusing for another reason does not reload the frames forever.
const MAX_ACCEPTS: u32 = 3;

/// What to do about one certificate the web view refused.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Accept it for the host, then load the host's frames again. `again`: it was accepted
    /// before and refused once more.
    Accept { again: bool },
    /// Keep refusing it, for this reason (said once per certificate and host).
    Refuse(Refusal),
    /// Judged before, nothing to do: each resource of a host reports the same certificate.
    Known,
}

/// The web view's refusals over its life: judged once per certificate and host.
#[derive(Debug)]
pub(crate) struct Judgements {
    trust: Option<CaFileTrust>,
    allowed_hosts: Vec<String>,
    /// (host, presented certificate) -> times accepted (0: refused).
    seen: HashMap<(String, Vec<u8>), u32>,
}

impl Judgements {
    /// `trust`: the `ca_file` CAs, if the config names a usable file.
    pub(crate) fn new(trust: Option<CaFileTrust>, allowed_hosts: Vec<String>) -> Self {
        Self {
            trust,
            allowed_hosts,
            seen: HashMap::new(),
        }
    }

    /// The web view refused `chain` (DER, presented certificate first) for `host` at `now`.
    pub(crate) fn refused(&mut self, host: &str, chain: &[Vec<u8>], now: UnixTime) -> Verdict {
        let Some(leaf) = chain.first() else {
            return Verdict::Refuse(Refusal::NoCertificate);
        };
        let key = (host.to_ascii_lowercase(), leaf.clone());
        if let Some(accepts) = self.seen.get_mut(&key) {
            if *accepts == 0 || *accepts >= MAX_ACCEPTS {
                return Verdict::Known;
            }
            *accepts += 1;
            return Verdict::Accept { again: true };
        }
        let judged = match &self.trust {
            None => Err(Refusal::NoCaFile),
            Some(t) => t.judge(&key.0, chain, &self.allowed_hosts, now),
        };
        match judged {
            Ok(()) => {
                self.seen.insert(key, 1);
                Verdict::Accept { again: false }
            }
            Err(refusal) => {
                self.seen.insert(key, 0);
                Verdict::Refuse(refusal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::time::Duration;

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca_signed_by(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        match parent {
            Some(p) => CertifiedIssuer::signed_by(params, key, p).unwrap(),
            None => CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn ca(name: &str) -> Ca {
        ca_signed_by(name, None)
    }

    fn leaf(ca: &Ca, host: &str) -> Vec<u8> {
        let params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, ca).unwrap().der().to_vec()
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    fn hosts() -> Vec<String> {
        crate::shell::powerbi_hosts()
    }

    #[test]
    fn a_certificate_from_the_ca_file_for_an_allowed_host_is_accepted() {
        let corp = ca("Contoso Inspection CA");
        let trust = CaFileTrust::from_pem(corp.pem().as_bytes()).unwrap();
        assert_eq!(trust.ca_count(), 1);
        let cert = leaf(&corp, "app.powerbi.com");
        trust
            .judge("app.powerbi.com", &[cert], &hosts(), now())
            .unwrap();
    }

    #[test]
    fn an_intermediate_sent_by_the_server_is_followed() {
        let root = ca("Contoso Root");
        let mid = ca_signed_by("Contoso Proxy", Some(&root));
        let trust = CaFileTrust::from_pem(root.pem().as_bytes()).unwrap();
        let chain = [leaf(&mid, "app.powerbi.com"), mid.der().to_vec()];
        trust
            .judge("app.powerbi.com", &chain, &hosts(), now())
            .unwrap();
        // Without the intermediate, the leaf does not reach the file's root.
        let e = trust
            .judge("app.powerbi.com", &chain[..1], &hosts(), now())
            .unwrap_err();
        assert!(matches!(e, Refusal::NotFromCaFile(_)), "{e:?}");
    }

    #[test]
    fn anything_else_is_refused() {
        let corp = ca("Contoso Inspection CA");
        let other = ca("Someone Else");
        let trust = CaFileTrust::from_pem(corp.pem().as_bytes()).unwrap();
        let good = leaf(&corp, "app.powerbi.com");

        // Signed by another CA.
        let e = trust
            .judge(
                "app.powerbi.com",
                &[leaf(&other, "app.powerbi.com")],
                &hosts(),
                now(),
            )
            .unwrap_err();
        assert!(matches!(e, Refusal::NotFromCaFile(_)), "{e:?}");
        // Self-signed.
        let selfie = rcgen::generate_simple_self_signed(vec!["app.powerbi.com".to_owned()])
            .unwrap()
            .cert
            .der()
            .to_vec();
        let e = trust
            .judge("app.powerbi.com", &[selfie], &hosts(), now())
            .unwrap_err();
        assert!(matches!(e, Refusal::NotFromCaFile(_)), "{e:?}");
        // From the CA, but for another name.
        let e = trust
            .judge(
                "wabi.analysis.windows.net",
                std::slice::from_ref(&good),
                &hosts(),
                now(),
            )
            .unwrap_err();
        assert!(matches!(e, Refusal::NotFromCaFile(_)), "{e:?}");
        // From the CA and naming the host, but the host is off the allow-list.
        let evil = leaf(&corp, "example.com");
        let e = trust
            .judge("example.com", &[evil], &hosts(), now())
            .unwrap_err();
        assert!(matches!(e, Refusal::HostNotAllowed(_)), "{e:?}");
        // Long after it expired (rcgen's default validity ends in 4096).
        let later = UnixTime::since_unix_epoch(Duration::from_secs(4_200 * 365 * 86_400));
        let e = trust
            .judge(
                "app.powerbi.com",
                std::slice::from_ref(&good),
                &hosts(),
                later,
            )
            .unwrap_err();
        assert!(matches!(e, Refusal::NotFromCaFile(_)), "{e:?}");
        // Nothing presented; an address instead of a name.
        let e = trust
            .judge("app.powerbi.com", &[], &hosts(), now())
            .unwrap_err();
        assert!(matches!(e, Refusal::NoCertificate), "{e:?}");
        let e = trust
            .judge("127.0.0.1", &[good], &["127.0.0.1".to_owned()], now())
            .unwrap_err();
        assert!(matches!(e, Refusal::NotADnsName(_)), "{e:?}");
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        assert!(matches!(
            CaFileTrust::from_pem(b"").unwrap_err(),
            CaFileError::Empty
        ));
        assert!(matches!(
            CaFileTrust::from_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
                .unwrap_err(),
            CaFileError::Pem(_)
        ));
    }

    #[test]
    fn each_certificate_is_judged_once_per_host() {
        let corp = ca("Contoso Inspection CA");
        let trust = CaFileTrust::from_pem(corp.pem().as_bytes()).unwrap();
        let mut j = Judgements::new(Some(trust), hosts());
        let app = leaf(&corp, "app.powerbi.com");
        let chain = std::slice::from_ref(&app);
        assert!(matches!(
            j.refused("app.powerbi.com", chain, now()),
            Verdict::Accept { again: false }
        ));
        // Refused once more (a load that raced the acceptance): accepted again, a bounded
        // number of times.
        for _ in 1..MAX_ACCEPTS {
            assert!(matches!(
                j.refused("APP.powerbi.com", chain, now()),
                Verdict::Accept { again: true }
            ));
        }
        assert!(matches!(
            j.refused("app.powerbi.com", chain, now()),
            Verdict::Known
        ));
        // The same certificate for another host is judged for that host.
        assert!(matches!(
            j.refused("example.com", chain, now()),
            Verdict::Refuse(Refusal::HostNotAllowed(_))
        ));
        assert!(matches!(
            j.refused("example.com", chain, now()),
            Verdict::Known
        ));
        let stranger = leaf(&ca("Someone Else"), "app.powerbi.com");
        assert!(matches!(
            j.refused("app.powerbi.com", std::slice::from_ref(&stranger), now()),
            Verdict::Refuse(Refusal::NotFromCaFile(_))
        ));
        assert!(matches!(
            j.refused("app.powerbi.com", &[stranger], now()),
            Verdict::Known
        ));
        assert!(matches!(
            j.refused("app.powerbi.com", &[], now()),
            Verdict::Refuse(Refusal::NoCertificate)
        ));
    }

    #[test]
    fn without_a_ca_file_nothing_is_accepted() {
        let corp = ca("Contoso Inspection CA");
        let mut j = Judgements::new(None, hosts());
        let app = leaf(&corp, "app.powerbi.com");
        assert!(matches!(
            j.refused("app.powerbi.com", std::slice::from_ref(&app), now()),
            Verdict::Refuse(Refusal::NoCaFile)
        ));
        assert!(matches!(
            j.refused("app.powerbi.com", &[app], now()),
            Verdict::Known
        ));
    }
}
