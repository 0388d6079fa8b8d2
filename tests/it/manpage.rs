//! `pbikiosk manpage`, which the package build turns into pbikiosk.1: it documents every
//! visible command and reads without a warning from groff (what `man` runs).

use std::process::Command;

#[test]
fn the_manual_page_lists_every_command_and_groff_reads_it_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .arg("manpage")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains("\n.TH pbikiosk 1 "), "{page}");
    for cmd in [
        "check", "reports", "login", "sim", "run", "demo", "config", "import", "version",
    ] {
        assert!(
            page.contains(&format!(".SS \"pbikiosk {cmd}\"")),
            "{cmd} missing from the manual"
        );
    }
    // Hidden commands stay out of it.
    assert!(!page.contains("pbikiosk manpage") && !page.contains("display\\-rotation"));
    assert!(page.contains("/boot/firmware/pbikiosk.toml"));

    let Ok(mut groff) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        panic!("groff is needed to read the manual page (apt-get install groff-base)");
    };
    use std::io::Write as _;
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let done = groff.wait_with_output().unwrap();
    assert!(done.status.success(), "{done:?}");
    let warnings = String::from_utf8_lossy(&done.stderr);
    assert!(warnings.is_empty(), "groff: {warnings}");
}
