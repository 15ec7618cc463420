//! Small encodings the store owns: continuation tokens and RFC 3339 rendering
//! of microsecond timestamps.

use crate::{Micros, Result, StoreError};

/// Continuation tokens are `date_added` of the last item served, as 16 hex
/// digits, followed by two hex digits of check byte. `date_added` is unique
/// within a collection, so it alone is an exact keyset position; the check
/// byte makes a mistyped or invented token fail loudly (`BadCursor`) instead
/// of silently serving a page from somewhere else. Clients must treat the
/// token as opaque (TAXII 2.1 §3.4: `next`), so its layout may change.
pub(crate) fn encode_cursor(date_added: Micros) -> String {
    let v = date_added as u64;
    format!("{v:016x}{:02x}", check_byte(v))
}

pub(crate) fn decode_cursor(token: &str) -> Result<Micros> {
    if token.len() != 18
        || !token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(StoreError::BadCursor);
    }
    let v = u64::from_str_radix(&token[..16], 16).map_err(|_| StoreError::BadCursor)?;
    let c = u8::from_str_radix(&token[16..], 16).map_err(|_| StoreError::BadCursor)?;
    if c != check_byte(v) || v > i64::MAX as u64 {
        return Err(StoreError::BadCursor);
    }
    Ok(v as Micros)
}

fn check_byte(v: u64) -> u8 {
    // CRC-8 (polynomial x^8 + x^2 + x + 1) over the value's bytes: it
    // detects every error burst of up to 8 bits, so every mistyped digit of
    // the token. Not a security measure: the token grants nothing.
    let mut crc: u8 = 0xA5;
    for b in v.to_be_bytes() {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Render microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
/// the form TAXII 2.1 §3.2 requires for `date_added` (microsecond
/// precision). Used as the version of objects that carry none.
pub(crate) fn rfc3339_micros(m: Micros) -> String {
    let secs = m.div_euclid(1_000_000);
    let frac = m.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Microseconds since the epoch now; a clock before 1970 reads as 0, and
/// the writer never lets `date_added` go backwards anyway.
pub(crate) fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mistyped_digit_is_caught() {
        for v in [
            0i64,
            1,
            1_700_000_000_123_456,
            1_767_225_600_000_001,
            i64::MAX,
        ] {
            let good = encode_cursor(v).into_bytes();
            for pos in 0..good.len() {
                for d in b"0123456789abcdef" {
                    if *d == good[pos] {
                        continue;
                    }
                    let mut t = good.clone();
                    t[pos] = *d;
                    let t = String::from_utf8(t).unwrap();
                    assert!(decode_cursor(&t).is_err(), "{t}");
                }
            }
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        for v in [0, 1, 1_700_000_000_123_456, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(v)).unwrap(), v);
        }
        let good = encode_cursor(1_700_000_000_123_456);
        let mut flipped = good.clone().into_bytes();
        flipped[15] = if flipped[15] == b'0' { b'1' } else { b'0' };
        for bad in [
            "",
            "zz",
            "0000000000000000",
            &good[..17],
            &format!("{good}0"),
            &good.to_uppercase(),
            std::str::from_utf8(&flipped).unwrap(),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::BadCursor)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn renders_rfc3339_micros() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1, "1970-01-01T00:00:00.000001Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
            (1_700_000_000_123_456, "2023-11-14T22:13:20.123456Z"),
            (4_102_444_799_999_999, "2099-12-31T23:59:59.999999Z"),
        ];
        for (m, want) in cases {
            assert_eq!(rfc3339_micros(m), want, "{m}");
        }
    }
}
