//! `pbikiosk config get|set` as an installer runs it: the built binary on a file.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

const GUID: &str = "11111111-2222-3333-4444-555555555555";

#[test]
fn the_binary_sets_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pbikiosk.toml");
    let original = format!(
        "# kiosk\n[auth]\ntenant = \"contoso.onmicrosoft.com\"  # keep me\nclient_id = \"{GUID}\"\nusername = \"svc@contoso.onmicrosoft.com\"\n"
    );
    fs::write(&p, &original).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
            .arg("--config")
            .arg(&p)
            .arg("config")
            .args(args)
            .env("PBIKIOSK_CLIENT_SECRET", "s")
            .env("PBIKIOSK_PASSWORD", "p")
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let name = "ü|&\"\\@contoso.onmicrosoft.com";
    let out = run(&["set", "auth.username", name, "display.rotation", "180"]);
    assert!(out.status.success(), "{out:?}");
    let written = fs::read_to_string(&p).unwrap();
    assert!(
        written.contains("tenant = \"contoso.onmicrosoft.com\"  # keep me\n"),
        "{written}"
    );
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    let out = run(&["get", "auth.username"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
    let out = run(&["get", "display.rotation"]);
    assert_eq!(text(&out.stdout), "180\n");

    // Unset: exit 1, nothing said.
    let out = run(&["get", "cloud.api"]);
    assert_eq!(
        (out.status.code(), out.stdout.len(), out.stderr.len()),
        (Some(1), 0, 0)
    );
    // A secret: exit 1, nothing on stdout, a word on stderr.
    let out = run(&["get", "auth.password"]);
    assert_eq!((out.status.code(), out.stdout.len()), (Some(1), 0));
    assert!(text(&out.stderr).contains("never printed"), "{out:?}");

    // Refused: exit 2, the key and the fix named, the file untouched.
    let out = run(&["set", "display.rotation", "45"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("display.rotation") && err.contains("fix:"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&p).unwrap(), written);

    let out = run(&["get", "display.rotaton"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Did you mean `display.rotation`?"),
        "{out:?}"
    );
    let out = run(&["set", "display.rotation"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
