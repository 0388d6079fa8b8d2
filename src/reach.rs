//! Can this screen reach the embed host (`app.powerbi.com`) the way its web view does? `check`
//! asks the same of the report's content hosts, and of the sign-in and API hosts when a step
//! could not reach them.
//!
//! The web view says little when an embed frame cannot load: WebKit reports no error to the
//! page for a failed frame, and the player only sees a report that never renders. This probe
//! retraces the web view's way out — the same proxy (or `https_proxy`), the same extra CA — one
//! stage at a time (name, connection, proxy tunnel, TLS, an HTTP answer), each with its own
//! short deadline, so the screen can say which stage failed and what to ask IT for.

mod no_proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{NetworkSetting, ProxyCredentials};
use crate::problem::{Problem, ProblemId};
use crate::secret::Secret;
use crate::shell::ShellOptions;

pub(crate) use no_proxy::NoProxy;

/// How long one stage may take: long enough for a slow proxy, short enough that a black-holed
/// path is named within seconds.
pub(crate) const STAGE_TIMEOUT: Duration = Duration::from_secs(8);

/// The hosts a screen must reach, short enough for a status screen's fix (the README lists
/// Microsoft's whole allow-list; national clouds have their own names).
pub(crate) const REQUIRED_HOSTS: &str = "*.powerbi.com, *.analysis.windows.net, *.pbidedicated.windows.net and login.microsoftonline.com (port 443)";

/// How the web view goes out: through a proxy or directly, and which extra CA it trusts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Route {
    /// `host:port` of the HTTP proxy, if any.
    pub(crate) proxy: Option<String>,
    /// Hosts reached without `proxy` (`no_proxy`, when the proxy came from the environment).
    pub(crate) bypass: NoProxy,
    /// Certificates trusted on top of the system's roots.
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    /// `Proxy-Authorization` for the tunnel (`[network] proxy_credentials_file`).
    pub(crate) proxy_auth: Option<Secret>,
}

