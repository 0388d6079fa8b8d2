//! `pbikiosk config get|set`: read or change single keys of the configuration file.
//!
//! Edits go through `toml_edit`, so every comment, blank line and the order of the file stay as
//! they were; only the values that are set change. Before anything is written, the whole edited
//! file is checked with the same rules the player uses (`config::parse`, then [`config::load`]
//! on the staged file, which adds the file-mode rule for inline secrets), so an installer cannot
//! leave a file behind that the player would refuse. The file is replaced atomically (a temporary
//! file in the same folder, renamed over it) and keeps its mode, owner and group.
//!
//! Keys are the dotted names that [`ConfigError`] uses in its messages: `auth.username`,
//! `display.rotation`, `playlist[1].report` (playlist entries counted from 1).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::config::walk::shown;
use crate::config::{self, ConfigError, SecretSources};

/// What a key holds in the file, so that `set` writes a value of the right TOML type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    /// Page and bookmark names: edited by hand, shown by `get`.
    List,
}

/// One settable key of a section.
struct Spec {
    name: &'static str,
    kind: Kind,
    /// For an inline secret, the key naming the file that holds it instead.
    secret_file: Option<&'static str>,
}

const fn key(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        kind,
        secret_file: None,
    }
}

const fn secret(name: &'static str, file: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Text,
        secret_file: Some(file),
    }
}

/// The sections and keys `config` knows, with their types (see `config.rs` for the rules).
const SECTIONS: &[(&str, &[Spec])] = &[
    (
        "auth",
        &[
            key("method", Kind::Text),
            key("tenant", Kind::Text),
            key("client_id", Kind::Text),
            secret("client_secret", "client_secret_file"),
            key("client_secret_file", Kind::Text),
            key("client_certificate_file", Kind::Text),
            key("username", Kind::Text),
            secret("password", "password_file"),
            key("password_file", Kind::Text),
            key("allow_federated", Kind::Boolean),
            key("permanent_retry_minutes", Kind::Integer),
            key("token_cache", Kind::Text),
        ],
    ),
    (
        "cloud",
        &[
            key("authority", Kind::Text),
            key("api", Kind::Text),
            key("resource", Kind::Text),
            key("ca_file", Kind::Text),
        ],
    ),
    (
        "status",
        &[
            key("listen", Kind::Text),
            key("token_file", Kind::Text),
            key("textfile", Kind::Text),
        ],
    ),
    (
        "player",
        &[
            key("user_agent", Kind::Text),
            key("memory_recycle_margin_mib", Kind::Integer),
            key("memory_baseline_minutes", Kind::Integer),
        ],
    ),
    (
        "display",
        &[
            key("rotation", Kind::Integer),
            key("gpu", Kind::Text),
            key("report_layout", Kind::Text),
            key("power_via", Kind::Text),
            key("cec_device", Kind::Text),
        ],
    ),
    (
        "network",
        &[
            key("proxy", Kind::Text),
            key("no_proxy", Kind::List),
            key("proxy_credentials_file", Kind::Text),
        ],
    ),
    (
        "fleet",
        &[
            key("url", Kind::Text),
            key("poll_seconds", Kind::Integer),
            key("bearer_token_file", Kind::Text),
        ],
    ),
];

const PLAYLIST: &[Spec] = &[
    key("workspace", Kind::Text),
    key("report", Kind::Text),
    key("dashboard", Kind::Text),
    key("pages", Kind::List),
    key("bookmarks", Kind::List),
    key("seconds", Kind::Integer),
    key("refresh_seconds", Kind::Integer),
];

/// Where a key lives: a `[section]` or the n-th `[[playlist]]` entry (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Section(&'static str),
    Playlist(usize),
}

/// A known key, parsed from its dotted name.
pub struct Key {
    place: Place,
    spec: &'static Spec,
}

impl Key {
    pub fn parse(text: &str) -> Result<Key, EditError> {
        let unknown = || EditError::UnknownKey {
            key: text.to_owned(),
            suggestion: suggest(text),
        };
        let (head, name) = text.split_once('.').ok_or_else(unknown)?;
        let (place, specs) = match head
            .strip_prefix("playlist[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            // Written the way error messages write it: `playlist[2]`, not `playlist[02]`.
            Some(n) => match n.parse::<usize>() {
                Ok(num) if num >= 1 && num.to_string() == n => (Place::Playlist(num), PLAYLIST),
                _ => return Err(unknown()),
            },
            None => SECTIONS
                .iter()
                .find(|(s, _)| *s == head)
                .map(|(s, specs)| (Place::Section(s), *specs))
                .ok_or_else(unknown)?,
        };
        let spec = specs.iter().find(|s| s.name == name).ok_or_else(unknown)?;
        Ok(Key { place, spec })
    }

