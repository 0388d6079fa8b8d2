//! The import against temporary folders standing for the boot partition, `/etc/pbikiosk` and
//! the state folder (no chown: the tests do not run as root).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::ProblemId;

const WS: &str = "11111111-2222-3333-4444-555555555555";
const REPORT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const APP: &str = "0f0f0f0f-1234-5678-9abc-def012345678";
const CS: &str = "cs-Sup3rSecretValue";
const PW: &str = "pw-Hunter2Correct";

struct Device {
    _root: tempfile::TempDir,
    fat: PathBuf,
    etc: PathBuf,
    state: PathBuf,
}

impl Device {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let fat = root.path().join("boot");
        let etc = root.path().join("etc/pbikiosk");
        let state = root.path().join("state");
        fs::create_dir_all(&fat).unwrap();
        fs::create_dir_all(&state).unwrap();
        Self {
            _root: root,
            fat,
            etc,
            state,
        }
    }

    fn opts(&self) -> ImportOptions {
        ImportOptions {
            from: Some(self.fat.clone()),
            config: self.etc.join("pbikiosk.toml"),
            secrets_dir: self.etc.clone(),
            state_dir: self.state.clone(),
            ownership: Ownership::Unchanged,
        }
    }

    fn put(&self, name: &str, text: &str) -> PathBuf {
        let p = self.fat.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn import(&self) -> Result<Outcome, ImportError> {
        import(&self.opts(), &SecretSources::default())
    }
}

fn good() -> String {
    format!(
        "# from the boot partition\n[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nclient_secret = \"{CS}\"\nusername = \"svc@contoso.onmicrosoft.com\"\npassword = \"{PW}\"\n\n[[playlist]]\nworkspace = \"{WS}\"\nreport = \"{REPORT}\"\nseconds = 20\n"
    )
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_good_file_becomes_config_and_secret_files_and_leaves_the_boot_partition() {
    let d = Device::new();
    let fat = d.put(BOOT_FILE, &good());
    let out = d.import().unwrap();
    let cfg_path = d.etc.join("pbikiosk.toml");
    let config = fs::read_to_string(&cfg_path).unwrap();
    assert!(!config.contains(CS) && !config.contains(PW), "{config}");
    assert!(config.contains(&format!(
        "client_secret_file = \"{}\"",
        d.etc.join("client-secret").display()
    )));
    assert_eq!(
        fs::read_to_string(d.etc.join("password")).unwrap(),
        format!("{PW}\n")
    );
    assert_eq!(
        fs::read_to_string(d.etc.join("client-secret")).unwrap(),
        format!("{CS}\n")
    );
    for f in ["pbikiosk.toml", "password", "client-secret"] {
        assert_eq!(mode(&d.etc.join(f)), 0o640, "{f}");
    }
    assert_eq!(mode(&d.etc), 0o750);
    assert!(!fat.exists(), "the boot copy is removed");
    // The device's config loads with the rules the kiosk uses.
    let cfg = crate::config::load(&cfg_path, &SecretSources::default()).unwrap();
    assert_eq!(cfg.auth.password.expose(), PW);
    assert_eq!(cfg.playlist[0].seconds, 20);
    let said = out.describe();
    assert!(!said.contains(PW) && !said.contains(CS), "{said}");
    assert!(said.contains("removed"), "{said}");
    // Nothing is left staged in the config folder.
    let mut names: Vec<_> = fs::read_dir(&d.etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["client-secret", "password", "pbikiosk.toml"]);
}

#[test]
fn an_existing_config_is_replaced_and_kept_as_bak() {
    let d = Device::new();
    fs::create_dir_all(&d.etc).unwrap();
    fs::write(d.etc.join("pbikiosk.toml"), "# old\n").unwrap();
    fs::write(d.etc.join("password"), "old-password\n").unwrap();
    d.put(BOOT_FILE, &good());
    match d.import().unwrap() {
        Outcome::Imported { backup, .. } => {
            assert_eq!(backup, Some(d.etc.join("pbikiosk.toml.bak")))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fs::read_to_string(d.etc.join("pbikiosk.toml.bak")).unwrap(),
        "# old\n"
    );
    assert_eq!(mode(&d.etc.join("pbikiosk.toml.bak")), 0o600);
    assert_eq!(
        fs::read_to_string(d.etc.join("password.bak")).unwrap(),
        "old-password\n"
    );
    assert_eq!(mode(&d.etc.join("password.bak")), 0o600);
}

#[test]
fn an_invalid_file_is_kept_recorded_and_shown_without_its_secrets() {
    let d = Device::new();
    fs::create_dir_all(&d.etc).unwrap();
    fs::write(d.etc.join("pbikiosk.toml"), "# in use\n").unwrap();
    // seconds = 2 on line 12: below the rules' minimum.
    let text = good().replace("seconds = 20", "seconds = 2");
    let fat = d.put(BOOT_FILE, &text);
    let e = d.import().unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}, line 12: playlist[1].seconds", fat.display())),
        "{shown}"
    );
    assert_eq!(
        fs::read_to_string(&fat).unwrap(),
        text,
        "the boot copy stays"
    );
    assert_eq!(
        fs::read_to_string(d.etc.join("pbikiosk.toml")).unwrap(),
        "# in use\n"
    );
    assert!(!d.etc.join("password").exists(), "nothing half-written");
    assert_eq!(
        fs::read_dir(&d.etc).unwrap().count(),
        1,
        "no staged file left"
    );
    let state = fs::read_to_string(d.state.join(state::FILE_NAME)).unwrap();
    assert!(state.contains("\"line\": 12"), "{state}");
    assert!(state.contains("playlist[1].seconds"), "{state}");
    for s in [&state, &shown, &e.fix()] {
        assert!(!s.contains(PW) && !s.contains(CS), "{s}");
    }
    let sources = SecretSources {
        env: [("STATE_DIRECTORY".to_owned(), d.state.display().to_string())].into(),
        credentials_dir: None,
    };
    let p = pending_problem(&sources).unwrap();
    assert_eq!(p.id, ProblemId::BootConfigInvalid);
    assert!(p.cause.contains("playlist[1].seconds"), "{}", p.cause);
    assert!(p.cause.contains(&fat.display().to_string()), "{}", p.cause);

    // Corrected on the card: imported, and the record goes.
    d.put(BOOT_FILE, &good());
    d.import().unwrap();
    assert!(pending_problem(&sources).is_none());
    assert!(!fat.exists());
}

