//! `[network]`: the HTTP proxy every request and the web view go through, the hosts reached
//! without it, and the proxy's credentials (from a secret file, never the configuration).

use std::net::IpAddr;
use std::ops::Range;

use url::{Host, Url};

use super::secrets::{MAX_SECRET_FILE, SecretFile, read_checked};
use super::walk::{Ctx, Section, describe_type, shown};
use super::{ConfigError, NetworkSetting, ProxyCredentials, ProxySettings};
use crate::secret::Secret;

const NETWORK_KEYS: &[&str] = &["proxy", "no_proxy", "proxy_credentials_file"];

/// The config key of the proxy's credentials file (watched: a change is picked up at once).
pub(super) const CREDENTIALS_FILE_KEY: &str = "proxy_credentials_file";

const EXAMPLE: &str = "http://proxy.corp.example:3128";

pub(super) fn parse_network(cx: &Ctx, s: &Section) -> Result<NetworkSetting, ConfigError> {
    s.check_table_keys(cx, "[network]", NETWORK_KEYS)?;
    let Some((value, span)) = s.string(cx, "proxy")? else {
        // A [network] without a proxy says "go direct", whatever the environment says; the
        // other keys would then be ignored, which hides a mistake.
        for k in ["no_proxy", CREDENTIALS_FILE_KEY] {
            if let Some(v) = s.get(k) {
                return Err(cx.invalid(
                    &s.key(k),
                    Some(&v.span()),
                    format!("{k} is set, but [network] has no proxy"),
                    format!("Add proxy = \"{EXAMPLE}\" to [network], or remove {k}."),
                ));
            }
        }
        return Ok(NetworkSetting::Direct);
    };
    let (host, port) = proxy_address(cx, &s.key("proxy"), value, &span)?;
    let no_proxy = match s.get("no_proxy") {
        Some(v) => bypass_list(cx, &s.key("no_proxy"), v)?,
        None => Vec::new(),
    };
    let credentials = match s.string(cx, CREDENTIALS_FILE_KEY)? {
        Some((file, span)) => Some(credentials(cx, &s.key(CREDENTIALS_FILE_KEY), file, &span)?),
        None => None,
    };
    Ok(NetworkSetting::Proxy(ProxySettings {
        host,
        port,
        no_proxy,
        credentials,
    }))
}

/// `proxy = "http://host:port"`: the proxy's host (IPv6 in brackets) and port.
fn proxy_address(
    cx: &Ctx,
    key: &str,
    value: &str,
    span: &Range<usize>,
) -> Result<(String, u16), ConfigError> {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        cx.invalid(
            key,
            Some(span),
            format!("not a proxy address ({e})"),
            format!("Write it like proxy = \"{EXAMPLE}\"."),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Never repeat the value: it holds a password.
        return Err(cx.invalid(
            key,
            Some(span),
            "must not contain a user name or password",
            format!(
                "Put credentials in proxy_credentials_file (a file holding user:password, mode 0600 or 0640), and write the proxy without them, like proxy = \"{EXAMPLE}\"."
            ),
        ));
    }
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(cx.invalid(
                key,
                Some(span),
                "an https:// proxy (TLS to the proxy itself) is not supported: the web view cannot be given the CA that signed the proxy's own certificate",
                format!(
                    "Use the proxy's plain http:// port, like proxy = \"{EXAMPLE}\": https sites still go through it encrypted end to end (CONNECT)."
                ),
            ));
        }
        other => {
            return Err(cx.invalid(
                key,
                Some(span),
                format!("{} proxies are not supported", shown(other)),
                format!("Use an HTTP proxy, like proxy = \"{EXAMPLE}\"."),
            ));
        }
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(cx.invalid(
            key,
            Some(span),
            "a proxy is a host and a port, with no path, ?query or #fragment",
            format!("Write it like proxy = \"{EXAMPLE}\"."),
        ));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => {
            return Err(cx.invalid(
                key,
                Some(span),
                "the proxy address has no host",
                format!("Write it like proxy = \"{EXAMPLE}\"."),
            ));
        }
    };
    // Without a port a proxy URL means port 80, which a company proxy rarely listens on: an
    // explicit port avoids a silent wrong guess.
    let Some(port) = url.port() else {
        return Err(cx.invalid(
            key,
            Some(span),
            "the proxy address has no port",
            format!(
                "Write the port your IT gave, like proxy = \"{EXAMPLE}\" (3128 and 8080 are usual)."
            ),
        ));
    };
    Ok((host, port))
}

