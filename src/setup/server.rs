//! The setup page's LAN listener: HTTPS with the device certificate on one port. A browser
//! that speaks plain HTTP to it gets a redirect to the HTTPS address and nothing else: the
//! request body is never read, so a secret sent in clear by mistake is not taken in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::device::{PhoneSignIn, View};
use super::pin::{Gate, OsRandom, SESSION_LIFETIME, Verdict};
use super::save::{self, Pick, Values};
use super::{Announce, page, tls};

const COOKIE_NAME: &str = "pbikiosk_setup";
const CSRF_HEADER: &str = "x-setup-csrf";
/// Connections at once: a phone opens a handful.
const MAX_CONNECTIONS: usize = 16;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A live check or the report list can take up to the check's budget (30 s).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Form bodies are a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// What the listener needs from the rest of the player.
pub(crate) struct SetupEnv {
    pub(crate) listen: SocketAddr,
    pub(crate) state_dir: PathBuf,
    /// The installer's configuration file: the template of what the phone saves.
    pub(crate) base_config: PathBuf,
    /// Where the screen and `/status` learn the address and PIN.
    pub(crate) board: watch::Sender<Option<Announce>>,
    /// The host's name and addresses, for the certificate and the address on screen.
    pub(crate) host: String,
    pub(crate) ips: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the setup page cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// An open setup listener; dropping it (or [`Opened::close`]) closes it.
pub(crate) struct Opened {
    stop: watch::Sender<bool>,
}

impl Opened {
    pub(crate) fn close(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether it closed by itself (after a save).
    pub(crate) fn is_closed(&self) -> bool {
        *self.stop.borrow()
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.close();
    }
}

/// What one phone did so far: the values the live check accepted.
struct Flow {
    values: Values,
}

/// A device-code sign-in one phone started, with the values it was started for (the check,
/// the report list and the save use these, so they match the token cache).
struct DeviceFlow {
    values: Values,
    sign_in: PhoneSignIn,
}

struct Shared {
    gate: Mutex<Gate<OsRandom>>,
    flows: Mutex<HashMap<String, Flow>>,
    devices: Mutex<HashMap<String, DeviceFlow>>,
    /// When a phone last asked for a code.
    last_start: Mutex<Option<Instant>>,
    url: String,
    fingerprint: String,
    board: watch::Sender<Option<Announce>>,
    stop: watch::Sender<bool>,
    state_dir: PathBuf,
    base_config: PathBuf,
}

impl Shared {
    fn announce(&self) {
        let pin = self
            .gate
            .lock()
            .map(|g| g.pin().to_owned())
            .unwrap_or_default();
        self.board.send_replace(Some(Announce {
            url: self.url.clone(),
            pin,
            fingerprint: self.fingerprint.clone(),
        }));
    }
}

/// The address the screen shows: the listen address when it names one, else the device's
/// first IPv4 address (what a phone on the same Wi-Fi reaches), else its name.
pub(crate) fn shown_url(listen: SocketAddr, port: u16, ips: &[String], host: &str) -> String {
    let ip = if listen.ip().is_unspecified() {
        ips.iter()
            .find(|ip| !ip.contains(':'))
            .or(ips.first())
            .cloned()
            .unwrap_or_else(|| host.to_owned())
    } else {
        listen.ip().to_string()
    };
    if ip.contains(':') {
        format!("https://[{ip}]:{port}/")
    } else {
        format!("https://{ip}:{port}/")
    }
}

/// Open the listener and announce its address and a fresh PIN.
pub(crate) async fn open(env: SetupEnv) -> Result<Opened, OpenError> {
    let mut names = vec![env.host.clone(), format!("{}.local", env.host)];
    names.extend(env.ips.iter().cloned());
    if !env.listen.ip().is_unspecified() {
        // The address on screen is then this one: the certificate names it too.
        names.push(env.listen.ip().to_string());
    }
    names.dedup();
    let cert = tls::load_or_make(&env.state_dir, &names)?;
    // Sign-ins a stopped player left behind (a crash, a power cut) belong to no one now.
    super::device::remove_leftovers(&save::config_path(&env.state_dir));
    let listener = TcpListener::bind(env.listen)
        .await
        .map_err(|source| OpenError::Listen {
            addr: env.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| OpenError::Listen {
        addr: env.listen,
        source,
    })?;
    let (stop, stop_rx) = watch::channel(false);
    let url = shown_url(env.listen, addr.port(), &env.ips, &env.host);
    let shared = Arc::new(Shared {
        gate: Mutex::new(Gate::new(OsRandom)),
        flows: Mutex::new(HashMap::new()),
        devices: Mutex::new(HashMap::new()),
        last_start: Mutex::new(None),
        url,
        fingerprint: cert.short_fingerprint(),
        board: env.board,
        stop: stop.clone(),
        state_dir: env.state_dir,
        base_config: env.base_config,
    });
    shared.announce();
    tracing::info!(url = %shared.url, fingerprint = %cert.fingerprint(), "setup page open");
    let app = Router::new()
        .route("/", get(page::index))
        .route("/setup.js", get(page::script))
        .route("/setup.css", get(page::style))
        .route("/api/pin", post(pin))
        .route("/api/check", post(check))
        .route("/api/reports", post(reports))
        .route("/api/save", post(save_config))
        .route("/api/device/start", post(device_start))
        .route("/api/device/status", post(device_status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::clone(&shared));
    tokio::spawn(accept_loop(
        listener,
        app,
        cert.acceptor,
        shared.url.clone(),
        stop_rx,
        Arc::clone(&shared),
    ));
    Ok(Opened { stop })
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    url: String,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "setup page cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let (app, acceptor, url) = (app.clone(), acceptor.clone(), url.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let serve = connection(stream, app, acceptor, url);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, serve) => {}
                _ = stopped(&mut stop) => {}
            }
        });
    }
    // Closed: the listener is dropped here (new connections are refused), the PIN is gone
    // from the screen and `/status`, and no session outlives it.
    shared.board.send_replace(None);
    if let Ok(mut f) = shared.flows.lock() {
        f.clear();
    }
    // Stops their polling and removes the token caches no save took.
    let devices = shared
        .devices
        .lock()
        .map(|mut d| std::mem::take(&mut *d))
        .unwrap_or_default();
    drop(devices);
    tracing::info!("setup page closed");
}

