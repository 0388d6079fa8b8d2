//! `{hostname}`, `{serial}` and `{mac}` in `[fleet] url`: checked when the config is read,
//! filled in from what the device says about itself before each fetch.
//!
//! Pure: the device's identity comes in as [`DeviceIds`]; [`DeviceIds::read`] is the only
//! part that looks at the system.

use std::path::Path;

/// The placeholders `[fleet] url` may hold.
pub(crate) const NAMES: [&str; 3] = ["hostname", "serial", "mac"];

/// What is wrong with a url template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("unknown placeholder {{{0}}} (known are {{hostname}}, {{serial}} and {{mac}})")]
    Unknown(String),
    #[error("a {{ without its closing }}")]
    Unclosed,
    #[error("a }} without its opening {{")]
    Unopened,
}

/// One piece of a template: text as written, or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Hole(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match (rest.find('{'), rest.find('}')) {
            (Some(open), close) if close.is_none_or(|c| c > open) => {
                if open > 0 {
                    out.push(Piece::Text(&rest[..open]));
                }
                let after = &rest[open + 1..];
                let Some(end) = after.find('}') else {
                    return Err(TemplateError::Unclosed);
                };
                let name = &after[..end];
                if !NAMES.contains(&name) {
                    return Err(TemplateError::Unknown(name.to_owned()));
                }
                out.push(Piece::Hole(name));
                rest = &after[end + 1..];
            }
            (None, None) => {
                out.push(Piece::Text(rest));
                rest = "";
            }
            _ => return Err(TemplateError::Unopened),
        }
    }
    Ok(out)
}

/// The template with every placeholder replaced by `with`: what the address will look like,
/// for checking its scheme and host when the config is read.
pub(crate) fn sample(template: &str, with: &str) -> Result<String, TemplateError> {
    Ok(pieces(template)?
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t,
            Piece::Hole(_) => with,
        })
        .collect())
}

/// What identifies this device, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeviceIds {
    pub(crate) hostname: Option<String>,
    /// The Raspberry Pi's serial number, else the machine id.
    pub(crate) serial: Option<String>,
    /// The first non-loopback interface's MAC: lower-case hex, no separators.
    pub(crate) mac: Option<String>,
}

/// A placeholder the device has no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this device has no {what} to put in {{{name}}}")]
pub(crate) struct Missing {
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
}

/// Fill in the placeholders. Values are percent-encoded (a host name is plain already; the
/// encoding only guards against a strange one changing the address's shape).
pub(crate) fn expand(template: &str, ids: &DeviceIds) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(template.len() + 32);
    for p in pieces(template)? {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Hole(name) => {
                let (value, name, what) = match name {
                    "hostname" => (&ids.hostname, "hostname", "host name"),
                    "serial" => (&ids.serial, "serial", "serial number or machine id"),
                    _ => (&ids.mac, "mac", "network interface with a MAC address"),
                };
                let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
                    return Err(Missing { name, what }.into());
                };
                out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExpandError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Missing(#[from] Missing),
}

impl DeviceIds {
    /// Read from the system: `/proc/sys/kernel/hostname`, the device tree's or `/proc/cpuinfo`'s
    /// serial (Raspberry Pi), else `/etc/machine-id`, and `/sys/class/net`.
    pub(crate) fn read() -> Self {
        Self::read_from(Path::new("/"))
    }

    /// Read below `root` (tests give a fake system tree).
    pub(crate) fn read_from(root: &Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let hostname = read("proc/sys/kernel/hostname")
            .or_else(|| read("etc/hostname"))
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        let serial = read("proc/device-tree/serial-number")
            .map(|s| {
                s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_owned()
            })
            .filter(|s| !s.is_empty())
            .or_else(|| read("proc/cpuinfo").and_then(|c| cpuinfo_serial(&c)))
            .or_else(|| {
                read("etc/machine-id")
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
            });
        let mac = first_mac(&root.join("sys/class/net"));
        Self {
            hostname,
            serial,
            mac,
        }
    }
}

/// The `Serial` line of `/proc/cpuinfo` (Raspberry Pi kernels print one; all zeros is none).
fn cpuinfo_serial(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        (k.trim() == "Serial" && !v.is_empty() && v.chars().any(|c| c != '0')).then(|| v.to_owned())
    })
}

