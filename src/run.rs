//! `pbikiosk run` and `pbikiosk demo`: the wiring of the product. Each config generation (one
//! reading of the config, its sign-in and its player, until the file changes) runs the player
//! against the token service and the Power BI client, and the player's outputs drive the window;
//! the status endpoint watches it all.
//!
//! Threads: the GUI loop owns the main thread (GTK requires it); the core runs on a small tokio
//! runtime and talks to the window only through the shell's command proxy and event channel.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tao::event_loop::EventLoopProxy;
use tokio::sync::{mpsc, watch};

use crate::auth::SignInSettings;
use crate::auth::app_only::{ApiToken, EmbedTokenEndpoint};
use crate::auth::client::AadClient;
use crate::auth::client::Secrets;
use crate::auth::device_code;
use crate::auth::service::TokenService;
use crate::auth::session::TokenSession;
use crate::bridge::{FromPage, TokenType};
use crate::config::{self, AuthMethod, Config, ConfigError, SecretSources};
use crate::config_source::{Change, Source};
use crate::demo::{Demo, DemoOptions};
use crate::health::{self, FirstRender};
use crate::outlet::Outlet;
use crate::page_gate::PageMessageCounters;
use crate::player::{Input, Output, Player, RecycleSettings, Settings, Snapshot, State};
use crate::powerbi::PowerBiClient;
use crate::problem::Problem;
use crate::reach::Route;
use crate::schedule::Schedule;
use crate::screenshot::Camera;
use crate::shell::{self, ShellCommand, ShellEvent, ShellOptions};
use crate::status_screen::ScreenContext;
use crate::textfile::Textfile;

pub struct RunOptions {
    pub config_path: PathBuf,
    pub sources: SecretSources,
    /// Overrides `[status] listen`.
    pub status_listen: Option<SocketAddr>,
    /// Overrides `[status] textfile`.
    pub status_textfile: Option<PathBuf>,
    /// Run on the built-in simulator instead of the config.
    pub demo: Option<DemoOptions>,
    /// Fixed window size instead of fullscreen (tests without a window manager).
    pub window: Option<(u32, u32)>,
    pub web_dir: Option<PathBuf>,
    /// When the process started, for the start-to-first-report figure on `/status`.
    pub process_start: Instant,
    /// The service's state directory: the phone setup's certificate and saved configuration.
    pub state_dir: PathBuf,
}

impl RunOptions {
    /// systemd's `$STATE_DIRECTORY`, else `/var/lib/pbikiosk`.
    pub fn default_state_dir() -> PathBuf {
        crate::setup::state_dir(std::env::var("STATE_DIRECTORY").ok().as_deref())
    }
}

/// Open the window and run until the process exits.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let web_dir = shell::find_web_dir(opts.web_dir.as_deref())?;
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
        None => (
            Source::Layered {
                installer: opts.config_path.clone(),
                saved: crate::setup::save::config_path(&opts.state_dir),
                sources: opts.sources,
            },
            None,
        ),
    };
    let setup = SetupControl::new(opts.state_dir.clone(), opts.config_path.clone());
    // Start-up settings from one read of the config (a bad or missing one gives the defaults;
    // the player reports it on screen). Each generation reads it again.
    let startup = source.load().ok().or_else(|| match &source {
        // Not configured yet: the installer's other settings still shape the window, so the
        // configuration the phone saves plays in it without a restart.
        Source::Layered { installer, .. } => config::setup::settings_before_sign_in(installer),
        Source::Demo(_) => None,
    });
    // `[status]` is read once: a changed listen address, token or textfile takes a restart.
    let status_config = startup
        .as_ref()
        .map(|c| c.status.clone())
        .unwrap_or_default();
    let status_listen = opts.status_listen.unwrap_or(status_config.listen);
    let mut shell_opts = ShellOptions::from_startup(startup.as_ref(), web_dir, opts.window);
    if let Some(d) = &demo {
        // The webview reaches the simulator as app.powerbi.com through the demo's front door.
        shell_opts.proxy = Some(crate::web_context::WebProxy::at(d.front.proxy));
        shell_opts.trust = d.direct_trust();
    }
    let route = Route::of_web_view(&shell_opts);
    let first_render = FirstRender::new(opts.process_start);
    let page_messages = shell_opts.page_messages.clone();

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (proxy_tx, proxy_rx) = tokio::sync::oneshot::channel::<EventLoopProxy<ShellCommand>>();
    runtime.spawn(async move {
        let Ok(proxy) = proxy_rx.await else { return };
        // Keep the simulator alive as long as the core.
        let _demo = demo;
        let status = StatusSources {
            listen: status_listen,
            token: status_config.token,
            textfile: opts.status_textfile.or(status_config.textfile),
            first_render,
            page_messages,
        };
        core(source, status, setup, route, events_rx, proxy).await;
    });
    shell::run(shell_opts, events_tx, move |proxy| {
        let _ = proxy_tx.send(proxy);
    })?;
    drop(runtime);
    Ok(())
}

