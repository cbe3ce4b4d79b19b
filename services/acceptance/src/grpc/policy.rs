//! Gate policies and gate evaluation.

use chrono::{DateTime, Utc};
use prost::Message;
use qualify_domain::gate::{self, GateStakeholder};
use qualify_domain::permission;
use qualify_domain::{
    Caller, Criterion, EvidenceStatus, Framework, GateCandidate, GatePolicy, OpportunityState, Segment, StakeholderRole,
};
use qualify_platform::validate::{Item, month_range};
use qualify_platform::{ApiError, Violations, idempotency};
use qualify_proto::acceptance as pb;
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::{AcceptanceApi, MAX_ITEMS};
use crate::store::entity::{gate_policy, opportunity};

/// A stored policy with its version.
pub(crate) struct StoredPolicy {
    pub(crate) policy: GatePolicy,
    pub(crate) version: i64,
    updated_at: Option<DateTime<Utc>>,
}

fn decode_row(m: gate_policy::Model) -> Result<StoredPolicy, ApiError> {
    let corrupt = || ApiError::Internal(anyhow::anyhow!("unreadable gate policy row for segment {}", m.segment));
    let framework = Framework::parse(&m.framework).ok_or_else(corrupt)?;
    let required_criteria = m
        .required_criteria
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Criterion::parse(s).ok_or_else(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredPolicy {
        policy: GatePolicy {
            framework,
            required_criteria,
            require_economic_buyer: m.require_economic_buyer,
            require_champion: m.require_champion,
            min_stakeholders: m.min_stakeholders.max(0) as u32,
            require_next_step: m.require_next_step,
            contact_max_age_days: m.contact_max_age_days.max(0) as u32,
            min_score: m.min_score,
        },
        version: m.version,
        updated_at: Some(m.updated_at),
    })
}

/// The policy in force for a segment: the stored one, or the segment's default (version 0).
pub(crate) async fn policy_in_force(
    db: &impl ConnectionTrait,
    tenant: &str,
    segment: Segment,
) -> Result<StoredPolicy, ApiError> {
    match gate_policy::Entity::find_by_id((tenant.to_string(), segment.as_str().to_string())).one(db).await? {
        Some(m) => decode_row(m),
        None => Ok(StoredPolicy { policy: GatePolicy::default_for(segment), version: 0, updated_at: None }),
    }
}

fn encode_policy(segment: Segment, s: &StoredPolicy) -> pb::GatePolicy {
    let p = &s.policy;
    pb::GatePolicy {
        segment: segment.to_wire(),
        framework: p.framework.to_wire(),
        required_criteria: p.effective_criteria().iter().map(|c| c.to_wire()).collect(),
        require_economic_buyer: p.require_economic_buyer,
        require_champion: p.require_champion,
        min_stakeholders: p.min_stakeholders as i32,
        require_next_step: p.require_next_step,
        contact_max_age_days: p.contact_max_age_days as i32,
        min_score: p.min_score,
        version: s.version,
        update_time: s.updated_at.map(timestamp),
    }
}

fn decode_policy(v: &mut Violations, p: &pb::GatePolicy) -> Option<(Segment, GatePolicy)> {
    let segment = v.required_enum::<Segment>("policy.segment", p.segment);
    let framework = v.required_enum::<Framework>("policy.framework", p.framework);
    let mut required = Vec::new();
    for (i, c) in p.required_criteria.iter().enumerate() {
        if let Some(c) = v.required_enum::<Criterion>(Item("policy.required_criteria", i, ""), *c) {
            required.push(c);
        }
    }
    v.check(p.min_stakeholders >= 0, "policy.min_stakeholders", "must not be negative");
    v.check(p.contact_max_age_days >= 0, "policy.contact_max_age_days", "must not be negative");
    let policy = GatePolicy {
        framework: framework?,
        required_criteria: required,
        require_economic_buyer: p.require_economic_buyer,
        require_champion: p.require_champion,
        min_stakeholders: p.min_stakeholders.max(0) as u32,
        require_next_step: p.require_next_step,
        contact_max_age_days: p.contact_max_age_days.max(0) as u32,
        min_score: p.min_score,
    };
    if let Err(errors) = policy.validate() {
        for (field, msg) in errors {
            v.add(format!("policy.{field}"), msg);
        }
    }
    Some((segment?, policy))
}

pub(crate) fn decode_candidate(v: &mut Violations, c: &pb::GateCandidate) -> Option<(Segment, GateCandidate)> {
    let segment = v.required_enum::<Segment>("candidate.segment", c.segment);
    let candidate = decode_gate_inputs(v, "candidate", &c.evidence, &c.stakeholders, c.next_step.as_ref(), c.score);
    Some((segment?, candidate))
}

