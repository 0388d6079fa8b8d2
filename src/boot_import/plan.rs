//! What importing a boot-partition `pbikiosk.toml` writes where: pure, no I/O.
//!
//! The FAT boot partition has no permissions, so nothing secret may stay there or be pointed
//! at there. Each secret the file holds inline (`auth.client_secret`, `auth.password`), and
//! each secret file it names on the boot partition itself (`client_secret_file`,
//! `password_file`, `client_certificate_file` with a relative path, or an absolute one inside
//! the boot folder), becomes a secret file beside the device's config, under the name
//! `install.sh` gives it. The config text is changed in place, key and value within their own
//! spans and padded to the same number of lines, so that every error the config rules find in
//! the changed text has the line of the boot-partition file the installer edited.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::config::ConfigError;
use crate::secret::Secret;

/// The secret files an import may write, named as `install.sh` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretKind {
    ClientSecret,
    Password,
    ClientCertificate,
}

impl SecretKind {
    /// The file's name in the config folder.
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "client-secret",
            SecretKind::Password => "password",
            SecretKind::ClientCertificate => "client-certificate.pem",
        }
    }

    /// The `[auth]` key that names the file.
    fn file_key(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "client_secret_file",
            SecretKind::Password => "password_file",
            SecretKind::ClientCertificate => "client_certificate_file",
        }
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Written inline in the boot-partition file; a secret file ends with a newline, as
    /// `install.sh` writes it.
    Inline(Secret),
    /// A file on the boot partition, copied byte for byte (and then removed from there).
    BootFile(PathBuf),
}

/// One secret file to write.
#[derive(Debug, Clone)]
pub(crate) struct SecretOut {
    pub(crate) kind: SecretKind,
    pub(crate) origin: Origin,
    /// The dotted key as the installer wrote it (`auth.password`), for messages.
    pub(crate) original_key: String,
    /// The dotted key in the written config (`auth.password_file`).
    pub(crate) written_key: String,
    key_span: Range<usize>,
    value_span: Range<usize>,
}

/// What one import writes, before anything is written.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    text: String,
    pub(crate) secrets: Vec<SecretOut>,
}

/// Keys that name other files: relative to the config's folder, which changes on import.
const OTHER_FILE_KEYS: [(&str, &str); 2] = [("cloud", "ca_file"), ("auth", "token_cache")];

impl Plan {
    /// Decide the secret files and key changes for the boot file `fat_file` with `text`.
    /// A syntax error is `None`: the config rules word it (with line and column) when the text
    /// is validated.
    pub(crate) fn make(text: &str, fat_file: &Path) -> Result<Option<Plan>, ConfigError> {
        let Ok(doc) = DeTable::parse(text) else {
            return Ok(None);
        };
        let fat_dir = fat_file.parent().unwrap_or(Path::new("/"));
        let mut secrets = Vec::new();
        let root = doc.get_ref();
        if let Some(auth) = table(root, "auth") {
            for (key, value) in auth.iter() {
                let name: &str = key.get_ref();
                let kind = match name {
                    "client_secret" => Some((SecretKind::ClientSecret, true)),
                    "password" => Some((SecretKind::Password, true)),
                    "client_secret_file" => Some((SecretKind::ClientSecret, false)),
                    "password_file" => Some((SecretKind::Password, false)),
                    "client_certificate_file" => Some((SecretKind::ClientCertificate, false)),
                    _ => None,
                };
                let (Some((kind, inline)), DeValue::String(s)) = (kind, value.get_ref()) else {
                    // Other keys, and a secret key of the wrong type, are the config rules' to
                    // refuse.
                    continue;
                };
                let origin = if inline {
                    Origin::Inline(Secret::new(s.as_ref()))
                } else {
                    let p = Path::new(s.as_ref());
                    let on_boot = if p.is_absolute() {
                        p.starts_with(fat_dir)
                    } else {
                        !s.is_empty()
                    };
                    if !on_boot {
                        // A file on the device itself (or an empty value the rules refuse).
                        continue;
                    }
                    if p.components().any(|c| c == std::path::Component::ParentDir) {
                        return Err(invalid(
                            fat_file,
                            text,
                            &format!("auth.{name}"),
                            key.span(),
                            format!("auth.{name} leaves the boot partition's folder (\"..\")"),
                            format!(
                                "Put the file beside pbikiosk.toml on the boot partition and give its name only, e.g. {name} = \"{}\".",
                                kind.file_name()
                            ),
                        ));
                    }
                    Origin::BootFile(fat_dir.join(p))
                };
                secrets.push(SecretOut {
                    kind,
                    origin,
                    original_key: format!("auth.{name}"),
                    written_key: format!("auth.{}", kind.file_key()),
                    key_span: key.span(),
                    value_span: value.span(),
                });
            }
        }
        // Both the inline key and its file key: left as written, for the config rules to refuse
        // with their own message (a rewrite would turn it into a duplicate key).
        let twice = |k: SecretKind| secrets.iter().filter(|o: &&SecretOut| o.kind == k).count() > 1;
        let doubled: Vec<SecretKind> = secrets
            .iter()
            .map(|o| o.kind)
            .filter(|&k| twice(k))
            .collect();
        secrets.retain(|o| !doubled.contains(&o.kind));
        for (section, name) in OTHER_FILE_KEYS {
            let Some(t) = table(root, section) else {
                continue;
            };
            for (key, value) in t.iter() {
                if key.get_ref().as_ref() != name {
                    continue;
                }
                if let DeValue::String(s) = value.get_ref()
                    && !s.is_empty()
                    && !Path::new(s.as_ref()).is_absolute()
                {
                    return Err(invalid(
                        fat_file,
                        text,
                        &format!("{section}.{name}"),
                        value.span(),
                        format!(
                            "{section}.{name} is a relative path, which would mean a different file once the settings are imported"
                        ),
                        format!(
                            "Give the full path on the device, e.g. {name} = \"{}\".",
                            if name == "ca_file" {
                                "/etc/pbikiosk/corp-ca.pem"
                            } else {
                                crate::config::DEFAULT_TOKEN_CACHE
                            }
                        ),
                    ));
                }
            }
        }
        Ok(Some(Plan {
            text: text.to_owned(),
            secrets,
        }))
    }

