//! What the player reports about itself on the status endpoint, and the counters behind it.

use std::collections::VecDeque;

use serde::Serialize;

use super::Player;
use crate::problem::{ProblemId, RetryClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    SigningIn,
    Playing,
    Problem,
    WaitingNetwork,
    NotConfigured,
    /// Device-code sign-in: the screen shows a code for a person to sign in with.
    SignInRequired,
}

impl State {
    /// Every state, for the one-hot `pbikiosk_state` metric.
    pub(crate) const ALL: [State; 7] = [
        State::Starting,
        State::SigningIn,
        State::Playing,
        State::Problem,
        State::WaitingNetwork,
        State::NotConfigured,
        State::SignInRequired,
    ];

    /// The name `/status` gives it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::SigningIn => "signing_in",
            State::Playing => "playing",
            State::Problem => "problem",
            State::WaitingNetwork => "waiting_network",
            State::NotConfigured => "not_configured",
            State::SignInRequired => "sign_in_required",
        }
    }
}

/// The code on the sign-in screen, for `/status` (loopback only): someone at a desk can read
/// it off without walking to the screen. Never a token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SignInStatus {
    pub user_code: String,
    pub verification_uri: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// What `/status` shows about the current item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NowShowing {
    pub index: usize,
    pub name: String,
    /// The page the player put on screen.
    pub page: Option<String>,
    /// The page the embed reported showing (from Power BI's own `pageChanged`).
    pub page_reported: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ItemStatus {
    pub index: usize,
    pub name: Option<String>,
    pub skipped: bool,
    pub problem: Option<ProblemId>,
    pub message: Option<String>,
}

/// Counters and state for the status endpoint. Never a token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub state: State,
    pub problem: Option<ProblemId>,
    pub problem_message: Option<String>,
    pub item: Option<NowShowing>,
    pub items: Vec<ItemStatus>,
    pub offline: bool,
    pub rendered_total: u64,
    /// Items the page has put on screen (a `shown` from the page; rendered items may still
    /// be waiting off-screen).
    pub shown_total: u64,
    pub switches_total: u64,
    pub token_refreshes_total: u64,
    pub page_reloads_total: u64,
    pub last_switch_gap_ms: Option<f64>,
    pub switch_gaps: Option<GapSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignInStatus>,
    pub memory: MemoryStatus,
    /// When an embed last finished rendering; `/status` and `/metrics` show its age.
    #[serde(skip)]
    pub last_rendered_at: Option<std::time::Instant>,
    /// When the token the page holds (Entra access token or embed token) must be replaced;
    /// `/status` and `/metrics` show the seconds left. Never the token.
    #[serde(skip)]
    pub token_expires_at: Option<std::time::Instant>,
    /// Screen power by the `[display] on` hours.
    pub display: super::DisplayStatus,
    /// The fleet file (`[fleet] url`), when the config has one. The player knows nothing of
    /// it; the driver fills it in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetStatus>,
}

/// The memory policy on `/status`: the tree's PSS against its baseline, and the recycles of
/// the web process it caused (none of them is a page reload).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryStatus {
    /// The latest sample of the process tree (player and its web processes), in MiB.
    pub tree_pss_mib: Option<f64>,
    /// The highest level over the baseline window after the first render, in MiB.
    pub baseline_pss_mib: Option<f64>,
    /// The tree may grow this far above the baseline before a recycle; 0: recycling is off.
    pub recycle_margin_mib: f64,
    pub web_process_recycles_total: u64,
    /// When the web process was last replaced (RFC 3339, UTC). The player knows instants
    /// only; the driver fills this in.
    pub last_recycle: Option<String>,
    /// Why: `"memory"` (over the baseline plus the margin, at an item switch) or
    /// `"quiet_hours"` (the screen went dark for the night and the tree had grown).
    pub last_recycle_reason: Option<&'static str>,
    /// The latest sample in bytes, for `/metrics`.
    #[serde(skip)]
    pub tree_pss_bytes: Option<u64>,
    #[serde(skip)]
    pub baseline_pss_bytes: Option<u64>,
}

/// How many recent switch gaps the summary covers.
const GAP_HISTORY: usize = 1000;

/// Switch gaps between items as the page measured them (last frame of the old item to first
/// frame of the new one), over the recent [`GAP_HISTORY`] switches.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GapSummary {
    pub count: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl GapSummary {
    fn of(gaps: &VecDeque<f64>) -> Option<Self> {
        if gaps.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = gaps.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            count: v.len(),
            median_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: v[v.len() - 1],
        })
    }
}

/// The player's running totals, as [`Snapshot`] reports them.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Embeds that rendered (each counted once).
    pub rendered: u64,
    pub shown: u64,
    pub switches: u64,
    pub token_refreshes: u64,
    pub page_reloads: u64,
    pub last_gap_ms: Option<f64>,
    pub last_rendered_at: Option<std::time::Instant>,
    /// Recent switch gaps (ms, measured in the page), at most [`GAP_HISTORY`].
    gaps: VecDeque<f64>,
}

