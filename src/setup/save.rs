//! What the phone sends, as a configuration: checked with the player's own rules before
//! anything is written, then saved where the unprivileged service may write (its state
//! directory), secrets in their own files.
//!
//! The installer's file (`/etc/pbikiosk/pbikiosk.toml`, usually the commented example) is the
//! template: its other sections (`[cloud]`, `[display]`, `[setup]`, ...) are kept, `[auth]` and
//! the playlist come from the phone.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::config::{self, Config, ConfigError, SecretSources};
use crate::secret::Secret;

/// The folder inside the state directory that holds what the phone saved.
const DIR: &str = "setup";
pub(crate) const CONFIG_FILE: &str = "pbikiosk.toml";
const PASSWORD_FILE: &str = "password";
const CLIENT_SECRET_FILE: &str = "client-secret";
/// The device-code sign-in's token cache, where `pbikiosk login` puts it by default
/// ([`config::DEFAULT_TOKEN_CACHE`] is this file in the service's state directory).
const TOKEN_CACHE_FILE: &str = "token-cache.json";

/// The configuration the phone saves, in `state_dir`.
pub(crate) fn config_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR).join(CONFIG_FILE)
}

/// The token cache a configuration saved with `method = "device_code"` names.
pub(crate) fn token_cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_CACHE_FILE)
}

/// The folder of what the phone saves (and of a sign-in in progress), made private to the
/// service if it is not there yet.
pub(crate) fn setup_dir(state_dir: &Path) -> Result<PathBuf, SaveError> {
    let dir = state_dir.join(DIR);
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(&dir).map_err(|source| SaveError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The sign-in values as the phone sends them.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Values {
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) tenant: String,
    #[serde(default)]
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) username: String,
    #[serde(default, deserialize_with = "secret_opt")]
    pub(crate) password: Option<Secret>,
    #[serde(default, deserialize_with = "secret_opt")]
    pub(crate) client_secret: Option<Secret>,
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(Secret::from))
}

/// One playlist entry the installer picked.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct Pick {
    pub(crate) workspace: String,
    #[serde(default)]
    pub(crate) report: Option<String>,
    #[serde(default)]
    pub(crate) dashboard: Option<String>,
    #[serde(default)]
    pub(crate) pages: Vec<String>,
    pub(crate) seconds: u32,
}

/// Where the secrets go in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    /// In the text itself: only for checking, never written.
    Inline,
    /// In files next to the configuration.
    Files,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no one has signed in with the code yet")]
    NotSignedIn,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SaveError {
    pub(crate) fn fix(&self) -> String {
        match self {
            SaveError::Config(e) => e.fix(),
            SaveError::NotSignedIn => {
                "Get a code, sign in with it on Microsoft's page, then save.".to_owned()
            }
            SaveError::Io { path, .. } => format!(
                "The service must be able to write {}: check that the state directory belongs to the user pbikiosk runs as.",
                path.display()
            ),
        }
    }
}

/// The installer's file as the template (empty when there is none or it cannot be read).
fn template(base: &Path) -> DocumentMut {
    use std::io::Read as _;
    let Ok((file, _)) = config::trust::open_regular(base) else {
        return DocumentMut::new();
    };
    let mut text = String::new();
    if file.take(1 << 20).read_to_string(&mut text).is_err() {
        return DocumentMut::new();
    }
    text.parse().unwrap_or_default()
}

