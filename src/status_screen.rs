//! What a status screen says: for a problem, or for a device that is not configured yet.
//!
//! The wording is decided here without touching the system: the caller reads the clock and the
//! device's facts ([`Clock::now`], [`DeviceFacts::read`]) and passes them in, so every text can be
//! checked with a fixed clock.

use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Local};

use crate::bridge::{Screen, SetupView, SignInView, ToPage};
use crate::player::Activity;
use crate::problem::Problem;

/// One moment on both clocks: the monotonic one the player schedules with, and the local wall
/// clock an installer reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) local: DateTime<Local>,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self {
            now: Instant::now(),
            local: Local::now(),
        }
    }

    /// The local wall-clock time (HH:MM) of a monotonic instant.
    pub(crate) fn wall_clock(&self, t: Instant) -> String {
        let offset = if t >= self.now {
            chrono::Duration::from_std(t - self.now).unwrap_or_default()
        } else {
            -chrono::Duration::from_std(self.now - t).unwrap_or_default()
        };
        (self.local + offset).format("%H:%M").to_string()
    }
}

/// Where the device is: what an installer needs to find it (and its logs) again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceFacts {
    pub(crate) host: String,
    /// Sorted, without loopback and link-local addresses.
    pub(crate) ips: Vec<String>,
}

