//! Opportunities through the SQO gate: submit (with a lead scoring snapshot),
//! decide (accept, reject, send back) under optimistic versioning, then
//! activities, later stages and the close. Every change is one transaction
//! with its audit row and its outbox event.

use chrono::{DateTime, Duration, Utc};
use prost::Message;
use qualify_domain::gate::{self, GateCandidate};
use qualify_domain::opportunity::is_abandoned;
use qualify_domain::{Caller, LeadStage, OpportunityAction, OpportunityState, Segment, TransitionError};
use qualify_platform::db::is_unique_violation;
use qualify_platform::error::PreconditionViolation;
use qualify_platform::validate::{Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations, idempotency, outbox, page};
use qualify_proto::acceptance as pb;
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::policy::{decode_gate_inputs, encode_result, policy_in_force};
use super::{AcceptanceApi, MAX_ITEMS};
use crate::store::entity::{activity, decision, opportunity};

/// Follow-up window after acceptance when none is given.
const DEFAULT_FOLLOW_UP_DAYS: i32 = 14;
/// Shortest override justification accepted.
const MIN_JUSTIFICATION: usize = 20;

fn state_of(o: &pb::Opportunity) -> OpportunityState {
    OpportunityState::from_wire(o.state).unwrap_or(OpportunityState::PendingReview)
}

fn transition_error(e: TransitionError, id: &str) -> ApiError {
    match e {
        TransitionError::Forbidden(why) => ApiError::forbidden("ROLE_REQUIRED", why),
        TransitionError::IllegalState { from, action } => ApiError::FailedPrecondition {
            reason: "ILLEGAL_STATE",
            message: e.to_string(),
            violations: vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: format!("opportunities/{id}"),
                description: format!("the opportunity is {}; {action:?} is not possible", from.as_str()),
            }],
        },
    }
}

/// Checks the caller's roles for `action` before anything is read, so a
/// refused caller learns nothing about the opportunity (not even that it exists).
fn check_role(c: &Caller, action: OpportunityAction) -> Result<(), ApiError> {
    if action == OpportunityAction::Resubmit {
        // Ownership decides the rest once the opportunity is read.
        return OpportunityState::submit(c).map(|_| ()).map_err(|e| transition_error(e, ""));
    }
    match OpportunityState::PendingReview.apply(action, c, "") {
        Err(e @ TransitionError::Forbidden(_)) => Err(transition_error(e, "")),
        _ => Ok(()),
    }
}

/// Loads an opportunity in the caller's tenant.
async fn load(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<pb::Opportunity, ApiError> {
    let row = opportunity::Entity::find_by_id((tenant.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "opportunity", id: id.to_string() })?;
    decode_row(&row)
}

fn decode_row(row: &opportunity::Model) -> Result<pb::Opportunity, ApiError> {
    pb::Opportunity::decode(row.body.as_slice())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("opportunity body: {e}")))
}

fn columns(o: &pb::Opportunity) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let t = |x: &Option<prost_types::Timestamp>| x.as_ref().and_then(from_timestamp);
    (t(&o.accept_time), t(&o.first_meaningful_activity_time))
}

/// Writes `o` (already at its new version) only if the stored row is still
/// at `read_version`: a concurrent change makes this ABORTED, never a lost update.
async fn save(txn: &DatabaseTransaction, tenant: &str, o: &pb::Opportunity, read_version: i64) -> Result<(), ApiError> {
    let (accepted_at, first_meaningful_at) = columns(o);
    let done = opportunity::Entity::update_many()
        .col_expr(opportunity::Column::State, Expr::value(state_of(o).as_str()))
        .col_expr(opportunity::Column::Version, Expr::value(o.version))
        .col_expr(opportunity::Column::AcceptedAt, Expr::value(accepted_at))
        .col_expr(opportunity::Column::FirstMeaningfulAt, Expr::value(first_meaningful_at))
        .col_expr(opportunity::Column::Body, Expr::value(o.encode_to_vec()))
        .filter(opportunity::Column::TenantId.eq(tenant))
        .filter(opportunity::Column::OpportunityId.eq(&o.opportunity_id))
        .filter(opportunity::Column::Version.eq(read_version))
        .exec(txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::Aborted(format!("opportunity {} changed concurrently; read it again", o.opportunity_id)));
    }
    Ok(())
}