/// `no_proxy = ["10.0.0.0/8", ".corp", "intranet.example"]`: hosts (with their subdomains),
/// IP addresses and ranges reached without the proxy. Written as both reqwest and GLib (the web
/// view) read them alike: a leading `*.` is kept as `.`, ports are refused.
fn bypass_list(
    cx: &Ctx,
    key: &str,
    v: &toml::Spanned<toml::de::DeValue>,
) -> Result<Vec<String>, ConfigError> {
    use toml::de::DeValue;
    let fix = "Write it like no_proxy = [\"10.0.0.0/8\", \".corp.example\", \"intranet.example\"]: host names (a leading dot or *. for the subdomains), IP addresses or address/prefix ranges, without ports.";
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.invalid(
            key,
            Some(&v.span()),
            format!("must be a list, not {}", describe_type(v.get_ref())),
            fix,
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let DeValue::String(s) = item.get_ref() else {
            return Err(cx.invalid(
                key,
                Some(&item.span()),
                format!(
                    "every entry must be text in double quotes, not {}",
                    describe_type(item.get_ref())
                ),
                fix,
            ));
        };
        match bypass_entry(s) {
            Some(entry) => out.push(entry),
            None => {
                return Err(cx.invalid(
                    key,
                    Some(&item.span()),
                    format!(
                        "{} is not a host name, IP address or address range",
                        shown(s)
                    ),
                    fix,
                ));
            }
        }
    }
    Ok(out)
}

