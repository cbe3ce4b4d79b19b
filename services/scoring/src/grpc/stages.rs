//! Explicit stage moves by people: accept (SAL), qualify with discovery
//! evidence (SQL), disqualify and recycle with a reason; and the history.

use qualify_domain::{Caller, LeadStage};
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::scoring as pb;

use super::events::{self, encode_change};
use super::leads::encode_lead;
use super::{ScoringApi, page_of};
use crate::leads;
use crate::store::leads as store;

/// One requested move.
struct Move<'a> {
    method: &'static str,
    request_id: &'a str,
    lead_id: &'a str,
    to: LeadStage,
    reason: String,
}

impl ScoringApi {
    /// Runs one move under an idempotency key; the response carries the lead and the change.
    async fn move_lead(
        &self,
        caller: &Caller,
        m: Move<'_>,
        request: &impl prost::Message,
    ) -> Result<(pb::Lead, pb::LeadStageChange), ApiError> {
        let Move { method, request_id, lead_id, to, reason } = m;
        // Permission before anything else: a refused caller learns nothing.
        leads::hand_mover(caller, to)?;
        let key = idempotency::Key { tenant: &caller.tenant, method, request_id, subject: &caller.subject };
        let (c, lead_id, now) = (caller.clone(), lead_id.to_string(), self.clock.now());
        let out: pb::AcceptLeadResponse = idempotency::run(&self.db, key, request, move |txn| {
            Box::pin(async move {
                let (lead, change) = leads::move_by_hand(txn, &c, &lead_id, to, &reason, now).await?;
                events::stage_changed(txn, &c.tenant, &change).await?;
                Ok(pb::AcceptLeadResponse { lead: Some(encode_lead(lead)), stage_change: Some(encode_change(&change)) })
            })
        })
        .await?;
        self.relay.nudge();
        match (out.lead, out.stage_change) {
            (Some(l), Some(c)) => Ok((l, c)),
            _ => Err(ApiError::Internal(anyhow::anyhow!("stored move response is incomplete"))),
        }
    }

    pub(crate) async fn accept_lead(
        &self,
        c: Caller,
        req: pb::AcceptLeadRequest,
    ) -> Result<pb::AcceptLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.request_id(&req.request_id);
        v.finish()?;
        let reason = "accepted by sales".to_string();
        let (lead, change) = self
            .move_lead(
                &c,
                Move {
                    method: "AcceptLead",
                    request_id: &req.request_id,
                    lead_id: &req.lead_id,
                    to: LeadStage::Sal,
                    reason,
                },
                &req,
            )
            .await?;
        Ok(pb::AcceptLeadResponse { lead: Some(lead), stage_change: Some(change) })
    }

    pub(crate) async fn qualify_lead(
        &self,
        c: Caller,
        req: pb::QualifyLeadRequest,
    ) -> Result<pb::QualifyLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.request_id(&req.request_id);
        v.check(req.discovery_call_held, "discovery_call_held", "a lead is qualified in a real conversation");
        v.check(!req.pain_statement.trim().is_empty(), "pain_statement", "is required");
        v.text("pain_statement", &req.pain_statement, 4096);
        v.finish()?;
        let reason = format!("discovery call held; pain: {}", req.pain_statement.trim());
        let (lead, change) = self
            .move_lead(
                &c,
                Move {
                    method: "QualifyLead",
                    request_id: &req.request_id,
                    lead_id: &req.lead_id,
                    to: LeadStage::Sql,
                    reason,
                },
                &req,
            )
            .await?;
        Ok(pb::QualifyLeadResponse { lead: Some(lead), stage_change: Some(change) })
    }

    pub(crate) async fn disqualify_lead(
        &self,
        c: Caller,
        req: pb::DisqualifyLeadRequest,
    ) -> Result<pb::DisqualifyLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.request_id(&req.request_id);
        v.check(!req.reason.trim().is_empty(), "reason", "is required");
        v.text("reason", &req.reason, 1024);
        v.finish()?;
        let (lead, change) = self
            .move_lead(
                &c,
                Move {
                    method: "DisqualifyLead",
                    request_id: &req.request_id,
                    lead_id: &req.lead_id,
                    to: LeadStage::Disqualified,
                    reason: req.reason.clone(),
                },
                &req,
            )
            .await?;
        Ok(pb::DisqualifyLeadResponse { lead: Some(lead), stage_change: Some(change) })
    }

    pub(crate) async fn recycle_lead(
        &self,
        c: Caller,
        req: pb::RecycleLeadRequest,
    ) -> Result<pb::RecycleLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.request_id(&req.request_id);
        v.check(!req.reason.trim().is_empty(), "reason", "is required");
        v.text("reason", &req.reason, 1024);
        v.finish()?;
        let (lead, change) = self
            .move_lead(
                &c,
                Move {
                    method: "RecycleLead",
                    request_id: &req.request_id,
                    lead_id: &req.lead_id,
                    to: LeadStage::Nurture,
                    reason: req.reason.clone(),
                },
                &req,
            )
            .await?;
        Ok(pb::RecycleLeadResponse { lead: Some(lead), stage_change: Some(change) })
    }

    pub(crate) async fn list_lead_stage_changes(
        &self,
        c: Caller,
        req: pb::ListLeadStageChangesRequest,
    ) -> Result<pb::ListLeadStageChangesResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.finish()?;
        if !store::exists(&self.db, &c.tenant, &req.lead_id).await? {
            return Err(ApiError::NotFound { kind: "lead", id: req.lead_id });
        }
        let query = format!("stage-changes|{}|{}", c.tenant, req.lead_id);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let after = match &p.after {
            Some(after) => {
                Some(after.parse().map_err(|_| ApiError::field("page_token", "is not a token from this query"))?)
            }
            None => None,
        };
        let rows = store::changes(&self.db, &c.tenant, &req.lead_id, after, p.size + 1).await?;
        let (rows, next_page_token) = page_of(rows, &query, &p, |(id, _)| id.to_string());
        Ok(pb::ListLeadStageChangesResponse {
            stage_changes: rows.iter().map(|(_, c)| encode_change(c)).collect(),
            next_page_token,
        })
    }
}
