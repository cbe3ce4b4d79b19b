//! Calibration: a reproducible sample of accept and reject decisions, reviews
//! of it, and the agreement between the original decisions and the reviewers'.

use chrono::{DateTime, Utc};
use qualify_domain::metrics::cohen_kappa;
use qualify_domain::{Caller, Decision, DecisionKind, permission};
use qualify_platform::ApiError;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};

use crate::store::calibration::{self as store, Review, Sample};
use crate::store::opportunities;

/// Most decisions one sample draws.
pub const MAX_SAMPLE: usize = 500;

/// Draw order of a decision under a seed: a hash, so the same seed over the
/// same decisions always draws the same sample, whatever order they load in.
fn draw_key(seed: i64, decision_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(decision_id.as_bytes());
    h.finalize().into()
}

/// What to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// Team whose decisions to sample; empty samples every team.
    pub team: String,
    /// Start of the period (inclusive).
    pub start: DateTime<Utc>,
    /// End of the period (exclusive).
    pub end: DateTime<Utc>,
    /// Decisions to draw, at most [`MAX_SAMPLE`].
    pub size: usize,
    /// Seed of the draw.
    pub seed: i64,
}

/// Draws and stores a sample of the accept and reject decisions `d` describes;
/// returns its id and the decisions drawn, in draw order.
pub async fn draw(
    db: &impl ConnectionTrait,
    c: &Caller,
    d: Draw,
    now: DateTime<Utc>,
) -> Result<(String, Vec<Decision>), ApiError> {
    let kinds = [DecisionKind::Accept, DecisionKind::Reject];
    let team = (!d.team.is_empty()).then_some(d.team.as_str());
    let mut ids = opportunities::decision_ids_between(db, &c.tenant, &kinds, team, d.start, d.end).await?;
    ids.sort_by_cached_key(|id| draw_key(d.seed, id));
    ids.truncate(d.size);
    let decisions = opportunities::decisions_by_ids(db, &c.tenant, &ids).await?;
    let sample = Sample {
        sample_id: uuid::Uuid::now_v7().to_string(),
        team: d.team,
        decision_ids: ids,
        created_by: c.subject.clone(),
        created_at: now,
    };
    store::insert_sample(db, &c.tenant, &sample).await?;
    Ok((sample.sample_id, decisions))
}

/// A reviewer's verdict on a sampled decision, as the event stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// The sample.
    pub sample_id: String,
    /// The decision reviewed.
    pub decision_id: String,
    /// Its opportunity.
    pub opportunity_id: String,
    /// When the decision was made.
    pub decided_at: DateTime<Utc>,
    /// The reviewer.
    pub reviewer: String,
    /// Whether the reviewer would have decided the same.
    pub agree: bool,
    /// The reviewer's earlier verdict on this decision in this sample, which this one replaces.
    pub previous_agree: Option<bool>,
    /// When the review was recorded.
    pub reviewed_at: DateTime<Utc>,
}

/// Records `c`'s verdict on a decision of a sample (never on their own decision).
pub async fn review(
    txn: &impl ConnectionTrait,
    c: &Caller,
    sample_id: &str,
    decision_id: &str,
    agree: bool,
    note: String,
    now: DateTime<Utc>,
) -> Result<Reviewed, ApiError> {
    let sample = store::sample(txn, &c.tenant, sample_id).await?;
    if !sample.decision_ids.iter().any(|d| d == decision_id) {
        return Err(ApiError::NotFound { kind: "sampled decision", id: decision_id.to_string() });
    }
    let decision = opportunities::decision(txn, &c.tenant, decision_id)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "decision", id: decision_id.to_string() })?;
    permission::review_decision(c, &decision.decided_by)?;
    // The verdict it replaces goes with the event, so metrics count each reviewer's current verdict once.
    let previous_agree = store::verdict(txn, &c.tenant, sample_id, decision_id, &c.subject).await?;
    let review = Review {
        sample_id: sample_id.to_string(),
        decision_id: decision_id.to_string(),
        reviewer: c.subject.clone(),
        original_accept: decision.kind == DecisionKind::Accept,
        agree,
        note,
        reviewed_at: now,
    };
    store::put_review(txn, &c.tenant, &review).await?;
    Ok(Reviewed {
        sample_id: review.sample_id,
        decision_id: review.decision_id,
        opportunity_id: decision.opportunity_id,
        decided_at: decision.decided_at,
        reviewer: review.reviewer,
        agree,
        previous_agree,
        reviewed_at: now,
    })
}

/// How far a sample's reviews agree with its original decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Reviews recorded.
    pub reviewed: usize,
    /// Reviews agreeing with the original decision.
    pub agreed: usize,
    /// Cohen's kappa between the original decisions and the reviewers'; `None` with no review.
    pub kappa: Option<f64>,
    /// Team of the sample.
    pub team: String,
}

/// The agreement of a sample of the tenant.
pub async fn agreement(db: &impl ConnectionTrait, tenant: &str, sample_id: &str) -> Result<Agreement, ApiError> {
    let sample = store::sample(db, tenant, sample_id).await?;
    let reviews = store::reviews(db, tenant, sample_id).await?;
    // Rater one: the original decision; rater two: the reviewer's.
    let pairs: Vec<(bool, bool)> = reviews
        .iter()
        .map(|r| (r.original_accept, if r.agree { r.original_accept } else { !r.original_accept }))
        .collect();
    Ok(Agreement {
        reviewed: pairs.len(),
        agreed: reviews.iter().filter(|r| r.agree).count(),
        kappa: cohen_kappa(&pairs),
        team: sample.team,
    })
}
