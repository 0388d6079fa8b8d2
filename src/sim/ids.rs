//! Identifiers, tokens and timestamps in the formats Microsoft uses, built on `rand` and `std`
//! only: a GUID, base64 and a UTC date formatter are a few lines each, not worth three crates.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// A random (version 4) GUID in the lower-case hyphenated form Microsoft prints.
pub(crate) fn guid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` has the 8-4-4-4-12 hex shape of a GUID.
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// `n` random bytes as unpadded base64url, for opaque tokens and signatures.
pub(crate) fn random_b64url(n: usize) -> String {
    let mut rng = rand::rng();
    let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
    base64(&bytes, URL_ALPHABET, false)
}

const STD_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard padded base64 (the `config=` parameter of embed URLs uses it).
pub(crate) fn base64_std(bytes: &[u8]) -> String {
    base64(bytes, STD_ALPHABET, true)
}

/// Unpadded base64url (JWT segments).
pub(crate) fn base64_url(bytes: &[u8]) -> String {
    base64(bytes, URL_ALPHABET, false)
}

fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(alphabet[*s as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `(year, month, day, hour, minute, second)` in UTC for Unix seconds.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2025-02-27 22:38:35Z`: the format of Azure AD's `timestamp` field.
pub(crate) fn aad_timestamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// `2025-02-27T22:38:35Z`: ISO 8601, as Power BI's `expiration`.
pub(crate) fn iso_timestamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A stable 64-bit FNV-1a hash, for ids derived from scenario names (same input, same id,
/// on every run and every machine — `DefaultHasher` promises neither).
pub(crate) fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A GUID derived from `seed`: the same on every run (policy and capacity ids in answers).
pub(crate) fn stable_guid(seed: &str) -> String {
    let h = stable_hash(seed);
    format!("{:08x}-0000-4000-8000-{:012x}", h as u32, h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_have_the_right_shape_and_differ() {
        let a = guid();
        assert!(is_guid(&a), "{a}");
        assert_ne!(a, guid());
        assert_eq!(&a[14..15], "4", "version nibble");
        assert!(!is_guid("not-a-guid"));
        assert!(!is_guid("6d3f8a52-1b7e-4c19-9a2d-5e8b7c4f1a3"));
        assert!(is_guid(&stable_guid("x")));
        assert_eq!(stable_guid("x"), stable_guid("x"));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_std(plain.as_bytes()), enc);
        }
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn timestamps_are_utc_in_microsoft_formats() {
        // 2025-02-27 22:38:35Z, the timestamp of fixture A1.
        assert_eq!(aad_timestamp(1_740_695_915), "2025-02-27 22:38:35Z");
        assert_eq!(iso_timestamp(951_782_400), "2000-02-29T00:00:00Z");
    }
}