enum GenerationEnd {
    ConfigChanged,
    Exit(i32),
}

/// Where `/status` listens, and what it reports besides the player's snapshot.
struct StatusSources {
    listen: SocketAddr,
    /// `[status] token_file`'s token: clients from the network must send it.
    token: Option<crate::secret::Secret>,
    /// `[status] textfile`.
    textfile: Option<PathBuf>,
    first_render: FirstRender,
    page_messages: PageMessageCounters,
}

/// The phone setup page: open while the screen is not configured (or as `[setup] enabled`
/// says), closed otherwise and after a save.
struct SetupControl {
    state_dir: PathBuf,
    installer: PathBuf,
    board: watch::Sender<Option<crate::setup::Announce>>,
    opened: Option<(SocketAddr, crate::setup::server::Opened)>,
}

impl SetupControl {
    fn new(state_dir: PathBuf, installer: PathBuf) -> Self {
        Self {
            state_dir,
            installer,
            board: watch::channel(None).0,
            opened: None,
        }
    }

    /// The `[setup]` settings for this generation: from the configuration when it loads, else
    /// from the installer's file alone. The demo never opens the page.
    fn settings(
        &self,
        source: &Source,
        loaded: &Result<Config, ConfigError>,
    ) -> Option<config::setup::SetupConfig> {
        match (source, loaded) {
            (Source::Demo(_), _) => None,
            (_, Ok(cfg)) => Some(cfg.setup.clone()),
            (_, Err(_)) => match config::setup::setup_of_file(&self.installer) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "[setup] is not usable; the setup page stays closed");
                    None
                }
            },
        }
    }

    async fn apply(&mut self, settings: Option<config::setup::SetupConfig>, not_configured: bool) {
        let want = settings
            .as_ref()
            .filter(|s| s.enabled.open_when(not_configured))
            .map(|s| s.listen);
        if let Some((listen, opened)) = &self.opened
            && (Some(*listen) != want || opened.is_closed())
        {
            opened.close();
            self.opened = None;
            self.board.send_replace(None);
        }
        let Some(listen) = want else { return };
        if self.opened.is_some() {
            return;
        }
        let device = crate::status_screen::DeviceFacts::read();
        let env = crate::setup::server::SetupEnv {
            listen,
            state_dir: self.state_dir.clone(),
            base_config: self.installer.clone(),
            board: self.board.clone(),
            host: device.host,
            ips: device.ips,
        };
        match crate::setup::server::open(env).await {
            Ok(opened) => self.opened = Some((listen, opened)),
            Err(e) => tracing::error!(error = %e, "the phone setup page cannot open"),
        }
    }
}

