//! The gate policy RPCs: their codec and units of work.

use chrono::{DateTime, Utc};
use qualify_domain::{Caller, Criterion, Framework, GatePolicy, PolicyInForce, Segment, permission};
use qualify_platform::validate::{Item, month_range};
use qualify_platform::{ApiError, Violations, idempotency};
use qualify_proto::acceptance as pb;
use qualify_proto::convert::{WireEnum, timestamp};

use super::AcceptanceApi;
use super::opportunities::{decode_qualification, encode_gate};
use crate::policies::{self, Outcome};

fn encode_policy(segment: Segment, s: &PolicyInForce) -> pb::GatePolicy {
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

/// The first instant of a `YYYY-MM` month (validated by `month_range`).
fn month_start(month: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&format!("{month}-01T00:00:00Z")).ok().map(|t| t.with_timezone(&Utc))
}

/// The first instant after a `YYYY-MM` month (validated by `month_range`).
fn month_end(month: &str) -> Option<DateTime<Utc>> {
    let (y, m): (i32, u32) = (month.get(..4)?.parse().unwrap_or(0), month.get(5..)?.parse().unwrap_or(1));
    let next = if m == 12 { format!("{}-01-01T00:00:00Z", y + 1) } else { format!("{y}-{:02}-01T00:00:00Z", m + 1) };
    DateTime::parse_from_rfc3339(&next).ok().map(|t| t.with_timezone(&Utc))
}

fn encode_outcome(o: &Outcome) -> pb::BacktestOutcome {
    pb::BacktestOutcome {
        sqos: o.sqos,
        closed: o.closed,
        won: o.won,
        win_rate: o.win_rate,
        pipeline_minor: o.pipeline_minor,
        won_amount_minor: o.won_amount_minor,
    }
}

impl AcceptanceApi {
    pub(crate) async fn get_gate_policy(
        &self,
        c: Caller,
        req: pb::GetGatePolicyRequest,
    ) -> Result<pb::GetGatePolicyResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.required_enum::<Segment>("segment", req.segment);
        v.check(req.version.is_none_or(|n| n >= 0), "version", "must not be negative");
        v.finish()?;
        let segment = segment.ok_or_else(|| ApiError::field("segment", "is required"))?;
        let stored = match req.version {
            None => policies::in_force(&self.db, &c.tenant, segment).await?,
            Some(0) => PolicyInForce::default_for(segment),
            Some(n) => policies::version(&self.db, &c.tenant, segment, n).await?.ok_or_else(|| ApiError::NotFound {
                kind: "gate policy version",
                id: format!("{}/{n}", segment.as_str()),
            })?,
        };
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
        let tenant = c.tenant.clone();
        let subject = c.subject.clone();
        let key = idempotency::Key {
            tenant: &tenant,
            method: "UpdateGatePolicy",
            request_id: &req.request_id,
            subject: &subject,
        };
        let expected = req.expected_version;
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let stored = policies::update(txn, &c, segment, policy, expected, now).await?;
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
        let segment = v.required_enum::<Segment>("candidate.segment", cand.segment);
        let q = decode_qualification(&mut v, "candidate", &cand.evidence, &cand.stakeholders, cand.next_step.as_ref());
        v.finish()?;
        let segment = segment.ok_or_else(|| ApiError::field("candidate", "is invalid"))?;
        let candidate = q.gate_candidate(cand.score);
        let (result, version) = policies::evaluate(&self.db, &c.tenant, segment, &candidate, self.clock.now()).await?;
        Ok(encode_gate(&result, version))
    }

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
        let from = month_start(&req.start_period).ok_or_else(|| ApiError::field("start_period", "is invalid"))?;
        let until = month_end(&req.end_period).ok_or_else(|| ApiError::field("end_period", "is invalid"))?;
        let b = policies::backtest(&self.db, &c.tenant, segment, &policy, from, until).await?;
        Ok(pb::BacktestGatePolicyResponse {
            actual: Some(encode_outcome(&b.actual)),
            under_policy: Some(encode_outcome(&b.under_policy)),
            volume_change: b.volume_change,
        })
    }
}
