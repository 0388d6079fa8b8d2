//! Time windows in the device's local time: when a playlist item plays (`when`) and when the
//! screen is on (`[display] on`). Pure: the caller passes the time, nothing here reads a clock.
//!
//! A window is written `"<days> <HH:MM>-<HH:MM>"`: days as `mon`…`sun`, ranges (`mon-fri`, and
//! `fri-mon` wrapping over the weekend) and comma lists (`sat,sun`, `mon-wed,fri`). A window whose
//! end is not after its start runs past midnight: `fri 22:00-02:00` is Friday 22:00 to Saturday
//! 02:00, so the days name the day a window *starts*. `24:00` is accepted as an end, for
//! "until midnight".
//!
//! Windows are matched against the local wall-clock time, which is what a person writing
//! "07:00" means on both sides of a daylight-saving change: on the spring-forward night an hour
//! that does not exist is simply never in a window, on the fall-back night the repeated hour is
//! in a window both times. Nothing is remembered between calls, so a clock that jumps (NTP at
//! boot, a dead RTC battery) gives the right answer at the next call.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike};
use thiserror::Error;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Why a window does not parse. The text never contains the whole value (it may have been
/// typed into the wrong key); only short day tokens are quoted.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum WindowError {
    #[error(
        "a window is written \"<days> <HH:MM>-<HH:MM>\", with one space between days and times"
    )]
    Shape,
    #[error("{0} is not a day: days are mon, tue, wed, thu, fri, sat, sun")]
    Day(String),
    #[error(
        "the days part is not valid: days are mon…sun, ranges like mon-fri, lists like sat,sun"
    )]
    Days,
    #[error(
        "the times are not valid: write them as HH:MM-HH:MM with a 24-hour clock, like 07:30-19:00"
    )]
    Times,
    #[error("the window starts and ends at the same time")]
    Empty,
}

/// One window: the days it starts on and its start and end in minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// Monday first, as `chrono::Weekday::num_days_from_monday`.
    days: [bool; 7],
    start: u16,
    /// `1..=1440`; not after `start` means the window runs past midnight.
    end: u16,
}

impl Window {
    pub(crate) fn parse(text: &str) -> Result<Self, WindowError> {
        let mut parts = text.split_whitespace();
        let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(WindowError::Shape);
        };
        let days = parse_days(&days.to_ascii_lowercase())?;
        let (start, end) = times.split_once('-').ok_or(WindowError::Times)?;
        let start = parse_time(start).filter(|&m| m < MINUTES_PER_DAY);
        let end = parse_time(end).filter(|&m| m > 0);
        let (Some(start), Some(end)) = (start, end) else {
            return Err(WindowError::Times);
        };
        if start == end {
            return Err(WindowError::Empty);
        }
        Ok(Self { days, start, end })
    }

    fn contains(&self, t: NaiveDateTime) -> bool {
        let day = t.weekday().num_days_from_monday() as usize;
        let minute = (t.hour() * 60 + t.minute()) as u16;
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening part belongs to today, the morning part to yesterday.
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

/// A set of windows; empty means "always".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    windows: Vec<Window>,
}

impl Schedule {
    pub(crate) fn new(windows: Vec<Window>) -> Self {
        Self { windows }
    }

    pub(crate) fn is_always(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether local wall-clock time `t` is inside one of the windows.
    pub(crate) fn contains(&self, t: NaiveDateTime) -> bool {
        self.is_always() || self.windows.iter().any(|w| w.contains(t))
    }

    /// Whether the instant `now` is inside, in `now`'s own time zone.
    pub(crate) fn active_at<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> bool {
        self.contains(now.naive_local())
    }

    /// The first minute boundary after `now` at which [`Self::active_at`] changes, looking at
    /// most eight days ahead (one week plus a night that runs past midnight). `None` for a
    /// schedule that never changes. Walks in real minutes, so daylight-saving changes land where
    /// the wall clock puts them.
    pub(crate) fn next_change<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        if self.is_always() {
            return None;
        }
        let state = self.active_at(now);
        let minute_start = now.clone()
            - Duration::seconds(i64::from(now.second()))
            - Duration::nanoseconds(i64::from(now.nanosecond()));
        (1..=8 * i64::from(MINUTES_PER_DAY))
            .map(|m| minute_start.clone() + Duration::minutes(m))
            .find(|t| self.active_at(t) != state)
    }
}

