//! The opportunity RPCs: their codec (requests decoded into domain commands
//! with every field violation collected, domain results encoded) and their
//! units of work: each change, its outbox events and its idempotency key in
//! one transaction.

use chrono::Duration;
use prost::Message;
use qualify_domain::opportunity::{Evidence, Money, NextStep, Stakeholder};
use qualify_domain::{
    Activity, ActivityType, Caller, Criterion, Decision, DecisionKind, EvidenceStatus, GateResult, LeadSource,
    Opportunity, OpportunityAction, OpportunityState, Qualification, RejectionReason, Segment, StakeholderRole,
    Verdict,
};
use qualify_platform::auth::credentials::OnBehalf;
use qualify_platform::validate::{Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::acceptance as pb;
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};

use super::{AcceptanceApi, MAX_ITEMS, emit};
use crate::opportunities::{self, Closing, Event, NewActivity, Submission};

/// How far a live activity's time may be from the server's (clock skew).
const LIVE_SKEW_MINUTES: i64 = 5;

/// Shortest override justification accepted.
const MIN_JUSTIFICATION: usize = 20;

pub(super) fn decode_money(v: &mut Violations, field: &str, m: Option<&cpb::Money>, required: bool) -> Option<Money> {
    let Some(m) = m else {
        v.check(!required, field, "is required");
        return None;
    };
    v.check(m.amount_minor > 0, format!("{field}.amount_minor"), "must be positive");
    v.check(
        m.amount_minor <= 100_000_000_000_000,
        format!("{field}.amount_minor"),
        "must be at most 1e12 in major units",
    );
    v.check(
        m.currency_code.len() == 3 && m.currency_code.bytes().all(|b| b.is_ascii_uppercase()),
        format!("{field}.currency_code"),
        "must be an ISO 4217 code such as USD",
    );
    Some(Money { amount_minor: m.amount_minor, currency_code: m.currency_code.clone() })
}

fn encode_money(m: &Money) -> cpb::Money {
    cpb::Money { amount_minor: m.amount_minor, currency_code: m.currency_code.clone() }
}

