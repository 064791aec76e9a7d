//! Anomaly names as per-protocol enums (ARCHITECTURE rule 6: "per-protocol anomaly enums with
//! snake_case names"). Each protocol declares its enum with `anomaly_names!` in its
//! `event.rs`; the enum owns the exact strings that appear in `anomaly` events and in
//! `ProtoStats::anomalies`, and its `ALL` list lets metrics read every name from its owner.

/// What the shared anomaly path ([`crate::Ctx::flow_anomaly`]) needs of a protocol's enum.
pub trait AnomalyKind: Copy {
    /// The `proto` field of the event (`dicom`, `http`, `tls`, `hl7`).
    const PROTO: &'static str;
    /// The event's `name`, e.g. `dicom.pdu_too_large` (CONTRACT: never renamed).
    fn name(self) -> &'static str;
}

/// Every anomaly name the decoders can emit, as `(proto, name)`, read from each protocol's
/// enum: what metrics pre-register so a counter exists (at 0) before its first anomaly.
pub fn all_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    fn of<A: AnomalyKind>(all: &'static [A]) -> impl Iterator<Item = (&'static str, &'static str)> {
        all.iter().map(|a| (A::PROTO, a.name()))
    }
    of(crate::dicom::DicomAnomaly::ALL)
        .chain(of(crate::http::HttpAnomaly::ALL))
        .chain(of(crate::tls::TlsAnomaly::ALL))
        .chain(of(crate::hl7::Hl7Anomaly::ALL))
}

/// Declares a protocol's anomaly enum: variants with their doc comments and their exact wire
/// strings, `as_str()`, the `ALL` list and [`AnomalyKind`].
macro_rules! anomaly_names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($proto:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every anomaly of this protocol, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name in events and counters (CONTRACT: fixed).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $crate::anomaly::AnomalyKind for $name {
            const PROTO: &'static str = $proto;
            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        /// Tests and callers compare against the event's `name` string.
        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use anomaly_names;

#[cfg(test)]
mod tests {
    use super::all_names;

    #[test]
    fn all_names_lists_every_protocol_once() {
        let names: Vec<(&str, &str)> = all_names().collect();
        assert_eq!(names.len(), 16 + 13 + 8 + 11);
        assert!(names.contains(&("dicom", "dicom.pdu_too_large")));
        assert!(names.contains(&("hl7", "hl7.memory_budget")));
        assert!(names.iter().all(|(p, n)| n.starts_with(p)));
    }
}

#[cfg(test)]
pub(crate) mod check {
    use super::AnomalyKind;
    use std::collections::BTreeSet;

    /// Every name is `<proto>.<snake_case>` and unique; `as_str` lists exactly `expected`.
    pub(crate) fn names<A: AnomalyKind>(all: &[A], expected: &[&str]) {
        let got: Vec<&str> = all.iter().map(|a| a.name()).collect();
        assert_eq!(got, expected);
        let unique: BTreeSet<&str> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "duplicate anomaly name");
        for n in got {
            let rest = n.strip_prefix(A::PROTO).and_then(|r| r.strip_prefix('.'));
            assert!(
                rest.is_some_and(|r| !r.is_empty()
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())),
                "{n} is not {}.<snake_case>",
                A::PROTO
            );
        }
    }
}
