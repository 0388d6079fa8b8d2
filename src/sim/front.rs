//! The simulator's front door for the webview: `https://app.powerbi.com` (and, for `check`'s
//! probes, the report's content hosts) on loopback.
//!
//! Microsoft's powerbi-client refuses embed URLs that are not `https://*.powerbi.com`, so the
//! demo and the end-to-end tests cannot point it at `http://127.0.0.1`. Instead the webview is
//! given this HTTP proxy: it answers `CONNECT app.powerbi.com:443` by terminating TLS itself
//! with a certificate made for this run only, and serves the simulator's routes inside the
//! tunnel. Every other host is refused, so nothing leaks to the real internet, and the webview
//! trusts the certificate for that one host only (see the shell). TLS for real hosts is never
//! weakened.
//!
//! It can also fail the way a company network fails the embed host ([`EmbedFault`], switched
//! at run time through the simulator's `embed_fault` control), so the player's detection of an
//! unreachable embed host can be tested end to end.
//!
//! With [`FrontCert::RunCa`] it stands in for a company's TLS-inspecting proxy instead: the
//! leaf is signed by a CA made for the run, which the player is given as `cloud.ca_file`, so
//! the report can only play if that file is trusted by the webview too.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::scenario::EmbedFault;

/// Where the front door reads the fault in force, once per connection.
pub type FaultSource = Arc<dyn Fn() -> EmbedFault + Send + Sync>;

/// Like [`FaultSource`], per host the front door answers for (lower-case, without port): a
/// company proxy can block a report's data host while it lets the embed host through.
pub type HostFaultSource = Arc<dyn Fn(&str) -> EmbedFault + Send + Sync>;

/// How long a hung tunnel is held open before it is dropped (longer than any client waits).
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// Every host `check` probes for the simulator's embeds: the embed host, the cluster its embed
/// URLs name, and Microsoft's CDN. A front door for all of them lets `check` pass end to end.
pub const SCREEN_HOSTS: [&str; 3] = [
    crate::demo::DEMO_EMBED_HOST,
    super::powerbi::CLUSTER,
    "content.powerapps.com",
];

/// How the front door's certificate is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontCert {
    /// A self-signed leaf, to trust for the host directly.
    SelfSigned,
    /// A leaf signed by a CA made for this run (the way a TLS-inspecting proxy signs), to trust
    /// through that CA.
    RunCa,
}

/// A running front door.
#[derive(Clone)]
pub struct EmbedFront {
    /// Where the webview's HTTP proxy setting must point.
    pub proxy: SocketAddr,
    /// The host it impersonates, e.g. `app.powerbi.com` (the first of `hosts`).
    pub host: String,
    /// Every host it answers for; any other is refused.
    pub hosts: Vec<String>,
    /// The throw-away certificate (PEM) it presents for `host`.
    pub cert_pem: String,
    /// With [`FrontCert::RunCa`]: the CA (PEM) that signed `cert_pem`.
    pub ca_pem: Option<String>,
}

impl EmbedFront {
    /// Start on an ephemeral loopback port, serving `router` as `https://{host}`.
    pub async fn start(router: axum::Router, host: &str, cert: FrontCert) -> std::io::Result<Self> {
        Self::start_with_faults(router, host, cert, Arc::new(|| EmbedFault::None)).await
    }

    /// Like [`EmbedFront::start`], failing as `faults` says at the time of each connection.
    pub async fn start_with_faults(
        router: axum::Router,
        host: &str,
        cert: FrontCert,
        faults: FaultSource,
    ) -> std::io::Result<Self> {
        Self::start_for_hosts(router, &[host], cert, Arc::new(move |_: &str| faults())).await
    }

    /// Serve `router` as `https://{host}` for every one of `hosts` (one certificate names them
    /// all), each failing as `faults` says for it at the time of each connection.
    pub async fn start_for_hosts(
        router: axum::Router,
        hosts: &[&str],
        cert: FrontCert,
        faults: HostFaultSource,
    ) -> std::io::Result<Self> {
        Self::start_for_hosts_on(router, hosts, cert, faults, 0).await
    }

