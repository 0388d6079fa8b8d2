//! Where the two secrets (client secret, password) come from, and which secret files are
//! trusted.
//!
//! A secret is taken from the first of: the configuration (inline, or a file it names), the
//! environment, systemd's credentials folder. A secret file named in the configuration, and a
//! configuration file that holds a secret inline, are refused when other users on the device
//! may read or change them (systemd's credential files are systemd's business). Values are
//! wrapped in [`Secret`] as soon as they are read and never appear in an error.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::describe_io;
use super::trust;
use super::walk::{Ctx, Section};
use crate::secret::Secret;

const ENV_CLIENT_SECRET: &str = "PBIKIOSK_CLIENT_SECRET";
const ENV_PASSWORD: &str = "PBIKIOSK_PASSWORD";
/// The environment variables that may hold a secret: the binary takes them out of its
/// environment once [`SecretSources::from_process`] has read them (see `crate::process_guard`).
pub(crate) const SECRET_ENV_VARS: [&str; 2] = [ENV_CLIENT_SECRET, ENV_PASSWORD];

/// Where secrets and environment come from; tests build it by hand, the binary uses
/// [`SecretSources::from_process`].
#[derive(Clone, Default)]
pub struct SecretSources {
    pub(crate) env: HashMap<String, String>,
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
    pub(crate) credentials_dir: Option<PathBuf>,
}

impl SecretSources {
    /// The process environment (variables that are valid UTF-8) and `$CREDENTIALS_DIRECTORY`.
    pub fn from_process() -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        Self {
            env,
            credentials_dir,
        }
    }
}

// Hand-written: the environment may hold PBIKIOSK_PASSWORD, so only the names are shown.
impl fmt::Debug for SecretSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.env.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("SecretSources")
            .field("env", &names)
            .field("credentials_dir", &self.credentials_dir)
            .finish()
    }
}

#[cfg(unix)]
pub(super) fn file_mode(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode())
}

#[cfg(not(unix))]
pub(super) fn file_mode(_meta: &fs::Metadata) -> Option<u32> {
    None
}

/// Bits that let users other than owner and group read, write or run a file.
const OTHERS: u32 = 0o007;

/// The four places one secret can come from.
struct SecretSpec {
    /// Inline key in `[auth]`.
    key: &'static str,
    /// File key in `[auth]`.
    file_key: &'static str,
    env: &'static str,
    /// File name in `$CREDENTIALS_DIRECTORY`.
    credential: &'static str,
    /// What it is, for a person.
    what: &'static str,
}

/// The `[auth]` keys that name secret files (watched: a change is picked up at once).
pub(super) const SECRET_FILE_KEYS: [&str; 3] = [
    CLIENT_SECRET.file_key,
    PASSWORD.file_key,
    super::certificate::CERTIFICATE_FILE_KEY,
];

const CLIENT_SECRET: SecretSpec = SecretSpec {
    key: "client_secret",
    file_key: "client_secret_file",
    env: ENV_CLIENT_SECRET,
    credential: "client-secret",
    what: "the app registration's client secret",
};

const PASSWORD: SecretSpec = SecretSpec {
    key: "password",
    file_key: "password_file",
    env: ENV_PASSWORD,
    credential: "password",
    what: "the service account's password",
};

/// `[auth]`'s client secret, from the first place that gives it.
pub(super) fn client_secret(cx: &Ctx, s: &Section) -> Result<Secret, ConfigError> {
    resolve_secret(cx, s, &CLIENT_SECRET)
}

/// `[auth]`'s password, from the first place that gives it.
pub(super) fn password(cx: &Ctx, s: &Section) -> Result<Secret, ConfigError> {
    resolve_secret(cx, s, &PASSWORD)
}

