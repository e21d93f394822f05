//! Server absolute time (seconds since 2000-01-01T00:00:00Z, modulo 2^32; RFC 7653 §2),
//! UTC rendering, wrapping arithmetic (D-14) and the clock-skew estimate of R-33.

use crate::wire::EPOCH_2000_UNIX;

/// Unix seconds of a server absolute time (protocol.md §1.5). Times wrap in 2136; until
/// then this is exact.
pub const fn server_to_unix(server_time: u32) -> u64 {
    server_time as u64 + EPOCH_2000_UNIX
}

/// The server absolute time of a Unix time, modulo 2^32; `None` before 2000.
pub fn unix_to_server(unix: u64) -> Option<u32> {
    let since_2000 = unix.checked_sub(EPOCH_2000_UNIX)?;
    u32::try_from(since_2000 & u64::from(u32::MAX)).ok()
}

/// True when `a` is at or after `b` in wrapping server time (D-14).
pub const fn at_or_after(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

/// The later of two server times (D-14).
pub const fn later(a: u32, b: u32) -> u32 {
    if at_or_after(a, b) {
        a
    } else {
        b
    }
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm), proleptic Gregorian.
// The day is 1..=31 and the month 1..=12 by construction: the casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC of a Unix time: `2026-11-28T12:00:00Z`.
pub fn unix_to_utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// RFC 3339 UTC of a server absolute time, read in the server's clock.
pub fn server_to_utc(server_time: u32) -> String {
    unix_to_utc(server_to_unix(server_time))
}

/// Parse a time argument: a server absolute time (decimal seconds since 2000) or a UTC time
/// `YYYY-MM-DDTHH:MM:SSZ`. A UTC time is converted assuming the server's clock agrees with
/// UTC, as R-7 allows lacking better knowledge.
pub fn parse_time(text: &str) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        return Ok(n);
    }
    let bad =
        || format!("{text:?} is neither server time (seconds since 2000) nor YYYY-MM-DDTHH:MM:SSZ");
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |r: core::ops::Range<usize>| text[r].parse::<u32>().map_err(|_| bad());
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(year), month, day);
    let unix = u64::try_from(days * 86_400).map_err(|_| bad())?
        + u64::from(hour * 3600 + minute * 60 + second);
    unix_to_server(unix).ok_or_else(bad)
}

/// Clock skew between server and requestor: server time minus local time, smoothed
/// over many messages (an exponential average with weight 1/8), in seconds. Positive means
/// the server's clock is ahead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkewEstimate {
    /// Smoothed skew, 1/8 s units (fixed point, so that small skews are not rounded away).
    eighths: i64,
    /// Samples taken so far (saturating).
    samples: u32,
}

impl SkewEstimate {
    /// An estimate starting from a stored value (seconds).
    pub const fn from_seconds(skew_s: i64) -> Self {
        Self {
            eighths: skew_s * 8,
            samples: 1,
        }
    }

    /// Take a sample: a message carried `base_time`, and the local clock read `local_unix`
    /// when it arrived.
    pub fn sample(&mut self, base_time: u32, local_unix: u64) {
        let server = i64::try_from(server_to_unix(base_time)).unwrap_or(i64::MAX);
        let local = i64::try_from(local_unix).unwrap_or(i64::MAX);
        let sample = server.saturating_sub(local).saturating_mul(8);
        if self.samples == 0 {
            self.eighths = sample;
        } else {
            self.eighths += (sample - self.eighths) / 8;
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// The estimate in whole seconds (0 before any sample).
    pub const fn seconds(self) -> i64 {
        self.eighths.div_euclid(8)
    }

    /// Samples taken.
    pub const fn samples(self) -> u32 {
        self.samples
    }

    /// The local Unix time of a server time, by this estimate.
    pub fn to_local_unix(self, server_time: u32) -> i64 {
        i64::try_from(server_to_unix(server_time)).unwrap_or(i64::MAX) - self.seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_time_is_2026_11_28_noon() {
        // protocol.md §2.7: 849182400 = 2026-11-28T12:00:00Z, Unix 1795867200.
        assert_eq!(server_to_unix(849_182_400), 1_795_867_200);
        assert_eq!(server_to_utc(849_182_400), "2026-11-28T12:00:00Z");
        assert_eq!(server_to_utc(0), "2000-01-01T00:00:00Z");
        assert_eq!(parse_time("2026-11-28T11:30:00Z"), Ok(849_180_600));
        assert_eq!(parse_time("849180600"), Ok(849_180_600));
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(unix_to_server(100), None);
    }

    #[test]
    fn utc_round_trips_over_leap_years() {
        for unix in [951_782_400u64, 1_709_164_800, 4_102_444_800, 1_795_867_199] {
            let text = unix_to_utc(unix);
            let server = parse_time(&text).unwrap();
            assert_eq!(server_to_unix(server), unix, "{text}");
        }
        assert_eq!(unix_to_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn wrapping_comparisons_d14() {
        assert!(at_or_after(5, u32::MAX - 5));
        assert!(!at_or_after(u32::MAX - 5, 5));
        assert_eq!(later(3, u32::MAX), 3);
        assert!(at_or_after(7, 7));
    }

    #[test]
    fn skew_is_smoothed_r33() {
        let mut skew = SkewEstimate::default();
        let base = 849_182_400;
        skew.sample(base, server_to_unix(base) - 10);
        assert_eq!(skew.seconds(), 10);
        // One outlier moves the estimate by an eighth only.
        skew.sample(base, server_to_unix(base) - 90);
        assert_eq!(skew.seconds(), 20);
        for _ in 0..100 {
            skew.sample(base, server_to_unix(base));
        }
        assert_eq!(skew.seconds(), 0);
        assert_eq!(skew.to_local_unix(base), 1_795_867_200);
    }
}