    /// Secrets are never printed, and are only stored inline when no file is configured.
    pub fn is_secret(&self) -> bool {
        self.spec.secret_file.is_some()
    }

    fn dotted(&self) -> String {
        match self.place {
            Place::Section(s) => format!("{s}.{}", self.spec.name),
            Place::Playlist(n) => format!("playlist[{n}].{}", self.spec.name),
        }
    }
}

/// Every key `get` and `set` accept, playlist keys with `[N]` for the entry number.
fn valid_keys() -> Vec<String> {
    let mut keys: Vec<String> = SECTIONS
        .iter()
        .flat_map(|(s, specs)| specs.iter().map(move |k| format!("{s}.{}", k.name)))
        .collect();
    keys.extend(PLAYLIST.iter().map(|k| format!("playlist[N].{}", k.name)));
    keys
}

/// The valid key nearest to a typo, when it is near enough to be what was meant.
fn suggest(typo: &str) -> Option<String> {
    // Compare `playlist[2].reprot` with `playlist[N].report`, then give the number back.
    let (shape, number) = match (typo.find('['), typo.find(']')) {
        (Some(a), Some(b)) if a < b => (
            format!("{}[N]{}", &typo[..a], &typo[b + 1..]),
            Some(&typo[a + 1..b]),
        ),
        _ => (typo.to_owned(), None),
    };
    let shape = shape.to_ascii_lowercase();
    let (distance, best) = valid_keys()
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&shape, &k), k))
        .min_by_key(|(d, _)| *d)?;
    if distance > (best.len() / 4).max(1) {
        return None;
    }
    Some(match number {
        Some(n) if n.parse::<usize>().is_ok_and(|n| n >= 1) => {
            best.replace("[N]", &format!("[{n}]"))
        }
        _ => best,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{key}: unknown key")]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    /// The edit itself cannot be made (a value of the wrong type, an inline secret beside its
    /// file, a list, a playlist entry out of order).
    #[error("{key}: {message}")]
    Refused {
        key: String,
        message: String,
        fix: String,
    },
    /// The edited file breaks one of the configuration's rules; nothing was written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl EditError {
    /// How to fix it, in words an installer understands.
    pub fn fix(&self) -> String {
        match self {
            EditError::UnknownKey { suggestion, .. } => {
                let valid = format!("Valid keys are: {}.", valid_keys().join(", "));
                match suggestion {
                    Some(s) => format!("Did you mean `{s}`? {valid}"),
                    None => valid,
                }
            }
            EditError::Refused { fix, .. } => fix.clone(),
            EditError::Config(e) => e.fix(),
            EditError::Io { path, .. } => format!(
                "Run it as a user who may write {} and its folder (e.g. with sudo).",
                path.display()
            ),
        }
    }

    /// 2 for a refused edit or a config the edit would break (nothing was written), 1 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            EditError::Io { .. } => 1,
            _ => 2,
        }
    }
}

/// What `get` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// The value: text unquoted, numbers and true/false as written, lists in TOML.
    Value(String),
    Unset,
    /// The key holds a secret, which is never printed.
    Secret,
}

/// The value of `key` in the file at `path`. A missing file has every key unset.
pub fn get(path: &Path, key: &str) -> Result<Got, EditError> {
    let key = Key::parse(key)?;
    if key.is_secret() {
        return Ok(Got::Secret);
    }
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Got::Unset),
        Err(e) => {
            return Err(EditError::Io {
                path: path.to_path_buf(),
                action: "cannot read it",
                source: e,
            });
        }
    };
    let doc = parse_document(&text, path)?;
    Ok(lookup(&doc, &key).map_or(Got::Unset, |v| Got::Value(show(v))))
}

fn lookup<'d>(doc: &'d DocumentMut, key: &Key) -> Option<&'d Value> {
    let table: &dyn TableLike = match key.place {
        Place::Section(s) => doc.get(s)?.as_table_like()?,
        Place::Playlist(n) => doc.get("playlist")?.as_array_of_tables()?.get(n - 1)?,
    };
    table.get(key.spec.name)?.as_value()
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.value().clone(),
        other => other.clone().decorated("", "").to_string(),
    }
}

