//! Time conversions: sensor timestamps to nanoseconds since the epoch (UTC), and back to STIX timestamps.
//!
//! Sensors write time in three ways: Zeek as decimal epoch seconds
//! (`1700000000.123456`, text in TSV and a JSON number in JSON), Zeek JSON
//! with `json_iso8601` and Suricata as ISO 8601 with an offset
//! (`2026-01-02T03:04:05.123456+0100`). All are converted to UTC
//! nanoseconds by hand: these conversions run once per record, and a
//! general-purpose parser costs more than the rest of a conn line.

const NANOS: i128 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil` algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses decimal epoch seconds (`1700000000.123456`) exactly, without a
/// float round trip. At most nine fraction digits are kept.
pub(crate) fn parse_epoch(s: &str) -> Option<i128> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 12 || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = int.parse().ok()?;
    let mut nanos: i128 = 0;
    for (i, c) in frac.bytes().enumerate() {
        if i < 9 {
            nanos = nanos * 10 + i128::from(c - b'0');
        }
    }
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    let v = secs * NANOS + nanos;
    Some(if neg { -v } else { v })
}

/// Converts float epoch seconds (Zeek JSON) to nanoseconds, rounded to the
/// microsecond Zeek logs with: a double cannot carry more.
pub(crate) fn from_float_secs(f: f64) -> Option<i128> {
    if !f.is_finite() || f.abs() > 1e12 {
        return None;
    }
    Some((f * 1e6).round() as i128 * 1000)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f…][Z|±HH:MM|±HHMM|±HH]` (a space may
/// stand for the `T`; no zone means UTC) into UTC nanoseconds.
pub(crate) fn parse_iso(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
        return None;
    }
    let y = digits(&b[0..4])?;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return None;
    }
    // STIX and RFC 3339 allow a leap second (60); it folds into the next minute.
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i128::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [a, b2] => (digits(&[*a, *b2])?, 0),
                [a, b2, b':', c, d2] | [a, b2, c, d2] => (digits(&[*a, *b2])?, digits(&[*c, *d2])?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_secs;
    Some(i128::from(secs) * NANOS + nanos)
}

/// Formats UTC nanoseconds as a STIX timestamp (STIX 2.1 §2.13: RFC 3339,
/// UTC, `Z`). The fraction shows the precision the sensor gave: none for
/// whole seconds, else microseconds, else nanoseconds.
pub fn format_stix(nanos: i128) -> String {
    // Written digit by digit into a fixed buffer: this runs for every
    // connection's start and end, and the formatting machinery costs more
    // than the rest of a line.
    fn put(b: &mut [u8; 48], n: &mut usize, v: u64, width: u32, then: u8) {
        let mut div = 10u64.pow(width - 1);
        // A year past 9999 needs more digits than its width.
        while v / div >= 10 {
            div *= 10;
        }
        while div > 0 {
            b[*n] = b'0' + ((v / div) % 10) as u8;
            *n += 1;
            div /= 10;
        }
        b[*n] = then;
        *n += 1;
    }
    let secs = nanos.div_euclid(NANOS);
    let frac = nanos.rem_euclid(NANOS) as u64;
    let days = secs.div_euclid(86_400) as i64;
    let tod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    let mut b = [0u8; 48];
    let mut n = 0;
    if y < 0 {
        b[0] = b'-';
        n = 1;
    }
    put(&mut b, &mut n, y.unsigned_abs(), 4, b'-');
    put(&mut b, &mut n, u64::from(m), 2, b'-');
    put(&mut b, &mut n, u64::from(d), 2, b'T');
    put(&mut b, &mut n, tod / 3600, 2, b':');
    put(&mut b, &mut n, (tod / 60) % 60, 2, b':');
    if frac == 0 {
        put(&mut b, &mut n, tod % 60, 2, b'Z');
    } else if frac.is_multiple_of(1000) {
        put(&mut b, &mut n, tod % 60, 2, b'.');
        put(&mut b, &mut n, frac / 1000, 6, b'Z');
    } else {
        put(&mut b, &mut n, tod % 60, 2, b'.');
        put(&mut b, &mut n, frac, 9, b'Z');
    }
    // Only ASCII digits and punctuation were written.
    String::from(std::str::from_utf8(&b[..n]).unwrap_or_default())
}

/// The wall clock, UTC nanoseconds.
pub(crate) fn wall_clock() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "2026-01-02T03:04:05.123456+0100",
                Some("2026-01-02T02:04:05.123456Z"),
            ),
            ("2026-01-02T03:04:05Z", Some("2026-01-02T03:04:05Z")),
            ("2026-01-02T03:04:05", Some("2026-01-02T03:04:05Z")),
            (
                "2026-01-02 03:04:05.5-05:30",
                Some("2026-01-02T08:34:05.500000Z"),
            ),
            (
                "2024-02-29T00:00:00.000000001Z",
                Some("2024-02-29T00:00:00.000000001Z"),
            ),
            ("2025-02-29T00:00:00Z", None),
            ("2026-01-02T03:04:05+01", Some("2026-01-02T02:04:05Z")),
            ("2026-01-02T03:04:05.Z", None),
            (
                "1969-12-31T23:59:59.5Z",
                Some("1969-12-31T23:59:59.500000Z"),
            ),
            ("not a time", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_iso(input).map(format_stix).as_deref(),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn formats_like_the_formatting_machinery() {
        for n in [
            0i128,
            1,
            999_999_999,
            1_767_225_601_100_000_000,
            -1,
            -86_400_000_000_001,
            253_402_300_799_999_999_999,
        ] {
            let secs = n.div_euclid(NANOS);
            let frac = n.rem_euclid(NANOS);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400) as i64);
            let tod = secs.rem_euclid(86_400);
            let base = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                tod / 3600,
                (tod / 60) % 60,
                tod % 60
            );
            let want = if frac == 0 {
                format!("{base}Z")
            } else if frac % 1000 == 0 {
                format!("{base}.{:06}Z", frac / 1000)
            } else {
                format!("{base}.{frac:09}Z")
            };
            assert_eq!(format_stix(n), want);
            assert_eq!(parse_iso(&want), Some(n));
        }
    }

    proptest::proptest! {
        /// Formatting and parsing are inverse over years 0001-9999, and
        /// epoch text parses to the same instant.
        #[test]
        fn round_trips(n in -62_135_596_800_000_000_000i128..253_402_300_799_999_999_999i128) {
            proptest::prop_assert_eq!(parse_iso(&format_stix(n)), Some(n));
            if n >= 0 {
                let text = format!("{}.{:09}", n / NANOS, n % NANOS);
                proptest::prop_assert_eq!(parse_epoch(&text), Some(n));
            }
        }
    }

    #[test]
    fn epoch_forms() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1379288667.706265", Some(1_379_288_667_706_265_000)),
            ("1379288667", Some(1_379_288_667_000_000_000)),
            ("0.5", Some(500_000_000)),
            ("1.1234567891", Some(1_123_456_789)),
            ("12a.5", None),
            ("", None),
            ("1.2.3", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_epoch(input), *want, "{input}");
        }
        assert_eq!(
            from_float_secs(1_575_413_096.052279),
            Some(1_575_413_096_052_279_000)
        );
    }
}
