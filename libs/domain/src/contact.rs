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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Verification {
    /// Never checked.
    #[default]
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

/// A way to reach a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The work email.
    Email,
    /// The work phone.
    Phone,
}

impl Channel {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Phone => "phone",
        }
    }
}

/// An email address or phone number and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    /// The address or number.
    pub address: String,
    /// What is known of it.
    pub status: Verification,
    /// When it was last checked.
    pub verified_at: Option<DateTime<Utc>>,
    /// The provider whose finding set `status`; empty unless a verifier recorded it.
    pub provider: String,
}

impl Reach {
    /// Whether the SQO gate may trust it: verified, by a provider, as a verifier recorded.
    pub fn trusted_at(&self) -> Option<DateTime<Utc>> {
        (self.status == Verification::Verified && !self.provider.is_empty()).then_some(self.verified_at).flatten()
    }

    /// As a client (not a verifier) enters it: a claim of verification is self-reported.
    fn entered_by_a_client(mut self) -> Self {
        if self.status == Verification::Verified {
            self.status = Verification::SelfReported;
        }
        self.provider.clear();
        self
    }

    /// This reach after a client's update `sent` of the parts it names. Sending
    /// back what is stored keeps the provider's finding; any other change is
    /// the client's word: a new address without a status sent is unverified,
    /// and a claim of verification is self-reported.
    fn updated(self, sent: &Reach, address: bool, status: bool, time: bool) -> Reach {
        let next = Reach {
            address: if address { sent.address.clone() } else { self.address.clone() },
            status: if status { sent.status } else { self.status },
            verified_at: if time { sent.verified_at } else { self.verified_at },
            provider: self.provider.clone(),
        };
        if next == self {
            return self;
        }
        let moved = next.address != self.address;
        let next = if moved && !status { Reach { status: Verification::Unverified, ..next } } else { next };
        let next = if moved && !time { Reach { verified_at: None, ..next } } else { next };
        next.entered_by_a_client()
    }

    /// Records a verifier's `finding` unless one as recent or newer is on record.
    fn record(&mut self, finding: &Finding) -> Recorded {
        let on_record = (!self.provider.is_empty()).then_some(self.verified_at).flatten();
        if on_record.is_some_and(|t| t >= finding.verified_at) {
            return Recorded::Superseded;
        }
        let previous = self.status;
        self.status = finding.status;
        self.verified_at = Some(finding.verified_at);
        self.provider = finding.provider.clone();
        Recorded::Applied { previous }
    }
}

/// A verifier's finding about one channel of a contact (a verification feed or a bounce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The channel checked.
    pub channel: Channel,
    /// What the provider found: verified, bounced or left the company.
    pub status: Verification,
    /// The provider that checked it.
    pub provider: String,
    /// When it checked.
    pub verified_at: DateTime<Utc>,
}

impl Finding {
    /// The statuses a finding may carry.
    pub const STATUSES: [Verification; 3] = [Verification::Verified, Verification::Bounced, Verification::LeftCompany];
}

/// What recording a finding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// It is on record now; the status before it.
    Applied {
        /// The channel's status before.
        previous: Verification,
    },
    /// A finding as recent or newer was on record: nothing changed.
    Superseded,
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
    /// The work email.
    pub email: Reach,
    /// The work phone.
    pub phone: Reach,
}

impl ContactDetails {
    /// The form the contact is kept in: seniority and department lowercase, as
    /// fit rules compare them.
    pub fn normalized(mut self) -> Self {
        self.seniority = self.seniority.to_lowercase();
        self.department = self.department.to_lowercase();
        self
    }

    /// As a client creates it: what it says is verified is self-reported.
    pub fn entered_by_a_client(mut self) -> Self {
        self.email = self.email.entered_by_a_client();
        self.phone = self.phone.entered_by_a_client();
        self
    }

    /// These details with the `fields` of `from` (as a client sent them) taken
    /// over; see [`Reach`] for what a client's change does to a verification.
    pub fn with(mut self, from: &ContactDetails, fields: &[ContactField]) -> Self {
        let has = |f| fields.contains(&f);
        for f in fields {
            match f {
                ContactField::FullName => self.full_name = from.full_name.clone(),
                ContactField::Title => self.title = from.title.clone(),
                ContactField::Seniority => self.seniority = from.seniority.clone(),
                ContactField::Department => self.department = from.department.clone(),
                ContactField::BuyingRole => self.buying_role = from.buying_role,
                _ => {}
            }
        }
        use ContactField::*;
        self.email = self.email.updated(&from.email, has(Email), has(EmailStatus), has(EmailVerifyTime));
        self.phone = self.phone.updated(&from.phone, has(Phone), has(PhoneStatus), has(PhoneVerifyTime));
        self
    }

