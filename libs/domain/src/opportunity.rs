//! The opportunity aggregate: the opportunity with its evidence, buying
//! group, next step and lead snapshot, the decisions taken on it and its
//! activities; and the state machine: who may make which move.
//!
//! The SQO gate is enforced here, once, for every path: only a human AE who
//! did not submit the opportunity can accept it. [`Opportunity::decide`]
//! adds the gate policy: accepting needs the gate to pass or an explicit,
//! flagged override.

use chrono::{DateTime, Utc};

use crate::framework::{Criterion, EvidenceStatus, Framework};
use crate::gate::{self, GateCandidate, GateCheck, GateStakeholder, PolicyInForce, StakeholderRole};
use crate::role::{Caller, Role};
use crate::subject;
use crate::{LeadSource, LeadStage, Segment};

/// Where an opportunity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpportunityState {
    /// Submitted by an SDR, waiting for an AE.
    PendingReview,
    /// Returned to the SDR with the missing items.
    SentBack,
    /// Accepted by an AE: a sales qualified opportunity.
    Accepted,
    /// Proposal sent.
    Proposal,
    /// In negotiation.
    Negotiation,
    /// Rejected by an AE with a reason.
    Rejected,
    /// Withdrawn by the submitter before a decision.
    Withdrawn,
    /// Won.
    ClosedWon,
    /// Lost.
    ClosedLost,
}

/// A move requested on an opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpportunityAction {
    /// Resubmit after a send-back.
    Resubmit,
    /// Accept as an SQO.
    Accept,
    /// Reject with a reason.
    Reject,
    /// Return to the SDR with the missing items.
    SendBack,
    /// Withdraw before a decision.
    Withdraw,
    /// Move an accepted deal to the next later stage.
    Advance,
    /// Close as won.
    CloseWon,
    /// Close as lost.
    CloseLost,
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The caller may not make this move (PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The move does not exist from the current state (FAILED_PRECONDITION).
    #[error("cannot {action:?} an opportunity that is {from:?}")]
    IllegalState {
        /// Current state.
        from: OpportunityState,
        /// Requested move.
        action: OpportunityAction,
    },
}

/// Roles that may submit an opportunity.
const SUBMITTERS: &[Role] = &[Role::Sdr, Role::Manager];

/// Who wrote an opportunity: the submitter (who owns it) and every
/// contributor (submitter, resubmitters, anyone who wrote its evidence or
/// buying group), none of whom may decide it. Subjects compare normalised.
#[derive(Debug, Clone, Copy)]
pub struct Authors<'a> {
    /// Subject of the submitter.
    pub submitter: &'a str,
    /// Normalised subjects of the contributors.
    pub contributors: &'a [String],
}

impl Authors<'_> {
    /// Nobody: for checking a caller's roles before anything is read.
    pub const NONE: Authors<'static> = Authors { submitter: "", contributors: &[] };

    fn submitted_by(&self, c: &Caller) -> bool {
        !self.submitter.is_empty() && subject::same(self.submitter, &c.subject)
    }

    fn wrote(&self, c: &Caller) -> bool {
        let me = subject::normalise(&c.subject);
        self.submitted_by(c) || self.contributors.contains(&me)
    }
}

impl OpportunityState {
    /// Every state.
    pub const ALL: [OpportunityState; 9] = [
        OpportunityState::PendingReview,
        OpportunityState::SentBack,
        OpportunityState::Accepted,
        OpportunityState::Proposal,
        OpportunityState::Negotiation,
        OpportunityState::Rejected,
        OpportunityState::Withdrawn,
        OpportunityState::ClosedWon,
        OpportunityState::ClosedLost,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpportunityState::PendingReview => "pending_review",
            OpportunityState::SentBack => "sent_back",
            OpportunityState::Accepted => "accepted",
            OpportunityState::Proposal => "proposal",
            OpportunityState::Negotiation => "negotiation",
            OpportunityState::Rejected => "rejected",
            OpportunityState::Withdrawn => "withdrawn",
            OpportunityState::ClosedWon => "closed_won",
            OpportunityState::ClosedLost => "closed_lost",
        }
    }

    /// Parses a storage name written by [`OpportunityState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Accepted and not yet closed: counts as open pipeline.
    pub fn is_open_pipeline(self) -> bool {
        matches!(self, OpportunityState::Accepted | OpportunityState::Proposal | OpportunityState::Negotiation)
    }

    /// Checks that `caller` may submit a new opportunity.
    pub fn submit(caller: &Caller) -> Result<OpportunityState, TransitionError> {
        if caller.is_automation() {
            return Err(TransitionError::Forbidden("automation cannot submit opportunities"));
        }
        if !caller.has_any(SUBMITTERS) {
            return Err(TransitionError::Forbidden("only an SDR or a manager can submit an opportunity"));
        }
        Ok(OpportunityState::PendingReview)
    }

    /// Applies `action` by `caller` to an opportunity written by `authors`.
    /// Permission is checked before state, so a refused caller learns nothing
    /// about where the opportunity stands.
    pub fn apply(
        self,
        action: OpportunityAction,
        caller: &Caller,
        authors: Authors<'_>,
    ) -> Result<OpportunityState, TransitionError> {
        use OpportunityAction as A;
        use OpportunityState as S;
        check_permission(action, caller, authors)?;
        let next = match (self, action) {
            (S::SentBack, A::Resubmit) => S::PendingReview,
            (S::PendingReview, A::Accept) => S::Accepted,
            (S::PendingReview, A::Reject) => S::Rejected,
            (S::PendingReview, A::SendBack) => S::SentBack,
            (S::PendingReview | S::SentBack, A::Withdraw) => S::Withdrawn,
            (S::Accepted, A::Advance) => S::Proposal,
            (S::Proposal, A::Advance) => S::Negotiation,
            (S::Accepted | S::Proposal | S::Negotiation, A::CloseWon) => S::ClosedWon,
            (S::Accepted | S::Proposal | S::Negotiation, A::CloseLost) => S::ClosedLost,
            (from, action) => return Err(TransitionError::IllegalState { from, action }),
        };
        Ok(next)
    }
}

