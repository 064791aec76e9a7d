//! Sizes for people: one formatter for the alert texts (pacstap-detect) and the summary
//! (pacstap-output), so a number reads the same in both.

/// Decimal units up to exabytes: `kB` … `EB`.
pub const TO_EB: &[&str] = &["kB", "MB", "GB", "TB", "PB", "EB"];
/// Decimal units up to petabytes (the alert texts' table: larger counts stay in PB).
pub const TO_PB: &[&str] = &["kB", "MB", "GB", "TB", "PB"];

/// Decimal units, as disks and network volumes are sold (`2.0 GB` is 2 000 000 000 bytes), one
/// decimal, the largest unit the last of `units` ([`TO_EB`], [`TO_PB`]); below 1000, the count
/// with `small_unit` (`"B"`, `"bytes"`).
pub fn decimal_bytes(n: u64, small_unit: &str, units: &[&str]) -> String {
    let Some(first) = units.first() else {
        return format!("{n} {small_unit}");
    };
    if n < 1000 {
        return format!("{n} {small_unit}");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = first;
    for u in units.iter().skip(1) {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_units_with_one_decimal() {
        assert_eq!(decimal_bytes(999, "B", TO_EB), "999 B");
        assert_eq!(decimal_bytes(999, "bytes", TO_PB), "999 bytes");
        assert_eq!(decimal_bytes(48_700, "B", TO_EB), "48.7 kB");
        assert_eq!(decimal_bytes(2_000_000_000, "B", TO_EB), "2.0 GB");
        assert_eq!(decimal_bytes(u64::MAX, "B", TO_EB), "18.4 EB");
        assert_eq!(decimal_bytes(u64::MAX, "bytes", TO_PB), "18446.7 PB");
    }
}
