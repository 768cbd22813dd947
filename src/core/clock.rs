//! Wall-clock helpers: epoch milliseconds and the ISO-8601 UTC text the registry stores.
//!
//! Hand-rolled (civil-from-days) so the hook path carries no date library.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch on the store's clock: this host's, or a shared
/// database server's once one is open (see [`set_offset_ms`]).
pub fn now_ms() -> i64 {
    system_ms() + OFFSET_MS.load(Ordering::Relaxed)
}

/// This host's own clock, epoch ms; 0 if it is before 1970.
pub fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How far the shared database server's clock is ahead of this host's.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Takes a shared database server's clock as this process's: heartbeats written by
/// hosts with skewed clocks are then compared on one time line. A process talks to one
/// store, so one offset per process is enough.
pub fn set_offset_ms(offset: i64) {
    OFFSET_MS.store(offset, Ordering::Relaxed);
}

/// Where "now" comes from, passed beside the `Probe`: time-bound rules (claim ttls) are
/// tested at chosen instants instead of by sleeping.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock stopped at one instant (epoch ms), for tests.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub i64);

impl Clock for Fixed {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// `2026-11-24T12:03:04.567Z` for an epoch-millisecond instant.
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses the ISO-8601 UTC forms the registry holds (`Z` or `+00:00`, optional fraction).
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<i64>().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut milli = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        let padded = format!("{digits:0<3}");
        milli = padded[..3].parse().ok()?;
        rest = &frac[digits.len()..];
    }
    if !(rest.is_empty() || rest == "Z" || rest == "+00:00") {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400) + h * 3600 + mi * 60 + se) * 1000 + milli)
}

/// "12 s", "3 min", "2 h", "4 d": the coarse age people read in a roster.
pub fn age(ms: i64) -> String {
    let s = (ms.max(0)) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// `12:03` (UTC) for message headers.
pub fn hh_mm(ms: i64) -> String {
    let sod = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", sod / 3600, (sod % 3600) / 60)
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips() {
        for ms in [0, 1_764_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms), "{}", iso(ms));
        }
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_iso("2026-11-24T12:03:04+00:00"),
            parse_iso("2026-11-24T12:03:04.000Z")
        );
        assert_eq!(
            parse_iso("2026-11-24T12:03:04.5Z").map(|m| m % 1000),
            Some(500)
        );
        assert_eq!(parse_iso("garbage"), None);
        assert_eq!(parse_iso("2026-13-24T12:03:04Z"), None);
    }

    #[test]
    fn ages_are_coarse() {
        assert_eq!(age(12_000), "12 s");
        assert_eq!(age(47 * 60_000), "47 min");
        assert_eq!(age(-5), "0 s");
    }
}