impl Counters {
    /// The page put the visible item on screen, `gap_ms` after the previous one's last frame.
    pub fn record_shown(&mut self, gap_ms: Option<f64>) {
        self.shown += 1;
        self.last_gap_ms = gap_ms;
        if let Some(g) = gap_ms {
            if self.gaps.len() == GAP_HISTORY {
                self.gaps.pop_front();
            }
            self.gaps.push_back(g);
        }
    }
}

impl Player {
    pub fn snapshot(&self) -> Snapshot {
        let blocking = self.blocking_problem();
        let state = if self.not_configured {
            State::NotConfigured
        } else if let Some((p, _)) = &blocking {
            if p.sign_in.is_some() {
                State::SignInRequired
            } else if p.retry_class() == RetryClass::Transient && self.visible.is_none() {
                State::WaitingNetwork
            } else {
                State::Problem
            }
        } else if self.visible.is_some() {
            State::Playing
        } else if !self.tokens.seen {
            State::SigningIn
        } else {
            State::Starting
        };
        let item = self.visible.as_ref().and_then(|v| {
            // An item of a replaced playlist keeps its name until it leaves the screen.
            let (index, name) = match self.item(v.item) {
                Some(it) => (v.item, it.resolved.name.clone()),
                None if v.item == super::REPLACED_ITEM => (0, self.replaced_name.clone()?),
                None => return None,
            };
            Some(NowShowing {
                index,
                name,
                page: self
                    .current_page
                    .clone()
                    .or_else(|| v.shows.page_display.clone()),
                page_reported: v.reported_page.clone(),
            })
        });
        let items = self
            .items
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, st)| ItemStatus {
                index: i,
                name: st.resolved.as_ref().ok().map(|it| it.resolved.name.clone()),
                skipped: st.skipped,
                problem: st
                    .resolved
                    .as_ref()
                    .err()
                    .map(|p| p.id)
                    .or_else(|| st.skipped.then_some(ProblemId::EmbedFailed)),
                message: st.resolved.as_ref().err().map(|p| p.cause.clone()),
            })
            .collect();
        let sign_in = blocking
            .as_ref()
            .and_then(|(p, _)| p.sign_in.as_deref())
            .map(|s| SignInStatus {
                user_code: s.user_code.clone(),
                verification_uri: s.verification_uri.clone(),
                expires_at: s.expires_utc.clone(),
            });
        Snapshot {
            state,
            sign_in,
            problem: blocking.as_ref().map(|(p, _)| p.id),
            problem_message: blocking.map(|(p, _)| p.cause),
            item,
            items,
            offline: self.offline_since.is_some(),
            rendered_total: self.counters.rendered,
            shown_total: self.counters.shown,
            switches_total: self.counters.switches,
            token_refreshes_total: self.counters.token_refreshes,
            page_reloads_total: self.counters.page_reloads,
            last_switch_gap_ms: self.counters.last_gap_ms,
            switch_gaps: GapSummary::of(&self.counters.gaps),
            memory: self.memory_status(),
            last_rendered_at: self.counters.last_rendered_at,
            token_expires_at: self.tokens.expires_at,
            display: self.display_status(),
            fleet: None,
        }
    }
}

impl Player {
    fn memory_status(&self) -> MemoryStatus {
        let mib = |b: u64| (b as f64 / super::MIB as f64 * 10.0).round() / 10.0;
        let p = &self.recycle;
        MemoryStatus {
            tree_pss_mib: p.last_sample().map(mib),
            baseline_pss_mib: p.baseline().map(mib),
            recycle_margin_mib: mib(self.settings.recycle.margin_bytes),
            web_process_recycles_total: p.recycles(),
            last_recycle: None,
            last_recycle_reason: p.last_reason.map(|r| r.as_str()),
            tree_pss_bytes: p.last_sample(),
            baseline_pss_bytes: p.baseline(),
        }
    }

    /// When the web process was last replaced (for the driver's wall-clock stamp).
    pub fn last_recycle(&self) -> Option<std::time::Instant> {
        self.recycle.last_recycle()
    }

    /// How often the driver should feed [`super::Input::Memory`].
    pub fn memory_sample_every(&self) -> std::time::Duration {
        self.recycle.sample_every()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_status_names() {
        for st in State::ALL {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
    }

    #[test]
    fn gap_history_keeps_the_most_recent() {
        let mut c = Counters::default();
        assert_eq!(GapSummary::of(&c.gaps), None);
        c.record_shown(None);
        assert_eq!((c.shown, c.last_gap_ms), (1, None));
        assert!(c.gaps.is_empty());
        // The first gap is the largest; it leaves once GAP_HISTORY newer ones arrived.
        c.record_shown(Some(5000.0));
        for _ in 0..GAP_HISTORY {
            c.record_shown(Some(10.0));
        }
        let g = GapSummary::of(&c.gaps).unwrap();
        assert_eq!(g.count, GAP_HISTORY);
        assert_eq!(g.max_ms, 10.0);
        assert_eq!(c.shown, 2 + GAP_HISTORY as u64);
        assert_eq!(c.last_gap_ms, Some(10.0));
    }
}
