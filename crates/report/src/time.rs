//! Event timestamps as numbers.
//!
//! Events carry RFC 3339 UTC timestamps with six fractional digits (docs/events.md, common
//! fields). The report needs them as numbers only to bin a timeline and to compare with
//! `--from` / `--to`; the fixed format makes a small parser enough (no date crate needed for
//! UTC civil time: Howard Hinnant's days-from-civil algorithm).

/// Microseconds since the Unix epoch.
pub type Micros = i64;

pub const HOUR: Micros = 3_600_000_000;
pub const DAY: Micros = 24 * HOUR;

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with an optional `Z` (UTC only). A space may
/// replace the `T`. `None` for anything else.
pub fn parse(s: &str) -> Option<Micros> {
    let s = s.trim();
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')).unwrap_or(s);
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = days_from_civil(y, mo, d) * DAY;
    if b.len() == 10 {
        return Some(t);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    if h > 23 || mi > 59 {
        return None;
    }
    t += h * HOUR + mi * 60_000_000;
    if b.len() == 16 {
        return Some(t);
    }
    if b.get(16) != Some(&b':') {
        return None;
    }
    let sec = num(17..19)?;
    if sec > 60 {
        return None;
    }
    t += sec * 1_000_000;
    match b.get(19) {
        None => Some(t),
        Some(b'.') => {
            let frac = b.get(20..)?;
            if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut us = 0i64;
            for i in 0..6 {
                us = us * 10 + frac.get(i).map_or(0, |c| i64::from(c - b'0'));
            }
            Some(t + us)
        }
        Some(_) => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
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

/// `2026-11-28 07:00` (UTC, minutes): the labels of timeline bins.
pub fn format_minutes(t: Micros) -> String {
    let days = t.div_euclid(DAY);
    let rest = t.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rest / HOUR,
        (rest % HOUR) / 60_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_timestamps_and_dates() {
        assert_eq!(parse("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(parse("1970-01-02"), Some(DAY));
        let t = parse("2026-11-28T07:09:52.825841Z").unwrap();
        assert_eq!(format_minutes(t), "2026-11-28 07:09");
        assert_eq!(parse("2026-11-28T07:09"), Some(t - t % 60_000_000));
        assert_eq!(parse("2024-02-29 23:59:59"), parse("2024-03-01").map(|x| x - 1_000_000));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-11-28T25:00",
            "2026-11-28T07:09:52.",
            "é026-11-28",
            "2026-11-28X07:00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