/// Decodes what the gate looks at; field paths start with `prefix`.
pub(crate) fn decode_qualification(
    v: &mut Violations,
    prefix: &str,
    evidence_in: &[pb::CriterionEvidence],
    stakeholders_in: &[pb::Stakeholder],
    next_step: Option<&pb::NextStep>,
) -> Qualification {
    let (ev, st) = (format!("{prefix}.evidence"), format!("{prefix}.stakeholders"));
    v.check(evidence_in.len() <= MAX_ITEMS, ev.as_str(), "must have at most 100 items");
    v.check(stakeholders_in.len() <= MAX_ITEMS, st.as_str(), "must have at most 100 items");
    let mut evidence = Vec::new();
    for (i, e) in evidence_in.iter().enumerate().take(MAX_ITEMS) {
        let criterion = v.required_enum::<Criterion>(Item(&ev, i, "criterion"), e.criterion);
        let status = v.required_enum::<EvidenceStatus>(Item(&ev, i, "status"), e.status);
        v.text(Item(&ev, i, "note"), &e.note, 4096);
        v.text(Item(&ev, i, "confirmed_by"), &e.confirmed_by, 128);
        if let (Some(criterion), Some(status)) = (criterion, status) {
            evidence.push(Evidence { criterion, status, note: e.note.clone(), confirmed_by: e.confirmed_by.clone() });
        }
    }
    let mut stakeholders = Vec::new();
    for (i, s) in stakeholders_in.iter().enumerate().take(MAX_ITEMS) {
        let role = v.required_enum::<StakeholderRole>(Item(&st, i, "role"), s.role);
        v.optional_id(Item(&st, i, "contact_id"), &s.contact_id);
        let verified_at = match &s.verify_time {
            None => None,
            Some(t) => {
                let t = from_timestamp(t);
                v.check(t.is_some(), Item(&st, i, "verify_time"), "is not a valid time");
                t
            }
        };
        if let Some(role) = role {
            let contact_id = (!s.contact_id.is_empty()).then(|| s.contact_id.clone());
            stakeholders.push(Stakeholder { contact_id, role, verified_at });
        }
    }
    let scheduled_at = match next_step.and_then(|n| n.scheduled_time.as_ref()) {
        None => None,
        Some(t) => {
            let t = from_timestamp(t);
            v.check(t.is_some(), format!("{prefix}.next_step.scheduled_time"), "is not a valid time");
            t
        }
    };
    let next_step = next_step.map(|n| {
        v.text(format!("{prefix}.next_step.description"), &n.description, 1024);
        let kind = v.optional_enum::<ActivityType>(format!("{prefix}.next_step.type"), n.r#type);
        NextStep { description: n.description.clone(), scheduled_at, kind }
    });
    Qualification { evidence, stakeholders, next_step }
}

fn encode_evidence(e: &Evidence) -> pb::CriterionEvidence {
    pb::CriterionEvidence {
        criterion: e.criterion.to_wire(),
        status: e.status.to_wire(),
        note: e.note.clone(),
        confirmed_by: e.confirmed_by.clone(),
    }
}

/// The wire form of an opportunity.
pub(crate) fn encode_opportunity(o: &Opportunity) -> pb::Opportunity {
    let s = &o.lead_snapshot;
    pb::Opportunity {
        opportunity_id: o.opportunity_id.clone(),
        lead_id: o.lead_id.clone(),
        state: o.state.to_wire(),
        amount: Some(encode_money(&o.amount)),
        expected_close_time: Some(timestamp(o.expected_close_at)),
        segment: o.segment.to_wire(),
        framework: o.framework.to_wire(),
        evidence: o.evidence.iter().map(encode_evidence).collect(),
        stakeholders: o
            .stakeholders
            .iter()
            .map(|s| pb::Stakeholder {
                contact_id: s.contact_id.clone().unwrap_or_default(),
                role: s.role.to_wire(),
                verify_time: s.verified_at.map(timestamp),
            })
            .collect(),
        competitors: o.competitors.clone(),
        next_step: o.next_step.as_ref().map(|n| pb::NextStep {
            description: n.description.clone(),
            scheduled_time: n.scheduled_at.map(timestamp),
            r#type: n.kind.map_or(0, WireEnum::to_wire),
        }),
        team: o.team.clone(),
        submitted_by: o.submitted_by.clone(),
        lead_snapshot: Some(pb::LeadSnapshot {
            score: s.score,
            stage: s.stage.to_wire(),
            scorecard_version: s.scorecard_version,
            source: s.source.map_or(0, WireEnum::to_wire),
            campaign: s.campaign.clone(),
            snapshot_time: Some(timestamp(s.taken_at)),
        }),
        overridden: o.overridden,
        version: o.version,
        create_time: Some(timestamp(o.created_at)),
        update_time: Some(timestamp(o.updated_at)),
        accept_time: o.accepted_at.map(timestamp),
        first_meaningful_activity_time: o.first_meaningful_activity_at.map(timestamp),
        missing_items: o.missing_items.clone(),
        closed_amount: o.closed_amount.as_ref().map(encode_money),
        close_reason: o.close_reason.clone(),
        close_time: o.closed_at.map(timestamp),
        accepted_by: o.accepted_by.clone(),
        contributors: o.contributors.clone(),
        expansion_reason: o.expansion_reason.clone(),
        imported: o.imported,
    }
}

/// The wire form of a gate result under the policy of version `policy_version`.
pub(crate) fn encode_gate(result: &GateResult, policy_version: i64) -> pb::EvaluateGateResponse {
    pb::EvaluateGateResponse {
        passed: result.passed(),
        checks: result.checks.iter().map(encode_check).collect(),
        policy_version,
    }
}

fn encode_check(k: &qualify_domain::GateCheck) -> pb::GateCheck {
    pb::GateCheck {
        code: k.code.to_wire(),
        passed: k.passed,
        criterion: k.criterion.map_or(0, WireEnum::to_wire),
        detail: k.detail.clone(),
    }
}

/// The wire form of a decision.
pub(crate) fn encode_decision(d: &Decision) -> pb::Decision {
    pb::Decision {
        decision_id: d.decision_id.clone(),
        opportunity_id: d.opportunity_id.clone(),
        kind: d.kind.to_wire(),
        actor: Some(cpb::Actor {
            subject: d.decided_by.clone(),
            roles: d.decided_by_roles.iter().map(|r| r.to_wire()).collect(),
        }),
        decide_time: Some(timestamp(d.decided_at)),
        reason: d.reason.map_or(0, WireEnum::to_wire),
        note: d.note.clone(),
        gate_passed: d.gate_passed,
        checks: d.checks.iter().map(encode_check).collect(),
        overridden: d.overridden,
        override_justification: d.override_justification.clone(),
        scorecard_version: d.scorecard_version,
        policy_version: d.policy_version,
        evidence: d.evidence.iter().map(encode_evidence).collect(),
        team: d.team.clone(),
        source: d.source.map_or(0, WireEnum::to_wire),
        contributors: d.contributors.clone(),
    }
}

/// The wire form of an activity.
pub(crate) fn encode_activity(a: &Activity) -> pb::Activity {
    pb::Activity {
        activity_id: a.activity_id.clone(),
        r#type: a.kind.to_wire(),
        meaningful: a.meaningful,
        occur_time: Some(timestamp(a.occurred_at)),
        note: a.note.clone(),
        recorded_by: a.recorded_by.clone(),
    }
}

/// The stream's wire form of an event.
pub(super) fn encode_event(e: &Event) -> pb::event::Payload {
    match e {
        Event::Changed { opportunity, from } => pb::event::Payload::OpportunityChanged(pb::OpportunityChanged {
            opportunity: Some(encode_opportunity(opportunity)),
            from_state: from.map_or(0, WireEnum::to_wire),
        }),
        Event::Decided(d) => pb::event::Payload::DecisionRecorded(encode_decision(d)),
        Event::ActivityRecorded { opportunity_id, activity } => {
            pb::event::Payload::ActivityRecorded(pb::ActivityRecorded {
                opportunity_id: opportunity_id.clone(),
                activity: Some(encode_activity(activity)),
            })
        }
    }
}

fn encode_events(events: &[Event]) -> Vec<pb::event::Payload> {
    events.iter().map(encode_event).collect()
}

fn decode_submission(req: &pb::SubmitOpportunityRequest) -> Result<Submission, ApiError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    let Some(o) = req.opportunity.as_ref() else {
        return Err(ApiError::field("opportunity", "is required"));
    };
    let submission = decode_opportunity(&mut v, o);
    v.finish()?;
    submission.ok_or_else(|| ApiError::field("opportunity.segment", "is required"))
}