/// The MAC of the first interface in name order that is not loopback and has a real address.
fn first_mac(net: &Path) -> Option<String> {
    let mut names: Vec<_> = std::fs::read_dir(net)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let raw = std::fs::read_to_string(net.join(&n).join("address")).ok()?;
        mac_compact(raw.trim())
    })
}

/// `DC:A6:32:01:02:03` → `dca632010203`; `None` for an all-zero or malformed address.
pub(crate) fn mac_compact(raw: &str) -> Option<String> {
    let hex: String = raw
        .split(':')
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .concat();
    let ok = hex.len() == 12
        && raw.split(':').count() == 6
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && hex.chars().any(|c| c != '0');
    ok.then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> DeviceIds {
        DeviceIds {
            hostname: Some("lobby-1".into()),
            serial: Some("10000000abcdef01".into()),
            mac: Some("dca632010203".into()),
        }
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(
            expand("https://cfg.example/{hostname}.toml", &ids()).unwrap(),
            "https://cfg.example/lobby-1.toml"
        );
        assert_eq!(
            expand("https://cfg.example/{serial}/{mac}/{hostname}.toml", &ids()).unwrap(),
            "https://cfg.example/10000000abcdef01/dca632010203/lobby-1.toml"
        );
        assert_eq!(
            expand("https://cfg.example/all.toml", &ids()).unwrap(),
            "https://cfg.example/all.toml"
        );
        // A strange host name cannot change the address's shape.
        let odd = DeviceIds {
            hostname: Some("a/b?c#d".into()),
            ..ids()
        };
        assert_eq!(
            expand("https://h/{hostname}.toml", &odd).unwrap(),
            "https://h/a%2Fb%3Fc%23d.toml"
        );
    }

    #[test]
    fn unknown_and_unbalanced_placeholders_are_named() {
        assert_eq!(
            sample("https://h/{host}.toml", "x"),
            Err(TemplateError::Unknown("host".into()))
        );
        assert!(
            TemplateError::Unknown("host".into())
                .to_string()
                .contains("{host}")
        );
        assert_eq!(
            sample("https://h/{mac.toml", "x"),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(
            sample("https://h/mac}.toml", "x"),
            Err(TemplateError::Unopened)
        );
        assert_eq!(
            sample("https://h/{}.toml", "x"),
            Err(TemplateError::Unknown(String::new()))
        );
        assert_eq!(
            sample("https://h/{hostname}/{mac}", "x").unwrap(),
            "https://h/x/x"
        );
    }

    #[test]
    fn a_missing_value_is_named() {
        let e = expand("https://h/{mac}", &DeviceIds::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this device has no network interface with a MAC address to put in {mac}"
        );
    }

    #[test]
    fn ids_are_read_from_the_system_tree() {
        let root = tempfile::tempdir().unwrap();
        let w = |p: &str, text: &str| {
            let p = root.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        w("proc/sys/kernel/hostname", "lobby-1\n");
        w("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        w("sys/class/net/eth0/address", "DC:A6:32:01:02:03\n");
        w("sys/class/net/wlan0/address", "dc:a6:32:09:09:09\n");
        let got = DeviceIds::read_from(root.path());
        assert_eq!(got.hostname.as_deref(), Some("lobby-1"));
        assert_eq!(
            got.serial.as_deref(),
            Some("0123456789abcdef0123456789abcdef"),
            "no Pi serial: the machine id"
        );
        assert_eq!(got.mac.as_deref(), Some("dca632010203"));
        // A Pi: /proc/cpuinfo's Serial, then the device tree's (NUL-terminated).
        w(
            "proc/cpuinfo",
            "Hardware\t: BCM2835\nSerial\t\t: 10000000abcdef01\n",
        );
        assert_eq!(
            DeviceIds::read_from(root.path()).serial.as_deref(),
            Some("10000000abcdef01")
        );
        w("proc/device-tree/serial-number", "10000000feedbeef\0");
        assert_eq!(
            DeviceIds::read_from(root.path()).serial.as_deref(),
            Some("10000000feedbeef")
        );
        assert_eq!(cpuinfo_serial("Serial : 0000000000000000\n"), None);
        assert_eq!(mac_compact("00:00:00:00:00:00"), None);
        assert_eq!(mac_compact("zz:00:00:00:00:01"), None);
    }
}