fn check_permission(action: OpportunityAction, caller: &Caller, authors: Authors<'_>) -> Result<(), TransitionError> {
    use OpportunityAction as A;
    if caller.is_automation() {
        return Err(TransitionError::Forbidden("automation cannot act on opportunities"));
    }
    let is_submitter = authors.submitted_by(caller);
    let wrote = authors.wrote(caller);
    match action {
        A::Accept => {
            if !caller.has(Role::Ae) {
                return Err(TransitionError::Forbidden("only an account executive can accept an opportunity"));
            }
            if caller.has(Role::Sdr) {
                return Err(TransitionError::Forbidden("a caller holding the SDR role cannot accept"));
            }
            if is_submitter {
                return Err(TransitionError::Forbidden("the submitter cannot accept their own opportunity"));
            }
            if wrote {
                return Err(TransitionError::Forbidden("a contributor cannot accept an opportunity they wrote"));
            }
        }
        A::Reject | A::SendBack => {
            if !caller.has_any(&[Role::Ae, Role::Manager]) {
                return Err(TransitionError::Forbidden("only an account executive or a manager can decide"));
            }
            if is_submitter {
                return Err(TransitionError::Forbidden("the submitter cannot decide their own opportunity"));
            }
            if wrote {
                return Err(TransitionError::Forbidden("a contributor cannot decide an opportunity they wrote"));
            }
        }
        A::Resubmit | A::Withdraw => {
            if !(is_submitter || caller.has(Role::Manager)) {
                return Err(TransitionError::Forbidden("only the submitter or a manager can do this"));
            }
        }
        A::Advance | A::CloseWon | A::CloseLost => {
            if !caller.has_any(&[Role::Ae, Role::Manager]) {
                return Err(TransitionError::Forbidden("only an account executive or a manager can move a deal"));
            }
        }
    }
    Ok(())
}

/// Accepted and abandoned, as of `at`: a deal accepted more than the
/// follow-up window before `at`, still open then, that aged past the window
/// untouched (no meaningful activity within the window of its acceptance: one
/// that came later came too late). Everything it reads was known at `at`: a
/// first activity inside the window happened before it.
pub fn is_abandoned(o: &Opportunity, at: chrono::DateTime<chrono::Utc>, window: chrono::Duration) -> bool {
    let Some(accepted) = o.accepted_at else { return false };
    let open_then = o.state.is_open_pipeline() || o.closed_at.is_some_and(|c| c > at);
    accepted <= at
        && at - accepted > window
        && open_then
        && o.first_meaningful_activity_at.is_none_or(|first| first - accepted > window)
}

/// Declares an enum with `ALL` and stable storage names (`as_str`, `parse`).
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Stable storage name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses a storage name written by `as_str`.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

named_enum! {
    /// Kinds of sales activity, also the kind of a next step.
    ActivityType {
        /// Phone or video call.
        Call => "call",
        /// Meeting.
        Meeting => "meeting",
        /// Email.
        Email => "email",
        /// Product demo.
        Demo => "demo",
        /// Proposal.
        Proposal => "proposal",
    }
}