impl Route {
    /// The web view's route: the proxy it was given (for every host: the shell gives WebKit
    /// no exceptions), else `https_proxy` / `HTTPS_PROXY` from the environment with the hosts
    /// in `no_proxy` / `NO_PROXY` going direct (WebKit follows both when it is given no proxy),
    /// else direct.
    pub(crate) fn for_web_view(
        given: Option<String>,
        env: impl Fn(&str) -> Option<String>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Self {
        let first = |keys: [&str; 2]| {
            keys.into_iter()
                .find_map(|k| env(k).filter(|v| !v.trim().is_empty()))
        };
        if let Some(proxy) = given {
            return Self {
                proxy: Some(proxy),
                bypass: NoProxy::default(),
                extra_roots,
                proxy_auth: None,
            };
        }
        let proxy = first(["https_proxy", "HTTPS_PROXY"]).and_then(|v| proxy_authority(&v));
        let bypass = first(["no_proxy", "NO_PROXY"])
            .map(|v| NoProxy::parse(&v))
            .unwrap_or_default();
        Self {
            proxy,
            bypass,
            extra_roots,
            proxy_auth: None,
        }
    }

    /// The route `network` gives pbikiosk's own client to `scheme` URLs, or the web view when
    /// `web_view`: the environment's proxies when there is no `[network]` (the web view and
    /// reqwest read them differently), none for a `[network]` without a proxy, else the
    /// configured proxy with its credentials, for every host but its bypass list.
    pub(crate) fn for_network(
        network: &NetworkSetting,
        scheme: &str,
        web_view: bool,
        env: impl Fn(&str) -> Option<String>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Self {
        match network {
            NetworkSetting::FromEnvironment if web_view => {
                Self::for_web_view(None, env, extra_roots)
            }
            NetworkSetting::FromEnvironment => Self {
                extra_roots,
                ..Self::for_client(scheme, env)
            },
            NetworkSetting::Direct => Self {
                extra_roots,
                ..Self::default()
            },
            NetworkSetting::Proxy(p) => Self {
                proxy: Some(p.authority()),
                bypass: NoProxy::parse(&p.bypass().join(",")),
                extra_roots,
                proxy_auth: p.credentials.as_ref().map(basic_auth),
            },
        }
    }

    /// The route pbikiosk's own HTTP client (reqwest: sign-in, REST API) takes to a URL with
    /// `scheme`: `HTTPS_PROXY` / `HTTP_PROXY` by scheme, else `ALL_PROXY`, hosts in `NO_PROXY`
    /// direct; upper-case first, the first variable set counting even if empty, as it reads them.
    pub(crate) fn for_client(scheme: &str, env: impl Fn(&str) -> Option<String>) -> Self {
        let first = |keys: [&str; 2]| keys.into_iter().find_map(&env);
        let by_scheme = if scheme.eq_ignore_ascii_case("https") {
            first(["HTTPS_PROXY", "https_proxy"])
        } else {
            first(["HTTP_PROXY", "http_proxy"])
        };
        let proxy = by_scheme
            .filter(|v| !v.trim().is_empty())
            .or_else(|| first(["ALL_PROXY", "all_proxy"]).filter(|v| !v.trim().is_empty()))
            .and_then(|v| proxy_authority(&v));
        let bypass = first(["NO_PROXY", "no_proxy"])
            .map(|v| NoProxy::parse(&v))
            .unwrap_or_default();
        Self {
            proxy,
            bypass,
            extra_roots: Vec::new(),
            proxy_auth: None,
        }
    }

    /// The proxy a connection to `host` on `port` goes through, if any.
    pub(crate) fn proxy_for(&self, host: &str, port: u16) -> Option<&str> {
        self.proxy
            .as_deref()
            .filter(|_| !self.bypass.bypasses(host, port))
    }
}

impl Route {
    /// How the web view `shell` describes goes out, for probes of the embed host: its proxy
    /// (or `https_proxy`), and the certificates it trusts beyond the system's (the demo's
    /// front door, `cloud.ca_file`).
    pub(crate) fn of_web_view(shell: &ShellOptions) -> Self {
        let mut extra = Vec::new();
        if let Some((_, pem)) = &shell.trust {
            extra.extend(pem_certificates(pem.as_bytes()));
        }
        if let Some(path) = &shell.ca_file {
            extra.extend(ca_file_certificates(path));
        }
        match &shell.proxy {
            Some(p) => Self {
                proxy: Some(p.authority.clone()),
                bypass: NoProxy::parse(&p.ignore_hosts.join(",")),
                extra_roots: extra,
                proxy_auth: p.credentials.as_ref().map(basic_auth),
            },
            None => Self::for_web_view(None, |k| std::env::var(k).ok(), extra),
        }
    }
}

/// `Basic base64(user:password)`, the value of `Proxy-Authorization`.
fn basic_auth(c: &ProxyCredentials) -> Secret {
    use base64::Engine as _;
    let pair = format!("{}:{}", c.user, c.password.expose());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// `host:port` of a proxy setting such as `http://proxy.corp:3128/` or `proxy.corp:3128`.
fn proxy_authority(setting: &str) -> Option<String> {
    let setting = setting.trim();
    let with_scheme = if setting.contains("://") {
        setting.to_owned()
    } else {
        format!("http://{setting}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?;
    Some(format!("{host}:{}", url.port_or_known_default()?))
}

/// The certificates in `cloud.ca_file`, which the web view trusts on top of the system's.
pub(crate) fn ca_file_certificates(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    match std::fs::read(path) {
        Ok(pem) => pem_certificates(&pem),
        // The HTTP client reports an unreadable file as a config problem already.
        Err(e) => {
            tracing::debug!(error = %e, "cloud.ca_file not read for the probe");
            Vec::new()
        }
    }
}

/// Certificates from PEM text (the demo's front door, or `cloud.ca_file`).
pub(crate) fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).flatten().collect()
}

/// Where on the way to the host the probe stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Dns,
    Connect,
    Proxy,
    Tls,
    Http,
}

impl Stage {
    /// The stage in words, for "timed out at ...".
    pub(crate) fn what(self) -> &'static str {
        match self {
            Stage::Dns => "the name lookup (DNS)",
            Stage::Connect => "the connection",
            Stage::Proxy => "the proxy tunnel",
            Stage::Tls => "the TLS handshake",
            Stage::Http => "the HTTP request",
        }
    }
}

/// What went wrong at that stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    NotResolved {
        name: String,
    },
    Refused {
        to: String,
    },
    Reset {
        to: String,
    },
    /// The peer closed the connection without a word.
    Closed {
        to: String,
    },
    NoAnswer {
        within: Duration,
    },
    /// The proxy refused the tunnel with this status line, e.g. `502 Bad Gateway`.
    ProxyRefused {
        proxy: String,
        status: String,
    },
    /// The proxy could not resolve the host's name (Squid's `ERR_DNS_FAIL`).
    ProxyDns {
        proxy: String,
    },
    /// The proxy itself cannot be reached: `what` failed on the way to it.
    ProxyDown {
        proxy: String,
        what: String,
    },
    /// The proxy answered `407 Proxy Authentication Required`: credentials missing or wrong.
    ProxyAuthRequired {
        proxy: String,
        /// Whether credentials were sent (and refused).
        sent: bool,
    },
    Untrusted,
    /// The certificate is not trusted, and it came through a proxy: one that inspects TLS.
    UntrustedViaProxy {
        proxy: String,
    },
    Tls {
        detail: String,
    },
    HttpStatus {
        status: u16,
    },
    Other {
        detail: String,
    },
}