/// Decodes an opportunity as submitted (`None` when a required part is missing; `v` says which).
pub(super) fn decode_opportunity(v: &mut Violations, o: &pb::Opportunity) -> Option<Submission> {
    v.id("opportunity.opportunity_id", &o.opportunity_id);
    v.id("opportunity.lead_id", &o.lead_id);
    let segment = v.required_enum::<Segment>("opportunity.segment", o.segment);
    let amount = decode_money(v, "opportunity.amount", o.amount.as_ref(), true);
    let close = o.expected_close_time.as_ref().and_then(from_timestamp);
    v.check(close.is_some(), "opportunity.expected_close_time", "is required and must be a valid time");
    v.text("opportunity.team", &o.team, 128);
    v.check(o.competitors.len() <= MAX_ITEMS, "opportunity.competitors", "must have at most 100 items");
    for (i, name) in o.competitors.iter().enumerate().take(MAX_ITEMS) {
        v.text(Item("opportunity.competitors", i, ""), name, 256);
    }
    let qualification = decode_qualification(v, "opportunity", &o.evidence, &o.stakeholders, o.next_step.as_ref());
    let expansion_reason = o.expansion_reason.trim();
    v.text("opportunity.expansion_reason", expansion_reason, 1024);
    let (Some(segment), Some(amount), Some(expected_close_at)) = (segment, amount, close) else {
        return None;
    };
    Some(Submission {
        opportunity_id: o.opportunity_id.clone(),
        lead_id: o.lead_id.clone(),
        amount,
        expected_close_at,
        segment,
        qualification,
        competitors: o.competitors.clone(),
        team: o.team.clone(),
        expansion_reason: expansion_reason.to_string(),
    })
}

