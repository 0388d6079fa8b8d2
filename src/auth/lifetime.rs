//! Token lifetimes taken from the network, validated and bounded.
//!
//! A lifetime decides when the kiosk next asks for a token, so it is not taken on trust: `0`
//! would have the token service ask in a tight loop (and get the account throttled), and a
//! value near 2^63 seconds overflows the clock arithmetic. Microsoft issues access tokens for
//! 60-90 minutes; anything outside [`MIN_LIFETIME`]..=[`MAX_LIFETIME`] is brought back inside.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The shortest lifetime acted on: at most one token request per three minutes (the session
/// refreshes at 60 % of the lifetime), however short a token the server claims to issue.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(300);
/// The longest: a token is renewed at least daily, whatever the server claims.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The floor that holds even for the simulator's deliberately short tokens (demo, tests).
pub(crate) const ABSOLUTE_MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The range a lifetime is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Bounds {
    /// What a real Microsoft cloud gets.
    pub(crate) const SERVICE: Bounds = Bounds {
        min: MIN_LIFETIME,
        max: MAX_LIFETIME,
    };

    /// Bounds with a lower floor, never under [`ABSOLUTE_MIN_LIFETIME`] nor above the maximum.
    pub(crate) fn with_min(min: Duration) -> Bounds {
        Bounds {
            min: min.clamp(ABSOLUTE_MIN_LIFETIME, MAX_LIFETIME),
            max: MAX_LIFETIME,
        }
    }

    pub(crate) fn clamp(self, secs: u64) -> Duration {
        Duration::from_secs(secs.clamp(self.min.as_secs(), self.max.as_secs()))
    }
}

/// A lifetime field the kiosk cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LifetimeError {
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} is {shown}, which is not a number of seconds")]
    NotSeconds { field: &'static str, shown: String },
    #[error("{field} is {shown}, which is not an ISO 8601 time")]
    NotATime { field: &'static str, shown: String },
}

/// A value as it may be shown in a message: a hostile server's megabyte of text must not end
/// up in every log line.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = value.chars().take(MAX).collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// Seconds from a JSON field that may be a number or a numeric string (the v2 token endpoint
/// sends a number, some v1 paths a string). Negative values count as 0 and values beyond
/// `u64` as `u64::MAX`: both are then clamped by the caller.
pub(crate) fn seconds(field: &'static str, value: Option<&Value>) -> Result<u64, LifetimeError> {
    let not_seconds = |v: &Value| LifetimeError::NotSeconds {
        field,
        shown: shown(&v.to_string()),
    };
    match value {
        None | Some(Value::Null) => Err(LifetimeError::Missing { field }),
        Some(v @ Value::Number(n)) => {
            number(n.as_u64(), n.as_i64(), n.as_f64()).ok_or_else(|| not_seconds(v))
        }
        Some(v @ Value::String(s)) => {
            let t = s.trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                // All digits: only too large for u64 can fail.
                return Ok(t.parse().unwrap_or(u64::MAX));
            }
            number(None, t.parse().ok(), t.parse().ok()).ok_or_else(|| not_seconds(v))
        }
        Some(v) => Err(not_seconds(v)),
    }
}

fn number(u: Option<u64>, i: Option<i64>, f: Option<f64>) -> Option<u64> {
    if let Some(u) = u {
        return Some(u);
    }
    if let Some(i) = i {
        return Some(u64::try_from(i).unwrap_or(0));
    }
    // `as` saturates: a huge float becomes u64::MAX, a negative one 0.
    f.filter(|f| f.is_finite()).map(|f| f.max(0.0) as u64)
}