fn resolve_secret(cx: &Ctx, s: &Section, spec: &SecretSpec) -> Result<Secret, ConfigError> {
    let inline = s.string(cx, spec.key)?;
    let file = s.string(cx, spec.file_key)?;
    match (inline, file) {
        (Some(_), Some((_, span))) => Err(cx.invalid(
            &s.key(spec.file_key),
            Some(&span),
            format!(
                "both {} and {} are set",
                s.key(spec.key),
                s.key(spec.file_key)
            ),
            format!(
                "Keep only one of them: {} (recommended) or {}.",
                spec.file_key, spec.key
            ),
        )),
        (Some((value, span)), None) => {
            let key = s.key(spec.key);
            if value.is_empty() {
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!("{key} is empty"),
                    format!(
                        "Put {} there, or remove the line and use {} instead.",
                        spec.what, spec.file_key
                    ),
                ));
            }
            if let Some(mode) = cx.config_mode
                && mode & OTHERS != 0
            {
                let p = cx.path.display();
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!(
                        "the file holds {} and every user on this device can read it (mode {:04o})",
                        spec.what,
                        mode & 0o7777
                    ),
                    format!(
                        "Move the secret into its own file and set {} to it (mode 0600, or 0640 with owner root and group pbikiosk), or run `chmod o-rwx {p}`.",
                        spec.file_key
                    ),
                ));
            }
            tracing::debug!(key = %key, "secret taken from the configuration file");
            Ok(Secret::new(value))
        }
        (None, Some((file, span))) => {
            let key = s.key(spec.file_key);
            if file.is_empty() {
                return Err(cx.invalid(
                    &key,
                    Some(&span),
                    format!("{key} is empty"),
                    format!(
                        "Set {} to the file that holds {}.",
                        spec.file_key, spec.what
                    ),
                ));
            }
            let path = cx.resolve(file);
            let secret = read_secret_file(cx, &key, Some(&span), &path, spec, true)?;
            tracing::debug!(key = %key, file = %path.display(), "secret read from file");
            Ok(secret)
        }
        (None, None) => {
            if let Some(value) = cx.sources.env.get(spec.env) {
                if value.is_empty() {
                    return Err(cx.invalid(
                        &s.key(spec.key),
                        None,
                        format!("the environment variable {} is set but empty", spec.env),
                        format!(
                            "Put {} into {}, or unset it and set {} in [auth].",
                            spec.what, spec.env, spec.file_key
                        ),
                    ));
                }
                tracing::debug!(env = spec.env, "secret taken from the environment");
                return Ok(Secret::new(value.as_str()));
            }
            if let Some(dir) = &cx.sources.credentials_dir {
                let path = dir.join(spec.credential);
                if path.exists() {
                    let key = s.key(spec.key);
                    let secret = read_secret_file(cx, &key, None, &path, spec, false)?;
                    tracing::debug!(file = %path.display(), "secret read from systemd credentials");
                    return Ok(secret);
                }
            }
            Err(cx.invalid(
                &s.key(spec.key),
                Some(&s.span),
                format!("{} is not configured", spec.what),
                format!(
                    "Give {} in one of four ways: {file_key} = \"{dir}/{cred}\" in [auth] (recommended; the file readable only by root and group pbikiosk, mode 0640, in a folder the web sandbox does not show), {key} = \"...\" in [auth], the environment variable {env}, or a systemd credential named {cred} (LoadCredential={cred}:/path/to/file in the service unit).",
                    spec.what,
                    file_key = spec.file_key,
                    key = spec.key,
                    env = spec.env,
                    cred = spec.credential,
                    dir = crate::sandbox_view::SECRETS_DIR,
                ),
            ))
        }
    }
}

/// A secret that only ever comes from a file (such as `fleet.bearer_token_file`), with the
/// same checks as the sign-in secrets' files: a regular file that other users can neither read
/// nor change, one line, no stray spaces.
pub(super) fn secret_from_file(
    cx: &Ctx,
    key: &str,
    span: Option<&Range<usize>>,
    path: &Path,
    what: &'static str,
) -> Result<Secret, ConfigError> {
    let spec = SecretSpec {
        key: "",
        file_key: "",
        env: "",
        credential: "",
        what,
    };
    read_secret_file(cx, key, span, path, &spec, true)
}

/// The largest secret file accepted. Client secrets are 40 characters and passwords at most
/// 256; anything this big is the wrong file, and is not read into memory whole.
pub(super) const MAX_SECRET_FILE: u64 = 4096;

