//! STIX 2.1 timestamps (§2.15): a hand-written RFC 3339 parser that keeps the text.

use std::cmp::Ordering;
use std::fmt;

use crate::error::TimestampError;

/// A STIX 2.1 timestamp: the original text, kept exactly as written (its
/// precision is part of the data: TAXII version strings are compared as
/// written), and its instant for ordering.
///
/// Equality and ordering are by instant (to the nanosecond), not by text:
/// `…00.1Z` and `…00.100Z` are the same instant written with different precision.
#[derive(Debug, Clone)]
pub struct Timestamp {
    text: Box<str>,
    /// Microseconds since the Unix epoch (floor, for instants before 1970 too).
    micros: i64,
    /// Nanoseconds past `micros` (0..1000), from the 7th to 9th fractional digit.
    sub_micro_nanos: u16,
    /// How many fractional-second digits the text has.
    frac_digits: u16,
}

impl Timestamp {
    /// The text exactly as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Microseconds since the Unix epoch; digits beyond the sixth are dropped.
    pub fn micros(&self) -> i64 {
        self.micros
    }

    /// How many digits follow the decimal point (0 when there is none).
    pub fn fraction_digits(&self) -> usize {
        usize::from(self.frac_digits)
    }

    /// Nanoseconds since the Unix epoch (digits beyond the ninth are dropped).
    pub fn nanos(&self) -> i128 {
        i128::from(self.micros) * 1000 + i128::from(self.sub_micro_nanos)
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.nanos() == other.nanos()
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos().cmp(&other.nanos())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parse a STIX 2.1 timestamp (§2.15): `YYYY-MM-DDTHH:MM:SS[.s+]Z`, RFC 3339,
/// uppercase `T` and `Z`, UTC only, seconds required, any number of
/// fractional digits. A leap second (`:60`) is accepted as RFC 3339 allows and
/// counts as the first instant of the next minute.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, TimestampError> {
    let b = s.as_bytes();
    let err = |reason| Err(TimestampError::new(s, reason));
    if b.len() < 20 {
        return err("too short: expected YYYY-MM-DDTHH:MM:SSZ");
    }
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return err("expected YYYY-MM-DDTHH:MM:SS");
    }
    if b[10] != b'T' {
        return err("date and time must be separated by an uppercase 'T'");
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0, 4),
        num(5, 7),
        num(8, 10),
        num(11, 13),
        num(14, 16),
        num(17, 19),
    ) else {
        return err("date and time fields must be digits");
    };
    if !(1..=12).contains(&month) {
        return err("month out of range");
    }
    if day == 0 || day > days_in_month(year, month) {
        return err("day out of range for the month");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return err("time of day out of range");
    }
    let rest = &b[19..];
    let (frac, tail) = match rest.first() {
        Some(b'.') => {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return err("a decimal point must be followed by digits");
            }
            (&rest[1..1 + digits], &rest[1 + digits..])
        }
        _ => (&rest[..0], rest),
    };
    match tail {
        [b'Z'] => {}
        [b'z'] => return err("the time zone must be an uppercase 'Z'"),
        [] => return err("the time zone 'Z' is missing"),
        [b'+' | b'-', ..] => return err("only UTC is allowed: the time zone must be 'Z'"),
        _ => return err("unexpected characters after the seconds"),
    }
    let Ok(frac_digits) = u16::try_from(frac.len()) else {
        return err("too many fractional digits");
    };
    let mut nanos_frac: u32 = 0;
    for i in 0..9 {
        nanos_frac = nanos_frac * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let micros = secs * 1_000_000 + i64::from(nanos_frac / 1000);
    // `nanos_frac % 1000` is below 1000, so it fits u16.
    let sub_micro_nanos = u16::try_from(nanos_frac % 1000).unwrap_or(0);
    Ok(Timestamp {
        text: s.into(),
        micros,
        sub_micro_nanos,
        frac_digits,
    })
}

/// Render microseconds since the epoch as a STIX timestamp with exactly
/// `digits` fractional digits (0..=6), for tests and importers that build objects.
pub fn format_micros(micros: i64, digits: usize) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    let digits = digits.min(6);
    if digits > 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(&f[..digits]);
    }
    out.push('Z');
    out
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_text() {
        let t = parse_timestamp("2016-05-12T08:17:27.000Z").unwrap();
        assert_eq!(t.as_str(), "2016-05-12T08:17:27.000Z");
        assert_eq!(t.micros(), 1_463_041_047_000_000);
        assert_eq!(t.fraction_digits(), 3);
        let t = parse_timestamp("1970-01-01T00:00:00Z").unwrap();
        assert_eq!(t.micros(), 0);
        let t = parse_timestamp("1969-12-31T23:59:59.9999999Z").unwrap();
        assert_eq!(t.micros(), -1);
        assert_eq!(t.nanos(), -100);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "2016-05-12 08:17:27Z",
            "2016-05-12t08:17:27Z",
            "2016-05-12T08:17:27z",
            "2016-05-12T08:17:27",
            "2016-05-12T08:17Z",
            "2016-05-12T08:17:27+00:00",
            "2016-05-12T08:17:27.Z",
            "2016-02-30T08:17:27Z",
            "2015-02-29T08:17:27Z",
            "2016-13-12T08:17:27Z",
            "2016-05-12T24:00:00Z",
            "2016-05-12T08:17:27ZZ",
            "２016-05-12T08:17:27Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        assert!(parse_timestamp("2016-02-29T23:59:60Z").is_ok());
    }

    #[test]
    fn equal_instants_with_different_precision() {
        let a = parse_timestamp("2020-01-01T00:00:00.1Z").unwrap();
        let b = parse_timestamp("2020-01-01T00:00:00.100Z").unwrap();
        assert_eq!(a, b);
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn format_round_trips() {
        for m in [0, -1, 1_463_041_047_123_456, -62_135_596_800_000_000] {
            let s = format_micros(m, 6);
            assert_eq!(parse_timestamp(&s).unwrap().micros(), m, "{s}");
        }
    }
}