named_enum! {
    /// Why an opportunity was rejected: the feedback marketing learns from.
    RejectionReason {
        /// No budget exists or can be created.
        NoBudget => "no_budget",
        /// Nobody with authority is involved.
        NoAuthority => "no_authority",
        /// No specific, articulated need.
        NoNeed => "no_need",
        /// No timeline.
        NoTimeline => "no_timeline",
        /// No concrete next step.
        NoNextStep => "no_next_step",
        /// Outside the ideal customer profile.
        NotIcp => "not_icp",
        /// Contacts unreachable or wrong.
        BadContactData => "bad_contact_data",
        /// Duplicate of another opportunity.
        Duplicate => "duplicate",
        /// A competitor is already locked in.
        CompetitorLockedIn => "competitor_locked_in",
        /// Anything else; a note says what.
        Other => "other",
    }
}

named_enum! {
    /// What a decision decided.
    DecisionKind {
        /// Accepted as an SQO.
        Accept => "accept",
        /// Rejected with a reason.
        Reject => "reject",
        /// Sent back to the SDR.
        SendBack => "send_back",
    }
}

/// An amount in minor units of its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Minor units, for example 12345 for USD 123.45.
    pub amount_minor: i64,
    /// ISO 4217 code, for example "USD".
    pub currency_code: String,
}

/// Evidence for one criterion, in the rep's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The criterion evidenced.
    pub criterion: Criterion,
    /// How well it is evidenced.
    pub status: EvidenceStatus,
    /// What was learned.
    pub note: String,
    /// Subject of the person who confirmed it.
    pub confirmed_by: String,
}

/// A person in the buying group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stakeholder {
    /// The contact in lead scoring, when known: its verification time comes from there.
    pub contact_id: Option<String>,
    /// Role in the buying group.
    pub role: StakeholderRole,
    /// When the contact's email or phone was last verified, if ever.
    pub verified_at: Option<DateTime<Utc>>,
}

/// A next step on the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    /// What will happen.
    pub description: String,
    /// When it is scheduled, if it is.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Kind of step, if given.
    pub kind: Option<ActivityType>,
}

/// What the gate looks at, as the SDR gives it: evidence, buying group and next step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Qualification {
    /// Evidence per criterion; the last word on a criterion counts.
    pub evidence: Vec<Evidence>,
    /// The buying group.
    pub stakeholders: Vec<Stakeholder>,
    /// The next step, if one was given.
    pub next_step: Option<NextStep>,
}

impl Qualification {
    /// The gate's view of it, for a lead scored `score`.
    pub fn gate_candidate(&self, score: i32) -> GateCandidate {
        candidate(&self.evidence, &self.stakeholders, self.next_step.as_ref(), score)
    }
}

fn candidate(
    evidence: &[Evidence],
    stakeholders: &[Stakeholder],
    next: Option<&NextStep>,
    score: i32,
) -> GateCandidate {
    GateCandidate {
        evidence: evidence.iter().map(|e| (e.criterion, e.status)).collect(),
        stakeholders: stakeholders
            .iter()
            .map(|s| GateStakeholder { role: s.role, verified_at: s.verified_at })
            .collect(),
        next_step_at: next.and_then(|n| n.scheduled_at),
        score,
    }
}

/// What lead scoring said about the lead when the opportunity was (re)submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadSnapshot {
    /// The lead's total score.
    pub score: i32,
    /// The lead's stage.
    pub stage: LeadStage,
    /// Version of the scorecard behind the score (0 when never scored).
    pub scorecard_version: i64,
    /// The lead's source (`None` when lead scoring named one this build does not know).
    pub source: Option<LeadSource>,
    /// The lead's campaign.
    pub campaign: String,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
}

/// An opportunity on its way through the SQO gate, and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opportunity {
    /// Caller-chosen id, unique in the tenant.
    pub opportunity_id: String,
    /// The lead in lead scoring.
    pub lead_id: String,
    /// Where it stands.
    pub state: OpportunityState,
    /// Expected amount.
    pub amount: Money,
    /// Expected close date.
    pub expected_close_at: DateTime<Utc>,
    /// Segment whose gate policy applies.
    pub segment: Segment,
    /// Framework in force for the segment when submitted.
    pub framework: Framework,
    /// Evidence per criterion; the last word on a criterion counts.
    pub evidence: Vec<Evidence>,
    /// The buying group.
    pub stakeholders: Vec<Stakeholder>,
    /// Competitors evaluated.
    pub competitors: Vec<String>,
    /// The next step, if one was given.
    pub next_step: Option<NextStep>,
    /// Team of the submitter.
    pub team: String,
    /// Subject of the submitter.
    pub submitted_by: String,
    /// The lead as lead scoring saw it at the last submission.
    pub lead_snapshot: LeadSnapshot,
    /// Accepted by override of a failed gate.
    pub overridden: bool,
    /// Increases on every change.
    pub version: i64,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the first meaningful activity at or after acceptance happened.
    pub first_meaningful_activity_at: Option<DateTime<Utc>>,
    /// Items missing when it was last sent back.
    pub missing_items: Vec<String>,
    /// Final amount, when closed with one.
    pub closed_amount: Option<Money>,
    /// Why it closed (empty while open).
    pub close_reason: String,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Account executive who accepted it (empty until then).
    pub accepted_by: String,
    /// Everyone who wrote its content, normalised ([`crate::subject::normalise`]):
    /// none of them may accept or reject it.
    pub contributors: Vec<String>,
    /// Why it is an expansion of a lead that already has a live opportunity
    /// (empty for an ordinary one).
    pub expansion_reason: String,
    /// Written by an importer with its past (submission, decision, activities, close), not live.
    pub imported: bool,
}

