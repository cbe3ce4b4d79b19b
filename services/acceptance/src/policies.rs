//! Gate policies: the policy in force per segment, its updates under
//! optimistic versioning, evaluating a candidate, and backtesting a candidate
//! policy on the deals already accepted.

use chrono::{DateTime, Utc};
use qualify_domain::gate::{self, GateCandidate, GateResult};
use qualify_domain::metrics::win_rate;
use qualify_domain::{Caller, GatePolicy, Opportunity, OpportunityState, PolicyInForce, Segment};
use qualify_platform::ApiError;
use sea_orm::ConnectionTrait;

use crate::store::opportunities;
use crate::store::policies as store;
pub use crate::store::policies::{in_force, version};

/// Publishes a new version of the segment's policy, if the one in force is
/// still at `expected` (0: any); earlier versions stay readable.
pub async fn update(
    txn: &impl ConnectionTrait,
    c: &Caller,
    segment: Segment,
    policy: GatePolicy,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<PolicyInForce, ApiError> {
    let current = store::in_force(txn, &c.tenant, segment).await?;
    if expected != 0 && expected != current.version {
        return Err(ApiError::Aborted(format!(
            "the {} policy is at version {}, not {expected}",
            segment.as_str(),
            current.version
        )));
    }
    let version = current.version + 1;
    store::put(txn, &c.tenant, segment, &policy, version, now, &c.subject).await?;
    Ok(PolicyInForce { policy, version, updated_at: Some(now) })
}

/// Evaluates a candidate against the segment's policy in force at `now`; returns every check and the policy version.
pub async fn evaluate(
    db: &impl ConnectionTrait,
    tenant: &str,
    segment: Segment,
    candidate: &GateCandidate,
    now: DateTime<Utc>,
) -> Result<(GateResult, i64), ApiError> {
    let p = store::in_force(db, tenant, segment).await?;
    Ok((gate::evaluate(&p.policy, candidate, now), p.version))
}

/// What a set of accepted opportunities came to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// Accepted opportunities (SQOs).
    pub sqos: i64,
    /// Of those, closed.
    pub closed: i64,
    /// Of those, won.
    pub won: i64,
    /// Won over closed; `None` when none closed.
    pub win_rate: Option<f64>,
    /// Sum of their amounts, in minor units.
    pub pipeline_minor: i64,
    /// Sum of the amounts won (the final amount, else the expected one), in minor units.
    pub won_amount_minor: i64,
}

impl Outcome {
    fn add(&mut self, o: &Opportunity) {
        self.sqos += 1;
        self.pipeline_minor += o.amount.amount_minor;
        match o.state {
            OpportunityState::ClosedWon => {
                self.closed += 1;
                self.won += 1;
                self.won_amount_minor += o.closed_amount.as_ref().unwrap_or(&o.amount).amount_minor;
            }
            OpportunityState::ClosedLost => self.closed += 1,
            _ => {}
        }
    }

    fn finish(mut self) -> Self {
        self.win_rate = win_rate(self.won as u64, (self.closed - self.won) as u64).map(|r| r.value());
        self
    }
}

/// A backtest: what the team had and what it would have had under a candidate policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backtest {
    /// Every opportunity accepted.
    pub actual: Outcome,
    /// Those the candidate policy passes.
    pub under_policy: Outcome,
    /// Relative change of the SQO count under the policy; `None` with no SQO.
    pub volume_change: Option<f64>,
}

/// Replays the deals of `segment` accepted among those submitted in
/// `[from, until)` through `policy`, each as it stood when submitted.
pub async fn backtest(
    db: &impl ConnectionTrait,
    tenant: &str,
    segment: Segment,
    policy: &GatePolicy,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Backtest, ApiError> {
    let (mut actual, mut under) = (Outcome::default(), Outcome::default());
    for o in opportunities::accepted_submitted_between(db, tenant, from, until).await? {
        if o.segment != segment {
            continue;
        }
        actual.add(&o);
        // The deal as the AE saw it: its evidence, buying group and next step, at submission.
        if gate::evaluate(policy, &o.gate_candidate(), o.created_at).passed() {
            under.add(&o);
        }
    }
    let (actual, under_policy) = (actual.finish(), under.finish());
    let volume_change = (actual.sqos > 0).then(|| (under_policy.sqos - actual.sqos) as f64 / actual.sqos as f64);
    Ok(Backtest { actual, under_policy, volume_change })
}