/// Decodes what the gate looks at; field paths start with `prefix`.
pub(crate) fn decode_gate_inputs(
    v: &mut Violations,
    prefix: &str,
    evidence_in: &[pb::CriterionEvidence],
    stakeholders_in: &[pb::Stakeholder],
    next_step: Option<&pb::NextStep>,
    score: i32,
) -> GateCandidate {
    let (ev, st) = (format!("{prefix}.evidence"), format!("{prefix}.stakeholders"));
    v.check(evidence_in.len() <= MAX_ITEMS, ev.as_str(), "must have at most 100 items");
    v.check(stakeholders_in.len() <= MAX_ITEMS, st.as_str(), "must have at most 100 items");
    let mut evidence = Vec::new();
    for (i, e) in evidence_in.iter().enumerate().take(MAX_ITEMS) {
        let criterion = v.required_enum::<Criterion>(Item(&ev, i, "criterion"), e.criterion);
        let status = v.required_enum::<EvidenceStatus>(Item(&ev, i, "status"), e.status);
        v.text(Item(&ev, i, "note"), &e.note, 4096);
        v.text(Item(&ev, i, "confirmed_by"), &e.confirmed_by, 128);
        if let (Some(c), Some(s)) = (criterion, status) {
            evidence.push((c, s));
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
            stakeholders.push(GateStakeholder { role, verified_at });
        }
    }
    let next_step_at = match next_step.and_then(|n| n.scheduled_time.as_ref()) {
        None => None,
        Some(t) => {
            let t = from_timestamp(t);
            v.check(t.is_some(), format!("{prefix}.next_step.scheduled_time"), "is not a valid time");
            t
        }
    };
    if let Some(n) = next_step {
        v.text(format!("{prefix}.next_step.description"), &n.description, 1024);
        if n.r#type != 0 {
            v.check(
                pb::ActivityType::try_from(n.r#type).is_ok(),
                format!("{prefix}.next_step.type"),
                "is not a known value",
            );
        }
    }
    GateCandidate { evidence, stakeholders, next_step_at, score }
}

impl AcceptanceApi {
    pub(crate) async fn get_gate_policy(
        &self,
        c: Caller,
        req: pb::GetGatePolicyRequest,
    ) -> Result<pb::GetGatePolicyResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.required_enum::<Segment>("segment", req.segment);
        v.finish()?;
        let segment = segment.ok_or_else(|| ApiError::field("segment", "is required"))?;
        let stored = policy_in_force(&self.db, &c.tenant, segment).await?;
        Ok(pb::GetGatePolicyResponse { policy: Some(encode_policy(segment, &stored)) })
    }

    pub(crate) async fn update_gate_policy(
        &self,
        c: Caller,
        req: pb::UpdateGatePolicyRequest,
    ) -> Result<pb::UpdateGatePolicyResponse, ApiError> {
        // Permission before anything else: a refused caller learns nothing.
        permission::administer(&c, "change a gate policy")?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        let Some(p) = req.policy.as_ref() else {
            return Err(ApiError::field("policy", "is required"));
        };
        let decoded = decode_policy(&mut v, p);
        v.finish()?;
        let (segment, policy) = decoded.ok_or_else(|| ApiError::field("policy", "is invalid"))?;
        let key = idempotency::Key { tenant: &c.tenant, method: "UpdateGatePolicy", request_id: &req.request_id };
        let expected = req.expected_version;
        let (tenant, subject) = (c.tenant.clone(), c.subject.clone());
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let current = policy_in_force(txn, &tenant, segment).await?;
                if expected != 0 && expected != current.version {
                    return Err(ApiError::Aborted(format!(
                        "the {} policy is at version {}, not {expected}",
                        segment.as_str(),
                        current.version
                    )));
                }
                let version = current.version + 1;
                let row = gate_policy::ActiveModel {
                    tenant_id: Set(tenant),
                    segment: Set(segment.as_str().to_string()),
                    framework: Set(policy.framework.as_str().to_string()),
                    required_criteria: Set(policy
                        .required_criteria
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(",")),
                    require_economic_buyer: Set(policy.require_economic_buyer),
                    require_champion: Set(policy.require_champion),
                    min_stakeholders: Set(policy.min_stakeholders as i32),
                    require_next_step: Set(policy.require_next_step),
                    contact_max_age_days: Set(policy.contact_max_age_days as i32),
                    min_score: Set(policy.min_score),
                    version: Set(version),
                    updated_at: Set(now),
                    updated_by: Set(subject),
                };
                use gate_policy::Column as G;
                gate_policy::Entity::insert(row)
                    .on_conflict(
                        OnConflict::columns([G::TenantId, G::Segment])
                            .update_columns([
                                G::Framework,
                                G::RequiredCriteria,
                                G::RequireEconomicBuyer,
                                G::RequireChampion,
                                G::MinStakeholders,
                                G::RequireNextStep,
                                G::ContactMaxAgeDays,
                                G::MinScore,
                                G::Version,
                                G::UpdatedAt,
                                G::UpdatedBy,
                            ])
                            .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await?;
                let stored = StoredPolicy { policy, version, updated_at: Some(now) };
                Ok(pb::UpdateGatePolicyResponse { policy: Some(encode_policy(segment, &stored)) })
            })
        })
        .await
    }

    pub(crate) async fn evaluate_gate(
        &self,
        c: Caller,
        req: pb::EvaluateGateRequest,
    ) -> Result<pb::EvaluateGateResponse, ApiError> {
        let mut v = Violations::new();
        let Some(cand) = req.candidate.as_ref() else {
            return Err(ApiError::field("candidate", "is required"));
        };
        let decoded = decode_candidate(&mut v, cand);
        v.finish()?;
        let (segment, candidate) = decoded.ok_or_else(|| ApiError::field("candidate", "is invalid"))?;
        let stored = policy_in_force(&self.db, &c.tenant, segment).await?;
        Ok(encode_result(gate::evaluate(&stored.policy, &candidate, self.clock.now()), stored.version))
    }
}

