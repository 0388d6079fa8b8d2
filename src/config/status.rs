//! `[status]`: where the status endpoint listens, who may read it from the network, and the
//! textfile node_exporter collects.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::secrets::{SecretFile, read_checked};
use super::walk::{Ctx, Section, shown};
use super::{ConfigError, StatusConfig};
use crate::secret::Secret;

const STATUS_KEYS: &[&str] = &["listen", "token_file", "textfile"];

/// A token shorter than this is guessable by a machine on the LAN trying for a few months.
const MIN_TOKEN_CHARS: usize = 16;
/// A token file holds one line; more is not a token.
const MAX_TOKEN_FILE: u64 = 4096;
const TOKEN_FIX: &str = "Create it with `head -c 32 /dev/urandom | base64 > FILE` (as root), then `chown root:pbikiosk FILE && chmod 0640 FILE`.";

pub(super) fn parse_status(cx: &Ctx, s: &Section) -> Result<StatusConfig, ConfigError> {
    s.check_table_keys(cx, "[status]", STATUS_KEYS)?;
    let token = token(cx, s)?;
    let textfile = textfile(cx, s)?;
    let Some((v, span)) = s.string(cx, "listen")? else {
        return Ok(StatusConfig {
            token,
            textfile,
            ..StatusConfig::default()
        });
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
    // Without a token anyone on the network could read the screen (`/screenshot.png`) and
    // what it plays; with one, only those who hold it.
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!(
                "{addr} is reachable from the network, and {} is not set: anyone on the network could read the status and the screen",
                s.key("token_file")
            ),
            "Set listen = \"127.0.0.1:9520\" (this device only; from elsewhere use an SSH tunnel: ssh -L 9520:127.0.0.1:9520 <device>), or set token_file in [status] to a file holding a bearer token that every request from the network must send.",
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
    Ok(StatusConfig {
        listen: addr,
        token,
        textfile,
    })
}

/// `token_file`: a secret file with the same trust rules as the password's.
fn token(cx: &Ctx, s: &Section) -> Result<Option<Secret>, ConfigError> {
    let Some((file, span)) = s.string(cx, "token_file")? else {
        return Ok(None);
    };
    let key = s.key("token_file");
    if file.is_empty() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("{key} is empty"),
            "Set token_file to the file that holds the status endpoint's bearer token, or remove the line.",
        ));
    }
    let path = cx.resolve(file);
    let p = path.display();
    let fix_create = format!("Create {p} holding one random line. {TOKEN_FIX}");
    let mut text = read_checked(
        cx,
        &SecretFile {
            key: &key,
            span: Some(&span),
            path: &path,
            what: "the status endpoint's bearer token",
            fix_create: &fix_create,
            check_mode: true,
            max: MAX_TOKEN_FILE,
        },
    )?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    let fail = |message: String| Err(cx.invalid(&key, Some(&span), message, TOKEN_FIX));
    // A client sends it in a header: only the characters of an RFC 6750 bearer token.
    let token_char = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !text.chars().all(token_char) {
        return fail(format!(
            "the file {p} holds more than one line, spaces, or characters a bearer token cannot have (letters, digits and -._~+/= only)"
        ));
    }
    if text.chars().count() < MIN_TOKEN_CHARS {
        return fail(format!(
            "the token in {p} has fewer than {MIN_TOKEN_CHARS} characters: too easy to guess"
        ));
    }
    Ok(Some(Secret::new(text)))
}

