//! `no_proxy`: the hosts a screen reaches without its proxy.
//!
//! When the web view is given no proxy of its own, WebKit asks GLib's proxy resolver, which
//! reads `https_proxy` and `no_proxy` from the environment; reqwest (sign-in, REST API) reads the
//! same variables. Both take a comma-separated list whose entries are: `*` (every host); a name
//! (`example.com`, `.example.com` or `*.example.com`, each matching the name and every name
//! under it); an IP address; either of those with `:port` (IPv6 in brackets, `[::1]:443`),
//! matching that port only; or an address range (`10.0.0.0/8`, `fe80::/10`). Names only match
//! names and addresses only addresses, as GLib documents: no name is resolved to decide.

use std::net::IpAddr;

/// A parsed `no_proxy` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    /// `*`: no host goes through the proxy.
    all: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// This name and every name under it (lower-case, no leading dot).
    Name {
        name: String,
        port: Option<u16>,
    },
    Addr {
        addr: IpAddr,
        port: Option<u16>,
    },
    Range {
        base: IpAddr,
        prefix: u8,
    },
}

impl NoProxy {
    /// Parse a `no_proxy` value. Entries that are none of the forms above are ignored, as the
    /// resolvers do, rather than failing the whole list.
    pub(crate) fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
            } else if let Some(rule) = Rule::parse(entry) {
                out.rules.push(rule);
            }
        }
        out
    }

    /// Does a connection to `host` on `port` bypass the proxy?
    pub(crate) fn bypasses(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let addr = host.parse::<IpAddr>().ok();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.rules.iter().any(|rule| match (rule, addr) {
            (Rule::Name { name, port: p }, None) => {
                port_ok(p)
                    && (host == *name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            (Rule::Addr { addr: a, port: p }, Some(addr)) => port_ok(p) && *a == addr,
            (Rule::Range { base, prefix }, Some(addr)) => in_range(addr, *base, *prefix),
            _ => false,
        })
    }
}

impl Rule {
    fn parse(entry: &str) -> Option<Self> {
        if let Some((base, prefix)) = entry.split_once('/') {
            let base: IpAddr = base.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if base.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Self::Range { base, prefix });
        }
        if let Ok(addr) = entry.parse::<IpAddr>() {
            return Some(Self::Addr { addr, port: None });
        }
        // `[v6]:port`, `[v6]`, `name:port`, `v4:port`.
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (addr, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (addr, port)
        } else {
            match entry.rsplit_once(':') {
                Some((host, p)) => (host, Some(p.parse().ok()?)),
                None => (entry, None),
            }
        };
        if let Ok(addr) = host.parse::<IpAddr>() {
            return Some(Self::Addr { addr, port });
        }
        let name = host
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        valid.then_some(Self::Name { name, port })
    }
}

/// Is `addr` within `base/prefix`? Addresses of the other family never are.
fn in_range(addr: IpAddr, base: IpAddr, prefix: u8) -> bool {
    fn masked(bits: u128, len: u32, prefix: u8) -> u128 {
        let keep = u32::from(prefix).min(len);
        if keep == 0 { 0 } else { bits >> (len - keep) }
    }
    match (addr, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            masked(u32::from(a).into(), 32, prefix) == masked(u32::from(b).into(), 32, prefix)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            masked(u128::from(a), 128, prefix) == masked(u128::from(b), 128, prefix)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_themselves_and_what_is_under_them() {
        let np = NoProxy::parse("corp.local, .internal.example, *.analysis.windows.net");
        for host in [
            "corp.local",
            "CORP.local",
            "screen.corp.local",
            "a.b.internal.example",
            "internal.example",
            "wabi-north-europe-redirect.analysis.windows.net",
            "analysis.windows.net",
            "corp.local.",
        ] {
            assert!(np.bypasses(host, 443), "{host}");
        }
        for host in [
            "notcorp.local",
            "corp.local.evil.com",
            "app.powerbi.com",
            "windows.net",
            "10.0.0.1",
        ] {
            assert!(!np.bypasses(host, 443), "{host}");
        }
    }

    #[test]
    fn a_star_alone_bypasses_everything_and_empty_lists_nothing() {
        assert!(NoProxy::parse("localhost, *").bypasses("app.powerbi.com", 443));
        assert!(!NoProxy::parse("").bypasses("app.powerbi.com", 443));
        assert!(!NoProxy::parse(" , ,").bypasses("app.powerbi.com", 443));
        assert_eq!(NoProxy::parse(""), NoProxy::default());
    }

    #[test]
    fn ports_restrict_an_entry_to_that_port() {
        let np = NoProxy::parse("app.powerbi.com:8443,[::1]:443,127.0.0.1:443");
        assert!(np.bypasses("app.powerbi.com", 8443));
        assert!(!np.bypasses("app.powerbi.com", 443));
        assert!(np.bypasses("::1", 443));
        assert!(np.bypasses("[::1]", 443));
        assert!(!np.bypasses("::1", 80));
        assert!(np.bypasses("127.0.0.1", 443));
        assert!(!np.bypasses("127.0.0.1", 80));
    }

    #[test]
    fn addresses_and_ranges_match_addresses_only() {
        let np = NoProxy::parse("192.168.1.7,10.0.0.0/8,fe80::/10,0.0.0.0/0x,bad entry!");
        assert!(np.bypasses("192.168.1.7", 443));
        assert!(!np.bypasses("192.168.1.8", 443));
        assert!(np.bypasses("10.200.3.4", 443));
        assert!(!np.bypasses("11.0.0.1", 443));
        assert!(np.bypasses("fe80::1", 443));
        assert!(!np.bypasses("fec0::1", 443));
        // A name is not resolved to decide, and an address is not a name.
        assert!(!np.bypasses("router.lan", 443));
        assert!(!NoProxy::parse("10.0.0.1").bypasses("ten.example", 443));
        assert!(NoProxy::parse("0.0.0.0/0").bypasses("8.8.8.8", 443));
        assert!(!NoProxy::parse("0.0.0.0/0").bypasses("::1", 443));
    }
}
