//! A contact (a person at an account) as lead scoring keeps it, with how fresh
//! their contact data is, and what a client may change of it.

use chrono::{DateTime, Utc};

use crate::StakeholderRole;

/// How far ahead of the server's clock a verification time may be: clock
/// skew between the provider and us, never a verification yet to happen.
pub const VERIFY_TIME_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Whether a verification at `at` can have happened by `now`.
pub fn verified_by(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    at <= now + VERIFY_TIME_SKEW
}

/// What is known of an email address or phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verification {
    /// Never checked.
    Unverified,
    /// Checked and reachable.
    Verified,
    /// Mail to it bounced.
    Bounced,
    /// The person left the company.
    LeftCompany,
    /// Entered as verified by someone who is not a verifier: shown, never trusted.
    SelfReported,
}

impl Verification {
    /// Every status, in order.
    pub const ALL: [Verification; 5] = [
        Verification::Unverified,
        Verification::Verified,
        Verification::Bounced,
        Verification::LeftCompany,
        Verification::SelfReported,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Unverified => "unverified",
            Verification::Verified => "verified",
            Verification::Bounced => "bounced",
            Verification::LeftCompany => "left_company",
            Verification::SelfReported => "self_reported",
        }
    }

    /// Parses a storage name written by [`Verification::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What a client writes of a contact (all but its account, which never changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactDetails {
    /// Full name.
    pub full_name: String,
    /// Job title.
    pub title: String,
    /// Seniority (stored lowercase).
    pub seniority: String,
    /// Department (stored lowercase).
    pub department: String,
    /// Role in the buying decision, if known.
    pub buying_role: Option<StakeholderRole>,
    /// Email address.
    pub email: String,
    /// What is known of the address.
    pub email_status: Verification,
    /// When the address was last checked.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Phone number.
    pub phone: String,
    /// What is known of the number.
    pub phone_status: Verification,
    /// When the number was last checked.
    pub phone_verified_at: Option<DateTime<Utc>>,
}

impl ContactDetails {
    /// The form the contact is kept in: seniority and department lowercase, as fit rules compare them.
    pub fn normalized(mut self) -> Self {
        self.seniority = self.seniority.to_lowercase();
        self.department = self.department.to_lowercase();
        self
    }

    /// These details with the `fields` of `from` taken over.
    pub fn with(mut self, from: &ContactDetails, fields: &[ContactField]) -> Self {
        for f in fields {
            match f {
                ContactField::FullName => self.full_name = from.full_name.clone(),
                ContactField::Title => self.title = from.title.clone(),
                ContactField::Seniority => self.seniority = from.seniority.clone(),
                ContactField::Department => self.department = from.department.clone(),
                ContactField::BuyingRole => self.buying_role = from.buying_role,
                ContactField::Email => self.email = from.email.clone(),
                ContactField::EmailStatus => self.email_status = from.email_status,
                ContactField::EmailVerifyTime => self.email_verified_at = from.email_verified_at,
                ContactField::Phone => self.phone = from.phone.clone(),
                ContactField::PhoneStatus => self.phone_status = from.phone_status,
                ContactField::PhoneVerifyTime => self.phone_verified_at = from.phone_verified_at,
            }
        }
        self
    }
}

/// A field of [`ContactDetails`] an update may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ContactField {
    FullName,
    Title,
    Seniority,
    Department,
    BuyingRole,
    Email,
    EmailStatus,
    EmailVerifyTime,
    Phone,
    PhoneStatus,
    PhoneVerifyTime,
}

impl ContactField {
    /// Every field, in order.
    pub const ALL: [ContactField; 11] = [
        ContactField::FullName,
        ContactField::Title,
        ContactField::Seniority,
        ContactField::Department,
        ContactField::BuyingRole,
        ContactField::Email,
        ContactField::EmailStatus,
        ContactField::EmailVerifyTime,
        ContactField::Phone,
        ContactField::PhoneStatus,
        ContactField::PhoneVerifyTime,
    ];

    /// The field's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactField::FullName => "full_name",
            ContactField::Title => "title",
            ContactField::Seniority => "seniority",
            ContactField::Department => "department",
            ContactField::BuyingRole => "buying_role",
            ContactField::Email => "email",
            ContactField::EmailStatus => "email_status",
            ContactField::EmailVerifyTime => "email_verify_time",
            ContactField::Phone => "phone",
            ContactField::PhoneStatus => "phone_status",
            ContactField::PhoneVerifyTime => "phone_verify_time",
        }
    }

    /// Parses a name written by [`ContactField::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A person at an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Id, unique in the tenant.
    pub contact_id: String,
    /// The account they work at.
    pub account_id: String,
    /// What clients write.
    pub details: ContactDetails,
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

    #[test]
    fn names_round_trip_and_an_update_takes_only_the_fields_it_names() {
        for v in Verification::ALL {
            assert_eq!(Verification::parse(v.as_str()), Some(v));
        }
        for f in ContactField::ALL {
            assert_eq!(ContactField::parse(f.as_str()), Some(f));
        }
        assert_eq!(ContactField::parse("account_id"), None);
        let stored = ContactDetails {
            full_name: "Ada".into(),
            title: "CTO".into(),
            seniority: "C-Level".into(),
            department: "Engineering".into(),
            buying_role: None,
            email: "ada@example.com".into(),
            email_status: Verification::Verified,
            email_verified_at: None,
            phone: String::new(),
            phone_status: Verification::Unverified,
            phone_verified_at: None,
        }
        .normalized();
        assert_eq!((stored.seniority.as_str(), stored.department.as_str()), ("c-level", "engineering"));
        let sent = ContactDetails {
            title: "CEO".into(),
            email_status: Verification::Bounced,
            buying_role: Some(StakeholderRole::EconomicBuyer),
            ..stored.clone()
        };
        let next = stored.with(&sent, &[ContactField::EmailStatus, ContactField::BuyingRole]);
        assert_eq!(next.title, "CTO");
        assert_eq!(
            (next.email_status, next.buying_role),
            (Verification::Bounced, Some(StakeholderRole::EconomicBuyer))
        );
    }
}
