//! The simulator's front door for the webview: `https://app.powerbi.com` on loopback.
//!
//! Microsoft's powerbi-client refuses embed URLs that are not `https://*.powerbi.com`, so the
//! demo and the end-to-end tests cannot point it at `http://127.0.0.1`. Instead the webview is
//! given this HTTP proxy: it answers `CONNECT app.powerbi.com:443` by terminating TLS itself
//! with a certificate made for this run only, and serves the simulator's routes inside the
//! tunnel. Every other host is refused, so nothing leaks to the real internet, and the webview
//! trusts the certificate for that one host only (see the shell). TLS for real hosts is never
//! weakened.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A running front door.
#[derive(Clone)]
pub struct EmbedFront {
    /// Where the webview's HTTP proxy setting must point.
    pub proxy: SocketAddr,
    /// The host it impersonates, e.g. `app.powerbi.com`.
    pub host: String,
    /// The throw-away certificate (PEM) to trust for `host` only.
    pub cert_pem: String,
}

impl EmbedFront {
    /// Start on an ephemeral loopback port, serving `router` as `https://{host}`.
    pub async fn start(router: axum::Router, host: &str) -> std::io::Result<Self> {
        let err = |e: String| std::io::Error::other(e);
        let certified = rcgen::generate_simple_self_signed(vec![host.to_owned()])
            .map_err(|e| err(format!("test certificate: {e}")))?;
        let cert_pem = certified.cert.pem();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .map_err(|e| err(e.to_string()))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let proxy = listener.local_addr()?;
        let target = format!("{host}:443");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if let Err(e) = tunnel(stream, &target, acceptor, router).await {
                        tracing::debug!(error = %e, "embed front connection ended");
                    }
                });
            }
        });
        Ok(Self {
            proxy,
            host: host.to_owned(),
            cert_pem,
        })
    }
}

async fn tunnel(
    mut stream: TcpStream,
    target: &str,
    acceptor: TlsAcceptor,
    router: axum::Router,
) -> std::io::Result<()> {
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
    if method != Some("CONNECT") || !authority.is_some_and(|a| a.eq_ignore_ascii_case(target)) {
        tracing::info!(
            request = first.lines().next().unwrap_or(""),
            "demo proxy refused a request for another host"
        );
        stream
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    let tls = acceptor.accept(stream).await?;
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_router_as_the_host_and_refuses_others() {
        let router = axum::Router::new().route(
            "/reportEmbed",
            axum::routing::get(|| async { "fake embed" }),
        );
        let front = EmbedFront::start(router, "app.powerbi.com").await.unwrap();
        let cert = reqwest::Certificate::from_pem(front.cert_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", front.proxy)).unwrap())
            .tls_certs_only([cert])
            .build()
            .unwrap();
        let body = client
            .get("https://app.powerbi.com/reportEmbed?reportId=1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "fake embed");
        // Any other host: the tunnel is refused, nothing goes out.
        let err = client.get("https://example.com/").send().await.unwrap_err();
        assert!(err.is_connect() || err.to_string().contains("403"), "{err}");
        let err = client.get("http://example.com/").send().await;
        match err {
            Ok(r) => assert_eq!(r.status(), 403),
            Err(e) => assert!(e.is_connect(), "{e}"),
        }
    }
}
