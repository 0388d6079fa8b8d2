//! Fleet configuration from a URL (`[fleet] url`): the playlist and screen settings of many
//! screens kept on any web server or object store, polled with conditional requests.
//!
//! The pure parts are apart: placeholder expansion ([`placeholders`]), the poll decision and
//! conditional headers ([`schedule`]), the rules and merge of a fleet file (`config::fleet`).
//! This module is the shell: one fetch ([`poll_once`]), the last good file on disk
//! ([`store`]), and the task that polls ([`run`]). A fleet file that cannot be fetched or read
//! never stops the screen: the last good one stays in use, and the problem is reported on
//! `/status`, `/metrics` and in `check`.

pub(crate) mod placeholders;
pub(crate) mod schedule;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError};
use crate::problem::{Problem, ProblemId};
use placeholders::DeviceIds;
use schedule::{Schedule, Validators, Verdict};
use store::{Kept, Meta, Store};

/// A fleet file is a few KiB of TOML; a megabyte is far beyond one and still harmless.
pub(crate) const FLEET_BODY_LIMIT: usize = 1 << 20;

/// What `/status` says about the fleet file (a `fleet` object), and what `/metrics` counts.
/// Never a token: the address is shown without credentials or query.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FleetStatus {
    /// The address (placeholders filled in) as shown: no user info, query or fragment.
    pub url: String,
    /// When the server last gave or confirmed the file in use (RFC 3339, UTC).
    pub last_success: Option<String>,
    /// Seconds since then.
    pub age_seconds: Option<u64>,
    /// Why the last fetch did not give a usable file; `None` after a good one.
    pub problem: Option<ProblemId>,
    pub problem_title: Option<String>,
    pub problem_message: Option<String>,
    pub fetch_errors_total: u64,
    /// Fetched files read and checked (a `304 Not Modified` reads nothing).
    pub parses_total: u64,
    pub not_modified_total: u64,
    #[serde(skip)]
    pub(crate) last_success_unix: Option<u64>,
    #[serde(skip)]
    pub(crate) last_problem: Option<Problem>,
    /// Bumped each time a new fleet file is kept.
    #[serde(skip)]
    pub(crate) content_version: u64,
}

impl FleetStatus {
    fn succeeded(&mut self, unix: u64) {
        self.last_success_unix = Some(unix);
        self.problem = None;
        self.problem_title = None;
        self.problem_message = None;
        self.last_problem = None;
    }

    fn failed(&mut self, problem: Problem) {
        self.fetch_errors_total += 1;
        self.problem = Some(problem.id);
        self.problem_title = Some(problem.id.title().to_owned());
        self.problem_message = Some(problem.cause.clone());
        self.last_problem = Some(problem);
    }

