//! HubSpot exports (standard column names): contacts, and deals with their
//! activities. A deal's lead is the first of its associated contacts
//! (`Associated Contact IDs`, semicolon-separated) that is in the contact
//! file; its stage history is its `Date entered "<stage>"` columns, each change
//! by the deal's owner (the export says no more); an activity belongs to each
//! deal it is associated with (`Associated Deal IDs`, else `Associated Deal`
//! by id or name), others are left out.

use std::collections::{HashMap, HashSet};

use qualify_domain::LeadStage;

use super::deal::{ActivityColumns, Attached, Change, Deal};
use super::{Export, Failure, LeadRow, Mapping, Row, Table, date, file, money, non_empty, required_date};
use crate::import::Loc;

/// Columns a contact export must have.
pub(super) const CONTACT_COLUMNS: &[&str] =
    &["Record ID", "Company Name", "Original Source", "Lifecycle Stage", "Create Date"];

const DEAL_COLUMNS: &[&str] =
    &["Record ID", "Deal Stage", "Amount", "Create Date", "Close Date", "Associated Contact IDs"];

/// Qualify's id of a deal: this prefix and the CRM's id.
const DEAL_PREFIX: &str = "hs-deal-";

const ACTIVITY: ActivityColumns = ActivityColumns {
    prefix: "hs-",
    id: &["Activity ID", "Record ID"],
    kind: &["Activity type"],
    at: &["Activity date"],
    note: &["Subject", "Title", "Body"],
    by: &["Activity assigned to", "Created by"],
};

/// A HubSpot contact: every lifecycle stage it has a "Became a … Date" for, in time order,
/// then its current stage if no date says when it got there.
pub(super) fn lead(row: &Row, m: &Mapping) -> Result<LeadRow, String> {
    let created = required_date(row, "Create Date")?;
    let mut history = Vec::new();
    for (name, cell) in row.cells() {
        let Some(stage_name) = name.strip_prefix("Became a ").or_else(|| name.strip_prefix("Became an ")) else {
            continue;
        };
        let Some(stage_name) = stage_name.strip_suffix(" Date") else { continue };
        let Some(at) = date(cell) else { continue };
        let stage = m.stage(stage_name)?;
        if stage != LeadStage::New {
            history.push((stage, at.max(created)));
        }
    }
    history.sort_by_key(|(_, at)| *at);
    history.dedup_by_key(|(stage, _)| *stage);
    let current = m.stage(&row.get("Lifecycle Stage"))?;
    if current != LeadStage::New && !history.iter().any(|(s, _)| *s == current) {
        let at = date(&row.get("Last Modified Date")).unwrap_or(created).max(history.last().map_or(created, |h| h.1));
        history.push((current, at));
    }
    Ok(LeadRow {
        lead_id: format!("hs-{}", row.get("Record ID")),
        company: non_empty(row.get("Company Name"), "Company Name")?,
        source: m.source(&row.get("Original Source"))?,
        owner: row.get("Contact owner"),
        created,
        history,
    })
}

/// The deals of the deal file, each joined to its contact, with the activities of the
/// activity file; a row that cannot be read is its failure.
pub(super) fn deals(contacts: &Table, export: &Export, m: &Mapping) -> anyhow::Result<Vec<Result<Deal, Failure>>> {
    let Some(path) = export.deals else { return Ok(vec![]) };
    anyhow::ensure!(
        export.history.is_none(),
        "a HubSpot deal export holds its own stage history: no --opportunity-history"
    );
    let known: HashSet<String> = contacts.rows().filter_map(|(_, r)| r.ok().map(|r| r.get("Record ID"))).collect();
    let table = Table::read(path, file::DEALS, DEAL_COLUMNS, "a HubSpot deal export")?;
    // Deal id or name → deal id (a name only when one deal has it).
    let mut deal_ids: HashMap<String, Option<String>> = HashMap::new();
    for (_, row) in table.rows() {
        let Ok(row) = row else { continue };
        let id = row.get("Record ID");
        deal_ids.entry(row.get("Deal Name")).and_modify(|v| *v = None).or_insert_with(|| Some(id.clone()));
        deal_ids.insert(id.clone(), Some(id));
    }
    let mut attached = Attached::new(DEAL_PREFIX);
    let mut broken = Vec::new();
    for (n, path) in export.activities.iter().enumerate() {
        let activities = Table::read(path, file::ACTIVITIES + n, ACTIVITY.kind, "a HubSpot activity export")?;
        for (at, row) in activities.readable(&mut broken) {
            let named = row.first(&["Associated Deal IDs", "Associated Deal"]);
            let deals: HashSet<&String> = named.split(';').filter_map(|d| deal_ids.get(d.trim())?.as_ref()).collect();
            for deal in deals {
                attached.activity(deal, ACTIVITY.read(&row, m).map_err(|e| (at, e)));
            }
        }
    }
    let mut out: Vec<_> = broken.into_iter().map(Err).collect();
    for (at, row) in table.rows() {
        let id = row.as_ref().map(|r| r.get("Record ID")).unwrap_or_default();
        let d = row.and_then(|row| {
            let associated = row.get("Associated Contact IDs");
            let contact = associated.split(';').map(str::trim).find(|c| known.contains(*c)).ok_or_else(|| {
                format!(
                    "none of its associated contacts ({associated:?}) is in {}: a deal comes in with its lead",
                    contacts.name()
                )
            })?;
            deal(&row, m, at, format!("hs-{contact}"))
        });
        out.extend(attached.deal(&id, at, d));
    }
    Ok(out)
}

/// One deal row with its `Date entered` history; closed as its stage's kind says.
fn deal(row: &Row, m: &Mapping, at: Loc, lead_id: String) -> Result<Deal, String> {
    let created = required_date(row, "Create Date")?;
    let owner = row.get("Deal owner");
    let mut history = Vec::new();
    for (name, cell) in row.cells() {
        let Some(stage) = name.strip_prefix("Date entered \"").and_then(|s| s.strip_suffix('"')) else { continue };
        if let Some(entered) = date(cell) {
            history.push(Change {
                kind: m.opportunity_stage(stage)?,
                stage: stage.to_string(),
                at: entered,
                by: owner.clone(),
            });
        }
    }
    let stage = Change {
        kind: m.opportunity_stage(&row.get("Deal Stage"))?,
        stage: row.get("Deal Stage"),
        at: date(&row.get("Last Modified Date")).unwrap_or(created),
        by: owner.clone(),
    };
    Ok(Deal {
        at,
        id: format!("{DEAL_PREFIX}{}", row.get("Record ID")),
        lead_id,
        amount: money(&row.get("Amount"), &row.first(&["Currency", "Deal Currency Code"]))?,
        created,
        close_date: required_date(row, "Close Date")?,
        submitted_by: row.get("Created by"),
        closed: stage.kind.closed(),
        owner,
        stage,
        loss_reason: row.get("Closed Lost Reason"),
        history,
        activities: vec![],
        failures: vec![],
    })
}
