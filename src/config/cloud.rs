//! `[cloud]`: the sign-in and API addresses (national clouds, the simulator) and a proxy's CA.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use url::{Host, Url};

use super::trust;
use super::walk::{Ctx, Section, shown};
use super::{
    CloudConfig, ConfigError, DEFAULT_API, DEFAULT_AUTHORITY, DEFAULT_RESOURCE, describe_io,
};

const CLOUD_KEYS: &[&str] = &["authority", "api", "resource", "ca_file"];

pub(super) fn parse_cloud(cx: &Ctx, s: &Section) -> Result<CloudConfig, ConfigError> {
    s.check_table_keys(cx, "[cloud]", CLOUD_KEYS)?;
    let defaults = CloudConfig::default();
    let authority = match s.string(cx, "authority")? {
        Some((v, span)) => base_url(cx, &s.key("authority"), v, &span, DEFAULT_AUTHORITY)?,
        None => defaults.authority,
    };
    let api = match s.string(cx, "api")? {
        Some((v, span)) => base_url(cx, &s.key("api"), v, &span, DEFAULT_API)?,
        None => defaults.api,
    };
    let resource = match s.string(cx, "resource")? {
        Some((v, span)) => {
            let trimmed = v.trim_end_matches('/');
            if trimmed.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(cx.invalid(
                    &s.key("resource"),
                    Some(&span),
                    format!("{} is not a resource identifier", shown(v)),
                    format!("Set resource to the Power BI resource of your cloud, e.g. \"{DEFAULT_RESOURCE}\" (or remove it for the public cloud)."),
                ));
            }
            trimmed.to_owned()
        }
        None => defaults.resource,
    };
    let ca_file = match s.string(cx, "ca_file")? {
        Some((v, span)) => Some(check_ca_file(cx, &s.key("ca_file"), v, &span)?),
        None => None,
    };
    Ok(CloudConfig {
        authority,
        api,
        resource,
        ca_file,
    })
}