/// An AE's or manager's verdict on a pending opportunity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept as an SQO; a non-empty justification overrides a failed gate.
    Accept {
        /// The written justification of an override (empty: none).
        justification: String,
    },
    /// Reject with a reason.
    Reject {
        /// Why.
        reason: RejectionReason,
        /// Note (required with [`RejectionReason::Other`]).
        note: String,
    },
    /// Return to the SDR with what is missing.
    SendBack {
        /// What the SDR should do.
        note: String,
    },
}

impl Verdict {
    /// The move the verdict makes.
    pub fn action(&self) -> OpportunityAction {
        match self {
            Verdict::Accept { .. } => OpportunityAction::Accept,
            Verdict::Reject { .. } => OpportunityAction::Reject,
            Verdict::SendBack { .. } => OpportunityAction::SendBack,
        }
    }

    /// The kind of decision it records.
    pub fn kind(&self) -> DecisionKind {
        match self {
            Verdict::Accept { .. } => DecisionKind::Accept,
            Verdict::Reject { .. } => DecisionKind::Reject,
            Verdict::SendBack { .. } => DecisionKind::SendBack,
        }
    }
}

/// One decision on an opportunity: the audit record, immutable once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Id, unique in the tenant.
    pub decision_id: String,
    /// The opportunity decided.
    pub opportunity_id: String,
    /// What was decided.
    pub kind: DecisionKind,
    /// Subject who decided.
    pub decided_by: String,
    /// Roles the decider held.
    pub decided_by_roles: Vec<Role>,
    /// When.
    pub decided_at: DateTime<Utc>,
    /// Reason of a rejection.
    pub reason: Option<RejectionReason>,
    /// Note of a rejection or send-back (empty: none).
    pub note: String,
    /// Whether the gate passed at decision time.
    pub gate_passed: bool,
    /// Every gate check at decision time.
    pub checks: Vec<GateCheck>,
    /// Accepted despite a failed gate.
    pub overridden: bool,
    /// The written justification of an override.
    pub override_justification: String,
    /// Scorecard version of the lead snapshot.
    pub scorecard_version: i64,
    /// Gate policy version evaluated (0 for a segment's default).
    pub policy_version: i64,
    /// The evidence as it stood.
    pub evidence: Vec<Evidence>,
    /// Team of the opportunity.
    pub team: String,
    /// Source of the lead, from the snapshot.
    pub source: Option<LeadSource>,
    /// The opportunity's contributors when it was decided.
    pub contributors: Vec<String>,
}

impl Decision {
    /// Taken in a CRM and imported (its decider held the importer role): it counts in the
    /// funnel, close rates and forecasts, never in calibration samples.
    pub fn is_imported(&self) -> bool {
        self.decided_by_roles.contains(&Role::Importer)
    }
}

/// A sales activity on an accepted opportunity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Id, unique in the tenant.
    pub activity_id: String,
    /// Kind of activity.
    pub kind: ActivityType,
    /// Whether a real conversation with the buyer happened.
    pub meaningful: bool,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Free text.
    pub note: String,
    /// Who recorded it.
    pub recorded_by: String,
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// The caller may not make the move, or it does not exist from the current state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// An accept without justification while the gate fails; `failed` holds each failed check's detail.
    #[error("the gate does not pass")]
    GateNotPassed {
        /// Details of the failed checks, in policy order.
        failed: Vec<String>,
    },
}

/// A close in another currency than the opportunity's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {expected}, the opportunity's currency")]
pub struct CurrencyMismatch {
    /// The opportunity's currency.
    pub expected: String,
}