/// The embed host cannot be reached: which host, where it failed, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} unreachable at the {stage:?} stage: {}", self.what())]
pub(crate) struct Unreachable {
    pub(crate) host: String,
    pub(crate) stage: Stage,
    pub(crate) failure: Failure,
}

impl Unreachable {
    /// What failed, in words for the status screen.
    pub(crate) fn what(&self) -> String {
        let host = &self.host;
        match &self.failure {
            Failure::NotResolved { name } => format!("the name {name} could not be resolved (DNS)"),
            Failure::Refused { to } => format!("the connection to {to} was refused"),
            Failure::Reset { to } => format!("the connection to {to} was reset"),
            Failure::Closed { to } => format!("{to} closed the connection without answering"),
            Failure::NoAnswer { within } => format!(
                "timed out at {}: no answer within {} s",
                self.stage.what(),
                within.as_millis().div_ceil(1000).max(1)
            ),
            Failure::ProxyRefused { proxy, status } => {
                format!("the proxy {proxy} answered {status}")
            }
            Failure::ProxyDns { proxy } => {
                format!("the proxy {proxy} could not resolve the name {host} (DNS)")
            }
            Failure::ProxyDown { proxy, what } => {
                format!("the proxy {proxy} cannot be reached: {what}")
            }
            Failure::ProxyAuthRequired { proxy, sent: false } => format!(
                "the proxy {proxy} answered 407 Proxy Authentication Required, and no credentials are configured"
            ),
            Failure::ProxyAuthRequired { proxy, sent: true } => format!(
                "the proxy {proxy} answered 407 Proxy Authentication Required: it refused the credentials of network.proxy_credentials_file"
            ),
            Failure::Untrusted => format!(
                "the certificate presented for {host} is not trusted (a TLS-inspecting proxy?)"
            ),
            Failure::UntrustedViaProxy { proxy } => format!(
                "the certificate presented for {host} is not trusted: your proxy {proxy} inspects TLS"
            ),
            Failure::Tls { detail } => format!("the secure connection failed ({detail})"),
            Failure::HttpStatus { status } => format!("{host} answered HTTP {status}"),
            Failure::Other { detail } => detail.clone(),
        }
    }

    /// The problem to show: `embed_unreachable`, naming the host, the failure and its fix.
    pub(crate) fn to_problem(&self) -> Problem {
        let host = &self.host;
        let cause = format!(
            "Sign-in works, but the reports cannot load from {host}: {}.",
            self.what()
        );
        Problem::new(self.problem_id(ProblemId::EmbedUnreachable))
            .with_cause(cause)
            .with_fix(self.fix())
    }

    /// The proxy's own problem when the proxy is what failed (unreachable, `407`), else
    /// `otherwise`: the problem of the step the probe explains. (An inspecting proxy keeps
    /// the step's id: its cause and fix name the proxy.)
    pub(crate) fn problem_id(&self, otherwise: ProblemId) -> ProblemId {
        match self.failure {
            Failure::ProxyDown { .. } => ProblemId::ProxyUnreachable,
            Failure::ProxyAuthRequired { .. } => ProblemId::ProxyAuthRequired,
            _ => otherwise,
        }
    }