    /// Like [`EmbedFront::start_for_hosts`], its proxy on loopback port `port` (0: any free
    /// one), for a config written before the simulator starts (a test image's).
    pub async fn start_for_hosts_on(
        router: axum::Router,
        hosts: &[&str],
        cert: FrontCert,
        faults: HostFaultSource,
        port: u16,
    ) -> std::io::Result<Self> {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let Some(host) = hosts.first().cloned() else {
            return Err(std::io::Error::other("the front door needs a host"));
        };
        let (acceptor, cert_pem, ca_pem) = acceptor_for(&hosts, cert)?;
        // A second certificate for the same hosts that nobody was told to trust: what the web
        // view meets behind a TLS-inspecting proxy whose CA it does not know.
        let (untrusted, _, _) = acceptor_for(&hosts, FrontCert::SelfSigned)?;
        let doors = Doors {
            acceptor,
            untrusted,
            router: answering_502_while(router, faults.clone()),
            hosts: hosts.clone(),
            faults,
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let proxy = listener.local_addr()?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let doors = doors.clone();
                tokio::spawn(async move {
                    if let Err(e) = tunnel(stream, &doors).await {
                        tracing::debug!(error = %e, "embed front connection ended");
                    }
                });
            }
        });
        Ok(Self {
            proxy,
            host,
            hosts,
            cert_pem,
            ca_pem,
        })
    }
}

/// A TLS acceptor with a fresh certificate for `hosts` made as `cert` says, that certificate
/// (PEM), and the CA that signed it (PEM) if one did.
fn acceptor_for(
    hosts: &[String],
    cert: FrontCert,
) -> std::io::Result<(TlsAcceptor, String, Option<String>)> {
    let err = |e: rcgen::Error| std::io::Error::other(format!("test certificate: {e}"));
    let key_pair = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(err)?;
    // Named for the (first) host, as a proxy's leaf is, rather than rcgen's placeholder name.
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(host) = hosts.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host.as_str());
    }
    let (leaf, ca_pem) = match cert {
        FrontCert::SelfSigned => (params.self_signed(&key_pair).map_err(err)?, None),
        FrontCert::RunCa => {
            let ca = run_ca().map_err(err)?;
            (
                params.signed_by(&key_pair, &ca).map_err(err)?,
                Some(ca.pem()),
            )
        }
    };
    let err = |e: String| std::io::Error::other(e);
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .map_err(|e| err(e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(tls)), leaf.pem(), ca_pem))
}

/// A CA for this run only, named so that a log or a certificate viewer says what it is.
fn run_ca() -> Result<rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "pbikiosk simulator inspection CA (this run only)",
    );
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)
}

/// Everything one connection may need.
#[derive(Clone)]
struct Doors {
    acceptor: TlsAcceptor,
    untrusted: TlsAcceptor,
    router: axum::Router,
    /// The hosts answered, lower-case.
    hosts: Vec<String>,
    faults: HostFaultSource,
}

impl Doors {
    /// The host a `CONNECT host:443` asks for, if it is one of ours.
    fn host_of(&self, authority: &str) -> Option<&str> {
        let (host, port) = authority.rsplit_once(':')?;
        let host = host.to_ascii_lowercase();
        (port == "443")
            .then(|| self.hosts.iter().find(|h| **h == host))
            .flatten()
            .map(String::as_str)
    }
}