#[derive(Default)]
struct Outcome(pb::BacktestOutcome);

impl Outcome {
    fn add(&mut self, o: &pb::Opportunity) {
        let x = &mut self.0;
        let amount = o.amount.as_ref().map_or(0, |m| m.amount_minor);
        x.sqos += 1;
        x.pipeline_minor += amount;
        match OpportunityState::from_wire(o.state) {
            Some(OpportunityState::ClosedWon) => {
                x.closed += 1;
                x.won += 1;
                x.won_amount_minor += o.closed_amount.as_ref().map_or(amount, |m| m.amount_minor);
            }
            Some(OpportunityState::ClosedLost) => x.closed += 1,
            _ => {}
        }
    }

    fn finish(mut self) -> pb::BacktestOutcome {
        self.0.win_rate = qualify_domain::metrics::win_rate(self.0.won as u64, (self.0.closed - self.0.won) as u64)
            .map(|r| r.value());
        self.0
    }
}

impl AcceptanceApi {
    pub(crate) async fn backtest_gate_policy(
        &self,
        c: Caller,
        req: pb::BacktestGatePolicyRequest,
    ) -> Result<pb::BacktestGatePolicyResponse, ApiError> {
        permission::administer(&c, "backtest a gate policy")?;
        let mut v = Violations::new();
        let decoded = match req.policy.as_ref() {
            Some(p) => decode_policy(&mut v, p),
            None => {
                v.add("policy", "is required");
                None
            }
        };
        month_range(&mut v, &req.start_period, &req.end_period);
        v.finish()?;
        let (segment, policy) = decoded.ok_or_else(|| ApiError::field("policy", "is invalid"))?;
        let from = format!("{}-01T00:00:00Z", req.start_period);
        let from = DateTime::parse_from_rfc3339(&from).map_err(|_| ApiError::field("start_period", "is invalid"))?;
        let (y, m) = (&req.end_period[..4], &req.end_period[5..]);
        let (y, m): (i32, u32) = (y.parse().unwrap_or(0), m.parse().unwrap_or(1));
        let next =
            if m == 12 { format!("{}-01-01T00:00:00Z", y + 1) } else { format!("{y}-{:02}-01T00:00:00Z", m + 1) };
        let until = DateTime::parse_from_rfc3339(&next).map_err(|_| ApiError::field("end_period", "is invalid"))?;
        let rows = opportunity::Entity::find()
            .filter(opportunity::Column::TenantId.eq(&c.tenant))
            .filter(opportunity::Column::CreatedAt.gte(from.with_timezone(&Utc)))
            .filter(opportunity::Column::CreatedAt.lt(until.with_timezone(&Utc)))
            .filter(opportunity::Column::AcceptedAt.is_not_null())
            .all(&self.db)
            .await?;
        let (mut actual, mut under) = (Outcome::default(), Outcome::default());
        for row in &rows {
            let o = pb::Opportunity::decode(row.body.as_slice()).map_err(|e| ApiError::Internal(e.into()))?;
            if Segment::from_wire(o.segment) != Some(segment) {
                continue;
            }
            actual.add(&o);
            // The deal as the AE saw it: its evidence, buying group and next step, at submission.
            let mut ignored = Violations::new();
            let score = o.lead_snapshot.as_ref().map_or(0, |s| s.score);
            let candidate = decode_gate_inputs(
                &mut ignored,
                "opportunity",
                &o.evidence,
                &o.stakeholders,
                o.next_step.as_ref(),
                score,
            );
            let submitted = o.create_time.as_ref().and_then(from_timestamp).unwrap_or(row.created_at);
            if gate::evaluate(&policy, &candidate, submitted).passed() {
                under.add(&o);
            }
        }
        let (actual, under) = (actual.finish(), under.finish());
        let volume_change = (actual.sqos > 0).then(|| (under.sqos - actual.sqos) as f64 / actual.sqos as f64);
        Ok(pb::BacktestGatePolicyResponse { actual: Some(actual), under_policy: Some(under), volume_change })
    }
}

/// The wire form of a gate result.
pub(crate) fn encode_result(result: gate::GateResult, policy_version: i64) -> pb::EvaluateGateResponse {
    pb::EvaluateGateResponse {
        passed: result.passed(),
        checks: result.checks.into_iter().map(encode_check).collect(),
        policy_version,
    }
}

fn encode_check(k: qualify_domain::GateCheck) -> pb::GateCheck {
    pb::GateCheck {
        code: k.code.to_wire(),
        passed: k.passed,
        criterion: k.criterion.map_or(0, WireEnum::to_wire),
        detail: k.detail,
    }
}
