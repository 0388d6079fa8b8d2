//! The `pbikiosk` command line: a thin edge over the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use pbikiosk::config::edit as config_edit;
use pbikiosk::config::{self, SecretSources};
use pbikiosk::{check, logging, reports, sim};

#[derive(Parser)]
#[command(
    name = "pbikiosk",
    version,
    about = "Unattended Power BI signage player"
)]
struct Cli {
    /// Configuration file [default: $PBIKIOSK_CONFIG, then /etc/pbikiosk/pbikiosk.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check config, sign-in and every playlist item; exit 0 all good, 1 problems, 2 bad config.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Seconds for all of check's steps and probes (tests use less than the usual 30).
        #[arg(long, hide = true, value_name = "SECS")]
        budget_secs: Option<u64>,
    },
    /// List the workspaces, reports, pages and dashboards the account can see.
    Reports {
        /// Print ready-to-paste [[playlist]] entries.
        #[arg(long, conflicts_with = "json")]
        toml: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign in with a code (method = "device_code"): prints the code and the address to open
    /// on a phone, waits for the sign-in and keeps it in the token cache the screen uses.
    Login {
        /// Also print the address as a QR code (text).
        #[arg(long)]
        qr: bool,
    },
    /// Run the local simulator of the Microsoft services (for tests and previews).
    Sim {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:9521")]
        listen: SocketAddr,
        /// A scenario file (TOML) or the name of a built-in scenario.
        #[arg(long)]
        scenario: Option<String>,
        /// Also serve the simulator as `https://app.powerbi.com` through a loopback HTTP proxy
        /// (CONNECT), with a certificate made for this run, so that a browser can embed the
        /// simulated reports (the benchmark's Chromium baseline). Prints the proxy address.
        #[arg(long)]
        embed_front: bool,
        /// With --embed-front: write the front's certificate (PEM) here, for the browser to
        /// trust for that host only.
        #[arg(long, value_name = "PATH", requires = "embed_front")]
        cert_out: Option<PathBuf>,
        /// With --embed-front: sign the front's certificate with a CA made for this run (as a
        /// TLS-inspecting proxy does), answer every host `check` probes (embed, cluster, CDN),
        /// and write the CA (PEM) here, for a config's `cloud.ca_file`.
        #[arg(
            long,
            value_name = "PATH",
            requires = "embed_front",
            conflicts_with = "cert_out"
        )]
        ca_out: Option<PathBuf>,
        /// With --embed-front: the proxy's loopback port (default: any free one, printed).
        #[arg(long, value_name = "PORT", requires = "embed_front")]
        front_port: Option<u16>,
    },
    /// Run the player: fullscreen Power BI rotation (what the kiosk service starts).
    Run {
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Run the player on the built-in demo tenant: no config, no Microsoft account needed.
    Demo {
        /// Preview a problem scenario's status screen (mfa, federated, wrong-password, outage...),
        /// or a scenario file (TOML) such as bench/sim-scenario.toml.
        #[arg(long)]
        scenario: Option<String>,
        /// Seconds per report page (1 and up; below 5, which a config file cannot set, is for
        /// soak tests and benchmarks).
        #[arg(long, default_value_t = 8)]
        seconds: u32,
        /// Simulator address; its POST /_sim/control changes the scenario while the demo runs.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        sim_listen: SocketAddr,
        /// Access token lifetime in seconds (watch refreshes happen; e.g. 60).
        #[arg(long, value_name = "SECS")]
        token_lifetime: Option<u64>,
        /// How the web view trusts the simulator's https front door: direct, ca-file (a run CA
        /// given as cloud.ca_file, as behind a TLS-inspecting proxy) or untrusted. For tests.
        #[arg(long, value_enum, default_value_t, hide = true)]
        front_trust: pbikiosk::demo::FrontTrust,
        /// Memory policy for tests and soaks: recycle margin in MiB (0 = off).
        #[arg(long, value_name = "MIB", hide = true)]
        memory_margin_mib: Option<u64>,
        /// Memory policy: baseline window in seconds after the first render.
        #[arg(long, value_name = "SECS", hide = true)]
        memory_baseline_seconds: Option<u64>,
        /// Memory policy: least time between two recycles, in seconds.
        #[arg(long, value_name = "SECS", hide = true)]
        memory_min_interval_seconds: Option<u64>,
        /// Memory policy: seconds between two samples of the process tree's PSS.
        #[arg(long, value_name = "SECS", hide = true)]
        memory_sample_seconds: Option<u64>,
        /// Day-parting for tests and previews: N=WINDOW gives playlist entry N (from 1) a
        /// `when` (";" between windows), e.g. --when "2=mon-fri 11:30-14:00".
        #[arg(long, value_name = "N=WINDOW", hide = true)]
        when: Vec<String>,
        /// `[display] on` hours for tests and previews (";" between windows).
        #[arg(long, value_name = "WINDOW", hide = true)]
        screen_on: Option<String>,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Read or change single keys of the configuration file (comments and layout are kept).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Save what the screen shows now as a PNG (from the running player's status endpoint,
    /// over loopback; for an admin on SSH).
    Screenshot {
        /// Where to write the PNG.
        file: PathBuf,
        /// The player's status endpoint [default: [status] listen, 127.0.0.1:9520]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Turn the screen on or off now, or back to its `[display] on` hours (auto); it stays
    /// so across restarts until set to auto.
    Display {
        #[arg(value_enum)]
        mode: pbikiosk::display_power::Override,
    },
    /// Import pbikiosk.toml from the boot partition: validated like the config, secrets into
    /// their own files in /var/lib/pbikiosk-secrets (0640 root:pbikiosk), then removed from the boot partition.
    /// Exit 0 imported or nothing to import, 2 invalid (kept, and shown on the screen), 1 not
    /// written.
    Import {
        /// The boot partition's folder [default: /boot/firmware, then /boot].
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Where the secret files go (outside /etc, which the report's web sandbox shows).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/pbikiosk-secrets")]
        secrets_dir: PathBuf,
        /// Where a refusal is recorded for the screen and `check` (the service's state folder).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/pbikiosk")]
        state_dir: PathBuf,
        /// For tests that cannot run as root: leave the owner and group of the written files
        /// as they are (the import otherwise makes them root:pbikiosk).
        #[arg(long, hide = true)]
        no_chown: bool,
    },
    /// After a screen change (udev runs it through pbikiosk-hotplug.service): look at the
    /// screen connectors and restart pbikiosk.service only if the session cannot be showing a
    /// connected screen (it started without one, or nothing drives a new one); at most once
    /// every two minutes. Exit 0 whatever it decided, 1 if it could not look or ask.
    Hotplug {
        /// The DRM connectors' folder.
        #[arg(long, value_name = "DIR", default_value = "/sys/class/drm")]
        sys: PathBuf,
        /// The previous look and the last restart (kept for the boot).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/run/pbikiosk-hotplug/state.json"
        )]
        state: PathBuf,
        /// Seconds to let the compositor take a new screen before looking.
        #[arg(long, value_name = "SECS", default_value_t = 3)]
        settle: u64,
        /// The kiosk unit to restart.
        #[arg(long, default_value = "pbikiosk.service", hide = true)]
        unit: String,
        /// Seconds between two restarts at the least (tests use less than the usual 120).
        #[arg(long, value_name = "SECS", default_value_t = 120, hide = true)]
        min_interval: u64,
        /// Seconds a session may take to drive its screen after it started (tests use 0).
        #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
        startup_grace: u64,
        /// The systemctl to ask (tests use a stub).
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/bin/systemctl",
            hide = true
        )]
        systemctl: PathBuf,
    },
    /// Print `[display] rotation` (degrees) if the config sets it; for the kiosk session script.
    #[command(hide = true)]
    DisplayRotation,
    /// Write the manual page (roff) generated from this command line to standard output; the
    /// package build calls it.
    #[command(hide = true)]
    Manpage,
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a key's value (text without quotes); exit 1 when it is not set. Secrets
    /// (auth.password, auth.client_secret) are never printed.
    Get {
        /// Dotted key: auth.username, status.listen, display.rotation, playlist[1].report, ...
        key: String,
    },
    /// Set keys, checking the whole edited file with the player's rules before writing it.
    ///
    /// Several KEY VALUE pairs are applied and checked together (a first [auth] needs tenant,
    /// client_id and username at once; a new playlist entry, playlist[N].workspace and .report).
    /// Exit 2, with the file untouched, when the result would be refused. The file is replaced
    /// atomically and keeps its mode, owner and group; a new file gets mode 0640 and the group
    /// of its folder. A secret is stored inline only when its *_file key is not set; give its
    /// VALUE as - to read it from standard input rather than the command line.
    Set {
        /// Only check: write nothing.
        #[arg(long)]
        check: bool,
        /// KEY VALUE [KEY VALUE ...]
        #[arg(required = true, num_args = 2.., value_names = ["KEY", "VALUE"], allow_hyphen_values = true)]
        pairs: Vec<String>,
    },
}