/// Which of `schedules` are active at `now`, and the earliest instant any of them changes.
pub(crate) fn playlist_at<Tz: TimeZone>(
    schedules: &[Schedule],
    now: &DateTime<Tz>,
) -> (Vec<bool>, Option<DateTime<Tz>>) {
    let active = schedules.iter().map(|s| s.active_at(now)).collect();
    let next = schedules.iter().filter_map(|s| s.next_change(now)).min();
    (active, next)
}

/// Whether the screen should be lit, by the `[display] on` hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    On,
    /// Still off, but the hours begin within the lead time: the report is prepared behind the
    /// dark screen, so the first thing visible when it lights is the report, not a spinner.
    Waking,
    Off,
}

/// What the screen should be at `now`, preparing `lead` ahead of the next start.
pub(crate) fn power_at<Tz: TimeZone>(on: &Schedule, now: &DateTime<Tz>, lead: Duration) -> Power {
    if on.active_at(now) {
        return Power::On;
    }
    match on.next_change(now) {
        Some(t) if t <= now.clone() + lead => Power::Waking,
        _ => Power::Off,
    }
}

/// How a status screen names a moment in the coming week: weekday and local time.
pub(crate) fn describe<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format("%a %H:%M").to_string()
}

fn parse_days(text: &str) -> Result<[bool; 7], WindowError> {
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(part)?] = true,
        }
    }
    Ok(days)
}

fn day_index(token: &str) -> Result<usize, WindowError> {
    if token.is_empty() {
        return Err(WindowError::Days);
    }
    if let Some(i) = DAY_NAMES.iter().position(|d| *d == token) {
        return Ok(i);
    }
    // Quote a short word back (it helps to see "thur" named); anything longer may be a
    // value typed into the wrong key.
    if token.len() <= 9 && token.chars().all(|c| c.is_ascii_alphabetic()) {
        Err(WindowError::Day(format!("\"{token}\"")))
    } else {
        Err(WindowError::Days)
    }
}