    /// What to do about it, for the stage and failure.
    pub(crate) fn fix(&self) -> String {
        let host = &self.host;
        match (&self.failure, self.stage) {
            (Failure::ProxyDns { .. } | Failure::NotResolved { .. }, _) => format!(
                "Check the DNS settings of this screen (or its proxy): it must resolve {REQUIRED_HOSTS}."
            ),
            (Failure::ProxyRefused { proxy, .. }, _) => {
                format!("Ask IT to allow on the proxy {proxy}: {REQUIRED_HOSTS}.")
            }
            (Failure::ProxyDown { proxy, .. }, _) => format!(
                "Check network.proxy (or https_proxy): is {proxy} right, and is the proxy running and reachable from this screen?"
            ),
            (Failure::ProxyAuthRequired { sent: false, .. }, _) => "Put the proxy's user:password in a file (mode 0640) and name it in [network] proxy_credentials_file.".to_owned(),
            (Failure::ProxyAuthRequired { sent: true, .. }, _) => "Correct the user:password in network.proxy_credentials_file (ask IT whether the proxy account is locked).".to_owned(),
            (Failure::UntrustedViaProxy { .. }, _) => "Your proxy inspects TLS: put its CA (PEM) in cloud.ca_file ([cloud] ca_file), or ask IT to exempt *.powerbi.com and login.microsoftonline.com. Check the clock.".to_owned(),
            (Failure::Untrusted | Failure::Tls { .. }, _) => "Behind a TLS-inspecting proxy: set cloud.ca_file to its CA certificate (PEM), or ask IT to exempt *.powerbi.com from inspection. Check the clock.".to_owned(),
            (Failure::HttpStatus { .. }, _) => format!(
                "Nothing usually: pbikiosk retries. If it persists, ask IT whether a proxy or filter in front of {host} fails."
            ),
            _ => format!(
                "Ask IT to allow this screen through the firewall (and proxy) to {REQUIRED_HOSTS}."
            ),
        }
    }
}

/// Probe `https://{host}/` the way the web view would reach it.
pub(crate) async fn probe(host: &str, route: &Route) -> Result<(), Unreachable> {
    probe_at(host, 443, route, STAGE_TIMEOUT, None).await
}

/// [`probe`] of `https://{host}:{port}/`, done by `deadline`: a stage still waiting then fails
/// as timed out (`check` has a person waiting and a budget for all its steps).
pub(crate) async fn probe_by(
    host: &str,
    port: u16,
    route: &Route,
    deadline: Instant,
) -> Result<(), Unreachable> {
    probe_at(host, port, route, STAGE_TIMEOUT, Some(deadline)).await
}

/// [`probe`] on any port, with the stage limit given (tests use local servers), each stage
/// also ending at `deadline` if there is one.
async fn probe_at(
    host: &str,
    port: u16,
    route: &Route,
    stage_limit: Duration,
    deadline: Option<Instant>,
) -> Result<(), Unreachable> {
    let fail = |stage, failure| Unreachable {
        host: host.to_owned(),
        stage,
        failure,
    };
    // What a stage starting now may take.
    let limit = || match deadline {
        Some(d) => stage_limit.min(d.saturating_duration_since(Instant::now())),
        None => stage_limit,
    };
    let stream = match route.proxy_for(host, port) {
        None => {
            let addrs: Vec<_> = within(limit(), tokio::net::lookup_host((host, port)))
                .await
                .map_err(|f| fail(Stage::Dns, f))?
                .map_err(|_| {
                    fail(
                        Stage::Dns,
                        Failure::NotResolved {
                            name: host.to_owned(),
                        },
                    )
                })?
                .collect();
            let to = host.to_owned();
            within(limit(), TcpStream::connect(&addrs[..]))
                .await
                .map_err(|f| fail(Stage::Connect, f))?
                .map_err(|e| fail(Stage::Connect, io_failure(&e, &to)))?
        }
        Some(proxy) => {
            let down = |f: Failure| {
                let what = Unreachable {
                    host: proxy.to_owned(),
                    stage: Stage::Connect,
                    failure: f,
                }
                .what();
                fail(
                    Stage::Connect,
                    Failure::ProxyDown {
                        proxy: proxy.to_owned(),
                        what,
                    },
                )
            };
            let mut s = within(limit(), TcpStream::connect(proxy))
                .await
                .map_err(down)?
                .map_err(|e| down(io_failure(&e, proxy)))?;
            let auth = route
                .proxy_auth
                .as_ref()
                .map(|a| format!("Proxy-Authorization: {}\r\n", a.expose()))
                .unwrap_or_default();
            let head = format!(
                "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Proxy-Connection: keep-alive\r\n\r\n"
            );
            let answer = within(limit(), async {
                s.write_all(head.as_bytes()).await?;
                read_head(&mut s).await
            })
            .await
            .map_err(|f| fail(Stage::Proxy, f))?
            .map_err(|e| fail(Stage::Proxy, io_failure(&e, proxy)))?;
            connect_answer(&answer, proxy, route.proxy_auth.is_some())
                .map_err(|f| fail(Stage::Proxy, f))?;
            s
        }
    };
    let via = route.proxy_for(host, port).map(str::to_owned);
    let tls = tls_connector(route).map_err(|detail| fail(Stage::Tls, Failure::Other { detail }))?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        fail(
            Stage::Tls,
            Failure::Other {
                detail: e.to_string(),
            },
        )
    })?;
    let mut stream = within(limit(), tls.connect(name, stream))
        .await
        .map_err(|f| fail(Stage::Tls, f))?
        .map_err(|e| {
            let failure = match (tls_failure(&e, host), &via) {
                (Failure::Untrusted, Some(proxy)) => Failure::UntrustedViaProxy {
                    proxy: proxy.clone(),
                },
                (f, _) => f,
            };
            fail(Stage::Tls, failure)
        })?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pbikiosk\r\nConnection: close\r\n\r\n"
    );
    let answer = within(limit(), async {
        stream.write_all(request.as_bytes()).await?;
        read_head(&mut stream).await
    })
    .await
    .map_err(|f| fail(Stage::Http, f))?
    .map_err(|e| fail(Stage::Http, io_failure(&e, host)))?;
    http_answer(&answer).map_err(|f| fail(Stage::Http, f))
}