/// What `set` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The file already held these values (nothing was written), or `--check` found it valid.
    Unchanged,
}

/// Set `pairs` (dotted key, value) in the file at `path`, all at once so that keys that only
/// make sense together (a first `[auth]`, a new playlist entry) are checked together.
/// With `check_only`, validates the edit and writes nothing.
///
/// A new file gets mode 0640 and the group of its folder (`/etc/pbikiosk` is root:pbikiosk),
/// so the player's group can read it and other users cannot.
pub fn set(
    path: &Path,
    pairs: &[(String, String)],
    sources: &SecretSources,
    check_only: bool,
) -> Result<Outcome, EditError> {
    let io_err = |action, source| EditError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    // Write through a symlink to the file it names, not over the link.
    let target = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io_err("cannot resolve it", e)),
    };
    let (original, meta) = match fs::read_to_string(&target) {
        Ok(text) => {
            let meta = fs::metadata(&target).map_err(|e| io_err("cannot read it", e))?;
            (text, Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => return Err(io_err("cannot read it", e)),
    };
    let text = edit(&original, pairs, path, sources)?;

    let staged = stage(&target, &text, meta.as_ref()).map_err(|e| io_err("cannot write it", e))?;
    // The staged file is what the player would read: load it the way the player does, which adds
    // the rule that a file holding an inline secret must not be readable by everyone.
    if has_auth(&text) {
        config::load(staged.path(), sources).map_err(|e| relocate(e, staged.path(), path))?;
    }
    if check_only || (meta.is_some() && text == original) {
        return Ok(Outcome::Unchanged);
    }
    staged
        .persist(&target)
        .map_err(|e| io_err("cannot replace it", e.error))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the folder is: a power cut must not bring the old file back.
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot sync its folder", e))?;
    }
    Ok(Outcome::Written)
}

/// The edited text of `original` with `pairs` set, checked with the configuration's rules as if
/// it were the file at `path` (without the file-mode rule, which needs the file). No I/O beyond
/// what those rules read (secret files, `ca_file`).
pub(crate) fn edit(
    original: &str,
    pairs: &[(String, String)],
    path: &Path,
    sources: &SecretSources,
) -> Result<String, EditError> {
    let mut doc = parse_document(original, path)?;
    let mut secrets = Vec::new();
    for (k, v) in pairs {
        let key = Key::parse(k)?;
        let value = typed_value(&key, v)?;
        set_value(&mut doc, &key, value)?;
        if key.is_secret() {
            secrets.push(key);
        }
    }
    for key in &secrets {
        refuse_inline_beside_file(&doc, key)?;
    }
    let text = doc.to_string();
    validate(&doc, &text, path, sources)?;
    Ok(text)
}

fn parse_document(text: &str, path: &Path) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: e.message().trim_end().to_owned(),
        }
    })
}

fn typed_value(key: &Key, raw: &str) -> Result<Value, EditError> {
    let refused = |message: String, fix: String| EditError::Refused {
        key: key.dotted(),
        message,
        fix,
    };
    match key.spec.kind {
        Kind::Text => Ok(Value::from(raw)),
        Kind::Integer => raw.trim().parse::<i64>().map(Value::from).map_err(|_| {
            refused(
                format!("{} is not a whole number", shown(raw)),
                format!(
                    "Give a whole number, e.g. `pbikiosk config set {} 90`.",
                    key.dotted()
                ),
            )
        }),
        Kind::Boolean => match raw.trim() {
            "true" => Ok(Value::from(true)),
            "false" => Ok(Value::from(false)),
            _ => Err(refused(
                format!("{} is not true or false", shown(raw)),
                "Give true or false.".to_owned(),
            )),
        },
        Kind::List => Err(refused(
            "lists are not set from the command line".to_owned(),
            format!(
                "Edit {} in the file by hand: {} = [\"Name1\", \"Name2\"].",
                key.dotted(),
                key.spec.name
            ),
        )),
    }
}