/// Minutes after midnight of `HH:MM`, `0..=1440` (`24:00` only as exactly that).
fn parse_time(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn sched(ws: &[&str]) -> Schedule {
        Schedule::new(ws.iter().map(|w| Window::parse(w).unwrap()).collect())
    }

    // 2026-11-30 is a Monday.
    const MON: u32 = 30;

    #[test]
    fn day_ranges_lists_and_times() {
        let s = sched(&["mon-fri 11:30-14:00", "sat 10:00-12:00"]);
        assert!(!s.contains(at(2026, 11, MON, 11, 29)));
        assert!(s.contains(at(2026, 11, MON, 11, 30)));
        assert!(s.contains(at(2026, 11, MON, 13, 59)));
        assert!(
            !s.contains(at(2026, 11, MON, 14, 0)),
            "the end is exclusive"
        );
        assert!(s.contains(at(2026, 12, 4, 12, 0)), "friday");
        assert!(s.contains(at(2026, 12, 5, 10, 0)), "saturday's own window");
        assert!(!s.contains(at(2026, 12, 5, 12, 30)));
        assert!(!s.contains(at(2026, 12, 6, 12, 0)), "sunday");

        let weekend = sched(&["sat,sun 00:00-24:00"]);
        assert!(weekend.contains(at(2026, 12, 5, 0, 0)));
        assert!(weekend.contains(at(2026, 12, 6, 23, 59)));
        assert!(!weekend.contains(at(2026, 12, 7, 0, 0)));

        let wrapping = sched(&["fri-mon 09:00-10:00"]);
        for d in [4, 5, 6, 7] {
            assert!(wrapping.contains(at(2026, 12, d, 9, 30)), "day {d}");
        }
        assert!(!wrapping.contains(at(2026, 12, 1, 9, 30)), "tuesday");

        let mixed = sched(&["MON-Wed,fri 08:00-09:00"]);
        assert!(mixed.contains(at(2026, 12, 2, 8, 0)), "wednesday, any case");
        assert!(!mixed.contains(at(2026, 12, 3, 8, 0)), "thursday");
        assert!(mixed.contains(at(2026, 12, 4, 8, 0)));
    }

    #[test]
    fn a_window_ending_before_it_starts_runs_past_midnight() {
        let s = sched(&["fri 22:00-02:00"]);
        assert!(!s.contains(at(2026, 12, 4, 21, 59)));
        assert!(s.contains(at(2026, 12, 4, 23, 0)), "friday evening");
        assert!(s.contains(at(2026, 12, 5, 1, 59)), "saturday morning");
        assert!(!s.contains(at(2026, 12, 5, 2, 0)));
        assert!(
            !s.contains(at(2026, 12, 5, 23, 0)),
            "saturday is not a start day"
        );
        assert!(
            !s.contains(at(2026, 12, 4, 1, 0)),
            "friday morning belongs to thursday"
        );
        // Sunday night into Monday wraps the week.
        let s = sched(&["sun 23:00-01:00"]);
        assert!(s.contains(at(2026, 11, MON, 0, 30)));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        use WindowError::*;
        for (text, want) in [
            ("mon-fri", Shape),
            ("mon-fri 07:00-19:00 extra", Shape),
            ("", Shape),
            ("thur 07:00-19:00", Day("\"thur\"".into())),
            ("mon-fri 7-19", Times),
            ("mon 07:00", Times),
            ("mon 25:00-26:00", Times),
            ("mon 07:60-08:00", Times),
            ("mon 24:00-01:00", Times),
            ("mon 07:00-00:00", Times),
            ("mon 07:00-07:00", Empty),
            ("mon,,tue 07:00-08:00", Days),
            ("mon- 07:00-08:00", Days),
            ("correcthorsebattery 07:00-08:00", Days),
            ("m0n 07:00-08:00", Days),
        ] {
            assert_eq!(Window::parse(text), Err(want), "{text:?}");
        }
        let long = Window::parse("correcthorsebattery 07:00-08:00").unwrap_err();
        assert!(!long.to_string().contains("horse"), "{long}");
        assert!(Window::parse("mon 7:05-19:00").is_ok(), "one-digit hours");
    }

    #[test]
    fn always_when_there_are_no_windows() {
        let s = Schedule::default();
        assert!(s.contains(at(2026, 12, 1, 3, 0)));
        assert_eq!(s.next_change(&Utc::now()), None);
    }

    #[test]
    fn next_change_finds_the_boundaries() {
        let s = sched(&["mon-fri 07:00-19:00"]);
        let now = Berlin
            .from_local_datetime(&at(2026, 12, 4, 18, 30))
            .unwrap();
        let off = s.next_change(&now).unwrap();
        assert_eq!(off.naive_local(), at(2026, 12, 4, 19, 0));
        let on = s.next_change(&off).unwrap();
        assert_eq!(on.naive_local(), at(2026, 12, 7, 7, 0), "over the weekend");
        // A window covering the whole week never changes.
        let full = sched(&["mon-sun 00:00-24:00"]);
        assert_eq!(full.next_change(&now), None);
    }

    #[test]
    fn daylight_saving_in_berlin() {
        // Spring forward: 2026-03-29 02:00 CET becomes 03:00 CEST.
        let s = sched(&["sun 02:00-02:30"]);
        let before = Berlin.from_local_datetime(&at(2026, 3, 29, 1, 0)).unwrap();
        let change = s.next_change(&before).unwrap();
        // The window's hour does not exist that night: the next start is a week later.
        assert_eq!(change.naive_local(), at(2026, 4, 5, 2, 0));

        let s = sched(&["sun 01:30-03:30"]);
        let before = Berlin.from_local_datetime(&at(2026, 3, 29, 1, 0)).unwrap();
        let on = s.next_change(&before).unwrap();
        assert_eq!(on.naive_local(), at(2026, 3, 29, 1, 30));
        let off = s.next_change(&on).unwrap();
        assert_eq!(off.naive_local(), at(2026, 3, 29, 3, 30));
        // Two wall-clock hours, one real hour.
        assert_eq!((off - on).num_minutes(), 60);

        // Fall back: 2026-10-25 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice and
        // is in the window both times.
        let s = sched(&["sun 02:00-03:00"]);
        let first = Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(); // 02:30 CEST
        let second = Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap(); // 02:30 CET
        assert!(s.active_at(&first.with_timezone(&Berlin)));
        assert!(s.active_at(&second.with_timezone(&Berlin)));
        let off = s.next_change(&first.with_timezone(&Berlin)).unwrap();
        assert_eq!(
            off.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2026, 10, 25, 2, 0, 0).unwrap()
        );
    }

    #[test]
    fn daylight_saving_in_new_york() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT; 2026-11-01 02:00 EDT becomes 01:00 EST.
        let s = sched(&["mon-sun 07:00-19:00"]);
        let sat = New_York
            .from_local_datetime(&at(2026, 3, 7, 20, 0))
            .unwrap();
        let on = s.next_change(&sat).unwrap();
        assert_eq!(
            on.naive_local(),
            at(2026, 3, 8, 7, 0),
            "07:00 local, after the jump"
        );
        assert_eq!((on - sat).num_hours(), 10, "one hour shorter night");

        let sat = New_York
            .from_local_datetime(&at(2026, 10, 31, 20, 0))
            .unwrap();
        let on = s.next_change(&sat).unwrap();
        assert_eq!(on.naive_local(), at(2026, 11, 1, 7, 0));
        assert_eq!((on - sat).num_hours(), 12, "one hour longer night");

        // A window across the repeated hour: 01:00-01:59 happens twice.
        let s = sched(&["sun 01:00-02:00"]);
        let first = Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap(); // 01:30 EDT
        let second = Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap(); // 01:30 EST
        assert!(s.active_at(&first.with_timezone(&New_York)));
        assert!(s.active_at(&second.with_timezone(&New_York)));
    }

    #[test]
    fn a_playlist_changes_at_the_first_boundary_of_any_entry() {
        let entries = [
            sched(&["mon-fri 11:30-14:00"]),
            Schedule::default(),
            sched(&["mon-fri 14:00-17:00"]),
        ];
        let now = Berlin.from_local_datetime(&at(2026, 12, 1, 12, 0)).unwrap();
        let (active, next) = playlist_at(&entries, &now);
        assert_eq!(active, vec![true, true, false]);
        let next = next.unwrap();
        assert_eq!(next.naive_local(), at(2026, 12, 1, 14, 0));
        assert_eq!(describe(&next), "Tue 14:00");
        let (active, _) = playlist_at(&entries, &next);
        assert_eq!(active, vec![false, true, true]);
    }

    #[test]
    fn the_screen_wakes_ahead_of_its_hours() {
        let on = sched(&["mon-fri 07:00-19:00"]);
        let lead = Duration::minutes(2);
        let p = |h, m| {
            power_at(
                &on,
                &Berlin.from_local_datetime(&at(2026, 12, 1, h, m)).unwrap(),
                lead,
            )
        };
        assert_eq!(p(6, 57), Power::Off);
        assert_eq!(p(6, 58), Power::Waking);
        assert_eq!(p(6, 59), Power::Waking);
        assert_eq!(p(7, 0), Power::On);
        assert_eq!(p(18, 59), Power::On);
        assert_eq!(p(19, 0), Power::Off);
        assert_eq!(power_at(&Schedule::default(), &Utc::now(), lead), Power::On);
    }

    #[test]
    fn a_clock_that_jumps_a_day_either_way() {
        // Nothing is remembered: the answer follows the clock wherever it lands.
        let s = sched(&["mon-fri 07:00-19:00"]);
        let fri_noon = Berlin.from_local_datetime(&at(2026, 12, 4, 12, 0)).unwrap();
        assert!(s.active_at(&fri_noon));
        let jumped_ahead = fri_noon + Duration::days(1);
        assert!(!s.active_at(&jumped_ahead), "saturday");
        assert_eq!(
            s.next_change(&jumped_ahead).unwrap().naive_local(),
            at(2026, 12, 7, 7, 0)
        );
        let jumped_back = fri_noon - Duration::days(1);
        assert!(s.active_at(&jumped_back), "thursday");
        assert_eq!(
            s.next_change(&jumped_back).unwrap().naive_local(),
            at(2026, 12, 3, 19, 0)
        );
    }
}