async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| Failure::NoAnswer { within: limit })
}

/// Read up to the end of an HTTP head (or what came before the peer closed).
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The status code and reason of an HTTP answer's first line.
fn status_line(answer: &str) -> Option<(u16, String)> {
    let line = answer.lines().next()?;
    let mut parts = line.splitn(3, ' ');
    let _version = parts.next().filter(|v| v.starts_with("HTTP/"))?;
    let code = parts.next()?;
    let reason = parts.next().unwrap_or("").trim();
    Some((
        code.parse().ok()?,
        format!("{code} {reason}").trim().to_owned(),
    ))
}

/// Did the proxy open the tunnel? Squid names a name it could not resolve in `X-Squid-Error`;
/// other proxies say so in the page.
fn connect_answer(answer: &str, proxy: &str, sent_auth: bool) -> Result<(), Failure> {
    let Some((code, status)) = status_line(answer) else {
        return Err(Failure::Other {
            detail: format!("the proxy {proxy} did not answer as an HTTP proxy"),
        });
    };
    if (200..300).contains(&code) {
        return Ok(());
    }
    if code == 407 {
        return Err(Failure::ProxyAuthRequired {
            proxy: proxy.to_owned(),
            sent: sent_auth,
        });
    }
    let lower = answer.to_ascii_lowercase();
    if lower.contains("err_dns_fail")
        || lower.contains("unable to determine ip address")
        || lower.contains("could not resolve")
    {
        return Err(Failure::ProxyDns {
            proxy: proxy.to_owned(),
        });
    }
    Err(Failure::ProxyRefused {
        proxy: proxy.to_owned(),
        status,
    })
}

/// The host answered: a server error (5xx) means it, or a gateway in front of it, is broken.
/// Any other answer — even a 404 or 401 for `/` — proves the host can be reached.
fn http_answer(answer: &str) -> Result<(), Failure> {
    match status_line(answer) {
        Some((status, _)) if status >= 500 => Err(Failure::HttpStatus { status }),
        Some(_) => Ok(()),
        None => Err(Failure::Other {
            detail: "the answer was not HTTP".to_owned(),
        }),
    }
}

fn io_failure(e: &std::io::Error, to: &str) -> Failure {
    use std::io::ErrorKind as K;
    let to = to.to_owned();
    match e.kind() {
        K::ConnectionRefused => Failure::Refused { to },
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Failure::Reset { to },
        K::UnexpectedEof => Failure::Closed { to },
        K::TimedOut => Failure::NoAnswer {
            within: STAGE_TIMEOUT,
        },
        _ => Failure::Other {
            detail: format!("{to}: {e}"),
        },
    }
}

/// A failed handshake: a certificate the route does not trust, or the connection lost.
fn tls_failure(e: &std::io::Error, host: &str) -> Failure {
    match e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => Failure::Untrusted,
        Some(other) => Failure::Tls {
            detail: other.to_string(),
        },
        None => io_failure(e, host),
    }
}

