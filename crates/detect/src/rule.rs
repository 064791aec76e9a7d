//! Rule ids of CONTRACT §2: the enum lives in `pacstap-core` (one vocabulary for detect, alerts
//! and metrics); re-exported here so `pacstap_detect::Rule` and `crate::rule::Rule` still name it.

pub use pacstap_core::Rule;
