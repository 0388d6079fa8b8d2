//! The player's decisions: what the screen shows, when to switch, when to repair.
//!
//! Pure: it reads no clock and does no I/O. The driver (the shell) feeds it [`Input`]s with the
//! current instant and carries out the [`Output`]s. That keeps rotation, token hand-over,
//! status screens and self-repair testable in milliseconds, without a window.
//!
//! Invariants:
//! - The screen is never blank on purpose: the next item is prepared off-screen and shown only
//!   once it rendered; until then the current one stays.
//! - At most two embeds live at once (visible + prepared), so memory stays flat.
//! - A token refresh reaches live embeds with `set_token`, never by reloading.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth::service::TokenState;
use crate::bridge::{FromPage, ToPage};
use crate::playlist::{Item, Slide};
use crate::problem::{Problem, ProblemId, RetryClass};
use crate::report_layout::ReportLayout;
use crate::secret::Secret;

mod embed_host;
mod power;
mod probing;
mod recycle;
mod repair;
mod rotation;
mod schedule;
mod snapshot;
mod starting;

use embed_host::EmbedHostWatch;
pub use power::DisplayStatus;
use power::ScreenPower;
pub(crate) use recycle::MIB;
use recycle::RecyclePolicy;
pub use recycle::RecycleSettings;
use schedule::ItemSchedule;
use snapshot::Counters;
pub use snapshot::{Snapshot, State};
pub use starting::Activity;

/// Tunables. The defaults suit an unattended screen: a hung page is noticed within a minute,
/// a broken item gets a few repairs an hour, and nobody's account is locked by retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// No heartbeat from the page for this long → reload the page.
    pub heartbeat_timeout: Duration,
    /// An embed that has not rendered after this long counts as a load failure.
    pub render_timeout: Duration,
    /// An embed that has not even loaded after this long gets its host probed: a blocked
    /// embed host is named within seconds instead of after the render timeouts.
    pub load_timeout: Duration,
    /// Load failures repaired per item per [`Settings::repair_window`] before it is skipped.
    pub repair_limit: usize,
    pub repair_window: Duration,
    /// Page reloads without any rendered embed in between before the shell gives up and exits
    /// (the service manager restarts it).
    pub max_fruitless_reloads: u32,
    /// Wait before resolving the playlist again after a failure (transient / permanent).
    pub resolve_retry: Duration,
    pub permanent_retry: Duration,
    /// Passed on to the page with every report (`[display] report_layout`).
    pub report_layout: ReportLayout,
    /// When the web process is replaced to bound memory (`[player] memory_*`).
    pub recycle: RecycleSettings,
    /// What the tokens handed to the page are: Entra tokens of a user, or embed tokens made
    /// for a service principal.
    pub token_type: crate::bridge::TokenType,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(30),
            render_timeout: Duration::from_secs(45),
            load_timeout: Duration::from_secs(10),
            repair_limit: 3,
            repair_window: Duration::from_secs(3600),
            max_fruitless_reloads: 5,
            resolve_retry: Duration::from_secs(30),
            permanent_retry: crate::config::DEFAULT_PERMANENT_RETRY,
            report_layout: ReportLayout::default(),
            recycle: RecycleSettings::default(),
            token_type: crate::bridge::TokenType::Aad,
        }
    }
}

#[derive(Debug)]
pub enum Input {
    /// The config could not be used. `not_configured`: there is no config yet (fresh install),
    /// as opposed to a broken one.
    Config {
        problem: Problem,
        not_configured: bool,
    },
    Token(TokenState),
    /// The playlist resolved against Power BI: one result per configured item, or a problem
    /// that stopped resolution as a whole (no token, no access, network).
    Resolved(Result<Vec<Result<Item, Problem>>, Problem>),
    Page(FromPage),
    /// WebKit's web process died.
    WebProcessCrashed,
    /// The web view could not load a document of an embed host (`url`): `detail` says how.
    EmbedTrouble {
        url: String,
        detail: String,
    },
    /// The result of an [`Output::Probe`]: `Err` is an `embed_unreachable` problem.
    Probed(Result<(), Problem>),
    /// The PSS of the process tree (player and web processes), in bytes, sampled every
    /// [`RecycleSettings::sample_every`], and the part of it outside the web process.
    Memory {
        pss_bytes: u64,
        outside_web_bytes: u64,
    },
    /// Which configured items are inside their `when` windows now (one per item, in config
    /// order), and when that next changes, as the device's local time for the screen.
    Schedule {
        in_window: Vec<bool>,
        next_change: Option<String>,
    },
    /// What the screen's hours (and an administrator's override) say the screen should be.
    ScreenPower(crate::schedule::Power),
    /// The fleet file (`[fleet] url`): its current problem, if any, and whether a new
    /// playlist came with it (the driver has handed it to the resolver already).
    Fleet {
        problem: Option<Problem>,
        playlist_changed: bool,
    },
    /// Time passed; check deadlines.
    Tick,
}

/// The item index of an embed whose playlist was replaced: it stays on screen until its time
/// is up, and matches no item of the new playlist.
const REPLACED_ITEM: usize = usize::MAX;

