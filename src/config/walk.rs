//! A walk over the spanned TOML tree, and the refusals every section shares.
//!
//! [`Section`] reads one table by key (text, whole numbers in a range, true/false, lists of
//! names, sub-tables) and turns a missing key, a wrong type or an unknown key into a
//! [`ConfigError`] with the dotted key, the line and a fix. Unknown keys get a "did you mean"
//! hint when they are a likely typo of a valid one. Section-specific rules are not here.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigError, SecretSources};

/// What every rule needs while reading one file: its path and text for messages and line
/// numbers, its folder for relative paths, and what the secret rules look at.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    text: &'a str,
    /// The config file's folder: relative paths in the file are relative to it.
    dir: PathBuf,
    pub(super) sources: &'a SecretSources,
    /// Mode of the config file, when it was read from disk.
    pub(super) config_mode: Option<u32>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        path: &'a Path,
        text: &'a str,
        sources: &'a SecretSources,
        config_mode: Option<u32>,
    ) -> Self {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self {
            path,
            text,
            dir,
            sources,
            config_mode,
        }
    }

    pub(super) fn invalid(
        &self,
        key: &str,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            line: span.map(|s| line_of(self.text, s.start)),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// `file` as written in the configuration, relative to the configuration's folder.
    pub(super) fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(super) fn column_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    let start = text.as_bytes()[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    text.get(start..end)
        .map_or(end - start, |s| s.chars().count())
        + 1
}

/// How a refused value is shown in an error: its length and at most its first four
/// characters (never more than half of it, so a short value is not shown whole).
///
/// Errors reach `check`, the journal, the status screen and `/status`; a value that failed
/// validation may be a secret pasted into the wrong key (a client secret as `client_id`), so
/// it is never repeated. The start and the length are enough for a person to find it.
pub(crate) fn shown(value: &str) -> String {
    const AT_MOST: usize = 4;
    let len = value.chars().count();
    let start: String = value.chars().take(AT_MOST.min(len / 2)).collect();
    match (len, start.is_empty()) {
        (0, _) => "the empty value".to_owned(),
        (n, true) => format!(
            "the value of {n} character{}",
            if n == 1 { "" } else { "s" }
        ),
        (n, false) => format!("the value of {n} characters starting {start:?}"),
    }
}

type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

/// One TOML table with its dotted name, for messages.
pub(super) struct Section<'a, 'i> {
    /// Dotted name (`auth`, `playlist[2]`); empty for the top level.
    pub(super) name: String,
    /// How the table is shown to a person (`[auth]`, `[[playlist]] number 2`).
    pub(super) title: String,
    pub(super) table: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
}

impl<'a, 'i> Section<'a, 'i> {
    pub(super) fn key(&self, k: &str) -> String {
        if self.name.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.name)
        }
    }

    pub(super) fn get(&self, k: &str) -> Option<Value<'a, 'i>> {
        self.table.get(k)
    }

    /// [`Self::check_keys`] for a table whose fix lists its keys: "Valid keys in `[header]` are: ...".
    pub(super) fn check_table_keys(
        &self,
        cx: &Ctx,
        header: &str,
        allowed: &[&str],
    ) -> Result<(), ConfigError> {
        let valid = format!("Valid keys in {header} are: {}.", allowed.join(", "));
        self.check_keys(cx, allowed, &valid)
    }

    /// Refuse the first (in file order) key not in `allowed`.
    pub(super) fn check_keys(
        &self,
        cx: &Ctx,
        allowed: &[&str],
        valid: &str,
    ) -> Result<(), ConfigError> {
        let unknown = self
            .table
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        let Some(k) = unknown else {
            return Ok(());
        };
        let name: &str = k.get_ref();
        let mut fix = valid.to_owned();
        if let Some(near) = closest(name, allowed) {
            fix = format!("Did you mean `{near}`? {fix}");
        }
        Err(cx.invalid(
            &self.key(name),
            Some(&k.span()),
            format!("unknown key `{name}` in {}", self.title),
            fix,
        ))
    }

    fn wrong_type(
        &self,
        cx: &Ctx,
        k: &str,
        v: Value,
        expected: &str,
        example: &str,
    ) -> ConfigError {
        cx.invalid(
            &self.key(k),
            Some(&v.span()),
            format!("must be {expected}, not {}", describe_type(v.get_ref())),
            format!("Write it like {k} = {example}"),
        )
    }

    pub(super) fn table(&self, cx: &Ctx, k: &str) -> Result<Option<Section<'a, 'i>>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => Ok(Some(Section {
                name: self.key(k),
                title: format!("[{}]", self.key(k)),
                table: t,
                span: v.span(),
            })),
            _ => Err(cx.invalid(
                &self.key(k),
                Some(&v.span()),
                format!("must be a section, not {}", describe_type(v.get_ref())),
                format!("Write it as a [{k}] section header with its keys on the lines below."),
            )),
        }
    }

    pub(super) fn string(
        &self,
        cx: &Ctx,
        k: &str,
    ) -> Result<Option<(&'a str, Range<usize>)>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
            _ => Err(self.wrong_type(cx, k, v, "text in double quotes", "\"...\"")),
        }
    }

    pub(super) fn required(
        &self,
        cx: &Ctx,
        k: &str,
        fix: &str,
    ) -> Result<(&'a str, Range<usize>), ConfigError> {
        self.string(cx, k)?.ok_or_else(|| {
            cx.invalid(
                &self.key(k),
                Some(&self.span),
                format!("{} is missing in {}", self.key(k), self.title),
                fix,
            )
        })
    }

    pub(super) fn bool(&self, cx: &Ctx, k: &str) -> Result<Option<bool>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            _ => Err(self.wrong_type(cx, k, v, "true or false (without quotes)", "false")),
        }
    }

    /// A whole number within `range`; `unit` is shown in the message.
    pub(super) fn int(
        &self,
        cx: &Ctx,
        k: &str,
        range: RangeInclusive<i64>,
        unit: &str,
        example: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::Integer(i) = v.get_ref() else {
            let example = example.to_string();
            return Err(self.wrong_type(cx, k, v, "a whole number without quotes", &example));
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            parsed => {
                let shown = parsed.map_or_else(|_| "too large".to_owned(), |n| n.to_string());
                Err(cx.invalid(
                    &self.key(k),
                    Some(&v.span()),
                    format!(
                        "{shown} is out of range: allowed are {} to {} {unit}",
                        range.start(),
                        range.end()
                    ),
                    format!(
                        "Set {k} to a value from {} to {}.",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        }
    }

    /// A list of non-empty names without spaces (page and bookmark names).
    pub(super) fn names(
        &self,
        cx: &Ctx,
        k: &str,
        fix: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(cx, k, v, "a list", "[\"...\", \"...\"]"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::String(s) = item.get_ref() else {
                return Err(cx.invalid(
                    &self.key(k),
                    Some(&item.span()),
                    format!(
                        "every entry must be text in double quotes, not {}",
                        describe_type(item.get_ref())
                    ),
                    format!("Write it like {k} = [\"...\", \"...\"]"),
                ));
            };
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(cx.invalid(
                    &self.key(k),
                    Some(&item.span()),
                    format!(
                        "{} is not a valid name: names are not empty and have no spaces",
                        shown(s)
                    ),
                    fix,
                ));
            }
            out.push(s.to_string());
        }
        Ok(Some(out))
    }
    /// Time windows (`"mon-fri 07:00-19:00"`): one in double quotes or a list of them.
    /// `None` when the key is absent; a present key never yields an empty schedule.
    pub(super) fn windows(
        &self,
        cx: &Ctx,
        k: &str,
    ) -> Result<Option<crate::schedule::Schedule>, ConfigError> {
        use crate::schedule::{Schedule, Window};
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let example = "\"mon-fri 07:00-19:00\" or [\"mon-fri 11:30-14:00\", \"sat 10:00-12:00\"]";
        let entries: Vec<(&str, Range<usize>)> = match v.get_ref() {
            DeValue::String(s) => vec![(s.as_ref(), v.span())],
            DeValue::Array(items) if !items.is_empty() => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    let DeValue::String(s) = item.get_ref() else {
                        return Err(cx.invalid(
                            &self.key(k),
                            Some(&item.span()),
                            format!(
                                "every window must be text in double quotes, not {}",
                                describe_type(item.get_ref())
                            ),
                            format!("Write it like {k} = {example}"),
                        ));
                    };
                    out.push((s.as_ref(), item.span()));
                }
                out
            }
            DeValue::Array(_) => {
                return Err(cx.invalid(
                    &self.key(k),
                    Some(&v.span()),
                    "the list of windows is empty",
                    format!("Remove {k} to mean \"always\", or write it like {k} = {example}"),
                ));
            }
            _ => {
                return Err(self.wrong_type(
                    cx,
                    k,
                    v,
                    "a time window in double quotes or a list of them",
                    example,
                ));
            }
        };
        let mut windows = Vec::with_capacity(entries.len());
        for (n, (text, span)) in entries.iter().enumerate() {
            let w = Window::parse(text).map_err(|e| {
                let which = if entries.len() > 1 {
                    format!("window {} ", n + 1)
                } else {
                    String::new()
                };
                cx.invalid(
                    &self.key(k),
                    Some(span),
                    format!("{which}{}: {e}", shown(text)),
                    format!(
                        "Write each window as \"<days> <HH:MM>-<HH:MM>\" in the device's local time, like {example}; a window ending before it starts runs past midnight, 24:00 ends at midnight."
                    ),
                )
            })?;
            windows.push(w);
        }
        Ok(Some(Schedule::new(windows)))
    }
}

