//! Durations as operators write them: `90s`, `10m`, `1h`, `7d`, `1h30m`, `500ms`.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A configured duration (packet time). Printed in the largest unit that divides it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Nanoseconds, saturating at `i64::MAX` (packet time is `i64` nanoseconds).
    pub fn as_nanos_i64(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parse `90s`, `10m`, `1h30m`, `7d`, `2w`, `250ms`; a bare `0` is zero.
    pub fn parse(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        if t.is_empty() {
            return Err("expected a duration such as \"90s\", \"10m\", \"1h\", \"7d\"".into());
        }
        let mut total_ms: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!(
                    "invalid duration {s:?}: expected a number before each unit (e.g. \"10m\")"
                ));
            }
            let (num, tail) = rest.split_at(digits);
            let n: u64 = num
                .parse()
                .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
            let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(unit_len);
            let mult = UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| format!("invalid duration {s:?}: unit must be one of ms, s, m, h, d, w"))?;
            total_ms = n
                .checked_mul(mult)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
            rest = tail.trim_start();
        }
        Ok(Dur(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        // Weeks are accepted but printed as days ("7d" reads better than "1w").
        for (unit, mult) in UNITS.iter().skip(1) {
            if ms % mult == 0 {
                return write!(f, "{}{unit}", ms / mult);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"10m\", \"1h\", \"7d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur::default())
                } else {
                    Err(E::custom("a duration needs a unit, e.g. \"10m\" or \"90s\""))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(1))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, secs, back) in [
            ("90s", 90, "90s"),
            ("10m", 600, "10m"),
            ("1h", 3600, "1h"),
            ("1h30m", 5400, "90m"),
            ("7d", 604_800, "7d"),
            ("2w", 1_209_600, "14d"),
            ("0", 0, "0s"),
        ] {
            let d = Dur::parse(s).unwrap();
            assert_eq!(d.as_secs(), secs, "{s}");
            assert_eq!(d.to_string(), back);
            assert_eq!(Dur::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        for bad in ["", "10", "m", "10x", "1.5h", "99999999999999999999s", "-1m"] {
            assert!(Dur::parse(bad).is_err(), "{bad}");
        }
    }
}