impl Opportunity {
    /// Who wrote it.
    pub fn authors(&self) -> Authors<'_> {
        Authors { submitter: &self.submitted_by, contributors: &self.contributors }
    }

    /// Records `c` as a contributor (once): whoever writes content may not decide it.
    pub fn add_contributor(&mut self, c: &Caller) {
        let me = subject::normalise(&c.subject);
        if !self.contributors.contains(&me) {
            self.contributors.push(me);
        }
    }

    /// An expansion of a lead that already has a live opportunity.
    pub fn is_expansion(&self) -> bool {
        !self.expansion_reason.is_empty()
    }

    /// Pending, sent back, or accepted and open: the lead's live opportunity.
    pub fn is_live(&self) -> bool {
        matches!(self.state, OpportunityState::PendingReview | OpportunityState::SentBack)
            || self.state.is_open_pipeline()
    }

    /// The gate's view of the opportunity: evidence, buying group, next step and score.
    pub fn gate_candidate(&self) -> GateCandidate {
        candidate(&self.evidence, &self.stakeholders, self.next_step.as_ref(), self.lead_snapshot.score)
    }

    /// Records a change made at `now`: one more version.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }

    /// Takes `caller`'s verdict at `now`, with the gate evaluated under the
    /// segment's `policy` in force, and returns the decision to record.
    /// Accepting needs the gate to pass or a justification, which flags the
    /// opportunity and the decision for good; a send-back lists what failed.
    /// On refusal nothing changes.
    pub fn decide(
        &mut self,
        caller: &Caller,
        verdict: &Verdict,
        policy: &PolicyInForce,
        decision_id: String,
        now: DateTime<Utc>,
    ) -> Result<Decision, DecisionError> {
        let to = self.state.apply(verdict.action(), caller, self.authors())?;
        let gate = gate::evaluate(&policy.policy, &self.gate_candidate(), now);
        let passed = gate.passed();
        let mut d = Decision {
            decision_id,
            opportunity_id: self.opportunity_id.clone(),
            kind: verdict.kind(),
            decided_by: caller.subject.clone(),
            decided_by_roles: caller.roles.clone(),
            decided_at: now,
            reason: None,
            note: String::new(),
            gate_passed: passed,
            checks: gate.checks.clone(),
            overridden: false,
            override_justification: String::new(),
            scorecard_version: self.lead_snapshot.scorecard_version,
            policy_version: policy.version,
            evidence: self.evidence.clone(),
            team: self.team.clone(),
            source: self.lead_snapshot.source,
            contributors: self.contributors.clone(),
        };
        let failed = || gate.failures().map(|k| k.detail.clone()).collect::<Vec<_>>();
        match verdict {
            Verdict::Accept { justification } => {
                if !passed {
                    if justification.is_empty() {
                        return Err(DecisionError::GateNotPassed { failed: failed() });
                    }
                    d.overridden = true;
                    self.overridden = true;
                }
                d.override_justification = justification.clone();
                self.accepted_at = Some(now);
                self.accepted_by = caller.subject.clone();
            }
            Verdict::Reject { reason, note } => {
                d.reason = Some(*reason);
                d.note = note.clone();
            }
            Verdict::SendBack { note } => {
                d.note = note.clone();
                self.missing_items = failed();
                if !note.is_empty() {
                    self.missing_items.push(note.clone());
                }
            }
        }
        self.state = to;
        self.touch(now);
        Ok(d)
    }

    /// Activities are recorded on accepted deals only, open or closed.
    pub fn takes_activities(&self) -> bool {
        self.state.is_open_pipeline()
            || matches!(self.state, OpportunityState::ClosedWon | OpportunityState::ClosedLost)
    }

    /// Notes an activity: a meaningful one at or after acceptance, earlier
    /// than any before, becomes the first follow-up (a change at `now`).
    /// Returns whether the opportunity changed.
    pub fn note_activity(&mut self, a: &Activity, now: DateTime<Utc>) -> bool {
        let follows_up = a.meaningful
            && self.accepted_at.is_some_and(|acc| a.occurred_at >= acc)
            && self.first_meaningful_activity_at.is_none_or(|f| a.occurred_at < f);
        if follows_up {
            self.first_meaningful_activity_at = Some(a.occurred_at);
            self.touch(now);
        }
        follows_up
    }

    /// Closes with `amount` (in the opportunity's currency) and `reason`;
    /// the state move itself is the caller's.
    pub fn close(&mut self, amount: Option<Money>, reason: String, now: DateTime<Utc>) -> Result<(), CurrencyMismatch> {
        if let Some(closed) = &amount
            && closed.currency_code != self.amount.currency_code
        {
            return Err(CurrencyMismatch { expected: self.amount.currency_code.clone() });
        }
        self.closed_amount = amount;
        self.close_reason = reason;
        self.closed_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OpportunityAction as A;
    use OpportunityState as S;
    use proptest::prelude::*;

    const SAM_WROTE: &[String] = &[];
    /// Submitted by `sam`, who alone wrote it.
    const SAM: Authors<'static> = Authors { submitter: "sam", contributors: SAM_WROTE };

    fn caller(subject: &str, roles: &[Role]) -> Caller {
        Caller { tenant: "acme".into(), subject: subject.into(), roles: roles.to_vec() }
    }

    const ACTIONS: [OpportunityAction; 8] =
        [A::Resubmit, A::Accept, A::Reject, A::SendBack, A::Withdraw, A::Advance, A::CloseWon, A::CloseLost];

    /// The full matrix: every state × every action × every single role, as
    /// submitter and as someone else. Expected outcomes are spelled out.
    #[test]
    fn every_move_allowed_and_refused_per_role() {
        let legal = |from: S, a: A| -> Option<S> {
            Some(match (from, a) {
                (S::SentBack, A::Resubmit) => S::PendingReview,
                (S::PendingReview, A::Accept) => S::Accepted,
                (S::PendingReview, A::Reject) => S::Rejected,
                (S::PendingReview, A::SendBack) => S::SentBack,
                (S::PendingReview | S::SentBack, A::Withdraw) => S::Withdrawn,
                (S::Accepted, A::Advance) => S::Proposal,
                (S::Proposal, A::Advance) => S::Negotiation,
                (S::Accepted | S::Proposal | S::Negotiation, A::CloseWon) => S::ClosedWon,
                (S::Accepted | S::Proposal | S::Negotiation, A::CloseLost) => S::ClosedLost,
                _ => return None,
            })
        };
        // `sam` submitted it; `mia` resubmitted it with evidence of her own; `alex` wrote nothing.
        let wrote = ["sam".to_string(), "mia".to_string()];
        let authors = Authors { submitter: "sam", contributors: &wrote };
        let permitted = |a: A, role: Role, who: &str| -> bool {
            let is_submitter = who == "sam";
            let contributed = who != "alex";
            match (a, role) {
                (_, Role::Service) => false,
                (A::Accept, Role::Ae) => !contributed,
                (A::Accept, _) => false,
                (A::Reject | A::SendBack, Role::Ae | Role::Manager) => !contributed,
                (A::Reject | A::SendBack, _) => false,
                (A::Resubmit | A::Withdraw, r) => is_submitter || r == Role::Manager,
                (A::Advance | A::CloseWon | A::CloseLost, r) => matches!(r, Role::Ae | Role::Manager),
            }
        };
        let mut checked = 0;
        for from in S::ALL {
            for a in ACTIONS {
                for role in Role::ALL {
                    // Subjects compare normalised: " MIA" is mia.
                    for (who, subject) in [("sam", "sam"), ("mia", " MIA"), ("alex", "alex")] {
                        let got = from.apply(a, &caller(subject, &[role]), authors);
                        match (permitted(a, role, who), legal(from, a)) {
                            (false, _) => assert!(
                                matches!(got, Err(TransitionError::Forbidden(_))),
                                "{from:?} {a:?} {role:?} by {who}: {got:?}"
                            ),
                            (true, None) => assert_eq!(got, Err(TransitionError::IllegalState { from, action: a })),
                            (true, Some(to)) => assert_eq!(got, Ok(to), "{from:?} {a:?} {role:?}"),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 9 * 8 * Role::ALL.len() * 3, "every state, move, role (the importer too) and author");
    }

    #[test]
    fn only_sdrs_and_managers_submit_and_never_automation() {
        assert_eq!(S::submit(&caller("s", &[Role::Sdr])), Ok(S::PendingReview));
        assert_eq!(S::submit(&caller("m", &[Role::Manager])), Ok(S::PendingReview));
        for roles in [&[Role::Ae][..], &[Role::Revops], &[Role::Service], &[Role::Sdr, Role::Service], &[]] {
            assert!(S::submit(&caller("x", roles)).is_err(), "{roles:?}");
        }
    }

    #[test]
    fn a_token_with_ae_and_sdr_or_service_roles_cannot_accept() {
        let pending = S::PendingReview;
        assert!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Sdr]), SAM).is_err());
        assert!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Service]), SAM).is_err());
        assert_eq!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Manager]), SAM), Ok(S::Accepted));
    }

    #[test]
    fn abandoned_means_aged_past_the_window_untouched_while_open() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let w = Duration::days(14);
        let day = |d: i64| now - Duration::days(d);
        let deal = |state: S, accepted: Option<i64>, first: Option<i64>, closed: Option<i64>| Opportunity {
            state,
            accepted_at: accepted.map(day),
            first_meaningful_activity_at: first.map(day),
            closed_at: closed.map(day),
            ..pending()
        };
        assert!(is_abandoned(&deal(S::Accepted, Some(15), None, None), now, w));
        assert!(is_abandoned(&deal(S::Proposal, Some(30), None, None), now, w));
        assert!(
            !is_abandoned(&deal(S::Accepted, Some(14), None, None), now, w),
            "exactly at the window is not yet late"
        );
        assert!(!is_abandoned(&deal(S::Accepted, Some(30), Some(29), None), now, w), "touched within the window");
        assert!(is_abandoned(&deal(S::Accepted, Some(30), Some(2), None), now, w), "touched only after the window");
        assert!(!is_abandoned(&deal(S::ClosedLost, Some(30), None, Some(1)), now, w), "closed deals are not abandoned");
        assert!(!is_abandoned(&deal(S::PendingReview, None, None, None), now, w));
        // As of ten days ago: the deal closed since was still open then.
        let then = day(10);
        assert!(is_abandoned(&deal(S::ClosedWon, Some(30), None, Some(1)), then, w));
        assert!(!is_abandoned(&deal(S::Accepted, Some(20), None, None), then, w), "ten days old then");
        assert!(!is_abandoned(&deal(S::Accepted, Some(5), None, None), then, w), "not accepted yet then");
    }

    #[test]
    fn open_pipeline_is_accepted_and_not_closed() {
        let open: Vec<_> = S::ALL.into_iter().filter(|s| s.is_open_pipeline()).collect();
        assert_eq!(open, vec![S::Accepted, S::Proposal, S::Negotiation]);
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn pending() -> Opportunity {
        let t0 = at("2026-11-01T09:00:00Z");
        Opportunity {
            opportunity_id: "opp-1".into(),
            lead_id: "l-1".into(),
            state: S::PendingReview,
            amount: Money { amount_minor: 2_400_000, currency_code: "USD".into() },
            expected_close_at: at("2027-01-31T00:00:00Z"),
            segment: Segment::Smb,
            framework: Framework::Bant,
            evidence: vec![Evidence {
                criterion: Criterion::Budget,
                status: EvidenceStatus::Confirmed,
                note: "allocated".into(),
                confirmed_by: "cfo".into(),
            }],
            stakeholders: vec![Stakeholder {
                contact_id: Some("c-1".into()),
                role: StakeholderRole::Champion,
                verified_at: Some(t0),
            }],
            competitors: vec![],
            next_step: None,
            team: "emea".into(),
            submitted_by: "sam".into(),
            lead_snapshot: LeadSnapshot {
                score: 70,
                stage: LeadStage::Sql,
                scorecard_version: 3,
                source: Some(LeadSource::Inbound),
                campaign: "q4".into(),
                taken_at: t0,
            },
            overridden: false,
            version: 1,
            created_at: t0,
            updated_at: t0,
            accepted_at: None,
            first_meaningful_activity_at: None,
            missing_items: vec![],
            closed_amount: None,
            close_reason: String::new(),
            closed_at: None,
            accepted_by: String::new(),
            contributors: vec!["sam".into()],
            expansion_reason: String::new(),
            imported: false,
        }
    }

    /// Budget and a champion, which `pending()` has, and a next step, which it lacks.
    fn policy(version: i64) -> PolicyInForce {
        let policy = crate::GatePolicy {
            framework: Framework::Bant,
            required_criteria: vec![Criterion::Budget],
            require_economic_buyer: false,
            require_champion: true,
            min_stakeholders: 0,
            require_next_step: true,
            contact_max_age_days: 0,
            min_score: 0,
        };
        PolicyInForce { policy, version, updated_at: None }
    }

    #[test]
    fn a_failed_gate_is_accepted_only_with_a_justification_which_flags_both_for_good() {
        let (ae, now) = (caller("alex", &[Role::Ae]), at("2026-11-02T10:00:00Z"));
        let mut o = pending();
        let bare = Verdict::Accept { justification: String::new() };
        let refused = o.decide(&ae, &bare, &policy(4), "d-1".into(), now);
        assert_eq!(refused, Err(DecisionError::GateNotPassed { failed: vec!["no next step scheduled".into()] }));
        assert_eq!(o, pending(), "a refusal changes nothing");
        let justified = Verdict::Accept { justification: "demo booked by phone, invite follows".into() };
        let d = o.decide(&ae, &justified, &policy(4), "d-1".into(), now).unwrap();
        assert!(d.overridden && o.overridden && !d.gate_passed);
        assert_eq!((d.kind, d.policy_version, d.scorecard_version), (DecisionKind::Accept, 4, 3));
        assert_eq!((d.source, d.team.as_str(), d.evidence.len()), (Some(LeadSource::Inbound), "emea", 1));
        assert_eq!((o.state, o.version, o.accepted_at, o.accepted_by.as_str()), (S::Accepted, 2, Some(now), "alex"));
        assert_eq!(o.updated_at, now);
    }

    #[test]
    fn a_send_back_lists_the_failed_checks_and_the_note_and_the_state_machine_still_rules() {
        let now = at("2026-11-02T10:00:00Z");
        let mut o = pending();
        let back = Verdict::SendBack { note: "map the economic buyer".into() };
        let d = o.decide(&caller("alex", &[Role::Ae]), &back, &policy(0), "d-1".into(), now).unwrap();
        assert_eq!(o.missing_items, ["no next step scheduled", "map the economic buyer"]);
        assert_eq!((o.state, d.kind, d.note.as_str()), (S::SentBack, DecisionKind::SendBack, "map the economic buyer"));
        let reject = Verdict::Reject { reason: RejectionReason::NoBudget, note: String::new() };
        let by_submitter = pending().decide(&caller("sam", &[Role::Ae]), &reject, &policy(0), "d".into(), now);
        assert!(matches!(by_submitter, Err(DecisionError::Transition(TransitionError::Forbidden(_)))));
        assert!(matches!(
            o.decide(&caller("alex", &[Role::Ae]), &reject, &policy(0), "d".into(), now),
            Err(DecisionError::Transition(TransitionError::IllegalState { .. }))
        ));
    }

    #[test]
    fn the_first_meaningful_activity_after_acceptance_is_the_follow_up() {
        let accepted = at("2026-11-02T10:00:00Z");
        let mut o = Opportunity { state: S::Accepted, accepted_at: Some(accepted), ..pending() };
        let activity = |meaningful, occurred_at| Activity {
            activity_id: "a".into(),
            kind: ActivityType::Call,
            meaningful,
            occurred_at,
            note: String::new(),
            recorded_by: "alex".into(),
        };
        let now = at("2026-11-09T10:00:00Z");
        assert!(o.takes_activities() && !pending().takes_activities());
        assert!(!o.note_activity(&activity(false, at("2026-11-03T10:00:00Z")), now), "not a conversation");
        assert!(!o.note_activity(&activity(true, at("2026-11-01T10:00:00Z")), now), "before acceptance");
        assert!(o.note_activity(&activity(true, at("2026-11-05T10:00:00Z")), now));
        assert!(o.note_activity(&activity(true, at("2026-11-04T10:00:00Z")), now), "an earlier one found later");
        assert!(!o.note_activity(&activity(true, at("2026-11-06T10:00:00Z")), now));
        assert_eq!((o.first_meaningful_activity_at, o.version), (Some(at("2026-11-04T10:00:00Z")), 3));
    }

    #[test]
    fn a_close_keeps_the_opportunity_currency() {
        let now = at("2026-12-01T10:00:00Z");
        let mut o = pending();
        let eur = Money { amount_minor: 1, currency_code: "EUR".into() };
        assert_eq!(o.close(Some(eur), "won".into(), now), Err(CurrencyMismatch { expected: "USD".into() }));
        assert_eq!(o, pending());
        o.close(None, "lost to a competitor".into(), now).unwrap();
        assert_eq!((o.closed_amount, o.close_reason.as_str(), o.closed_at), (None, "lost to a competitor", Some(now)));
    }

    #[test]
    fn the_gate_sees_the_evidence_buying_group_next_step_and_score() {
        let mut o = pending();
        o.next_step = Some(NextStep { description: "demo".into(), scheduled_at: None, kind: Some(ActivityType::Demo) });
        let c = o.gate_candidate();
        assert_eq!(c.evidence, [(Criterion::Budget, EvidenceStatus::Confirmed)]);
        assert_eq!((c.stakeholders.len(), c.next_step_at, c.score), (1, None, 70));
    }

    #[test]
    fn new_enums_round_trip_their_storage_names() {
        for k in ActivityType::ALL {
            assert_eq!(ActivityType::parse(k.as_str()), Some(*k));
        }
        for r in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(r.as_str()), Some(*r));
        }
        for k in DecisionKind::ALL {
            assert_eq!(DecisionKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(RejectionReason::ALL.len(), 10);
    }

    proptest! {
        /// No sequence of moves by anyone but a non-submitting human AE ever yields Accepted.
        #[test]
        fn nothing_but_an_independent_ae_accepts(steps in proptest::collection::vec(
            (proptest::sample::select(ACTIONS.to_vec()),
             proptest::sample::subsequence(Role::ALL.to_vec(), 0..=5),
             any::<bool>()), 0..30)) {
            let mut state = S::PendingReview;
            for (a, roles, is_submitter) in steps {
                let who = if is_submitter { "sam" } else { "alex" };
                let c = caller(who, &roles);
                let independent_ae = c.has(Role::Ae) && !c.has(Role::Sdr) && !c.is_automation() && !is_submitter;
                if let Ok(next) = state.apply(a, &c, SAM) {
                    if next == S::Accepted && state != S::Accepted {
                        prop_assert!(independent_ae && a == A::Accept);
                    }
                    state = next;
                }
            }
        }
    }
}