fn set_value(doc: &mut DocumentMut, key: &Key, mut value: Value) -> Result<(), EditError> {
    let refused = |message: &str, fix: &str| EditError::Refused {
        key: key.dotted(),
        message: message.to_owned(),
        fix: fix.to_owned(),
    };
    let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
    let mut moved_trailing = false;
    let table: &mut dyn TableLike = match key.place {
        Place::Section(s) => {
            if !doc.contains_key(s) {
                doc.insert(s, Item::Table(new_table(&trailing)));
                moved_trailing = true;
            }
            doc.get_mut(s)
                .and_then(Item::as_table_like_mut)
                .ok_or_else(|| {
                    refused(
                        &format!("{s} is not a section in the file"),
                        &format!("Write [{s}] as a section header with its keys below it."),
                    )
                })?
        }
        Place::Playlist(n) => {
            if !doc.contains_key("playlist") {
                doc.insert("playlist", Item::ArrayOfTables(ArrayOfTables::new()));
            }
            let entries = doc
                .get_mut("playlist")
                .and_then(Item::as_array_of_tables_mut)
                .ok_or_else(|| {
                    refused(
                        "the playlist is not written as [[playlist]] blocks",
                        "Edit the playlist by hand, one [[playlist]] block per entry.",
                    )
                })?;
            let len = entries.len();
            if n == len + 1 {
                entries.push(new_table(if len == 0 { &trailing } else { "" }));
                moved_trailing = len == 0;
            } else if n > len {
                let fix = format!(
                    "Add entry {} first (set its workspace and report), or edit an existing entry (1 to {len}).",
                    len + 1
                );
                return Err(refused(&format!("the playlist has {len} entries"), &fix));
            }
            entries.get_mut(n - 1).expect("entry exists or was added")
        }
    };
    match table.get_mut(key.spec.name) {
        // Keep the old value's surroundings (spacing, a comment after it on the same line).
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            table.insert(key.spec.name, Item::Value(value));
        }
    }
    // A new section goes last: comments that ended the file now stand above it, where they were.
    if moved_trailing {
        doc.set_trailing("");
    }
    Ok(())
}

/// An empty table to append; `above` is text that ended the file and now stands above it.
fn new_table(above: &str) -> Table {
    let mut t = Table::new();
    if !above.trim().is_empty() {
        let mut prefix = above.to_owned();
        if !prefix.ends_with('\n') {
            prefix.push('\n');
        }
        if !prefix.ends_with("\n\n") {
            prefix.push('\n');
        }
        t.decor_mut().set_prefix(prefix);
    }
    t
}

fn refuse_inline_beside_file(doc: &DocumentMut, key: &Key) -> Result<(), EditError> {
    let (Place::Section(s), Some(file_key)) = (key.place, key.spec.secret_file) else {
        return Ok(());
    };
    let file = doc
        .get(s)
        .and_then(Item::as_table_like)
        .and_then(|t| t.get(file_key))
        .and_then(Item::as_str);
    let Some(file) = file else {
        return Ok(());
    };
    Err(EditError::Refused {
        key: key.dotted(),
        message: format!(
            "{s}.{file_key} is set, so this secret is read from {file}; it is not stored in the configuration file as well"
        ),
        fix: format!(
            "Write the new value into {file} instead (one line; e.g. `sudoedit {file}`), or remove {s}.{file_key} from the configuration first to keep the secret inline."
        ),
    })
}

/// Whether the edited file has a non-empty `[auth]`, i.e. is configured at all.
fn has_auth(text: &str) -> bool {
    text.parse::<DocumentMut>().is_ok_and(|d| auth_is_set(&d))
}

fn auth_is_set(doc: &DocumentMut) -> bool {
    doc.get("auth")
        .and_then(Item::as_table_like)
        .is_some_and(|t| !t.is_empty())
}

fn validate(
    doc: &DocumentMut,
    text: &str,
    path: &Path,
    sources: &SecretSources,
) -> Result<(), ConfigError> {
    if auth_is_set(doc) {
        return config::parse(text, path, sources).map(drop);
    }
    // Not configured yet: the rules stop at the missing [auth] (the player shows "not
    // configured"). Check the rest anyway with a stand-in [auth] appended, so a bad value in
    // another section is refused now rather than once [auth] is filled in.
    let mut probe = doc.clone();
    let mut auth = Table::new();
    auth.insert("tenant", toml_edit::value("organizations"));
    auth.insert(
        "client_id",
        toml_edit::value("00000000-0000-0000-0000-000000000000"),
    );
    auth.insert("username", toml_edit::value("stand-in@example.com"));
    probe.insert("auth", Item::Table(auth));
    let env = HashMap::from([
        ("PBIKIOSK_CLIENT_SECRET".to_owned(), "stand-in".to_owned()),
        ("PBIKIOSK_PASSWORD".to_owned(), "stand-in".to_owned()),
    ]);
    let stand_in = SecretSources {
        env,
        credentials_dir: None,
    };
    config::parse(&probe.to_string(), path, &stand_in).map(drop)
}

