//! Who may read the status endpoint: every client on this device (loopback, as always), and
//! a client from the network only with `[status] token_file`'s bearer token. Pure: the peer
//! address and the `Authorization` header in, a decision out.

use std::net::IpAddr;

use subtle::ConstantTimeEq as _;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// 401: no token, or the wrong one.
    Refuse,
}

#[derive(Debug)]
pub(crate) struct Access {
    token: Option<Secret>,
}

impl Access {
    pub(crate) fn new(token: Option<Secret>) -> Self {
        Self { token }
    }

    /// A request from `peer` with this `Authorization` header value.
    pub(crate) fn decide(&self, peer: IpAddr, authorization: Option<&[u8]>) -> Decision {
        // An IPv4 client of a socket bound to [::] arrives as ::ffff:127.0.0.1.
        if peer.to_canonical().is_loopback() {
            return Decision::Allow;
        }
        let Some(token) = &self.token else {
            // Not reachable: without a token the endpoint listens on loopback only.
            return Decision::Refuse;
        };
        let Some(given) = authorization.and_then(bearer) else {
            return Decision::Refuse;
        };
        // Constant time: how long the comparison takes says nothing about how much of a
        // guess was right.
        if bool::from(given.ct_eq(token.expose().as_bytes())) {
            Decision::Allow
        } else {
            Decision::Refuse
        }
    }
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "Zm9vYmFyLXN0YXR1cy10b2tlbi0xMjM0NTY=";

    #[test]
    fn loopback_is_open_the_network_needs_the_token() {
        let a = Access::new(Some(Secret::new(T)));
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        let good = format!("Bearer {T}");
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(a.decide(local.parse().unwrap(), None), Decision::Allow);
        }
        assert_eq!(a.decide(lan, Some(good.as_bytes())), Decision::Allow);
        assert_eq!(
            a.decide(lan, Some(format!("bearer  {T} ").as_bytes())),
            Decision::Allow
        );
        for bad in [
            None,
            Some("".as_bytes()),
            Some(b"Bearer "),
            Some(b"Bearer Zm9vYmFy"),
            Some(format!("Basic {T}").as_bytes()),
            Some(format!("Bearer {T}x").as_bytes()),
            Some(T.as_bytes()),
        ] {
            assert_eq!(a.decide(lan, bad), Decision::Refuse, "{bad:?}");
        }
        let open = Access::new(None);
        assert_eq!(open.decide(lan, Some(good.as_bytes())), Decision::Refuse);
        assert_eq!(
            open.decide("127.0.0.1".parse().unwrap(), None),
            Decision::Allow
        );
    }
}
