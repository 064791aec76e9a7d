//! Rule ids of CONTRACT §2.

/// One detection rule. The order is the contract table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    LoginFailuresUser,
    LoginFailuresSource,
    LoginSuccessAfterFailures,
    NewDevice,
    NewLocation,
    AdminChange,
    BulkExport,
    ExportAboveBaseline,
    UnknownDestination,
    SharingSpike,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::LoginFailuresUser,
        Rule::LoginFailuresSource,
        Rule::LoginSuccessAfterFailures,
        Rule::NewDevice,
        Rule::NewLocation,
        Rule::AdminChange,
        Rule::BulkExport,
        Rule::ExportAboveBaseline,
        Rule::UnknownDestination,
        Rule::SharingSpike,
    ];
    pub const COUNT: usize = Rule::ALL.len();
    pub(crate) const FIRST: Rule = Rule::LoginFailuresUser;
    pub(crate) const LAST: Rule = Rule::SharingSpike;

    /// The contract's rule id (`alert.rule`).
    pub fn id(self) -> &'static str {
        match self {
            Rule::LoginFailuresUser => "login_failures_user",
            Rule::LoginFailuresSource => "login_failures_source",
            Rule::LoginSuccessAfterFailures => "login_success_after_failures",
            Rule::NewDevice => "new_device",
            Rule::NewLocation => "new_location",
            Rule::AdminChange => "admin_change",
            Rule::BulkExport => "bulk_export",
            Rule::ExportAboveBaseline => "export_above_baseline",
            Rule::UnknownDestination => "unknown_destination",
            Rule::SharingSpike => "sharing_spike",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Rules whose alerts are exports (for the `new_device` / `new_location` correlation).
    pub(crate) fn is_export(self) -> bool {
        matches!(self, Rule::BulkExport | Rule::ExportAboveBaseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_id(r.id()), Some(r));
            assert_eq!(Rule::ALL[r.index()], r);
        }
    }
}
