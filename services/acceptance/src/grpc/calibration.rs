//! Calibration: a reproducible sample of accept and reject decisions, reviews
//! of it, and the agreement between the original decisions and the reviewers'.

use qualify_domain::metrics::cohen_kappa;
use qualify_domain::{Caller, permission};
use qualify_platform::validate::MAX_TEXT;
use qualify_platform::{ApiError, Violations};
use qualify_proto::acceptance as pb;
use qualify_proto::convert::{from_timestamp, timestamp};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use super::AcceptanceApi;
use super::opportunities::{decode_decision, emit};
use crate::store::entity::{calibration_review, calibration_sample, decision};

/// Most decisions one sample draws.
const MAX_SAMPLE: i32 = 500;

/// Draw order of a decision under a seed: a hash, so the same seed over the
/// same decisions always draws the same sample, whatever order they load in.
fn draw_key(seed: i64, decision_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(decision_id.as_bytes());
    h.finalize().into()
}

impl AcceptanceApi {
    pub(crate) async fn create_calibration_sample(
        &self,
        c: Caller,
        req: pb::CreateCalibrationSampleRequest,
    ) -> Result<pb::CreateCalibrationSampleResponse, ApiError> {
        permission::draw_calibration_sample(&c)?;
        let mut v = Violations::new();
        v.text("team", &req.team, 128);
        v.check((1..=MAX_SAMPLE).contains(&req.size), "size", "must be between 1 and 500");
        let start = req.start_time.as_ref().and_then(from_timestamp);
        let end = req.end_time.as_ref().and_then(from_timestamp);
        v.check(start.is_some(), "start_time", "is required and must be a valid time");
        v.check(end.is_some(), "end_time", "is required and must be a valid time");
        if let (Some(s), Some(e)) = (start, end) {
            v.check(s < e, "end_time", "must be after start_time");
        }
        v.finish()?;
        let (Some(start), Some(end)) = (start, end) else {
            return Err(ApiError::field("start_time", "is required"));
        };
        let mut q = decision::Entity::find()
            .filter(decision::Column::TenantId.eq(&c.tenant))
            .filter(decision::Column::Kind.is_in(["AcceptOpportunity", "RejectOpportunity"]))
            .filter(decision::Column::DecidedAt.gte(start))
            .filter(decision::Column::DecidedAt.lt(end));
        if !req.team.is_empty() {
            q = q.filter(decision::Column::Team.eq(&req.team));
        }
        let mut rows = q.order_by_asc(decision::Column::DecisionId).all(&self.db).await?;
        rows.sort_by_cached_key(|r| draw_key(req.seed, &r.decision_id));
        rows.truncate(req.size as usize);
        let decisions = rows.iter().map(decode_decision).collect::<Result<Vec<_>, _>>()?;
        let sample_id = uuid::Uuid::now_v7().to_string();
        calibration_sample::ActiveModel {
            tenant_id: Set(c.tenant.clone()),
            sample_id: Set(sample_id.clone()),
            team: Set(req.team.clone()),
            decision_ids: Set(rows.iter().map(|r| r.decision_id.as_str()).collect::<Vec<_>>().join(",")),
            created_by: Set(c.subject.clone()),
            created_at: Set(self.clock.now()),
        }
        .insert(&self.db)
        .await?;
        Ok(pb::CreateCalibrationSampleResponse { sample_id, decisions })
    }