fn check_version_and_id(v: &mut Violations, request_id: &str, opportunity_id: &str, expected_version: i64) {
    v.request_id(request_id);
    v.id("opportunity_id", opportunity_id);
    v.check(expected_version >= 0, "expected_version", "must not be negative");
}

impl AcceptanceApi {
    pub(crate) async fn submit_opportunity(
        &self,
        c: Caller,
        on: &OnBehalf,
        req: pb::SubmitOpportunityRequest,
    ) -> Result<pb::SubmitOpportunityResponse, ApiError> {
        opportunities::authorize_submit(&c)?;
        let mut sub = decode_submission(&req)?;
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "SubmitOpportunity",
            request_id: &req.request_id,
            subject: &subject,
        };
        let now = self.clock.now();
        // Outside the transaction: nothing is stored unless lead scoring answered. A retry gets
        // the first answer whatever lead scoring says now: when the snapshot fails, the stored
        // response (if any) is returned; when it succeeds, the transaction finds the key.
        let stakeholders = &mut sub.qualification.stakeholders;
        let expansion = !sub.expansion_reason.is_empty();
        let snapshot =
            match opportunities::snapshot(&self.scoring, on, &sub.lead_id, expansion, stakeholders, now).await {
                Ok(s) => s,
                Err(e) => return idempotency::replayed(&self.db, key, &req).await?.ok_or(e),
            };
        let submitted = opportunities::prepare(&self.db, &c, sub, snapshot, now).await?;
        let gate = encode_gate(&submitted.gate, submitted.policy_version);
        let tenant = c.tenant.clone();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let o = submitted.opportunity;
                let events = opportunities::submit(txn, &tenant, &o).await?;
                emit(txn, &tenant, now, encode_events(&events)).await?;
                Ok(pb::SubmitOpportunityResponse { opportunity: Some(encode_opportunity(&o)), gate: Some(gate) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    pub(crate) async fn get_opportunity(
        &self,
        c: Caller,
        req: pb::GetOpportunityRequest,
    ) -> Result<pb::GetOpportunityResponse, ApiError> {
        let mut v = Violations::new();
        v.id("opportunity_id", &req.opportunity_id);
        v.finish()?;
        let o = opportunities::get(&self.db, &c.tenant, &req.opportunity_id).await?;
        Ok(pb::GetOpportunityResponse { opportunity: Some(encode_opportunity(&o)) })
    }

    pub(crate) async fn list_opportunities(
        &self,
        c: Caller,
        req: pb::ListOpportunitiesRequest,
    ) -> Result<pb::ListOpportunitiesResponse, ApiError> {
        let mut v = Violations::new();
        let state = v.optional_enum::<OpportunityState>("state", req.state);
        v.finish()?;
        let query = format!("{}|opportunities|{}", c.tenant, req.state);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let found = opportunities::list(&self.db, &c.tenant, state, p.after.as_deref(), p.size + 1).await?;
        let fetched = found.len();
        let opportunities: Vec<_> = found.iter().take(p.size as usize).map(encode_opportunity).collect();
        let last = opportunities.last().map(|o| o.opportunity_id.as_str());
        let next_page_token = page::next_token(&query, last, fetched, p.size);
        Ok(pb::ListOpportunitiesResponse { opportunities, next_page_token })
    }

    pub(crate) async fn resubmit_opportunity(
        &self,
        c: Caller,
        on: &OnBehalf,
        req: pb::ResubmitOpportunityRequest,
    ) -> Result<pb::ResubmitOpportunityResponse, ApiError> {
        opportunities::authorize(&c, OpportunityAction::Resubmit)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        // Field paths of a resubmission have always started with a bare dot (".evidence[0]...").
        let q = decode_qualification(&mut v, "", &req.evidence, &req.stakeholders, req.next_step.as_ref());
        v.finish()?;
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &tenant,
            method: "ResubmitOpportunity",
            request_id: &req.request_id,
            subject: &subject,
        };
        // A retry gets the first answer, though the state check below would now refuse it.
        if let Some(done) = idempotency::replayed(&self.db, key, &req).await? {
            return Ok(done);
        }
        let now = self.clock.now();
        let o = opportunities::revise(&self.db, &self.scoring, &c, on, &req.opportunity_id, q, now).await?;
        let expected = req.expected_version;
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let (o, events) = opportunities::resubmit(txn, &c, o, expected, now).await?;
                emit(txn, &c.tenant, now, encode_events(&events)).await?;
                Ok(pb::ResubmitOpportunityResponse { opportunity: Some(encode_opportunity(&o)) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    /// One decision under its idempotency key: the opportunity, its audit row
    /// and their two events in one transaction. `(id, expected)`: the
    /// opportunity and the version the caller read.
    async fn decide(
        &self,
        c: Caller,
        (id, expected): (&str, i64),
        request_id: &str,
        request: &impl Message,
        verdict: Verdict,
        verified: opportunities::Verified,
    ) -> Result<(pb::Opportunity, pb::Decision), ApiError> {
        let method = match verdict.kind() {
            DecisionKind::Accept => "AcceptOpportunity",
            DecisionKind::Reject => "RejectOpportunity",
            DecisionKind::SendBack => "SendBackOpportunity",
        };
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key { tenant: &tenant, method, request_id, subject: &subject };
        let id = id.to_string();
        let now = self.clock.now();
        // Replays return the stored response, encoded as this pair.
        let (out, fresh) = idempotency::run_reporting(&self.db, key, request, move |txn| {
            Box::pin(async move {
                let (o, d, events) = opportunities::decide(txn, &c, &id, expected, &verdict, &verified, now).await?;
                emit(txn, &c.tenant, now, encode_events(&events)).await?;
                Ok(pb::AcceptOpportunityResponse {
                    opportunity: Some(encode_opportunity(&o)),
                    decision: Some(encode_decision(&d)),
                })
            })
        })
        .await?;
        self.relay.nudge();
        if fresh && let (Some(o), Some(d)) = (&out.opportunity, &out.decision) {
            count_decision(&tenant, o, d);
        }
        match (out.opportunity, out.decision) {
            (Some(o), Some(d)) => Ok((o, d)),
            _ => Err(ApiError::Internal(anyhow::anyhow!("stored decision response is incomplete"))),
        }
    }

    pub(crate) async fn accept_opportunity(
        &self,
        c: Caller,
        on: &OnBehalf,
        req: pb::AcceptOpportunityRequest,
    ) -> Result<pb::AcceptOpportunityResponse, ApiError> {
        opportunities::authorize(&c, OpportunityAction::Accept)?;
        let mut v = Violations::new();
        check_version_and_id(&mut v, &req.request_id, &req.opportunity_id, req.expected_version);
        let j = req.override_justification.trim();
        v.check(
            j.is_empty() || j.chars().count() >= MIN_JUSTIFICATION,
            "override_justification",
            "must be at least 20 characters when given",
        );
        v.text("override_justification", j, 4096);
        v.finish()?;
        let verdict = Verdict::Accept { justification: j.to_string() };
        // Lead scoring is asked where the lead stands before the transaction: a
        // disqualified or recycled lead's opportunity is not accepted. A retry
        // gets the first answer whatever lead scoring says now.
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "AcceptOpportunity",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        if let Some(done) = idempotency::replayed(&self.db, key, &req).await? {
            return Ok(done);
        }
        let verified = opportunities::precheck_accept(&self.db, &self.scoring, &c, on, &req.opportunity_id).await?;
        let (o, d) = self
            .decide(c, (&req.opportunity_id, req.expected_version), &req.request_id, &req, verdict, verified)
            .await?;
        Ok(pb::AcceptOpportunityResponse { opportunity: Some(o), decision: Some(d) })
    }

    pub(crate) async fn reject_opportunity(
        &self,
        c: Caller,
        req: pb::RejectOpportunityRequest,
    ) -> Result<pb::RejectOpportunityResponse, ApiError> {
        opportunities::authorize(&c, OpportunityAction::Reject)?;
        let mut v = Violations::new();
        check_version_and_id(&mut v, &req.request_id, &req.opportunity_id, req.expected_version);
        let reason = v.required_enum::<RejectionReason>("reason", req.reason);
        v.check(
            reason != Some(RejectionReason::Other) || !req.note.trim().is_empty(),
            "note",
            "is required with REJECTION_REASON_OTHER",
        );
        v.text("note", &req.note, 4096);
        v.finish()?;
        let reason = reason.ok_or_else(|| ApiError::field("reason", "is required"))?;
        let verdict = Verdict::Reject { reason, note: req.note.trim().to_string() };
        let (o, d) = self
            .decide(c, (&req.opportunity_id, req.expected_version), &req.request_id, &req, verdict, Default::default())
            .await?;
        Ok(pb::RejectOpportunityResponse { opportunity: Some(o), decision: Some(d) })
    }

    pub(crate) async fn send_back_opportunity(
        &self,
        c: Caller,
        req: pb::SendBackOpportunityRequest,
    ) -> Result<pb::SendBackOpportunityResponse, ApiError> {
        opportunities::authorize(&c, OpportunityAction::SendBack)?;
        let mut v = Violations::new();
        check_version_and_id(&mut v, &req.request_id, &req.opportunity_id, req.expected_version);
        v.text("note", &req.note, 4096);
        v.finish()?;
        let verdict = Verdict::SendBack { note: req.note.trim().to_string() };
        let (o, d) = self
            .decide(c, (&req.opportunity_id, req.expected_version), &req.request_id, &req, verdict, Default::default())
            .await?;
        Ok(pb::SendBackOpportunityResponse { opportunity: Some(o), decision: Some(d) })
    }

    pub(crate) async fn list_decisions(
        &self,
        c: Caller,
        req: pb::ListDecisionsRequest,
    ) -> Result<pb::ListDecisionsResponse, ApiError> {
        let mut v = Violations::new();
        v.id("opportunity_id", &req.opportunity_id);
        v.finish()?;
        let found = opportunities::decisions(&self.db, &c.tenant, &req.opportunity_id).await?;
        Ok(pb::ListDecisionsResponse { decisions: found.iter().map(encode_decision).collect() })
    }

    pub(crate) async fn record_activity(
        &self,
        c: Caller,
        req: pb::RecordActivityRequest,
    ) -> Result<pb::RecordActivityResponse, ApiError> {
        qualify_domain::permission::record_activity(&c)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        let now = self.clock.now();
        let Some(a) = req.activity.as_ref() else {
            return Err(ApiError::field("activity", "is required"));
        };
        let kind = v.required_enum::<ActivityType>("activity.type", a.r#type);
        // Live activities happen now: a past one (which would move follow-through and the
        // alarms) comes in only through ImportOpportunities. Unset: now.
        let at = a.occur_time.as_ref().map_or(Some(now), from_timestamp);
        v.check(at.is_some(), "activity.occur_time", "must be a valid time");
        v.check(
            at.is_none_or(|t| (t - now).abs() <= Duration::minutes(LIVE_SKEW_MINUTES)),
            "activity.occur_time",
            "must be within five minutes of the server's time; past activities are imported (ImportOpportunities)",
        );
        v.text("activity.note", &a.note, MAX_TEXT * 4);
        v.finish()?;
        let (Some(kind), Some(occurred_at)) = (kind, at) else {
            return Err(ApiError::field("activity.occur_time", "is required"));
        };
        let activity = NewActivity { kind, meaningful: a.meaningful, occurred_at, note: a.note.clone() };
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &tenant,
            method: "RecordActivity",
            request_id: &req.request_id,
            subject: &subject,
        };
        let id = req.opportunity_id.clone();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let (a, o, events) = opportunities::record_activity(txn, &c, &id, activity, now).await?;
                emit(txn, &c.tenant, now, encode_events(&events)).await?;
                Ok(pb::RecordActivityResponse {
                    activity: Some(encode_activity(&a)),
                    opportunity: Some(encode_opportunity(&o)),
                })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    pub(crate) async fn advance_opportunity(
        &self,
        c: Caller,
        req: pb::AdvanceOpportunityRequest,
    ) -> Result<pb::AdvanceOpportunityResponse, ApiError> {
        opportunities::authorize(&c, OpportunityAction::Advance)?;
        let mut v = Violations::new();
        check_version_and_id(&mut v, &req.request_id, &req.opportunity_id, req.expected_version);
        v.finish()?;
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &tenant,
            method: "AdvanceOpportunity",
            request_id: &req.request_id,
            subject: &subject,
        };
        let (id, expected) = (req.opportunity_id.clone(), req.expected_version);
        let now = self.clock.now();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let (o, events) = opportunities::advance(txn, &c, &id, expected, now).await?;
                emit(txn, &c.tenant, now, encode_events(&events)).await?;
                Ok(pb::AdvanceOpportunityResponse { opportunity: Some(encode_opportunity(&o)) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    pub(crate) async fn close_opportunity(
        &self,
        c: Caller,
        req: pb::CloseOpportunityRequest,
    ) -> Result<pb::CloseOpportunityResponse, ApiError> {
        let mut closing = Closing { won: req.won, amount: None, reason: req.reason.trim().to_string() };
        opportunities::authorize(&c, closing.action())?;
        let mut v = Violations::new();
        check_version_and_id(&mut v, &req.request_id, &req.opportunity_id, req.expected_version);
        closing.amount = decode_money(&mut v, "amount", req.amount.as_ref(), req.won);
        v.check(!closing.reason.is_empty(), "reason", "is required");
        v.text("reason", &req.reason, MAX_TEXT);
        v.finish()?;
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &tenant,
            method: "CloseOpportunity",
            request_id: &req.request_id,
            subject: &subject,
        };
        let (id, expected) = (req.opportunity_id.clone(), req.expected_version);
        let now = self.clock.now();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let (o, events) = opportunities::close(txn, &c, &id, expected, closing, now).await?;
                emit(txn, &c.tenant, now, encode_events(&events)).await?;
                Ok(pb::CloseOpportunityResponse { opportunity: Some(encode_opportunity(&o)) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    pub(crate) async fn list_abandoned_opportunities(
        &self,
        c: Caller,
        req: pb::ListAbandonedOpportunitiesRequest,
    ) -> Result<pb::ListAbandonedOpportunitiesResponse, ApiError> {
        let mut v = Violations::new();
        v.check((0..=365).contains(&req.follow_up_days), "follow_up_days", "must be between 0 and 365");
        let now = self.clock.now();
        let at = req.as_of_time.as_ref().map_or(Some(now), from_timestamp);
        v.check(at.is_some_and(|t| t <= now), "as_of_time", "must be a valid time, not in the future");
        v.finish()?;
        let days = u32::try_from(req.follow_up_days).ok().filter(|d| *d > 0);
        let found = opportunities::abandoned(&self.db, &c.tenant, days, at.unwrap_or(now), now).await?;
        Ok(pb::ListAbandonedOpportunitiesResponse { opportunities: found.iter().map(encode_opportunity).collect() })
    }
}

/// `qualify_sqo_decisions_total`: decisions as they are committed (replays
/// are not counted), by tenant, kind, override and lead source.
fn count_decision(tenant: &str, o: &pb::Opportunity, d: &pb::Decision) {
    let kind = match DecisionKind::from_wire(d.kind) {
        Some(DecisionKind::Accept) => "accepted",
        Some(DecisionKind::Reject) => "rejected",
        Some(DecisionKind::SendBack) => "sent_back",
        None => "other",
    };
    let source =
        o.lead_snapshot.as_ref().and_then(|s| LeadSource::from_wire(s.source)).map_or("unknown", |s| s.as_str());
    let labels = [
        ("tenant", tenant.to_string()),
        ("kind", kind.to_string()),
        ("overridden", d.overridden.to_string()),
        ("source", source.to_string()),
    ];
    metrics::counter!("qualify_sqo_decisions_total", &labels).increment(1);
}