    /// The config text with each secret replaced by its file key naming `path_of(kind)`; the
    /// same number of lines as the boot file.
    pub(crate) fn render(&self, path_of: impl Fn(SecretKind) -> String) -> String {
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        for s in &self.secrets {
            let old_lines = self.text[s.key_span.start..s.value_span.end]
                .matches('\n')
                .count();
            let value = toml_edit::Value::from(path_of(s.kind)).to_string();
            let value = value.trim().to_owned();
            edits.push((s.value_span.clone(), value + &"\n".repeat(old_lines)));
            edits.push((s.key_span.clone(), s.kind.file_key().to_owned()));
        }
        // From the end, so earlier spans stay valid.
        edits.sort_by_key(|e| std::cmp::Reverse(e.0.start));
        let mut out = self.text.clone();
        for (span, with) in edits {
            out.replace_range(span, &with);
        }
        out
    }
}

fn table<'a, 'i>(root: &'a DeTable<'i>, name: &str) -> Option<&'a DeTable<'i>> {
    root.iter()
        .find(|(k, _)| k.get_ref().as_ref() == name)
        .and_then(|(_, v)| match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        })
}

fn invalid(
    path: &Path,
    text: &str,
    key: &str,
    span: Range<usize>,
    message: String,
    fix: String,
) -> ConfigError {
    let line = text.as_bytes()[..span.start.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_owned(),
        line: Some(line),
        message,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAT: &str = "/boot/firmware/pbikiosk.toml";

    fn plan(text: &str) -> Plan {
        Plan::make(text, Path::new(FAT)).unwrap().expect("parses")
    }

    fn to_etc(kind: SecretKind) -> String {
        format!("/etc/pbikiosk/{}", kind.file_name())
    }

    #[test]
    fn inline_secrets_become_files_on_the_same_lines() {
        let text = "[auth]\ntenant = \"t\"\nclient_secret = \"s3cr3t-value\"\nusername = \"u\"\npassword = 'pa\"ss' # keep\n\n[[playlist]]\nseconds = 2\n";
        let p = plan(text);
        let kinds: Vec<_> = p.secrets.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SecretKind::ClientSecret, SecretKind::Password]);
        match &p.secrets[1].origin {
            Origin::Inline(s) => assert_eq!(s.expose(), "pa\"ss"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.secrets[1].original_key, "auth.password");
        assert_eq!(p.secrets[1].written_key, "auth.password_file");
        let out = p.render(to_etc);
        assert_eq!(
            out,
            "[auth]\ntenant = \"t\"\nclient_secret_file = \"/etc/pbikiosk/client-secret\"\nusername = \"u\"\npassword_file = \"/etc/pbikiosk/password\" # keep\n\n[[playlist]]\nseconds = 2\n"
        );
        assert!(!out.contains("s3cr3t"));
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn a_multi_line_secret_keeps_the_line_count() {
        let text = "[auth]\npassword = \"\"\"\nline1\nline2\"\"\"\ntenant = 5\n";
        let out = plan(text).render(to_etc);
        assert!(!out.contains("line1"), "{out}");
        assert_eq!(out.lines().count(), text.lines().count(), "{out}");
        // `tenant` is still on line 5, where the rules will name it.
        assert_eq!(out.lines().nth(4), Some("tenant = 5"));
    }

    #[test]
    fn dotted_and_inline_table_forms_are_rewritten_too() {
        let out = plan("auth.password = \"pw\"\n").render(to_etc);
        assert_eq!(out, "auth.password_file = \"/etc/pbikiosk/password\"\n");
        let out = plan("auth = { client_secret = \"cs\", tenant = \"t\" }\n").render(to_etc);
        assert_eq!(
            out,
            "auth = { client_secret_file = \"/etc/pbikiosk/client-secret\", tenant = \"t\" }\n"
        );
    }

    #[test]
    fn files_on_the_boot_partition_are_copied_and_files_on_the_device_are_left() {
        let p = plan(
            "[auth]\nclient_certificate_file = \"app.pem\"\npassword_file = \"/boot/firmware/pw.txt\"\n",
        );
        let origins: Vec<_> = p
            .secrets
            .iter()
            .map(|s| match &s.origin {
                Origin::BootFile(f) => (s.kind, f.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            origins,
            [
                (
                    SecretKind::ClientCertificate,
                    PathBuf::from("/boot/firmware/app.pem")
                ),
                (SecretKind::Password, PathBuf::from("/boot/firmware/pw.txt")),
            ]
        );
        let out = p.render(to_etc);
        assert!(out.contains("client_certificate_file = \"/etc/pbikiosk/client-certificate.pem\""));
        assert!(out.contains("password_file = \"/etc/pbikiosk/password\""));

        let p = plan("[auth]\npassword_file = \"/etc/pbikiosk/password\"\n");
        assert!(p.secrets.is_empty());
        assert_eq!(
            p.render(to_etc),
            "[auth]\npassword_file = \"/etc/pbikiosk/password\"\n"
        );
    }

    #[test]
    fn leaving_the_boot_folder_and_relative_device_paths_are_refused_with_key_and_line() {
        let e = Plan::make(
            "[auth]\n\npassword_file = \"../etc/shadow\"\n",
            Path::new(FAT),
        )
        .unwrap_err();
        match &e {
            ConfigError::Invalid { key, line, .. } => {
                assert_eq!((key.as_str(), *line), ("auth.password_file", Some(3)))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with(FAT), "{e}");
        let e = Plan::make("[cloud]\nca_file = \"ca.pem\"\n", Path::new(FAT)).unwrap_err();
        match &e {
            ConfigError::Invalid { key, line, fix, .. } => {
                assert_eq!((key.as_str(), *line), ("cloud.ca_file", Some(2)));
                assert!(fix.contains("/etc/pbikiosk/corp-ca.pem"), "{fix}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Plan::make("[cloud]\nca_file = \"/etc/ssl/ca.pem\"\n", Path::new(FAT))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_syntax_error_is_left_to_the_config_rules_and_both_forms_of_a_secret_to_them_too() {
        assert!(
            Plan::make("[auth\npassword = \"x\"\n", Path::new(FAT))
                .unwrap()
                .is_none()
        );
        let text = "[auth]\npassword = \"a\"\npassword_file = \"pw\"\nclient_secret = \"c\"\n";
        let p = plan(text);
        let kinds: Vec<_> = p.secrets.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [SecretKind::ClientSecret],
            "both password forms stay for the rules"
        );
        assert!(
            p.render(to_etc)
                .starts_with("[auth]\npassword = \"a\"\npassword_file = \"pw\"\n")
        );
    }
}
