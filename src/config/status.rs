//! `[status]`: where the local status endpoint listens (this device only).

use std::net::SocketAddr;

use super::walk::{Ctx, Section, shown};
use super::{ConfigError, StatusConfig};

const STATUS_KEYS: &[&str] = &["listen"];

pub(super) fn parse_status(cx: &Ctx, s: &Section) -> Result<StatusConfig, ConfigError> {
    s.check_table_keys(cx, "[status]", STATUS_KEYS)?;
    let Some((v, span)) = s.string(cx, "listen")? else {
        return Ok(StatusConfig::default());
    };
    let key = s.key("listen");
    let addr: SocketAddr = v.parse().map_err(|_| {
        cx.invalid(
            &key,
            Some(&span),
            format!("{} is not an IP address with a port", shown(v)),
            "Write it like listen = \"127.0.0.1:9520\" (a host name such as localhost is not accepted).",
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("{addr} is reachable from the network; the status endpoint must only listen on this device (127.0.0.1 or [::1])"),
            "Set listen = \"127.0.0.1:9520\". To read the status from another machine, use an SSH tunnel: ssh -L 9520:127.0.0.1:9520 <device>.",
        ));
    }
    if addr.port() == 0 {
        return Err(cx.invalid(
            &key,
            Some(&span),
            "port 0 is not a fixed port",
            "Set listen = \"127.0.0.1:9520\" (or another fixed port).",
        ));
    }
    Ok(StatusConfig { listen: addr })
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn status_listen_must_be_loopback() {
        for bad in ["0.0.0.0:9520", "192.168.1.10:9520", "[::]:9520"] {
            let text = format!("{}[status]\nlisten = \"{bad}\"\n", auth());
            let (msg, fix) = invalid(err(&text), "status.listen", Some(8));
            assert!(msg.contains("network"), "{msg}");
            assert!(fix.contains("127.0.0.1:9520"), "{fix}");
        }
        let text = format!("{}[status]\nlisten = \"localhost:9520\"\n", auth());
        let (_, fix) = invalid(err(&text), "status.listen", Some(8));
        assert!(fix.contains("127.0.0.1:9520"), "{fix}");
        let text = format!("{}[status]\nlisten = \"127.0.0.2:80\"\n", auth());
        assert_eq!(ok(&text).status.listen, "127.0.0.2:80".parse().unwrap());
    }
}
