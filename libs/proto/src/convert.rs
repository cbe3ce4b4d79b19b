//! Conversions between wire enums and timestamps and the domain model.
//!
//! Decoding an enum field is strict: `*_UNSPECIFIED` and numbers this build
//! does not know are `None`, and the handler turns that into a field violation.

use chrono::{DateTime, Utc};
use qualify_domain as d;

use qualify_domain::scoring as ds;

use crate::{acceptance as acc, common as c, scoring as sc};

/// Maps a domain enum to its wire enum and back.
macro_rules! enum_map {
    ($domain:ty, $wire:ty, { $($d:path => $w:path),+ $(,)? }) => {
        impl From<$domain> for $wire {
            fn from(v: $domain) -> Self {
                match v { $($d => $w),+ }
            }
        }
        impl WireEnum for $domain {
            fn from_wire(v: i32) -> Option<Self> {
                match <$wire>::try_from(v).ok()? {
                    $($w => Some($d),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
            fn to_wire(self) -> i32 {
                <$wire>::from(self) as i32
            }
        }
    };
}

/// A domain enum carried on the wire as a proto enum number.
pub trait WireEnum: Sized {
    /// Decodes a wire number; `None` for unspecified or unknown values.
    fn from_wire(v: i32) -> Option<Self>;
    /// Encodes as a wire number.
    fn to_wire(self) -> i32;
}

enum_map!(d::Role, c::Role, {
    d::Role::Sdr => c::Role::Sdr,
    d::Role::Ae => c::Role::Ae,
    d::Role::Manager => c::Role::Manager,
    d::Role::Revops => c::Role::Revops,
    d::Role::Service => c::Role::Service,
    d::Role::Verifier => c::Role::Verifier,
    d::Role::Importer => c::Role::Importer,
});

enum_map!(d::LeadStage, c::LeadStage, {
    d::LeadStage::New => c::LeadStage::New,
    d::LeadStage::Mql => c::LeadStage::Mql,
    d::LeadStage::Sal => c::LeadStage::Sal,
    d::LeadStage::Sql => c::LeadStage::Sql,
    d::LeadStage::Sqo => c::LeadStage::Sqo,
    d::LeadStage::Pql => c::LeadStage::Pql,
    d::LeadStage::ClosedWon => c::LeadStage::ClosedWon,
    d::LeadStage::ClosedLost => c::LeadStage::ClosedLost,
    d::LeadStage::Disqualified => c::LeadStage::Disqualified,
    d::LeadStage::Nurture => c::LeadStage::Nurture,
});

enum_map!(d::Framework, c::Framework, {
    d::Framework::Bant => c::Framework::Bant,
    d::Framework::Meddic => c::Framework::Meddic,
    d::Framework::Meddpicc => c::Framework::Meddpicc,
    d::Framework::Champ => c::Framework::Champ,
    d::Framework::GpctbaCi => c::Framework::GpctbaCi,
    d::Framework::Faint => c::Framework::Faint,
    d::Framework::Neat => c::Framework::Neat,
    d::Framework::Anum => c::Framework::Anum,
});

enum_map!(d::Criterion, c::Criterion, {
    d::Criterion::Budget => c::Criterion::Budget,
    d::Criterion::Authority => c::Criterion::Authority,
    d::Criterion::Need => c::Criterion::Need,
    d::Criterion::Timeline => c::Criterion::Timeline,
    d::Criterion::Metrics => c::Criterion::Metrics,
    d::Criterion::EconomicBuyer => c::Criterion::EconomicBuyer,
    d::Criterion::DecisionCriteria => c::Criterion::DecisionCriteria,
    d::Criterion::DecisionProcess => c::Criterion::DecisionProcess,
    d::Criterion::IdentifyPain => c::Criterion::IdentifyPain,
    d::Criterion::Champion => c::Criterion::Champion,
    d::Criterion::PaperProcess => c::Criterion::PaperProcess,
    d::Criterion::Competition => c::Criterion::Competition,
    d::Criterion::Challenges => c::Criterion::Challenges,
    d::Criterion::Money => c::Criterion::Money,
    d::Criterion::Priority => c::Criterion::Priority,
    d::Criterion::Goals => c::Criterion::Goals,
    d::Criterion::Plans => c::Criterion::Plans,
    d::Criterion::NegativeConsequences => c::Criterion::NegativeConsequences,
    d::Criterion::PositiveImplications => c::Criterion::PositiveImplications,
    d::Criterion::Funds => c::Criterion::Funds,
    d::Criterion::Interest => c::Criterion::Interest,
    d::Criterion::Timing => c::Criterion::Timing,
    d::Criterion::EconomicImpact => c::Criterion::EconomicImpact,
    d::Criterion::AccessToAuthority => c::Criterion::AccessToAuthority,
    d::Criterion::Urgency => c::Criterion::Urgency,
});

enum_map!(d::EvidenceStatus, c::EvidenceStatus, {
    d::EvidenceStatus::Unknown => c::EvidenceStatus::Unknown,
    d::EvidenceStatus::Partial => c::EvidenceStatus::Partial,
    d::EvidenceStatus::Confirmed => c::EvidenceStatus::Confirmed,
});

enum_map!(d::LeadSource, c::LeadSource, {
    d::LeadSource::Inbound => c::LeadSource::Inbound,
    d::LeadSource::Outbound => c::LeadSource::Outbound,
    d::LeadSource::Plg => c::LeadSource::Plg,
    d::LeadSource::Event => c::LeadSource::Event,
    d::LeadSource::Referral => c::LeadSource::Referral,
    d::LeadSource::Partner => c::LeadSource::Partner,
});

enum_map!(d::Segment, c::Segment, {
    d::Segment::Smb => c::Segment::Smb,
    d::Segment::MidMarket => c::Segment::MidMarket,
    d::Segment::Enterprise => c::Segment::Enterprise,
});

enum_map!(d::StakeholderRole, c::BuyingRole, {
    d::StakeholderRole::EconomicBuyer => c::BuyingRole::EconomicBuyer,
    d::StakeholderRole::DecisionMaker => c::BuyingRole::DecisionMaker,
    d::StakeholderRole::Champion => c::BuyingRole::Champion,
    d::StakeholderRole::Influencer => c::BuyingRole::Influencer,
    d::StakeholderRole::TechnicalEvaluator => c::BuyingRole::TechnicalEvaluator,
    d::StakeholderRole::Blocker => c::BuyingRole::Blocker,
    d::StakeholderRole::EndUser => c::BuyingRole::EndUser,
});

enum_map!(ds::SignalType, sc::SignalType, {
    ds::SignalType::PricingPageVisit => sc::SignalType::PricingPageVisit,
    ds::SignalType::ContentDownload => sc::SignalType::ContentDownload,
    ds::SignalType::WebinarAttended => sc::SignalType::WebinarAttended,
    ds::SignalType::DemoRequest => sc::SignalType::DemoRequest,
    ds::SignalType::FormSubmit => sc::SignalType::FormSubmit,
    ds::SignalType::EmailReply => sc::SignalType::EmailReply,
    ds::SignalType::MeetingHeld => sc::SignalType::MeetingHeld,
    ds::SignalType::TrialSignup => sc::SignalType::TrialSignup,
    ds::SignalType::ProductActivation => sc::SignalType::ProductActivation,
    ds::SignalType::TeammateInvited => sc::SignalType::TeammateInvited,
    ds::SignalType::PaidFeatureUsed => sc::SignalType::PaidFeatureUsed,
    ds::SignalType::WebsiteVisit => sc::SignalType::WebsiteVisit,
    ds::SignalType::EmailUnsubscribe => sc::SignalType::EmailUnsubscribe,
});

enum_map!(ds::Attribute, sc::Attribute, {
    ds::Attribute::Industry => sc::Attribute::Industry,
    ds::Attribute::EmployeeCount => sc::Attribute::EmployeeCount,
    ds::Attribute::RevenueBand => sc::Attribute::RevenueBand,
    ds::Attribute::Region => sc::Attribute::Region,
    ds::Attribute::Title => sc::Attribute::Title,
    ds::Attribute::Seniority => sc::Attribute::Seniority,
    ds::Attribute::Department => sc::Attribute::Department,
    ds::Attribute::BuyingRole => sc::Attribute::BuyingRole,
});

enum_map!(ds::RuleKind, sc::RuleKind, {
    ds::RuleKind::Fit => sc::RuleKind::Fit,
    ds::RuleKind::Engagement => sc::RuleKind::Engagement,
});

enum_map!(d::OpportunityState, acc::OpportunityState, {
    d::OpportunityState::PendingReview => acc::OpportunityState::PendingReview,
    d::OpportunityState::SentBack => acc::OpportunityState::SentBack,
    d::OpportunityState::Accepted => acc::OpportunityState::Accepted,
    d::OpportunityState::Proposal => acc::OpportunityState::Proposal,
    d::OpportunityState::Negotiation => acc::OpportunityState::Negotiation,
    d::OpportunityState::Rejected => acc::OpportunityState::Rejected,
    d::OpportunityState::Withdrawn => acc::OpportunityState::Withdrawn,
    d::OpportunityState::ClosedWon => acc::OpportunityState::ClosedWon,
    d::OpportunityState::ClosedLost => acc::OpportunityState::ClosedLost,
});

enum_map!(d::GateCheckCode, acc::GateCheckCode, {
    d::GateCheckCode::CriterionNotConfirmed => acc::GateCheckCode::CriterionNotConfirmed,
    d::GateCheckCode::EconomicBuyerMissing => acc::GateCheckCode::EconomicBuyerMissing,
    d::GateCheckCode::ChampionMissing => acc::GateCheckCode::ChampionMissing,
    d::GateCheckCode::BuyingGroupTooSmall => acc::GateCheckCode::BuyingGroupTooSmall,
    d::GateCheckCode::NextStepMissing => acc::GateCheckCode::NextStepMissing,
    d::GateCheckCode::ContactDataStale => acc::GateCheckCode::ContactDataStale,
    d::GateCheckCode::ScoreBelowFloor => acc::GateCheckCode::ScoreBelowFloor,
});

enum_map!(d::ActivityType, acc::ActivityType, {
    d::ActivityType::Call => acc::ActivityType::Call,
    d::ActivityType::Meeting => acc::ActivityType::Meeting,
    d::ActivityType::Email => acc::ActivityType::Email,
    d::ActivityType::Demo => acc::ActivityType::Demo,
    d::ActivityType::Proposal => acc::ActivityType::Proposal,
});

enum_map!(d::RejectionReason, acc::RejectionReason, {
    d::RejectionReason::NoBudget => acc::RejectionReason::NoBudget,
    d::RejectionReason::NoAuthority => acc::RejectionReason::NoAuthority,
    d::RejectionReason::NoNeed => acc::RejectionReason::NoNeed,
    d::RejectionReason::NoTimeline => acc::RejectionReason::NoTimeline,
    d::RejectionReason::NoNextStep => acc::RejectionReason::NoNextStep,
    d::RejectionReason::NotIcp => acc::RejectionReason::NotIcp,
    d::RejectionReason::BadContactData => acc::RejectionReason::BadContactData,
    d::RejectionReason::Duplicate => acc::RejectionReason::Duplicate,
    d::RejectionReason::CompetitorLockedIn => acc::RejectionReason::CompetitorLockedIn,
    d::RejectionReason::Other => acc::RejectionReason::Other,
});

enum_map!(d::DecisionKind, acc::DecisionKind, {
    d::DecisionKind::Accept => acc::DecisionKind::Accept,
    d::DecisionKind::Reject => acc::DecisionKind::Reject,
    d::DecisionKind::SendBack => acc::DecisionKind::SendBack,
});

/// Encodes a time as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// Decodes a protobuf timestamp; `None` when out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    DateTime::from_timestamp(t.seconds, t.nanos as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_value_round_trips_and_unspecified_is_refused() {
        fn check<T: WireEnum + Copy + PartialEq + std::fmt::Debug>(all: &[T]) {
            for v in all {
                assert_eq!(T::from_wire(v.to_wire()), Some(*v));
                assert_ne!(v.to_wire(), 0);
            }
            assert_eq!(T::from_wire(0), None);
            assert_eq!(T::from_wire(9999), None);
        }
        check(&d::Role::ALL);
        check(&d::LeadStage::ALL);
        check(&d::Framework::ALL);
        check(&d::Criterion::ALL);
        check(&[d::EvidenceStatus::Unknown, d::EvidenceStatus::Partial, d::EvidenceStatus::Confirmed]);
        check(&d::LeadSource::ALL);
        check(&d::Segment::ALL);
        check(&d::StakeholderRole::ALL);
        check(&ds::SignalType::ALL);
        check(d::ActivityType::ALL);
        check(d::RejectionReason::ALL);
        check(d::DecisionKind::ALL);
        check(&d::GateCheckCode::ALL);
    }

    #[test]
    fn timestamps_round_trip_and_bad_nanos_are_refused() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
    }
}
