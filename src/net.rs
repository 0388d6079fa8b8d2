//! The one HTTP client every outgoing request uses, how a request is sent and its answer read,
//! how transport failures become problems, and the one retry loop for transient ones.

use std::error::Error as _;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

use crate::config::NetworkSetting;
use crate::problem::{Problem, ProblemId};

/// Every request gets a deadline: a hung proxy must not freeze sign-in or the status screen.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Build the HTTP client. `ca_file` (PEM, one or more certificates) is trusted *on top of* the
/// system roots, for corporate proxies that inspect TLS; `network` says which proxy every
/// request goes through (see [`apply_network`]).
pub fn build_client(
    ca_file: Option<&Path>,
    network: &NetworkSetting,
) -> Result<reqwest::Client, Problem> {
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
    builder = apply_network(builder, network)?;
    builder.build().map_err(|e| {
        Problem::new(ProblemId::Tls).with_cause(format!("the HTTPS client could not start: {e}"))
    })
}

/// The client for everything `cfg` names: its `cloud.ca_file` and its `[network]`.
pub(crate) fn client_for(cfg: &crate::config::Config) -> Result<reqwest::Client, Problem> {
    build_client(cfg.cloud.ca_file.as_deref(), &cfg.network)
}

/// Route the client as `network` says: the environment's proxies (reqwest reads
/// `HTTPS_PROXY`, `NO_PROXY`, ... itself), none, or the configured proxy with its credentials
/// for every host but this device and `no_proxy`.
fn apply_network(
    builder: reqwest::ClientBuilder,
    network: &NetworkSetting,
) -> Result<reqwest::ClientBuilder, Problem> {
    let p = match network {
        NetworkSetting::FromEnvironment => return Ok(builder),
        NetworkSetting::Direct => return Ok(builder.no_proxy()),
        NetworkSetting::Proxy(p) => p,
    };
    let mut proxy = reqwest::Proxy::all(p.url()).map_err(|e| {
        Problem::new(ProblemId::Config)
            .with_cause(format!("network.proxy {}: {e}", p.url()))
            .with_fix("Write network.proxy like \"http://proxy.corp.example:3128\".")
    })?;
    if let Some(c) = &p.credentials {
        proxy = proxy.basic_auth(&c.user, c.password.expose());
    }
    proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&p.bypass().join(",")));
    Ok(builder.proxy(proxy))
}

/// Classify a failure to get any answer at all.
pub fn transport_problem(err: &reqwest::Error, what: &str) -> Problem {
    let chain = error_chain(err);
    if err.is_timeout() {
        return Problem::new(ProblemId::ServiceUnavailable)
            .with_cause(format!("{what} did not answer within the time limit."));
    }
    // rustls/webpki name certificate trouble in their messages; there is no typed error to
    // match through reqwest's boxed sources. The same holds for the tunnel's 407 (hyper-util's
    // "proxy authorization required").
    let lower = chain.to_ascii_lowercase();
    if lower.contains("proxy authorization required") {
        return proxy_auth_problem(what);
    }
    // hyper-util's words for a tunnel (every https request through a proxy) whose connection
    // to the proxy itself failed.
    if lower.contains("tunnel error: failed to create underlying connection") {
        // The innermost cause (e.g. "Connection refused (os error 111)") is what a person
        // acts on; the layers above it only repeat that a tunnel failed.
        let mut root = err.source();
        while let Some(next) = root.and_then(|e| e.source()) {
            root = Some(next);
        }
        let root = root.map_or_else(|| chain.clone(), |e| e.to_string());
        return Problem::new(ProblemId::ProxyUnreachable).with_cause(format!(
            "The proxy on the way to {what} cannot be reached: {root}."
        ));
    }
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

/// The proxy wants (other) credentials on the way to `what`.
fn proxy_auth_problem(what: &str) -> Problem {
    Problem::new(ProblemId::ProxyAuthRequired).with_cause(format!(
        "The proxy on the way to {what} answered 407 Proxy Authentication Required: its credentials are missing or wrong."
    ))
}

/// `Retry-After` in seconds. Microsoft sends delta-seconds; an HTTP date is ignored and the
/// caller's own backoff applies.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = value.parse().ok()?;
    // A buggy or hostile server must not park the device for days.
    Some(Duration::from_secs(secs.min(3600)))
}