/// Appends events to the outbox in the caller's transaction (one statement).
pub(crate) async fn emit(
    txn: &DatabaseTransaction,
    tenant: &str,
    now: DateTime<Utc>,
    payloads: impl IntoIterator<Item = pb::event::Payload>,
) -> Result<(), ApiError> {
    let events = payloads.into_iter().map(|payload| {
        let event_id = uuid::Uuid::now_v7().to_string();
        let event = pb::Event {
            event_id: event_id.clone(),
            sequence: 0,
            tenant: tenant.to_string(),
            occur_time: Some(timestamp(now)),
            payload: Some(payload),
        };
        (event_id, event.encode_to_vec())
    });
    outbox::append(txn, tenant, events).await?;
    Ok(())
}

/// The event of an opportunity's change from state `from` (0: created).
fn changed(o: &pb::Opportunity, from: i32) -> pb::event::Payload {
    pb::event::Payload::OpportunityChanged(pb::OpportunityChanged { opportunity: Some(o.clone()), from_state: from })
}

/// The gate's view of an opportunity.
fn candidate(o: &pb::Opportunity) -> GateCandidate {
    let mut v = Violations::new();
    let score = o.lead_snapshot.as_ref().map_or(0, |s| s.score);
    decode_gate_inputs(&mut v, "opportunity", &o.evidence, &o.stakeholders, o.next_step.as_ref(), score)
}

fn check_expected(expected: i64, o: &pb::Opportunity) -> Result<(), ApiError> {
    if expected != 0 && expected != o.version {
        return Err(ApiError::Aborted(format!(
            "opportunity {} is at version {}, not {expected}",
            o.opportunity_id, o.version
        )));
    }
    Ok(())
}

fn validate_money(v: &mut Violations, field: &str, m: Option<&cpb::Money>, required: bool) {
    match m {
        None => v.check(!required, field, "is required"),
        Some(m) => {
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
        }
    }
}

impl AcceptanceApi {
    /// Refreshes the lead snapshot and the stakeholders' verification times
    /// from lead scoring (never the submitter's word for them).
    async fn snapshot(&self, token: &str, o: &mut pb::Opportunity, now: DateTime<Utc>) -> Result<(), ApiError> {
        // The lead and the stakeholders' contacts (one batch) are read concurrently.
        let ids: Vec<String> =
            o.stakeholders.iter().filter(|s| !s.contact_id.is_empty()).map(|s| s.contact_id.clone()).collect();
        let (lead, verified) = futures::future::try_join(
            self.scoring.lead(token, &o.lead_id),
            self.scoring.contacts_verified_at(token, &ids),
        )
        .await?;
        let stage = LeadStage::from_wire(lead.stage);
        if stage != Some(LeadStage::Sql) {
            return Err(ApiError::FailedPrecondition {
                reason: "LEAD_NOT_SQL",
                message: "only a lead at SQL can become an opportunity".into(),
                violations: vec![PreconditionViolation {
                    kind: "STAGE".into(),
                    subject: format!("leads/{}", o.lead_id),
                    description: format!("the lead is {}", stage.map_or("unknown", |s| s.as_str())),
                }],
            });
        }
        let score = lead.score.as_ref();
        o.lead_snapshot = Some(pb::LeadSnapshot {
            score: score.map_or(0, |s| s.total),
            stage: lead.stage,
            scorecard_version: score.map_or(0, |s| s.scorecard_version),
            source: lead.source,
            campaign: lead.campaign.clone(),
            snapshot_time: Some(timestamp(now)),
        });
        let mut verified = verified.into_iter();
        for s in &mut o.stakeholders {
            s.verify_time = match s.contact_id.as_str() {
                "" => None,
                _ => verified.next().flatten().map(timestamp),
            };
        }
        Ok(())
    }