/// Resolves once the listener is told to close.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    url: String,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    // 0x16: a TLS handshake record. Anything else is taken as plain HTTP.
    if first[0] != 0x16 {
        plain(stream, &url).await;
        return;
    }
    let Ok(Ok(tls)) = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let service = TowerToHyperService::new(app);
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// Plain HTTP: read the request line and headers only (bounded), answer with the HTTPS
/// address, close. A GET is redirected; anything else (a form post with a password) is
/// refused, so nothing sent in clear is ever acted on.
async fn plain(mut stream: TcpStream, url: &str) {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    let head = tokio::time::timeout(HEADER_TIMEOUT, async {
        while n < buf.len() {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].contains(&b'\n') {
                break;
            }
        }
    })
    .await;
    if head.is_err() {
        return;
    }
    let get = buf[..n].starts_with(b"GET ") || buf[..n].starts_with(b"HEAD ");
    let reply = if get {
        format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    } else {
        let body = format!("This page only accepts HTTPS. Open {url}\n");
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: &str, fix: &str) -> Response {
    no_store((status, Json(json!({ "error": message, "fix": fix }))).into_response())
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_owned())
}

fn session_ended() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Your setup session has ended.",
        "Enter the PIN shown on the screen again.",
    )
}

/// The caller's session, if its cookie is live and its CSRF header matches it.
fn authorized(s: &Shared, headers: &HeaderMap) -> Option<String> {
    let session = session_of(headers)?;
    let csrf = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = s
        .gate
        .lock()
        .map(|g| g.authorized(&session, csrf, Instant::now()))
        .unwrap_or(false);
    ok.then_some(session)
}

#[derive(Deserialize)]
struct PinForm {
    pin: String,
}