fn tls_connector(route: &Route) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        route.extra_roots.iter().cloned(),
        provider.clone(),
    )
    .map_err(|e| e.to_string())?;
    // `dangerous()` is only rustls' door to a verifier of one's own: this one is the platform
    // verifier reqwest uses too, so the probe trusts exactly what pbikiosk's HTTP client does.
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::front::{EmbedFront, FaultSource};
    use crate::sim::scenario::EmbedFault;
    use tokio::net::TcpListener;

    const QUICK: Duration = Duration::from_millis(600);

    fn direct() -> Route {
        Route::default()
    }

    async fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[test]
    fn the_route_is_the_given_proxy_else_the_environment_else_direct() {
        let env = |k: &str| (k == "HTTPS_PROXY").then(|| "http://proxy.corp:3128/".to_owned());
        let none = |_: &str| None;
        let r = Route::for_web_view(Some("127.0.0.1:9".into()), env, Vec::new());
        assert_eq!(r.proxy.as_deref(), Some("127.0.0.1:9"));
        let r = Route::for_web_view(None, env, Vec::new());
        assert_eq!(r.proxy.as_deref(), Some("proxy.corp:3128"));
        assert_eq!(Route::for_web_view(None, none, Vec::new()).proxy, None);
        assert_eq!(proxy_authority("proxy:8080").as_deref(), Some("proxy:8080"));
        assert_eq!(proxy_authority("http://p").as_deref(), Some("p:80"));
    }

    #[test]
    fn no_proxy_sends_its_hosts_direct_unless_the_proxy_was_given() {
        let env = |k: &str| match k {
            "https_proxy" => Some("http://proxy.corp:3128".to_owned()),
            "NO_PROXY" => Some("localhost,.corp.local".to_owned()),
            "no_proxy" => Some("*.analysis.windows.net, 10.0.0.0/8".to_owned()),
            _ => None,
        };
        let r = Route::for_web_view(None, env, Vec::new());
        // The lower-case variable wins, as for the proxy itself.
        assert_eq!(r.proxy_for("app.powerbi.com", 443), Some("proxy.corp:3128"));
        assert_eq!(
            r.proxy_for("wabi-north-europe-redirect.analysis.windows.net", 443),
            None
        );
        assert_eq!(r.proxy_for("10.1.2.3", 443), None);
        assert_eq!(
            r.proxy_for("screen.corp.local", 443),
            Some("proxy.corp:3128")
        );
        // A proxy given to the web view applies to every host.
        let given = Route::for_web_view(Some("127.0.0.1:9".into()), env, Vec::new());
        assert_eq!(
            given.proxy_for("x.analysis.windows.net", 443),
            Some("127.0.0.1:9")
        );
        let upper = |k: &str| match k {
            "HTTPS_PROXY" => Some("proxy.corp:3128".to_owned()),
            "NO_PROXY" => Some("*".to_owned()),
            _ => None,
        };
        let all = Route::for_web_view(None, upper, Vec::new());
        assert_eq!(all.proxy.as_deref(), Some("proxy.corp:3128"));
        assert_eq!(all.proxy_for("app.powerbi.com", 443), None);
    }

    #[test]
    fn the_client_route_reads_the_variables_as_reqwest_does() {
        let env = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://up.corp:8080".to_owned()),
            "https_proxy" => Some("http://low.corp:3128".to_owned()),
            "ALL_PROXY" => Some("all.corp:1080".to_owned()),
            "NO_PROXY" => Some(String::new()),
            "no_proxy" => Some("*".to_owned()),
            _ => None,
        };
        let https = Route::for_client("https", env);
        // Upper-case first, and a set but empty NO_PROXY hides no_proxy.
        assert_eq!(
            https.proxy_for("login.microsoftonline.com", 443),
            Some("up.corp:8080")
        );
        let http = Route::for_client("http", env);
        assert_eq!(http.proxy_for("127.0.0.1", 80), Some("all.corp:1080"));
        assert_eq!(Route::for_client("https", |_: &str| None).proxy, None);
    }

    #[test]
    fn answers_are_classified_by_their_status_line() {
        assert_eq!(
            status_line("HTTP/1.1 502 Bad Gateway\r\n\r\n"),
            Some((502, "502 Bad Gateway".to_owned()))
        );
        assert_eq!(status_line("SSH-2.0-x"), None);
        assert_eq!(
            connect_answer("HTTP/1.1 200 Connection established\r\n\r\n", "p:1", false),
            Ok(())
        );
        assert_eq!(
            connect_answer("HTTP/1.1 403 Forbidden\r\n\r\n", "p:1", false),
            Err(Failure::ProxyRefused {
                proxy: "p:1".into(),
                status: "403 Forbidden".into()
            })
        );
        assert_eq!(
            connect_answer(
                "HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_DNS_FAIL 0\r\n\r\n",
                "p:1",
                false
            ),
            Err(Failure::ProxyDns {
                proxy: "p:1".into()
            })
        );
        assert_eq!(http_answer("HTTP/1.1 404 Not Found\r\n\r\n"), Ok(()));
        assert_eq!(
            http_answer("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            Err(Failure::HttpStatus { status: 503 })
        );
    }

    #[test]
    fn the_problem_names_the_host_what_failed_and_what_to_do() {
        let u = |stage, failure| Unreachable {
            host: "app.powerbi.com".into(),
            stage,
            failure,
        };
        let p = u(
            Stage::Proxy,
            Failure::ProxyRefused {
                proxy: "127.0.0.1:3128".into(),
                status: "502 Bad Gateway".into(),
            },
        )
        .to_problem();
        assert_eq!(p.id, ProblemId::EmbedUnreachable);
        assert_eq!(
            p.cause,
            "Sign-in works, but the reports cannot load from app.powerbi.com: the proxy 127.0.0.1:3128 answered 502 Bad Gateway."
        );
        assert!(p.fix.contains("on the proxy 127.0.0.1:3128:"), "{}", p.fix);
        assert!(p.fix.contains("*.analysis.windows.net"), "{}", p.fix);
        let p = u(Stage::Tls, Failure::Untrusted).to_problem();
        assert!(p.cause.contains("is not trusted (a TLS-inspecting proxy?)"));
        assert!(p.fix.contains("cloud.ca_file"));
        let p = u(
            Stage::Dns,
            Failure::NotResolved {
                name: "app.powerbi.com".into(),
            },
        )
        .to_problem();
        assert!(
            p.cause
                .contains("the name app.powerbi.com could not be resolved (DNS)")
        );
        assert!(p.fix.contains("DNS"));
        let p = u(
            Stage::Tls,
            Failure::NoAnswer {
                within: Duration::from_secs(8),
            },
        )
        .to_problem();
        assert!(p.cause.ends_with("no answer within 8 s."), "{}", p.cause);
        assert!(
            p.cause.contains("timed out at the TLS handshake: "),
            "{}",
            p.cause
        );
        assert!(p.fix.contains("firewall"));
        assert_eq!(p.retry_class(), crate::problem::RetryClass::Transient);
        // Every fix fits the status screen (five lines), whatever the stage.
        let proxy = "proxy.example-company.internal:3128".to_owned();
        for f in [
            Failure::ProxyDns {
                proxy: proxy.clone(),
            },
            Failure::ProxyRefused {
                proxy: proxy.clone(),
                status: "502 Bad Gateway".into(),
            },
            Failure::ProxyDown {
                proxy: proxy.clone(),
                what: "no answer within 8 s".into(),
            },
            Failure::ProxyAuthRequired {
                proxy: proxy.clone(),
                sent: true,
            },
            Failure::ProxyAuthRequired {
                proxy: proxy.clone(),
                sent: false,
            },
            Failure::UntrustedViaProxy {
                proxy: proxy.clone(),
            },
            Failure::Untrusted,
            Failure::HttpStatus { status: 502 },
            Failure::Refused {
                to: "app.powerbi.com".into(),
            },
        ] {
            let p = u(Stage::Proxy, f).to_problem();
            assert!(p.fix.len() <= 180, "{} chars: {}", p.fix.len(), p.fix);
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_fails_at_dns() {
        let e = probe_at("pbikiosk-probe.invalid", 443, &direct(), QUICK, None)
            .await
            .unwrap_err();
        assert_eq!(e.stage, Stage::Dns);
        assert!(matches!(e.failure, Failure::NotResolved { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let (l, port) = listener().await;
        drop(l);
        let e = probe_at("127.0.0.1", port, &direct(), QUICK, None)
            .await
            .unwrap_err();
        assert_eq!(
            (e.stage, &e.failure),
            (
                Stage::Connect,
                &Failure::Refused {
                    to: "127.0.0.1".into()
                }
            )
        );
    }

    #[tokio::test]
    async fn a_reset_and_a_silent_server_are_told_apart() {
        let (l, port) = listener().await;
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            s.set_zero_linger().unwrap();
            let mut s = s;
            let _ = s.read(&mut [0u8; 64]).await;
        });
        let e = probe_at("127.0.0.1", port, &direct(), QUICK, None)
            .await
            .unwrap_err();
        assert_eq!(e.stage, Stage::Tls);
        assert!(matches!(e.failure, Failure::Reset { .. }), "{e:?}");

        let (l, port) = listener().await;
        tokio::spawn(async move {
            let (_held, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = probe_at("127.0.0.1", port, &direct(), QUICK, None)
            .await
            .unwrap_err();
        assert_eq!(
            (e.stage, e.failure),
            (Stage::Tls, Failure::NoAnswer { within: QUICK })
        );
    }

    /// A host in `no_proxy` is probed directly, not through the proxy: here a closed local port
    /// is refused at the connection, where the proxy would have opened a tunnel.
    #[tokio::test]
    async fn a_host_in_no_proxy_is_probed_directly() {
        let (closed, port) = listener().await;
        drop(closed);
        let (proxy, proxy_port) = listener().await;
        let route = Route {
            proxy: Some(format!("127.0.0.1:{proxy_port}")),
            bypass: NoProxy::parse("127.0.0.1"),
            ..Route::default()
        };
        let e = probe_at("127.0.0.1", port, &route, QUICK, None)
            .await
            .unwrap_err();
        assert_eq!(e.stage, Stage::Connect, "{e:?}");
        assert!(matches!(e.failure, Failure::Refused { .. }), "{e:?}");
        // Nothing came to the proxy.
        let asked = tokio::time::timeout(Duration::from_millis(100), proxy.accept()).await;
        assert!(asked.is_err(), "the proxy was asked");
    }

    /// A probe with a deadline ends by it, naming the stage it was waiting at: a host that
    /// hangs after the tunnel opens times out at the TLS handshake.
    #[tokio::test]
    async fn a_hanging_host_times_out_by_the_deadline_at_its_stage() {
        let router = axum::Router::new();
        let source: FaultSource = Arc::new(|| EmbedFault::Hang);
        let front = EmbedFront::start_with_faults(
            router,
            "app.powerbi.com",
            crate::sim::front::FrontCert::SelfSigned,
            source,
        )
        .await
        .unwrap();
        let route = Route {
            proxy: Some(front.proxy.to_string()),
            ..Route::default()
        };
        let started = Instant::now();
        let e = probe_by("app.powerbi.com", 443, &route, started + QUICK)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < QUICK + Duration::from_millis(300), "took {took:?}");
        assert_eq!(e.stage, Stage::Tls, "{e:?}");
        assert!(
            matches!(e.failure, Failure::NoAnswer { within } if within <= QUICK),
            "{e:?}"
        );
        let cause = e.to_problem().cause;
        assert!(
            cause.contains("timed out at the TLS handshake: no answer within 1 s"),
            "{cause}"
        );
    }

    /// Every fault of the simulator's front door, probed as the demo's web view goes out:
    /// through its proxy, trusting its certificate.
    #[tokio::test]
    async fn every_embed_fault_is_named_and_a_working_host_passes() {
        use std::sync::Mutex;
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let fault = Arc::new(Mutex::new(EmbedFault::None));
        let source: FaultSource = {
            let fault = fault.clone();
            Arc::new(move || *fault.lock().unwrap())
        };
        let front = EmbedFront::start_with_faults(
            router,
            "app.powerbi.com",
            crate::sim::front::FrontCert::SelfSigned,
            source,
        )
        .await
        .unwrap();
        let proxy = front.proxy.to_string();
        let route = Route {
            proxy: Some(proxy.clone()),
            extra_roots: pem_certificates(front.cert_pem.as_bytes()),
            ..Route::default()
        };
        let host = "app.powerbi.com";
        let expect = [
            (EmbedFault::None, None),
            (
                EmbedFault::Refuse,
                Some((
                    Stage::Proxy,
                    Failure::ProxyRefused {
                        proxy: proxy.clone(),
                        status: "502 Bad Gateway".into(),
                    },
                )),
            ),
            (
                EmbedFault::Dns,
                Some((
                    Stage::Proxy,
                    Failure::ProxyDns {
                        proxy: proxy.clone(),
                    },
                )),
            ),
            (
                EmbedFault::Reset,
                Some((Stage::Tls, Failure::Reset { to: host.into() })),
            ),
            (
                EmbedFault::Hang,
                Some((Stage::Tls, Failure::NoAnswer { within: QUICK })),
            ),
            (
                EmbedFault::Untrusted,
                // Through a proxy: the certificate is the proxy's doing, and named so.
                Some((
                    Stage::Tls,
                    Failure::UntrustedViaProxy {
                        proxy: proxy.clone(),
                    },
                )),
            ),
            (
                EmbedFault::Http502,
                Some((Stage::Http, Failure::HttpStatus { status: 502 })),
            ),
        ];
        for (f, want) in expect {
            *fault.lock().unwrap() = f;
            let got = probe_at(host, 443, &route, QUICK, None)
                .await
                .err()
                .map(|e| (e.stage, e.failure));
            assert_eq!(got, want, "{f:?}");
        }
        // Without the extra root the front door's certificate is not trusted either.
        *fault.lock().unwrap() = EmbedFault::None;
        let bare = Route {
            proxy: Some(proxy.clone()),
            ..Route::default()
        };
        let e = probe_at(host, 443, &bare, QUICK, None).await.unwrap_err();
        assert_eq!(
            (e.stage, e.failure),
            (Stage::Tls, Failure::UntrustedViaProxy { proxy })
        );
    }
}
