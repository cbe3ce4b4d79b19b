//! History from a CRM: leads with the time they were created and their stage
//! changes (time, actor, reason), written as they happened and marked
//! imported. Idempotent by the lead's id: a lead already present is left as it
//! is, so re-running an import changes nothing. The live use cases keep the
//! server's time; only an importer reaches this one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use qualify_domain::{Lead, LeadStage, Role, Segment, StageChange};
use qualify_platform::ApiError;
use qualify_platform::error::FieldViolation;
pub use qualify_platform::import::Outcome;
use sea_orm::ConnectionTrait;

use crate::leads::NewLead;
use crate::store::leads as store;

/// One stage change as the CRM recorded it.
#[derive(Debug, Clone)]
pub struct PastChange {
    /// The stage it moved to.
    pub to: LeadStage,
    /// When.
    pub at: DateTime<Utc>,
    /// Who moved it in the CRM.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// A lead as the CRM holds it, checked on its own.
pub struct PastLead {
    /// The lead (its id is the CRM's).
    pub lead: NewLead,
    /// When the CRM created it.
    pub created_at: DateTime<Utc>,
    /// Its stage changes, oldest first.
    pub changes: Vec<PastChange>,
}

/// What an import wrote, for the events the caller appends in the same transaction.
#[derive(Default)]
pub struct Written {
    /// An outcome per lead, in the batch's order.
    pub outcomes: Vec<Outcome>,
    /// The leads written, each with its account's segment.
    pub leads: Vec<(Lead, Option<Segment>)>,
    /// Their stage changes, oldest first per lead.
    pub changes: Vec<StageChange>,
}

/// Imports `batch` (each lead checked on its own, or why it was rejected) in
/// the caller's transaction: the account (and contact) each lead names must
/// exist; a lead id present before, or earlier in the batch, is unchanged.
pub async fn import_leads(
    txn: &impl ConnectionTrait,
    tenant: &str,
    batch: Vec<Result<PastLead, Vec<FieldViolation>>>,
) -> Result<Written, ApiError> {
    let checked: Vec<&PastLead> = batch.iter().filter_map(|b| b.as_ref().ok()).collect();
    let ids: BTreeSet<&str> = checked.iter().map(|p| p.lead.lead_id.as_str()).collect();
    let accounts: BTreeSet<&str> = checked.iter().map(|p| p.lead.account_id.as_str()).collect();
    let contacts: BTreeSet<&str> = checked.iter().filter_map(|p| p.lead.contact_id.as_deref()).collect();
    let present = store::existing(txn, tenant, &ids).await?;
    let segments = store::account_segments(txn, tenant, &accounts).await?;
    let contact_accounts = store::contact_accounts(txn, tenant, &contacts).await?;

    // Each lead's outcome, with its id when it is to be written.
    let mut outcomes: Vec<(Outcome, Option<String>)> = Vec::with_capacity(batch.len());
    let mut fresh: BTreeMap<String, (Lead, Option<Segment>, Vec<StageChange>)> = BTreeMap::new();
    for item in batch {
        let outcome = match item {
            Err(rejections) => (Outcome::Rejected(rejections), None),
            Ok(p) if present.contains(&p.lead.lead_id) || fresh.contains_key(&p.lead.lead_id) => {
                (Outcome::Unchanged, None)
            }
            Ok(p) => match check_references(&p, &segments, &contact_accounts) {
                Err(rejected) => (rejected, None),
                Ok(segment) => {
                    let (lead, changes) = as_written(p);
                    let id = lead.lead_id.clone();
                    fresh.insert(id.clone(), (lead, segment, changes));
                    (Outcome::Imported, Some(id))
                }
            },
        };
        outcomes.push(outcome);
    }

    let leads: Vec<Lead> = fresh.values().map(|(l, _, _)| l.clone()).collect();
    let inserted = store::insert_new(txn, tenant, &leads).await?;
    let mut written = Written::default();
    for (id, (lead, segment, changes)) in fresh {
        if inserted.contains(&id) {
            written.changes.extend(changes);
            written.leads.push((lead, segment));
        }
    }
    store::record_changes(txn, tenant, &written.changes).await?;
    // A lead another import inserted since the read above is unchanged here.
    written.outcomes = outcomes
        .into_iter()
        .map(|(o, id)| match id {
            Some(id) if !inserted.contains(&id) => Outcome::Unchanged,
            _ => o,
        })
        .collect();
    Ok(written)
}

/// The lead's account exists and its contact, if any, is at that account; its account's segment.
fn check_references(
    p: &PastLead,
    segments: &std::collections::HashMap<String, Option<Segment>>,
    contact_accounts: &std::collections::HashMap<String, String>,
) -> Result<Option<Segment>, Outcome> {
    let Some(segment) = segments.get(&p.lead.account_id) else {
        return Err(Outcome::rejected("lead.account_id", "no such account"));
    };
    if let Some(contact) = &p.lead.contact_id
        && contact_accounts.get(contact) != Some(&p.lead.account_id)
    {
        return Err(Outcome::rejected("lead.contact_id", "no such contact at the lead's account"));
    }
    Ok(*segment)
}

/// The lead as written (at its last change's stage, changed then) and its
/// changes, each from the stage before, by its CRM actor holding the importer role.
fn as_written(p: PastLead) -> (Lead, Vec<StageChange>) {
    let mut stage = LeadStage::New;
    let mut changes = Vec::with_capacity(p.changes.len());
    for c in p.changes {
        changes.push(StageChange {
            lead_id: p.lead.lead_id.clone(),
            from: stage,
            to: c.to,
            actor: c.actor,
            actor_roles: vec![Role::Importer],
            reason: c.reason,
            score: 0,
            scorecard_version: 0,
            changed_at: c.at,
        });
        stage = c.to;
    }
    let lead = Lead {
        lead_id: p.lead.lead_id,
        account_id: p.lead.account_id,
        source: Some(p.lead.source),
        campaign: p.lead.campaign,
        owner_sdr: p.lead.owner_sdr,
        stage,
        contact_id: p.lead.contact_id,
        score: None,
        created_at: p.created_at,
        updated_at: changes.last().map_or(p.created_at, |c| c.changed_at),
        imported: true,
    };
    (lead, changes)
}