#[derive(clap::Args)]
struct WindowArgs {
    /// Status endpoint address (loopback only) [default: [status] listen, 127.0.0.1:9520]
    #[arg(long, value_name = "ADDR")]
    status_listen: Option<SocketAddr>,
    /// Also write the metrics to this node_exporter textfile (overrides `[status] textfile`;
    /// for the demo, which has no config file, and tests).
    #[arg(long, value_name = "PATH", hide = true)]
    status_textfile: Option<PathBuf>,
    /// A fixed window size (e.g. 1280x720) instead of fullscreen, for tests and previews.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    window: Option<(u32, u32)>,
    /// Folder of the player page [default: installed copy, then the source tree's web/]
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}': expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{s}': not a size"))
    };
    Ok((n(w)?, n(h)?))
}

fn main() -> ExitCode {
    let process_start = std::time::Instant::now();
    // First, while the process has one thread: the secrets leave the environment (children,
    // WebKit's included, never see them), and the process cannot be dumped. The sources read
    // here serve every later read of the config, the service's re-reads included.
    // SAFETY: no other thread exists yet.
    #[cfg(target_os = "linux")]
    let sources = unsafe { pbikiosk::process_guard::take_secret_sources() };
    #[cfg(not(target_os = "linux"))]
    let sources = SecretSources::from_process();
    #[cfg(target_os = "linux")]
    if let Err(e) = pbikiosk::process_guard::forbid_core_dumps() {
        eprintln!("pbikiosk: {e}");
        return ExitCode::from(70);
    }
    let cli = Cli::parse();
    // The player logs its own life (info); CLI commands print their results and log warnings.
    let level = match cli.command {
        Command::Run { .. } | Command::Demo { .. } => "info",
        _ => "warn",
    };
    // `check` says in its own line when a certificate is not trusted; the platform verifier's
    // error log of the same failure would only clutter its output.
    let quiet: &[&str] = match cli.command {
        Command::Check { .. } => &["rustls_platform_verifier"],
        _ => &[],
    };
    logging::init(cli.verbose, level, quiet);
    // The GUI needs the main thread: it builds its own runtime beside the window.
    if matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        return match run_player(cli, sources, process_start) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pbikiosk: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Root, from udev: it reads neither the config nor the state folder, and needs no runtime.
    if let Command::Hotplug {
        sys,
        state,
        settle,
        unit,
        min_interval,
        startup_grace,
        systemctl,
    } = cli.command
    {
        let opts = pbikiosk::hotplug::HotplugOptions {
            sys,
            state_file: state,
            systemctl,
            unit,
            settle: std::time::Duration::from_secs(settle),
            min_interval: std::time::Duration::from_secs(min_interval),
            startup_grace: std::time::Duration::from_secs(startup_grace),
        };
        return match pbikiosk::hotplug::run(&opts) {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbikiosk hotplug: {e}\nfix: {}", e.fix());
                ExitCode::from(1)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pbikiosk: cannot start: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(dispatch(cli, sources)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pbikiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The manual page: clap's definition of the command line (name, synopsis, description and
/// global options from clap_mangen; each visible command with its options here, in one page),
/// plus the files and exit codes a person looks for.
fn manpage(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone()).date("");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(out, ".SS \"pbikiosk {}\"", roff(sub.get_name()))?;
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        writeln!(out, "{}", roff(&about))?;
        for arg in sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
        {
            let mut head = String::new();
            if let Some(long) = arg.get_long() {
                head = format!("\\fB\\-\\-{}\\fR", roff(long));
            }
            if arg.get_action().takes_values() {
                let names = arg
                    .get_value_names()
                    .map(|n| {
                        n.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
                head = if head.is_empty() {
                    format!("\\fI{}\\fR", roff(&names))
                } else {
                    format!("{head} \\fI{}\\fR", roff(&names))
                };
            }
            writeln!(out, ".TP\n{head}")?;
            let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                help += &format!(" [default: {}]", defaults.join(", "));
            }
            writeln!(out, "{}", roff(&help))?;
        }
    }
    out.write_all(MAN_EXTRA.as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a control character.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The manual's sections that are not in the command line's definition.
const MAN_EXTRA: &str = r#".SH FILES
.TP
.I /etc/pbikiosk/pbikiosk.toml
The configuration (root:pbikiosk, 0640); an annotated example is
.IR /usr/share/doc/pbikiosk/pbikiosk.toml.example .
.TP
.IR /etc/pbikiosk/client\-secret ", " /etc/pbikiosk/password
The secrets, one line each (root:pbikiosk, 0640).
.TP
.IR /boot/firmware/pbikiosk.toml " (or " /boot/pbikiosk.toml )
Settings put on the boot partition: imported at boot by
.B pbikiosk\-import.service
(secrets into their own files), then removed from the boot partition.
.TP
.I /var/lib/pbikiosk
The service's state: the device-code token cache, and why a boot-partition file was not imported.
.SH EXIT STATUS
.B check
exits 0 when everything works, 1 on a problem (printed with its stable id, cause and fix), 2 on a
configuration error.
.B import
exits 0 when it imported or found nothing to import, 2 when the file is invalid, 1 when it could
not write.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1);
.I /usr/share/doc/pbikiosk/install\-raspberry\-pi.md
"#;

async fn dispatch(cli: Cli, sources: SecretSources) -> anyhow::Result<ExitCode> {
    let installer = config::resolve_path(cli.config.as_deref(), &sources);
    // What the player reads: the installer's file, or the phone setup's while that one is not
    // configured. `config get|set` edits the installer's file only.
    let path = config::path_in_use(&installer, &sources);
    match cli.command {
        Command::DisplayRotation => match config::load(&path, &sources) {
            Ok(cfg) => {
                if let Some(r) = cfg.display.rotation {
                    println!("{r}");
                }
                Ok(ExitCode::SUCCESS)
            }
            // A broken config is the player's to report on screen; the session starts unrotated.
            Err(_) => Ok(ExitCode::from(2)),
        },
        Command::Screenshot { file, listen } => {
            match pbikiosk::screenshot::save(&path, &sources, listen, &file).await {
                Ok((w, h)) => {
                    println!("{} ({w}x{h})", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("pbikiosk: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Display { mode } => match pbikiosk::display_power::set_override(mode) {
            Ok(path) => {
                println!(
                    "display {mode:?} (kept in {}); the screen follows within 5 seconds",
                    path.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}\nfix: {}", e.fix());
                Ok(ExitCode::from(1))
            }
        },
        Command::Version => {
            println!("pbikiosk {}", pbikiosk::VERSION);
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            manpage(&mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            from,
            secrets_dir,
            state_dir,
            no_chown,
        } => {
            use pbikiosk::boot_import::{self, ImportOptions, Ownership};
            let opts = ImportOptions {
                from,
                config: installer.clone(),
                secrets_dir,
                state_dir,
                ownership: if no_chown {
                    Ownership::Unchanged
                } else {
                    Ownership::RootPbikiosk
                },
            };
            match boot_import::import(&opts, &sources) {
                Ok(outcome) => {
                    println!("{}", outcome.describe());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("pbikiosk import: {e}\nfix: {}", e.fix());
                    Ok(ExitCode::from(e.exit_code()))
                }
            }
        }
        Command::Config { action } => Ok(config_command(action, &installer, &sources)),
        Command::Login { qr } => {
            let cfg = match config::load(&path, &sources) {
                Ok(cfg) => cfg,
                Err(e) => {
                    print!("{}", check::CheckReport::config_error(&e).render());
                    return Ok(ExitCode::from(2));
                }
            };
            match pbikiosk::login::login(&cfg, qr, &mut std::io::stdout()).await {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("pbikiosk: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Check { json, budget_secs } => {
            let (report, code) = match config::load(&path, &sources) {
                Ok(cfg) => {
                    let r = match budget_secs {
                        Some(s) => check::run_within(&cfg, std::time::Duration::from_secs(s)).await,
                        None => check::run(&cfg).await,
                    };
                    let code = if r.ok { 0 } else { 1 };
                    (r, code)
                }
                Err(e) => (check::CheckReport::config_error(&e), 2),
            };
            let (report, refused) = report.with_boot_import(&sources);
            let code = if refused { 2 } else { code };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(ExitCode::from(code))
        }
        Command::Reports { toml, json } => {
            let cfg = match config::load(&path, &sources) {
                Ok(c) => c,
                Err(e) => {
                    print!("{}", check::CheckReport::config_error(&e).render());
                    return Ok(ExitCode::from(2));
                }
            };
            match reports::collect(&cfg).await {
                Ok(cat) if json => println!("{}", serde_json::to_string_pretty(&cat)?),
                Ok(cat) if toml => print!("{}", cat.to_toml()),
                Ok(cat) => print!("{}", cat.render()),
                Err(e) => {
                    print!(
                        "{}",
                        check::CheckReport::from_failure(e.passed, &e.failure).render()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { .. } | Command::Demo { .. } | Command::Hotplug { .. } => {
            unreachable!("handled in main")
        }
        Command::Sim {
            listen,
            scenario,
            embed_front,
            cert_out,
            ca_out,
            front_port,
        } => {
            anyhow::ensure!(
                listen.ip().is_loopback(),
                "--listen {listen}: the simulator only listens on loopback (127.0.0.1 or ::1)"
            );
            let scenario = sim::Scenario::from_arg(scenario.as_deref())?;
            let handle = sim::Simulator::start(scenario, listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let user = handle
                .demo_username()
                .unwrap_or_else(|| format!("kiosk@{}", sim::scenario::builtin_ids::TENANT_DOMAIN));
            println!("# pbikiosk simulator on {}", handle.base_url());
            println!(
                "# Config for {user}: save it as a file, `chmod 600` it (it holds test secrets), pass it with --config.\n"
            );
            println!("{}", handle.config_snippet(&user));
            if let Some((name, pem)) = handle.demo_client_certificate() {
                // A test credential registered only in this simulator, like the secrets above.
                println!(
                    "# The app's certificate and key (valid against this simulator only): save the\n# lines below as {name} next to the config and `chmod 600` it.\n"
                );
                print!("{pem}");
            }
            // Kept alive until ctrl-c: the front serves while this value lives.
            let _front = if embed_front {
                // Its faults follow the scenario and `/_sim/control`, as in the demo.
                let faults = {
                    let handle = handle.clone();
                    std::sync::Arc::new(move || handle.embed_fault())
                };
                // With --ca-out the door stands for every host `check` probes, each failing as
                // the scenario says for the embed host (the one host a fault names).
                let (hosts, cert): (&[&str], _) = if ca_out.is_some() {
                    (&sim::front::SCREEN_HOSTS, sim::front::FrontCert::RunCa)
                } else {
                    (
                        &[pbikiosk::demo::DEMO_EMBED_HOST],
                        sim::front::FrontCert::SelfSigned,
                    )
                };
                let front = sim::front::EmbedFront::start_for_hosts_on(
                    handle.router(),
                    hosts,
                    cert,
                    std::sync::Arc::new(move |_: &str| faults()),
                    front_port.unwrap_or(0),
                )
                .await
                .context("starting the https front door")?;
                if let Some(path) = &cert_out {
                    std::fs::write(path, &front.cert_pem)
                        .with_context(|| format!("--cert-out {}", path.display()))?;
                }
                if let (Some(path), Some(ca)) = (&ca_out, &front.ca_pem) {
                    std::fs::write(path, ca)
                        .with_context(|| format!("--ca-out {}", path.display()))?;
                }
                println!(
                    "# embed front: https://{} through the HTTP proxy http://{}{}",
                    hosts.join(", https://"),
                    front.proxy,
                    match (&cert_out, &ca_out) {
                        (Some(p), _) => format!(" (certificate: {})", p.display()),
                        (_, Some(p)) => format!(" (CA: {})", p.display()),
                        _ => String::new(),
                    }
                );
                Some(front)
            } else {
                None
            };
            use std::io::Write as _;
            std::io::stdout().flush()?;
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_player(
    cli: Cli,
    sources: SecretSources,
    process_start: std::time::Instant,
) -> anyhow::Result<()> {
    let config_path = config::resolve_path(cli.config.as_deref(), &sources);
    let (demo, w) = match cli.command {
        Command::Run { window } => (None, window),
        Command::Demo {
            scenario,
            seconds,
            sim_listen,
            token_lifetime,
            front_trust,
            memory_margin_mib,
            memory_baseline_seconds,
            memory_min_interval_seconds,
            memory_sample_seconds,
            when,
            screen_on,
            window,
        } => (
            Some(pbikiosk::demo::DemoOptions {
                scenario,
                seconds: seconds.max(1),
                sim_listen,
                token_lifetime,
                front_trust,
                memory: pbikiosk::demo::DemoMemory {
                    margin_mib: memory_margin_mib,
                    baseline_seconds: memory_baseline_seconds,
                    min_interval_seconds: memory_min_interval_seconds,
                    sample_seconds: memory_sample_seconds,
                },
                when,
                screen_on,
            }),
            window,
        ),
        _ => unreachable!("only run and demo open a window"),
    };
    pbikiosk::run::run(pbikiosk::run::RunOptions {
        config_path,
        sources,
        status_listen: w.status_listen,
        status_textfile: w.status_textfile,
        demo,
        window: w.window,
        web_dir: w.web_dir,
        process_start,
        state_dir: pbikiosk::run::RunOptions::default_state_dir(),
    })
}

fn config_command(
    action: ConfigAction,
    path: &std::path::Path,
    sources: &SecretSources,
) -> ExitCode {
    let result = match action {
        ConfigAction::Get { key } => config_edit::get(path, &key).map(|got| match got {
            config_edit::Got::Value(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            config_edit::Got::Unset => ExitCode::FAILURE,
            config_edit::Got::Secret => {
                eprintln!("pbikiosk: {key}: secrets are never printed");
                ExitCode::FAILURE
            }
        }),
        ConfigAction::Set { check, pairs } => set_pairs(&pairs).and_then(|pairs| {
            config_edit::set(path, &pairs, sources, check).map(|_| ExitCode::SUCCESS)
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("pbikiosk: {e}\n  fix: {}", e.fix());
        ExitCode::from(e.exit_code())
    })
}

/// KEY VALUE pairs from the command line; a secret given as `-` is read from standard input.
fn set_pairs(args: &[String]) -> Result<Vec<(String, String)>, config_edit::EditError> {
    if !args.len().is_multiple_of(2) {
        return Err(config_edit::EditError::Refused {
            key: args[args.len() - 1].clone(),
            message: "has no value".to_owned(),
            fix: "Give each key its value: pbikiosk config set KEY VALUE [KEY VALUE ...]"
                .to_owned(),
        });
    }
    args.chunks(2)
        .map(|kv| {
            let (key, value) = (&kv[0], &kv[1]);
            if value == "-" && config_edit::Key::parse(key)?.is_secret() {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|source| {
                    config_edit::EditError::Io {
                        path: "standard input".into(),
                        action: "cannot read the secret",
                        source,
                    }
                })?;
                let line = line.strip_suffix('\n').unwrap_or(&line);
                let line = line.strip_suffix('\r').unwrap_or(line);
                return Ok((key.clone(), line.to_owned()));
            }
            Ok((key.clone(), value.clone()))
        })
        .collect()
}
