//! Imports on the wire: `ImportLeads` decodes each lead with its history,
//! judges it alone (one bad lead does not sink the batch) and writes the rest
//! with their creation and stage-change events, in event time.

use chrono::{DateTime, Utc};
use qualify_domain::{Caller, LeadStage};
use qualify_platform::error::FieldViolation;
use qualify_platform::validate::{Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations, import};
use qualify_proto::convert::from_timestamp;
use qualify_proto::scoring as pb;
use sea_orm::TransactionTrait;

use super::{ScoringApi, events, leads::decode_new};
use crate::imports::{self, Outcome, PastChange, PastLead};

/// Most leads one call may carry.
pub const MAX_LEADS: usize = 1000;

/// Most stage changes one lead may carry.
const MAX_CHANGES: usize = 100;

/// Who moved a lead when the CRM does not say.
const UNKNOWN_ACTOR: &str = "import";

/// Decodes one lead with its history, or every problem it has.
fn decode(l: &pb::ImportedLead, now: DateTime<Utc>) -> Result<PastLead, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let Some(lead) = l.lead.as_ref() else {
        v.add("lead", "is required");
        return Err(v.into_vec());
    };
    let new = decode_new(&mut v, lead);
    let created = l.create_time.as_ref().and_then(from_timestamp);
    v.check(created.is_some(), "create_time", "is required and must be a valid time");
    v.check(created.is_none_or(|t| t <= now), "create_time", "is in the future");
    v.check(l.stage_changes.len() <= MAX_CHANGES, "stage_changes", "must hold at most 100 changes");
    let mut last = created;
    let mut changes = Vec::with_capacity(l.stage_changes.len());
    for (i, c) in l.stage_changes.iter().enumerate() {
        let to = v.required_enum::<LeadStage>(Item("stage_changes", i, "to_stage"), c.to_stage);
        let at = c.change_time.as_ref().and_then(from_timestamp);
        let field = Item("stage_changes", i, "change_time");
        v.check(at.is_some(), field, "is required and must be a valid time");
        v.check(at.is_none_or(|t| t <= now), field, "is in the future");
        v.check(at.is_none_or(|t| last.is_none_or(|l| t >= l)), field, "is before the creation or the change before");
        v.text(Item("stage_changes", i, "actor"), &c.actor, MAX_TEXT);
        v.text(Item("stage_changes", i, "reason"), &c.reason, MAX_TEXT);
        last = at.or(last);
        if let (Some(to), Some(at)) = (to, at) {
            let actor = if c.actor.is_empty() { UNKNOWN_ACTOR.to_string() } else { c.actor.clone() };
            changes.push(PastChange { to, at, actor, reason: c.reason.clone() });
        }
    }
    match (new, created) {
        (Some(lead), Some(created_at)) if v.is_empty() => Ok(PastLead { lead, created_at, changes }),
        _ => Err(v.into_vec()),
    }
}

fn encode(leads: &[pb::ImportedLead], outcomes: Vec<Outcome>) -> pb::ImportLeadsResponse {
    let ids = leads.iter().map(|l| l.lead.as_ref().map(|l| l.lead_id.clone()).unwrap_or_default());
    let r = import::encode(ids, outcomes);
    pb::ImportLeadsResponse {
        results: r.results,
        imported_count: r.imported,
        unchanged_count: r.unchanged,
        rejected_count: r.rejected,
    }
}

impl ScoringApi {
    pub(crate) async fn import_leads(
        &self,
        c: Caller,
        req: pb::ImportLeadsRequest,
    ) -> Result<pb::ImportLeadsResponse, ApiError> {
        // Permission before anything else: a refused caller learns nothing.
        qualify_domain::permission::import_history(&c)?;
        let mut v = Violations::new();
        v.check(!req.leads.is_empty(), "leads", "must not be empty");
        v.check(req.leads.len() <= MAX_LEADS, "leads", "must hold at most 1000 leads");
        v.finish()?;
        let now = self.clock.now();
        let batch = req.leads.iter().map(|l| decode(l, now)).collect();
        let txn = self.db.begin().await?;
        let written = imports::import_leads(&txn, &c.tenant, batch).await?;
        events::leads_created(&txn, &c.tenant, &written.leads).await?;
        events::stage_changes(&txn, &c.tenant, &written.changes).await?;
        txn.commit().await?;
        self.relay.nudge();
        Ok(encode(&req.leads, written.outcomes))
    }
}
