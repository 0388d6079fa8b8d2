//! Logs go to journald when systemd started us, to stderr otherwise.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// `verbose`: 0 = warnings (CLI commands print their own results), 1 = info, 2+ = debug.
/// `RUST_LOG` overrides. `quiet`: crates whose logs this command leaves out at every level,
/// because it reports the same failures itself; a `RUST_LOG` that names one still shows it.
pub fn init(verbose: u8, default_level: &str, quiet: &[&str]) {
    let level = match verbose {
        0 => default_level,
        1 => "info",
        _ => "debug",
    };
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,pbikiosk={level}")));
    for target in quiet.iter().filter(|t| !rust_log.contains(**t)) {
        match format!("{target}=off").parse() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(e) => eprintln!("pbikiosk: log filter for {target}: {e}"),
        }
    }
    // systemd sets JOURNAL_STREAM when stderr is connected to the journal; logging natively
    // keeps levels and fields searchable with journalctl.
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
}
