//! The setup PIN and the phone's sessions: who may set the screen up.
//!
//! Pure decisions with an explicit clock; the randomness comes in through [`Random`] so the
//! rules can be tested with fixed values, and the product draws from the operating system.
//!
//! The PIN is what proves the phone's user can see the screen. Six digits give a guesser one
//! chance in a million per try; after [`MAX_WRONG`] wrong tries the PIN is replaced (the screen
//! shows the new one), and every wrong try makes the next one wait [`WRONG_PIN_WAIT`], so
//! guessing through rotations gets nowhere within any useful time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

/// Wrong PINs in a row that replace the PIN.
pub(crate) const MAX_WRONG: u32 = 5;
/// How long after a wrong PIN the next try is refused unchecked.
pub(crate) const WRONG_PIN_WAIT: Duration = Duration::from_secs(2);
/// A phone's session: long enough to type credentials and pick reports, short enough that a
/// forgotten phone does not keep the door open.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at once; the oldest goes first. One installer needs one or two.
const MAX_SESSIONS: usize = 4;

/// Where the PIN and the session tokens come from.
pub(crate) trait Random {
    /// A number in `0..1_000_000`, uniformly.
    fn pin_number(&mut self) -> u32;
    /// 32 unpredictable bytes.
    fn token(&mut self) -> [u8; 32];
}

/// The operating system's random number generator.
pub(crate) struct OsRandom;

impl Random for OsRandom {
    fn pin_number(&mut self) -> u32 {
        use rand::Rng as _;
        use rand::TryRngCore as _;
        rand::rngs::OsRng.unwrap_err().random_range(0..1_000_000)
    }

    fn token(&mut self) -> [u8; 32] {
        use rand::TryRngCore as _;
        let mut b = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().try_fill_bytes(&mut b).ok();
        b
    }
}

/// What a PIN try gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Right: a new session with its cookie value and CSRF token.
    Accepted { session: String, csrf: String },
    /// Wrong; `left` more wrong tries before the PIN is replaced.
    Wrong { left: u32 },
    /// Wrong, and the last allowed: the screen now shows a new PIN.
    Replaced,
    /// Too soon after a wrong PIN: not checked at all.
    TooSoon { wait: Duration },
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires: Instant,
}

/// The PIN of one opening of the setup page, and the sessions it granted.
pub(crate) struct Gate<R: Random> {
    rng: R,
    pin: String,
    wrong: u32,
    not_before: Option<Instant>,
    sessions: HashMap<String, Session>,
}

impl<R: Random> Gate<R> {
    pub(crate) fn new(mut rng: R) -> Self {
        let pin = format!("{:06}", rng.pin_number() % 1_000_000);
        Self {
            rng,
            pin,
            wrong: 0,
            not_before: None,
            sessions: HashMap::new(),
        }
    }

    /// The PIN the screen shows.
    pub(crate) fn pin(&self) -> &str {
        &self.pin
    }

    /// Try `guess` at `now`.
    pub(crate) fn attempt(&mut self, guess: &str, now: Instant) -> Verdict {
        if let Some(t) = self.not_before
            && now < t
        {
            return Verdict::TooSoon { wait: t - now };
        }
        let guess = guess.trim();
        if guess.len() == self.pin.len() && bool::from(guess.as_bytes().ct_eq(self.pin.as_bytes()))
        {
            self.wrong = 0;
            self.not_before = None;
            return self.open_session(now);
        }
        self.wrong += 1;
        self.not_before = Some(now + WRONG_PIN_WAIT);
        if self.wrong >= MAX_WRONG {
            self.replace();
            Verdict::Replaced
        } else {
            Verdict::Wrong {
                left: MAX_WRONG - self.wrong,
            }
        }
    }

    fn replace(&mut self) {
        self.pin = format!("{:06}", self.rng.pin_number() % 1_000_000);
        self.wrong = 0;
    }