/// Sign-in answers are a few KiB of JSON (tokens are 2-4 KiB each). 1 MiB leaves ample room
/// for any answer Microsoft sends, while a proxy's or a hostile host's endless "error page"
/// cannot fill the memory of a small device.
pub(crate) const SIGN_IN_BODY_LIMIT: usize = 1 << 20;
/// Power BI lists (workspaces, reports, pages) of a large tenant run to a few MiB of JSON;
/// 16 MiB is far beyond any such answer and still harmless on a 1 GiB Raspberry Pi.
pub(crate) const API_BODY_LIMIT: usize = 16 << 20;

/// A whole answer, read: what every caller decides on.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    /// `Retry-After`, when the server sent one we understand.
    pub retry_after: Option<Duration>,
    pub body: String,
    /// Power BI's `X-PowerBI-Error-Info` header (bounded, printable only): the reason it gives
    /// there rather than in the body, e.g. `ServicePrincipalIsNotAllowedByTenantAdminSwitch`.
    pub error_info: Option<String>,
}

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// More than the limit was announced (`Content-Length`) or sent; reading stopped there.
    #[error("{host} sent an answer larger than {}", human_size(*limit))]
    TooLarge { host: String, limit: usize },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

impl BodyError {
    /// `what` names the service being called, e.g. "the Microsoft sign-in service".
    pub(crate) fn to_problem(&self, what: &str) -> Problem {
        match self {
            BodyError::TooLarge { host, limit } => Problem::new(ProblemId::ServiceUnavailable)
                .with_cause(format!(
                    "{what} at {host} sent an answer larger than {}; pbikiosk stopped reading it (a proxy or captive portal may be answering in its place).",
                    human_size(*limit)
                ))
                .with_fix(
                    "Nothing usually: pbikiosk retries. If it persists, check that [cloud] points at Microsoft and that no proxy answers in its place.",
                ),
            BodyError::Transport(e) => transport_problem(e, what),
        }
    }
}

/// `1 MiB`, `16 MiB`, or bytes for anything smaller.
fn human_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Where an answer came from, as `host[:port]`: never the path or query, which may carry ids.
fn origin(url: &url::Url) -> String {
    url[url::Position::BeforeHost..url::Position::AfterPort].to_owned()
}

/// Read `resp`'s body, at most `limit` bytes. A `Content-Length` above the limit is refused
/// before reading anything; a body without one (chunked) is read until it passes the limit,
/// then dropped, which closes the connection.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<String, BodyError> {
    let too_large = |resp: &reqwest::Response| BodyError::TooLarge {
        host: origin(resp.url()),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large(&resp));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(&resp));
        }
        body.extend_from_slice(&chunk);
    }
    // Microsoft answers in UTF-8; anything else is not a document we act on, but a lossy
    // reading still lets the classifiers name what it is.
    Ok(match String::from_utf8(body) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Send `request` and read the whole answer, at most `limit` bytes of body. Failing to get one
/// (connection, TLS, timeout, a body cut off or too large) becomes a [`Problem`] that names
/// `what` was being called; an error status is an answer, for the caller to classify.
pub(crate) async fn send_and_read(
    request: reqwest::RequestBuilder,
    what: &str,
    limit: usize,
) -> Result<Answer, Problem> {
    let resp = request
        .send()
        .await
        .map_err(|e| transport_problem(&e, what))?;
    let status = resp.status().as_u16();
    // Only a proxy answers 407 (a plain-http request it forwards); no Microsoft service does.
    if status == 407 {
        return Err(proxy_auth_problem(what));
    }
    let retry_after = retry_after(resp.headers());
    let error_info = resp
        .headers()
        .get("x-powerbi-error-info")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| !c.is_control()).take(200).collect());
    let body = read_body(resp, limit)
        .await
        .map_err(|e| e.to_problem(what))?;
    Ok(Answer {
        status,
        retry_after,
        body,
        error_info,
    })
}

