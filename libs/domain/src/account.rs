//! An account (a company) as lead scoring keeps it, and what a client may change of it.

use chrono::{DateTime, Utc};

use crate::Segment;

/// What a client writes of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    /// Name shown to people.
    pub display_name: String,
    /// Industry (stored lowercase).
    pub industry: String,
    /// Head count.
    pub employee_count: i32,
    /// Revenue band.
    pub revenue_band: String,
    /// Region (stored lowercase).
    pub region: String,
    /// Market segment, if known.
    pub segment: Option<Segment>,
}

impl AccountDetails {
    /// The form the account is kept in: industry and region lowercase, as fit rules compare them.
    pub fn normalized(mut self) -> Self {
        self.industry = self.industry.to_lowercase();
        self.region = self.region.to_lowercase();
        self
    }

    /// These details with the `fields` of `from` taken over.
    pub fn with(mut self, from: &AccountDetails, fields: &[AccountField]) -> Self {
        for f in fields {
            match f {
                AccountField::DisplayName => self.display_name = from.display_name.clone(),
                AccountField::Industry => self.industry = from.industry.clone(),
                AccountField::EmployeeCount => self.employee_count = from.employee_count,
                AccountField::RevenueBand => self.revenue_band = from.revenue_band.clone(),
                AccountField::Region => self.region = from.region.clone(),
                AccountField::Segment => self.segment = from.segment,
            }
        }
        self
    }
}

/// A field of [`AccountDetails`] an update may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum AccountField {
    DisplayName,
    Industry,
    EmployeeCount,
    RevenueBand,
    Region,
    Segment,
}

impl AccountField {
    /// Every field, in order.
    pub const ALL: [AccountField; 6] = [
        AccountField::DisplayName,
        AccountField::Industry,
        AccountField::EmployeeCount,
        AccountField::RevenueBand,
        AccountField::Region,
        AccountField::Segment,
    ];

    /// The field's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountField::DisplayName => "display_name",
            AccountField::Industry => "industry",
            AccountField::EmployeeCount => "employee_count",
            AccountField::RevenueBand => "revenue_band",
            AccountField::Region => "region",
            AccountField::Segment => "segment",
        }
    }

    /// Parses a name written by [`AccountField::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A company whose people become leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Id, unique in the tenant.
    pub account_id: String,
    /// What clients write.
    pub details: AccountDetails,
    /// Version, bumped by every change (the etag).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(industry: &str) -> AccountDetails {
        AccountDetails {
            display_name: "Acme".into(),
            industry: industry.into(),
            employee_count: 10,
            revenue_band: "1m-10m".into(),
            region: "EMEA".into(),
            segment: Some(Segment::Smb),
        }
    }

    #[test]
    fn details_are_kept_lowercase_and_an_update_takes_only_the_fields_it_names() {
        let stored = details("Software").normalized();
        assert_eq!((stored.industry.as_str(), stored.region.as_str()), ("software", "emea"));
        let sent = AccountDetails { employee_count: 99, segment: None, ..details("Retail") }.normalized();
        let next = stored.clone().with(&sent, &[AccountField::Industry, AccountField::Segment]);
        assert_eq!((next.industry.as_str(), next.segment, next.employee_count), ("retail", None, 10));
        for f in AccountField::ALL {
            assert_eq!(AccountField::parse(f.as_str()), Some(f));
        }
        assert_eq!(AccountField::parse("account_id"), None);
    }
}
