//! RFC 3339 times as eslogger writes them (`2025-08-07T13:21:35.880814738Z`), to nanoseconds.
//!
//! The crate knows nothing of the root crate's time helpers, and one small parser is cheaper
//! than a date-time dependency.

/// Nanoseconds since the Unix epoch for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `None` for
/// anything else (including a time outside the years 0000-9999 or a fraction over 9 digits' worth
/// of meaning, whose extra digits are ignored).
pub(crate) fn parse_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !sep(4, b"-") || !sep(7, b"-") || !sep(10, b"Tt ") || !sep(13, b":") || !sep(16, b":") {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut i = 19;
    let mut frac: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 9 {
                frac = frac * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            frac *= 10;
        }
    }

    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };

    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_ns;

    #[test]
    fn eslogger_times() {
        // date -u -d 2025-08-07T13:21:35Z +%s → 1754572895
        assert_eq!(
            parse_ns("2025-08-07T13:21:35.880814738Z"),
            Some(1_754_572_895_880_814_738)
        );
        // start_time has microseconds.
        assert_eq!(
            parse_ns("2025-08-07T13:21:35.877422Z"),
            Some(1_754_572_895_877_422_000)
        );
        assert_eq!(parse_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ns("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000_000)
        );
    }

    #[test]
    fn offsets_and_long_fractions() {
        assert_eq!(
            parse_ns("2025-08-07T15:21:35+02:00"),
            parse_ns("2025-08-07T13:21:35Z")
        );
        assert_eq!(
            parse_ns("1970-01-01T00:00:00.1234567891234Z"),
            Some(123_456_789)
        );
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "2025-08-07",
            "2025-08-07T13:21:35",
            "2025-08-07T13:21:35.Z",
            "2025-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-08-07T24:00:00Z",
            "2025-08-07T13:21:35Zjunk",
            "2025-08-07T13:21:35+0200",
            "2025-08-07T13:21:35+02:60",
            "2025-08-07T13:2x:35Z",
            "+025-08-07T13:21:35Z",
            "2025-08-07T13:21:35\u{e9}",
        ] {
            assert_eq!(parse_ns(bad), None, "{bad:?}");
        }
    }
}
