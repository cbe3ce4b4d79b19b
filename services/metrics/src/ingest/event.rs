//! The events of both upstream streams, as metrics needs them: `grpc::events`
//! decodes the wire events into these, and only these are applied.
//!
//! Every time here is already placed: a change without a time of its own
//! happened when its event did.

use chrono::{DateTime, Utc};
use qualify_domain::{Channel, GateCheckCode, LeadSource, LeadStage, OpportunityState, Segment, Verification};

/// One event of either stream.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique within its stream: a redelivery carries the same id.
    pub id: String,
    /// Position in its stream.
    pub sequence: i64,
    /// Tenant.
    pub tenant: String,
    /// What changed; `None` when the event counts in no figure (it still moves the cursor).
    pub change: Option<Change>,
}

/// What an event changed.
#[derive(Debug, Clone)]
pub enum Change {
    /// Lead scoring: a lead was created.
    LeadCreated(LeadCreated),
    /// Lead scoring: a lead changed stage.
    LeadStageChanged(LeadStageChanged),
    /// Opportunity acceptance: an opportunity changed (submitted, accepted, worked, closed).
    OpportunityChanged(OpportunityChanged),
    /// Opportunity acceptance: an accept or reject decision was recorded.
    DecisionRecorded(Decision),
    /// Opportunity acceptance: a calibration reviewer recorded or changed a verdict.
    CalibrationReviewed(CalibrationReview),
    /// Lead scoring: a verifier recorded a provider's finding about a contact.
    ContactVerified(ContactVerified),
}

/// A provider's finding about one channel of a contact.
#[derive(Debug, Clone)]
pub struct ContactVerified {
    /// Contact.
    pub contact_id: String,
    /// The channel checked.
    pub channel: Channel,
    /// What the provider found.
    pub status: Verification,
}

/// A new lead and the slice it is counted in.
#[derive(Debug, Clone)]
pub struct LeadCreated {
    /// Lead.
    pub lead_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it came from, if known.
    pub source: Option<LeadSource>,
    /// Its account's segment, if known.
    pub segment: Option<Segment>,
    /// Owning SDR.
    pub sdr: String,
    /// Campaign.
    pub campaign: String,
    /// The lead's contact, if known.
    pub contact_id: String,
}

/// A lead's move to another stage.
#[derive(Debug, Clone)]
pub struct LeadStageChanged {
    /// Lead.
    pub lead_id: String,
    /// The stage entered, if known.
    pub to: Option<LeadStage>,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// An opportunity after a change.
#[derive(Debug, Clone)]
pub struct OpportunityChanged {
    /// Opportunity.
    pub opportunity_id: String,
    /// Its lead.
    pub lead_id: String,
    /// Source of the lead when submitted, if known.
    pub source: Option<LeadSource>,
    /// Campaign of the lead when submitted.
    pub campaign: String,
    /// Segment, if known.
    pub segment: Option<Segment>,
    /// Team.
    pub team: String,
    /// The SDR who submitted it.
    pub submitted_by: String,
    /// Value, in minor units of `currency_code`.
    pub amount_minor: i64,
    /// ISO 4217 currency of its amounts (empty without an amount).
    pub currency_code: String,
    /// Submitted as an expansion of an account (with a reason): counted apart.
    pub expansion: bool,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// State before the change, if known.
    pub from_state: Option<OpportunityState>,
    /// State after it, if known.
    pub state: Option<OpportunityState>,
    /// When it was accepted; `None` until it is.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The acceptance overrode the gate.
    pub overridden: bool,
    /// The first meaningful activity after acceptance; `None` until there is one.
    pub first_meaningful_activity_at: Option<DateTime<Utc>>,
    /// When it closed (meaningful once it has).
    pub closed_at: DateTime<Utc>,
    /// The amount it closed at, when given.
    pub closed_amount_minor: Option<i64>,
}

/// A recorded decision on an opportunity.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Opportunity.
    pub opportunity_id: String,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// Accepted or rejected.
    pub verdict: Verdict,
}

/// The decisions metrics counts.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Accepted despite these failed gate checks.
    Accept {
        /// Gate checks that did not pass.
        failed_checks: Vec<GateCheckCode>,
    },
    /// Rejected.
    Reject {
        /// Name of the reason, as counted (`NO_BUDGET`).
        reason: String,
    },
}

/// A calibration reviewer's verdict on a sampled decision.
#[derive(Debug, Clone)]
pub struct CalibrationReview {
    /// Opportunity decided.
    pub opportunity_id: String,
    /// When the reviewed decision was made.
    pub decided_at: DateTime<Utc>,
    /// The reviewer agrees with the decision.
    pub agree: bool,
    /// The reviewer's earlier verdict on the same sample, when this one changes it.
    pub previous_agree: Option<bool>,
}
