//! Human units for the summary: a person reads "2 h 14 min" and "43.3 kB", not "8040.512" and
//! "43264" (issue 14). Two significant parts at most: the summary answers "how long, roughly".

use std::time::Duration;

/// `350 ms`, `3.2 s`, `42 s`, `12 min 5 s`, `2 h 14 min`, `3 d 4 h`.
///
/// Below a second milliseconds (a replay of a short capture spans a few); below ten seconds one
/// decimal; above, whole units, the largest two, truncated (a span of 1 h 59 min 59.9 s is
/// "1 h 59 min", never rounded up to a time that did not pass).
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.as_secs_f64() * 1000.0;
        return if d.is_zero() {
            "0 s".to_owned()
        } else if ms < 1.0 {
            format!("{} µs", d.as_micros())
        } else {
            format!("{} ms", ms as u64)
        };
    }
    if secs < 10 {
        // Truncated to a tenth, like the larger units.
        return format!("{}.{} s", secs, d.subsec_millis() / 100);
    }
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if secs < MIN {
        format!("{secs} s")
    } else if secs < HOUR {
        two(secs / MIN, "min", secs % MIN, "s")
    } else if secs < DAY {
        two(secs / HOUR, "h", secs % HOUR / MIN, "min")
    } else {
        two(secs / DAY, "d", secs % DAY / HOUR, "h")
    }
}

/// Decimal units, as disks and network volumes are sold (`2.0 GB` is 2 000 000 000 bytes), the
/// same as the alerts' summaries (pacstap-detect `bytes_text`) so a number reads the same in both.
pub fn human_bytes(n: u64) -> String {
    pacstap_core::units::decimal_bytes(n, "B", pacstap_core::units::TO_EB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let cases = [
            (Duration::ZERO, "0 s"),
            (Duration::from_micros(420), "420 µs"),
            (Duration::from_millis(350), "350 ms"),
            (Duration::from_millis(3_250), "3.2 s"),
            (Duration::from_millis(9_999), "9.9 s"),
            (Duration::from_secs(42), "42 s"),
            (Duration::from_secs(60), "1 min"),
            (Duration::from_secs(12 * 60 + 5), "12 min 5 s"),
            (Duration::from_secs(2 * 3600 + 14 * 60 + 59), "2 h 14 min"),
            (Duration::from_secs(3600), "1 h"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600 + 1), "3 d 4 h"),
            (Duration::from_secs(u64::MAX), "213503982334601 d 7 h"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn bytes_in_decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(43_264), "43.3 kB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }
}
