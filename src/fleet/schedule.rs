//! The pure parts of polling: when the next fetch is due, what conditional-request headers to
//! send, and what an answer's status means. No clock is read here: every instant comes in.

use std::time::{Duration, Instant};

use crate::problem::{Problem, ProblemId};

/// What the server said about the version we hold, to ask for a new one only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Validators {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    /// `If-None-Match` and `If-Modified-Since` for the next request. Both are sent when both
    /// are known: a server that does not understand one still understands the other (RFC 9110
    /// says a server that knows ETags decides by `If-None-Match` alone).
    pub(crate) fn conditional_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(e) = &self.etag {
            h.push(("if-none-match", e.clone()));
        }
        if let Some(m) = &self.last_modified {
            h.push(("if-modified-since", m.clone()));
        }
        h
    }
}

/// When to poll: at once at start, then every `every` after each attempt, whatever its outcome.
/// A failing server gets no more requests than a healthy one: a broken file is a person's to
/// fix, and an unreachable server is not helped by more requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    every: Duration,
    next: Option<Instant>,
}

impl Schedule {
    pub(crate) fn new(every: Duration) -> Self {
        Self { every, next: None }
    }

    #[cfg(test)]
    fn every(&self) -> Duration {
        self.every
    }

    /// Whether a fetch is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// When the next fetch is due; `None`: now.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.next
    }

    /// A fetch was made at `now`.
    pub(crate) fn attempted(&mut self, now: Instant) {
        self.next = Some(now + self.every);
    }
}

/// What an answer's status means for the fleet file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// A file to read (200).
    Fresh,
    /// The file we hold is current (304).
    NotModified,
    /// Anything else: the last good file stays.
    Failed(Problem),
}

/// Judge an answer's status. `url` is the address as shown (no credentials).
pub(crate) fn judge(status: u16, url: &str) -> Verdict {
    match status {
        200 => Verdict::Fresh,
        304 => Verdict::NotModified,
        401 | 403 => Verdict::Failed(
            Problem::new(ProblemId::FleetUnreachable)
                .with_cause(format!("The fleet server refused the request for {url} (HTTP {status})."))
                .with_fix("Check [fleet] bearer_token_file: the token must be one the fleet server accepts for this address."),
        ),
        404 => Verdict::Failed(
            Problem::new(ProblemId::FleetUnreachable)
                .with_cause(format!("The fleet server has no file at {url} (HTTP 404)."))
                .with_fix("Put this screen's file at that address, or correct [fleet] url (placeholders are filled in as `pbikiosk check` shows)."),
        ),
        300..=399 => Verdict::Failed(
            Problem::new(ProblemId::FleetUnreachable)
                .with_cause(format!("The fleet server answered {url} with a redirect (HTTP {status}); redirects are not followed."))
                .with_fix("Set [fleet] url to the final address."),
        ),
        _ => Verdict::Failed(
            Problem::new(ProblemId::FleetUnreachable)
                .with_cause(format!("The fleet server answered {url} with HTTP {status}.")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_at_once_then_every_interval_whatever_the_outcome() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(300));
        assert!(s.due(t0), "the first fetch is at once");
        s.attempted(t0);
        assert!(!s.due(t0 + Duration::from_secs(299)));
        assert!(s.due(t0 + Duration::from_secs(300)));
        assert_eq!(s.next_at(), Some(t0 + Duration::from_secs(300)));
        s.attempted(t0 + Duration::from_secs(301));
        assert!(!s.due(t0 + Duration::from_secs(400)));
        assert_eq!(s.every(), Duration::from_secs(300));
    }

    #[test]
    fn conditional_headers_carry_what_the_server_said() {
        assert!(Validators::default().conditional_headers().is_empty());
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Mon, 30 Nov 2026 08:00:00 GMT".into()),
        };
        assert_eq!(
            v.conditional_headers(),
            vec![
                ("if-none-match", "\"abc\"".to_owned()),
                (
                    "if-modified-since",
                    "Mon, 30 Nov 2026 08:00:00 GMT".to_owned()
                ),
            ]
        );
        let only_date = Validators { etag: None, ..v };
        assert_eq!(only_date.conditional_headers().len(), 1);
    }

    #[test]
    fn statuses_are_judged() {
        assert_eq!(judge(200, "u"), Verdict::Fresh);
        assert_eq!(judge(304, "u"), Verdict::NotModified);
        for (status, words) in [
            (401, "bearer_token_file"),
            (404, "Put this screen's file"),
            (302, "final address"),
        ] {
            match judge(status, "https://h/x.toml") {
                Verdict::Failed(p) => {
                    assert_eq!(p.id, ProblemId::FleetUnreachable);
                    assert!(p.fix.contains(words), "{status}: {}", p.fix);
                    assert!(p.cause.contains("https://h/x.toml"), "{}", p.cause);
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(judge(500, "u"), Verdict::Failed(_)));
    }
}