/// One `no_proxy` entry in the form both readers share, or `None` if it is not one.
pub(crate) fn bypass_entry(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_lowercase();
    if let Some((addr, prefix)) = s.split_once('/') {
        let ip: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (prefix <= max).then(|| format!("{ip}/{prefix}"));
    }
    if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let (dot, name) = if let Some(rest) = s.strip_prefix("*.") {
        (".", rest)
    } else if let Some(rest) = s.strip_prefix('.') {
        (".", rest)
    } else {
        ("", s.as_str())
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then(|| format!("{dot}{name}"))
}

/// The proxy's credentials from `file`: one line `user:password`, a secret file by the same
/// rules as the sign-in secrets. The user name is not a secret; the password is.
fn credentials(
    cx: &Ctx,
    key: &str,
    file: &str,
    span: &Range<usize>,
) -> Result<ProxyCredentials, ConfigError> {
    let path = cx.resolve(file);
    let p = path.display();
    let fix_create = format!(
        "Create {p} holding user:password on one line (owner root, group pbikiosk, mode 0640), or correct {key}."
    );
    let text = read_checked(
        cx,
        &SecretFile {
            key,
            span: Some(span),
            path: &path,
            what: "the proxy's user:password",
            fix_create: &fix_create,
            check_mode: true,
            max: MAX_SECRET_FILE,
        },
    )?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    let fail = |message: String| Err(cx.invalid(key, Some(span), message, fix_create.clone()));
    if text.contains(['\n', '\r']) {
        return fail(format!("the file {p} holds more than one line"));
    }
    let Some((user, password)) = text.split_once(':') else {
        return fail(format!(
            "the file {p} does not hold user:password (no colon)"
        ));
    };
    if user.is_empty() || password.is_empty() {
        return fail(format!(
            "the file {p} has an empty user name or password before or after the colon"
        ));
    }
    if user.chars().any(|c| c.is_control()) || password.chars().any(|c| c.is_control()) {
        return fail(format!("the file {p} holds control characters"));
    }
    tracing::debug!(key = %key, file = %p, "proxy credentials read from file");
    Ok(ProxyCredentials {
        user: user.to_owned(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetworkSetting;
    use crate::config::test_support::*;

    fn with(network: &str) -> String {
        format!("{}[network]\n{network}", auth())
    }

    fn proxy_of(text: &str) -> ProxySettings {
        match ok(text).network {
            NetworkSetting::Proxy(p) => p,
            other => panic!("expected a proxy, got {other:?}"),
        }
    }

    #[test]
    fn absent_section_follows_the_environment_and_empty_section_goes_direct() {
        assert!(matches!(
            ok(&auth()).network,
            NetworkSetting::FromEnvironment
        ));
        assert!(matches!(ok(&with("")).network, NetworkSetting::Direct));
    }

    #[test]
    fn proxy_address_and_bypass_list() {
        let p = proxy_of(&with(
            "proxy = \"http://Proxy.Corp.Example:3128\"\nno_proxy = [\"10.0.0.0/8\", \"*.corp\", \".lan\", \"intranet\", \"192.168.1.7\", \"[::1]\"]\n",
        ));
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp.example", 3128));
        assert_eq!(p.url(), "http://proxy.corp.example:3128");
        assert_eq!(
            p.no_proxy,
            [
                "10.0.0.0/8",
                ".corp",
                ".lan",
                "intranet",
                "192.168.1.7",
                "::1"
            ]
        );
        assert!(p.credentials.is_none());
        // Without a scheme it is an http proxy, as curl reads it.
        let p = proxy_of(&with("proxy = \"10.1.2.3:8080\"\n"));
        assert_eq!(p.url(), "http://10.1.2.3:8080");
        let p = proxy_of(&with("proxy = \"http://[fd00::1]:3128/\"\n"));
        assert_eq!(p.url(), "http://[fd00::1]:3128");
    }

    #[test]
    fn the_shipped_example_is_valid_once_uncommented() {
        let example = include_str!("../../packaging/pbikiosk.toml");
        let block: Vec<&str> = example
            .lines()
            .skip_while(|l| *l != "#[network]")
            .take_while(|l| l.starts_with('#') && !l.starts_with("# "))
            .map(|l| &l[1..])
            .collect();
        assert_eq!(block.len(), 4, "{block:?}");
        // Its credentials file does not exist here; the rest must parse as it stands.
        let text: String = block
            .iter()
            .filter(|l| !l.starts_with(CREDENTIALS_FILE_KEY))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = proxy_of(&format!("{}{text}", auth()));
        assert_eq!(p.url(), "http://proxy.corp.example:3128");
        assert_eq!(p.no_proxy, ["10.0.0.0/8", ".corp.example"]);
    }

    #[test]
    fn userinfo_in_the_proxy_is_refused_without_repeating_it() {
        let e = err(&with("proxy = \"http://kiosk:S3cretProxyPw@proxy:3128\"\n"));
        let shown = e.to_string();
        let (msg, fix) = invalid(e, "network.proxy", Some(8));
        assert!(msg.contains("user name or password"), "{msg}");
        assert!(fix.contains("proxy_credentials_file"), "{fix}");
        assert!(!shown.contains("S3cretProxyPw") && !fix.contains("S3cretProxyPw"));
    }

    #[test]
    fn bad_proxy_addresses_are_refused_with_the_fix() {
        for (bad, says) in [
            ("https://proxy:3128", "https://"),
            ("socks5://proxy:1080", "not supported"),
            ("http://proxy", "no port"),
            ("http://proxy:3128/path", "no path"),
            ("http://:3128", "proxy address"),
        ] {
            let (msg, fix) = invalid(
                err(&with(&format!("proxy = \"{bad}\"\n"))),
                "network.proxy",
                Some(8),
            );
            assert!(msg.contains(says), "{bad}: {msg}");
            assert!(fix.contains("proxy = \"http://"), "{bad}: {fix}");
        }
        let (msg, _) = invalid(err(&with("proxy = 3128\n")), "network.proxy", Some(8));
        assert!(msg.contains("text"), "{msg}");
    }

    #[test]
    fn bad_bypass_entries_are_refused() {
        for bad in [
            "[\"corp:8080\"]",
            "[\"10.0.0.0/40\"]",
            "[\"a b\"]",
            "[\"*\"]",
            "[1]",
            "\".corp\"",
        ] {
            let text = with(&format!("proxy = \"http://p:3128\"\nno_proxy = {bad}\n"));
            let (_, fix) = invalid(err(&text), "network.no_proxy", Some(9));
            assert!(fix.contains("no_proxy = ["), "{bad}: {fix}");
        }
    }

    #[test]
    fn keys_without_a_proxy_are_refused() {
        let (msg, fix) = invalid(
            err(&with("no_proxy = [\".corp\"]\n")),
            "network.no_proxy",
            Some(8),
        );
        assert!(msg.contains("no proxy"), "{msg}");
        assert!(fix.contains("proxy = "), "{fix}");
        let e = err(&with("proxi = \"http://p:3128\"\n"));
        assert!(e.to_string().contains("network.proxi"), "{e}");
        assert!(e.fix().contains("proxy"), "{}", e.fix());
    }

    #[test]
    fn credentials_come_from_a_trusted_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let load = |content: &str, mode: u32| {
            write(dir.path(), "proxy-credentials", content, mode);
            let text =
                with("proxy = \"http://p:3128\"\nproxy_credentials_file = \"proxy-credentials\"\n");
            let cfg = write(dir.path(), "pbikiosk.toml", &text, 0o600);
            crate::config::load(&cfg, &no_sources())
        };
        let cfg = load("kiosk@corp:pa:ss-W0rd\n", 0o640).unwrap_or_else(|e| panic!("{e}"));
        let NetworkSetting::Proxy(p) = cfg.network else {
            panic!("a proxy")
        };
        let c = p.credentials.unwrap();
        assert_eq!(c.user, "kiosk@corp");
        assert_eq!(c.password.expose(), "pa:ss-W0rd");
        assert!(!format!("{c:?}").contains("pa:ss-W0rd"));
        for (content, mode, says) in [
            ("kiosk:pw\n", 0o644, "every user"),
            ("kiosk-no-colon\n", 0o600, "no colon"),
            ("kiosk:\n", 0o600, "empty"),
            ("kiosk:pw\nmore\n", 0o600, "more than one line"),
        ] {
            let e = load(content, mode).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(says), "{content:?}: {shown}");
            assert!(shown.contains("network.proxy_credentials_file"), "{shown}");
            assert!(!shown.contains("pw\n") && !shown.contains(":pw"), "{shown}");
        }
        std::fs::remove_file(dir.path().join("proxy-credentials")).unwrap();
        let text =
            with("proxy = \"http://p:3128\"\nproxy_credentials_file = \"proxy-credentials\"\n");
        let cfg = write(dir.path(), "pbikiosk.toml", &text, 0o600);
        let e = crate::config::load(&cfg, &no_sources()).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(e.fix().contains("user:password"), "{}", e.fix());
    }
}
