//! Which page messages the core believes: only our own top-level page's.
//!
//! WebKit's IPC handler exists in every frame, including the report frames where third-party
//! custom visuals run, and the handler is told the top-level URI rather than the sender's. A
//! report frame could otherwise forge `ready` (everything re-embeds), `heartbeat` (the watchdog
//! is fed while our page hangs) or flood the log. So each launch makes a random secret that is
//! injected into the top frame only (`web/channel.js`); every message must carry it. Messages
//! that are too large, lack the secret, or exceed the rate are dropped and counted, and a drop is
//! logged at most once a minute. The secret itself never reaches a log, `/status` or a snapshot.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::bridge::FromPage;

/// A page message larger than this is dropped unread: the page's own messages are a few hundred
/// bytes, the largest (an error with its detail) a few KiB.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How many messages the page may send at once, and per second after that. The page sends a
/// heartbeat every 5 s and a handful per embed; a script error in a loop must not flood the log.
const BURST: f64 = 100.0;
const PER_SECOND: f64 = 20.0;

/// How often a drop is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The top-frame script, with the secret's placeholder.
const CHANNEL_JS: &str = include_str!("../web/channel.js");
const PLACEHOLDER: &str = "__PBIKIOSK_CHANNEL_SECRET__";

/// The per-launch secret our page proves itself with: 128 bits from the OS's RNG, as hex.
#[derive(Clone)]
pub(crate) struct PageSecret(String);

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub(crate) struct NoRandomness(#[from] rand::rand_core::OsError);

impl PageSecret {
    pub(crate) fn generate() -> Result<Self, NoRandomness> {
        use rand::TryRngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The script injected into the top frame: `web/channel.js` holding this secret.
    pub(crate) fn channel_script(&self) -> String {
        // Hex only: nothing in it can end the JS string it is put in.
        CHANNEL_JS.replace(PLACEHOLDER, &self.0)
    }

    fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

impl fmt::Debug for PageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a page message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    Oversized,
    /// Without the secret, with a wrong one, or not even our envelope: not from our page.
    Unauthenticated,
    /// From our page, but beyond the rate.
    RateLimited,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Unauthenticated => "unauthenticated",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// Dropped page messages by reason, as `/status` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DroppedMessages {
    pub unauthenticated: u64,
    pub oversized: u64,
    pub rate_limited: u64,
}

impl DroppedMessages {
    pub fn total(&self) -> u64 {
        self.unauthenticated + self.oversized + self.rate_limited
    }

    /// `(reason, count)` pairs, for the metrics' labels.
    pub(crate) fn by_reason(&self) -> [(&'static str, u64); 3] {
        [
            (DropReason::Unauthenticated.as_str(), self.unauthenticated),
            (DropReason::Oversized.as_str(), self.oversized),
            (DropReason::RateLimited.as_str(), self.rate_limited),
        ]
    }
}

/// The drop counters, written by the window's thread and read by the status endpoint.
#[derive(Debug, Clone, Default)]
pub struct PageMessageCounters(Arc<[AtomicU64; 3]>);

impl PageMessageCounters {
    pub(crate) fn record(&self, reason: DropReason) {
        let i = match reason {
            DropReason::Unauthenticated => 0,
            DropReason::Oversized => 1,
            DropReason::RateLimited => 2,
        };
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> DroppedMessages {
        let n = |i: usize| self.0[i].load(Ordering::Relaxed);
        DroppedMessages {
            unauthenticated: n(0),
            oversized: n(1),
            rate_limited: n(2),
        }
    }
}

/// A token bucket: `burst` at once, then `per_second`.
#[derive(Debug)]
struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(burst: f64, per_second: f64) -> Self {
        Self {
            burst,
            per_second,
            tokens: burst,
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the window should say about a dropped message: nothing, most of the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DropLog {
    pub(crate) reason: DropReason,
    /// Drops since the last log line, this one included.
    pub(crate) since_last: u64,
    pub(crate) totals: DroppedMessages,
}

impl fmt::Display for DropLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dropped {} page message(s) not from the player page or over its limits (latest: {}; since start: {} unauthenticated, {} oversized, {} over the rate); a report frame may be posting to the core",
            self.since_last,
            self.reason.as_str(),
            self.totals.unauthenticated,
            self.totals.oversized,
            self.totals.rate_limited,
        )
    }
}

/// The verdict on one raw message.
#[derive(Debug)]
pub(crate) enum Admission {
    Accepted(FromPage),
    /// `log`: a line is due (the first drop, then at most once a minute).
    Dropped {
        reason: DropReason,
        log: Option<DropLog>,
    },
    /// From our page (it had the secret), but not a message the core knows: a bug to log.
    Unreadable(serde_json::Error),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    message: serde_json::Value,
}

/// The gate every raw IPC message passes before the core sees it. Pure: the caller gives the
/// time, and decides what to do with the verdict.
#[derive(Debug)]
pub(crate) struct PageGate {
    secret: PageSecret,
    bucket: TokenBucket,
    counters: PageMessageCounters,
    last_log: Option<Instant>,
    since_log: u64,
}

impl PageGate {
    pub(crate) fn new(secret: PageSecret, counters: PageMessageCounters) -> Self {
        Self {
            secret,
            bucket: TokenBucket::new(BURST, PER_SECOND),
            counters,
            last_log: None,
            since_log: 0,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant, raw: &str) -> Admission {
        // Before parsing: a forged message must cost no more than its length check.
        if raw.len() > MAX_MESSAGE_BYTES {
            return self.drop(now, DropReason::Oversized);
        }
        let Ok(envelope) = serde_json::from_str::<Envelope>(raw) else {
            return self.drop(now, DropReason::Unauthenticated);
        };
        if !envelope.auth.is_some_and(|a| self.secret.matches(&a)) {
            return self.drop(now, DropReason::Unauthenticated);
        }
        // The rate counts only our page's messages: forged ones must not use up its share.
        if !self.bucket.take(now) {
            return self.drop(now, DropReason::RateLimited);
        }
        match FromPage::deserialize(envelope.message) {
            Ok(m) => Admission::Accepted(m),
            Err(e) => Admission::Unreadable(e),
        }
    }

    fn drop(&mut self, now: Instant, reason: DropReason) -> Admission {
        self.counters.record(reason);
        self.since_log += 1;
        let due = self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            DropLog {
                reason,
                since_last: std::mem::take(&mut self.since_log),
                totals: self.counters.get(),
            }
        });
        Admission::Dropped { reason, log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 16] = *b"0123456789abcdef";

    fn gate() -> (PageGate, PageMessageCounters) {
        let counters = PageMessageCounters::default();
        let secret = PageSecret::from_bytes(SECRET);
        (PageGate::new(secret, counters.clone()), counters)
    }

    fn wire(auth: &str, message: &str) -> String {
        format!(r#"{{"auth":"{auth}","message":{message}}}"#)
    }

    fn good() -> String {
        PageSecret::from_bytes(SECRET).0
    }

    #[test]
    fn the_secret_is_128_random_bits_and_never_printed() {
        let a = PageSecret::generate().unwrap();
        let b = PageSecret::generate().unwrap();
        assert_eq!(a.0.len(), 32);
        assert!(a.0.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.0, b.0, "each launch its own secret");
        assert_eq!(format!("{a:?}"), "[redacted]");
        let gate = PageGate::new(a.clone(), PageMessageCounters::default());
        assert!(!format!("{gate:?}").contains(&a.0));
        // The script carries it, and nothing of the placeholder is left.
        let js = a.channel_script();
        assert!(js.contains(&format!("'{}'", a.0)));
        assert!(!js.contains(PLACEHOLDER));
    }

    #[test]
    fn only_messages_with_the_secret_get_through() {
        let (mut g, counters) = gate();
        let now = Instant::now();
        let ready = r#"{"v":1,"type":"ready","version":"0.1.0"}"#;
        assert!(matches!(
            g.admit(now, &wire(&good(), ready)),
            Admission::Accepted(FromPage::Ready { .. })
        ));
        let mut wrong = good();
        wrong.replace_range(31..32, "0");
        for forged in [
            ready.to_owned(),                     // the old, bare format
            wire(&wrong, ready),                  // one digit off
            wire(&good()[..31], ready),           // a prefix
            wire(&format!("{}0", good()), ready), // longer
            wire("", ready),                      // empty
            format!(r#"{{"message":{ready}}}"#),  // no auth
            format!(r#"{{"auth":null,"message":{ready}}}"#),
            "not json".to_owned(),
            "[object Object]".to_owned(), // what a posted object becomes
        ] {
            assert!(
                matches!(
                    g.admit(now, &forged),
                    Admission::Dropped {
                        reason: DropReason::Unauthenticated,
                        ..
                    }
                ),
                "{forged}"
            );
        }
        assert_eq!(counters.get().unauthenticated, 9);
        assert_eq!(counters.get().total(), 9);
    }

    #[test]
    fn a_known_envelope_with_an_unknown_message_is_a_bug_not_a_drop() {
        let (mut g, counters) = gate();
        let out = g.admit(Instant::now(), &wire(&good(), r#"{"type":"nope"}"#));
        assert!(matches!(out, Admission::Unreadable(_)), "{out:?}");
        assert_eq!(counters.get().total(), 0);
    }

    #[test]
    fn oversized_messages_are_dropped_unread_even_with_the_secret() {
        let (mut g, counters) = gate();
        let now = Instant::now();
        let pad = "x".repeat(MAX_MESSAGE_BYTES);
        let big = wire(
            &good(),
            &format!(r#"{{"v":1,"type":"js_error","message":"{pad}"}}"#),
        );
        assert!(matches!(
            g.admit(now, &big),
            Admission::Dropped {
                reason: DropReason::Oversized,
                ..
            }
        ));
        // Just under the cap is fine.
        let fits = wire(
            &good(),
            &format!(
                r#"{{"v":1,"type":"js_error","message":"{}"}}"#,
                &pad[..MAX_MESSAGE_BYTES - 200]
            ),
        );
        assert!(fits.len() <= MAX_MESSAGE_BYTES);
        assert!(matches!(g.admit(now, &fits), Admission::Accepted(_)));
        assert_eq!(counters.get().oversized, 1);
    }

    #[test]
    fn the_rate_is_capped_for_our_page_and_forgeries_do_not_use_it_up() {
        let (mut g, counters) = gate();
        let t0 = Instant::now();
        let hb = wire(&good(), r#"{"v":1,"type":"heartbeat","t":1}"#);
        // A flood of forged messages first: our page keeps its whole burst.
        for _ in 0..1000 {
            g.admit(t0, r#"{"auth":"nope","message":{"type":"heartbeat"}}"#);
        }
        let accepted = (0..150)
            .filter(|_| matches!(g.admit(t0, &hb), Admission::Accepted(_)))
            .count();
        assert_eq!(accepted, BURST as usize);
        assert_eq!(counters.get().rate_limited, 150 - BURST as u64);
        // Half a second later: ten more (20 per second).
        let t1 = t0 + Duration::from_millis(500);
        let accepted = (0..50)
            .filter(|_| matches!(g.admit(t1, &hb), Admission::Accepted(_)))
            .count();
        assert_eq!(accepted, 10);
        // Long after, the bucket is full again but no fuller.
        let t2 = t1 + Duration::from_secs(3600);
        let accepted = (0..500)
            .filter(|_| matches!(g.admit(t2, &hb), Admission::Accepted(_)))
            .count();
        assert_eq!(accepted, BURST as usize);
    }

    /// The contract with `web/channel.js` and player.js: `web/test/fixtures/channel.json` holds
    /// the script as injected (with a fixed secret), a message, and the envelope the gate
    /// accepts for it; `web/test/channel.test.mjs` runs the script and checks that the page
    /// sends exactly that envelope.
    #[test]
    fn channel_fixture_is_what_the_gate_accepts() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/fixtures/channel.json");
        let secret = PageSecret::from_bytes(SECRET);
        let message = serde_json::json!({"v": 1, "type": "heartbeat", "t": 65012});
        let wire = serde_json::json!({"auth": secret.0, "message": message}).to_string();
        let fixture = serde_json::json!({
            "secret": secret.0,
            "script": secret.channel_script(),
            "message": message,
            "wire": wire,
        });
        let want = serde_json::to_string_pretty(&fixture).unwrap() + "\n";
        if std::env::var_os("PBIKIOSK_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        } else {
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is out of date: run `PBIKIOSK_BLESS=1 cargo test --lib page_gate`, then web/test/run.sh",
                path.display()
            );
        }
        let (mut g, _) = gate();
        assert!(matches!(
            g.admit(Instant::now(), &wire),
            Admission::Accepted(FromPage::Heartbeat { t }) if t == 65012.0
        ));
    }

    #[test]
    fn drops_are_logged_at_most_once_a_minute_with_the_count() {
        let (mut g, _) = gate();
        let t0 = Instant::now();
        let log = |a: Admission| match a {
            Admission::Dropped { log, .. } => log,
            other => panic!("{other:?}"),
        };
        let first = log(g.admit(t0, "forged")).expect("the first drop is logged");
        assert_eq!(first.since_last, 1);
        for s in 1..60 {
            assert_eq!(log(g.admit(t0 + Duration::from_secs(s), "forged")), None);
        }
        let next = log(g.admit(t0 + Duration::from_secs(60), "forged")).expect("a minute later");
        assert_eq!(next.since_last, 60);
        assert_eq!(next.totals.unauthenticated, 61);
        let text = next.to_string();
        assert!(text.contains("dropped 60 page message(s)"), "{text}");
        assert!(!text.contains(&good()), "{text}");
    }
}