/// The time from `now` until `expiration` (ISO 8601, as Power BI's embed tokens give it),
/// clamped to `bounds`: an expiration in the past or far future is brought inside them.
pub(crate) fn until(
    field: &'static str,
    expiration: &str,
    now: DateTime<Utc>,
    bounds: Bounds,
) -> Result<Duration, LifetimeError> {
    if expiration.trim().is_empty() {
        return Err(LifetimeError::Missing { field });
    }
    let at =
        DateTime::parse_from_rfc3339(expiration.trim()).map_err(|_| LifetimeError::NotATime {
            field,
            shown: shown(expiration),
        })?;
    let secs = at
        .with_timezone(&Utc)
        .signed_duration_since(now)
        .num_seconds();
    Ok(bounds.clamp(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(v: Value) -> Result<Duration, LifetimeError> {
        seconds("expires_in", Some(&v)).map(|s| Bounds::SERVICE.clamp(s))
    }

    #[test]
    fn numbers_and_numeric_strings_are_clamped_to_five_minutes_through_a_day() {
        assert_eq!(secs(json!(3599)), Ok(Duration::from_secs(3599)));
        assert_eq!(secs(json!("3599")), Ok(Duration::from_secs(3599)));
        assert_eq!(secs(json!(" 4000 ")), Ok(Duration::from_secs(4000)));
        assert_eq!(secs(json!(3599.7)), Ok(Duration::from_secs(3599)));
        for low in [
            json!(0),
            json!("0"),
            json!(-5),
            json!("-5"),
            json!(1),
            json!(-1e300),
        ] {
            assert_eq!(secs(low.clone()), Ok(MIN_LIFETIME), "{low}");
        }
        for high in [
            json!(1u64 << 63),
            json!(u64::MAX),
            json!("9223372036854775808"),
            json!("99999999999999999999999999999"),
            json!(1e300),
            json!(90000),
        ] {
            assert_eq!(secs(high.clone()), Ok(MAX_LIFETIME), "{high}");
        }
    }

    #[test]
    fn missing_or_not_a_number_is_an_error_naming_the_field() {
        assert_eq!(
            seconds("expires_in", None),
            Err(LifetimeError::Missing {
                field: "expires_in"
            })
        );
        assert_eq!(
            seconds("expires_in", Some(&Value::Null))
                .unwrap_err()
                .to_string(),
            "expires_in is missing"
        );
        for bad in [
            json!("abc"),
            json!(""),
            json!("inf"),
            json!("NaN"),
            json!(true),
            json!([1]),
            json!({}),
        ] {
            let e = seconds("expires_in", Some(&bad)).unwrap_err();
            assert!(matches!(e, LifetimeError::NotSeconds { .. }), "{bad}: {e}");
            assert!(e.to_string().starts_with("expires_in is "), "{e}");
        }
        let e = seconds("expires_in", Some(&json!("x".repeat(10_000)))).unwrap_err();
        assert!(e.to_string().len() < 120, "{e}");
    }

    #[test]
    fn a_lower_floor_for_the_simulator_still_has_one() {
        assert_eq!(
            Bounds::with_min(Duration::from_secs(5)).clamp(5),
            Duration::from_secs(5)
        );
        assert_eq!(
            Bounds::with_min(Duration::ZERO).clamp(0),
            ABSOLUTE_MIN_LIFETIME
        );
        assert_eq!(
            Bounds::with_min(Duration::ZERO).clamp(u64::MAX),
            MAX_LIFETIME
        );
    }

    #[test]
    fn expiration_times_are_read_and_clamped() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = Bounds::SERVICE;
        assert_eq!(
            until("expiration", "2026-01-01T01:00:00Z", now, b),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            until("expiration", "2026-01-01T01:00:00.1234567+00:00", now, b),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            until("expiration", "2020-01-01T00:00:00Z", now, b),
            Ok(MIN_LIFETIME)
        );
        assert_eq!(
            until("expiration", "9999-12-31T23:59:59Z", now, b),
            Ok(MAX_LIFETIME)
        );
        assert_eq!(
            until("expiration", "", now, b),
            Err(LifetimeError::Missing {
                field: "expiration"
            })
        );
        let e = until("expiration", "tomorrow", now, b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expiration is tomorrow, which is not an ISO 8601 time"
        );
    }
}
