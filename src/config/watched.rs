//! The files besides the configuration that the player watches: the secret files it names
//! (a changed one is tried at once) and `cloud.ca_file`.

use std::io::Read;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::SecretSources;
use super::secrets::SECRET_FILE_KEYS;
use super::trust;
use super::walk::Ctx;

/// The files a configuration names, resolved against its folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Watched {
    /// `auth.client_secret_file`, `auth.password_file`, `auth.client_certificate_file` and
    /// `network.proxy_credentials_file`, as far as they are set.
    pub(crate) secrets: Vec<PathBuf>,
    pub(crate) ca_file: Option<PathBuf>,
}

/// The files the configuration at `path` names, read leniently: whatever else is wrong with
/// it, these are the files a person edits (or `chmod`s) to fix what the screen shows, so they
/// are watched even while the configuration is refused.
pub(crate) fn watched_files(path: &Path) -> Watched {
    let (secrets, ca_file) = named_files(path);
    Watched {
        secrets: secrets.into_iter().map(|(_, p)| p).collect(),
        ca_file,
    }
}

/// The secret files the configuration at `path` names, each with its key (`password_file`...),
/// read as leniently as [`watched_files`].
pub(crate) fn secret_files(path: &Path) -> Vec<(&'static str, PathBuf)> {
    named_files(path).0
}

type Named = (Vec<(&'static str, PathBuf)>, Option<PathBuf>);

fn named_files(path: &Path) -> Named {
    // A configuration is a few KiB; more is not one, and is not read here.
    const MAX_CONFIG: u64 = 1 << 20;
    let Ok((file, _)) = trust::open_regular(path) else {
        return Named::default();
    };
    let mut text = String::new();
    if file.take(MAX_CONFIG).read_to_string(&mut text).is_err() {
        return Named::default();
    }
    let Ok(doc) = DeTable::parse(&text) else {
        return Named::default();
    };
    let sources = SecretSources::default();
    let cx = Ctx::new(path, &text, &sources, None);
    let file_in = |section: &str, key: &str| match doc.get_ref().get(section).map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => match t.get(key).map(|v| v.get_ref()) {
            Some(DeValue::String(f)) if !f.is_empty() => Some(cx.resolve(f)),
            _ => None,
        },
        _ => None,
    };
    (
        SECRET_FILE_KEYS
            .iter()
            .filter_map(|k| file_in("auth", k).map(|p| (*k, p)))
            .chain(
                file_in("network", super::network::CREDENTIALS_FILE_KEY)
                    .map(|p| (super::network::CREDENTIALS_FILE_KEY, p)),
            )
            .collect(),
        file_in("cloud", "ca_file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn named_files_are_found_even_in_a_refused_config() {
        let dir = tempfile::tempdir().unwrap();
        // client_id is bad and no named file exists: they are still the ones to watch.
        let text = "[auth]\nclient_id = \"nope\"\npassword_file = \"pw\"\nclient_secret_file = \"/etc/pbikiosk/client-secret\"\nclient_certificate_file = \"cert.pem\"\n[cloud]\nca_file = \"ca.pem\"\n";
        let cfg = write(dir.path(), "pbikiosk.toml", text, 0o640);
        assert_eq!(
            watched_files(&cfg),
            Watched {
                secrets: vec![
                    PathBuf::from("/etc/pbikiosk/client-secret"),
                    dir.path().join("pw"),
                    dir.path().join("cert.pem"),
                ],
                ca_file: Some(dir.path().join("ca.pem")),
            }
        );
        // The proxy's credentials file is a secret file too.
        let text = format!(
            "{}[network]\nproxy = \"http://p:3128\"\nproxy_credentials_file = \"proxy-credentials\"\n",
            auth()
        );
        let cfg = write(dir.path(), "proxy.toml", &text, 0o640);
        assert_eq!(
            watched_files(&cfg).secrets,
            vec![dir.path().join("proxy-credentials")]
        );
        let cfg = write(dir.path(), "inline.toml", &auth(), 0o640);
        assert_eq!(watched_files(&cfg), Watched::default());
        let cfg = write(dir.path(), "broken.toml", "[auth\n", 0o640);
        assert_eq!(watched_files(&cfg), Watched::default());
        assert_eq!(
            watched_files(&dir.path().join("missing.toml")),
            Watched::default()
        );
    }
}
