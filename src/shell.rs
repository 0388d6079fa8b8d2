//! The window: one fullscreen WebKitGTK view (tao + wry) showing the page in `web/`.
//!
//! Thin glue by design: it serves `web/` on the `app://` scheme, forwards page messages to
//! the core, runs the core's scripts, enforces the navigation allow-list and reports a crashed
//! web process. Every decision lives in the core (`player`), which is testable without it.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use tao::event::{Event, WindowEvent};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tao::window::{Fullscreen, WindowBuilder};
use tokio::sync::mpsc::UnboundedSender;
use wry::http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use wry::{NewWindowResponse, WebViewBuilder};

use crate::bridge::FromPage;
use crate::config::Config;
use crate::page_gate::{Admission, PageGate, PageMessageCounters, PageSecret};

/// The page's origin. Kept in one place so it can move to a loopback https origin if Power BI
/// ever refuses custom schemes.
pub const PAGE_URL: &str = "app://localhost/index.html";

/// The page, black from its first frame (its `#dark` layer is the fragment's target): what a
/// page that comes up out of the screen's hours loads, so no start screen lights a dark screen
/// before the core can tell the page to be black.
pub const PAGE_URL_DARK: &str = "app://localhost/index.html#dark";

/// The start screen's colour (web/player.css, #10161d): while a fresh web process starts (a
/// recycle, a repair) the view shows its background before the page paints, and it must not
/// flash another colour.
const VIEW_BACKGROUND: (u8, u8, u8, u8) = (16, 22, 29, 255);
/// The view's background while a page that must stay black replaces the old one.
const VIEW_BACKGROUND_DARK: (u8, u8, u8, u8) = (0, 0, 0, 255);

/// The page's address, black from the start or not.
pub(crate) fn page_url(dark: bool) -> &'static str {
    if dark { PAGE_URL_DARK } else { PAGE_URL }
}

/// A current Safari-style user agent. WebKitGTK's default claims an ancient Safari version
/// that browser checks may refuse; the config can override it.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15";

/// What the core asks of the window. Its `Debug` (by hand) shows a script's length only: a
/// script can carry an embed token.
pub enum ShellCommand {
    /// Run this script in the page (a `ToPage` message, see `bridge`).
    Script(String),
    /// Reload the page from scratch; `dark`: black from its first frame (out of hours).
    Reload { dark: bool },
    /// Close the window and exit the process with this code.
    Exit(i32),
    /// Take a PNG of what the web view shows and send it here (`/screenshot.png`).
    Screenshot(crate::screenshot::Reply),
}

impl std::fmt::Debug for ShellCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Script(js) => write!(f, "Script({} bytes)", js.len()),
            Self::Reload { dark: false } => f.write_str("Reload"),
            Self::Reload { dark: true } => f.write_str("Reload (dark)"),
            Self::Exit(code) => f.debug_tuple("Exit").field(code).finish(),
            Self::Screenshot(_) => f.write_str("Screenshot"),
        }
    }
}

/// What the window tells the core.
#[derive(Debug)]
pub enum ShellEvent {
    Page(FromPage),
    WebProcessCrashed,
    /// An embed document (`url`) failed in the web view: a network or TLS error, or an HTTP
    /// error status. WebKit tells the page nothing about a failed frame, so this is the only
    /// early sign of a blocked embed host.
    EmbedTrouble {
        url: String,
        detail: String,
    },
}

pub struct ShellOptions {
    pub web_dir: PathBuf,
    pub user_agent: String,
    /// Hosts (and their subdomains) the page and its frames may navigate to over https.
    pub allowed_hosts: Vec<String>,
    /// An HTTP proxy for all web traffic (demo/test front door, or a corporate proxy).
    pub proxy: Option<crate::web_context::WebProxy>,
    /// A certificate (PEM) to trust for one host only (the demo's fake app.powerbi.com).
    pub trust: Option<(String, String)>,
    /// `cloud.ca_file`: certificates of the allowed hosts that chain to its CAs are trusted
    /// too, as by pbikiosk's own HTTP client (see [`crate::ca_trust`]).
    pub ca_file: Option<PathBuf>,
    pub devtools: bool,
    /// Copy the page's console to stdout (tests, debug builds): a JS error is otherwise silent.
    pub console_to_stdout: bool,
    /// Window size when no window manager makes it fullscreen (tests); `None` = the monitor.
    pub size: Option<(u32, u32)>,
    /// Composite with the GPU (`[display] gpu`, see [`crate::config::GpuMode::use_gpu`]).
    pub gpu: bool,
    /// Counts the page messages the window drops (shared with `/status`).
    pub(crate) page_messages: PageMessageCounters,
    /// Out of the screen's hours at start (a restart at night): the first page starts black,
    /// as a page reloaded at night does, instead of lighting the screen until the player says.
    pub(crate) start_dark: bool,
}