    pub(crate) async fn submit_opportunity(
        &self,
        c: Caller,
        token: &str,
        req: pb::SubmitOpportunityRequest,
    ) -> Result<pb::SubmitOpportunityResponse, ApiError> {
        OpportunityState::submit(&c).map_err(|e| transition_error(e, ""))?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(mut o) = req.opportunity.clone() else {
            return Err(ApiError::field("opportunity", "is required"));
        };
        v.id("opportunity.opportunity_id", &o.opportunity_id);
        v.id("opportunity.lead_id", &o.lead_id);
        let segment = v.required_enum::<Segment>("opportunity.segment", o.segment);
        validate_money(&mut v, "opportunity.amount", o.amount.as_ref(), true);
        let close = o.expected_close_time.as_ref().map(from_timestamp);
        v.check(
            matches!(close, Some(Some(_))),
            "opportunity.expected_close_time",
            "is required and must be a valid time",
        );
        v.text("opportunity.team", &o.team, 128);
        v.check(o.competitors.len() <= MAX_ITEMS, "opportunity.competitors", "must have at most 100 items");
        for (i, name) in o.competitors.iter().enumerate().take(MAX_ITEMS) {
            v.text(Item("opportunity.competitors", i, ""), name, 256);
        }
        decode_gate_inputs(&mut v, "opportunity", &o.evidence, &o.stakeholders, o.next_step.as_ref(), 0);
        v.finish()?;
        let segment = segment.ok_or_else(|| ApiError::field("opportunity.segment", "is required"))?;
        let key = idempotency::Key { tenant: &c.tenant, method: "SubmitOpportunity", request_id: &req.request_id };
        let now = self.clock.now();
        // Outside the transaction: nothing is stored unless lead scoring answered. A retry gets
        // the first answer whatever lead scoring says now: when the snapshot fails, the stored
        // response (if any) is returned; when it succeeds, the transaction finds the key.
        if let Err(e) = self.snapshot(token, &mut o, now).await {
            return idempotency::replayed(&self.db, key, &req).await?.ok_or(e);
        }
        let policy = policy_in_force(&self.db, &c.tenant, segment).await?;
        o.framework = policy.policy.framework.to_wire();
        o.state = OpportunityState::PendingReview.to_wire();
        o.submitted_by = c.subject.clone();
        o.overridden = false;
        o.version = 1;
        o.create_time = Some(timestamp(now));
        o.update_time = Some(timestamp(now));
        (o.accept_time, o.first_meaningful_activity_time, o.close_time) = (None, None, None);
        (o.missing_items, o.closed_amount, o.close_reason, o.accepted_by) =
            (vec![], None, String::new(), String::new());
        let gate = encode_result(gate::evaluate(&policy.policy, &candidate(&o), now), policy.version);
        let tenant = c.tenant.clone();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                opportunity::Entity::insert(opportunity::ActiveModel {
                    tenant_id: Set(tenant.clone()),
                    opportunity_id: Set(o.opportunity_id.clone()),
                    lead_id: Set(o.lead_id.clone()),
                    state: Set(OpportunityState::PendingReview.as_str().to_string()),
                    team: Set(o.team.clone()),
                    submitted_by: Set(o.submitted_by.clone()),
                    version: Set(1),
                    accepted_at: Set(None),
                    first_meaningful_at: Set(None),
                    created_at: Set(now),
                    body: Set(o.encode_to_vec()),
                })
                .exec_without_returning(txn)
                .await
                .map_err(|e| match is_unique_violation(&e) {
                    true => ApiError::AlreadyExists { kind: "opportunity", id: o.opportunity_id.clone() },
                    false => e.into(),
                })?;
                emit(txn, &tenant, now, [changed(&o, 0)]).await?;
                Ok(pb::SubmitOpportunityResponse { opportunity: Some(o), gate: Some(gate) })
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
        Ok(pb::GetOpportunityResponse { opportunity: Some(load(&self.db, &c.tenant, &req.opportunity_id).await?) })
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
        let mut q = opportunity::Entity::find().filter(opportunity::Column::TenantId.eq(&c.tenant));
        if let Some(s) = state {
            q = q.filter(opportunity::Column::State.eq(s.as_str()));
        }
        if let Some(after) = &p.after {
            q = q.filter(opportunity::Column::OpportunityId.gt(after.as_str()));
        }
        let rows = q.order_by_asc(opportunity::Column::OpportunityId).limit(p.size + 1).all(&self.db).await?;
        let fetched = rows.len();
        let rows: Vec<_> = rows.into_iter().take(p.size as usize).collect();
        let last = rows.last().map(|r| r.opportunity_id.clone());
        let opportunities = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page::next_token(&query, last.as_deref(), fetched, p.size);
        Ok(pb::ListOpportunitiesResponse { opportunities, next_page_token })
    }