    fn open_session(&mut self, now: Instant) -> Verdict {
        self.sessions.retain(|_, s| s.expires > now);
        while self.sessions.len() >= MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.sessions.remove(&k),
                None => break,
            };
        }
        let session = hex(&self.rng.token());
        let csrf = hex(&self.rng.token());
        self.sessions.insert(
            session.clone(),
            Session {
                csrf: csrf.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        Verdict::Accepted { session, csrf }
    }

    /// Whether `session` is a live session and `csrf` its token.
    pub(crate) fn authorized(&self, session: &str, csrf: &str, now: Instant) -> bool {
        match self.sessions.get(session) {
            Some(s) if s.expires > now => {
                csrf.len() == s.csrf.len() && bool::from(csrf.as_bytes().ct_eq(s.csrf.as_bytes()))
            }
            _ => false,
        }
    }

    /// Whether `session` is still live (a sign-in it started is then kept).
    pub(crate) fn is_live(&self, session: &str, now: Instant) -> bool {
        self.sessions.get(session).is_some_and(|s| s.expires > now)
    }

    /// Ends `session` (after a save, or when the listener closes).
    pub(crate) fn end(&mut self, session: &str) {
        self.sessions.remove(session);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out the given PIN numbers in turn and counting tokens.
    struct Fixed {
        pins: Vec<u32>,
        n: u8,
    }

    impl Random for Fixed {
        fn pin_number(&mut self) -> u32 {
            self.pins.remove(0)
        }
        fn token(&mut self) -> [u8; 32] {
            self.n += 1;
            [self.n; 32]
        }
    }

    fn gate() -> Gate<Fixed> {
        Gate::new(Fixed {
            pins: vec![42, 987_654, 111_111],
            n: 0,
        })
    }

    #[test]
    fn the_pin_has_six_digits_with_leading_zeros() {
        let g = gate();
        assert_eq!(g.pin(), "000042");
        let os = Gate::new(OsRandom);
        assert_eq!(os.pin().len(), 6);
        assert!(os.pin().bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn the_right_pin_opens_a_session_bound_to_its_csrf_token() {
        let mut g = gate();
        let t0 = Instant::now();
        let Verdict::Accepted { session, csrf } = g.attempt(" 000042 ", t0) else {
            panic!("the right PIN was refused");
        };
        assert_ne!(session, csrf);
        assert!(g.authorized(&session, &csrf, t0));
        assert!(!g.authorized(&session, "", t0), "no CSRF token");
        assert!(!g.authorized(&csrf, &session, t0), "swapped");
        assert!(
            !g.authorized(&session, &csrf, t0 + SESSION_LIFETIME),
            "expired after its lifetime"
        );
        g.end(&session);
        assert!(!g.authorized(&session, &csrf, t0));
    }

    #[test]
    fn wrong_pins_wait_and_the_fifth_replaces_the_pin() {
        let mut g = gate();
        let mut t = Instant::now();
        for left in (1..MAX_WRONG).rev() {
            assert_eq!(g.attempt("123456", t), Verdict::Wrong { left });
            // Even the right PIN is not looked at during the wait.
            assert_eq!(
                g.attempt("000042", t + Duration::from_millis(500)),
                Verdict::TooSoon {
                    wait: WRONG_PIN_WAIT - Duration::from_millis(500)
                }
            );
            t += WRONG_PIN_WAIT;
        }
        assert_eq!(g.pin(), "000042");
        assert_eq!(g.attempt("123456", t), Verdict::Replaced);
        assert_eq!(g.pin(), "987654");
        t += WRONG_PIN_WAIT;
        assert_eq!(
            g.attempt("000042", t),
            Verdict::Wrong {
                left: MAX_WRONG - 1
            },
            "the old PIN no longer works"
        );
        t += WRONG_PIN_WAIT;
        assert!(matches!(g.attempt("987654", t), Verdict::Accepted { .. }));
    }

    #[test]
    fn a_right_pin_resets_the_count_of_wrong_ones() {
        let mut g = gate();
        let mut t = Instant::now();
        for _ in 0..MAX_WRONG - 1 {
            g.attempt("1", t);
            t += WRONG_PIN_WAIT;
        }
        assert!(matches!(g.attempt("000042", t), Verdict::Accepted { .. }));
        assert_eq!(
            g.attempt("1", t),
            Verdict::Wrong {
                left: MAX_WRONG - 1
            }
        );
    }

    #[test]
    fn sessions_are_capped_oldest_first() {
        let mut g = Gate::new(Fixed {
            pins: vec![1],
            n: 0,
        });
        let t0 = Instant::now();
        let mut all = Vec::new();
        for i in 0..MAX_SESSIONS as u64 + 1 {
            let Verdict::Accepted { session, csrf } =
                g.attempt("000001", t0 + Duration::from_secs(i))
            else {
                panic!()
            };
            all.push((session, csrf));
        }
        let now = t0 + Duration::from_secs(10);
        assert!(!g.authorized(&all[0].0, &all[0].1, now), "oldest dropped");
        assert!(all[1..].iter().all(|(s, c)| g.authorized(s, c, now)));
    }
}
