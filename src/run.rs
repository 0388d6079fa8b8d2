//! `pbikiosk run` and `pbikiosk demo`: the core task that drives the player, beside the window.
//!
//! Threads: the GUI loop owns the main thread (GTK requires it); the core runs on a small tokio
//! runtime and talks to the window only through the shell's command proxy and event channel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tao::event_loop::EventLoopProxy;
use tokio::sync::{mpsc, watch};

use crate::auth::SignInSettings;
use crate::auth::client::AadClient;
use crate::auth::service::TokenService;
use crate::auth::session::TokenSession;
use crate::bridge::{FromPage, Screen, ToPage};
use crate::config::{self, Config, ConfigError, PlaylistItem, SecretSources};
use crate::health;
use crate::player::{Input, Output, Player, Settings};
use crate::playlist::Item;
use crate::powerbi::{self, PowerBiClient};
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::shell::{self, ShellCommand, ShellEvent, ShellOptions};
use crate::sim::front::EmbedFront;
use crate::sim::{Scenario, SimHandle, Simulator};

/// When the process started, for the start-to-first-report figure.
pub static PROCESS_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The host the demo's front door impersonates; the simulator's embed URLs point at it.
pub const DEMO_EMBED_HOST: &str = "app.powerbi.com";

pub struct RunOptions {
    pub config_path: PathBuf,
    pub sources: SecretSources,
    /// Overrides `[status] listen`.
    pub status_listen: Option<SocketAddr>,
    /// Run on the built-in simulator instead of the config.
    pub demo: Option<DemoOptions>,
    /// Fixed window size instead of fullscreen (tests without a window manager).
    pub window: Option<(u32, u32)>,
    pub web_dir: Option<PathBuf>,
}

pub struct DemoOptions {
    /// A built-in problem scenario (mfa, federated, outage...); `None` = everything works.
    pub scenario: Option<String>,
    /// Seconds per report page.
    pub seconds: u32,
    /// Where the simulator listens (its `/_sim/control` lets tests and previews change the
    /// scenario while the player runs).
    pub sim_listen: SocketAddr,
    /// Access token lifetime, to watch refreshes happen.
    pub token_lifetime: Option<u64>,
}

/// Where the config comes from: a file (re-read when it changes) or the demo's own.
enum Source {
    File(PathBuf, SecretSources),
    Demo(Box<Config>),
}

impl Source {
    fn load(&self) -> Result<Config, ConfigError> {
        match self {
            Source::File(p, s) => config::load(p, s),
            Source::Demo(c) => Ok((**c).clone()),
        }
    }

    /// A cheap fingerprint to notice an edited (or newly created) config file.
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        match self {
            Source::File(p, _) => std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
            Source::Demo(_) => None,
        }
    }
}

/// Find the page's files: explicit, `$PBIKIOSK_WEB_DIR`, the installed copy, the source tree.
pub fn find_web_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("PBIKIOSK_WEB_DIR").map(PathBuf::from))
        .chain([
            PathBuf::from("/usr/share/pbikiosk/web"),
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web")),
        ])
        .collect();
    let dir = candidates
        .iter()
        .find(|d| d.join("index.html").is_file())
        .with_context(|| format!("the player page (index.html) is not in any of {candidates:?}"))?;
    anyhow::ensure!(
        dir.join("vendor/powerbi.min.js").is_file(),
        "{}/vendor/powerbi.min.js is missing: build the page once with `scripts/build-web.sh` (npm ci + web/build.mjs)",
        dir.display()
    );
    Ok(dir.clone())
}