    pub(crate) async fn resubmit_opportunity(
        &self,
        c: Caller,
        token: &str,
        req: pb::ResubmitOpportunityRequest,
    ) -> Result<pb::ResubmitOpportunityResponse, ApiError> {
        check_role(&c, OpportunityAction::Resubmit)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        decode_gate_inputs(&mut v, "", &req.evidence, &req.stakeholders, req.next_step.as_ref(), 0);
        v.finish()?;
        let key = idempotency::Key { tenant: &c.tenant, method: "ResubmitOpportunity", request_id: &req.request_id };
        // A retry gets the first answer, though the state check below would now refuse it.
        if let Some(done) = idempotency::replayed(&self.db, key, &req).await? {
            return Ok(done);
        }
        let now = self.clock.now();
        let mut o = load(&self.db, &c.tenant, &req.opportunity_id).await?;
        state_of(&o)
            .apply(OpportunityAction::Resubmit, &c, &o.submitted_by)
            .map_err(|e| transition_error(e, &o.opportunity_id))?;
        (o.evidence, o.stakeholders, o.next_step) =
            (req.evidence.clone(), req.stakeholders.clone(), req.next_step.clone());
        self.snapshot(token, &mut o, now).await?;
        let (tenant, expected, c) = (c.tenant.clone(), req.expected_version, c.clone());
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let current = load(txn, &tenant, &o.opportunity_id).await?;
                check_expected(expected, &current)?;
                let from = current.state;
                state_of(&current)
                    .apply(OpportunityAction::Resubmit, &c, &current.submitted_by)
                    .map_err(|e| transition_error(e, &current.opportunity_id))?;
                let read = current.version;
                o.state = OpportunityState::PendingReview.to_wire();
                o.missing_items.clear();
                o.version = read + 1;
                o.update_time = Some(timestamp(now));
                save(txn, &tenant, &o, read).await?;
                emit(txn, &tenant, now, [changed(&o, from)]).await?;
                Ok(pb::ResubmitOpportunityResponse { opportunity: Some(o) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    /// One decision: permission, the version read, the move, the gate for an
    /// accept, then the opportunity, its audit row and two events together.
    async fn decide(
        &self,
        c: Caller,
        id: &str,
        expected: i64,
        request_id: &str,
        request: &impl Message,
        d: Draft,
    ) -> Result<(pb::Opportunity, pb::Decision), ApiError> {
        let action = d.action();
        check_role(&c, action)?;
        let method = match d {
            Draft::Accept { .. } => "AcceptOpportunity",
            Draft::Reject { .. } => "RejectOpportunity",
            Draft::SendBack { .. } => "SendBackOpportunity",
        };
        let key = idempotency::Key { tenant: &c.tenant, method, request_id };
        let decided_in = c.tenant.clone();
        let (tenant, id, c) = (c.tenant.clone(), id.to_string(), c.clone());
        // Replays return the stored response, encoded as this pair.
        let now = self.clock.now();
        let (out, fresh) = idempotency::run_reporting(&self.db, key, request, move |txn| {
            Box::pin(async move {
                let mut o = load(txn, &tenant, &id).await?;
                check_expected(expected, &o)?;
                let from = state_of(&o);
                let to = from.apply(action, &c, &o.submitted_by).map_err(|e| transition_error(e, &id))?;
                let segment = Segment::from_wire(o.segment)
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("opportunity {id} has no segment")))?;
                let policy = policy_in_force(txn, &tenant, segment).await?;
                let result = gate::evaluate(&policy.policy, &candidate(&o), now);
                let passed = result.passed();
                let failed: Vec<String> = result.failures().map(|k| k.detail.clone()).collect();
                let gate = encode_result(result, policy.version);
                let mut dec = pb::Decision {
                    decision_id: uuid::Uuid::now_v7().to_string(),
                    opportunity_id: id.clone(),
                    actor: Some(cpb::Actor {
                        subject: c.subject.clone(),
                        roles: c.roles.iter().map(|r| r.to_wire()).collect(),
                    }),
                    decide_time: Some(timestamp(now)),
                    gate_passed: passed,
                    checks: gate.checks,
                    scorecard_version: o.lead_snapshot.as_ref().map_or(0, |s| s.scorecard_version),
                    policy_version: policy.version,
                    evidence: o.evidence.clone(),
                    team: o.team.clone(),
                    source: o.lead_snapshot.as_ref().map_or(0, |s| s.source),
                    ..Default::default()
                };
                match &d {
                    Draft::Accept { justification } => {
                        dec.kind = pb::DecisionKind::Accept as i32;
                        if !passed {
                            if justification.is_empty() {
                                return Err(ApiError::FailedPrecondition {
                                    reason: "GATE_NOT_PASSED",
                                    message: "the gate does not pass; complete what is missing or justify an override"
                                        .into(),
                                    violations: failed
                                        .iter()
                                        .map(|f| PreconditionViolation {
                                            kind: "GATE".into(),
                                            subject: format!("opportunities/{id}"),
                                            description: f.clone(),
                                        })
                                        .collect(),
                                });
                            }
                            dec.overridden = true;
                            o.overridden = true;
                        }
                        dec.override_justification = justification.clone();
                        o.accept_time = Some(timestamp(now));
                        o.accepted_by = c.subject.clone();
                    }
                    Draft::Reject { reason, note } => {
                        dec.kind = pb::DecisionKind::Reject as i32;
                        dec.reason = *reason;
                        dec.note = note.clone();
                    }
                    Draft::SendBack { note } => {
                        dec.kind = pb::DecisionKind::SendBack as i32;
                        dec.note = note.clone();
                        o.missing_items = failed;
                        if !note.is_empty() {
                            o.missing_items.push(note.clone());
                        }
                    }
                }
                let read = o.version;
                o.state = to.to_wire();
                o.version = read + 1;
                o.update_time = Some(timestamp(now));
                save(txn, &tenant, &o, read).await?;
                decision::Entity::insert(decision::ActiveModel {
                    tenant_id: Set(tenant.clone()),
                    decision_id: Set(dec.decision_id.clone()),
                    opportunity_id: Set(id.clone()),
                    kind: Set(method.to_string()),
                    team: Set(o.team.clone()),
                    decided_by: Set(c.subject.clone()),
                    decided_at: Set(now),
                    body: Set(dec.encode_to_vec()),
                })
                .exec_without_returning(txn)
                .await?;
                let events = [changed(&o, from.to_wire()), pb::event::Payload::DecisionRecorded(dec.clone())];
                emit(txn, &tenant, now, events).await?;
                Ok(pb::AcceptOpportunityResponse { opportunity: Some(o), decision: Some(dec) })
            })
        })
        .await?;
        self.relay.nudge();
        if fresh && let (Some(o), Some(d)) = (&out.opportunity, &out.decision) {
            count_decision(&decided_in, o, d);
        }
        match (out.opportunity, out.decision) {
            (Some(o), Some(d)) => Ok((o, d)),
            _ => Err(ApiError::Internal(anyhow::anyhow!("stored decision response is incomplete"))),
        }
    }

    pub(crate) async fn accept_opportunity(
        &self,
        c: Caller,
        req: pb::AcceptOpportunityRequest,
    ) -> Result<pb::AcceptOpportunityResponse, ApiError> {
        check_role(&c, OpportunityAction::Accept)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        let j = req.override_justification.trim();
        v.check(
            j.is_empty() || j.chars().count() >= MIN_JUSTIFICATION,
            "override_justification",
            "must be at least 20 characters when given",
        );
        v.text("override_justification", j, 4096);
        v.finish()?;
        let d = Draft::Accept { justification: j.to_string() };
        let (o, d) = self.decide(c, &req.opportunity_id, req.expected_version, &req.request_id, &req, d).await?;
        Ok(pb::AcceptOpportunityResponse { opportunity: Some(o), decision: Some(d) })
    }

    pub(crate) async fn reject_opportunity(
        &self,
        c: Caller,
        req: pb::RejectOpportunityRequest,
    ) -> Result<pb::RejectOpportunityResponse, ApiError> {
        check_role(&c, OpportunityAction::Reject)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        let reason = pb::RejectionReason::try_from(req.reason).ok().filter(|r| *r != pb::RejectionReason::Unspecified);
        v.check(reason.is_some(), "reason", if req.reason == 0 { "is required" } else { "is not a known value" });
        v.check(
            reason != Some(pb::RejectionReason::Other) || !req.note.trim().is_empty(),
            "note",
            "is required with REJECTION_REASON_OTHER",
        );
        v.text("note", &req.note, 4096);
        v.finish()?;
        let d = Draft::Reject { reason: req.reason, note: req.note.trim().to_string() };
        let (o, d) = self.decide(c, &req.opportunity_id, req.expected_version, &req.request_id, &req, d).await?;
        Ok(pb::RejectOpportunityResponse { opportunity: Some(o), decision: Some(d) })
    }

    pub(crate) async fn send_back_opportunity(
        &self,
        c: Caller,
        req: pb::SendBackOpportunityRequest,
    ) -> Result<pb::SendBackOpportunityResponse, ApiError> {
        check_role(&c, OpportunityAction::SendBack)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        v.text("note", &req.note, 4096);
        v.finish()?;
        let d = Draft::SendBack { note: req.note.trim().to_string() };
        let (o, d) = self.decide(c, &req.opportunity_id, req.expected_version, &req.request_id, &req, d).await?;
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
        load(&self.db, &c.tenant, &req.opportunity_id).await?;
        let rows = decision::Entity::find()
            .filter(decision::Column::TenantId.eq(&c.tenant))
            .filter(decision::Column::OpportunityId.eq(&req.opportunity_id))
            .order_by_asc(decision::Column::DecisionId)
            .all(&self.db)
            .await?;
        let decisions = rows.iter().map(decode_decision).collect::<Result<Vec<_>, _>>()?;
        Ok(pb::ListDecisionsResponse { decisions })
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
        let Some(mut a) = req.activity.clone() else {
            return Err(ApiError::field("activity", "is required"));
        };
        v.check(
            a.r#type != 0 && pb::ActivityType::try_from(a.r#type).is_ok(),
            "activity.type",
            if a.r#type == 0 { "is required" } else { "is not a known value" },
        );
        let at = a.occur_time.as_ref().and_then(from_timestamp);
        v.check(at.is_some(), "activity.occur_time", "is required and must be a valid time");
        v.check(at.is_none_or(|t| t <= now + Duration::minutes(5)), "activity.occur_time", "must not be in the future");
        v.text("activity.note", &a.note, MAX_TEXT * 4);
        v.finish()?;
        let at = at.ok_or_else(|| ApiError::field("activity.occur_time", "is required"))?;
        let key = idempotency::Key { tenant: &c.tenant, method: "RecordActivity", request_id: &req.request_id };
        let (tenant, id, subject) = (c.tenant.clone(), req.opportunity_id.clone(), c.subject.clone());
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let mut o = load(txn, &tenant, &id).await?;
                let state = state_of(&o);
                if !(state.is_open_pipeline()
                    || matches!(state, OpportunityState::ClosedWon | OpportunityState::ClosedLost))
                {
                    return Err(ApiError::FailedPrecondition {
                        reason: "NOT_ACCEPTED",
                        message: "activities are recorded on accepted opportunities".into(),
                        violations: vec![],
                    });
                }
                a.activity_id = uuid::Uuid::now_v7().to_string();
                a.recorded_by = subject;
                let accepted = o.accept_time.as_ref().and_then(from_timestamp);
                let first = o.first_meaningful_activity_time.as_ref().and_then(from_timestamp);
                let mut events = Vec::with_capacity(2);
                if a.meaningful && accepted.is_some_and(|acc| at >= acc) && first.is_none_or(|f| at < f) {
                    let read = o.version;
                    o.first_meaningful_activity_time = Some(timestamp(at));
                    o.version = read + 1;
                    o.update_time = Some(timestamp(now));
                    save(txn, &tenant, &o, read).await?;
                    events.push(changed(&o, o.state));
                }
                activity::Entity::insert(activity::ActiveModel {
                    tenant_id: Set(tenant.clone()),
                    activity_id: Set(a.activity_id.clone()),
                    opportunity_id: Set(o.opportunity_id.clone()),
                    meaningful: Set(a.meaningful),
                    occurred_at: Set(at),
                    body: Set(a.encode_to_vec()),
                })
                .exec_without_returning(txn)
                .await?;
                let rec = pb::ActivityRecorded { opportunity_id: o.opportunity_id.clone(), activity: Some(a.clone()) };
                events.push(pb::event::Payload::ActivityRecorded(rec));
                emit(txn, &tenant, now, events).await?;
                Ok(pb::RecordActivityResponse { activity: Some(a), opportunity: Some(o) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(out)
    }

    /// A later-stage move or a close.
    #[allow(clippy::too_many_arguments)]
    async fn move_deal(
        &self,
        c: &Caller,
        id: &str,
        expected: i64,
        key: idempotency::Key<'_>,
        request: &impl Message,
        action: OpportunityAction,
        close: Option<(Option<cpb::Money>, String)>,
    ) -> Result<pb::Opportunity, ApiError> {
        let (tenant, id, c) = (c.tenant.clone(), id.to_string(), c.clone());
        let now = self.clock.now();
        let out = idempotency::run(&self.db, key, request, move |txn| {
            Box::pin(async move {
                let mut o = load(txn, &tenant, &id).await?;
                check_expected(expected, &o)?;
                let from = state_of(&o);
                let to = from.apply(action, &c, &o.submitted_by).map_err(|e| transition_error(e, &id))?;
                if let Some((amount, reason)) = close {
                    if let (Some(closed), Some(open)) = (&amount, &o.amount)
                        && closed.currency_code != open.currency_code
                    {
                        return Err(ApiError::field(
                            "amount.currency_code",
                            format!("must be {}, the opportunity's currency", open.currency_code),
                        ));
                    }
                    o.closed_amount = amount;
                    o.close_reason = reason;
                    o.close_time = Some(timestamp(now));
                }
                let read = o.version;
                o.state = to.to_wire();
                o.version = read + 1;
                o.update_time = Some(timestamp(now));
                save(txn, &tenant, &o, read).await?;
                emit(txn, &tenant, now, [changed(&o, from.to_wire())]).await?;
                Ok(pb::AdvanceOpportunityResponse { opportunity: Some(o) })
            })
        })
        .await?;
        self.relay.nudge();
        out.opportunity.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored response is incomplete")))
    }

    pub(crate) async fn advance_opportunity(
        &self,
        c: Caller,
        req: pb::AdvanceOpportunityRequest,
    ) -> Result<pb::AdvanceOpportunityResponse, ApiError> {
        check_role(&c, OpportunityAction::Advance)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        v.finish()?;
        let key = idempotency::Key { tenant: &c.tenant, method: "AdvanceOpportunity", request_id: &req.request_id };
        let o = self
            .move_deal(&c, &req.opportunity_id, req.expected_version, key, &req, OpportunityAction::Advance, None)
            .await?;
        Ok(pb::AdvanceOpportunityResponse { opportunity: Some(o) })
    }

    pub(crate) async fn close_opportunity(
        &self,
        c: Caller,
        req: pb::CloseOpportunityRequest,
    ) -> Result<pb::CloseOpportunityResponse, ApiError> {
        let action = if req.won { OpportunityAction::CloseWon } else { OpportunityAction::CloseLost };
        check_role(&c, action)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("opportunity_id", &req.opportunity_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        validate_money(&mut v, "amount", req.amount.as_ref(), req.won);
        v.check(!req.reason.trim().is_empty(), "reason", "is required");
        v.text("reason", &req.reason, MAX_TEXT);
        v.finish()?;
        let key = idempotency::Key { tenant: &c.tenant, method: "CloseOpportunity", request_id: &req.request_id };
        let close = Some((req.amount.clone(), req.reason.trim().to_string()));
        let o = self.move_deal(&c, &req.opportunity_id, req.expected_version, key, &req, action, close).await?;
        Ok(pb::CloseOpportunityResponse { opportunity: Some(o) })
    }

    pub(crate) async fn list_abandoned_opportunities(
        &self,
        c: Caller,
        req: pb::ListAbandonedOpportunitiesRequest,
    ) -> Result<pb::ListAbandonedOpportunitiesResponse, ApiError> {
        let mut v = Violations::new();
        v.check((0..=365).contains(&req.follow_up_days), "follow_up_days", "must be between 0 and 365");
        v.finish()?;
        let days = if req.follow_up_days == 0 { DEFAULT_FOLLOW_UP_DAYS } else { req.follow_up_days };
        let (now, window) = (self.clock.now(), Duration::days(i64::from(days)));
        let open: Vec<&str> =
            OpportunityState::ALL.into_iter().filter(|s| s.is_open_pipeline()).map(|s| s.as_str()).collect();
        let rows = opportunity::Entity::find()
            .filter(opportunity::Column::TenantId.eq(&c.tenant))
            .filter(opportunity::Column::State.is_in(open))
            .filter(opportunity::Column::FirstMeaningfulAt.is_null())
            .filter(opportunity::Column::AcceptedAt.lt(now - window))
            .order_by_asc(opportunity::Column::AcceptedAt)
            .limit(1000)
            .all(&self.db)
            .await?;
        let opportunities = rows
            .iter()
            .filter(|r| {
                let state = OpportunityState::parse(&r.state).unwrap_or(OpportunityState::PendingReview);
                is_abandoned(state, r.accepted_at, r.first_meaningful_at, now, window)
            })
            .map(decode_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pb::ListAbandonedOpportunitiesResponse { opportunities })
    }
}

/// A decision about to be taken.
enum Draft {
    Accept { justification: String },
    Reject { reason: i32, note: String },
    SendBack { note: String },
}

impl Draft {
    fn action(&self) -> OpportunityAction {
        match self {
            Draft::Accept { .. } => OpportunityAction::Accept,
            Draft::Reject { .. } => OpportunityAction::Reject,
            Draft::SendBack { .. } => OpportunityAction::SendBack,
        }
    }
}

/// Decodes stored decisions.
pub(crate) fn decode_decision(r: &decision::Model) -> Result<pb::Decision, ApiError> {
    pb::Decision::decode(r.body.as_slice()).map_err(|e| ApiError::Internal(anyhow::anyhow!("decision body: {e}")))
}

/// `qualify_sqo_decisions_total`: decisions as they are committed (replays
/// are not counted), by tenant, kind, override and lead source.
fn count_decision(tenant: &str, o: &pb::Opportunity, d: &pb::Decision) {
    let kind = match pb::DecisionKind::try_from(d.kind) {
        Ok(pb::DecisionKind::Accept) => "accepted",
        Ok(pb::DecisionKind::Reject) => "rejected",
        Ok(pb::DecisionKind::SendBack) => "sent_back",
        _ => "other",
    };
    let source = o
        .lead_snapshot
        .as_ref()
        .and_then(|s| qualify_domain::LeadSource::from_wire(s.source))
        .map_or("unknown", |s| s.as_str());
    let labels = [
        ("tenant", tenant.to_string()),
        ("kind", kind.to_string()),
        ("overridden", d.overridden.to_string()),
        ("source", source.to_string()),
    ];
    metrics::counter!("qualify_sqo_decisions_total", &labels).increment(1);
}