/// Exponential backoff between attempts: `first`, doubled each time, at most `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Run `attempt` until it succeeds, fails in a way `retryable` refuses, or the next pause would
/// reach `deadline`; then the last problem is returned. `what` names the service in the debug log. `Retry-After` is a floor on the pause:
/// Microsoft's ask is honoured, but never shortens our own backoff.
///
/// The deadline is tokio's [`Instant`] so tests can run the clock paused; outside such tests it
/// is the same clock as `std::time::Instant`.
pub(crate) async fn retry<T, F, Fut>(
    what: &str,
    backoff: Backoff,
    deadline: Instant,
    retryable: impl Fn(&Problem) -> bool,
    mut attempt: F,
) -> Result<T, Problem>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Problem>>,
{
    let mut wait = backoff.first;
    loop {
        let problem = match attempt().await {
            Ok(v) => return Ok(v),
            Err(p) => p,
        };
        if !retryable(&problem) {
            return Err(problem);
        }
        let pause = problem.retry_after.unwrap_or(wait).max(wait);
        if Instant::now() + pause >= deadline {
            return Err(problem);
        }
        tracing::debug!(problem = %problem, pause_ms = pause.as_millis() as u64, "{what} retry");
        tokio::time::sleep(pause).await;
        wait = (wait * 2).min(backoff.max);
    }
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
        let err = build_client(Some(&p), &NetworkSetting::FromEnvironment).unwrap_err();
        assert_eq!(err.id, ProblemId::Config);
        assert!(err.cause.contains("cloud.ca_file"));
        std::fs::write(&p, "not a pem").unwrap();
        // Garbage must not silently become "trust nothing extra".
        let err = build_client(Some(&p), &NetworkSetting::FromEnvironment).unwrap_err();
        assert_eq!(err.id, ProblemId::Config);
        assert!(err.cause.contains("no certificate") || err.cause.contains("not a PEM"));
    }

    /// A port nobody listens on: bound, then dropped.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn refused_connection_is_network() {
        let port = free_port();
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let p = transport_problem(&err, "the sign-in service");
        assert_eq!(p.id, ProblemId::Network, "{p}");
        assert!(p.cause.contains("the sign-in service"));
    }

    /// Every request through `[network] proxy` at `addr`, to a host that only the proxy could
    /// reach (nothing here resolves it or connects to it).
    async fn through_proxy_at(addr: std::net::SocketAddr) -> Problem {
        let network = NetworkSetting::Proxy(crate::config::ProxySettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            no_proxy: Vec::new(),
            credentials: None,
        });
        let client = build_client(None, &network).unwrap();
        let err = client
            .get("https://login.microsoftonline.com/")
            .send()
            .await
            .unwrap_err();
        transport_problem(&err, "the sign-in service")
    }

    #[tokio::test]
    async fn a_dead_proxy_is_named_as_such() {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let p = through_proxy_at(addr).await;
        assert_eq!(p.id, ProblemId::ProxyUnreachable, "{p}");
        assert!(p.cause.contains("the sign-in service"), "{}", p.cause);
        assert_eq!(p.retry_class(), crate::problem::RetryClass::Transient);
    }

    #[tokio::test]
    async fn a_407_to_the_tunnel_is_proxy_auth_required() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut [0u8; 1024]).await;
            let _ = s
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let p = through_proxy_at(addr).await;
        assert_eq!(p.id, ProblemId::ProxyAuthRequired, "{p}");
        // A person must fix it: waited for, never hammered.
        assert_eq!(p.retry_class(), crate::problem::RetryClass::Permanent);
    }

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(4),
    };

    fn transient() -> Problem {
        Problem::new(ProblemId::ServiceUnavailable)
    }

    /// Runs `retry` over scripted results, recording when (since the start) each attempt ran.
    async fn scripted(
        budget: Duration,
        results: Vec<Result<u32, Problem>>,
    ) -> (Result<u32, Problem>, Vec<Duration>) {
        let start = Instant::now();
        let mut results = results.into_iter();
        let mut at = Vec::new();
        let res = retry(
            "test",
            BACKOFF,
            start + budget,
            |p| p.retry_class() == crate::problem::RetryClass::Transient,
            || {
                at.push(start.elapsed());
                let next = results.next().expect("no more scripted results");
                async move { next }
            },
        )
        .await;
        (res, at)
    }

    #[tokio::test(start_paused = true)]
    async fn retry_backs_off_exponentially_up_to_the_cap() {
        let mut results: Vec<Result<u32, Problem>> = (0..5).map(|_| Err(transient())).collect();
        results.push(Ok(7));
        let (res, at) = scripted(Duration::from_secs(60), results).await;
        assert_eq!(res.unwrap(), 7);
        let secs: Vec<u64> = at.iter().map(Duration::as_secs).collect();
        // Pauses 1, 2, 4, 4, 4.
        assert_eq!(secs, vec![0, 1, 3, 7, 11, 15]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_a_floor_not_a_ceiling() {
        let slow = transient().with_retry_after(Some(Duration::from_secs(10)));
        let short = transient().with_retry_after(Some(Duration::from_millis(10)));
        let (res, at) = scripted(Duration::from_secs(60), vec![Err(slow), Err(short), Ok(1)]).await;
        assert_eq!(res.unwrap(), 1);
        // 10 s as asked; then our own 2 s, not the 10 ms asked.
        assert_eq!(
            at,
            vec![
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(12)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_before_the_deadline_with_the_last_problem() {
        let last = transient().with_cause("third");
        let (res, at) = scripted(
            Duration::from_secs(3),
            vec![Err(transient()), Err(transient()), Err(last.clone())],
        )
        .await;
        // Attempts at 0 and 1 s; the next pause (2 s) would end at 3 s, the deadline.
        assert_eq!(at, vec![Duration::ZERO, Duration::from_secs(1)]);
        assert_eq!(res.unwrap_err().cause, transient().cause);
        let (res, at) = scripted(
            Duration::from_secs(4),
            vec![Err(transient()), Err(transient()), Err(last)],
        )
        .await;
        assert_eq!(at.len(), 3);
        assert_eq!(res.unwrap_err().cause, "third");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_a_refused_problem_at_once() {
        let (res, at) = scripted(
            Duration::from_secs(60),
            vec![Err(Problem::new(ProblemId::InvalidCredentials))],
        )
        .await;
        assert_eq!(res.unwrap_err().id, ProblemId::InvalidCredentials);
        assert_eq!(at.len(), 1);
    }

    /// A one-shot HTTP server on loopback that answers `response` to the first request.
    async fn answer_once(response: impl AsRef<[u8]> + Send + 'static) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            sock.write_all(response.as_ref()).await.unwrap();
            sock.shutdown().await.unwrap();
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn send_and_read_returns_status_retry_after_and_body() {
        let url = answer_once(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 12\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
        )
        .await;
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let a = send_and_read(client.get(url), "the test server", 4)
            .await
            .unwrap();
        assert_eq!(a.status, 429);
        assert_eq!(a.retry_after, Some(Duration::from_secs(12)));
        assert_eq!(a.body, "slow");
    }

    #[tokio::test]
    async fn send_and_read_names_the_service_when_nobody_answers() {
        let port = free_port();
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let err = send_and_read(
            client.get(format!("http://127.0.0.1:{port}/")),
            "the Power BI service",
            API_BODY_LIMIT,
        )
        .await
        .unwrap_err();
        assert_eq!(err.id, ProblemId::Network, "{err}");
        assert!(err.cause.contains("the Power BI service"), "{}", err.cause);
    }
    /// A loopback server that answers every request with `head`, then, if `chunked`, 64 KiB
    /// chunks for ever; otherwise nothing more (the head announces what it likes).
    async fn endless(head: &'static str, chunked: bool) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    while chunked && sock.write_all(chunk.as_bytes()).await.is_ok() {}
                    // Without chunks: hold the connection open, as a slow sender would.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
            }
        });
        format!("http://{addr}/some/path?secret=1")
    }

    #[tokio::test]
    async fn an_endless_chunked_body_is_cut_at_the_limit() {
        let url = endless(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        )
        .await;
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let t = std::time::Instant::now();
        let err = send_and_read(
            client.get(&url),
            "the Microsoft sign-in service",
            SIGN_IN_BODY_LIMIT,
        )
        .await
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(err.id, ProblemId::ServiceUnavailable, "{err}");
        assert_eq!(err.retry_class(), crate::problem::RetryClass::Transient);
        let host = url::Url::parse(&url).unwrap();
        let host = format!("127.0.0.1:{}", host.port().unwrap());
        assert!(
            err.cause.contains(&format!(
                "the Microsoft sign-in service at {host} sent an answer larger than 1 MiB"
            )),
            "{}",
            err.cause
        );
        assert!(
            !err.cause.contains("secret") && !err.cause.contains("/some/path"),
            "{}",
            err.cause
        );
    }

    #[tokio::test]
    async fn a_content_length_above_the_limit_is_refused_before_reading() {
        // 400 MB announced, none sent: waiting for it would take the whole request timeout.
        let url = endless(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400000000\r\n\r\n",
            false,
        )
        .await;
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let t = std::time::Instant::now();
        let err = send_and_read(client.get(&url), "the Power BI service", API_BODY_LIMIT)
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(err.id, ProblemId::ServiceUnavailable, "{err}");
        assert!(err.cause.contains("larger than 16 MiB"), "{}", err.cause);
    }

    #[tokio::test]
    async fn a_body_one_byte_over_the_limit_is_refused_and_odd_bytes_are_read_lossily() {
        let url = answer_once(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        )
        .await;
        let client = build_client(None, &NetworkSetting::FromEnvironment).unwrap();
        let err = send_and_read(client.get(url), "the test server", 4)
            .await
            .unwrap_err();
        assert!(err.cause.contains("larger than 4 bytes"), "{}", err.cause);
        let url =
            answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\na\xffb")
                .await;
        let a = send_and_read(client.get(url), "the test server", 4)
            .await
            .unwrap();
        assert_eq!(a.body, "a\u{fffd}b");
    }
}