fn text_of(base: &Path, v: &Values, secrets: Secrets, picks: &[Pick], state_dir: &Path) -> String {
    let mut doc = template(base);
    doc.remove("auth");
    doc.remove("playlist");
    let mut auth = Table::new();
    auth["method"] = value(v.method.as_str());
    auth["tenant"] = value(v.tenant.trim());
    auth["client_id"] = value(v.client_id.trim());
    if v.method == "password" {
        auth["username"] = value(v.username.trim());
    }
    let mut secret = |key: &str, file_key: &str, file: &str, s: &Option<Secret>| {
        if s.is_none() {
            return;
        }
        match (secrets, s) {
            (Secrets::Inline, Some(s)) => auth[key] = value(s.expose()),
            (Secrets::Files, _) => auth[file_key] = value(file),
            _ => {}
        }
    };
    if v.method != "device_code" {
        secret(
            "client_secret",
            "client_secret_file",
            CLIENT_SECRET_FILE,
            &v.client_secret,
        );
    }
    if v.method == "password" {
        secret("password", "password_file", PASSWORD_FILE, &v.password);
    }
    if v.method == "device_code" {
        // The refresh token belongs in the same state directory as the rest.
        auth["token_cache"] = value(token_cache_path(state_dir).display().to_string());
    }
    doc["auth"] = Item::Table(auth);
    if !picks.is_empty() {
        let mut list = ArrayOfTables::new();
        for p in picks {
            let mut t = Table::new();
            t["workspace"] = value(p.workspace.as_str());
            if let Some(r) = &p.report {
                t["report"] = value(r.as_str());
                if !p.pages.is_empty() {
                    let mut pages = toml_edit::Array::new();
                    for page in &p.pages {
                        pages.push(page.as_str());
                    }
                    t["pages"] = value(pages);
                }
            }
            if let Some(d) = &p.dashboard {
                t["dashboard"] = value(d.as_str());
            }
            t["seconds"] = value(i64::from(p.seconds));
            list.push(t);
        }
        doc["playlist"] = Item::ArrayOfTables(list);
    }
    doc.to_string()
}

/// The configuration the phone's values make, for the live check and the report list (the
/// secrets stay in memory). Refused with the same file/key errors as the installer's file.
pub(crate) fn candidate(
    base: &Path,
    state_dir: &Path,
    v: &Values,
    picks: &[Pick],
) -> Result<Config, ConfigError> {
    let text = text_of(base, v, Secrets::Inline, picks, state_dir);
    config::parse(&text, &config_path(state_dir), &SecretSources::default())
}