/// The text in a temporary file next to `target`, with the mode, owner and group `target` has
/// (or 0640 and the folder's group for a new file), flushed to disk.
fn stage(
    target: &Path,
    text: &str,
    meta: Option<&fs::Metadata>,
) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let (mode, uid, gid) = match meta {
        Some(m) => (m.mode() & 0o7777, Some(m.uid()), m.gid()),
        None => (0o640, None, fs::metadata(dir)?.gid()),
    };
    std::os::unix::fs::fchown(tmp.as_file(), uid, Some(gid))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// An error about the staged file, told about the real one.
fn relocate(e: ConfigError, staged: &Path, real: &Path) -> EditError {
    let from = staged.display().to_string();
    let to = real.display().to_string();
    let e = match e {
        ConfigError::NotFound { .. } => ConfigError::NotFound {
            path: real.to_path_buf(),
        },
        ConfigError::NotConfigured { .. } => ConfigError::NotConfigured {
            path: real.to_path_buf(),
        },
        ConfigError::Unreadable { source, .. } => ConfigError::Unreadable {
            path: real.to_path_buf(),
            source,
        },
        ConfigError::NotAFile { kind, .. } => ConfigError::NotAFile {
            path: real.to_path_buf(),
            kind,
        },
        ConfigError::Untrusted { message, fix, .. } => ConfigError::Untrusted {
            path: real.to_path_buf(),
            message: message.replace(&from, &to),
            fix: fix.replace(&from, &to),
        },
        ConfigError::Syntax {
            line,
            column,
            message,
            ..
        } => ConfigError::Syntax {
            path: real.to_path_buf(),
            line,
            column,
            message,
        },
        ConfigError::Invalid {
            key,
            line,
            message,
            fix,
            ..
        } => ConfigError::Invalid {
            path: real.to_path_buf(),
            key,
            line,
            message: message.replace(&from, &to),
            fix: fix.replace(&from, &to),
        },
    };
    EditError::Config(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const GUID: &str = "11111111-2222-3333-4444-555555555555";

    fn path() -> &'static Path {
        Path::new("/etc/pbikiosk/pbikiosk.toml")
    }

    /// Secrets from the environment, so that literal configs need no secret files.
    fn env_secrets() -> SecretSources {
        SecretSources {
            env: HashMap::from([
                ("PBIKIOSK_CLIENT_SECRET".to_owned(), "s".to_owned()),
                ("PBIKIOSK_PASSWORD".to_owned(), "p".to_owned()),
            ]),
            credentials_dir: None,
        }
    }

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> String {
        format!(
            "# pbikiosk\n\n[auth]\n# who signs in\ntenant = \"contoso.onmicrosoft.com\"   # or a GUID\nclient_id = \"{GUID}\"\nusername = \"svc@contoso.onmicrosoft.com\"\n\n# Screens\n[[playlist]]\nworkspace = \"{GUID}\"\nreport = \"{GUID}\"\n\n# end of file\n"
        )
    }

    fn edit_ok(text: &str, kv: &[(&str, &str)]) -> String {
        edit(text, &pairs(kv), path(), &env_secrets()).unwrap()
    }

    fn edit_err(text: &str, kv: &[(&str, &str)]) -> EditError {
        edit(text, &pairs(kv), path(), &env_secrets()).unwrap_err()
    }

    #[test]
    fn comments_and_order_are_kept() {
        let out = edit_ok(&base(), &[("auth.tenant", "fabrikam.onmicrosoft.com")]);
        assert_eq!(
            out,
            base().replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                "tenant = \"fabrikam.onmicrosoft.com\""
            )
        );
    }

    #[test]
    fn new_key_goes_into_its_section_and_new_section_at_the_end() {
        let out = edit_ok(&base(), &[("auth.allow_federated", "true")]);
        assert!(
            out.contains("username = \"svc@contoso.onmicrosoft.com\"\nallow_federated = true\n"),
            "{out}"
        );
        let out = edit_ok(&base(), &[("display.rotation", "90")]);
        assert!(out.starts_with(&base()), "{out}");
        assert!(out.ends_with("\n[display]\nrotation = 90\n"), "{out}");
    }

    #[test]
    fn fleet_keys_are_set_and_checked() {
        let out = edit_ok(
            &base(),
            &[
                ("fleet.url", "https://cfg.example/screens/{hostname}.toml"),
                ("fleet.poll_seconds", "60"),
            ],
        );
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(
            doc["fleet"]["url"].as_str(),
            Some("https://cfg.example/screens/{hostname}.toml")
        );
        assert_eq!(doc["fleet"]["poll_seconds"].as_integer(), Some(60));
        let e = edit_err(&base(), &[("fleet.url", "https://cfg.example/{host}.toml")]);
        assert!(e.to_string().contains("{host}"), "{e}");
        let e = edit_err(
            &base(),
            &[
                ("fleet.url", "https://h/a.toml"),
                ("fleet.poll_seconds", "10"),
            ],
        );
        assert!(e.to_string().contains("fleet.poll_seconds"), "{e}");
    }

    #[test]
    fn values_have_the_keys_type() {
        let out = edit_ok(
            &base(),
            &[
                ("display.rotation", "270"),
                ("auth.permanent_retry_minutes", "5"),
                ("auth.allow_federated", "false"),
                ("playlist[1].seconds", "45"),
                ("status.listen", "127.0.0.1:9600"),
            ],
        );
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["display"]["rotation"].as_integer(), Some(270));
        assert_eq!(doc["auth"]["permanent_retry_minutes"].as_integer(), Some(5));
        assert_eq!(doc["auth"]["allow_federated"].as_bool(), Some(false));
        assert_eq!(doc["playlist"][0]["seconds"].as_integer(), Some(45));
        assert_eq!(doc["status"]["listen"].as_str(), Some("127.0.0.1:9600"));

        let e = edit_err(&base(), &[("display.rotation", "ninety")]);
        assert_eq!(
            e.to_string(),
            "display.rotation: the value of 6 characters starting \"nin\" is not a whole number"
        );
        let e = edit_err(&base(), &[("auth.allow_federated", "yes")]);
        assert!(e.to_string().starts_with("auth.allow_federated:"), "{e}");
        let e = edit_err(&base(), &[("playlist[1].pages", "A")]);
        assert!(e.fix().contains("by hand"), "{}", e.fix());
    }

    /// `config set` opens the status endpoint to the LAN only together with its token file.
    #[test]
    fn a_lan_status_endpoint_is_set_with_its_token_file() {
        let e = edit_err(&base(), &[("status.listen", "0.0.0.0:9520")]);
        assert!(e.to_string().contains("status.token_file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("status-token");
        fs::write(&token, "Zm9vYmFyLXN0YXR1cy10b2tlbi0xMjM0NTY=\n").unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        let out = edit_ok(
            &base(),
            &[
                ("status.listen", "0.0.0.0:9520"),
                ("status.token_file", token.to_str().unwrap()),
                (
                    "status.textfile",
                    "/var/lib/prometheus/node-exporter/pbikiosk.prom",
                ),
            ],
        );
        let cfg = config::parse(&out, path(), &env_secrets()).unwrap();
        assert_eq!(cfg.status.listen, "0.0.0.0:9520".parse().unwrap());
        assert!(cfg.status.token.is_some());
        assert!(cfg.status.textfile.is_some());
        // The file holds the token's path, never the token.
        assert!(!out.contains("Zm9vYmFy"), "{out}");
    }

    #[test]
    fn awkward_usernames_round_trip() {
        for name in [
            "a|b&c@contoso.onmicrosoft.com",
            "q\"uote\\back@contoso.onmicrosoft.com",
            "jürgen.ße€@contoso.onmicrosoft.com",
            "it's&|\"\\x@contoso.onmicrosoft.com",
        ] {
            let out = edit_ok(&base(), &[("auth.username", name)]);
            let doc: DocumentMut = out.parse().unwrap();
            assert_eq!(doc["auth"]["username"].as_str(), Some(name), "{out}");
            let cfg = config::parse(&out, path(), &env_secrets()).unwrap();
            assert_eq!(cfg.auth.username, name);
        }
    }

    #[test]
    fn invalid_values_are_refused_with_the_key_and_line() {
        let e = edit_err(&base(), &[("display.rotation", "45")]);
        let EditError::Config(ConfigError::Invalid { key, line, fix, .. }) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(key, "display.rotation");
        assert_eq!(*line, Some(17));
        assert!(fix.contains("0, 90, 180 or 270"), "{fix}");

        let e = edit_err(&base(), &[("display.report_layout", "mobile")]);
        assert!(
            e.to_string()
                .contains("display.report_layout: the value of 6 characters starting \"mob\""),
            "{e}"
        );
        let out = edit_ok(&base(), &[("display.report_layout", "fit_width")]);
        let cfg = config::parse(&out, path(), &env_secrets()).unwrap();
        assert_eq!(
            cfg.display.report_layout,
            crate::report_layout::ReportLayout::FitWidth
        );

        let e = edit_err(&base(), &[("auth.username", "not-an-upn")]);
        assert_eq!(
            e.to_string(),
            "/etc/pbikiosk/pbikiosk.toml, line 7: auth.username: the value of 10 characters starting \"not-\" does not look like user@domain"
        );
        let e = edit_err(&base(), &[("playlist[1].report", "nope")]);
        assert_eq!(
            match &e {
                EditError::Config(c) => c.key(),
                _ => None,
            },
            Some("playlist[1].report")
        );
    }

    #[test]
    fn screen_power_keys_are_set_and_checked() {
        let out = edit_ok(
            &base(),
            &[
                ("display.power_via", "cec"),
                ("display.cec_device", "/dev/cec1"),
            ],
        );
        let cfg = config::parse(&out, path(), &env_secrets()).unwrap();
        assert_eq!(cfg.display.power.via, crate::screen_power::PowerVia::Cec);
        assert_eq!(
            cfg.display.power.cec_device.as_deref(),
            Some(Path::new("/dev/cec1"))
        );
        for (key, bad) in [
            ("display.power_via", "hdmi"),
            ("display.cec_device", "/dev/sda"),
        ] {
            let e = edit_err(&base(), &[(key, bad)]);
            let EditError::Config(c) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(c.key(), Some(key), "{e}");
        }
    }

    #[test]
    fn network_proxy_is_set_checked_and_never_echoes_a_password() {
        let out = edit_ok(
            &base(),
            &[("network.proxy", "http://proxy.corp.example:3128")],
        );
        assert!(out.starts_with(&base()), "{out}");
        assert!(
            out.ends_with("\n[network]\nproxy = \"http://proxy.corp.example:3128\"\n"),
            "{out}"
        );
        let e = edit_err(
            &base(),
            &[("network.proxy", "http://kiosk:Pr0xyS3cret@p:3128")],
        );
        let EditError::Config(ConfigError::Invalid { key, fix, .. }) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(key, "network.proxy");
        assert!(fix.contains("proxy_credentials_file"), "{fix}");
        assert!(!format!("{e} {e:?} {}", e.fix()).contains("Pr0xyS3cret"));
        let e = edit_err(&base(), &[("network.no_proxy", ".corp")]);
        assert!(e.fix().contains("by hand"), "{}", e.fix());
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let Err(e) = Key::parse("auth.usernmae") else {
            panic!("accepted");
        };
        assert_eq!(e.to_string(), "auth.usernmae: unknown key");
        assert!(
            e.fix()
                .starts_with("Did you mean `auth.username`? Valid keys are: auth.method,")
        );
        assert_eq!(e.exit_code(), 2);
        let Err(e) = Key::parse("playlist[2].reprot") else {
            panic!("accepted");
        };
        assert!(
            e.fix().starts_with("Did you mean `playlist[2].report`?"),
            "{}",
            e.fix()
        );
        for bad in [
            "auth",
            "playlist[0].report",
            "playlist.report",
            "nothing.at.all",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_secret_beside_its_file_is_refused() {
        let text = base().replace(
            "username =",
            "password_file = \"/etc/pbikiosk/password\"\nusername =",
        );
        let e = edit_err(&text, &[("auth.password", "hunter2")]);
        let msg = format!("{e} {}", e.fix());
        assert!(msg.contains("auth.password:"), "{msg}");
        assert!(msg.contains("auth.password_file"), "{msg}");
        assert!(msg.contains("/etc/pbikiosk/password"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        // Without a file for it, an inline secret is allowed.
        let out = edit_ok(&base(), &[("auth.password", "hunter2")]);
        assert!(out.contains("password = \"hunter2\""), "{out}");
    }

    #[test]
    fn first_config_and_first_playlist_entry_in_one_edit() {
        let header = "# Written by hand\n";
        let out = edit_ok(
            header,
            &[
                ("auth.tenant", "contoso.onmicrosoft.com"),
                ("auth.client_id", GUID),
                ("auth.username", "svc@contoso.onmicrosoft.com"),
            ],
        );
        assert!(
            out.starts_with("# Written by hand\n\n[auth]\ntenant ="),
            "{out}"
        );
        // One key at a time, the first would fail: client_id is required.
        let e = edit_err(header, &[("auth.tenant", "contoso.onmicrosoft.com")]);
        assert!(e.to_string().contains("auth.client_id"), "{e}");

        let no_playlist = out.clone();
        let out = edit_ok(
            &no_playlist,
            &[
                ("playlist[1].workspace", GUID),
                ("playlist[1].report", GUID),
                ("playlist[1].seconds", "30"),
            ],
        );
        assert!(
            out.ends_with(&format!(
                "\n[[playlist]]\nworkspace = \"{GUID}\"\nreport = \"{GUID}\"\nseconds = 30\n"
            )),
            "{out}"
        );
        let e = edit_err(&no_playlist, &[("playlist[2].workspace", GUID)]);
        assert!(e.to_string().contains("the playlist has 0 entries"), "{e}");
    }

    #[test]
    fn unconfigured_file_is_still_checked() {
        let out = edit_ok("# nothing yet\n", &[("display.rotation", "90")]);
        assert_eq!(out, "# nothing yet\n\n[display]\nrotation = 90\n");
        let e = edit_err("# nothing yet\n", &[("display.rotation", "45")]);
        assert!(e.to_string().contains("display.rotation"), "{e}");
    }

    #[test]
    fn syntax_errors_are_config_errors() {
        let e = edit_err("[auth\n", &[("auth.tenant", "x.com")]);
        assert!(
            matches!(e, EditError::Config(ConfigError::Syntax { line: 1, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn get_values_secrets_and_unset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pbikiosk.toml");
        assert_eq!(get(&p, "auth.tenant").unwrap(), Got::Unset);
        fs::write(&p, base() + "\n[display]\nrotation = 90\n").unwrap();
        assert_eq!(
            get(&p, "auth.tenant").unwrap(),
            Got::Value("contoso.onmicrosoft.com".into())
        );
        assert_eq!(
            get(&p, "display.rotation").unwrap(),
            Got::Value("90".into())
        );
        assert_eq!(
            get(&p, "playlist[1].report").unwrap(),
            Got::Value(GUID.into())
        );
        assert_eq!(get(&p, "playlist[2].report").unwrap(), Got::Unset);
        assert_eq!(get(&p, "status.listen").unwrap(), Got::Unset);
        assert_eq!(get(&p, "auth.password").unwrap(), Got::Secret);
        assert!(matches!(
            get(&p, "auth.tennant"),
            Err(EditError::UnknownKey { .. })
        ));
    }

    #[test]
    fn set_writes_atomically_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pbikiosk.toml");
        fs::write(&p, base()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let kv = pairs(&[("auth.username", "a|b&c@contoso.onmicrosoft.com")]);
        assert_eq!(
            set(&p, &kv, &env_secrets(), false).unwrap(),
            Outcome::Written
        );
        let meta = fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert!(fs::read_to_string(&p).unwrap().contains("a|b&c@"));
        // Again: nothing to write; no temporary file is left behind.
        assert_eq!(
            set(&p, &kv, &env_secrets(), false).unwrap(),
            Outcome::Unchanged
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pbikiosk.toml")]);

        // A refused edit leaves the file as it was.
        let before = fs::read_to_string(&p).unwrap();
        let bad = pairs(&[("display.rotation", "45")]);
        assert!(set(&p, &bad, &env_secrets(), false).is_err());
        assert_eq!(fs::read_to_string(&p).unwrap(), before);
        // --check validates without writing.
        let good = pairs(&[("display.rotation", "90")]);
        assert_eq!(
            set(&p, &good, &env_secrets(), true).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), before);
    }

    #[test]
    fn inline_secret_in_a_world_readable_file_is_refused_by_the_config_rule() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pbikiosk.toml");
        fs::write(&p, base()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = set(
            &p,
            &pairs(&[("auth.password", "hunter2")]),
            &env_secrets(),
            false,
        )
        .unwrap_err();
        let msg = format!("{e} {}", e.fix());
        assert!(
            msg.contains("every user on this device can read it"),
            "{msg}"
        );
        // Named after the real file, not the staged one.
        assert!(
            msg.contains(&format!("chmod o-rwx {}", p.display())),
            "{msg}"
        );
        assert!(!msg.contains(".pbikiosk.toml."), "{msg}");
        assert!(!fs::read_to_string(&p).unwrap().contains("hunter2"));
    }

    #[test]
    fn new_file_is_0640() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pbikiosk.toml");
        let kv = pairs(&[("display.gpu", "off")]);
        assert_eq!(
            set(&p, &kv, &env_secrets(), false).unwrap(),
            Outcome::Written
        );
        let meta = fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "[display]\ngpu = \"off\"\n"
        );
    }
}