/// Serve `/status`, then run one config generation after another.
async fn core(
    source: Source,
    status: StatusSources,
    mut setup: SetupControl,
    route: Route,
    mut events: mpsc::UnboundedReceiver<ShellEvent>,
    proxy: EventLoopProxy<ShellCommand>,
) {
    let (snap_tx, snap_rx) = watch::channel(Player::new(Settings::default()).snapshot());
    let StatusSources {
        listen: status_listen,
        token,
        textfile,
        first_render,
        page_messages,
    } = status;
    let window = proxy.clone();
    let camera =
        Camera::new(move |reply| window.send_event(ShellCommand::Screenshot(reply)).is_ok());
    let textfile = textfile.map(Textfile::new);
    let reporter = health::Reporter::new(
        snap_rx,
        first_render.clone(),
        page_messages,
        textfile.clone(),
        Some(camera),
        Some(setup.board.subscribe()),
    );
    let lan = token.is_some();
    match health::serve_reporter(
        status_listen,
        token,
        reporter.clone(),
        health::Limits::DEFAULT,
    )
    .await
    {
        Ok(addr) => {
            tracing::info!(%addr, token_required_from_network = lan, "status endpoint listening")
        }
        Err(e) => tracing::error!(error = %e, %status_listen, "status endpoint not available"),
    }
    if let Some(textfile) = textfile {
        tracing::info!(file = %textfile.status().path.display(), "writing the metrics textfile every 15 s");
        tokio::spawn(textfile.run(crate::textfile::EVERY, move || reporter.metrics()));
    }
    health::notify::ready();
    let fleet = crate::fleet::Fleet::default();
    if let Source::Layered { .. } = &source {
        let device = source.clone();
        let store = crate::fleet::store::Store::new(crate::fleet::store::state_dir());
        tokio::spawn(crate::fleet::run(
            move || device.load_device(),
            store,
            fleet.clone(),
        ));
    }
    // Outlives the generations: a new configuration does not switch the screen again.
    let screen = crate::screen_power::ScreenSwitch::start(Box::new(crate::screen_power::System));
    let mut first = true;
    loop {
        if !first {
            // A fresh page for a fresh configuration, black if the new one's hours say so
            // (a change at night must not light the screen).
            let dark = source.load().is_ok_and(|c| {
                crate::display_power::screen_now(&c.display.on).0 != crate::schedule::Power::On
            });
            let _ = proxy.send_event(ShellCommand::Reload { dark });
        }
        first = false;
        match generation(
            &source,
            &mut setup,
            &route,
            Window {
                events: &mut events,
                proxy: &proxy,
                screen: &screen,
            },
            &snap_tx,
            &first_render,
            &fleet,
        )
        .await
        {
            GenerationEnd::ConfigChanged => {
                tracing::info!("configuration changed; starting over");
            }
            GenerationEnd::Exit(code) => {
                tracing::error!(code, "the player cannot recover; exiting for a restart");
                let _ = proxy.send_event(ShellCommand::Exit(code));
                return;
            }
        }
    }
}

/// What a usable config runs on: its sign-in and its Power BI client.
pub(crate) struct Live {
    pub(crate) config: Config,
    pub(crate) tokens: TokenService,
    pub(crate) api: PowerBiClient,
    /// A service principal's Entra token, for the REST calls: `tokens` hands out embed tokens
    /// then, which only the page can use.
    pub(crate) api_token: Option<ApiToken>,
    /// The playlist to resolve: the config's, until a new fleet file replaces it while the
    /// player runs.
    pub(crate) playlist: std::sync::Mutex<Vec<config::PlaylistItem>>,
}

fn start_live(cfg: Config, source: &Source) -> Result<Live, Problem> {
    let http = crate::net::client_for(&cfg)?;
    let mut client = AadClient::new(http.clone(), SignInSettings::from_config(&cfg));
    if let Source::Demo(_) = source {
        // The demo's simulator issues tokens as short as `--token-lifetime` asks, to show
        // refreshes; a real cloud's lifetimes keep the five-minute floor.
        client = client.with_min_lifetime(Duration::ZERO);
    }
    let api = PowerBiClient::new(http.clone(), cfg.cloud.api.clone())
        .with_retry_budget(Duration::from_secs(60));
    let (tokens, api, api_token) = match cfg.auth.method {
        AuthMethod::ServicePrincipal => {
            let api = api.for_app();
            let bounds = client.lifetimes();
            let endpoint =
                EmbedTokenEndpoint::new(client, api.clone(), cfg.playlist.clone(), bounds);
            let api_token = endpoint.api_token();
            let session = TokenSession::new(endpoint, false, cfg.auth.permanent_retry).app_only();
            (TokenService::spawn(session), api, Some(api_token))
        }
        AuthMethod::Password => {
            let session =
                TokenSession::new(client, cfg.auth.allow_federated, cfg.auth.permanent_retry);
            (TokenService::spawn(session), api, None)
        }
        AuthMethod::DeviceCode => (
            device_code::spawn(device_session(&cfg, &http, source)),
            api,
            None,
        ),
    };
    Ok(Live {
        tokens,
        api,
        api_token,
        playlist: std::sync::Mutex::new(cfg.playlist.clone()),
        config: cfg,
    })
}

