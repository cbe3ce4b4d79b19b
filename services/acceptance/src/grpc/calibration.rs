//! The calibration RPCs: their codec and units of work.

use qualify_domain::{Caller, permission};
use qualify_platform::validate::MAX_TEXT;
use qualify_platform::{ApiError, Violations};
use qualify_proto::acceptance as pb;
use qualify_proto::convert::{from_timestamp, timestamp};
use sea_orm::TransactionTrait;

use super::opportunities::encode_decision;
use super::{AcceptanceApi, emit};
use crate::calibration::{self, Draw, MAX_SAMPLE, Reviewed};

fn decode_draw(req: &pb::CreateCalibrationSampleRequest) -> Result<Draw, ApiError> {
    let mut v = Violations::new();
    v.text("team", &req.team, 128);
    let size = usize::try_from(req.size).ok().filter(|n| (1..=MAX_SAMPLE).contains(n));
    v.check(size.is_some(), "size", "must be between 1 and 500");
    let start = req.start_time.as_ref().and_then(from_timestamp);
    let end = req.end_time.as_ref().and_then(from_timestamp);
    v.check(start.is_some(), "start_time", "is required and must be a valid time");
    v.check(end.is_some(), "end_time", "is required and must be a valid time");
    if let (Some(s), Some(e)) = (start, end) {
        v.check(s < e, "end_time", "must be after start_time");
    }
    v.finish()?;
    let (Some(start), Some(end), Some(size)) = (start, end, size) else {
        return Err(ApiError::field("start_time", "is required"));
    };
    Ok(Draw { team: req.team.clone(), start, end, size, seed: req.seed })
}

fn encode_reviewed(r: Reviewed) -> pb::event::Payload {
    pb::event::Payload::CalibrationReviewed(pb::CalibrationReviewed {
        sample_id: r.sample_id,
        decision_id: r.decision_id,
        opportunity_id: r.opportunity_id,
        decide_time: Some(timestamp(r.decided_at)),
        reviewer: r.reviewer,
        agree: r.agree,
        previous_agree: r.previous_agree,
        review_time: Some(timestamp(r.reviewed_at)),
    })
}

impl AcceptanceApi {
    pub(crate) async fn create_calibration_sample(
        &self,
        c: Caller,
        req: pb::CreateCalibrationSampleRequest,
    ) -> Result<pb::CreateCalibrationSampleResponse, ApiError> {
        permission::draw_calibration_sample(&c)?;
        let draw = decode_draw(&req)?;
        let (sample_id, decisions) = calibration::draw(&self.db, &c, draw, self.clock.now()).await?;
        Ok(pb::CreateCalibrationSampleResponse {
            sample_id,
            decisions: decisions.iter().map(encode_decision).collect(),
        })
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
        let now = self.clock.now();
        // The review and its event commit together.
        let txn = self.db.begin().await?;
        let note = req.note.trim().to_string();
        let reviewed = calibration::review(&txn, &c, &req.sample_id, &req.decision_id, req.agree, note, now).await?;
        emit(&txn, &c.tenant, now, [encode_reviewed(reviewed)]).await?;
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
        let a = calibration::agreement(&self.db, &c.tenant, &req.sample_id).await?;
        Ok(pb::GetCalibrationAgreementResponse {
            reviewed: a.reviewed as i32,
            agreed: a.agreed as i32,
            kappa: a.kappa,
            team: a.team,
        })
    }
}