#[test]
fn a_secret_the_rules_refuse_is_named_by_the_key_the_installer_wrote() {
    let d = Device::new();
    // A pasted space after the password: the secret-file rule refuses it.
    let text = good().replace(&format!("\"{PW}\""), &format!("\"{PW} \""));
    d.put(BOOT_FILE, &text);
    let e = d.import().unwrap_err();
    match &e {
        ImportError::Invalid(ConfigError::Invalid { key, line, .. }) => {
            assert_eq!((key.as_str(), *line), ("auth.password", Some(7)), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let shown = format!("{e} {}", e.fix());
    assert!(!shown.contains(".import."), "no staged file named: {shown}");
    assert!(!shown.contains(PW), "{shown}");
    assert!(!d.etc.join("password").exists());
}

#[test]
fn a_syntax_error_on_a_secret_line_names_the_line_not_the_secret() {
    let d = Device::new();
    let text = good().replace(&format!("password = \"{PW}\""), &format!("password = {PW}"));
    d.put(BOOT_FILE, &text);
    let e = d.import().unwrap_err();
    assert!(
        matches!(e, ImportError::Invalid(ConfigError::Syntax { line: 7, .. })),
        "{e:?}"
    );
    let state = fs::read_to_string(d.state.join(state::FILE_NAME)).unwrap();
    assert!(!state.contains("Hunter2"), "{state}");
    assert!(!e.to_string().contains("Hunter2"), "{e}");
}

#[test]
fn a_certificate_beside_the_file_is_copied_and_removed_from_the_boot_partition() {
    let d = Device::new();
    let text = good().replace(
        &format!("client_secret = \"{CS}\""),
        "client_certificate_file = \"app.pem\"",
    );
    let now = chrono::Utc::now().timestamp();
    let (_, pem) = crate::auth::certificate::generate(now - 60, now + 86_400).unwrap();
    let cert = d.put("app.pem", &pem);
    d.put(BOOT_FILE, &text);
    match d.import() {
        Ok(Outcome::Imported { removed, .. }) => {
            assert_eq!(removed, [cert.clone(), d.fat.join(BOOT_FILE)])
        }
        other => panic!("{other:?}"),
    }
    assert!(!cert.exists());
    let copied = d.etc.join("client-certificate.pem");
    assert_eq!(fs::read_to_string(&copied).unwrap(), pem);
    assert_eq!(mode(&copied), 0o640);
    let config = fs::read_to_string(d.etc.join("pbikiosk.toml")).unwrap();
    assert!(
        config.contains(&format!(
            "client_certificate_file = \"{}\"",
            copied.display()
        )),
        "{config}"
    );
}

#[test]
fn a_missing_boot_secret_file_is_named_with_its_key_and_line() {
    let d = Device::new();
    let text = good().replace(
        &format!("password = \"{PW}\""),
        "password_file = \"pw.txt\"",
    );
    d.put(BOOT_FILE, &text);
    match d.import().unwrap_err() {
        ImportError::Invalid(ConfigError::Invalid {
            key, line, message, ..
        }) => {
            assert_eq!((key.as_str(), line), ("auth.password_file", Some(7)));
            assert!(message.contains("pw.txt"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_boot_file_clears_a_stale_record() {
    let d = Device::new();
    let r = Refusal {
        file: d.fat.join(BOOT_FILE),
        line: Some(1),
        key: None,
        cause: "x".into(),
        fix: "y".into(),
    };
    state::record(&d.state, &r).unwrap();
    assert_eq!(d.import().unwrap(), Outcome::NothingToImport);
    assert!(state::read(&d.state).is_none());
}

#[test]
fn as_root_the_files_are_root_and_the_kiosk_group() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "not root: chown cannot be tested here (scripts/test-packaging.sh installs as root)"
        );
        return;
    }
    use std::os::unix::fs::MetadataExt as _;
    const GID: u32 = 4242;
    let d = Device::new();
    d.put(BOOT_FILE, &good());
    let opts = ImportOptions {
        ownership: Ownership::RootGroup(GID),
        ..d.opts()
    };
    import(&opts, &SecretSources::default()).unwrap();
    for f in ["pbikiosk.toml", "password", "client-secret", ""] {
        let m = fs::metadata(d.etc.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, GID), "{f:?}");
    }
    // A replaced config's copy is root's alone.
    d.put(BOOT_FILE, &good());
    import(&opts, &SecretSources::default()).unwrap();
    let m = fs::metadata(d.etc.join("pbikiosk.toml.bak")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));
}