    pub(crate) async fn record_calibration_review(
        &self,
        c: Caller,
        req: pb::RecordCalibrationReviewRequest,
    ) -> Result<pb::RecordCalibrationReviewResponse, ApiError> {
        permission::calibrate(&c)?;
        let mut v = Violations::new();
        v.id("sample_id", &req.sample_id);
        v.id("decision_id", &req.decision_id);
        v.check(req.agree || !req.note.trim().is_empty(), "note", "is required when disagreeing");
        v.text("note", &req.note, MAX_TEXT * 4);
        v.finish()?;
        let sample = calibration_sample::Entity::find_by_id((c.tenant.clone(), req.sample_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::NotFound { kind: "calibration sample", id: req.sample_id.clone() })?;
        if !sample.decision_ids.split(',').any(|d| d == req.decision_id) {
            return Err(ApiError::NotFound { kind: "sampled decision", id: req.decision_id.clone() });
        }
        let row = decision::Entity::find_by_id((c.tenant.clone(), req.decision_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::NotFound { kind: "decision", id: req.decision_id.clone() })?;
        permission::review_decision(&c, &row.decided_by)?;
        let now = self.clock.now();
        use calibration_review::Column as R;
        // The review and its event commit together; the event carries the verdict it replaces,
        // so metrics can count each reviewer's current verdict once.
        let txn = self.db.begin().await?;
        let previous: Option<bool> = calibration_review::Entity::find()
            .select_only()
            .column(R::Agree)
            .filter(R::TenantId.eq(&c.tenant))
            .filter(R::SampleId.eq(&req.sample_id))
            .filter(R::DecisionId.eq(&req.decision_id))
            .filter(R::Reviewer.eq(&c.subject))
            .into_tuple()
            .one(&txn)
            .await?;
        let review = calibration_review::ActiveModel {
            tenant_id: Set(c.tenant.clone()),
            sample_id: Set(req.sample_id.clone()),
            decision_id: Set(req.decision_id.clone()),
            reviewer: Set(c.subject.clone()),
            original_accept: Set(row.kind == "AcceptOpportunity"),
            agree: Set(req.agree),
            note: Set(req.note.trim().to_string()),
            reviewed_at: Set(now),
        };
        calibration_review::Entity::insert(review)
            .on_conflict(
                OnConflict::columns([R::TenantId, R::SampleId, R::DecisionId, R::Reviewer])
                    .update_columns([R::Agree, R::Note, R::ReviewedAt])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        let reviewed = pb::CalibrationReviewed {
            sample_id: req.sample_id.clone(),
            decision_id: req.decision_id.clone(),
            opportunity_id: row.opportunity_id.clone(),
            decide_time: Some(timestamp(row.decided_at)),
            reviewer: c.subject.clone(),
            agree: req.agree,
            previous_agree: previous,
            review_time: Some(timestamp(now)),
        };
        emit(&txn, &c.tenant, now, [pb::event::Payload::CalibrationReviewed(reviewed)]).await?;
        txn.commit().await?;
        self.relay.nudge();
        Ok(pb::RecordCalibrationReviewResponse {})
    }

    pub(crate) async fn get_calibration_agreement(
        &self,
        c: Caller,
        req: pb::GetCalibrationAgreementRequest,
    ) -> Result<pb::GetCalibrationAgreementResponse, ApiError> {
        permission::calibrate(&c)?;
        let mut v = Violations::new();
        v.id("sample_id", &req.sample_id);
        v.finish()?;
        let sample = calibration_sample::Entity::find_by_id((c.tenant.clone(), req.sample_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::NotFound { kind: "calibration sample", id: req.sample_id.clone() })?;
        let reviews = calibration_review::Entity::find()
            .filter(calibration_review::Column::TenantId.eq(&c.tenant))
            .filter(calibration_review::Column::SampleId.eq(&req.sample_id))
            .all(&self.db)
            .await?;
        // Rater one: the original decision; rater two: the reviewer's.
        let pairs: Vec<(bool, bool)> = reviews
            .iter()
            .map(|r| (r.original_accept, if r.agree { r.original_accept } else { !r.original_accept }))
            .collect();
        Ok(pb::GetCalibrationAgreementResponse {
            reviewed: pairs.len() as i32,
            agreed: reviews.iter().filter(|r| r.agree).count() as i32,
            kappa: cohen_kappa(&pairs),
            team: sample.team,
        })
    }
}