/// Read a secret from a file, refusing files that other users may read or change when
/// `check_mode` (systemd's credential files are systemd's business). Never blocks: a FIFO or
/// device in place of the file is refused before it is read.
fn read_secret_file(
    cx: &Ctx,
    key: &str,
    span: Option<&Range<usize>>,
    path: &Path,
    spec: &SecretSpec,
    check_mode: bool,
) -> Result<Secret, ConfigError> {
    let p = path.display();
    let fix_create = format!(
        "Create {p} containing only {} (owner root, group pbikiosk, mode 0640), or correct {key}.",
        spec.what
    );
    let fail = |message: String, fix: String| Err(cx.invalid(key, span, message, fix));
    let file = SecretFile {
        key,
        span,
        path,
        what: spec.what,
        fix_create: &fix_create,
        check_mode,
        max: MAX_SECRET_FILE,
    };
    let mut text = read_checked(cx, &file)?;
    // One trailing line break is what editors and `echo` add; anything else is part of the secret.
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return fail(format!("the file {p} is empty"), fix_create);
    }
    // A line break inside a secret is almost always a stray extra line; sending it would be a
    // wrong password every time, which is how the account gets locked out.
    if text.contains(['\n', '\r']) {
        return fail(
            format!("the file {p} holds more than one line"),
            format!(
                "Put {} alone on the first line of {p}, with no blank lines after it.",
                spec.what
            ),
        );
    }
    // Same reason: spaces around a secret are a copy-and-paste slip far more often than part
    // of it, and Microsoft's secrets never start or end with one.
    if text.trim() != text {
        return fail(
            format!(
                "the file {p} has spaces or tabs before or after {}",
                spec.what
            ),
            format!(
                "Remove the spaces and tabs around {} in {p} (one line break at the end is fine).",
                spec.what
            ),
        );
    }
    Ok(Secret::new(text))
}

/// A file that holds key material, and how it is named in errors.
pub(super) struct SecretFile<'a> {
    /// The config key, e.g. `auth.client_secret_file`.
    pub(super) key: &'a str,
    pub(super) span: Option<&'a Range<usize>>,
    pub(super) path: &'a Path,
    /// What it holds, for a person.
    pub(super) what: &'a str,
    /// The fix when it is missing or not a file.
    pub(super) fix_create: &'a str,
    /// Refuse it when other users may read or change it (not for systemd's credentials).
    pub(super) check_mode: bool,
    /// The largest size accepted, in bytes.
    pub(super) max: u64,
}