/// The device-code sign-in of a config whose method is `device_code`.
pub(crate) fn device_session(
    cfg: &Config,
    http: &reqwest::Client,
    source: &Source,
) -> device_code::DeviceSession<device_code::DeviceClient> {
    let cache = cfg
        .auth
        .token_cache
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_TOKEN_CACHE.into());
    let min_lifetime = matches!(source, Source::Demo(_)).then_some(Duration::ZERO);
    device_code::DeviceSession::for_config(cfg, http, cache, min_lifetime)
}

/// Start what the config allows; what it does not is the player's to show.
fn start(
    loaded: Result<Config, ConfigError>,
    source: &Source,
    player: &mut Player,
) -> Option<Live> {
    if let Some(problem) = source.boot_import_problem() {
        tracing::warn!(cause = %problem.cause, "the boot partition's settings were not imported");
        player.handle(
            Instant::now(),
            Input::Config {
                problem,
                not_configured: false,
            },
        );
        return None;
    }
    let (problem, not_configured) = match loaded.map(|c| start_live(c, source)) {
        Ok(Ok(live)) => return Some(live),
        Ok(Err(problem)) => (problem, false),
        Err(e) => {
            tracing::warn!(error = %e, "configuration not usable");
            let not_configured = matches!(
                e,
                ConfigError::NotFound { .. } | ConfigError::NotConfigured { .. }
            );
            (e.to_problem(), not_configured)
        }
    };
    let input = Input::Config {
        problem,
        not_configured,
    };
    player.handle(Instant::now(), input);
    None
}

/// Which playlist entries are inside their `when` windows now, in the device's time zone.
fn schedule_now(windows: &[Schedule]) -> Input {
    let (in_window, next) = crate::schedule::playlist_at(windows, &chrono::Local::now());
    Input::Schedule {
        in_window,
        next_change: next.as_ref().map(crate::schedule::describe),
    }
}

/// A secret file changed while the config file did not: hand the new secrets to the running
/// sign-in, which tries them at once if the last attempt failed. The page and the report on
/// screen stay as they are, so a routine rotation does not blank the screen. `false` when that
/// is not possible (the config is not running, or no longer loads with the new file) and the
/// whole config must be read again, which shows what is wrong.
fn secrets_changed(source: &Source, live: Option<&Live>) -> bool {
    let Some(live) = live else {
        return false;
    };
    match source.load() {
        Ok(cfg) => {
            tracing::info!("a secret file changed; signing in with the new secrets");
            live.tokens.replace_secrets(Secrets {
                client: cfg.auth.client,
                password: cfg.auth.password,
            });
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "a secret file changed and is not usable");
            false
        }
    }
}

/// A new fleet file was kept: hand its playlist to the running player, which switches to it at
/// the next item boundary, without a blank screen. `false` when that is not enough (it changed
/// more than the playlist, a service principal's embed tokens are made for the old one, or
/// nothing is running) and the whole config must be read again.
fn take_new_playlist(source: &Source, live: Option<&Live>) -> bool {
    let Some(live) = live else {
        return false;
    };
    match source.load() {
        Ok(cfg)
            if live.config.auth.method != AuthMethod::ServicePrincipal
                && live.config.differs_only_in_playlist(&cfg) =>
        {
            tracing::info!(
                items = cfg.playlist.len(),
                "new playlist from the fleet file; it starts at the next item"
            );
            match live.playlist.lock() {
                Ok(mut p) => *p = cfg.playlist,
                Err(poisoned) => *poisoned.into_inner() = cfg.playlist,
            }
            true
        }
        _ => false,
    }
}