impl DeviceFacts {
    /// Read the host name and the addresses of the network interfaces.
    pub(crate) fn read() -> Self {
        let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into());
        let nets = sysinfo::Networks::new_with_refreshed_list().ok();
        let mut ips: Vec<String> = nets
            .iter()
            .flatten()
            .flat_map(|(_, data)| data.ip_networks().iter().map(|n| n.addr))
            .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
            .map(|ip| ip.to_string())
            .collect();
        ips.sort();
        ips.dedup();
        Self { host, ips }
    }

    /// Which device, where on the network, which version, what time the device thinks it is.
    fn rows(&self, clock: &Clock) -> Vec<(String, String)> {
        let mut rows = self.identity();
        rows.push((
            "Time on device".into(),
            clock.local.format("%Y-%m-%d %H:%M").to_string(),
        ));
        rows
    }

    /// Which device, where on the network, which version.
    fn identity(&self) -> Vec<(String, String)> {
        vec![
            ("Device".into(), self.host.clone()),
            (
                "IP address".into(),
                if self.ips.is_empty() {
                    "none (not connected)".into()
                } else {
                    self.ips.join(", ")
                },
            ),
            ("pbikiosk".into(), crate::VERSION.into()),
        ]
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// What the screens of one config generation have in common.
#[derive(Debug, Clone)]
pub(crate) struct ScreenContext {
    /// The config file, or what stands in for it (the demo's).
    pub(crate) config_path: String,
    pub(crate) not_configured: bool,
    /// The phone setup page, while it is open.
    pub(crate) setup: Option<crate::setup::Announce>,
}

/// The status screen for a problem: title, cause, fix and the facts an installer needs.
pub(crate) fn screen(
    problem: &Problem,
    next_attempt: Option<Instant>,
    ctx: &ScreenContext,
    device: &DeviceFacts,
    clock: &Clock,
) -> Screen {
    let mut facts = device.rows(clock);
    if ctx.not_configured {
        facts.push(("Configuration".into(), ctx.config_path.clone()));
        let fix = match &ctx.setup {
            Some(_) => format!(
                "Scan the QR code with a phone on the same network (or open the address), enter the PIN and follow the steps. The phone warns about the certificate: go on if the fingerprint it shows starts like the one here. Or fill in {} and run `pbikiosk check`.",
                ctx.config_path
            ),
            None => format!(
                "Fill in {}: the five sign-in values and a [[playlist]] (`pbikiosk reports --toml` lists them), then run `pbikiosk check`. The screen starts by itself.",
                ctx.config_path
            ),
        };
        return Screen {
            problem: "not_configured".into(),
            title: "This screen is not configured yet".into(),
            cause: problem.cause.clone(),
            fix,
            facts,
            next_attempt: None,
            sign_in: None,
            setup: ctx.setup.as_ref().map(|a| {
                Box::new(SetupView {
                    url: a.url.clone(),
                    pin: a.pin.clone(),
                    fingerprint: a.fingerprint.clone(),
                    qr: crate::sign_in_qr::svg_data_uri(&a.url),
                })
            }),
        };
    }
    if let Some(prompt) = &problem.sign_in {
        facts.push(("Configuration".into(), ctx.config_path.clone()));
        return Screen {
            problem: problem.id.as_str().into(),
            title: problem.id.title().into(),
            cause: problem.cause.clone(),
            fix: problem.fix.clone(),
            facts,
            next_attempt: None,
            sign_in: Some(SignInView {
                user_code: prompt.user_code.clone(),
                verification_uri: prompt.verification_uri.clone(),
                qr: crate::sign_in_qr::svg_data_uri(&prompt.verification_uri),
                expires: clock.wall_clock(prompt.expires_at),
                seconds_left: prompt
                    .expires_at
                    .saturating_duration_since(clock.now)
                    .as_secs(),
            }),
            setup: None,
        };
    }
    facts.push(("Problem".into(), problem.id.as_str().into()));
    facts.extend(
        problem
            .references()
            .into_iter()
            .map(|(label, value)| (label.to_owned(), value)),
    );
    facts.push(("Configuration".into(), ctx.config_path.clone()));
    Screen {
        problem: problem.id.as_str().into(),
        title: problem.id.title().into(),
        cause: problem.cause.clone(),
        fix: problem.fix.clone(),
        facts,
        next_attempt: next_attempt
            .map(|t| format!("{} (in {})", clock.wall_clock(t), time_to_go(t, clock))),
        sign_in: None,
        setup: None,
    }
}

/// "40 s" or "3 min" from now to `t`.
fn time_to_go(t: Instant, clock: &Clock) -> String {
    let secs = t.saturating_duration_since(clock.now).as_secs();
    // Network trouble is retried within seconds: "in 1 min" would tell the installer to wait
    // longer than the screen will.
    if secs < 60 {
        format!("{} s", secs.max(1))
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

/// The start screen's line for a step on the way to the first item, and the device under it
/// (no clock: the line changes within seconds, a time would only look stale). `account`: the
/// account signing in, as the status screens name it; never a secret.
pub(crate) fn starting(activity: &Activity, account: Option<&str>, device: &DeviceFacts) -> ToPage {
    let activity = match (activity, account) {
        (Activity::SigningIn, Some(a)) if !a.is_empty() => format!("Signing in as {a}…"),
        (Activity::SigningIn, _) => "Signing in…".into(),
        (Activity::FindingReports, _) => "Finding your reports".into(),
        (Activity::Loading(name), _) => format!("Loading ‘{name}’"),
    };
    ToPage::Starting {
        activity,
        facts: device.identity(),
    }
}

/// The corner badge while the player is offline (`None` hides it).
pub(crate) fn offline_badge(since: Option<Instant>, clock: &Clock) -> Option<String> {
    since.map(|t| format!("Offline since {}", clock.wall_clock(t)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone as _;

    use super::*;
    use crate::problem::ProblemId;

    /// 2026-06-01 09:00 local time: no daylight-saving change near it in any zone.
    fn clock() -> Clock {
        Clock {
            now: Instant::now(),
            local: Local
                .with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
                .earliest()
                .unwrap(),
        }
    }

    fn device() -> DeviceFacts {
        DeviceFacts {
            host: "kiosk-lobby".into(),
            ips: vec!["10.0.0.7".into(), "192.168.1.20".into()],
        }
    }

    fn ctx(not_configured: bool) -> ScreenContext {
        ScreenContext {
            config_path: "/etc/pbikiosk/pbikiosk.toml".into(),
            not_configured,
            setup: None,
        }
    }

    fn pairs(s: &Screen) -> Vec<(&str, &str)> {
        s.facts
            .iter()
            .map(|(l, v)| (l.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_sign_in_screen_shows_the_code_the_address_its_qr_code_and_the_time_left() {
        let c = clock();
        let mut problem = Problem::new(ProblemId::SignInRequired);
        problem.sign_in = Some(Box::new(crate::auth::device_code::SignInPrompt {
            user_code: "ABCD1234E".into(),
            verification_uri: "https://microsoft.com/devicelogin".into(),
            expires_at: c.now + Duration::from_secs(900),
            expires_utc: "2026-06-01T07:15:00Z".into(),
        }));
        let s = screen(&problem, None, &ctx(false), &device(), &c);
        assert_eq!(s.title, "Sign in to show reports");
        let view = s.sign_in.expect("a sign-in view");
        assert_eq!(view.user_code, "ABCD1234E");
        assert_eq!(view.verification_uri, "https://microsoft.com/devicelogin");
        assert!(view.qr.unwrap().starts_with("data:image/svg+xml;base64,"));
        assert_eq!(view.expires, "09:15");
        assert_eq!(view.seconds_left, 900);
        assert_eq!(s.next_attempt, None);
        // The device facts, as on every status screen.
        let labels: Vec<&str> = s.facts.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Device",
                "IP address",
                "pbikiosk",
                "Time on device",
                "Configuration"
            ]
        );
    }

    #[test]
    fn wrong_password_lists_the_microsoft_references_in_order() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials.","error_codes":[50126],"trace_id":"0a1b-trace","correlation_id":"9f8e-corr"}"#;
        let problem = Problem::from_token_error(400, body, None);
        assert_eq!(problem.id, ProblemId::InvalidCredentials);
        let c = clock();
        let s = screen(&problem, None, &ctx(false), &device(), &c);
        assert_eq!(
            pairs(&s),
            [
                ("Device", "kiosk-lobby"),
                ("IP address", "10.0.0.7, 192.168.1.20"),
                ("pbikiosk", crate::VERSION),
                ("Time on device", "2026-06-01 09:00"),
                ("Problem", "invalid_credentials"),
                ("Microsoft code", "AADSTS50126"),
                ("Trace ID", "0a1b-trace"),
                ("Correlation ID", "9f8e-corr"),
                ("Configuration", "/etc/pbikiosk/pbikiosk.toml"),
            ]
        );
        assert_eq!(s.problem, "invalid_credentials");
        assert_eq!(s.title, ProblemId::InvalidCredentials.title());
        assert_eq!(s.cause, problem.cause);
        assert_eq!(s.fix, problem.fix);
        assert_eq!(s.next_attempt, None);
    }

    #[test]
    fn not_configured_names_the_config_file_in_the_fix() {
        let problem = Problem::new(ProblemId::Unknown).with_cause("No configuration file.");
        let s = screen(&problem, None, &ctx(true), &device(), &clock());
        assert_eq!(s.problem, "not_configured");
        assert_eq!(s.title, "This screen is not configured yet");
        assert_eq!(s.cause, "No configuration file.");
        assert_eq!(
            s.fix,
            "Fill in /etc/pbikiosk/pbikiosk.toml: the five sign-in values and a [[playlist]] (`pbikiosk reports --toml` lists them), then run `pbikiosk check`. The screen starts by itself."
        );
        assert_eq!(
            s.facts.last().unwrap(),
            &(
                "Configuration".to_owned(),
                "/etc/pbikiosk/pbikiosk.toml".to_owned()
            )
        );
        assert!(!s.facts.iter().any(|(l, _)| l == "Problem"));
        assert_eq!(s.next_attempt, None);
    }

    #[test]
    fn not_configured_with_the_setup_page_open_shows_its_address_qr_pin_and_fingerprint() {
        let problem = Problem::new(ProblemId::Unknown).with_cause("No configuration file.");
        let mut c = ctx(true);
        c.setup = Some(crate::setup::Announce {
            url: "https://192.168.1.20:8443/".into(),
            pin: "042917".into(),
            fingerprint: "3A F1 09 C4 77 B2 0D 1E".into(),
        });
        let s = screen(&problem, None, &c, &device(), &clock());
        assert_eq!(s.problem, "not_configured");
        let v = s.setup.expect("the setup view");
        assert_eq!(v.url, "https://192.168.1.20:8443/");
        assert_eq!(v.pin, "042917");
        assert_eq!(v.fingerprint, "3A F1 09 C4 77 B2 0D 1E");
        assert!(v.qr.unwrap().starts_with("data:image/svg+xml;base64,"));
        assert!(s.fix.contains("Scan the QR code"), "{}", s.fix);
        assert!(s.fix.contains("/etc/pbikiosk/pbikiosk.toml"), "{}", s.fix);
        // A configured screen's problem never shows the setup page, even if it is open.
        let mut c = c.clone();
        c.not_configured = false;
        assert_eq!(screen(&problem, None, &c, &device(), &clock()).setup, None);
    }

    #[test]
    fn next_attempt_is_wall_clock_and_minutes_to_go() {
        let c = clock();
        let problem = Problem::new(ProblemId::InvalidCredentials);
        let at = c.now + Duration::from_secs(14 * 60 + 30);
        let s = screen(&problem, Some(at), &ctx(false), &device(), &c);
        assert_eq!(s.next_attempt.as_deref(), Some("09:14 (in 15 min)"));
        let s = screen(
            &problem,
            Some(c.now + Duration::from_secs(60)),
            &ctx(false),
            &device(),
            &c,
        );
        assert_eq!(s.next_attempt.as_deref(), Some("09:01 (in 1 min)"));
        let s = screen(
            &problem,
            Some(c.now + Duration::from_secs(12)),
            &ctx(false),
            &device(),
            &c,
        );
        assert_eq!(s.next_attempt.as_deref(), Some("09:00 (in 12 s)"));
    }

    #[test]
    fn a_problem_without_microsoft_references_has_no_such_rows() {
        let problem = Problem::new(ProblemId::Network);
        let s = screen(&problem, None, &ctx(false), &device(), &clock());
        let labels: Vec<&str> = s.facts.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Device",
                "IP address",
                "pbikiosk",
                "Time on device",
                "Problem",
                "Configuration"
            ]
        );
    }

    #[test]
    fn no_address_says_not_connected() {
        let offline = DeviceFacts {
            host: "kiosk".into(),
            ips: Vec::new(),
        };
        let rows = offline.rows(&clock());
        assert_eq!(
            rows[1],
            ("IP address".into(), "none (not connected)".into())
        );
    }

    #[test]
    fn offline_badge_shows_when_it_began() {
        let c = clock();
        let since = c.now - Duration::from_secs(5 * 60);
        assert_eq!(
            offline_badge(Some(since), &c).as_deref(),
            Some("Offline since 08:55")
        );
        assert_eq!(offline_badge(None, &c), None);
    }

    #[test]
    fn the_start_screen_says_each_step_and_names_the_device() {
        let steps = [
            (
                Activity::SigningIn,
                Some("svc@contoso.com"),
                "Signing in as svc@contoso.com…",
            ),
            (Activity::SigningIn, None, "Signing in…"),
            (
                Activity::FindingReports,
                Some("svc@contoso.com"),
                "Finding your reports",
            ),
            (
                Activity::Loading("Sales Overview".into()),
                None,
                "Loading ‘Sales Overview’",
            ),
        ];
        for (step, account, want) in steps {
            let ToPage::Starting { activity, facts } = starting(&step, account, &device()) else {
                panic!("not a start screen message");
            };
            assert_eq!(activity, want);
            let facts: Vec<(&str, &str)> = facts
                .iter()
                .map(|(l, v)| (l.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                facts,
                [
                    ("Device", "kiosk-lobby"),
                    ("IP address", "10.0.0.7, 192.168.1.20"),
                    ("pbikiosk", crate::VERSION),
                ]
            );
        }
    }

    #[test]
    fn facts_name_the_device() {
        let f = DeviceFacts::read().rows(&Clock::now());
        let labels: Vec<&str> = f.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["Device", "IP address", "pbikiosk", "Time on device"]
        );
        assert!(!f[0].1.is_empty());
    }
}