async fn pin(State(s): State<Arc<Shared>>, Json(form): Json<PinForm>) -> Response {
    let verdict = match s.gate.lock() {
        Ok(mut g) => g.attempt(&form.pin, Instant::now()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.", ""),
    };
    match verdict {
        Verdict::Accepted { session, csrf } => {
            tracing::info!("setup page: PIN accepted");
            let cookie = format!(
                "{COOKIE_NAME}={session}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
                SESSION_LIFETIME.as_secs()
            );
            let mut r = Json(json!({ "csrf": csrf })).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            no_store(r)
        }
        Verdict::Wrong { left } => {
            tracing::warn!(left, "setup page: wrong PIN");
            no_store(
                (
                    StatusCode::FORBIDDEN,
                    Json(json!({
                        "error": "That is not the PIN on the screen.",
                        "fix": format!("Check the 6 digits on the screen. {left} more wrong PINs replace it."),
                        "left": left,
                    })),
                )
                    .into_response(),
            )
        }
        Verdict::Replaced => {
            tracing::warn!("setup page: too many wrong PINs; the PIN was replaced");
            s.announce();
            error(
                StatusCode::FORBIDDEN,
                "Too many wrong PINs: the screen now shows a new PIN.",
                "Enter the new PIN from the screen.",
            )
        }
        Verdict::TooSoon { wait } => {
            let secs = wait.as_secs().max(1);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too soon after a wrong PIN.",
                &format!("Wait {secs} s and try again."),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
    }
}

fn problem_line(message: String, fix: String) -> serde_json::Value {
    json!({ "ok": false, "checks": [ { "name": "configuration", "ok": false, "message": message, "fix": fix } ] })
}

async fn check(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(values): Json<Values>,
) -> Response {
    let Some(session) = authorized(&s, &headers) else {
        return session_ended();
    };
    let (values, signed_in) = if values.method == "device_code" {
        match device_signed_in(&s, &session) {
            Some(v) => v,
            None => {
                return no_store(
                    Json(problem_line(
                        "No one has signed in with the code yet.".into(),
                        "Get a code, sign in with it on Microsoft's page, then check.".into(),
                    ))
                    .into_response(),
                );
            }
        }
    } else {
        (values, None)
    };
    let cfg = match candidate(&s, &values, signed_in.as_deref()) {
        Ok(c) => c,
        Err(e) => return no_store(Json(problem_line(e.to_string(), e.fix())).into_response()),
    };
    let mut report = crate::check::run(&cfg).await;
    // The reports are picked in the next step: an empty playlist is expected here.
    report.checks.retain(|l| l.name != "playlist");
    report.ok = report.checks.iter().all(|l| l.ok);
    report.problems = report.checks.iter().filter_map(|l| l.problem).collect();
    report.problems.dedup();
    tracing::info!(ok = report.ok, "setup page: live check");
    if report.ok
        && let Ok(mut f) = s.flows.lock()
    {
        f.insert(session, Flow { values });
    }
    no_store(Json(report).into_response())
}

fn values_of(s: &Shared, session: &str) -> Option<Values> {
    s.flows.lock().ok()?.get(session).map(|f| f.values.clone())
}

/// The values and token cache of `session`'s device-code sign-in, once it is complete.
fn device_signed_in(s: &Shared, session: &str) -> Option<(Values, Option<PathBuf>)> {
    let devices = s.devices.lock().ok()?;
    let d = devices.get(session)?;
    let cache = d.sign_in.signed_in_cache()?.to_path_buf();
    Some((d.values.clone(), Some(cache)))
}

/// The configuration the phone's values make; with a device-code sign-in, one that reads the
/// sign-in's own token cache (the saved one names where the save moves it).
fn candidate(
    s: &Shared,
    values: &Values,
    signed_in: Option<&Path>,
) -> Result<crate::config::Config, crate::config::ConfigError> {
    let mut cfg = save::candidate(&s.base_config, &s.state_dir, values, &[])?;
    if let Some(cache) = signed_in {
        cfg.auth.token_cache = Some(cache.to_path_buf());
    }
    Ok(cfg)
}

/// The values the live check accepted for `session`, with the token cache of its device-code
/// sign-in when they are for one. A sign-in started again since the check (perhaps for another
/// tenant or app) must be checked again, so the saved file and the cache always belong together.
fn checked(s: &Shared, session: &str) -> Option<(Values, Option<PathBuf>)> {
    let values = values_of(s, session)?;
    if values.method != "device_code" {
        return Some((values, None));
    }
    let devices = s.devices.lock().ok()?;
    let d = devices.get(session)?;
    let same = d.values.tenant.trim() == values.tenant.trim()
        && d.values.client_id.trim() == values.client_id.trim();
    let cache = d.sign_in.signed_in_cache()?.to_path_buf();
    same.then_some((values, Some(cache)))
}

/// A device-code sign-in's cache in the setup folder.
fn new_cache_path(state_dir: &Path) -> Result<PathBuf, save::SaveError> {
    Ok(super::device::new_cache_path(&save::setup_dir(state_dir)?))
}

/// How long the first answer waits for Microsoft's code (the sign-in's own request is bounded
/// by the network's timeouts; the phone then polls the status).
const START_WAIT: Duration = Duration::from_secs(20);
/// New codes at most this often, from all phones together: each is a request to Microsoft,
/// and a button pressed again and again must not become a stream of them.
const START_GAP: Duration = Duration::from_secs(3);

/// Whether a new code may be asked for at `now`, given the last time one was (pure).
fn start_wait(last: Option<Instant>, now: Instant) -> Option<Duration> {
    let next = last? + START_GAP;
    (now < next).then(|| next - now)
}

async fn device_start(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(values): Json<Values>,
) -> Response {
    let Some(session) = authorized(&s, &headers) else {
        return session_ended();
    };
    if values.method != "device_code" {
        return error(
            StatusCode::BAD_REQUEST,
            "A code is only for the sign-in with a code.",
            "Choose \"Sign in with a code\".",
        );
    }
    let cfg = match save::candidate(&s.base_config, &s.state_dir, &values, &[]) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), &e.fix()),
    };
    let wait = s.last_start.lock().ok().and_then(|mut last| {
        let now = Instant::now();
        let wait = start_wait(*last, now);
        if wait.is_none() {
            *last = Some(now);
        }
        wait
    });
    if let Some(wait) = wait {
        let secs = wait.as_secs().max(1);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "A code was asked for a moment ago.",
            &format!("Wait {secs} s and try again."),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let cache = match new_cache_path(&s.state_dir) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), &e.fix()),
    };
    let mut sign_in = match PhoneSignIn::start(&cfg, cache) {
        Ok(d) => d,
        Err(p) => return error(StatusCode::BAD_GATEWAY, &p.cause, &p.fix),
    };
    tracing::info!("setup page: device-code sign-in started");
    let view = tokio::time::timeout(START_WAIT, sign_in.started())
        .await
        .unwrap_or(View::Starting);
    if *s.stop.borrow() {
        // The page closed while Microsoft answered: the sign-in goes with it.
        return session_ended();
    }
    if let Ok(mut d) = s.devices.lock() {
        // One sign-in per phone: a new one replaces (and stops) the last. Those of ended
        // sessions go too.
        let now = Instant::now();
        if let Ok(g) = s.gate.lock() {
            d.retain(|k, _| g.is_live(k, now));
        }
        d.insert(session, DeviceFlow { values, sign_in });
    }
    no_store(Json(view).into_response())
}