/// Read a file that holds key material as UTF-8 text, with the checks every such file gets:
/// a regular file (never blocks on a FIFO), not readable by other users and owned by root or
/// the user running pbikiosk (when `check_mode`), at most `max` bytes, no byte order mark.
pub(super) fn read_checked(cx: &Ctx, f: &SecretFile) -> Result<String, ConfigError> {
    use std::io::Read;

    let SecretFile {
        key,
        span,
        path,
        what,
        fix_create,
        check_mode,
        max,
    } = *f;
    let p = path.display();
    let fix_create = fix_create.to_owned();
    let fail = |message: String, fix: String| Err(cx.invalid(key, span, message, fix));
    let (file, meta) = match trust::open_regular(path) {
        Ok(opened) => opened,
        Err(trust::OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return fail(format!("the file {p} does not exist"), fix_create);
        }
        Err(trust::OpenError::NotAFile(kind)) => {
            return fail(format!("{p} is {kind}, not a file"), fix_create);
        }
        Err(trust::OpenError::Io(e)) => {
            return fail(
                format!("the file {p} cannot be read: {}", describe_io(&e)),
                format!("Let pbikiosk read it: `chown root:pbikiosk {p} && chmod 0640 {p}`."),
            );
        }
    };
    if check_mode {
        if let Some(mode) = file_mode(&meta)
            && mode & OTHERS != 0
        {
            return fail(
                format!(
                    "the file {p} can be read or changed by every user on this device (mode {:04o})",
                    mode & 0o7777
                ),
                format!(
                    "Run `chmod o-rwx {p}` (the file should be mode 0600, or 0640 with owner root and group pbikiosk)."
                ),
            );
        }
        if let Err(why) = trust::check(&meta) {
            return fail(why.describe(path), why.fix(path));
        }
    }
    if meta.len() > max {
        return fail(
            format!(
                "the file {p} is {} bytes; a file holding {what} is at most {max}",
                meta.len()
            ),
            format!("Put only {what} in {p}, or correct {key}."),
        );
    }
    let mut bytes = Vec::new();
    // The cap holds even if the file grew after it was measured.
    if let Err(e) = file.take(max + 1).read_to_end(&mut bytes) {
        return fail(
            format!("the file {p} cannot be read: {}", describe_io(&e)),
            format!("Let pbikiosk read it: `chown root:pbikiosk {p} && chmod 0640 {p}`."),
        );
    }
    if bytes.len() as u64 > max {
        return fail(
            format!("the file {p} is larger than {max} bytes"),
            format!("Put only {what} in {p}, or correct {key}."),
        );
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return fail(
            format!("the file {p} is not UTF-8 text"),
            format!("Save {what} in {p} as plain UTF-8 text."),
        );
    };
    // Windows editors start a file with a byte order mark; sent along, it makes every
    // attempt a wrong password.
    if text.starts_with('\u{feff}') {
        return fail(
            format!("the file {p} starts with a byte order mark (BOM)"),
            format!("Save {p} as UTF-8 without BOM, e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' {p}`."),
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;
    use crate::config::{Config, load, parse};

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn inline_and_file_together_are_refused() {
        let text = format!("{}password_file = \"/etc/pbikiosk/password\"\n", auth());
        let (msg, fix) = invalid(err(&text), "auth.password_file", Some(7));
        assert!(
            msg.contains("auth.password") && msg.contains("both"),
            "{msg}"
        );
        assert!(fix.contains("only one"), "{fix}");
    }

    #[test]
    fn secret_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        fs::create_dir(&creds).unwrap();
        // systemd's files: no mode check even when readable by others.
        write(&creds, "client-secret", "cs-from-creds\n", 0o644);
        write(&creds, "password", "pw-from-creds\r\n", 0o644);
        write(dir.path(), "pw", "pw-from-file\n", 0o600);
        let all = SecretSources {
            env: env(&[
                ("PBIKIOSK_CLIENT_SECRET", "cs-from-env"),
                ("PBIKIOSK_PASSWORD", "pw-from-env"),
            ]),
            credentials_dir: Some(creds.clone()),
        };
        let cfg = dir.path().join("pbikiosk.toml");

        // Config (inline or file) beats env and credentials.
        let text = format!(
            "{}client_secret = \"cs-inline\"\npassword_file = \"pw\"\n",
            auth_no_secrets()
        );
        let c = parse(&text, &cfg, &all).unwrap();
        assert_eq!(c.auth.client.secret().unwrap().expose(), "cs-inline");
        assert_eq!(c.auth.password.expose(), "pw-from-file");

        // Env beats credentials.
        let c = parse(&auth_no_secrets(), &cfg, &all).unwrap();
        assert_eq!(c.auth.client.secret().unwrap().expose(), "cs-from-env");
        assert_eq!(c.auth.password.expose(), "pw-from-env");

        // Credentials last; one \n or \r\n stripped.
        let only_creds = SecretSources {
            env: HashMap::new(),
            credentials_dir: Some(creds),
        };
        let c = parse(&auth_no_secrets(), &cfg, &only_creds).unwrap();
        assert_eq!(c.auth.client.secret().unwrap().expose(), "cs-from-creds");
        assert_eq!(c.auth.password.expose(), "pw-from-creds");
    }

    #[test]
    fn empty_env_secret_is_refused() {
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "x"), ("PBIKIOSK_PASSWORD", "")]),
            credentials_dir: None,
        };
        let e = parse(&auth_no_secrets(), path(), &s).unwrap_err();
        let (msg, _) = invalid(e, "auth.password", None);
        assert!(msg.contains("PBIKIOSK_PASSWORD"), "{msg}");
    }

    #[test]
    fn missing_secret_names_all_four_ways() {
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "x")]),
            // A credentials folder without our files falls through to the error.
            credentials_dir: Some(PathBuf::from("/nonexistent-creds")),
        };
        let e = parse(&auth_no_secrets(), path(), &s).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password", Some(1));
        assert!(msg.contains("password"), "{msg}");
        for way in [
            "password_file =",
            "password =",
            "PBIKIOSK_PASSWORD",
            "LoadCredential=password",
        ] {
            assert!(fix.contains(way), "{way} missing in: {fix}");
        }
        let e = parse(&auth_no_secrets(), path(), &no_sources()).unwrap_err();
        let (_, fix) = invalid(e, "auth.client_secret", Some(1));
        for way in [
            "client_secret_file =",
            "client_secret =",
            "PBIKIOSK_CLIENT_SECRET",
            "LoadCredential=client-secret",
        ] {
            assert!(fix.contains(way), "{way} missing in: {fix}");
        }
    }

    #[test]
    fn secret_file_relative_to_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("secrets")).unwrap();
        write(&dir.path().join("secrets"), "cs", "abc", 0o600);
        let text = format!(
            "{}client_secret_file = \"secrets/cs\"\npassword = \"p\"\n",
            auth_no_secrets()
        );
        let c = parse(&text, &dir.path().join("pbikiosk.toml"), &no_sources()).unwrap();
        assert_eq!(c.auth.client.secret().unwrap().expose(), "abc");
    }

    fn with_pw_file(dir: &Path, content: &str, mode: u32) -> Result<Config, ConfigError> {
        let file = write(dir, "password", content, mode);
        let text = format!(
            "{}client_secret = \"c\"\npassword_file = \"{}\"\n",
            auth_no_secrets(),
            file.display()
        );
        parse(&text, &dir.join("pbikiosk.toml"), &no_sources())
    }

    #[test]
    fn secret_file_permissions() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o640, 0o400] {
            let c =
                with_pw_file(dir.path(), "pw", mode).unwrap_or_else(|e| panic!("{mode:o}: {e}"));
            assert_eq!(c.auth.password.expose(), "pw");
        }
        for mode in [0o644, 0o604, 0o602, 0o666] {
            let e = with_pw_file(dir.path(), "pw", mode).unwrap_err();
            let file = dir.path().join("password");
            let (msg, fix) = invalid(e, "auth.password_file", Some(6));
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(
                fix.contains(&format!("chmod o-rwx {}", file.display())),
                "{fix}"
            );
            assert!(
                fix.contains("0600")
                    && fix.contains("0640")
                    && fix.contains("root")
                    && fix.contains("pbikiosk"),
                "{fix}"
            );
        }
    }

    #[test]
    fn secret_file_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let e = with_pw_file(dir.path(), "\n", 0o600).unwrap_err();
        let (msg, _) = invalid(e, "auth.password_file", Some(6));
        assert!(msg.contains("empty"), "{msg}");

        let text = format!(
            "{}client_secret = \"c\"\npassword_file = \"nope\"\n",
            auth_no_secrets()
        );
        let e = parse(&text, &dir.path().join("pbikiosk.toml"), &no_sources()).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password_file", Some(6));
        let expected = dir.path().join("nope").display().to_string();
        assert!(
            msg.contains(&expected) && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(fix.contains("0640"), "{fix}");
    }

    #[test]
    fn one_trailing_newline_is_stripped_and_more_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            ("p w\n", "p w"),
        ] {
            let c = with_pw_file(dir.path(), content, 0o600).unwrap();
            assert_eq!(c.auth.password.expose(), expected, "{content:?}");
        }
        // A second line would be sent as part of the password: refused, not stripped.
        for content in ["pw\n\n", "pw\nsecond", "p\rw"] {
            let e = with_pw_file(dir.path(), content, 0o600).unwrap_err();
            assert!(e.to_string().contains("more than one line"), "{e}");
            assert!(!e.to_string().contains("second"));
        }
    }

    #[test]
    fn spaces_around_a_secret_and_a_bom_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for content in [" pw\n", "pw \n", "pw\t", "\tpw", "pw \r\n"] {
            let e = with_pw_file(dir.path(), content, 0o600).unwrap_err();
            let (msg, fix) = invalid(e, "auth.password_file", Some(6));
            assert!(msg.contains("spaces or tabs"), "{content:?}: {msg}");
            assert!(fix.contains("Remove the spaces"), "{fix}");
        }
        for content in ["\u{feff}pw\n", "\u{feff}pw"] {
            let e = with_pw_file(dir.path(), content, 0o600).unwrap_err();
            let (msg, fix) = invalid(e, "auth.password_file", Some(6));
            assert!(msg.contains("byte order mark"), "{msg}");
            assert!(
                fix.contains("without BOM") && fix.contains("sed -i"),
                "{fix}"
            );
        }
    }

    #[test]
    fn oversized_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = "p".repeat(4096);
        let c = with_pw_file(dir.path(), &at_limit, 0o600).unwrap();
        assert_eq!(c.auth.password.expose().len(), 4096);
        let e = with_pw_file(dir.path(), &"p".repeat(4097), 0o600).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password_file", Some(6));
        assert!(
            msg.contains("4097 bytes") && msg.contains("at most 4096"),
            "{msg}"
        );
        assert!(fix.contains("Put only"), "{fix}");
    }

    #[test]
    fn group_writable_secret_file_is_refused_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o620, 0o660] {
            let e = with_pw_file(dir.path(), "pw", mode).unwrap_err();
            let file = dir.path().join("password");
            let (msg, fix) = invalid(e, "auth.password_file", Some(6));
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert_eq!(
                fix,
                format!(
                    "Run `chmod go-w {}` (as root), so only its owner can change it.",
                    file.display()
                )
            );
        }
    }

    #[test]
    fn fifo_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("password");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let text = format!(
            "{}client_secret = \"c\"\npassword_file = \"{}\"\n",
            auth_no_secrets(),
            fifo.display()
        );
        let e = parse(&text, &dir.path().join("pbikiosk.toml"), &no_sources()).unwrap_err();
        let (msg, fix) = invalid(e, "auth.password_file", Some(6));
        assert!(msg.contains("named pipe (FIFO), not a file"), "{msg}");
        assert!(fix.contains("Create"), "{fix}");
    }

    #[test]
    fn config_file_with_inline_secret_must_not_be_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "pbikiosk.toml", &auth(), 0o644);
        let e = load(&cfg, &no_sources()).unwrap_err();
        let (msg, fix) = invalid(e, "auth.client_secret", Some(5));
        assert!(msg.contains("0644"), "{msg}");
        assert!(fix.contains("client_secret_file"), "{fix}");
        assert!(
            fix.contains(&format!("chmod o-rwx {}", cfg.display())),
            "{fix}"
        );

        fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            load(&cfg, &no_sources()).unwrap().auth.password.expose(),
            PW
        );

        // Without inline secrets a readable config is fine.
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", "c"), ("PBIKIOSK_PASSWORD", "p")]),
            credentials_dir: None,
        };
        let cfg = write(dir.path(), "open.toml", &auth_no_secrets(), 0o644);
        assert!(load(&cfg, &s).is_ok());
    }

    #[test]
    fn secrets_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let mut errors = Vec::new();
        // World-readable config with inline secrets.
        let cfg = write(dir.path(), "a.toml", &auth(), 0o644);
        errors.push(load(&cfg, &no_sources()).unwrap_err());
        // Inline and file together.
        errors.push(err(&format!("{}password_file = \"x\"\n", auth())));
        // Unquoted secret: a syntax error must not quote the line.
        errors.push(err(
            &auth_no_secrets().replace("[auth]\n", &format!("[auth]\npassword = {PW}\n"))
        ));
        errors.push(err(
            &auth_no_secrets().replace("[auth]\n", &format!("[auth]\npassword = \"{PW}\n"))
        ));
        // Typo'd key holding the secret.
        errors.push(err(&auth().replace("password =", "pasword =")));
        // Credentials in a URL.
        errors.push(err(&format!(
            "{}[cloud]\nauthority = \"https://u:{PW}@login.example\"\n",
            auth()
        )));
        errors.push(err(&format!(
            "{}[cloud]\nauthority = \"http://u:{PW}@evil.example\"\n",
            auth()
        )));
        // World-readable secret file.
        let f = write(dir.path(), "pw", PW, 0o644);
        let text = format!(
            "{}client_secret = \"{CS}\"\npassword_file = \"{}\"\n",
            auth_no_secrets(),
            f.display()
        );
        errors.push(parse(&text, path(), &no_sources()).unwrap_err());
        // Secrets in the environment, other error later.
        let s = SecretSources {
            env: env(&[("PBIKIOSK_CLIENT_SECRET", CS), ("PBIKIOSK_PASSWORD", PW)]),
            credentials_dir: None,
        };
        errors.push(
            parse(
                &format!("{}{}", auth_no_secrets(), item("seconds = 1\n")),
                path(),
                &s,
            )
            .unwrap_err(),
        );
        assert!(!format!("{s:?}").contains(PW), "SecretSources Debug leaks");

        assert_eq!(errors.len(), 9);
        for e in &errors {
            let texts = [
                e.to_string(),
                format!("{e:?}"),
                e.fix(),
                format!("{:?}", e.to_problem()),
            ];
            for t in texts {
                assert!(!t.contains(PW) && !t.contains(CS), "leak in: {t}");
            }
        }

        let c = ok(&auth());
        let shown = format!("{c:?} {:?} {:?}", c.auth, c.clone());
        assert!(!shown.contains(PW) && !shown.contains(CS), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
