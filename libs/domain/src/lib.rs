//! The Qualify domain: funnel stages, qualification frameworks, the
//! opportunity state machine, the SQO gate policy and the metric formulas.
//!
//! Everything here is pure: no I/O, no wire or storage types. Services decode
//! requests into these types, call the rules, and encode the results.

pub mod account;
pub mod contact;
pub mod currency;
pub mod engagement;
pub mod framework;
pub mod gate;
pub mod lead;
pub mod metrics;
pub mod opportunity;
pub mod permission;
pub mod role;
pub mod scoring;
pub mod stage;
pub mod subject;

pub use account::{Account, AccountDetails, AccountField};
pub use contact::{Channel, Contact, ContactDetails, ContactField, Finding, Reach, Recorded, Verification};
pub use engagement::{AccountRollup, RecordedSignal};
pub use framework::{Criterion, EvidenceStatus, Framework};
pub use gate::{GateCandidate, GateCheck, GateCheckCode, GatePolicy, GateResult, PolicyInForce, StakeholderRole};
pub use lead::Lead;
pub use opportunity::{
    Activity, ActivityType, Authors, Decision, DecisionKind, Opportunity, OpportunityAction, OpportunityState,
    Qualification, RejectionReason, TransitionError, Verdict,
};
pub use permission::Denied;
pub use role::{Caller, Role};
pub use stage::{LeadStage, Mover, StageChange, StageError};

/// Market segment of an account; scorecards, gate policies and SDR targets differ per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Small and medium business.
    Smb,
    /// Mid-market.
    MidMarket,
    /// Enterprise.
    Enterprise,
}

impl Segment {
    /// Every segment, in order.
    pub const ALL: [Segment; 3] = [Segment::Smb, Segment::MidMarket, Segment::Enterprise];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Smb => "smb",
            Segment::MidMarket => "mid_market",
            Segment::Enterprise => "enterprise",
        }
    }

    /// Parses a storage name written by [`Segment::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The framework a segment uses unless its gate policy says otherwise:
    /// BANT for high-velocity SMB, MEDDIC for mid-market, MEDDPICC for enterprise.
    pub fn default_framework(self) -> Framework {
        match self {
            Segment::Smb => Framework::Bant,
            Segment::MidMarket => Framework::Meddic,
            Segment::Enterprise => Framework::Meddpicc,
        }
    }
}

/// Where a lead came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeadSource {
    /// The prospect came to us.
    Inbound,
    /// We went to the prospect.
    Outbound,
    /// Product-led.
    Plg,
    /// Met at an event.
    Event,
    /// Referred.
    Referral,
    /// Brought by a partner.
    Partner,
}

impl LeadSource {
    /// Every source, in order.
    pub const ALL: [LeadSource; 6] = [
        LeadSource::Inbound,
        LeadSource::Outbound,
        LeadSource::Plg,
        LeadSource::Event,
        LeadSource::Referral,
        LeadSource::Partner,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Inbound => "inbound",
            LeadSource::Outbound => "outbound",
            LeadSource::Plg => "plg",
            LeadSource::Event => "event",
            LeadSource::Referral => "referral",
            LeadSource::Partner => "partner",
        }
    }

    /// Parses a storage name written by [`LeadSource::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_names_round_trip() {
        for s in Segment::ALL {
            assert_eq!(Segment::parse(s.as_str()), Some(s));
        }
        for s in LeadSource::ALL {
            assert_eq!(LeadSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(Segment::parse("SMB"), None);
    }

    #[test]
    fn segments_default_to_the_framework_that_fits_their_cycle() {
        assert_eq!(Segment::Smb.default_framework(), Framework::Bant);
        assert_eq!(Segment::Enterprise.default_framework(), Framework::Meddpicc);
    }
}