/// Open the window and run until the process exits.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    PROCESS_START.get_or_init(Instant::now);
    let web_dir = find_web_dir(opts.web_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("pbikiosk-core")
        .build()?;

    let (source, demo) = match &opts.demo {
        Some(d) => {
            let demo = runtime.block_on(Demo::start(d))?;
            (Source::Demo(Box::new(demo.config.clone())), Some(demo))
        }
        None => (Source::File(opts.config_path.clone(), opts.sources), None),
    };
    // Start-up settings from one read of the config (a bad or missing one gives the defaults;
    // the player reports it on screen). The player reads it again when it changes.
    let startup = source.load().ok();
    let status_listen = opts.status_listen.unwrap_or_else(|| {
        startup
            .as_ref()
            .map(|c| c.status.listen)
            .unwrap_or_else(|| config::StatusConfig::default().listen)
    });
    let user_agent = startup
        .as_ref()
        .and_then(|c| c.player.user_agent.clone())
        .unwrap_or_else(|| shell::DEFAULT_USER_AGENT.to_owned());

    let mut extra_hosts: Vec<String> = Vec::new();
    if let Some(h) = startup.as_ref().and_then(|c| c.cloud.api.host_str()) {
        // National clouds' API hosts (their embed hosts are covered by powerbi_hosts).
        extra_hosts.push(h.to_owned());
    }
    let extra: Vec<&str> = extra_hosts.iter().map(String::as_str).collect();
    let gpu_mode = startup.as_ref().map(|c| c.display.gpu).unwrap_or_default();
    let render_node = shell::has_gpu_render_node();
    let gpu = gpu_mode.use_gpu(render_node);
    tracing::info!(
        setting = ?gpu_mode,
        render_node,
        "GPU compositing {}",
        if gpu { "on" } else { "off" }
    );
    let shell_opts = ShellOptions {
        web_dir,
        user_agent,
        allowed_hosts: shell::powerbi_hosts(&extra),
        proxy: demo.as_ref().map(|d| d.front.proxy),
        trust: demo
            .as_ref()
            .map(|d| (d.front.host.clone(), d.front.cert_pem.clone())),
        devtools: cfg!(debug_assertions) && std::env::var_os("PBIKIOSK_DEVTOOLS").is_some(),
        console_to_stdout: cfg!(debug_assertions)
            || std::env::var_os("PBIKIOSK_PAGE_CONSOLE").is_some(),
        size: opts.window,
        gpu,
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (proxy_tx, proxy_rx) = tokio::sync::oneshot::channel::<EventLoopProxy<ShellCommand>>();
    runtime.spawn(async move {
        let Ok(proxy) = proxy_rx.await else { return };
        // Keep the simulator alive as long as the core.
        let _demo = demo;
        core(source, status_listen, events_rx, proxy).await;
    });
    shell::run(shell_opts, events_tx, move |proxy| {
        let _ = proxy_tx.send(proxy);
    })?;
    drop(runtime);
    Ok(())
}

/// The built-in demo: the simulator, its HTTPS front door, and a config that points at them.
pub struct Demo {
    pub sim: SimHandle,
    pub front: EmbedFront,
    pub config: Config,
}

impl Demo {
    pub async fn start(opts: &DemoOptions) -> anyhow::Result<Self> {
        let seconds = opts.seconds;
        let mut s = match opts.scenario.as_deref() {
            None => Scenario::builtin(),
            Some(name) => match Scenario::named(name) {
                Some(s) => s,
                // A scenario file, like `pbikiosk sim --scenario` takes (the benchmark's).
                None if Path::new(name).is_file() => {
                    let text = std::fs::read_to_string(name)
                        .with_context(|| format!("--scenario {name}"))?;
                    Scenario::from_toml(&text).with_context(|| format!("--scenario {name}"))?
                }
                None => anyhow::bail!(
                    "no demo scenario '{name}'; choose one of: {} (or give a scenario file)",
                    crate::sim::scenario::NAMES.join(", ")
                ),
            },
        };
        if let Some(t) = opts.token_lifetime {
            s.token_lifetime_seconds = t;
        }
        anyhow::ensure!(
            opts.sim_listen.ip().is_loopback(),
            "--sim-listen {}: the simulator only listens on loopback",
            opts.sim_listen
        );
        let sim = Simulator::start(s, opts.sim_listen)
            .await
            .context("starting the simulator")?;
        tracing::info!(url = %sim.base_url(), "demo simulator (POST /_sim/control to change the scenario)");
        let front = EmbedFront::start(sim.router(), DEMO_EMBED_HOST)
            .await
            .context("starting the demo's https front door")?;
        let user = sim.demo_username().unwrap_or_else(|| {
            format!("kiosk@{}", crate::sim::scenario::builtin_ids::TENANT_DOMAIN)
        });
        // A preview retries a refused sign-in every minute (not 15) so a scenario changed
        // through /_sim/control shows its effect soon.
        // A config file takes 5 s and up; the demo allows shorter pages for soak tests and
        // benchmarks, set after parsing.
        let text = sim
            .config_snippet(&user)
            .replace(
                "\nreport = ",
                &format!("\nseconds = {}\nreport = ", seconds.max(5)),
            )
            .replacen("[auth]\n", "[auth]\npermanent_retry_minutes = 1\n", 1);
        // The demo's config lives in memory: its test secrets never touch the disk.
        let mut config = config::parse(&text, Path::new("(demo)"), &SecretSources::default())
            .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
        for item in &mut config.playlist {
            item.seconds = seconds.max(1);
        }
        Ok(Self { sim, front, config })
    }
}

enum SessionEnd {
    ConfigChanged,
    Exit(i32),
}

async fn core(
    source: Source,
    status_listen: SocketAddr,
    mut events: mpsc::UnboundedReceiver<ShellEvent>,
    proxy: EventLoopProxy<ShellCommand>,
) {
    let (snap_tx, snap_rx) = watch::channel(Player::new(Settings::default()).snapshot());
    match health::serve(status_listen, snap_rx).await {
        Ok(addr) => tracing::info!(%addr, "status endpoint listening"),
        Err(e) => tracing::error!(error = %e, %status_listen, "status endpoint not available"),
    }
    health::notify::ready();
    let mut first = true;
    loop {
        if !first {
            // A fresh page for a fresh configuration.
            let _ = proxy.send_event(ShellCommand::Reload);
        }
        first = false;
        match session(&source, &mut events, &proxy, &snap_tx).await {
            SessionEnd::ConfigChanged => {
                tracing::info!("configuration changed; starting over");
            }
            SessionEnd::Exit(code) => {
                tracing::error!(code, "the player cannot recover; exiting for a restart");
                let _ = proxy.send_event(ShellCommand::Exit(code));
                return;
            }
        }
    }
}

/// Everything a running configuration needs.
struct Live {
    config: Config,
    tokens: TokenService,
    api: PowerBiClient,
}

fn start_live(cfg: Config) -> Result<Live, Problem> {
    let http = crate::net::build_client(cfg.cloud.ca_file.as_deref())?;
    let client = AadClient::new(http.clone(), SignInSettings::from_config(&cfg));
    let session = TokenSession::new(client, cfg.auth.allow_federated, cfg.auth.permanent_retry);
    Ok(Live {
        tokens: TokenService::spawn(session),
        api: PowerBiClient::new(http, cfg.cloud.api.clone())
            .with_retry_budget(Duration::from_secs(60)),
        config: cfg,
    })
}

async fn session(
    source: &Source,
    events: &mut mpsc::UnboundedReceiver<ShellEvent>,
    proxy: &EventLoopProxy<ShellCommand>,
    snapshot: &watch::Sender<crate::player::Snapshot>,
) -> SessionEnd {
    let mut player = Player::new(Settings {
        permanent_retry: source
            .load()
            .map(|c| c.auth.permanent_retry)
            .unwrap_or(Duration::from_secs(900)),
        ..Settings::default()
    });
    let stamp = source.stamp();
    let config_path = match source {
        Source::File(p, _) => p.display().to_string(),
        Source::Demo(_) => "built-in demo".to_owned(),
    };
    let live = match source.load() {
        Ok(cfg) => match start_live(cfg) {
            Ok(l) => Some(l),
            Err(problem) => {
                player.handle(
                    Instant::now(),
                    Input::Config {
                        problem,
                        not_configured: false,
                    },
                );
                None
            }
        },
        Err(e) => {
            let not_configured = matches!(
                e,
                ConfigError::NotFound { .. } | ConfigError::NotConfigured { .. }
            );
            tracing::warn!(error = %e, "configuration not usable");
            player.handle(
                Instant::now(),
                Input::Config {
                    problem: e.to_problem(),
                    not_configured,
                },
            );
            None
        }
    };
    let mut token_rx = live.as_ref().map(|l| l.tokens.subscribe());
    let (resolved_tx, mut resolved_rx) = mpsc::channel(2);
    let mut config_poll = tokio::time::interval(Duration::from_secs(5));
    let ctx = ScreenContext {
        config_path,
        not_configured: player.snapshot().state == crate::player::State::NotConfigured,
    };

    loop {
        let now = Instant::now();
        let wake = player
            .next_deadline()
            .unwrap_or(now + Duration::from_secs(5))
            .min(now + Duration::from_secs(5));
        let input = tokio::select! {
            ev = events.recv() => match ev {
                Some(ShellEvent::Page(msg)) => {
                    if matches!(msg, FromPage::Heartbeat { .. }) {
                        // Fed only while the page is alive: a hung page gets us restarted.
                        health::notify::watchdog();
                    }
                    if let FromPage::JsError { message } = &msg {
                        tracing::warn!(message, "page error");
                    }
                    Input::Page(msg)
                }
                Some(ShellEvent::WebProcessCrashed) => Input::WebProcessCrashed,
                None => return SessionEnd::Exit(0),
            },
            changed = async {
                match token_rx.as_mut() {
                    Some(rx) => rx.changed().await.map(|_| rx.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            } => match changed {
                Ok(state) => Input::Token(state),
                Err(_) => Input::Tick,
            },
            Some(res) = resolved_rx.recv() => Input::Resolved(res),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => Input::Tick,
            _ = config_poll.tick() => {
                if source.stamp() != stamp {
                    return SessionEnd::ConfigChanged;
                }
                Input::Tick
            }
        };
        let outputs = player.handle(Instant::now(), input);
        for out in outputs {
            match out {
                Output::Page(cmd) => send(proxy, &cmd),
                Output::ShowProblem {
                    problem,
                    next_attempt,
                } => send(
                    proxy,
                    &ToPage::Status {
                        screen: screen(&problem, next_attempt, &ctx),
                    },
                ),
                Output::HideProblem => send(proxy, &ToPage::HideStatus),
                Output::Offline(since) => send(
                    proxy,
                    &ToPage::Badge {
                        text: since.map(|t| format!("Offline since {}", wall_clock(t))),
                    },
                ),
                Output::TokenExpired => {
                    if let Some(l) = &live {
                        l.tokens.report_expired();
                    }
                }
                Output::Resolve { token } => {
                    if let Some(l) = &live {
                        let api = l.api.clone();
                        let items = l.config.playlist.clone();
                        let tx = resolved_tx.clone();
                        tokio::spawn(async move {
                            let res = resolve(&api, &token, &items).await;
                            let _ = tx.send(res).await;
                        });
                    }
                }
                Output::ReloadPage => {
                    let _ = proxy.send_event(ShellCommand::Reload);
                }
                Output::Exit(code) => return SessionEnd::Exit(code),
            }
        }
        let snap = player.snapshot();
        if snap.rendered_total > 0 && snap.item.is_some() {
            health::mark_first_render(PROCESS_START.get_or_init(Instant::now).elapsed());
        }
        health::notify::status(&format!("{:?}", snap.state));
        snapshot.send_replace(snap);
    }
}

fn send(proxy: &EventLoopProxy<ShellCommand>, msg: &ToPage) {
    tracing::debug!(?msg, "to page");
    let _ = proxy.send_event(ShellCommand::Script(msg.to_script()));
}

/// Resolve every playlist item. Failures that concern the whole account or the network stop
/// the lot (retried soon); a missing report only drops its own item.
pub async fn resolve(
    api: &PowerBiClient,
    token: &crate::Secret,
    items: &[PlaylistItem],
) -> Result<Vec<Result<Item, Problem>>, Problem> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let content = match &it.content {
            config::Content::Report(id) => powerbi::Content::Report(id),
            config::Content::Dashboard(id) => powerbi::Content::Dashboard(id),
        };
        match api.resolve(token, &it.workspace, &content, &it.pages).await {
            Ok(resolved) => out.push(Ok(Item {
                resolved,
                seconds: it.seconds,
                bookmarks: it.bookmarks.clone(),
                refresh_seconds: it.refresh_seconds,
            })),
            Err(p)
                if p.retry_class() == RetryClass::Transient
                    || p.id == ProblemId::NoPowerbiAccess =>
            {
                return Err(p);
            }
            Err(p) => out.push(Err(p)),
        }
    }
    Ok(out)
}

struct ScreenContext {
    config_path: String,
    not_configured: bool,
}

/// The status screen for a problem: title, cause, fix and the facts an installer needs.
fn screen(problem: &Problem, next_attempt: Option<Instant>, ctx: &ScreenContext) -> Screen {
    let mut facts = health::device_facts();
    if ctx.not_configured {
        facts.push(("Configuration".into(), ctx.config_path.clone()));
        return Screen {
            problem: "not_configured".into(),
            title: "This screen is not configured yet".into(),
            cause: problem.cause.clone(),
            fix: format!(
                "Fill in {}: the five sign-in values and a [[playlist]] (`pbikiosk reports --toml` lists them), then run `pbikiosk check`. The screen starts by itself.",
                ctx.config_path
            ),
            facts,
            next_attempt: None,
        };
    }
    facts.push(("Problem".into(), problem.id.as_str().into()));
    if !problem.aadsts().is_empty() {
        let codes: Vec<String> = problem
            .aadsts()
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect();
        facts.push(("Microsoft code".into(), codes.join(", ")));
    }
    if let Some(t) = problem.trace_id() {
        facts.push(("Trace ID".into(), t.into()));
    }
    if let Some(c) = problem.correlation_id() {
        facts.push(("Correlation ID".into(), c.into()));
    }
    facts.push(("Configuration".into(), ctx.config_path.clone()));
    Screen {
        problem: problem.id.as_str().into(),
        title: problem.id.title().into(),
        cause: problem.cause.clone(),
        fix: problem.fix.clone(),
        facts,
        next_attempt: next_attempt.map(|t| {
            let mins = t
                .saturating_duration_since(Instant::now())
                .as_secs()
                .div_ceil(60);
            format!("{} (in {mins} min)", wall_clock(t))
        }),
    }
}

/// The local wall-clock time (HH:MM) of a monotonic instant.
fn wall_clock(t: Instant) -> String {
    let now = Instant::now();
    let offset = if t >= now {
        chrono::Duration::from_std(t - now).unwrap_or_default()
    } else {
        -chrono::Duration::from_std(now - t).unwrap_or_default()
    };
    (chrono::Local::now() + offset).format("%H:%M").to_string()
}