impl ShellOptions {
    /// The window's settings from the config read at start-up (the defaults without one); they
    /// hold for the life of the process.
    pub fn from_startup(
        startup: Option<&Config>,
        web_dir: PathBuf,
        size: Option<(u32, u32)>,
    ) -> Self {
        let user_agent = startup
            .and_then(|c| c.player.user_agent.clone())
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned());
        let gpu_mode = startup.map(|c| c.display.gpu).unwrap_or_default();
        let render_node = has_gpu_render_node();
        let gpu = gpu_mode.use_gpu(render_node);
        tracing::info!(
            setting = ?gpu_mode,
            render_node,
            "GPU compositing {}",
            if gpu { "on" } else { "off" }
        );
        Self {
            web_dir,
            user_agent,
            // Power BI's hosts only, for every cloud: never a configured address, which could
            // point the web view (and the report frames in it) anywhere.
            allowed_hosts: powerbi_hosts(),
            proxy: startup.and_then(|c| crate::web_context::WebProxy::configured(&c.network)),
            trust: None,
            ca_file: startup.and_then(|c| c.cloud.ca_file.clone()),
            devtools: cfg!(debug_assertions) && std::env::var_os("PBIKIOSK_DEVTOOLS").is_some(),
            console_to_stdout: cfg!(debug_assertions)
                || std::env::var_os("PBIKIOSK_PAGE_CONSOLE").is_some(),
            size,
            gpu,
            page_messages: PageMessageCounters::default(),
            start_dark: startup.is_some_and(|c| {
                crate::display_power::screen_now(&c.display.on).0 != crate::schedule::Power::On
            }),
        }
    }
}

/// Does this machine have a GPU render node? Without one, OpenGL is a software rasteriser.
pub fn has_gpu_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Is a navigation to `url` allowed? Our own scheme, blank frames, and https to the allowed
/// hosts (which cover the Power BI embed frames). Everything else is refused.
pub fn navigation_allowed(url: &str, allowed_hosts: &[String]) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "app" => u.host_str() == Some("localhost"),
        "about" => u.path() == "blank" || u.path() == "srcdoc",
        "https" => u
            .host_str()
            .is_some_and(|h| crate::embed_url::host_allowed(h, allowed_hosts)),
        _ => false,
    }
}

/// Is `url` the document of an embed frame (`https://app.powerbi.com/reportEmbed?...`,
/// `dashboardEmbed`...)? Only those are watched for load failures: a failing visual's data
/// request is Power BI's to report, and leaves the report up.
pub(crate) fn is_embed_document(url: &str, allowed_hosts: &[String]) -> bool {
    navigation_allowed(url, allowed_hosts)
        && url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.path().ends_with("Embed"))
}

/// The Power BI hosts an embed needs, for the public and national clouds.
pub fn powerbi_hosts() -> Vec<String> {
    [
        "powerbi.com",
        "analysis.windows.net",
        "powerbigov.us",
        "powerbi.cn",
        "analysis.chinacloudapi.cn",
        "analysis.usgovcloudapi.net",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Serve a file of `web_dir` for an `app://localhost/<path>` request.
pub fn serve_asset(web_dir: &Path, uri_path: &str) -> Response<Cow<'static, [u8]>> {
    let rel = uri_path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let rel = Path::new(rel);
    // Only plain names: no "..", no absolute paths, nothing outside web_dir.
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return status(StatusCode::FORBIDDEN);
    }
    match std::fs::read(web_dir.join(rel)) {
        Ok(bytes) => Response::builder()
            .header(CONTENT_TYPE, content_type(rel))
            .body(Cow::Owned(bytes))
            .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR)),
        Err(_) => status(StatusCode::NOT_FOUND),
    }
}

fn status(code: StatusCode) -> Response<Cow<'static, [u8]>> {
    let mut r = Response::new(Cow::Borrowed(&b""[..]));
    *r.status_mut() = code;
    r
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Why the page's files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebDirError {
    #[error("the player page (index.html) is not in any of {0:?}")]
    NoPage(Vec<PathBuf>),
    #[error(
        "{}/vendor/powerbi.min.js is missing: build the page once with `scripts/build-web.sh` (npm ci + web/build.mjs)",
        .0.display()
    )]
    NotBuilt(PathBuf),
}

/// Find the page's files: explicit, `$PBIKIOSK_WEB_DIR`, the installed copy, and in debug
/// builds only the source tree.
pub fn find_web_dir(explicit: Option<&Path>) -> Result<PathBuf, WebDirError> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("PBIKIOSK_WEB_DIR").map(PathBuf::from))
        .chain(default_web_dirs(cfg!(debug_assertions)))
        .collect();
    pick_web_dir(candidates)
}

/// Where the page is looked for when nothing names it. A release build never serves the
/// folder it was built from: on a device that path is whatever someone put there, and the
/// page it holds runs with the player's bridge.
fn default_web_dirs(debug_build: bool) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/share/pbikiosk/web")];
    if debug_build {
        dirs.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web")));
    }
    dirs
}

/// The first candidate with the page in it, which must also hold the built Power BI client.
fn pick_web_dir(candidates: Vec<PathBuf>) -> Result<PathBuf, WebDirError> {
    let Some(dir) = candidates.iter().find(|d| d.join("index.html").is_file()) else {
        return Err(WebDirError::NoPage(candidates));
    };
    if !dir.join("vendor/powerbi.min.js").is_file() {
        return Err(WebDirError::NotBuilt(dir.clone()));
    }
    Ok(dir.clone())
}