async fn device_status(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(session) = authorized(&s, &headers) else {
        return session_ended();
    };
    let view = s
        .devices
        .lock()
        .ok()
        .and_then(|d| d.get(&session).map(|f| f.sign_in.view()));
    match view {
        Some(v) => no_store(Json(v).into_response()),
        None => error(
            StatusCode::CONFLICT,
            "No sign-in was started from this phone.",
            "Press \"Get a code\".",
        ),
    }
}

async fn reports(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(session) = authorized(&s, &headers) else {
        return session_ended();
    };
    let Some((values, signed_in)) = checked(&s, &session) else {
        return error(
            StatusCode::CONFLICT,
            "Check the sign-in first.",
            "Go back and run the check.",
        );
    };
    let cfg = match candidate(&s, &values, signed_in.as_deref()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), &e.fix()),
    };
    match crate::reports::collect(&cfg).await {
        Ok(catalog) => no_store(Json(catalog).into_response()),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            &e.failure.problem.cause,
            &e.failure.problem.fix,
        ),
    }
}

#[derive(Deserialize)]
struct SaveForm {
    items: Vec<Pick>,
}

async fn save_config(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(form): Json<SaveForm>,
) -> Response {
    let Some(session) = authorized(&s, &headers) else {
        return session_ended();
    };
    let Some((values, signed_in)) = checked(&s, &session) else {
        return error(
            StatusCode::CONFLICT,
            "Check the sign-in first.",
            "Go back and run the check.",
        );
    };
    if form.items.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Pick at least one report or dashboard.",
            "Tick the reports the screen should show.",
        );
    }
    let (base, state) = (s.base_config.clone(), s.state_dir.clone());
    let items = form.items;
    let saved = tokio::task::spawn_blocking(move || {
        save::save(&base, &state, &values, &items, signed_in.as_deref())
    })
    .await;
    match saved {
        Ok(Ok(path)) => {
            tracing::info!(path = %path.display(), "setup page: configuration saved; closing the setup page");
            if let Ok(mut g) = s.gate.lock() {
                g.end(&session);
            }
            // The answer goes out first, then the listener closes.
            let stop = s.stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = stop.send(true);
            });
            no_store(
                Json(json!({ "ok": true, "path": path.display().to_string() })).into_response(),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "setup page: the configuration was not saved");
            error(StatusCode::BAD_REQUEST, &e.to_string(), &e.fix())
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::builtin_ids;
    use crate::sim::{Scenario, Simulator};

    /// A client that trusts exactly the device certificate, nothing else.
    fn phone(state: &std::path::Path) -> reqwest::Client {
        let pem = std::fs::read(state.join("setup-tls").join("cert.pem")).unwrap();
        let cert = reqwest::Certificate::from_pem(&pem).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn value_of(snippet: &str, key: &str) -> String {
        snippet
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    }

    async fn open_here(
        state: &std::path::Path,
        base: PathBuf,
    ) -> (Opened, watch::Receiver<Option<Announce>>, String) {
        let (board, rx) = watch::channel(None);
        let opened = open(SetupEnv {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: state.to_path_buf(),
            base_config: base,
            board,
            host: "kiosk".into(),
            ips: vec!["127.0.0.1".into()],
        })
        .await
        .unwrap();
        let url = rx.borrow().as_ref().unwrap().url.clone();
        (opened, rx, url)
    }

    /// The first two reports of a `/api/reports` catalog, as the phone picks them.
    fn first_two_reports(catalog: &serde_json::Value) -> Vec<serde_json::Value> {
        let picks: Vec<serde_json::Value> =
            catalog["workspaces"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|ws| {
                    ws["reports"].as_array().unwrap().iter().map(
                        move |r| json!({"workspace": ws["id"], "report": r["id"], "seconds": 20}),
                    )
                })
                .take(2)
                .collect();
        assert_eq!(picks.len(), 2, "{catalog}");
        picks
    }

    async fn post(
        c: &reqwest::Client,
        url: &str,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut r = c.post(format!("{url}{}", path.trim_start_matches('/')));
        if let Some(k) = cookie {
            r = r.header("cookie", k);
        }
        if let Some(t) = csrf {
            r = r.header(CSRF_HEADER, t);
        }
        let resp = r.json(&body).send().await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or_default())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn wrong_pins_wait_then_replace_the_pin_and_sessions_need_their_csrf_token() {
        let dir = tempfile::tempdir().unwrap();
        let (opened, board, url) = open_here(dir.path(), dir.path().join("none.toml")).await;
        let phone = phone(dir.path());
        let first = board.borrow().as_ref().unwrap().pin.clone();
        let wrong = if first == "000000" {
            "111111"
        } else {
            "000000"
        };
        for left in (1..super::super::pin::MAX_WRONG).rev() {
            let (code, _, body) =
                post(&phone, &url, "/api/pin", None, None, json!({"pin": wrong})).await;
            assert_eq!(
                (code, body["left"].as_u64()),
                (403, Some(u64::from(left))),
                "{body}"
            );
            let (code, h, _) =
                post(&phone, &url, "/api/pin", None, None, json!({"pin": first})).await;
            assert_eq!(
                code, 429,
                "the right PIN is not even looked at during the wait"
            );
            assert!(h.get("retry-after").is_some());
            tokio::time::sleep(super::super::pin::WRONG_PIN_WAIT).await;
        }
        let (code, _, body) =
            post(&phone, &url, "/api/pin", None, None, json!({"pin": wrong})).await;
        assert_eq!(code, 403);
        assert!(
            body["error"].as_str().unwrap().contains("new PIN"),
            "{body}"
        );
        let second = board.borrow().as_ref().unwrap().pin.clone();
        assert_eq!(second.len(), 6);
        tokio::time::sleep(super::super::pin::WRONG_PIN_WAIT).await;
        if second != first {
            let (code, _, _) =
                post(&phone, &url, "/api/pin", None, None, json!({"pin": first})).await;
            assert_eq!(code, 403, "the replaced PIN no longer works");
            tokio::time::sleep(super::super::pin::WRONG_PIN_WAIT).await;
        }
        let (code, h, body) =
            post(&phone, &url, "/api/pin", None, None, json!({"pin": second})).await;
        assert_eq!(code, 200, "{body}");
        let cookie = h.get("set-cookie").unwrap().to_str().unwrap().to_owned();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=900"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        let session = cookie.split(';').next().unwrap().to_owned();
        let csrf = body["csrf"].as_str().unwrap().to_owned();
        let values =
            json!({"method": "password", "tenant": "contoso.onmicrosoft.com", "client_id": "y"});
        let (code, _, _) = post(
            &phone,
            &url,
            "/api/check",
            Some(&session),
            None,
            values.clone(),
        )
        .await;
        assert_eq!(code, 401, "no CSRF token");
        let (code, _, _) = post(
            &phone,
            &url,
            "/api/check",
            None,
            Some(&csrf),
            values.clone(),
        )
        .await;
        assert_eq!(code, 401, "no session cookie");
        let (code, _, body) = post(
            &phone,
            &url,
            "/api/check",
            Some(&session),
            Some(&csrf),
            values,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(body["ok"], false);
        assert!(
            body["checks"][0]["message"]
                .as_str()
                .unwrap()
                .contains("auth.client_id"),
            "{body}"
        );
        drop(opened);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn plain_http_is_redirected_or_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let (_opened, _board, url) = open_here(dir.path(), dir.path().join("none.toml")).await;
        let plain_url = url.replace("https://", "http://");
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = c.get(&plain_url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 301);
        assert_eq!(r.headers()["location"], url.as_str());
        let r = c
            .post(format!("{plain_url}api/check"))
            .json(&json!({"method": "password", "password": "pw-Sent-In-Clear"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert!(r.text().await.unwrap().contains("only accepts HTTPS"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_phone_checks_lists_saves_and_the_listener_closes() {
        let sim = Simulator::start(Scenario::builtin(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let user = format!("kiosk@{}", builtin_ids::TENANT_DOMAIN);
        let snippet = sim.config_snippet(&user);
        let dir = tempfile::tempdir().unwrap();
        // The installer's file: the simulator as the cloud, nothing else.
        let cloud: String = snippet[snippet.find("[cloud]").unwrap()..]
            .split("[[playlist]]")
            .next()
            .unwrap()
            .to_owned();
        let base = dir.path().join("etc.toml");
        std::fs::write(&base, &cloud).unwrap();
        let state = dir.path().join("state");
        let (opened, board, url) = open_here(&state, base).await;
        let phone = phone(&state);
        let pin = board.borrow().as_ref().unwrap().pin.clone();
        let (_, h, body) = post(&phone, &url, "/api/pin", None, None, json!({"pin": pin})).await;
        let session = h["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = body["csrf"].as_str().unwrap().to_owned();
        let password = value_of(&snippet, "password");
        let values = json!({
            "method": "password",
            "tenant": value_of(&snippet, "tenant"),
            "client_id": value_of(&snippet, "client_id"),
            "username": user,
            "password": password,
            "client_secret": value_of(&snippet, "client_secret"),
        });
        let call = |path: &'static str, body: serde_json::Value| {
            let (phone, url, session, csrf) =
                (phone.clone(), url.clone(), session.clone(), csrf.clone());
            async move { post(&phone, &url, path, Some(&session), Some(&csrf), body).await }
        };
        let (code, _, report) = call("/api/check", values).await;
        assert_eq!(code, 200);
        assert_eq!(report["ok"], true, "{report}");
        assert!(!report.to_string().contains(&password));
        let (code, _, catalog) = call("/api/reports", json!({})).await;
        assert_eq!(code, 200, "{catalog}");
        let picks = first_two_reports(&catalog);
        let (code, _, saved) = call("/api/save", json!({"items": picks})).await;
        assert_eq!(code, 200, "{saved}");
        let path = save::config_path(&state);
        let cfg = crate::config::load(&path, &crate::config::SecretSources::default()).unwrap();
        assert_eq!(cfg.playlist.len(), 2);
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&password));
        // Closed: the PIN is gone and new connections are refused.
        let t = Instant::now();
        while board.borrow().is_some() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(board.borrow().is_none());
        assert!(opened.is_closed());
        let addr = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        assert!(TcpStream::connect(&addr).await.is_err(), "still listening");
    }

    /// A session on `url`: its cookie and CSRF token.
    async fn session_on(
        phone: &reqwest::Client,
        url: &str,
        board: &watch::Receiver<Option<Announce>>,
    ) -> (String, String) {
        let pin = board.borrow().as_ref().unwrap().pin.clone();
        let (code, h, body) = post(phone, url, "/api/pin", None, None, json!({"pin": pin})).await;
        assert_eq!(code, 200, "{body}");
        let session = h["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        (session, body["csrf"].as_str().unwrap().to_owned())
    }

    /// The simulator as the cloud, its device codes polled every second and approved by no one
    /// but the test; the installer's file and the state directory.
    async fn code_sim(
        dir: &std::path::Path,
        expires: u64,
    ) -> (crate::sim::SimHandle, String, PathBuf, PathBuf) {
        let mut scenario = Scenario::builtin();
        scenario.device_code.interval_seconds = 1;
        scenario.device_code.expires_in_seconds = expires;
        scenario.device_code.auto_approve_seconds = None;
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let snippet = sim.config_snippet(&format!("kiosk@{}", builtin_ids::TENANT_DOMAIN));
        let cloud: String = snippet[snippet.find("[cloud]").unwrap()..]
            .split("[[playlist]]")
            .next()
            .unwrap()
            .to_owned();
        let base = dir.join("etc.toml");
        std::fs::write(&base, &cloud).unwrap();
        (sim, snippet, base, dir.join("state"))
    }

    fn sign_in_files(state: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(state.join("setup"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("sign-in-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn until_final(
        phone: &reqwest::Client,
        url: &str,
        session: &str,
        csrf: &str,
    ) -> serde_json::Value {
        for _ in 0..60 {
            let (code, _, v) = post(
                phone,
                url,
                "/api/device/status",
                Some(session),
                Some(csrf),
                json!({}),
            )
            .await;
            assert_eq!(code, 200, "{v}");
            if v["state"] != "waiting" && v["state"] != "starting" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the sign-in never ended");
    }

    /// The code path on the phone: the new routes want the session and its CSRF token; the
    /// phone gets the code and the address, never a token; after the approval the check and
    /// the report list sign in with the sign-in's cache, and the save moves it where the
    /// service reads it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_phone_signs_in_with_a_code_checks_lists_and_saves() {
        use crate::sim::state::Control;
        let dir = tempfile::tempdir().unwrap();
        let (sim, snippet, base, state) = code_sim(dir.path(), 900).await;
        let (opened, board, url) = open_here(&state, base).await;
        let phone = phone(&state);
        let (session, csrf) = session_on(&phone, &url, &board).await;
        let values = json!({
            "method": "device_code",
            "tenant": value_of(&snippet, "tenant"),
            "client_id": value_of(&snippet, "client_id"),
        });
        for (cookie, token) in [(Some(session.as_str()), None), (None, Some(csrf.as_str()))] {
            for path in ["/api/device/start", "/api/device/status"] {
                let (code, _, _) = post(&phone, &url, path, cookie, token, values.clone()).await;
                assert_eq!(code, 401, "{path} without its session or CSRF token");
            }
        }
        assert_eq!(sim.stats().devicecode_requests, 0);
        let call = |path: &'static str, body: serde_json::Value| {
            let (phone, url, session, csrf) =
                (phone.clone(), url.clone(), session.clone(), csrf.clone());
            async move { post(&phone, &url, path, Some(&session), Some(&csrf), body).await }
        };
        let (code, _, _) = call("/api/device/status", json!({})).await;
        assert_eq!(code, 409, "no sign-in started yet");
        let (code, _, body) = call(
            "/api/device/start",
            json!({"method": "password", "tenant": "x", "client_id": "y"}),
        )
        .await;
        assert_eq!(code, 400, "{body}");

        let (code, _, view) = call("/api/device/start", values.clone()).await;
        assert_eq!(code, 200, "{view}");
        assert_eq!(view["state"], "waiting", "{view}");
        assert_eq!(
            view["verification_uri"],
            "https://microsoft.com/devicelogin"
        );
        let user_code = view["user_code"].as_str().unwrap().to_owned();
        assert!(view["expires_in_s"].as_u64().unwrap() > 800, "{view}");
        // Before the sign-in: the check says so, nothing can be saved.
        let (code, _, report) = call("/api/check", values.clone()).await;
        assert_eq!(code, 200);
        assert_eq!(report["ok"], false, "{report}");
        assert!(report.to_string().contains("code"), "{report}");
        let (code, _, _) = call(
            "/api/save",
            json!({"items": [{"workspace": "w", "report": "r", "seconds": 20}]}),
        )
        .await;
        assert_eq!(code, 409);

        sim.control(Control::ApproveDeviceCode {
            user_code: Some(user_code),
            username: format!("kiosk@{}", builtin_ids::TENANT_DOMAIN),
        });
        let done = until_final(&phone, &url, &session, &csrf).await;
        assert_eq!(done["state"], "signed_in", "{done}");
        let pending = sign_in_files(&state);
        assert_eq!(pending.len(), 1, "{pending:?}");
        let (code, _, report) = call("/api/check", values.clone()).await;
        assert_eq!(code, 200);
        assert_eq!(report["ok"], true, "{report}");
        let (code, _, catalog) = call("/api/reports", json!({})).await;
        assert_eq!(code, 200, "{catalog}");
        let picks = first_two_reports(&catalog);
        let (code, _, saved) = call("/api/save", json!({"items": picks})).await;
        assert_eq!(code, 200, "{saved}");

        let path = save::config_path(&state);
        let cfg = crate::config::load(&path, &crate::config::SecretSources::default()).unwrap();
        assert_eq!(cfg.auth.method, crate::config::AuthMethod::DeviceCode);
        assert_eq!(cfg.playlist.len(), 2);
        let cache = save::token_cache_path(&state);
        assert_eq!(cfg.auth.token_cache.as_deref(), Some(cache.as_path()));
        let rt = crate::auth::token_cache::TokenCache::new(&cache)
            .load(&cfg.auth.tenant, &cfg.auth.client_id)
            .unwrap()
            .expect("the sign-in is where the service reads it");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(rt.expose()));
        for answer in [&view, &done, &report, &catalog, &saved] {
            assert!(!answer.to_string().contains(rt.expose()), "{answer}");
        }
        assert!(sign_in_files(&state).is_empty());
        let stats = sim.stats();
        assert_eq!(stats.devicecode_requests, 1);
        let t = Instant::now();
        while !opened.is_closed() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(opened.is_closed());
    }

    /// A declined sign-in and an expired code end the polling; the phone asks for a new code,
    /// which replaces the last sign-in (and its file); closing the page removes what is left.
    #[tokio::test(flavor = "multi_thread")]
    async fn declined_and_expired_codes_stop_and_a_new_one_replaces_them() {
        use crate::sim::state::Control;
        let dir = tempfile::tempdir().unwrap();
        // Five seconds: the shortest a code may live.
        let (sim, snippet, base, state) = code_sim(dir.path(), 5).await;
        let (opened, board, url) = open_here(&state, base).await;
        let phone = phone(&state);
        let (session, csrf) = session_on(&phone, &url, &board).await;
        let values = json!({
            "method": "device_code",
            "tenant": value_of(&snippet, "tenant"),
            "client_id": value_of(&snippet, "client_id"),
        });
        let (code, _, view) = post(
            &phone,
            &url,
            "/api/device/start",
            Some(&session),
            Some(&csrf),
            values.clone(),
        )
        .await;
        assert_eq!((code, &view["state"]), (200, &json!("waiting")), "{view}");
        let (code, h, _) = post(
            &phone,
            &url,
            "/api/device/start",
            Some(&session),
            Some(&csrf),
            values.clone(),
        )
        .await;
        assert_eq!(code, 429, "a new code right after the last");
        assert!(h.get("retry-after").is_some());
        assert_eq!(sim.stats().devicecode_requests, 1);
        sim.control(Control::DeclineDeviceCode { user_code: None });
        let v = until_final(&phone, &url, &session, &csrf).await;
        assert_eq!(v["state"], "declined", "{v}");
        let polls = sim.stats().token_by_grant.values().sum::<u64>();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            sim.stats().token_by_grant.values().sum::<u64>(),
            polls,
            "polling stopped"
        );

        let (code, _, view) = post(
            &phone,
            &url,
            "/api/device/start",
            Some(&session),
            Some(&csrf),
            values,
        )
        .await;
        assert_eq!((code, &view["state"]), (200, &json!("waiting")), "{view}");
        assert_eq!(
            sign_in_files(&state).len(),
            0,
            "nothing cached before a sign-in"
        );
        let v = until_final(&phone, &url, &session, &csrf).await;
        assert_eq!(v["state"], "expired", "{v}");
        assert_eq!(
            sim.stats().devicecode_requests,
            2,
            "no code asked for by itself"
        );
        opened.close();
        let t = Instant::now();
        while board.borrow().is_some() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(sign_in_files(&state).is_empty());
    }

    #[test]
    fn new_codes_wait_their_gap() {
        let t0 = Instant::now();
        assert_eq!(start_wait(None, t0), None);
        assert_eq!(
            start_wait(Some(t0), t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(start_wait(Some(t0), t0 + START_GAP), None);
    }
}