    /// This status with its times as seen at `now_unix`.
    pub(crate) fn at(&self, now_unix: u64) -> FleetStatus {
        let mut s = self.clone();
        s.age_seconds = self.last_success_unix.map(|t| now_unix.saturating_sub(t));
        s.last_success = self.last_success_unix.and_then(|t| {
            chrono::DateTime::from_timestamp(t as i64, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        });
        s
    }
}

/// The fleet's shared state: the poller writes it, the player's loop and `/status` read it.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    status: Arc<Mutex<Option<FleetStatus>>>,
    changed: watch::Sender<u64>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            status: Arc::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl Fleet {
    /// The status, `None` when the config has no `[fleet]`.
    pub(crate) fn status(&self) -> Option<FleetStatus> {
        self.status.lock().ok()?.clone()
    }

    /// Told after every fetch.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut Option<FleetStatus>)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `device` with the last good fleet file in place of its own sections, when it has a
/// `[fleet]` and a kept file that still passes its rules. A kept file that no longer does
/// (the device's sign-in method changed, say) is left out, with a warning.
pub(crate) fn with_last_good(device: Config, store: &Store) -> Config {
    let Some(fleet) = &device.fleet else {
        return device;
    };
    let Some(kept) = store.load() else {
        return device;
    };
    let origin = if kept.meta.url.is_empty() {
        config::shown_url(&fleet.url)
    } else {
        kept.meta.url.clone()
    };
    match config::parse_fleet_file(&kept.text, Path::new(&origin), &device) {
        Ok(overlay) => device.with_fleet(&overlay),
        Err(e) => {
            tracing::warn!(error = %e, file = %store.file().display(), "the kept fleet file is not usable; using the device's own settings");
            device
        }
    }
}

/// What one fetch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// A new fleet file was kept.
    New,
    /// The kept file is still current (304, or the same content again).
    Same,
    /// No usable file: the last good one stays.
    Failed,
}

/// What one request for the fleet file gave.
#[derive(Debug)]
enum Answer {
    /// 304: the file we hold is current.
    NotModified,
    /// A file that passed the rules, with the server's validators.
    Fresh {
        text: String,
        // Boxed: a whole playlist and its settings, against nothing for a 304.
        overlay: Box<config::FleetOverlay>,
        validators: Validators,
    },
}

/// Request the fleet file at `url` (placeholders filled in) with `validators`, and check a
/// fresh one against `device`'s rules. `parses` counts the bodies read.
async fn fetch(
    client: &reqwest::Client,
    device: &Config,
    url: &str,
    validators: &Validators,
    parses: &mut u64,
) -> Result<Answer, Problem> {
    let shown = config::shown_url(url);
    let mut request = client.get(url);
    for (name, value) in validators.conditional_headers() {
        request = request.header(name, value);
    }
    if let Some(token) = device.fleet.as_ref().and_then(|f| f.bearer.as_ref()) {
        request = request.bearer_auth(token.expose());
    }
    // The transport's words, with the address: an installer checks that one first.
    let unreachable = |p: Problem| {
        Problem::new(ProblemId::FleetUnreachable)
            .with_cause(format!("{shown}: {}", p.cause))
            .with_fix(p.fix)
    };
    let resp = request
        .send()
        .await
        .map_err(|e| unreachable(crate::net::transport_problem(&e, "the fleet server")))?;
    match schedule::judge(resp.status().as_u16(), &shown) {
        Verdict::Failed(p) => Err(p),
        Verdict::NotModified => Ok(Answer::NotModified),
        Verdict::Fresh => {
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.len() <= 256 && !v.chars().any(char::is_control))
                    .map(str::to_owned)
            };
            let validators = Validators {
                etag: header(reqwest::header::ETAG),
                last_modified: header(reqwest::header::LAST_MODIFIED),
            };
            let text = crate::net::read_body(resp, FLEET_BODY_LIMIT)
                .await
                .map_err(|e| unreachable(e.to_problem("the fleet server")))?;
            *parses += 1;
            let overlay = config::parse_fleet_file(&text, Path::new(&shown), device)
                .map_err(|e| fleet_invalid(&e))?;
            Ok(Answer::Fresh {
                text,
                overlay: Box::new(overlay),
                validators,
            })
        }
    }
}

/// The address of `device`'s fleet file with this device's placeholders filled in.
fn address(device: &Config, ids: &DeviceIds) -> Option<Result<String, Problem>> {
    let fleet = device.fleet.as_ref()?;
    Some(placeholders::expand(&fleet.url, ids).map_err(|e| {
        Problem::new(ProblemId::Config)
            .with_cause(format!("[fleet] url: {e}."))
            .with_fix("Use a placeholder this device has a value for (`pbikiosk check` shows them), or none.")
    }))
}

/// Fetch the fleet file of `device` once, and keep it when it passes the rules.
pub(crate) async fn poll_once(
    client: &reqwest::Client,
    device: &Config,
    ids: &DeviceIds,
    store: &Store,
    status: &mut FleetStatus,
    now_unix: u64,
) -> Fetched {
    let Some(url) = address(device, ids) else {
        return Fetched::Same;
    };
    let url = match url {
        Ok(u) => u,
        Err(p) => {
            status.url = device
                .fleet
                .as_ref()
                .map(|f| f.shown_url())
                .unwrap_or_default();
            status.failed(p);
            return Fetched::Failed;
        }
    };
    let shown = config::shown_url(&url);
    status.url = shown.clone();
    let kept = store.load().filter(|k| k.meta.url == shown);
    let validators = kept
        .as_ref()
        .map(|k| k.meta.validators.clone())
        .unwrap_or_default();
    let answer = fetch(client, device, &url, &validators, &mut status.parses_total).await;
    match answer {
        Err(p) => {
            tracing::warn!(url = %shown, problem = %p, "fleet file not usable; keeping the last good one");
            status.failed(p);
            Fetched::Failed
        }
        Ok(Answer::NotModified) => match kept {
            Some(k) => {
                status.not_modified_total += 1;
                let meta = Meta {
                    confirmed_unix: now_unix,
                    ..k.meta
                };
                if let Err(e) = store.confirm(&meta) {
                    tracing::warn!(error = %e, "the fleet file's date could not be kept");
                }
                status.succeeded(now_unix);
                Fetched::Same
            }
            None => {
                status.failed(
                    Problem::new(ProblemId::FleetUnreachable).with_cause(format!(
                        "The fleet server answered {shown} with 304 Not Modified, but this screen has no copy of the file."
                    )),
                );
                Fetched::Failed
            }
        },
        Ok(Answer::Fresh {
            text, validators, ..
        }) => {
            let same = kept.as_ref().is_some_and(|k| k.text == text);
            let new = Kept {
                text,
                meta: Meta {
                    url: shown,
                    validators,
                    confirmed_unix: now_unix,
                },
            };
            if let Err(e) = store.save(&new) {
                // The file is good: it is used now, and fetched again after a restart.
                tracing::warn!(error = %e, file = %store.file().display(), "the fleet file could not be kept on disk");
            }
            status.succeeded(now_unix);
            if same {
                Fetched::Same
            } else {
                tracing::info!(url = %new.meta.url, "new fleet file");
                status.content_version += 1;
                Fetched::New
            }
        }
    }
}

