//! A small HTTP proxy on loopback for the `[network] proxy` tests: it answers `CONNECT` (to
//! the host, or through an upstream proxy such as the simulator's front door) and forwards
//! plain-HTTP requests in absolute form, counting each request by host, and may require Basic
//! authentication as a company proxy does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    /// Requests let through, by host (no port).
    by_host: HashMap<String, u64>,
    /// Requests answered `407`, by host.
    refused: HashMap<String, u64>,
}

pub struct TestProxy {
    pub addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
}

impl TestProxy {
    /// Start on a free loopback port. `upstream`: where `CONNECT`s are sent on (a proxy that
    /// answers them), else to the host itself. `basic`: the `user:password` it requires.
    pub async fn start(upstream: Option<SocketAddr>, basic: Option<&str>) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), upstream, basic).await
    }

    /// [`TestProxy::start`] on `at` (a proxy that comes back where it was expected).
    pub async fn start_at(
        at: SocketAddr,
        upstream: Option<SocketAddr>,
        basic: Option<&str>,
    ) -> Self {
        use base64::Engine as _;
        let listener = TcpListener::bind(at).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let expected = basic.map(|b| base64::engine::general_purpose::STANDARD.encode(b));
        let c = counts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (c, expected) = (c.clone(), expected.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, upstream, expected.as_deref(), &c).await;
                });
            }
        });
        Self { addr, counts }
    }

    /// Requests let through for `host`.
    pub fn count(&self, host: &str) -> u64 {
        let c = self.counts.lock().unwrap();
        c.by_host.get(host).copied().unwrap_or(0)
    }

    /// Requests answered `407`, all hosts.
    pub fn refused(&self) -> u64 {
        self.counts.lock().unwrap().refused.values().sum()
    }

    /// Every host let through, with its count, for messages.
    pub fn hosts(&self) -> HashMap<String, u64> {
        self.counts.lock().unwrap().by_host.clone()
    }
}

/// The host of `host:port`, `[v6]:port` or `http://host:port/path`.
fn host_of(target: &str) -> (String, u16, String) {
    let (rest, default_port) = match target.strip_prefix("http://") {
        Some(r) => (r, 80),
        None => (target, 443),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse().unwrap_or(default_port)),
        _ => (authority, default_port),
    };
    (
        host.trim_matches(['[', ']']).to_ascii_lowercase(),
        port,
        path,
    )
}

async fn serve(
    mut client: TcpStream,
    upstream: Option<SocketAddr>,
    expected: Option<&str>,
    counts: &Mutex<Counts>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    };
    let rest = head.split_off(end);
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut words = first.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let (host, port, path) = host_of(&target);
    if let Some(want) = expected {
        let given = headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            let (scheme, creds) = v.trim().split_once(' ')?;
            (k.trim().eq_ignore_ascii_case("proxy-authorization")
                && scheme.eq_ignore_ascii_case("basic"))
            .then(|| creds.trim().to_owned())
        });
        if given.as_deref() != Some(want) {
            *counts.lock().unwrap().refused.entry(host).or_default() += 1;
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            return Ok(());
        }
    }
    *counts
        .lock()
        .unwrap()
        .by_host
        .entry(host.clone())
        .or_default() += 1;
    if method == "CONNECT" {
        let mut server = match upstream {
            Some(up) => {
                let mut s = TcpStream::connect(up).await?;
                let ask = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
                s.write_all(ask.as_bytes()).await?;
                // The upstream's answer (200, or its refusal) goes to the client as it is.
                s
            }
            None => {
                let s = TcpStream::connect((host.as_str(), port)).await?;
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await?;
                s
            }
        };
        server.write_all(&rest).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    // Plain HTTP in absolute form: to the host, in origin form, one request per connection.
    let mut server = TcpStream::connect((host.as_str(), port)).await?;
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
        ) {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    server.write_all(out.as_bytes()).await?;
    server.write_all(&rest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn targets_are_split_into_host_port_and_path() {
        assert_eq!(
            host_of("login.microsoftonline.com:443"),
            ("login.microsoftonline.com".into(), 443, "/".into())
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/a/b?c"),
            ("127.0.0.1".into(), 8080, "/a/b?c".into())
        );
        assert_eq!(host_of("[::1]:3128"), ("::1".into(), 3128, "/".into()));
    }
}