fn base_url(
    cx: &Ctx,
    key: &str,
    value: &str,
    span: &Range<usize>,
    example: &str,
) -> Result<Url, ConfigError> {
    let example = example.trim_end_matches('/');
    let mut url = Url::parse(value).map_err(|e| {
        cx.invalid(
            key,
            Some(span),
            format!("not a valid web address ({e})"),
            format!("Write a full address like \"{example}\"."),
        )
    })?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        scheme => {
            return Err(cx.invalid(
                key,
                Some(span),
                format!("{} is not allowed as the scheme: the address must use https:// (http:// only for this device itself)", shown(scheme)),
                format!("Write the address with https://, like \"{example}\"."),
            ));
        }
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(cx.invalid(
            key,
            Some(span),
            "must be a plain address with a host and no ?query or #fragment",
            format!("Write only the base address, like \"{example}\"."),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never repeat the value: it holds credentials.
        return Err(cx.invalid(
            key,
            Some(span),
            "must not contain a user name or password",
            format!("Remove the user:password@ part, like \"{example}\"."),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn check_ca_file(
    cx: &Ctx,
    key: &str,
    value: &str,
    span: &Range<usize>,
) -> Result<PathBuf, ConfigError> {
    let path = cx.resolve(value);
    let p = path.display();
    let fix = format!(
        "Put the proxy's CA certificate (PEM) at {p}, readable by pbikiosk, or correct or remove {key}."
    );
    match trust::open_regular(&path) {
        Ok((_, meta)) => match trust::check(&meta) {
            // Whoever can change the CA file can have the kiosk trust their own proxy.
            Err(why) => Err(cx.invalid(key, Some(span), why.describe(&path), why.fix(&path))),
            Ok(()) => Ok(path),
        },
        Err(trust::OpenError::NotAFile(kind)) => {
            Err(cx.invalid(key, Some(span), format!("{p} is {kind}, not a file"), fix))
        }
        Err(trust::OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            Err(cx.invalid(key, Some(span), format!("the file {p} does not exist"), fix))
        }
        Err(trust::OpenError::Io(e)) => Err(cx.invalid(
            key,
            Some(span),
            format!("the file {p} cannot be read: {}", describe_io(&e)),
            fix,
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::CloudConfig;
    use crate::config::test_support::*;

    #[test]
    fn scope_has_no_double_slash() {
        let c = ok(&format!(
            "{}[cloud]\nresource = \"https://analysis.windows.net/powerbi/api/\"\n",
            auth()
        ));
        assert_eq!(
            c.cloud.scope(),
            "https://analysis.windows.net/powerbi/api/.default"
        );
        let hand = CloudConfig {
            resource: "https://x.example/api/".to_owned(),
            ..CloudConfig::default()
        };
        assert_eq!(hand.scope(), "https://x.example/api/.default");
    }

    #[test]
    fn urls_need_https_except_on_loopback() {
        for bad in [
            "http://login.microsoftonline.com",
            "ftp://login.microsoftonline.com",
            "http://10.0.0.1:8080",
        ] {
            let text = format!("{}[cloud]\nauthority = \"{bad}\"\n", auth());
            let (msg, fix) = invalid(err(&text), "cloud.authority", Some(8));
            assert!(msg.contains("https://"), "{msg}");
            assert!(fix.contains("https://"), "{fix}");
        }
        for good in [
            "http://127.0.0.1:8080",
            "http://127.5.0.1",
            "http://[::1]:8080",
            "http://localhost:9000/sim",
        ] {
            let text = format!(
                "{}[cloud]\nauthority = \"{good}\"\napi = \"{good}\"\n",
                auth()
            );
            let c = ok(&text);
            assert!(
                c.cloud.authority.as_str().ends_with('/'),
                "{}",
                c.cloud.authority
            );
            assert!(c.cloud.api.as_str().ends_with('/'), "{}", c.cloud.api);
        }
        let c = ok(&format!(
            "{}[cloud]\napi = \"http://localhost:9000/sim\"\n",
            auth()
        ));
        assert_eq!(c.cloud.api.as_str(), "http://localhost:9000/sim/");

        for bad in [
            "not a url",
            "https://x.example/?a=b",
            "https://x.example/#f",
        ] {
            let text = format!("{}[cloud]\napi = \"{bad}\"\n", auth());
            invalid(err(&text), "cloud.api", Some(8));
        }
    }

    #[test]
    fn ca_file_must_exist() {
        let text = format!(
            "{}[cloud]\nca_file = \"/nonexistent/corp-ca.pem\"\n",
            auth()
        );
        let (msg, fix) = invalid(err(&text), "cloud.ca_file", Some(8));
        assert!(
            msg.contains("/nonexistent/corp-ca.pem") && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(fix.contains("CA certificate"), "{fix}");
    }

    #[test]
    fn ca_file_others_may_change_is_refused_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            |ca: &std::path::Path| format!("{}[cloud]\nca_file = \"{}\"\n", auth(), ca.display());
        for mode in [0o664, 0o646] {
            let ca = write(dir.path(), "corp-ca.pem", "PEM", mode);
            let (msg, fix) = invalid(err(&text(&ca)), "cloud.ca_file", Some(8));
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert_eq!(
                fix,
                format!(
                    "Run `chmod go-w {}` (as root), so only its owner can change it.",
                    ca.display()
                )
            );
        }
        let ca = write(dir.path(), "corp-ca.pem", "PEM", 0o644);
        assert_eq!(ok(&text(&ca)).cloud.ca_file, Some(ca));
        // A FIFO is refused at once (reading it would wait for a writer forever).
        let fifo = dir.path().join("fifo.pem");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (msg, _) = invalid(err(&text(&fifo)), "cloud.ca_file", Some(8));
        assert!(msg.contains("named pipe"), "{msg}");
    }
}
