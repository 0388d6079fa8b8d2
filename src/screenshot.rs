//! Screenshots for remote support: what the screen shows right now, as PNG.
//!
//! The status endpoint's `GET /screenshot.png` asks the window (the GTK main loop, through
//! the shell's command proxy) for the web view's own snapshot and waits at most
//! [`TIMEOUT`]; `pbikiosk screenshot FILE` fetches it over loopback for an admin on SSH. The
//! screen never shows a secret or a token (status screens name accounts and hosts, never a
//! password), so neither does a screenshot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::{self, SecretSources};
use crate::secret::Secret;

/// How long the endpoint waits for the web view: a snapshot takes well under a second; a
/// hung web process never answers.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the window sends the PNG (or why there is none).
pub(crate) type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

/// Asks the window for a snapshot; false when the window is gone.
#[derive(Clone)]
pub(crate) struct Camera(Arc<dyn Fn(Reply) -> bool + Send + Sync>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum ShotError {
    #[error("the window is not open")]
    NoWindow,
    #[error("the web view did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the web view could not take a snapshot: {0}")]
    Failed(String),
}

impl Camera {
    pub(crate) fn new(ask: impl Fn(Reply) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(ask))
    }

    /// A PNG of the screen, or why not within `timeout`.
    pub(crate) async fn take(&self, timeout: Duration) -> Result<Vec<u8>, ShotError> {
        let (tx, rx) = oneshot::channel();
        if !(self.0)(tx) {
            return Err(ShotError::NoWindow);
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ShotError::Timeout(timeout)),
            // The window dropped the request (it is closing).
            Ok(Err(_)) => Err(ShotError::NoWindow),
            Ok(Ok(Err(e))) => Err(ShotError::Failed(e)),
            Ok(Ok(Ok(png))) => Ok(png),
        }
    }
}

/// The width and height of a PNG, from its header; `None` when it is not one.
pub(crate) fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != MAGIC || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&png[16..20]), be(&png[20..24])))
}

/// Why `pbikiosk screenshot` failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(
        "no answer from the player's status endpoint at {addr}: {detail}. Is the player running (systemctl status pbikiosk)? Its address is [status] listen in the config, or give --listen."
    )]
    Unreachable { addr: SocketAddr, detail: String },
    #[error("the status endpoint at {addr} answered HTTP {status}: {body}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    #[error("the status endpoint at {addr} answered something that is not a PNG")]
    NotPng { addr: SocketAddr },
    #[error("cannot write {}: {detail}", path.display())]
    Write { path: PathBuf, detail: String },
}

/// Where to connect for a player listening on `listen`: the same port on loopback when it
/// listens on every address.
pub(crate) fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    }
}

/// What the CLI needs from the config: where the player listens, and the token when it
/// listens on a LAN address (a connection to that address does not come from loopback). A
/// config that does not load leaves the player on the default address, as `run` does.
fn target(
    config_path: &Path,
    sources: &SecretSources,
    listen: Option<SocketAddr>,
) -> (SocketAddr, Option<Secret>) {
    let status = config::load(config_path, sources)
        .map(|c| c.status)
        .unwrap_or_default();
    (connect_addr(listen.unwrap_or(status.listen)), status.token)
}

/// An error and its causes ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// `pbikiosk screenshot FILE`: fetch `/screenshot.png` and write it to `out` (atomically);
/// the PNG's width and height.
pub async fn save(
    config_path: &Path,
    sources: &SecretSources,
    listen: Option<SocketAddr>,
    out: &Path,
) -> Result<(u32, u32), SaveError> {
    let (addr, token) = target(config_path, sources, listen);
    let unreachable = |e: reqwest::Error| SaveError::Unreachable {
        addr,
        detail: chain(&e),
    };
    // Loopback (or the device's own address): never through a proxy from the environment.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT + Duration::from_secs(5))
        .build()
        .map_err(unreachable)?;
    let mut req = client.get(format!("http://{addr}/screenshot.png"));
    if let Some(t) = &token {
        req = req.bearer_auth(t.expose());
    }
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(SaveError::Refused {
            addr,
            status: status.as_u16(),
            body: text.trim().to_owned(),
        });
    }
    let size = png_size(&body).ok_or(SaveError::NotPng { addr })?;
    let write_err = |e: std::io::Error| SaveError::Write {
        path: out.to_path_buf(),
        detail: config::describe_io(&e),
    };
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::io::Write::write_all(&mut tmp, &body).map_err(write_err)?;
    tmp.persist(out).map_err(|e| write_err(e.error))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_camera_answers_times_out_or_has_no_window() {
        let ok = Camera::new(|r| r.send(Ok(b"png".to_vec())).is_ok());
        assert_eq!(ok.take(TIMEOUT).await, Ok(b"png".to_vec()));
        let failing = Camera::new(|r| r.send(Err("no surface".into())).is_ok());
        assert_eq!(
            failing.take(TIMEOUT).await,
            Err(ShotError::Failed("no surface".into()))
        );
        let gone = Camera::new(|_| false);
        assert_eq!(gone.take(TIMEOUT).await, Err(ShotError::NoWindow));
        // Holds the request and never answers (a hung web view).
        let held = std::sync::Mutex::new(Vec::new());
        let hung = Camera::new(move |r| {
            held.lock().unwrap().push(r);
            true
        });
        let short = Duration::from_millis(50);
        assert_eq!(hung.take(short).await, Err(ShotError::Timeout(short)));
    }

    #[test]
    fn png_size_reads_the_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&720u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 720)));
        assert_eq!(png_size(b"GIF89a"), None);
        assert_eq!(png_size(&png[..20]), None);
    }

    #[test]
    fn the_cli_connects_over_loopback_and_reads_the_config() {
        assert_eq!(
            connect_addr("0.0.0.0:9520".parse().unwrap()),
            "127.0.0.1:9520".parse().unwrap()
        );
        assert_eq!(
            connect_addr("[::]:9520".parse().unwrap()),
            "[::1]:9520".parse().unwrap()
        );
        assert_eq!(
            connect_addr("192.168.1.10:9520".parse().unwrap()),
            "192.168.1.10:9520".parse().unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "Zm9vYmFyLXN0YXR1cy10b2tlbi0xMjM0NTY=\n").unwrap();
        let cfg = dir.path().join("pbikiosk.toml");
        std::fs::write(
            &cfg,
            format!(
                "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"0f0f0f0f-1234-5678-9abc-def012345678\"\nusername = \"svc@contoso.onmicrosoft.com\"\npassword_file = \"{0}\"\nclient_secret_file = \"{0}\"\n[status]\nlisten = \"0.0.0.0:9611\"\ntoken_file = \"{0}\"\n",
                token.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for f in [&token, &cfg] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let (addr, tok) = target(&cfg, &SecretSources::default(), None);
        assert_eq!(addr, "127.0.0.1:9611".parse().unwrap());
        assert!(tok.is_some());
        let (addr, _) = target(
            &cfg,
            &SecretSources::default(),
            Some("127.0.0.1:7".parse().unwrap()),
        );
        assert_eq!(addr, "127.0.0.1:7".parse().unwrap());
        // No config: the default address, as the player uses then.
        let (addr, tok) = target(
            &dir.path().join("none.toml"),
            &SecretSources::default(),
            None,
        );
        assert_eq!(addr, "127.0.0.1:9520".parse().unwrap());
        assert!(tok.is_none());
    }
}