pub(super) fn describe_type(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "text",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a section",
    }
}

/// The allowed key closest to a typo, if it is close enough to be a likely typo.
fn closest<'k>(name: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (edit_distance(&name.to_ascii_lowercase(), a), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Edit distance where swapping two neighbouring letters counts as one typo (`auht` → `auth`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::shown;
    use crate::config::test_support::*;

    #[test]
    fn shown_gives_the_length_and_at_most_four_characters() {
        assert_eq!(
            shown("Zq9x~secret-value"),
            "the value of 17 characters starting \"Zq9x\""
        );
        // Never more than half of a short value.
        assert_eq!(
            shown("abcdef"),
            "the value of 6 characters starting \"abc\""
        );
        assert_eq!(shown("yes"), "the value of 3 characters starting \"y\"");
        assert_eq!(shown("x"), "the value of 1 character");
        assert_eq!(shown(""), "the empty value");
        // Characters, not bytes: a multi-byte value is not cut inside a character.
        assert_eq!(
            shown("ééééééé"),
            "the value of 7 characters starting \"ééé\""
        );
    }

    #[test]
    fn no_rules_error_repeats_the_refused_value() {
        // A secret pasted into every free-text key, shaped so each key's rule refuses it.
        const V: &str = "Zq9x~Sup3rSecretPasted";
        let at = |key: &str, old: &str, new: &str| (key.to_owned(), auth().replace(old, new));
        let mut cases = vec![
            at(
                "auth.tenant",
                "\"contoso.onmicrosoft.com\"",
                &format!("\"{V}\""),
            ),
            at("auth.client_id", &format!("\"{APP}\""), &format!("\"{V}\"")),
            at(
                "auth.username",
                "\"svc@contoso.onmicrosoft.com\"",
                &format!("\"{V}\""),
            ),
        ];
        for (key, value) in [
            ("authority", format!("{V}:x")),
            ("api", format!("{V}:x")),
            ("resource", format!("{V} x")),
            // A valid URL whose scheme is the secret (no `~` allowed there).
            ("authority", "Zq9xSup3rScheme://login.example".to_owned()),
        ] {
            let text = format!("{}[cloud]\n{key} = \"{value}\"\n", auth());
            cases.push((format!("cloud.{key}"), text));
        }
        cases.push((
            "status.listen".to_owned(),
            format!("{}[status]\nlisten = \"{V}\"\n", auth()),
        ));
        cases.push((
            "status.textfile".to_owned(),
            format!("{}[status]\ntextfile = \"{V}\"\n", auth()),
        ));
        for key in ["gpu", "report_layout"] {
            let text = format!("{}[display]\n{key} = \"{V}\"\n", auth());
            cases.push((format!("display.{key}"), text));
        }
        for (key, old) in [("workspace", WS), ("report", REPORT)] {
            let text = format!("{}{}", auth(), item("").replace(old, V));
            cases.push((format!("playlist[1].{key}"), text));
        }
        let text = format!("{}{}", auth(), item(&format!("pages = [\"{V} x\"]\n")));
        cases.push(("playlist[1].pages".to_owned(), text));
        let text = format!(
            "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"{V}\"\n",
            auth()
        );
        cases.push(("playlist[1].dashboard".to_owned(), text));

        for (key, text) in cases {
            let e = err(&text);
            assert_eq!(e.key(), Some(key.as_str()), "{e}");
            let all = format!("{e} {e:?} {} {:?}", e.fix(), e.to_problem());
            // The start may be shown, nothing beyond it.
            assert!(!all.contains("Zq9x~"), "{key} repeats the value: {all}");
            assert!(!all.contains("Sup3r"), "{key} repeats the value: {all}");
        }
    }

    #[test]
    fn unknown_keys_are_typos() {
        let text = auth().replace("tenant =", "tenat =");
        let (msg, fix) = invalid(err(&text), "auth.tenat", Some(2));
        assert!(msg.contains("unknown key `tenat` in [auth]"), "{msg}");
        assert!(fix.contains("Did you mean `tenant`?"), "{fix}");
        assert!(
            fix.contains("client_secret_file"),
            "valid keys listed: {fix}"
        );

        let text = format!("{}{}", auth(), item("sconds = 30\n"));
        let (_, fix) = invalid(err(&text), "playlist[1].sconds", Some(10));
        assert!(fix.contains("Did you mean `seconds`?"), "{fix}");
        assert!(fix.contains("refresh_seconds"), "{fix}");

        let text = format!("{}[cloud]\nauthorty = \"https://x.example\"\n", auth());
        let (_, fix) = invalid(err(&text), "cloud.authorty", Some(8));
        assert!(fix.contains("`authority`"), "{fix}");

        let (_, fix) = invalid(
            err(&format!("{}[status]\nport = 1\n", auth())),
            "status.port",
            Some(8),
        );
        assert!(fix.contains("listen"), "{fix}");
        invalid(
            err(&format!("{}[player]\nuseragent = \"x\"\n", auth())),
            "player.useragent",
            Some(8),
        );
    }

    #[test]
    fn unknown_key_reported_in_file_order() {
        // BTreeMap order would pick `aaa`; the installer expects the first one in the file.
        let text = format!("{}zzz = 1\naaa = 2\n", auth());
        invalid(err(&text), "auth.zzz", Some(7));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let text = format!("{}{}", auth(), item("seconds = \"30\"\n"));
        let (msg, fix) = invalid(err(&text), "playlist[1].seconds", Some(10));
        assert!(
            msg.contains("whole number") && msg.contains("not text"),
            "{msg}"
        );
        assert!(fix.contains("seconds = 30"), "{fix}");

        let text = format!("{}allow_federated = \"yes\"\n", auth());
        let (msg, _) = invalid(err(&text), "auth.allow_federated", Some(7));
        assert!(msg.contains("true or false"), "{msg}");

        let text = format!("{}{}", auth(), item("pages = \"ReportSection\"\n"));
        invalid(err(&text), "playlist[1].pages", Some(10));

        invalid(err("auth = 3\n"), "auth", Some(1));
        // Top-level keys must come before [auth], or they would belong to it.
        invalid(
            err(&format!("playlist = 3\n{}", auth())),
            "playlist",
            Some(1),
        );
        let text = format!("playlist = [\"x\"]\n{}", auth());
        invalid(err(&text), "playlist[1]", Some(1));
    }
}