/// `check`'s fleet line, and the configuration the rest of `check` looks at: with the fetched
/// fleet file when it is good, else with the last good one the screen would play. Nothing is
/// written: `check` may run as another user than the player.
pub(crate) async fn check(
    client: &reqwest::Client,
    device: &Config,
) -> Option<(Result<String, Problem>, Config)> {
    let url = match address(device, &DeviceIds::read())? {
        Ok(u) => u,
        Err(p) => return Some((Err(p), device.clone())),
    };
    let shown = config::shown_url(&url);
    let last_good = || with_last_good(device.clone(), &Store::new(store::state_dir()));
    let answer = fetch(client, device, &url, &Validators::default(), &mut 0).await;
    Some(match answer {
        Ok(Answer::Fresh { overlay, .. }) => {
            let n = overlay
                .playlist
                .as_ref()
                .map_or(device.playlist.len(), Vec::len);
            (
                Ok(format!(
                    "{shown}: reachable, parsed, ok ({n} playlist item{})",
                    if n == 1 { "" } else { "s" }
                )),
                device.clone().with_fleet(&overlay),
            )
        }
        Ok(Answer::NotModified) => (
            Err(Problem::new(ProblemId::FleetUnreachable).with_cause(format!(
                "The fleet server answered {shown} with 304 Not Modified to a request without conditions."
            ))),
            last_good(),
        ),
        Err(p) => (Err(p), last_good()),
    })
}

fn fleet_invalid(e: &ConfigError) -> Problem {
    Problem::new(ProblemId::FleetConfigInvalid)
        .with_cause(e.to_string())
        .with_fix(e.fix())
}

/// Poll the fleet file for as long as the process runs. `load_device` reads the device's own
/// configuration (without any fleet file): it names the address, the token and the CA file,
/// and may change while the player runs.
pub(crate) async fn run(
    load_device: impl Fn() -> Result<Config, ConfigError> + Send + 'static,
    store: Store,
    fleet: Fleet,
) {
    // The longest wait before the device's config is looked at again.
    const RECHECK: Duration = Duration::from_secs(30);
    let ids = DeviceIds::read();
    let mut schedule: Option<(String, Schedule)> = None;
    type Route = (Option<std::path::PathBuf>, crate::config::NetworkSetting);
    let mut client: Option<(Route, reqwest::Client)> = None;
    let mut status = FleetStatus::default();
    if let Some(k) = store.load() {
        // The file in use was good when it was kept: its age counts from then.
        status.last_success_unix = Some(k.meta.confirmed_unix).filter(|t| *t > 0);
    }
    loop {
        let device = match load_device() {
            Ok(c) if c.fleet.is_some() => c,
            _ => {
                fleet.update(|s| *s = None);
                schedule = None;
                tokio::time::sleep(RECHECK).await;
                continue;
            }
        };
        let f = device.fleet.as_ref().expect("checked");
        let key = format!("{}|{:?}", f.url, f.poll);
        if schedule.as_ref().is_none_or(|(k, _)| *k != key) {
            schedule = Some((key, Schedule::new(f.poll)));
        }
        let (_, sched) = schedule.as_mut().expect("set above");
        let now = Instant::now();
        if !sched.due(now) {
            let until = sched.next_at().map_or(now, |t| t.min(now + RECHECK));
            tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
            continue;
        }
        sched.attempted(now);
        // The fleet server is reached like Microsoft: the device's CA file and proxy.
        let route = (device.cloud.ca_file.clone(), device.network.clone());
        if client.as_ref().is_none_or(|(r, _)| *r != route) {
            match crate::net::client_for(&device) {
                Ok(c) => client = Some((route, c)),
                Err(p) => {
                    status.failed(p);
                    let snapshot = status.clone();
                    fleet.update(|s| *s = Some(snapshot));
                    continue;
                }
            }
        }
        let (_, http) = client.as_ref().expect("set above");
        poll_once(http, &device, &ids, &store, &mut status, now_unix()).await;
        let snapshot = status.clone();
        fleet.update(|s| *s = Some(snapshot));
    }
}