/// Open the window and run the GUI loop on this (the main) thread. Never returns: the process
/// exits with the code of [`ShellCommand::Exit`], or 0 when the window is closed.
/// `on_ready` receives the proxy the core uses to send commands.
pub fn run(
    opts: ShellOptions,
    events: UnboundedSender<ShellEvent>,
    on_ready: impl FnOnce(EventLoopProxy<ShellCommand>),
) -> anyhow::Result<()> {
    // Without WebKit's DMA-BUF renderer the picture is the same and the process tree measured
    // ~70 MiB (PSS) less on a software-rendered device; a value set by the service wins.
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        // SAFETY: called before any other thread of ours touches the environment: the tokio
        // runtime's threads do not read it, and GTK has not started yet.
        unsafe { std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1") };
    }
    let event_loop = EventLoopBuilder::<ShellCommand>::with_user_event().build();
    // The window's own background shows until the web view first draws (about a second at
    // start): the theme's light grey unless set, a flash of light on a dark screen.
    let mut builder = WindowBuilder::new()
        .with_title("pbikiosk")
        .with_decorations(false)
        .with_background_color(if opts.start_dark {
            VIEW_BACKGROUND_DARK
        } else {
            VIEW_BACKGROUND
        });
    builder = match opts.size {
        Some((w, h)) => builder.with_inner_size(tao::dpi::PhysicalSize::new(w, h)),
        None => builder.with_fullscreen(Some(Fullscreen::Borderless(None))),
    };
    let window = builder.build(&event_loop)?;
    window.set_cursor_visible(false);
    if opts.size.is_none() {
        // Without a window manager the fullscreen request is ignored: cover the monitor.
        if let Some(m) = window
            .current_monitor()
            .or_else(|| event_loop.primary_monitor())
        {
            window.set_inner_size(m.size());
            window.set_outer_position(m.position());
        }
    }

    let allowed = opts.allowed_hosts.clone();
    let ipc_tx = events.clone();
    let secret = PageSecret::generate()?;
    let channel_script = secret.channel_script();
    let gate = std::cell::RefCell::new(PageGate::new(secret, opts.page_messages.clone()));
    let builder = WebViewBuilder::new()
        // Top frame only, before the page's scripts: report frames must never see the secret.
        .with_initialization_script_for_main_only(channel_script, true)
        .with_url(page_url(opts.start_dark))
        .with_user_agent(opts.user_agent.clone())
        .with_devtools(opts.devtools)
        .with_background_color(if opts.start_dark {
            VIEW_BACKGROUND_DARK
        } else {
            VIEW_BACKGROUND
        })
        // Every frame can post here, and the request names the top frame whoever sent it: the
        // gate believes only messages that carry our page's secret.
        .with_ipc_handler(move |req: Request<String>| {
            let verdict = gate
                .borrow_mut()
                .admit(std::time::Instant::now(), req.body());
            match verdict {
                Admission::Accepted(msg) => {
                    let _ = ipc_tx.send(ShellEvent::Page(msg));
                }
                Admission::Dropped { reason, log } => {
                    tracing::trace!(?reason, "page message dropped");
                    if let Some(log) = log {
                        tracing::warn!("{log}");
                    }
                }
                Admission::Unreadable(e) => {
                    tracing::warn!(error = %e, "unreadable message from the page")
                }
            }
        })
        .with_navigation_handler(move |url| {
            let ok = navigation_allowed(&url, &allowed);
            if !ok {
                tracing::warn!(url, "navigation refused (not on the allow-list)");
            }
            ok
        })
        .with_new_window_req_handler(|url, _| {
            tracing::warn!(url, "new window refused");
            NewWindowResponse::Deny
        })
        // No website data on disk (see `crate::web_context`).
        .with_incognito(true);
    let builder = platform::contain(builder, &opts)?;
    let webview = build_webview(builder, &window)?;
    platform::harden(&webview, &opts, events.clone())?;

    on_ready(event_loop.create_proxy());
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            Event::UserEvent(ShellCommand::Script(js)) => {
                if let Err(e) = webview.evaluate_script(&js) {
                    tracing::warn!(error = %e, "script failed");
                }
            }
            Event::UserEvent(ShellCommand::Reload { dark }) => {
                // Between the old process and the new page's first frame the view shows its
                // background: black too when the screen is dark.
                let background = if dark {
                    VIEW_BACKGROUND_DARK
                } else {
                    VIEW_BACKGROUND
                };
                if let Err(e) = webview.set_background_color(background) {
                    tracing::warn!(error = %e, "view background not set");
                }
                // A fresh web process first: a hung one (no heartbeat) would never load the page
                // again; a crashed one is gone already.
                platform::fresh_web_process(&webview);
                // load_url rather than reload(): a crashed or hung page may have navigated.
                if let Err(e) = webview.load_url(page_url(dark)) {
                    tracing::error!(error = %e, "page reload failed");
                }
            }
            Event::UserEvent(ShellCommand::Exit(code)) => {
                *control_flow = ControlFlow::ExitWithCode(code);
            }
            Event::UserEvent(ShellCommand::Screenshot(reply)) => {
                platform::snapshot(&webview, reply);
            }
            Event::WindowEvent {
                event: WindowEvent::CloseRequested,
                ..
            } => *control_flow = ControlFlow::Exit,
            _ => {}
        }
    });
}