/// A Squid-style error answer to the CONNECT: the status line, Squid's `X-Squid-Error` header
/// and a short HTML page.
fn squid_error(squid_code: &str, page: &str) -> String {
    let body = format!("<html><body>{page}</body></html>");
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nX-Squid-Error: {squid_code}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn tunnel(mut stream: TcpStream, doors: &Doors) -> std::io::Result<()> {
    // Read the request head: "CONNECT host:443 HTTP/1.1\r\n...\r\n\r\n".
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&head);
    let mut words = first.split_whitespace();
    let (method, authority) = (words.next(), words.next());
    let target = match (method, authority.and_then(|a| doors.host_of(a))) {
        (Some("CONNECT"), Some(host)) => host.to_owned(),
        _ => {
            tracing::info!(
                request = first.lines().next().unwrap_or(""),
                "demo proxy refused a request for another host"
            );
            stream
                .write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    };
    let fault = (doors.faults)(&target);
    match fault {
        // What Squid answers when the upstream refused the connection.
        EmbedFault::Refuse => {
            let page = "The connection to the server was refused.";
            return answer(stream, &squid_error("ERR_CONNECT_FAIL 111", page)).await;
        }
        // What Squid answers when it cannot resolve the name. A real DNS failure cannot be
        // staged here: once the web view has a proxy it resolves nothing itself (the proxy
        // does), and making a name fail for a direct connection would need root changes to the
        // machine's resolver or a network namespace. The proxy's answer is also what a screen
        // behind a company proxy really sees.
        EmbedFault::Dns => {
            let page = format!("Unable to determine IP address from host name {target}.");
            return answer(stream, &squid_error("ERR_DNS_FAIL 0", &page)).await;
        }
        _ => {}
    }
    stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    let (acceptor, router) = match fault {
        EmbedFault::Reset => {
            // Wait for the client's first bytes (its TLS hello), then reset: SO_LINGER 0 makes
            // the close an RST instead of a FIN.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                .await;
            stream.set_zero_linger()?;
            return Ok(());
        }
        EmbedFault::Hang => {
            tokio::time::sleep(HANG).await;
            return Ok(());
        }
        EmbedFault::Untrusted => (&doors.untrusted, doors.router.clone()),
        EmbedFault::None | EmbedFault::Http502 | EmbedFault::Refuse | EmbedFault::Dns => {
            (&doors.acceptor, doors.router.clone())
        }
    };
    let tls = acceptor.accept(stream).await?;
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The host a request inside the tunnel is for (HTTP/2's authority, else `Host`), lower-case
/// and without port.
fn request_host(req: &axum::extract::Request) -> String {
    let raw = req.uri().host().map(str::to_owned).or_else(|| {
        req.headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
    });
    raw.unwrap_or_default().to_ascii_lowercase()
}

async fn answer(mut stream: TcpStream, response: &str) -> std::io::Result<()> {
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// `router`, answering every request with an error page while the fault for the request's host
/// is `http_502`, as a broken upstream does. Decided per request, not per connection: browsers
/// keep connections open, and a lifted fault must show on the next request.
fn answering_502_while(router: axum::Router, faults: HostFaultSource) -> axum::Router {
    use axum::response::IntoResponse;
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let host = request_host(&req);
            let failing = faults(&host) == EmbedFault::Http502;
            async move {
                if failing {
                    let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
                    (
                        axum::http::StatusCode::BAD_GATEWAY,
                        axum::response::Html(page),
                    )
                        .into_response()
                } else {
                    next.run(req).await
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A front door serving "fake embed" at `/reportEmbed`.
    async fn embed_front(cert: FrontCert) -> EmbedFront {
        let router = axum::Router::new().route(
            "/reportEmbed",
            axum::routing::get(|| async { "fake embed" }),
        );
        EmbedFront::start(router, "app.powerbi.com", cert)
            .await
            .unwrap()
    }

    /// A client that goes through `front` and trusts only the certificates in `roots` (PEM).
    fn client_through(front: &EmbedFront, roots: &str) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", front.proxy)).unwrap())
            .tls_certs_only([reqwest::Certificate::from_pem(roots.as_bytes()).unwrap()])
    }

    async fn fetch_embed(client: &reqwest::Client) -> reqwest::Result<String> {
        client
            .get("https://app.powerbi.com/reportEmbed?reportId=1")
            .send()
            .await?
            .text()
            .await
    }

    #[tokio::test]
    async fn serves_the_router_as_the_host_and_refuses_others() {
        let front = embed_front(FrontCert::SelfSigned).await;
        assert_eq!(front.ca_pem, None);
        let client = client_through(&front, &front.cert_pem).build().unwrap();
        assert_eq!(fetch_embed(&client).await.unwrap(), "fake embed");
        // Any other host: the tunnel is refused, nothing goes out.
        let err = client.get("https://example.com/").send().await.unwrap_err();
        assert!(err.is_connect() || err.to_string().contains("403"), "{err}");
        let err = client.get("http://example.com/").send().await;
        match err {
            Ok(r) => assert_eq!(r.status(), 403),
            Err(e) => assert!(e.is_connect(), "{e}"),
        }
    }

    #[tokio::test]
    async fn fails_as_the_fault_in_force_says() {
        use std::sync::Mutex;
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let fault = Arc::new(Mutex::new(EmbedFault::None));
        let source: FaultSource = {
            let fault = fault.clone();
            Arc::new(move || *fault.lock().unwrap())
        };
        let front =
            EmbedFront::start_with_faults(router, "app.powerbi.com", FrontCert::SelfSigned, source)
                .await
                .unwrap();
        let client = client_through(&front, &front.cert_pem)
            .timeout(std::time::Duration::from_secs(2))
            // A fresh tunnel per request: the fault is read once per connection.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let get = || client.get("https://app.powerbi.com/").send();
        let set = |f| *fault.lock().unwrap() = f;

        assert_eq!(get().await.unwrap().text().await.unwrap(), "ok");
        set(EmbedFault::Http502);
        assert_eq!(get().await.unwrap().status(), 502);
        for f in [
            EmbedFault::Refuse,
            EmbedFault::Dns,
            EmbedFault::Reset,
            EmbedFault::Untrusted,
        ] {
            set(f);
            let e = get().await.unwrap_err();
            assert!(e.is_connect(), "{f:?}: {e:?}");
        }
        set(EmbedFault::Hang);
        assert!(get().await.unwrap_err().is_timeout());
        set(EmbedFault::None);
        assert_eq!(get().await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn each_host_answers_with_its_own_fault() {
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let faults: HostFaultSource = Arc::new(|host: &str| match host {
            "data.analysis.windows.net" => EmbedFault::Http502,
            "content.powerapps.com" => EmbedFault::Refuse,
            _ => EmbedFault::None,
        });
        let front = EmbedFront::start_for_hosts(
            router,
            &[
                "app.powerbi.com",
                "DATA.analysis.windows.net",
                "content.powerapps.com",
            ],
            FrontCert::SelfSigned,
            faults,
        )
        .await
        .unwrap();
        assert_eq!(front.host, "app.powerbi.com");
        assert_eq!(front.hosts.len(), 3);
        // One certificate names every host.
        let client = client_through(&front, &front.cert_pem).build().unwrap();
        let get = |url: &'static str| client.get(url).send();
        let ok = get("https://app.powerbi.com/").await.unwrap();
        assert_eq!(ok.text().await.unwrap(), "ok");
        let broken = get("https://data.analysis.windows.net/").await.unwrap();
        assert_eq!(broken.status(), 502);
        let refused = get("https://content.powerapps.com/").await.unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        let other = get("https://other.analysis.windows.net/")
            .await
            .unwrap_err();
        assert!(other.is_connect(), "{other:?}");
    }

    #[tokio::test]
    async fn with_a_run_ca_the_leaf_is_trusted_through_the_ca_only() {
        let front = embed_front(FrontCert::RunCa).await;
        let ca_pem = front.ca_pem.clone().expect("a CA");
        assert_ne!(ca_pem, front.cert_pem);
        let client = |roots: &str| client_through(&front, roots).build().unwrap();
        assert_eq!(fetch_embed(&client(&ca_pem)).await.unwrap(), "fake embed");
        // The leaf alone is no trust anchor: it is not self-signed.
        let err = fetch_embed(&client(&front.cert_pem)).await.unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err}");
    }
}