/// The window as a generation sees it: what it reports, how to reach it, and the screen it is
/// on.
struct Window<'a> {
    events: &'a mut mpsc::UnboundedReceiver<ShellEvent>,
    proxy: &'a EventLoopProxy<ShellCommand>,
    /// The screen itself (TV or monitor), switched at the `[display] on` boundaries.
    screen: &'a crate::screen_power::ScreenSwitch,
}

/// One config generation: read the config once, run its player until the file changes or the
/// player gives up.
async fn generation(
    source: &Source,
    setup: &mut SetupControl,
    route: &Route,
    window: Window<'_>,
    snapshot: &watch::Sender<Snapshot>,
    first_render: &FirstRender,
    fleet: &crate::fleet::Fleet,
) -> GenerationEnd {
    let Window {
        events,
        proxy,
        screen,
    } = window;
    let mut stamp = source.stamp();
    let mut fleet_rx = fleet.subscribe();
    let mut fleet_version = fleet.status().map_or(0, |s| s.content_version);
    let loaded = source.load();
    let permanent_retry = loaded.as_ref().map(|c| c.auth.permanent_retry);
    let report_layout = loaded.as_ref().map(|c| c.display.report_layout);
    // Growth outside the web process is freed only by a new session, which only a supervisor
    // (systemd, which set NOTIFY_SOCKET for this Type=notify unit) brings back: without one, a
    // restart would end the player.
    let supervised = std::env::var_os("NOTIFY_SOCKET").is_some();
    let recycle = loaded.as_ref().map(|c| RecycleSettings {
        restart_session: supervised,
        ..c.player.memory
    });
    let token_type = match loaded.as_ref().map(|c| c.auth.method) {
        Ok(AuthMethod::ServicePrincipal) => TokenType::Embed,
        _ => TokenType::Aad,
    };
    let mut player = Player::new(Settings {
        permanent_retry: permanent_retry.unwrap_or(config::DEFAULT_PERMANENT_RETRY),
        report_layout: report_layout.unwrap_or_default(),
        recycle: recycle.unwrap_or_default(),
        token_type,
        ..Settings::default()
    });
    let windows: Vec<Schedule> = loaded
        .as_ref()
        .map(|c| c.playlist.iter().map(|p| p.when.clone()).collect())
        .unwrap_or_default();
    let day_parted = windows.iter().any(|w| !w.is_always());
    let hours = loaded
        .as_ref()
        .map(|c| c.display.on.clone())
        .unwrap_or_default();
    let screen_means = loaded
        .as_ref()
        .map(|c| c.display.power.clone())
        .unwrap_or_default();
    let setup_settings = setup.settings(source, &loaded);
    let live = start(loaded, source, &mut player);
    if day_parted {
        player.handle(Instant::now(), schedule_now(&windows));
    }
    player.handle(
        Instant::now(),
        Input::Fleet {
            problem: fleet.status().and_then(|s| s.last_problem),
            playlist_changed: false,
        },
    );
    let not_configured = player.snapshot().state == State::NotConfigured;
    setup.apply(setup_settings, not_configured).await;
    let mut board = setup.board.subscribe();
    board.mark_unchanged();
    // The last status screen shown, to show again with a new PIN.
    let mut shown: Option<(Problem, Option<Instant>)> = None;
    let mut token_rx = live.as_ref().map(|l| l.tokens.subscribe());
    let (resolved_tx, mut resolved_rx) = mpsc::channel(2);
    let (probed_tx, mut probed_rx) = mpsc::channel(2);
    let mut config_poll = tokio::time::interval(Duration::from_secs(5));
    let mut memory_poll = tokio::time::interval(player.memory_sample_every());
    memory_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The player knows instants only; `/status` shows the last recycle as a wall-clock time.
    let mut last_recycle: Option<(Instant, String)> = None;
    let me = std::process::id();
    let mut out = Outlet {
        window: proxy,
        live: live.as_ref(),
        resolved: &resolved_tx,
        route,
        probed: &probed_tx,
        screen: ScreenContext {
            config_path: source.describe(),
            not_configured,
            setup: board.borrow().clone(),
        },
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
                    Input::Page(msg)
                }
                Some(ShellEvent::WebProcessCrashed) => Input::WebProcessCrashed,
                Some(ShellEvent::EmbedTrouble { url, detail }) => Input::EmbedTrouble { url, detail },
                None => return GenerationEnd::Exit(0),
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
            Ok(()) = board.changed() => {
                // A new PIN (too many wrong ones) or the page closed: the screen says so.
                out.screen.setup = board.borrow_and_update().clone();
                if let Some((problem, next_attempt)) = shown.clone()
                    && player.snapshot().state == State::NotConfigured
                {
                    out.dispatch(Output::ShowProblem { problem, next_attempt });
                }
                Input::Tick
            }
            Some(res) = probed_rx.recv() => Input::Probed(res),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => Input::Tick,
            _ = memory_poll.tick() => match crate::memory::tree_memory(me) {
                Some(m) => Input::Memory { pss_bytes: m.pss, outside_web_bytes: m.outside_web },
                None => Input::Tick,
            },
            Ok(()) = fleet_rx.changed() => {
                let status = fleet.status();
                let version = status.as_ref().map_or(0, |s| s.content_version);
                let problem = status.and_then(|s| s.last_problem);
                let playlist_changed = version != fleet_version;
                fleet_version = version;
                if playlist_changed && !take_new_playlist(source, live.as_ref()) {
                    return GenerationEnd::ConfigChanged;
                }
                Input::Fleet { problem, playlist_changed }
            }
            _ = config_poll.tick() => {
                let now_stamp = source.stamp();
                match stamp.change_to(&now_stamp) {
                    Change::None => {}
                    Change::Config => return GenerationEnd::ConfigChanged,
                    Change::Secrets => {
                        stamp = now_stamp;
                        if !secrets_changed(source, live.as_ref()) {
                            return GenerationEnd::ConfigChanged;
                        }
                    }
                }
                // Screen hours and the override: looked at every few seconds rather than slept
                // until the next boundary, so a clock that jumps (NTP at boot, a dead RTC
                // battery) or an admin's `pbikiosk display off` is followed at once.
                let (power, quiet) = crate::display_power::screen_now(&hours);
                screen.want(crate::screen_power::Light::of(power), &screen_means);
                // The sign-in first: waking, it renews a stale token while the player starts
                // preparing (which waits for a token that has not run out).
                if let Some(live) = &live {
                    live.tokens.set_quiet(quiet);
                }
                for output in player.handle(Instant::now(), Input::ScreenPower(power)) {
                    if let Some(code) = out.dispatch(output) {
                        return GenerationEnd::Exit(code);
                    }
                }
                if day_parted { schedule_now(&windows) } else { Input::Tick }
            }
        };
        for output in player.handle(Instant::now(), input) {
            match &output {
                Output::ShowProblem {
                    problem,
                    next_attempt,
                } => shown = Some((problem.clone(), *next_attempt)),
                Output::HideProblem => shown = None,
                _ => {}
            }
            if let Some(code) = out.dispatch(output) {
                return GenerationEnd::Exit(code);
            }
        }
        let mut snap = player.snapshot();
        if let Some(t) = player.last_recycle() {
            if last_recycle.as_ref().is_none_or(|(seen, _)| *seen != t) {
                let wall = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                last_recycle = Some((t, wall));
            }
            snap.memory.last_recycle = last_recycle.as_ref().map(|(_, w)| w.clone());
        }
        snap.fleet = fleet.status().map(|s| s.at(crate::fleet::now_unix()));
        crate::screen_power::overlay(&mut snap.display, screen.last());
        if snap.rendered_total > 0 && snap.item.is_some() {
            first_render.mark();
        }
        health::notify::status(&format!("{:?}", snap.state));
        snapshot.send_replace(snap);
    }
}