#[cfg(target_os = "linux")]
fn build_webview(
    builder: WebViewBuilder,
    window: &tao::window::Window,
) -> anyhow::Result<wry::WebView> {
    use tao::platform::unix::WindowExtUnix;
    use wry::WebViewBuilderExtUnix;
    // build_gtk works on Wayland (cage) and X11 alike; build() is X11-only on Linux.
    let vbox = window
        .default_vbox()
        .ok_or_else(|| anyhow::anyhow!("the window has no GTK container"))?;
    Ok(builder.build_gtk(vbox)?)
}

#[cfg(not(target_os = "linux"))]
fn build_webview(
    builder: WebViewBuilder,
    window: &tao::window::Window,
) -> anyhow::Result<wry::WebView> {
    Ok(builder.build(window)?)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::{ShellEvent, ShellOptions};
    use crate::ca_trust::{CaFileError, CaFileTrust, Judgements, Verdict};
    use tokio::sync::mpsc::UnboundedSender;
    use webkit2gtk::gio;
    use webkit2gtk::{
        SettingsExt, URIRequestExt, URIResponseExt, WebContextExt, WebResourceExt, WebViewExt,
    };
    use wry::WebViewExtUnix;

    /// The view joins a context of its own making (see [`crate::web_context`]): sandboxed web
    /// processes, ephemeral website data, Power BI's cookies, no downloads; it serves the page
    /// on `app://` and sets the proxy.
    pub fn contain<'a>(
        builder: wry::WebViewBuilder<'a>,
        opts: &ShellOptions,
    ) -> anyhow::Result<wry::WebViewBuilder<'a>> {
        use wry::WebViewBuilderExtUnix;
        let related = crate::web_context::contained_view(&crate::web_context::ContextOptions {
            web_dir: &opts.web_dir,
            proxy: opts.proxy.as_ref(),
        })?;
        Ok(builder.with_related_view(related))
    }

    /// End the page's web process, so that the next load starts a new one. Only a page that is
    /// alive (or hung) has one; after a crash this does nothing.
    pub fn fresh_web_process(webview: &wry::WebView) {
        webview.webview().terminate_web_process();
    }

    /// What the view shows, as WebKit itself renders it (report frames included), encoded as
    /// PNG and sent to `reply`. Asynchronous: WebKit answers on this main loop later; only the
    /// copy of the pixels happens here, the encoding (about 0.2 s for 1280x720) on a thread of
    /// its own, so the window keeps drawing meanwhile.
    pub fn snapshot(webview: &wry::WebView, reply: crate::screenshot::Reply) {
        use webkit2gtk::{SnapshotOptions, SnapshotRegion};
        webview.webview().snapshot(
            SnapshotRegion::Visible,
            SnapshotOptions::NONE,
            None::<&gio::Cancellable>,
            move |result| {
                let pixels = match result
                    .map_err(|e| e.to_string())
                    .and_then(|surface| Pixels::of(&surface))
                {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let encode = move || {
                    let t = std::time::Instant::now();
                    let png = pixels.png();
                    tracing::debug!(
                        encode_ms = t.elapsed().as_millis() as u64,
                        "snapshot encoded as PNG"
                    );
                    // The endpoint may have given up waiting.
                    let _ = reply.send(png);
                };
                if let Err(e) = std::thread::Builder::new()
                    .name("pbikiosk-png".into())
                    .spawn(encode)
                {
                    // The request was moved into the closure and is dropped with it: the
                    // endpoint answers "no window"; say here why.
                    tracing::warn!(error = %e, "cannot start a thread to encode the screenshot");
                }
            },
        );
    }

    /// A snapshot's pixels (RGBA), copied off the main loop's objects so another thread may
    /// encode them (GdkPixbuf objects are not `Send`; the bytes are).
    struct Pixels {
        bytes: gdk::glib::Bytes,
        has_alpha: bool,
        width: i32,
        height: i32,
        rowstride: i32,
    }

    impl Pixels {
        fn of(surface: &gdk::cairo::Surface) -> Result<Self, String> {
            let image = gdk::cairo::ImageSurface::try_from(surface.clone())
                .map_err(|_| "the snapshot is not an image surface".to_owned())?;
            let (w, h) = (image.width(), image.height());
            let pixbuf = gdk::pixbuf_get_from_surface(surface, 0, 0, w, h)
                .ok_or_else(|| format!("cannot read the {w}x{h} snapshot"))?;
            Ok(Self {
                bytes: gdk::glib::Bytes::from(&*pixbuf.read_pixel_bytes()),
                has_alpha: pixbuf.has_alpha(),
                width: pixbuf.width(),
                height: pixbuf.height(),
                rowstride: pixbuf.rowstride(),
            })
        }

        fn png(&self) -> Result<Vec<u8>, String> {
            let pixbuf = gdk::gdk_pixbuf::Pixbuf::from_bytes(
                &self.bytes,
                gdk::gdk_pixbuf::Colorspace::Rgb,
                self.has_alpha,
                8,
                self.width,
                self.height,
                self.rowstride,
            );
            // The fastest zlib level: the file is for a person to look at, not to archive.
            pixbuf
                .save_to_bufferv("png", &[("compression", "1")])
                .map_err(|e| e.to_string())
        }
    }

    /// WebKitGTK specifics wry does not cover: crash reporting, host-scoped certificate trust,
    /// no context menu, console forwarding.
    /// Answer the configured proxy's `407` with `proxy_credentials_file`, once: a second
    /// challenge means the credentials are wrong, and answering it again would only lock the
    /// account. Any other host's challenge (a site's own sign-in) gets WebKit's default, a
    /// refusal on a screen without a dialog: the proxy's password is never offered to it.
    fn answer_proxy_challenge(
        proxy: &crate::web_context::WebProxy,
        request: &webkit2gtk::AuthenticationRequest,
    ) -> bool {
        use webkit2gtk::AuthenticationRequestExt;
        use webkit2gtk::glib::translate::ToGlibPtr;
        let host = request.host().map(|h| h.to_string()).unwrap_or_default();
        let Some(c) = proxy.credentials.as_ref() else {
            return false;
        };
        if !request.is_for_proxy() || !proxy.is(&host, request.port()) {
            return false;
        }
        if request.is_retry() {
            tracing::warn!(
                proxy = %proxy.authority,
                "the proxy refused the credentials of network.proxy_credentials_file"
            );
            request.cancel();
            return true;
        }
        tracing::info!(proxy = %proxy.authority, user = %c.user, "answering the proxy's authentication request");
        let credential = webkit2gtk::Credential::new(
            &c.user,
            c.password.expose(),
            webkit2gtk::CredentialPersistence::ForSession,
        );
        // SAFETY: both pointers are valid for the call; WebKit copies the credential.
        let credential_ptr: *const webkit2gtk::ffi::WebKitCredential = credential.to_glib_none().0;
        let request_ptr: *mut webkit2gtk::ffi::WebKitAuthenticationRequest =
            request.to_glib_none().0;
        unsafe {
            webkit2gtk::ffi::webkit_authentication_request_authenticate(
                request_ptr,
                credential_ptr.cast_mut(),
            );
        }
        true
    }

    pub fn harden(
        webview: &wry::WebView,
        opts: &ShellOptions,
        events: UnboundedSender<ShellEvent>,
    ) -> anyhow::Result<()> {
        let view = webview.webview();
        let events_for_loads = events.clone();
        view.connect_web_process_terminated(move |_, reason| {
            if reason == webkit2gtk::WebProcessTerminationReason::TerminatedByApi {
                // Our own doing, for a fresh page (a repair or a memory recycle, see
                // fresh_web_process): not a crash.
                tracing::info!("WebKit web process replaced for a fresh page");
                return;
            }
            tracing::error!(?reason, "WebKit web process terminated");
            let _ = events.send(ShellEvent::WebProcessCrashed);
        });
        // A kiosk has no use for a right-click menu ("Reload", "Inspect"...).
        view.connect_context_menu(|_, _, _, _| true);
        if let Some(proxy) = opts.proxy.clone().filter(|p| p.credentials.is_some()) {
            view.connect_authenticate(move |_, request| answer_proxy_challenge(&proxy, request));
        }
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_enable_write_console_messages_to_stdout(opts.console_to_stdout);
            settings.set_enable_developer_extras(opts.devtools);
            if !opts.gpu {
                settings.set_hardware_acceleration_policy(
                    webkit2gtk::HardwareAccelerationPolicy::Never,
                );
            }
        }
        if let Some(ctx) = view.context() {
            // One page that never navigates back: no back/forward page cache, minimal memory
            // cache. WebKit's default (web browser) model keeps pages and resources around.
            ctx.set_cache_model(webkit2gtk::CacheModel::DocumentViewer);
        }
        if let Some((host, pem)) = &opts.trust {
            let cert = webkit2gtk::gio::TlsCertificate::from_pem(pem)?;
            let ctx = view
                .context()
                .ok_or_else(|| anyhow::anyhow!("the web view has no context"))?;
            // Trusted for this host only: any other host with this certificate still fails.
            ctx.allow_tls_certificate_for_host(&cert, host);
        }
        trust_ca_file(&view, opts);
        watch_embed_loads(&view, opts.allowed_hosts.clone(), events_for_loads);
        Ok(())
    }

    /// Make the web view trust `cloud.ca_file` for the allowed hosts, as the HTTP client does.
    ///
    /// WebKitGTK cannot be given extra CAs, but it reports each certificate it refuses, for the
    /// page and for every resource including the embed's frame. A refused certificate of an
    /// allowed host that verifies against the file's CAs (see [`crate::ca_trust`]) is accepted
    /// for that host alone, and the frames of that host are loaded again so the embed recovers
    /// now rather than at the player's next attempt. Each refused certificate is logged (once
    /// per host), with or without a `ca_file`: it is the only trace of an embed frame that
    /// failed, since the page sees no event for it.
    fn trust_ca_file(view: &webkit2gtk::WebView, opts: &ShellOptions) {
        use std::cell::RefCell;
        use std::rc::Rc;
        use webkit2gtk::glib::object::ObjectExt;
        use webkit2gtk::{URIRequestExt, WebResourceExt};

        let trust = opts.ca_file.as_deref().and_then(|path| {
            let loaded = std::fs::read(path)
                .map_err(CaFileError::Read)
                .and_then(|pem| CaFileTrust::from_pem(&pem));
            match loaded {
                Ok(t) => {
                    tracing::info!(
                        ca_file = %path.display(),
                        cas = t.ca_count(),
                        "the web view trusts cloud.ca_file for the Power BI hosts"
                    );
                    Some(t)
                }
                Err(e) => {
                    // The HTTP client reports the same file as a config problem on screen.
                    tracing::error!(ca_file = %path.display(), error = %e, "cloud.ca_file not usable by the web view");
                    None
                }
            }
        });
        let judgements = Rc::new(RefCell::new(Judgements::new(
            trust,
            opts.allowed_hosts.clone(),
        )));
        let weak_view = view.downgrade();
        view.connect_resource_load_started(move |_, resource, request| {
            // Fields are only evaluated when tracing is on: this runs for every resource.
            tracing::trace!(
                uri = request.uri().as_deref().unwrap_or(""),
                "resource load started"
            );
            let judgements = judgements.clone();
            let weak_view = weak_view.clone();
            resource.connect_failed_with_tls_errors(move |resource, cert, errors| {
                let Some(view) = weak_view.upgrade() else {
                    return;
                };
                let uri = resource.uri().map(|u| u.to_string()).unwrap_or_default();
                refused(&view, &judgements, &uri, cert, errors);
            });
        });
    }

    /// The web view refused `cert` for a resource at `uri`: judge it, log it, act on it.
    fn refused(
        view: &webkit2gtk::WebView,
        judgements: &std::cell::RefCell<Judgements>,
        uri: &str,
        cert: &gio::TlsCertificate,
        errors: gio::TlsCertificateFlags,
    ) {
        use gio::prelude::TlsCertificateExt;
        let Some(host) = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return;
        };
        let chain = der_chain(cert);
        let now = rustls::pki_types::UnixTime::now();
        let verdict = judgements.borrow_mut().refused(&host, &chain, now);
        let names = || {
            let name = |n: Option<webkit2gtk::glib::GString>| n.map(|s| s.to_string());
            (
                name(cert.subject_name()).unwrap_or_default(),
                name(cert.issuer_name()).unwrap_or_default(),
            )
        };
        match verdict {
            Verdict::Known => {}
            Verdict::Refuse(refusal) => {
                let (subject, issuer) = names();
                tracing::warn!(
                    host,
                    ?errors,
                    subject,
                    issuer,
                    "the web view refused the certificate of {host}, and it stays refused: {refusal}"
                );
            }
            Verdict::Accept { again } => {
                let Some(ctx) = view.context() else { return };
                ctx.allow_tls_certificate_for_host(cert, &host);
                if again {
                    tracing::debug!(
                        host,
                        "certificate of {host} accepted again (a load raced the first acceptance)"
                    );
                } else {
                    let (subject, issuer) = names();
                    tracing::info!(
                        host,
                        ?errors,
                        subject,
                        issuer,
                        "certificate of {host} trusted for {host} only: it chains to cloud.ca_file; loading its frames again"
                    );
                }
                reload_frames_of(view, &host);
            }
        }
    }

    /// The presented certificate and the issuers the server sent with it, as DER.
    fn der_chain(cert: &gio::TlsCertificate) -> Vec<Vec<u8>> {
        use gio::prelude::TlsCertificateExt;
        let mut chain = Vec::new();
        let mut next = Some(cert.clone());
        // A loop in a forged chain must not hang the GUI thread.
        while let Some(c) = next.take()
            && chain.len() < 8
        {
            if let Some(der) = c.certificate() {
                chain.push(der.to_vec());
            }
            next = c.issuer();
        }
        chain
    }

    /// Load the page's frames from `host` again: a frame whose document failed gets no event
    /// the page could retry on, and the player would otherwise wait for its embed deadline.
    fn reload_frames_of(view: &webkit2gtk::WebView, host: &str) {
        let Ok(host) = serde_json::to_string(host) else {
            return;
        };
        let js = format!(
            "document.querySelectorAll('iframe').forEach(function (f) {{ \
             try {{ if (new URL(f.src).hostname === {host}) {{ f.src = f.src; }} }} catch (e) {{}} }});"
        );
        view.run_javascript(&js, None::<&gio::Cancellable>, |r| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "loading the embed frames again failed");
            }
        });
    }

    /// Tell the core when an embed document fails to load: a network or TLS error, or an HTTP
    /// error status. WebKit's `load-failed` covers the main frame only, and a failed iframe
    /// gives the page neither `error` nor `load`, so this is the only early sign of a blocked
    /// embed host.
    fn watch_embed_loads(
        view: &webkit2gtk::WebView,
        allowed_hosts: Vec<String>,
        events: UnboundedSender<ShellEvent>,
    ) {
        view.connect_resource_load_started(move |_, resource, request| {
            let Some(url) = request.uri().map(|u| u.to_string()) else {
                return;
            };
            if !super::is_embed_document(&url, &allowed_hosts) {
                return;
            }
            tracing::debug!(url, "embed document requested");
            let report = {
                let events = events.clone();
                move |detail: String| {
                    tracing::debug!(url, detail, "embed document failed");
                    let _ = events.send(ShellEvent::EmbedTrouble {
                        url: url.clone(),
                        detail,
                    });
                }
            };
            let on_failed = report.clone();
            resource.connect_failed(move |_, err| {
                // A frame we discarded mid-load is cancelled, not failed.
                if !err.matches(webkit2gtk::NetworkError::Cancelled) {
                    on_failed(format!("failed: {err}"));
                }
            });
            let on_tls = report.clone();
            resource.connect_failed_with_tls_errors(move |_, _, flags| {
                on_tls(format!("TLS errors: {flags:?}"));
            });
            resource.connect_finished(move |r| {
                let status = r.response().map_or(0, |resp| resp.status_code());
                if status >= 400 {
                    report(format!("HTTP {status}"));
                }
            });
        });
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::{ShellOptions, serve_asset};
    use wry::http::Request;

    /// Serve the page on `app://`, refuse downloads, set the proxy. (The web process sandbox
    /// is WebKitGTK's; other platforms keep their own defaults.)
    pub fn contain<'a>(
        builder: wry::WebViewBuilder<'a>,
        opts: &ShellOptions,
    ) -> anyhow::Result<wry::WebViewBuilder<'a>> {
        let web_dir = opts.web_dir.clone();
        let mut builder = builder
            .with_custom_protocol("app".into(), move |_id, req: Request<Vec<u8>>| {
                serve_asset(&web_dir, req.uri().path())
            })
            .with_download_started_handler(|url, _| {
                let url = crate::web_context::without_query(&url);
                tracing::warn!(url, "download refused");
                false
            });
        if let Some((host, port)) = opts
            .proxy
            .as_ref()
            .and_then(|p| p.authority.rsplit_once(':'))
        {
            builder = builder.with_proxy_config(wry::ProxyConfig::Http(wry::ProxyEndpoint {
                host: host.trim_matches(['[', ']']).to_owned(),
                port: port.to_owned(),
            }));
        }
        Ok(builder)
    }

    pub fn fresh_web_process(_: &wry::WebView) {}

    pub fn snapshot(_: &wry::WebView, reply: crate::screenshot::Reply) {
        let _ = reply.send(Err("screenshots need WebKitGTK (Linux)".to_owned()));
    }

    pub fn harden(
        _: &wry::WebView,
        _: &super::ShellOptions,
        _: tokio::sync::mpsc::UnboundedSender<super::ShellEvent>,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_settings_follow_the_startup_config() {
        let web = PathBuf::from("/srv/web");
        let o = ShellOptions::from_startup(None, web.clone(), Some((1280, 720)));
        assert_eq!(o.user_agent, DEFAULT_USER_AGENT);
        assert_eq!(o.allowed_hosts, powerbi_hosts());
        assert_eq!(
            (o.web_dir.as_path(), o.size),
            (web.as_path(), Some((1280, 720)))
        );
        assert_eq!((o.proxy, o.trust, o.ca_file), (None, None, None));

        let text = "[auth]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"0f0f0f0f-1234-5678-9abc-def012345678\"\nclient_secret = \"cs\"\nusername = \"svc@contoso.onmicrosoft.com\"\npassword = \"pw\"\n\n[cloud]\nauthority = \"https://login.microsoftonline.us\"\napi = \"https://api.powerbigov.us/\"\n\n[player]\nuser_agent = \"pbikiosk-test/1\"\n\n[display]\ngpu = \"off\"\n\n[[playlist]]\nworkspace = \"11111111-2222-3333-4444-555555555555\"\nreport = \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"\n";
        let cfg = crate::config::parse(
            text,
            Path::new("/etc/pbikiosk/pbikiosk.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        let o = ShellOptions::from_startup(Some(&cfg), web.clone(), None);
        assert_eq!(o.user_agent, "pbikiosk-test/1");
        // A national cloud's embed host is on the list by itself, not through cloud.api.
        assert_eq!(o.allowed_hosts, powerbi_hosts());
        assert!(navigation_allowed(
            "https://app.powerbigov.us/reportEmbed?reportId=1",
            &o.allowed_hosts
        ));
        // The configured API host is not added: it could be any address.
        let elsewhere = text.replace("https://api.powerbigov.us/", "https://api.example.net/");
        let cfg = crate::config::parse(
            &elsewhere,
            Path::new("/etc/pbikiosk/pbikiosk.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        let o = ShellOptions::from_startup(Some(&cfg), web.clone(), None);
        assert_eq!(o.allowed_hosts, powerbi_hosts());
        assert!(!navigation_allowed(
            "https://api.example.net/",
            &o.allowed_hosts
        ));
        assert!(!o.gpu);

        // cloud.ca_file reaches the web view as it is.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("corp-ca.pem");
        std::fs::write(&ca, "").unwrap();
        let text = text.replace(
            "[cloud]\n",
            &format!("[cloud]\nca_file = {:?}\n", ca.to_str().unwrap()),
        );
        let cfg = crate::config::parse(
            &text,
            Path::new("/etc/pbikiosk/pbikiosk.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        let o = ShellOptions::from_startup(Some(&cfg), web, None);
        assert_eq!(o.ca_file, Some(ca));
    }

    #[test]
    fn only_debug_builds_fall_back_to_the_source_tree() {
        let source = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web"));
        let installed = PathBuf::from("/usr/share/pbikiosk/web");
        assert_eq!(default_web_dirs(false), vec![installed.clone()]);
        assert_eq!(default_web_dirs(true), vec![installed, source]);
    }

    #[test]
    fn shell_command_debug_hides_the_script() {
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOi.secret-embed-token";
        let cmd = ShellCommand::Script(format!("window.pbk({{\"token\":\"{token}\"}})"));
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("secret-embed-token"), "{shown}");
        assert!(
            shown.starts_with("Script(") && shown.contains("bytes"),
            "{shown}"
        );
        assert_eq!(format!("{:?}", ShellCommand::Exit(3)), "Exit(3)");
        assert_eq!(
            format!("{:?}", ShellCommand::Reload { dark: false }),
            "Reload"
        );
        assert_eq!(
            format!("{:?}", ShellCommand::Reload { dark: true }),
            "Reload (dark)"
        );
        // The dark page is the same page: the navigation allow-list and the asset server
        // take it like the lit one.
        assert!(navigation_allowed(page_url(true), &powerbi_hosts()));
        assert_eq!(
            url::Url::parse(page_url(true)).unwrap().path(),
            url::Url::parse(page_url(false)).unwrap().path()
        );
    }

    #[test]
    fn web_dir_is_the_first_with_the_page_and_must_be_built() {
        let root = tempfile::tempdir().unwrap();
        let empty = root.path().join("empty");
        let built = root.path().join("built");
        let unbuilt = root.path().join("unbuilt");
        for d in [&empty, &built, &unbuilt] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(built.join("vendor")).unwrap();
        std::fs::write(built.join("index.html"), "").unwrap();
        std::fs::write(built.join("vendor/powerbi.min.js"), "").unwrap();
        std::fs::write(unbuilt.join("index.html"), "").unwrap();

        assert_eq!(
            pick_web_dir(vec![empty.clone(), built.clone(), unbuilt.clone()]).unwrap(),
            built
        );
        let e = pick_web_dir(vec![empty.clone(), unbuilt.clone(), built.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}/vendor/powerbi.min.js is missing: build the page once with `scripts/build-web.sh` (npm ci + web/build.mjs)",
                unbuilt.display()
            )
        );
        let e = pick_web_dir(vec![empty.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the player page (index.html) is not in any of {:?}",
                [empty]
            )
        );
    }

    #[test]
    fn allow_list() {
        let mut hosts = powerbi_hosts();
        hosts.push("login.microsoftonline.com".into());
        for ok in [
            "app://localhost/index.html",
            "about:blank",
            "https://app.powerbi.com/reportEmbed?reportId=1&uid=x",
            "https://wabi-west-europe-redirect.analysis.windows.net/x",
            "https://app.powerbigov.us/reportEmbed",
            "https://login.microsoftonline.com/common",
        ] {
            assert!(navigation_allowed(ok, &hosts), "{ok}");
        }
        for bad in [
            "http://app.powerbi.com/reportEmbed",
            "https://evilpowerbi.com/",
            "https://powerbi.com.evil.net/",
            "https://example.com/",
            "app://evil/index.html",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "not a url",
        ] {
            assert!(!navigation_allowed(bad, &hosts), "{bad}");
        }
    }

    #[test]
    fn only_embed_documents_of_allowed_hosts_are_watched() {
        let hosts = powerbi_hosts();
        for yes in [
            "https://app.powerbi.com/reportEmbed?reportId=1",
            "https://app.powerbigov.us/dashboardEmbed?dashboardId=2",
        ] {
            assert!(is_embed_document(yes, &hosts), "{yes}");
        }
        for no in [
            "https://app.powerbi.com/13.0.1/scripts/reportembed.bundle.js",
            "https://wabi-west-europe-redirect.analysis.windows.net/explore/querydata",
            "https://example.com/reportEmbed",
            "app://localhost/index.html",
        ] {
            assert!(!is_embed_document(no, &hosts), "{no}");
        }
    }

    #[test]
    fn assets_are_served_from_the_web_dir_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::create_dir(dir.path().join("vendor")).unwrap();
        std::fs::write(dir.path().join("vendor/powerbi.min.js"), "x").unwrap();
        let r = serve_asset(dir.path(), "/");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body().as_ref(), b"<p>hi</p>");
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let r = serve_asset(dir.path(), "/vendor/powerbi.min.js");
        assert_eq!(r.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(
            serve_asset(dir.path(), "/../secret").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            serve_asset(dir.path(), "/nope.js").status(),
            StatusCode::NOT_FOUND
        );
    }
}
