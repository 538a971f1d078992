//! Record times: microseconds since the Unix epoch, written as RFC 3339 in
//! UTC (`2026-12-01T17:06:36.123456Z`) and read back from RFC 3339 or a
//! plain date, for `audit show --since`. Pure logic.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Now, in whole seconds since the epoch (token times are in seconds).
pub fn now_secs() -> u64 {
    now_micros() / 1_000_000
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 in UTC with microseconds. The date and time of day are worked
/// out once per second per thread.
pub fn format(micros: u64) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = micros / 1_000_000;
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, format_seconds(secs as i64));
        }
        let mut out = String::with_capacity(27);
        out.push_str(&last.1);
        let frac = micros % 1_000_000;
        out.push('.');
        let digits = frac.to_string();
        for _ in digits.len()..6 {
            out.push('0');
        }
        out.push_str(&digits);
        out.push('Z');
        out
    })
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch.
fn format_seconds(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Reads `YYYY-MM-DD`, or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
/// a space allowed for the `T`), as microseconds since the epoch.
pub fn parse(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = std::str::from_utf8(b.get(r)?).ok()?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(i64::from(y), mo, d);
    let mut secs = day * 86_400;
    let mut micros = 0u64;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += i64::from(h * 3600 + mi * 60 + s);
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let frac = &text.trim()[start..i.min(start + 6)];
            micros = frac.parse::<u64>().ok()? * 10u64.pow(6 - frac.len() as u32);
        }
        match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let off = i64::from(num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60);
                secs -= if sign == b'+' { off } else { -off };
            }
            _ => return None,
        }
    }
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_offsets() {
        for micros in [
            0,
            1_764_608_796_123_456,
            951_782_400_000_001,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse(&format(micros)), Some(micros), "{}", format(micros));
        }
        assert_eq!(format(1_764_608_796_123_456), "2025-12-01T17:06:36.123456Z");
        assert_eq!(format(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        let utc = parse("2026-12-01T17:06:36Z").unwrap();
        assert_eq!(parse("2026-12-01T18:06:36+01:00"), Some(utc));
        assert_eq!(parse("2026-12-01 17:06:36.5Z"), Some(utc + 500_000));
        assert_eq!(
            parse("2026-12-01"),
            Some(utc - (17 * 3600 + 6 * 60 + 36) * 1_000_000)
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-12-01T25:00:00Z",
            "2026-12-01T17:06:36",
            "yesterday",
            "2026-12-01T17:06:36.Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