#[derive(Debug, PartialEq)]
pub enum Output {
    Page(ToPage),
    /// The start screen's line: what the player is doing on the way to the first item.
    Starting(Activity),
    /// Show the status screen for this problem.
    ShowProblem {
        problem: Problem,
        next_attempt: Option<Instant>,
    },
    HideProblem,
    /// Offline badge on/off: the instant the device went offline.
    Offline(Option<Instant>),
    /// Ask the token service for a new token now (Power BI said the current one expired).
    TokenExpired,
    /// Resolve the playlist with this token and feed back [`Input::Resolved`].
    Resolve {
        token: Secret,
    },
    /// Probe whether the embed host can be reached and feed back [`Input::Probed`].
    Probe {
        host: String,
    },
    /// Reload the page from scratch (hung page, crashed web process).
    ReloadPage {
        /// Out of the screen's hours: the fresh page starts black (see [`Output::RecyclePage`]).
        dark: bool,
    },
    /// Replace the healthy web process by a fresh one and load the page again, to bound
    /// memory: what the window does is the same as for [`Output::ReloadPage`], but it is no
    /// repair.
    RecyclePage {
        /// Out of the screen's hours: the fresh page is black from its first frame, so the
        /// start screen never lights a dark screen.
        dark: bool,
    },
    /// The shell cannot recover; exit with this code so systemd restarts it.
    Exit(i32),
}

#[derive(Debug, Clone)]
struct Embed {
    key: String,
    /// Index into `slides` when prepared (stale after a rebuild; `shows` is authoritative).
    slide: usize,
    /// What it was prepared for, and for the visible one the page it is on now.
    shows: Slide,
    item: usize,
    since: Instant,
    /// The embed said `loaded` (or `rendered`).
    loaded: bool,
    /// Its host was probed because it did not load in time (once per embed).
    probed: bool,
    /// The web view got an HTTP error for its document (e.g. "HTTP 403").
    http_error: Option<String>,
    rendered: bool,
    /// A fresh token was applied after a TokenExpired error: another one means reload.
    token_retried: bool,
    refresh_in_flight: bool,
    next_refresh: Option<Instant>,
    /// The page the embed itself says it shows (its `pageChanged` events).
    reported_page: Option<String>,
}

pub struct Player {
    settings: Settings,
    config_problem: Option<Problem>,
    not_configured: bool,
    tokens: Tokens,
    /// One per configured item once the playlist resolved.
    items: Option<Vec<ItemState>>,
    resolution: Resolution,
    slides: Vec<Slide>,
    slide: usize,
    slide_until: Option<Instant>,
    visible: Option<Embed>,
    pending: Option<Embed>,
    /// The page shown on screen (display name), as the player last switched it.
    current_page: Option<String>,
    next_key: u64,
    page: PageWatch,
    offline_since: Option<Instant>,
    problem_shown: Option<ProblemId>,
    /// The step the start screen was last told (`None`: it was told nothing, or is not up).
    activity_shown: Option<Activity>,
    embed_host: EmbedHostWatch,
    counters: Counters,
    recycle: RecyclePolicy,
    schedule: ItemSchedule,
    power: ScreenPower,
    /// Why the fleet file is not usable; shown only when there is no playlist at all.
    fleet_problem: Option<Problem>,
    /// A new playlist is being resolved; the embeds on screen belong to the old one.
    playlist_replaced: bool,
    /// A resolution of the old playlist was in flight when the new one came: resolve again.
    resolve_again: bool,
    /// The name of the old playlist's item still on screen, for `/status` until it goes.
    replaced_name: Option<String>,
}

/// One configured playlist item: what it resolved to and how it has been loading.
struct ItemState {
    /// Its resolved form, or why it could not be resolved.
    resolved: Result<Item, Problem>,
    /// Left out of the rotation: unresolved, or it failed to load too often.
    skipped: bool,
    /// Recent load failures, oldest first; they leave after [`Settings::repair_window`].
    failures: VecDeque<Instant>,
    /// What the web view last said about a failed load of it (e.g. "HTTP 403").
    last_error: Option<String>,
}

impl ItemState {
    fn new(resolved: Result<Item, Problem>) -> Self {
        Self {
            skipped: resolved.is_err(),
            resolved,
            failures: VecDeque::new(),
            last_error: None,
        }
    }
}

/// What the token service last told us.
#[derive(Default)]
struct Tokens {
    current: Option<Secret>,
    /// Tokens of single items (a service principal's dashboards), renewed with `current`.
    items: crate::embed_token::ItemTokens,
    /// When `current` must be replaced.
    expires_at: Option<Instant>,
    generation: u64,
    /// Any answer beyond "starting" arrived (tells signing in from starting).
    seen: bool,
    problem: Option<(Problem, Option<Instant>)>,
}

/// Resolving the playlist against Power BI.
#[derive(Default)]
struct Resolution {
    /// Why the last resolution failed as a whole.
    problem: Option<Problem>,
    in_flight: bool,
    /// When to resolve again (after a failure, or to look at broken items again).
    retry_at: Option<Instant>,
}

/// The page's watchdog: whether it is up, when it last spoke, and how many reloads did not help.
#[derive(Default)]
struct PageWatch {
    ready: bool,
    last_heartbeat: Option<Instant>,
    /// Page reloads since an embed last rendered.
    fruitless_reloads: u32,
    /// The web process was replaced to bound memory then, and the fresh page has not said
    /// `ready` yet.
    recycling_since: Option<Instant>,
}

