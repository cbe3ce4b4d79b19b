//! Leads on the wire: decoding a lead sent to create, encoding one, and the
//! create, get and list RPCs (scores and stage moves have their own files).

use qualify_domain::{Caller, Lead, LeadSource};
use qualify_platform::validate::MAX_TEXT;
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as pb;

use super::scores::encode_stored;
use super::{ScoringApi, events, page_of};
use crate::leads::{self, NewLead};
use crate::store::leads as store;

/// Decodes and validates a lead sent to create (`None` without a known source).
pub(super) fn decode_new(v: &mut Violations, l: &pb::Lead) -> Option<NewLead> {
    v.id("lead.lead_id", &l.lead_id);
    v.id("lead.account_id", &l.account_id);
    let source = v.required_enum::<LeadSource>("lead.source", l.source);
    v.text("lead.campaign", &l.campaign, 256);
    v.text("lead.owner_sdr", &l.owner_sdr, MAX_TEXT);
    v.optional_id("lead.contact_id", &l.contact_id);
    Some(NewLead {
        lead_id: l.lead_id.clone(),
        account_id: l.account_id.clone(),
        source: source?,
        campaign: l.campaign.clone(),
        owner_sdr: l.owner_sdr.clone(),
        contact_id: (!l.contact_id.is_empty()).then(|| l.contact_id.clone()),
    })
}

/// The wire form of a lead.
pub(crate) fn encode_lead(l: Lead) -> pb::Lead {
    pb::Lead {
        lead_id: l.lead_id,
        account_id: l.account_id,
        source: l.source.map_or(0, WireEnum::to_wire),
        campaign: l.campaign,
        owner_sdr: l.owner_sdr,
        stage: l.stage.to_wire(),
        create_time: Some(timestamp(l.created_at)),
        update_time: Some(timestamp(l.updated_at)),
        contact_id: l.contact_id.unwrap_or_default(),
        score: l.score.as_ref().map(encode_stored),
        imported: l.imported,
    }
}

impl ScoringApi {
    pub(crate) async fn create_lead(
        &self,
        c: Caller,
        req: pb::CreateLeadRequest,
    ) -> Result<pb::CreateLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(l) = req.lead.as_ref() else {
            return Err(ApiError::field("lead", "is required"));
        };
        let new = decode_new(&mut v, l);
        v.finish()?;
        let new = new.ok_or_else(|| ApiError::field("lead.source", "is required"))?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "CreateLead",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let (tenant, now) = (c.tenant.clone(), self.clock.now());
        let created = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let (lead, segment) = leads::create(txn, &tenant, new, now).await?;
                events::lead_created(txn, &tenant, &lead, segment).await?;
                Ok(pb::CreateLeadResponse { lead: Some(encode_lead(lead)) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(created)
    }

    pub(crate) async fn get_lead(&self, c: Caller, req: pb::GetLeadRequest) -> Result<pb::GetLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.finish()?;
        let lead = store::get(&self.db, &c.tenant, &req.lead_id).await?;
        Ok(pb::GetLeadResponse { lead: Some(encode_lead(lead)) })
    }

    pub(crate) async fn list_leads(
        &self,
        c: Caller,
        req: pb::ListLeadsRequest,
    ) -> Result<pb::ListLeadsResponse, ApiError> {
        let mut v = Violations::new();
        v.optional_id("account_id", &req.account_id);
        v.finish()?;
        let query = format!("leads|{}|{}", c.tenant, req.account_id);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let account = (!req.account_id.is_empty()).then_some(req.account_id.as_str());
        let rows = store::list(&self.db, &c.tenant, account, p.after.as_deref(), p.size + 1).await?;
        let (rows, next_page_token) = page_of(rows, &query, &p, |l| l.lead_id.clone());
        Ok(pb::ListLeadsResponse { leads: rows.into_iter().map(encode_lead).collect(), next_page_token })
    }
}
