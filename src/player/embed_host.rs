//! Whether the embed host can be reached: when to probe it, and what a failed probe means.
//!
//! The web view gives no error to the page when an embed frame cannot load, so a blocked
//! `app.powerbi.com` looks like a report that never renders. The player asks for a probe of the
//! host (see `crate::reach`) when the web view reports a failed embed resource or an embed
//! has not loaded in time; a failed probe is a network problem that is retried with backoff,
//! never a reason to give up on the playlist items.

use std::time::{Duration, Instant};

use crate::problem::Problem;

/// Probes no closer together than this, whatever asks for them: one failing iframe reports
/// several failed resources at once.
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The first wait after a failed probe; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// A blocked host is usually opened by a person on the firewall: once it is, the screen should
/// notice within half a minute.
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(super) struct EmbedHostWatch {
    /// Why the host cannot be reached, since the last failed probe.
    problem: Option<Problem>,
    /// The host last probed, probed again on retries.
    host: String,
    /// A probe is running (at most one at a time).
    probing: bool,
    last_probe: Option<Instant>,
    /// When to probe again while the host is unreachable.
    retry_at: Option<Instant>,
    failed_in_a_row: u32,
}

/// What a probe's result changes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The host became (or stays) unreachable.
    Unreachable,
    /// It was unreachable and answers again: embed afresh.
    Recovered,
    /// It answers, as it did: whatever stops the embed is something else.
    Reachable,
}

impl EmbedHostWatch {
    /// Something suggests `host` is blocked: may a probe of it start now?
    pub(super) fn ask(&mut self, now: Instant, host: &str) -> bool {
        if self.probing
            || self.problem.is_some()
            || self
                .last_probe
                .is_some_and(|t| now.saturating_duration_since(t) < MIN_INTERVAL)
        {
            return false;
        }
        host.clone_into(&mut self.host);
        self.start(now);
        true
    }

    /// The host the running (or due) probe is for.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// Is the retry of an unreachable host due? Starts it if so.
    pub(super) fn retry_due(&mut self, now: Instant) -> bool {
        if self.probing || self.retry_at.is_none_or(|t| now < t) {
            return false;
        }
        self.start(now);
        true
    }

    fn start(&mut self, now: Instant) {
        self.probing = true;
        self.last_probe = Some(now);
        self.retry_at = None;
    }

    pub(super) fn on_result(&mut self, now: Instant, result: Result<(), Problem>) -> Change {
        self.probing = false;
        match result {
            Err(problem) => {
                let wait = FIRST_RETRY
                    .saturating_mul(2u32.saturating_pow(self.failed_in_a_row))
                    .min(MAX_RETRY);
                self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
                self.retry_at = Some(now + wait);
                self.problem = Some(problem);
                Change::Unreachable
            }
            Ok(()) => {
                self.failed_in_a_row = 0;
                self.retry_at = None;
                match self.problem.take() {
                    Some(_) => Change::Recovered,
                    None => Change::Reachable,
                }
            }
        }
    }

    /// The last probe passed and none is running.
    pub(super) fn recently_reachable(&self) -> bool {
        !self.probing && self.problem.is_none() && self.last_probe.is_some()
    }

    /// The host is known to be unreachable: no embed can load now.
    pub(super) fn blocked(&self) -> bool {
        self.problem.is_some()
    }

    /// The problem to show, and when the next attempt is.
    pub(super) fn problem(&self) -> Option<(&Problem, Option<Instant>)> {
        self.problem.as_ref().map(|p| (p, self.retry_at))
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.probing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemId;

    fn unreachable() -> Result<(), Problem> {
        Err(Problem::new(ProblemId::EmbedUnreachable))
    }

    #[test]
    fn one_probe_at_a_time_and_not_too_often() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = EmbedHostWatch::default();
        assert!(w.ask(s(0), "app.powerbi.com"));
        assert!(!w.ask(s(1), "app.powerbi.com"), "one is running");
        assert_eq!(w.on_result(s(2), Ok(())), Change::Reachable);
        assert!(
            !w.ask(s(3), "app.powerbi.com"),
            "too soon after the last one"
        );
        assert!(w.ask(s(5), "x.powerbi.com"));
        assert_eq!(w.host(), "x.powerbi.com");
    }

    #[test]
    fn an_unreachable_host_is_retried_with_backoff_until_it_answers() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = EmbedHostWatch::default();
        assert!(w.ask(s(0), "app.powerbi.com"));
        assert_eq!(w.on_result(s(1), unreachable()), Change::Unreachable);
        assert!(w.blocked());
        assert_eq!(w.problem().unwrap().1, Some(s(6)));
        assert!(
            !w.ask(s(2), "app.powerbi.com"),
            "retries follow the backoff, not every failed resource"
        );
        assert!(!w.retry_due(s(5)));
        assert_eq!(w.deadline(), Some(s(6)));
        assert!(w.retry_due(s(6)));
        assert_eq!(w.deadline(), None, "running");
        assert_eq!(w.on_result(s(7), unreachable()), Change::Unreachable);
        assert_eq!(w.deadline(), Some(s(17)), "10 s after the second failure");
        for _ in 0..5 {
            let at = w.deadline().unwrap();
            assert!(w.retry_due(at));
            w.on_result(at, unreachable());
        }
        let last = w.problem().unwrap().1.unwrap();
        assert!(w.retry_due(last));
        assert_eq!(w.on_result(last, unreachable()), Change::Unreachable);
        assert_eq!(w.deadline(), Some(last + MAX_RETRY), "capped");
        assert!(w.retry_due(last + MAX_RETRY));
        assert_eq!(w.on_result(last + MAX_RETRY, Ok(())), Change::Recovered);
        assert!(!w.blocked());
        assert_eq!((w.problem(), w.deadline()), (None, None));
    }
}