impl Player {
    pub fn new(settings: Settings) -> Self {
        Self {
            config_problem: None,
            not_configured: false,
            tokens: Tokens::default(),
            items: None,
            resolution: Resolution::default(),
            slides: Vec::new(),
            slide: 0,
            slide_until: None,
            visible: None,
            pending: None,
            current_page: None,
            next_key: 0,
            page: PageWatch::default(),
            offline_since: None,
            problem_shown: None,
            activity_shown: None,
            embed_host: EmbedHostWatch::default(),
            counters: Counters::default(),
            recycle: RecyclePolicy::new(settings.recycle),
            schedule: ItemSchedule::default(),
            power: ScreenPower::default(),
            fleet_problem: None,
            playlist_replaced: false,
            resolve_again: false,
            replaced_name: None,
            settings,
        }
    }

    /// The earliest instant at which a [`Input::Tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        if self.page.ready
            && let Some(h) = self.page.last_heartbeat
        {
            d.push(h + self.settings.heartbeat_timeout);
        }
        d.extend(
            self.page
                .recycling_since
                .map(|t| t + self.settings.heartbeat_timeout),
        );
        d.extend(self.slide_until);
        d.extend(self.resolution.retry_at);
        d.extend(self.embed_host.deadline());
        for e in self.embeds() {
            if !e.rendered {
                d.push(e.since + self.settings.render_timeout);
            }
            if !e.loaded && !e.probed {
                d.push(e.since + self.settings.load_timeout);
            }
            d.extend(e.next_refresh);
        }
        for it in self.items.iter().flatten() {
            if let Some(last) = it.failures.back() {
                d.push(*last + self.settings.repair_window);
            }
        }
        d.into_iter().min()
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Config {
                problem,
                not_configured,
            } => {
                self.config_problem = Some(problem);
                self.not_configured = not_configured;
            }
            Input::Token(state) => self.on_token(now, state, &mut out),
            Input::Resolved(res) => self.on_resolved(now, res, &mut out),
            Input::Page(msg) => self.on_page(now, msg, &mut out),
            Input::WebProcessCrashed => self.reload_page(now, &mut out),
            Input::EmbedTrouble { url, detail } => {
                self.on_embed_trouble(now, &url, detail, &mut out);
            }
            Input::Probed(result) => self.on_probed(now, result, &mut out),
            Input::Memory {
                pss_bytes,
                outside_web_bytes,
            } => self.recycle.sample(now, pss_bytes, outside_web_bytes),
            Input::Schedule {
                in_window,
                next_change,
            } => self.on_schedule(now, in_window, next_change, &mut out),
            Input::ScreenPower(power) => self.on_power(now, power, &mut out),
            Input::Fleet {
                problem,
                playlist_changed,
            } => self.on_fleet(now, problem, playlist_changed),
            Input::Tick => self.on_tick(now, &mut out),
        }
        self.drive(now, &mut out);
        self.report_activity(&mut out);
        out
    }

    // ----- inputs -------------------------------------------------------------------------

    fn on_token(&mut self, now: Instant, state: TokenState, out: &mut Vec<Output>) {
        self.tokens.seen = !matches!(state, TokenState::Starting);
        match state {
            TokenState::Starting => {}
            TokenState::Valid {
                token,
                item_tokens,
                generation,
                expires_at,
            } => {
                self.tokens.expires_at = Some(expires_at);
                let refreshed = self.tokens.current.is_some() || self.tokens.generation > 0;
                self.tokens.items = item_tokens;
                if generation != self.tokens.generation {
                    if refreshed {
                        self.counters.token_refreshes += 1;
                    }
                    self.tokens.generation = generation;
                    if self.page.ready && (self.visible.is_some() || self.pending.is_some()) {
                        self.hand_over(&token, out);
                    }
                }
                self.tokens.current = Some(token);
                self.tokens.problem = None;
                if self.offline_since.take().is_some() {
                    out.push(Output::Offline(None));
                }
            }
            TokenState::Failed {
                problem,
                next_attempt,
            } => {
                self.tokens.current = None;
                self.tokens.expires_at = None;
                if problem.retry_class() == RetryClass::Transient
                    && self.visible.is_some()
                    && self.offline_since.is_none()
                {
                    // Keep the report up (Power BI keeps rendering what it has) and say so.
                    self.offline_since = Some(now);
                    out.push(Output::Offline(Some(now)));
                }
                // A new sign-in code is the same problem with new words: show it again.
                let code = |p: &Problem| p.sign_in.as_ref().map(|s| s.user_code.clone());
                if self.tokens.problem.as_ref().map(|(p, _)| code(p)) != Some(code(&problem)) {
                    self.problem_shown = None;
                }
                self.tokens.problem = Some((problem, next_attempt));
            }
        }
    }

    /// Give the live embeds the renewed tokens. With one token for all (a user's, or the
    /// reports' embed token) one message reaches every embed; when some items hold their own
    /// (a service principal's dashboards), each embed is told its own, by key.
    fn hand_over(&self, shared: &Secret, out: &mut Vec<Output>) {
        if self.tokens.items.is_empty() {
            out.push(Output::Page(ToPage::SetToken {
                key: None,
                access_token: shared.clone(),
            }));
            return;
        }
        for e in self.embeds() {
            out.push(Output::Page(ToPage::SetToken {
                key: Some(e.key.clone()),
                access_token: self.token_for(e.item, shared).clone(),
            }));
        }
    }

    /// The token item `i` embeds with: its own if it has one, else the shared one.
    fn token_for<'a>(&'a self, i: usize, shared: &'a Secret) -> &'a Secret {
        self.item(i)
            .filter(|it| it.resolved.kind == crate::content::ContentKind::Dashboard)
            .and_then(|it| self.tokens.items.get(&it.resolved.id))
            .unwrap_or(shared)
    }

    fn on_fleet(&mut self, now: Instant, problem: Option<Problem>, playlist_changed: bool) {
        self.fleet_problem = problem;
        if !playlist_changed {
            return;
        }
        if self.resolution.in_flight {
            // Its answer is about the old playlist: take it, then resolve the new one.
            self.resolve_again = true;
        } else {
            self.resolution.retry_at = Some(now);
        }
        self.playlist_replaced = self.items.is_some();
    }

    fn on_resolved(
        &mut self,
        now: Instant,
        res: Result<Vec<Result<Item, Problem>>, Problem>,
        out: &mut Vec<Output>,
    ) {
        self.resolution.in_flight = false;
        match res {
            Ok(items) => {
                for (i, r) in items.iter().enumerate() {
                    if let Err(p) = r {
                        tracing::warn!(item = i, problem = %p, "playlist item skipped");
                    }
                }
                let any_broken = items.iter().any(Result::is_err);
                if self.playlist_replaced && !self.resolve_again {
                    // The new playlist: what is on screen stays until its time is up, then
                    // the new playlist's first slide follows.
                    self.playlist_replaced = false;
                    self.replaced_name = self
                        .visible
                        .as_ref()
                        .and_then(|v| self.item(v.item))
                        .map(|it| it.resolved.name.clone());
                    for e in self.embeds_mut() {
                        e.item = REPLACED_ITEM;
                        e.shows.item = REPLACED_ITEM;
                    }
                }
                self.items = Some(items.into_iter().map(ItemState::new).collect());
                self.resolution.problem = None;
                // Broken items are looked at again later: the report may be shared meanwhile.
                self.resolution.retry_at = any_broken.then(|| now + self.settings.permanent_retry);
                if std::mem::take(&mut self.resolve_again) {
                    self.resolution.retry_at = Some(now);
                }
                self.rebuild_slides(now, out);
            }
            Err(p) => {
                if p.id == ProblemId::TokenExpired {
                    out.push(Output::TokenExpired);
                }
                let wait = match p.retry_class() {
                    RetryClass::Transient => self.settings.resolve_retry,
                    RetryClass::Permanent => self.settings.permanent_retry,
                };
                self.resolution.retry_at = Some(now + wait.max(p.retry_after.unwrap_or_default()));
                self.resolution.problem = Some(p);
            }
        }
    }

    fn on_page(&mut self, now: Instant, msg: FromPage, out: &mut Vec<Output>) {
        self.page.last_heartbeat = Some(now);
        match msg {
            FromPage::Ready { .. } => {
                self.page.ready = true;
                self.page.recycling_since = None;
                // A fresh page has no embeds and no overlay: start over from the current slide.
                self.visible = None;
                self.pending = None;
                self.problem_shown = None;
                // Its start screen says "Starting…" until told otherwise.
                self.activity_shown = None;
                // Nor is it dark: drive() tells it again if it must be.
                self.power.page_reset();
                if self.offline_since.is_some() {
                    out.push(Output::Offline(self.offline_since));
                }
            }
            FromPage::Heartbeat { .. } => {}
            FromPage::Loaded { key } => {
                if let Some(e) = self.embed_mut(&key) {
                    e.loaded = true;
                }
            }
            FromPage::Rendered { key, .. } => {
                for e in self.visible.iter_mut().chain(self.pending.iter_mut()) {
                    if e.key == key {
                        if !e.rendered {
                            self.counters.rendered += 1;
                            self.counters.last_rendered_at = Some(now);
                        }
                        e.rendered = true;
                        e.loaded = true;
                        e.refresh_in_flight = false;
                        self.page.fruitless_reloads = 0;
                        self.recycle.rendered(now);
                    }
                }
            }
            FromPage::Shown { key, gap_ms } => {
                if self.visible.as_ref().is_some_and(|v| v.key == key) {
                    self.counters.record_shown(gap_ms);
                }
            }
            FromPage::PageChanged {
                key,
                page,
                display_name,
            } => {
                tracing::debug!(key, page, "page changed");
                if let Some(e) = self.embed_mut(&key) {
                    e.reported_page = Some(display_name.unwrap_or(page));
                }
            }
            FromPage::TokenApplied { key, ok, error } => {
                if !ok {
                    tracing::warn!(
                        key,
                        error = error.as_deref().unwrap_or(""),
                        "set_token failed"
                    );
                    self.repair(now, &key, out);
                }
            }
            FromPage::Error { key, message, .. } => {
                let Some(key) = key else { return };
                let expired = message.as_deref() == Some("TokenExpired");
                if expired {
                    let retried = self
                        .embed_mut(&key)
                        .map(|e| std::mem::replace(&mut e.token_retried, true));
                    match retried {
                        // First time: a fresh token usually fixes it without a reload.
                        Some(false) => out.push(Output::TokenExpired),
                        Some(true) => self.repair(now, &key, out),
                        None => {}
                    }
                } else {
                    tracing::warn!(
                        key,
                        message = message.as_deref().unwrap_or(""),
                        "embed error"
                    );
                    let rendered = self.embed_mut(&key).map(|e| e.rendered);
                    // Errors after a successful render (a visual failing) leave the report up.
                    if rendered == Some(false) {
                        self.repair(now, &key, out);
                    }
                }
            }
            FromPage::JsError { message } => {
                tracing::warn!(message, "page script error");
            }
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.page.ready
            && let Some(h) = self.page.last_heartbeat
            && now.saturating_duration_since(h) >= self.settings.heartbeat_timeout
        {
            tracing::warn!("no heartbeat from the page; reloading it");
            self.reload_page(now, out);
            return;
        }
        if let Some(t) = self.page.recycling_since
            && now.saturating_duration_since(t) >= self.settings.heartbeat_timeout
        {
            // The fresh page did not come up: from here on it is a repair like any other.
            tracing::warn!(
                "the page did not come back after the web process was replaced; reloading it"
            );
            self.page.recycling_since = None;
            self.reload_page(now, out);
            return;
        }
        self.repair_timed_out(now, out);
        self.probe_slow_loads(now, out);
        self.readmit_skipped(now, out);
        if let Some(v) = &mut self.visible
            && let Some(t) = v.next_refresh
            && now >= t
        {
            let every = self
                .items
                .as_ref()
                .and_then(|items| items.get(v.item)?.resolved.as_ref().ok()?.refresh_seconds);
            v.next_refresh = every.map(|s| now + Duration::from_secs(s.into()));
            // One data refresh in flight at most: a slow dataset must not pile them up.
            if !v.refresh_in_flight {
                v.refresh_in_flight = true;
                out.push(Output::Page(ToPage::Refresh { key: v.key.clone() }));
            }
        }
    }

    // ----- the core loop ------------------------------------------------------------------

    /// Bring the screen in line with the state: status screen, resolution, rotation.
    fn drive(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(p) = self.blocking_problem() {
            let (problem, next) = p;
            if self.problem_shown != Some(problem.id) && self.page.ready {
                self.problem_shown = Some(problem.id);
                out.push(Output::ShowProblem {
                    problem,
                    next_attempt: next,
                });
            }
        } else if self.problem_shown.take().is_some() {
            out.push(Output::HideProblem);
        }
        if self.page.ready {
            self.sync_dark(out);
        }
        // Out of hours nothing is resolved or loaded: the web view idles behind the black page.
        if self.config_problem.is_some() || !self.page.ready || self.power.idle() {
            return;
        }
        let Some(token) = self.tokens.current.clone() else {
            return;
        };
        // Nothing on screen yet (a start, or waking after the night, when the sign-in rested):
        // a token that has run out would only load an error; the renewal is on its way.
        if self.visible.is_none() && self.tokens.expires_at.is_some_and(|e| now >= e) {
            return;
        }
        if (self.items.is_none() || self.resolution.retry_at.is_some_and(|t| now >= t))
            && !self.resolution.in_flight
        {
            self.resolution.in_flight = true;
            self.resolution.retry_at = None;
            out.push(Output::Resolve {
                token: token.clone(),
            });
        }
        if self.slides.is_empty() {
            return;
        }
        self.rotate(now, &token, out);
    }

    // ----- helpers ------------------------------------------------------------------------

    fn item(&self, i: usize) -> Option<&Item> {
        self.items.as_ref()?.get(i)?.resolved.as_ref().ok()
    }

    fn embed_mut(&mut self, key: &str) -> Option<&mut Embed> {
        self.embeds_mut().find(|e| e.key == key)
    }

    /// The live embeds: the visible one, then the prepared one.
    fn embeds(&self) -> impl Iterator<Item = &Embed> {
        self.visible.iter().chain(self.pending.iter())
    }

    fn embeds_mut(&mut self) -> impl Iterator<Item = &mut Embed> {
        self.visible.iter_mut().chain(self.pending.iter_mut())
    }

    /// What, if anything, must cover the screen.
    fn blocking_problem(&self) -> Option<(Problem, Option<Instant>)> {
        if let Some(p) = &self.config_problem {
            return Some((p.clone(), None));
        }
        if let Some((p, next)) = &self.tokens.problem {
            // Transient trouble with a report on screen: the badge says it, the report stays.
            if !(p.retry_class() == RetryClass::Transient && self.visible.is_some()) {
                return Some((p.clone(), *next));
            }
        }
        if let Some(p) = &self.resolution.problem
            && self.visible.is_none()
        {
            return Some((p.clone(), self.resolution.retry_at));
        }
        if let Some((p, next)) = self.embed_host.problem()
            && self.visible.is_none()
        {
            return Some((p.clone(), next));
        }
        if let Some(items) = &self.items
            && self.slides.is_empty()
        {
            if items.is_empty() {
                // A fleet screen without a playlist of its own: the fleet file is why.
                if let Some(p) = &self.fleet_problem {
                    return Some((p.clone(), None));
                }
                let p = Problem::new(ProblemId::Config)
                    .with_cause("The playlist is empty: there is nothing to show.")
                    .with_fix("Add [[playlist]] entries to the configuration; `pbikiosk reports --toml` prints them for every report the account can see.");
                return Some((p, None));
            }
            if let Some(p) = self.nothing_scheduled(items) {
                return Some((p, None));
            }
            // Every item is broken or skipped: say why (the first reason).
            let p = items
                .iter()
                .find_map(|st| st.resolved.as_ref().err().cloned())
                // Power BI found them (it says so when it does not): they failed in the web view.
                .unwrap_or_else(|| {
                    let p = Problem::new(ProblemId::EmbedFailed);
                    match items.iter().find_map(|st| st.last_error.as_deref()) {
                        Some(e) => p.with_cause(format!(
                            "Power BI found the reports, but the web view could not load them ({e}); they are retried automatically."
                        )),
                        None => p,
                    }
                });
            return Some((p, self.resolution.retry_at));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentKind;
    use crate::powerbi::{Page, Resolved};

    const T0: u64 = 0;

    pub(super) struct Rig {
        pub(super) p: Player,
        start: Instant,
        now: Instant,
    }

    pub(super) fn item(name: &str, kind: ContentKind, pages: &[&str], seconds: u32) -> Item {
        Item {
            resolved: Resolved {
                kind,
                workspace: "ws".into(),
                id: format!("id-{name}"),
                name: name.into(),
                embed_url: format!("https://app.powerbi.com/reportEmbed?reportId=id-{name}"),
                pages: pages
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Page {
                        name: format!("{name}-p{i}"),
                        display_name: (*p).into(),
                        order: i as i64,
                    })
                    .collect(),
            },
            seconds,
            bookmarks: vec![],
            refresh_seconds: None,
        }
    }

    pub(super) fn three_items() -> Vec<Result<Item, Problem>> {
        vec![
            Ok(item(
                "Sales",
                ContentKind::Report,
                &["Overview", "Regions"],
                10,
            )),
            Ok(item("Ops", ContentKind::Report, &["Today"], 10)),
            Ok(item("Board", ContentKind::Dashboard, &[], 10)),
        ]
    }

    pub(super) fn token(generation: u64) -> TokenState {
        TokenState::Valid {
            token: Secret::new(format!("TOKEN-{generation}")),
            item_tokens: Default::default(),
            expires_at: Instant::now() + Duration::from_secs(3600),
            generation,
        }
    }

    impl Rig {
        pub(super) fn new() -> Self {
            let start = Instant::now();
            let _ = T0;
            Self {
                p: Player::new(Settings::default()),
                start,
                now: start,
            }
        }
        pub(super) fn now(&self) -> Instant {
            self.now
        }
        pub(super) fn at(&mut self, secs: u64) -> &mut Self {
            self.now = self.start + Duration::from_secs(secs);
            self
        }
        pub(super) fn send(&mut self, input: Input) -> Vec<Output> {
            self.p.handle(self.now, input)
        }
        pub(super) fn page(&mut self, msg: FromPage) -> Vec<Output> {
            self.send(Input::Page(msg))
        }
        pub(super) fn rendered(&mut self, key: &str) -> Vec<Output> {
            self.page(FromPage::Rendered {
                key: key.into(),
                ms: Some(100.0),
            })
        }
        pub(super) fn tick(&mut self) -> Vec<Output> {
            self.send(Input::Tick)
        }
        /// Page ready, token, resolved playlist, first item rendered.
        pub(super) fn playing(items: Vec<Result<Item, Problem>>) -> Self {
            let mut r = Rig::new();
            r.page(FromPage::Ready { version: None });
            let out = r.send(Input::Token(token(1)));
            assert!(
                out.iter().any(|o| matches!(o, Output::Resolve { .. })),
                "{out:?}"
            );
            let out = r.send(Input::Resolved(Ok(items)));
            assert_eq!(
                prepared(&out),
                vec![("e1".to_string(), Some("Sales-p0".to_string()))]
            );
            r
        }
    }

    pub(super) fn prepared(out: &[Output]) -> Vec<(String, Option<String>)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Page(ToPage::Prepare { key, page, .. }) => {
                    Some((key.clone(), page.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub(super) fn shown(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Page(ToPage::Show { key }) => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn has(out: &[Output], f: impl Fn(&Output) -> bool) -> bool {
        out.iter().any(f)
    }

    /// What `/metrics` shows as the last render's age and the token's time left.
    #[test]
    fn the_snapshot_knows_when_an_item_last_rendered_and_when_the_token_runs_out() {
        let mut r = Rig::playing(three_items());
        assert_eq!(r.p.snapshot().last_rendered_at, None);
        let expires = r.now() + Duration::from_secs(600);
        r.send(Input::Token(TokenState::Valid {
            token: Secret::new("TOKEN-2"),
            item_tokens: Default::default(),
            expires_at: expires,
            generation: 2,
        }));
        assert_eq!(r.p.snapshot().token_expires_at, Some(expires));
        r.at(7).rendered("e1");
        let at = r.now();
        assert_eq!(r.p.snapshot().last_rendered_at, Some(at));
        // The same embed again is not a new render.
        r.at(9).rendered("e1");
        assert_eq!(r.p.snapshot().last_rendered_at, Some(at));
        r.send(Input::Token(TokenState::Failed {
            problem: Problem::new(ProblemId::Network),
            next_attempt: None,
        }));
        assert_eq!(r.p.snapshot().token_expires_at, None);
    }

    #[test]
    fn new_tokens_reach_live_embeds_without_reload() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        for g in 2..=5 {
            let out = r.at(g * 36).send(Input::Token(token(g)));
            assert_eq!(
                out.iter()
                    .filter(|o| matches!(o, Output::Page(ToPage::SetToken { key: None, access_token }) if access_token.expose() == format!("TOKEN-{g}")))
                    .count(),
                1,
                "{out:?}"
            );
            assert!(!has(&out, |o| matches!(
                o,
                Output::Page(ToPage::Reload { .. }) | Output::ReloadPage { .. }
            )));
        }
        let s = r.p.snapshot();
        assert_eq!(s.token_refreshes_total, 4);
        assert_eq!(s.page_reloads_total, 0);
        // The same token again is not news.
        let out = r.send(Input::Token(token(5)));
        assert!(!has(&out, |o| matches!(
            o,
            Output::Page(ToPage::SetToken { .. })
        )));
    }

    /// A service principal's dashboard embeds with its own embed token; a renewal hands each
    /// live embed its own token, by key, and reloads nothing.
    #[test]
    fn a_dashboard_embeds_with_its_own_token_and_gets_its_own_renewal() {
        let sp = |g: u64| {
            let mut items = crate::embed_token::ItemTokens::default();
            items.insert("ID-BOARD", Secret::new(format!("DASH-{g}")));
            TokenState::Valid {
                token: Secret::new(format!("TOKEN-{g}")),
                item_tokens: items,
                expires_at: Instant::now() + Duration::from_secs(3600),
                generation: g,
            }
        };
        let prepares = |out: &[Output]| -> Vec<(String, ContentKind, String)> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Page(ToPage::Prepare {
                        key,
                        kind,
                        access_token,
                        ..
                    }) => Some((key.clone(), *kind, access_token.expose().to_owned())),
                    _ => None,
                })
                .collect()
        };
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(sp(1)));
        let out = r.send(Input::Resolved(Ok(vec![
            Ok(item("Sales", ContentKind::Report, &["A"], 10)),
            Ok(item("Board", ContentKind::Dashboard, &[], 10)),
        ])));
        let mut made = prepares(&out);
        assert_eq!(
            made,
            vec![("e1".to_string(), ContentKind::Report, "TOKEN-1".to_string())]
        );
        // Play on until the dashboard is on screen and the report prepared behind it.
        let mut rendered = 0;
        for t in 0..=25 {
            let mut out = r.at(t).tick();
            while rendered < made.len() {
                rendered += 1;
                out.extend(r.rendered(&made[rendered - 1].0));
            }
            made.extend(prepares(&out));
        }
        let dash = made
            .iter()
            .find(|(_, kind, _)| *kind == ContentKind::Dashboard)
            .expect("the dashboard was prepared");
        assert_eq!(
            dash.2, "DASH-1",
            "the dashboard embedded with the shared token"
        );
        assert!(
            made.iter()
                .filter(|(_, kind, _)| *kind == ContentKind::Report)
                .all(|(_, _, t)| t == "TOKEN-1"),
            "{made:?}"
        );

        // Renewed at the same instant, so nothing else is due.
        let out = r.send(Input::Token(sp(2)));
        assert!(prepares(&out).is_empty(), "{out:?}");
        let handed: Vec<(Option<String>, String)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Page(ToPage::SetToken { key, access_token }) => {
                    Some((key.clone(), access_token.expose().to_owned()))
                }
                _ => None,
            })
            .collect();
        let live: Vec<&Embed> = r.p.embeds().collect();
        assert_eq!(handed.len(), live.len(), "{handed:?}");
        assert!(
            handed.iter().any(|(_, t)| t == "DASH-2"),
            "the dashboard is not live: {handed:?}"
        );
        for e in live {
            let kind = made.iter().find(|(k, _, _)| *k == e.key).unwrap().1;
            let want = match kind {
                ContentKind::Dashboard => "DASH-2",
                ContentKind::Report => "TOKEN-2",
            };
            assert!(
                handed.contains(&(Some(e.key.clone()), want.to_owned())),
                "{} ({kind:?}) did not get {want}: {handed:?}",
                e.key
            );
        }
        assert!(!has(&out, |o| matches!(
            o,
            Output::Page(ToPage::Reload { .. }) | Output::ReloadPage { .. }
        )));
        assert_eq!(r.p.snapshot().page_reloads_total, 0);
        assert_eq!(r.p.snapshot().token_refreshes_total, 1);
    }

    #[test]
    fn token_expired_gets_a_fresh_token_then_reloads_if_that_fails() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        let err = || FromPage::Error {
            key: Some("e1".into()),
            message: Some("TokenExpired".into()),
            detail: None,
        };
        let out = r.at(5).page(err());
        assert_eq!(
            out.iter().filter(|o| **o == Output::TokenExpired).count(),
            1
        );
        let out = r.send(Input::Token(token(2)));
        assert!(has(&out, |o| matches!(
            o,
            Output::Page(ToPage::SetToken { .. })
        )));
        let out = r.at(6).page(err());
        assert!(
            has(
                &out,
                |o| matches!(o, Output::Page(ToPage::Reload { key }) if key == "e1")
            ),
            "{out:?}"
        );
    }

    #[test]
    fn sign_in_problem_shows_status_then_recovers() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        let bad = Problem::from_token_error(
            400,
            r#"{"error":"invalid_grant","error_codes":[50126]}"#,
            None,
        );
        let out = r.send(Input::Token(TokenState::Failed {
            problem: bad,
            next_attempt: Some(r.now + Duration::from_secs(900)),
        }));
        assert!(has(
            &out,
            |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::InvalidCredentials)
        ));
        assert_eq!(r.p.snapshot().state, State::Problem);
        assert_eq!(r.p.snapshot().problem, Some(ProblemId::InvalidCredentials));
        // Shown once, not on every tick.
        assert!(!has(&r.at(1).tick(), |o| matches!(
            o,
            Output::ShowProblem { .. }
        )));
        let out = r.at(900).send(Input::Token(token(1)));
        assert!(
            out.contains(&Output::HideProblem)
                && out.iter().any(|o| matches!(o, Output::Resolve { .. })),
            "{out:?}"
        );
        r.send(Input::Resolved(Ok(three_items())));
        r.rendered("e1");
        assert_eq!(r.p.snapshot().state, State::Playing);
    }

    /// Device code: the sign-in screen is shown for each new code (not for each poll),
    /// `/status` says sign_in_required with the code, and a token plays.
    #[test]
    fn sign_in_screen_shows_each_new_code_once_and_a_token_plays() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        let waiting = |code: &str, now: Instant| {
            let mut p = Problem::new(ProblemId::SignInRequired);
            p.sign_in = Some(Box::new(crate::auth::device_code::SignInPrompt {
                user_code: code.into(),
                verification_uri: "https://microsoft.com/devicelogin".into(),
                expires_at: now + Duration::from_secs(900),
                expires_utc: "2026-06-01T09:15:00Z".into(),
            }));
            Input::Token(TokenState::Failed {
                problem: p,
                next_attempt: None,
            })
        };
        let shown = |out: &[Output], code: &str| {
            has(out, |o| {
                matches!(o, Output::ShowProblem { problem, .. }
                    if problem.sign_in.as_ref().is_some_and(|s| s.user_code == code))
            })
        };
        let now = r.now;
        assert!(shown(&r.send(waiting("FIRST", now)), "FIRST"));
        let snap = r.p.snapshot();
        assert_eq!(snap.state, State::SignInRequired);
        let sign_in = snap.sign_in.expect("the code on /status");
        assert_eq!(sign_in.user_code, "FIRST");
        assert_eq!(sign_in.expires_at, "2026-06-01T09:15:00Z");
        // A poll that found the code still pending republishes it: not shown again.
        assert!(!has(&r.at(5).send(waiting("FIRST", now)), |o| matches!(
            o,
            Output::ShowProblem { .. }
        )));
        // The code expired and a new one came: shown.
        assert!(shown(&r.at(900).send(waiting("SECOND", now)), "SECOND"));
        let out = r.at(905).send(Input::Token(token(1)));
        assert!(out.contains(&Output::HideProblem), "{out:?}");
        assert_eq!(r.p.snapshot().sign_in, None);
    }

    #[test]
    fn network_loss_while_playing_keeps_the_report_with_a_badge() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        let out = r.at(50).send(Input::Token(TokenState::Failed {
            problem: Problem::new(ProblemId::Network),
            next_attempt: None,
        }));
        assert!(out.contains(&Output::Offline(Some(r.now))), "{out:?}");
        assert!(!has(&out, |o| matches!(o, Output::ShowProblem { .. })));
        let s = r.p.snapshot();
        assert_eq!(s.state, State::Playing);
        assert!(s.offline);
        let out = r.at(80).send(Input::Token(token(2)));
        assert!(out.contains(&Output::Offline(None)));
        assert!(!r.p.snapshot().offline);
    }

    #[test]
    fn network_loss_at_boot_is_waiting_network() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        let out = r.send(Input::Token(TokenState::Failed {
            problem: Problem::new(ProblemId::Network),
            next_attempt: None,
        }));
        assert!(has(
            &out,
            |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::Network)
        ));
        assert_eq!(r.p.snapshot().state, State::WaitingNetwork);
    }

    #[test]
    fn broken_items_are_skipped_and_named_and_all_broken_shows_status() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        let nf = Problem::new(ProblemId::ReportNotFound).with_cause("Report X not found");
        let out = r.send(Input::Resolved(Ok(vec![
            Err(nf.clone()),
            Ok(item("Ops", ContentKind::Report, &["A"], 10)),
        ])));
        assert_eq!(prepared(&out), vec![("e1".into(), Some("Ops-p0".into()))]);
        assert!(r.p.snapshot().items[0].skipped);
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        let out = r.send(Input::Resolved(Ok(vec![Err(nf)])));
        assert!(has(
            &out,
            |o| matches!(o, Output::ShowProblem { problem, .. } if problem.cause == "Report X not found")
        ));
    }

    #[test]
    fn empty_playlist_says_so() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        let out = r.send(Input::Resolved(Ok(vec![])));
        assert!(
            has(
                &out,
                |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::Config && problem.cause.contains("empty"))
            ),
            "{out:?}"
        );
    }

    #[test]
    fn not_configured_state() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        let out = r.send(Input::Config {
            problem: Problem::new(ProblemId::Config),
            not_configured: true,
        });
        assert!(has(&out, |o| matches!(o, Output::ShowProblem { .. })));
        assert_eq!(r.p.snapshot().state, State::NotConfigured);
    }

    #[test]
    fn data_refresh_runs_one_at_a_time() {
        let mut items = three_items();
        if let Ok(it) = &mut items[1] {
            it.refresh_seconds = Some(15);
        }
        let mut single = vec![items.remove(1)];
        if let Ok(it) = &mut single[0] {
            it.seconds = 3600;
        }
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        r.send(Input::Resolved(Ok(single)));
        r.rendered("e1");
        let count = |out: &[Output]| {
            out.iter()
                .filter(|o| matches!(o, Output::Page(ToPage::Refresh { .. })))
                .count()
        };
        let mut refreshes = 0;
        for t in 1..=60 {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            refreshes += count(&r.tick());
        }
        // Refreshed at 15 s; the next two are skipped because no render confirmed the first.
        assert_eq!(refreshes, 1);
        r.rendered("e1");
        let mut more = 0;
        for t in 61..=80 {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            more += count(&r.tick());
        }
        assert_eq!(more, 1);
    }
}
