//! The `calibration_samples` and `calibration_reviews` tables, in columns.

use chrono::{DateTime, Utc};
use qualify_platform::ApiError;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entity::{calibration_review, calibration_sample};

/// A drawn sample: the decisions in draw order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Id, unique in the tenant.
    pub sample_id: String,
    /// The team sampled (empty: every team).
    pub team: String,
    /// The decisions drawn, in draw order.
    pub decision_ids: Vec<String>,
    /// Who drew it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One reviewer's verdict on one sampled decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The sample.
    pub sample_id: String,
    /// The decision reviewed.
    pub decision_id: String,
    /// The reviewer.
    pub reviewer: String,
    /// Whether the decision reviewed was an accept (else a reject).
    pub original_accept: bool,
    /// Whether the reviewer would have decided the same.
    pub agree: bool,
    /// Why, on disagreement.
    pub note: String,
    /// When.
    pub reviewed_at: DateTime<Utc>,
}

/// Stores a new sample.
pub async fn insert_sample(db: &impl ConnectionTrait, tenant: &str, s: &Sample) -> Result<(), ApiError> {
    calibration_sample::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        sample_id: Set(s.sample_id.clone()),
        team: Set(s.team.clone()),
        decision_ids: Set(s.decision_ids.join(",")),
        created_by: Set(s.created_by.clone()),
        created_at: Set(s.created_at),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A sample of the tenant, or NOT_FOUND.
pub async fn sample(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<Sample, ApiError> {
    let row = calibration_sample::Entity::find_by_id((tenant.to_string(), id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "calibration sample", id: id.to_string() })?;
    Ok(Sample {
        sample_id: row.sample_id,
        team: row.team,
        decision_ids: row.decision_ids.split(',').filter(|d| !d.is_empty()).map(str::to_string).collect(),
        created_by: row.created_by,
        created_at: row.created_at,
    })
}

/// The reviewer's current verdict on a sampled decision, if any.
pub async fn verdict(
    db: &impl ConnectionTrait,
    tenant: &str,
    sample_id: &str,
    decision_id: &str,
    reviewer: &str,
) -> Result<Option<bool>, ApiError> {
    use calibration_review::Column as R;
    Ok(calibration_review::Entity::find()
        .select_only()
        .column(R::Agree)
        .filter(R::TenantId.eq(tenant))
        .filter(R::SampleId.eq(sample_id))
        .filter(R::DecisionId.eq(decision_id))
        .filter(R::Reviewer.eq(reviewer))
        .into_tuple()
        .one(db)
        .await?)
}

/// Stores a review, replacing the reviewer's earlier one on the same decision of the sample.
pub async fn put_review(db: &impl ConnectionTrait, tenant: &str, r: &Review) -> Result<(), ApiError> {
    use calibration_review::Column as R;
    let row = calibration_review::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        sample_id: Set(r.sample_id.clone()),
        decision_id: Set(r.decision_id.clone()),
        reviewer: Set(r.reviewer.clone()),
        original_accept: Set(r.original_accept),
        agree: Set(r.agree),
        note: Set(r.note.clone()),
        reviewed_at: Set(r.reviewed_at),
    };
    calibration_review::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([R::TenantId, R::SampleId, R::DecisionId, R::Reviewer])
                .update_columns([R::Agree, R::Note, R::ReviewedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The current reviews of a sample.
pub async fn reviews(db: &impl ConnectionTrait, tenant: &str, sample_id: &str) -> Result<Vec<Review>, ApiError> {
    let rows = calibration_review::Entity::find()
        .filter(calibration_review::Column::TenantId.eq(tenant))
        .filter(calibration_review::Column::SampleId.eq(sample_id))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Review {
            sample_id: r.sample_id,
            decision_id: r.decision_id,
            reviewer: r.reviewer,
            original_accept: r.original_accept,
            agree: r.agree,
            note: r.note,
            reviewed_at: r.reviewed_at,
        })
        .collect())
}