/// Write the configuration and its secret files into the state directory and read it back
/// with [`config::load`] (modes and owners included) before it takes the place of any earlier
/// one, so the player never finds a half-written or refused file.
///
/// `signed_in`: for `method = "device_code"`, the token cache the phone's sign-in filled. It
/// takes the place of [`token_cache_path`] just before the configuration does, so the player
/// that picks the configuration up finds the sign-in with it.
pub(crate) fn save(
    base: &Path,
    state_dir: &Path,
    v: &Values,
    picks: &[Pick],
    signed_in: Option<&Path>,
) -> Result<PathBuf, SaveError> {
    // Refused before anything is written.
    candidate(base, state_dir, v, picks)?;
    let device_code = v.method == "device_code";
    if device_code && signed_in.is_none_or(|p| !p.is_file()) {
        return Err(SaveError::NotSignedIn);
    }
    let target = config_path(state_dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SaveError::Io { path, source }
    };
    let dir = setup_dir(state_dir)?;
    let write = |name: &str, bytes: &[u8]| -> Result<(), SaveError> {
        let path = dir.join(name);
        super::tls::write_new(&path, bytes, 0o600).map_err(|e| match e {
            super::tls::TlsError::Io { path, source } => SaveError::Io { path, source },
            other => SaveError::Io {
                path,
                source: std::io::Error::other(other.to_string()),
            },
        })
    };
    if v.method == "password"
        && let Some(pw) = &v.password
    {
        write(PASSWORD_FILE, format!("{}\n", pw.expose()).as_bytes())?;
    }
    if v.method != "device_code"
        && let Some(cs) = &v.client_secret
    {
        write(CLIENT_SECRET_FILE, format!("{}\n", cs.expose()).as_bytes())?;
    }
    let text = text_of(base, v, Secrets::Files, picks, state_dir);
    let staged = dir.join("pbikiosk.toml.staged");
    write("pbikiosk.toml.staged", text.as_bytes())?;
    if let Err(e) = config::load(&staged, &SecretSources::default()) {
        let _ = std::fs::remove_file(&staged);
        return Err(e.into());
    }
    if device_code && let Some(cache) = signed_in {
        // Same file system (both in the state directory): the file keeps the mode 0600 and
        // owner the token cache gave it.
        let to = token_cache_path(state_dir);
        if let Err(e) = std::fs::rename(cache, &to) {
            let _ = std::fs::remove_file(&staged);
            return Err(io(&to)(e));
        }
    }
    std::fs::rename(&staged, &target).map_err(io(&target))?;
    if let Ok(d) = std::fs::File::open(state_dir) {
        // The cache's new name survives a power cut with the configuration that names it.
        let _ = d.sync_all();
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "0f0f0f0f-1234-5678-9abc-def012345678";
    const WS: &str = "11111111-2222-3333-4444-555555555555";
    const REPORT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const PW: &str = "pw-Phone-Hunter2";

    fn values() -> Values {
        Values {
            method: "password".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: APP.into(),
            username: "svc@contoso.onmicrosoft.com".into(),
            password: Some(PW.into()),
            client_secret: Some("cs-Phone-Secret".into()),
        }
    }

    fn pick() -> Pick {
        Pick {
            workspace: WS.into(),
            report: Some(REPORT.into()),
            dashboard: None,
            pages: vec!["ReportSection1".into()],
            seconds: 45,
        }
    }

    #[test]
    fn saved_with_the_password_in_a_private_file_and_the_template_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("etc.toml");
        std::fs::write(
            &base,
            "# the example\n[display]\nrotation = 90\n[auth]\n# tenant = \"\"\n",
        )
        .unwrap();
        let state = dir.path().join("state");
        let path = save(&base, &state, &values(), &[pick()], None).unwrap();
        assert_eq!(path, config_path(&state));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(PW) && !text.contains("cs-Phone"), "{text}");
        assert!(
            text.contains("client_secret_file = \"client-secret\""),
            "{text}"
        );
        assert!(text.contains("password_file = \"password\""), "{text}");
        assert!(text.contains("rotation = 90"), "{text}");
        let pw = state.join("setup").join("password");
        assert_eq!(std::fs::read_to_string(&pw).unwrap(), format!("{PW}\n"));
        for f in [&pw, &path] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let cfg = config::load(&path, &SecretSources::default()).unwrap();
        assert_eq!(cfg.playlist.len(), 1);
        assert_eq!(cfg.auth.password.expose(), PW);
        assert!(!state.join("setup").join("pbikiosk.toml.staged").exists());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = values();
        v.client_id = "not-a-guid".into();
        let Err(SaveError::Config(e)) =
            save(&dir.path().join("none.toml"), dir.path(), &v, &[], None)
        else {
            panic!("a bad client id was saved");
        };
        assert!(e.to_string().contains("auth.client_id"), "{e}");
        assert!(!e.to_string().contains(PW));
        assert!(!dir.path().join("setup").exists());
    }

    #[test]
    fn a_code_sign_in_is_saved_with_its_token_cache_moved_where_the_service_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let v = Values {
            method: "device_code".into(),
            username: String::new(),
            password: None,
            client_secret: None,
            ..values()
        };
        let base = dir.path().join("none.toml");
        let Err(SaveError::NotSignedIn) = save(&base, &state, &v, &[pick()], None) else {
            panic!("saved without a sign-in");
        };
        assert!(!config_path(&state).exists());
        // The sign-in's cache, as the token cache writes it.
        let pending = setup_dir(&state).unwrap().join("sign-in-1.json");
        crate::auth::token_cache::TokenCache::new(&pending)
            .store(&crate::auth::token_cache::CachedGrant {
                tenant: v.tenant.clone(),
                client_id: v.client_id.clone(),
                refresh_token: "rt-Phone-Code".into(),
            })
            .unwrap();
        let path = save(&base, &state, &v, &[pick()], Some(&pending)).unwrap();
        assert!(!pending.exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("rt-Phone-Code"), "{text}");
        let cfg = config::load(&path, &SecretSources::default()).unwrap();
        assert_eq!(cfg.auth.method, config::AuthMethod::DeviceCode);
        assert_eq!(
            cfg.auth.token_cache.as_deref(),
            Some(token_cache_path(&state).as_path())
        );
        let mode = std::fs::metadata(token_cache_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let rt = crate::auth::token_cache::TokenCache::new(token_cache_path(&state))
            .load(&v.tenant, &v.client_id)
            .unwrap()
            .unwrap();
        assert_eq!(rt.expose(), "rt-Phone-Code");
        assert!(!state.join("setup").join("client-secret").exists());
    }

    #[test]
    fn the_candidate_for_checking_holds_the_secret_in_memory_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = values();
        v.method = "service_principal".into();
        v.username.clear();
        v.password = None;
        v.client_secret = Some("cs-Phone-Secret".into());
        let cfg = candidate(&dir.path().join("none.toml"), dir.path(), &v, &[]).unwrap();
        assert_eq!(
            cfg.auth.client.secret().map(|s| s.expose().to_owned()),
            Some("cs-Phone-Secret".to_owned())
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