    /// The channel's reach.
    pub fn reach(&self, channel: Channel) -> &Reach {
        match channel {
            Channel::Email => &self.email,
            Channel::Phone => &self.phone,
        }
    }

    /// Records a verifier's finding on its channel.
    pub fn record(&mut self, finding: &Finding) -> Recorded {
        match finding.channel {
            Channel::Email => self.email.record(finding),
            Channel::Phone => self.phone.record(finding),
        }
    }

    /// When the contact's data was last verified by a provider (the newer of
    /// its trusted channels), if it ever was.
    pub fn trusted_at(&self) -> Option<DateTime<Utc>> {
        self.email.trusted_at().max(self.phone.trusted_at())
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
    use chrono::Duration;

    use super::*;

    fn stored() -> ContactDetails {
        ContactDetails {
            full_name: "Ada".into(),
            title: "CTO".into(),
            seniority: "C-Level".into(),
            department: "Engineering".into(),
            buying_role: None,
            email: Reach { address: "ada@example.com".into(), ..Default::default() },
            phone: Reach::default(),
        }
        .normalized()
    }

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().with_timezone(&Utc) + Duration::days(days)
    }

    fn finding(status: Verification, days: i64) -> Finding {
        Finding { channel: Channel::Email, status, provider: "zerobounce".into(), verified_at: at(days) }
    }

    #[test]
    fn names_round_trip_and_an_update_takes_only_the_fields_it_names() {
        for v in Verification::ALL {
            assert_eq!(Verification::parse(v.as_str()), Some(v));
        }
        for f in ContactField::ALL {
            assert_eq!(ContactField::parse(f.as_str()), Some(f));
        }
        assert_eq!(ContactField::parse("account_id"), None);
        let stored = stored();
        assert_eq!((stored.seniority.as_str(), stored.department.as_str()), ("c-level", "engineering"));
        let mut sent =
            ContactDetails { title: "CEO".into(), buying_role: Some(StakeholderRole::EconomicBuyer), ..stored.clone() };
        sent.email.status = Verification::Bounced;
        let next = stored.with(&sent, &[ContactField::EmailStatus, ContactField::BuyingRole]);
        assert_eq!(next.title, "CTO");
        assert_eq!(
            (next.email.status, next.buying_role),
            (Verification::Bounced, Some(StakeholderRole::EconomicBuyer))
        );
    }

    #[test]
    fn what_a_client_calls_verified_is_self_reported_and_never_trusted() {
        let mut sent = stored();
        sent.email =
            Reach { status: Verification::Verified, verified_at: Some(at(0)), provider: "me".into(), ..sent.email };
        let created = sent.clone().entered_by_a_client();
        assert_eq!((created.email.status, created.email.provider.as_str()), (Verification::SelfReported, ""));
        assert_eq!(created.trusted_at(), None);
        let updated = stored().with(&sent, &ContactField::ALL);
        assert_eq!(updated.email.status, Verification::SelfReported);
        assert_eq!(updated.trusted_at(), None);
    }

    #[test]
    fn a_providers_finding_is_trusted_until_a_client_changes_the_channel() {
        let mut c = stored();
        assert_eq!(
            c.record(&finding(Verification::Verified, 0)),
            Recorded::Applied { previous: Verification::Unverified }
        );
        assert_eq!(c.trusted_at(), Some(at(0)));
        // Sending back what was read (a full update that fixes the name) keeps it.
        let mut sent = c.clone();
        sent.full_name = "Ada L.".into();
        let kept = c.clone().with(&sent, &ContactField::ALL);
        assert_eq!((kept.full_name.as_str(), kept.trusted_at()), ("Ada L.", Some(at(0))));
        // A new address without a status is unverified; a client's new time is its own word.
        sent.email.address = "someone-else@example.com".into();
        let moved = c.clone().with(&sent, &[ContactField::Email]);
        assert_eq!(
            (moved.email.status, moved.email.verified_at, moved.trusted_at()),
            (Verification::Unverified, None, None)
        );
        sent.email.address = c.email.address.clone();
        sent.email.verified_at = Some(at(5));
        let redated = c.clone().with(&sent, &[ContactField::EmailVerifyTime]);
        assert_eq!((redated.email.status, redated.trusted_at()), (Verification::SelfReported, None));
        // A bounce later than the verification replaces it; an older finding does not.
        assert_eq!(c.record(&finding(Verification::Bounced, -1)), Recorded::Superseded);
        assert_eq!(c.record(&finding(Verification::Verified, 0)), Recorded::Superseded);
        assert_eq!(
            c.record(&finding(Verification::Bounced, 1)),
            Recorded::Applied { previous: Verification::Verified }
        );
        assert_eq!((c.email.status, c.trusted_at()), (Verification::Bounced, None));
    }
}
