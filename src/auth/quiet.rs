//! Quiet hours for the sign-in: while the screen is dark out of its `[display] on` hours (or
//! turned off with `pbikiosk display off`) the player loads nothing and needs no token, so the
//! token is not renewed either: no request reaches the sign-in host (or, for a service
//! principal, Power BI's embed-token endpoint) while nobody watches.
//!
//! Renewals resume at [`Quiet::Until`]'s instant, which the player sets ahead of the moment it
//! prepares the first report (see `display_power`): the first renewal after "off" happens
//! before the preparation, so the screen never lights on an expired token.
//!
//! What this relies on: Entra ID refresh tokens stay usable for 90 days without use (and a
//! refresh replaces them with a new one), so skipping renewals for a weekend or a holiday is
//! safe. A held sign-in is nevertheless renewed at least every [`KEEPALIVE`] however long the
//! screen stays dark, which keeps a device-code sign-in (the one a person would have to repeat)
//! alive with a wide margin. A password sign-in needs no refresh token to come back (it signs
//! in again), and a service principal has none.
//!
//! Pure: every decision takes `now`.

use std::time::{Duration, Instant};

/// A held sign-in is renewed at least this often, even while quiet: far inside the 90 days an
/// unused refresh token lasts, and one request a week is no traffic to speak of.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long an indefinite hold sleeps before it looks again (nothing is sent when it does).
const RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Whether the player needs tokens kept fresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Quiet {
    /// The screen is on, or the report is being prepared: renew as usual.
    #[default]
    Awake,
    /// The player idles out of hours: renewals wait until this instant (ahead of the next
    /// preparation), or with `None` (an administrator's `display off`, hours that never begin)
    /// until the player says otherwise.
    Until(Option<Instant>),
}

impl Quiet {
    /// Whether two values mean the same hold, to within a second: the player works the
    /// instant out again from the wall clock every few seconds, and a jitter of milliseconds
    /// must not wake the sign-in task each time.
    pub(crate) fn same_as(self, other: Quiet) -> bool {
        match (self, other) {
            (Quiet::Until(Some(a)), Quiet::Until(Some(b))) => {
                a.max(b).duration_since(a.min(b)) < Duration::from_secs(1)
            }
            (a, b) => a == b,
        }
    }
}

/// When work the session has due at `due` may happen, given `quiet`. `renewed` is when the
/// held sign-in last got a token (`None`: none in this run), for the keep-alive.
///
/// A hold only ever postpones: work already due later than the hold keeps its time. An
/// indefinite hold comes back every [`RECHECK`] to look again, and sends nothing then unless
/// the keep-alive is due.
pub(crate) fn renewal_at(
    now: Instant,
    due: Instant,
    quiet: Quiet,
    renewed: Option<Instant>,
) -> Instant {
    let Quiet::Until(resume) = quiet else {
        return due;
    };
    let keepalive = renewed.and_then(|r| r.checked_add(KEEPALIVE));
    let hold = match (resume, keepalive) {
        (Some(r), Some(k)) => r.min(k),
        (Some(r), None) => r,
        (None, Some(k)) => k,
        (None, None) => now.checked_add(RECHECK).unwrap_or(now),
    };
    due.max(hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn awake_changes_nothing() {
        let t0 = Instant::now();
        assert_eq!(
            renewal_at(t0, at(t0, 60), Quiet::Awake, Some(t0)),
            at(t0, 60)
        );
    }

    #[test]
    fn quiet_waits_for_the_resume_and_never_brings_work_forward() {
        let t0 = Instant::now();
        let quiet = Quiet::Until(Some(at(t0, 10 * H)));
        // Due in the night: waits for the resume.
        assert_eq!(renewal_at(t0, at(t0, H), quiet, Some(t0)), at(t0, 10 * H));
        // Due after the resume anyway: unchanged.
        assert_eq!(
            renewal_at(t0, at(t0, 11 * H), quiet, Some(t0)),
            at(t0, 11 * H)
        );
    }

    #[test]
    fn a_long_hold_still_renews_a_held_sign_in_weekly() {
        let t0 = Instant::now();
        // Off by an administrator, no end known: the keep-alive is what wakes it.
        let off = Quiet::Until(None);
        assert_eq!(renewal_at(t0, at(t0, H), off, Some(t0)), t0 + KEEPALIVE);
        // A resume beyond the keep-alive (a screen off for weeks by its hours).
        let far = Quiet::Until(Some(t0 + KEEPALIVE * 2));
        assert_eq!(renewal_at(t0, at(t0, H), far, Some(t0)), t0 + KEEPALIVE);
        // Nothing held: an indefinite hold only looks again a day later.
        assert_eq!(renewal_at(t0, at(t0, 60), off, None), at(t0, 24 * H));
    }

    #[test]
    fn the_same_hold_within_a_second_is_no_change() {
        let t0 = Instant::now();
        let a = Quiet::Until(Some(t0));
        assert!(a.same_as(Quiet::Until(Some(t0 + Duration::from_millis(400)))));
        assert!(!a.same_as(Quiet::Until(Some(t0 + Duration::from_secs(2)))));
        assert!(!a.same_as(Quiet::Until(None)));
        assert!(!a.same_as(Quiet::Awake));
        assert!(Quiet::Awake.same_as(Quiet::Awake));
    }
}