/// `textfile`: an absolute `.prom` path; its folder is where the temporary file is written, so
/// the rename that publishes it is atomic.
fn textfile(cx: &Ctx, s: &Section) -> Result<Option<PathBuf>, ConfigError> {
    let Some((v, span)) = s.string(cx, "textfile")? else {
        return Ok(None);
    };
    let key = s.key("textfile");
    let fix = "Set textfile = \"/var/lib/prometheus/node-exporter/pbikiosk.prom\" (node_exporter's --collector.textfile.directory, and a name ending in .prom).";
    let path = PathBuf::from(v);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!("{} is not an absolute file path", shown(v)),
            fix,
        ));
    }
    // node_exporter reads only *.prom files: any other name would be written and never read.
    if path.extension().is_none_or(|e| e != "prom") {
        return Err(cx.invalid(
            &key,
            Some(&span),
            format!(
                "{} does not end in .prom, so node_exporter would never read it",
                shown(v)
            ),
            fix,
        ));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;
    use crate::config::{ConfigError, load};

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

    const TOKEN: &str = "Zm9vYmFyLXN0YXR1cy10b2tlbi0xMjM0NTY=";

    fn with_token(dir: &std::path::Path, listen: &str, content: &str, mode: u32) -> String {
        let file = write(dir, "status-token", content, mode);
        format!(
            "{}[status]\nlisten = \"{listen}\"\ntoken_file = \"{}\"\n",
            auth(),
            file.display()
        )
    }

    fn load_text(dir: &std::path::Path, text: &str) -> Result<crate::config::Config, ConfigError> {
        let cfg = write(dir, "pbikiosk.toml", text, 0o600);
        load(&cfg, &no_sources())
    }

    #[test]
    fn lan_listen_without_a_token_names_both_keys_and_the_fix() {
        let text = format!("{}[status]\nlisten = \"0.0.0.0:9520\"\n", auth());
        let (msg, fix) = invalid(err(&text), "status.listen", Some(8));
        assert!(msg.contains("status.token_file"), "{msg}");
        assert!(fix.contains("token_file"), "{fix}");
        assert!(fix.contains("127.0.0.1:9520"), "{fix}");
    }

    #[test]
    fn lan_listen_with_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_text(
            dir.path(),
            &with_token(dir.path(), "0.0.0.0:9520", &format!("{TOKEN}\n"), 0o600),
        )
        .unwrap();
        assert_eq!(c.status.listen, "0.0.0.0:9520".parse().unwrap());
        assert_eq!(c.status.token.as_ref().unwrap().expose(), TOKEN);
        // Never shown by a stray {:?}.
        assert!(!format!("{c:?}").contains(TOKEN));
        // A token on loopback is allowed too (a reverse proxy on the device may forward).
        let c = load_text(
            dir.path(),
            &with_token(dir.path(), "127.0.0.1:9520", TOKEN, 0o640),
        )
        .unwrap();
        assert!(c.status.token.is_some());
    }

    #[test]
    fn a_bad_token_file_is_refused_with_the_line_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, u32, &str)] = &[
            (TOKEN, 0o644, "every user"),
            (TOKEN, 0o620, "changed by other users"),
            ("short-token", 0o600, "fewer than 16"),
            ("two\nlines-of-a-token-here", 0o600, "more than one line"),
            ("a token with spaces in it", 0o600, "spaces"),
            ("", 0o600, "fewer than 16"),
        ];
        for (content, mode, says) in cases {
            let e = load_text(
                dir.path(),
                &with_token(dir.path(), "0.0.0.0:9520", content, *mode),
            )
            .unwrap_err();
            let (msg, fix) = invalid(e, "status.token_file", Some(9));
            assert!(msg.contains(says), "{content:?}: {msg}");
            assert!(!fix.is_empty());
            if content.len() > 3 {
                assert!(!msg.contains(content), "{msg}");
            }
        }
        let missing = format!(
            "{}[status]\nlisten = \"0.0.0.0:9520\"\ntoken_file = \"{}\"\n",
            auth(),
            dir.path().join("nope").display()
        );
        let (msg, fix) = invalid(
            load_text(dir.path(), &missing).unwrap_err(),
            "status.token_file",
            Some(9),
        );
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(fix.contains("urandom"), "{fix}");
    }

    #[test]
    fn textfile_is_an_absolute_prom_path() {
        let text = format!(
            "{}[status]\ntextfile = \"/var/lib/prometheus/node-exporter/pbikiosk.prom\"\n",
            auth()
        );
        let c = ok(&text);
        assert_eq!(
            c.status.textfile.unwrap().to_str(),
            Some("/var/lib/prometheus/node-exporter/pbikiosk.prom")
        );
        assert_eq!(c.status.listen, "127.0.0.1:9520".parse().unwrap());
        for bad in ["pbikiosk.prom", "/var/lib/node/pbikiosk.txt", "/"] {
            let text = format!("{}[status]\ntextfile = \"{bad}\"\n", auth());
            let (_, fix) = invalid(err(&text), "status.textfile", Some(8));
            assert!(fix.contains(".prom"), "{fix}");
        }
    }
}
