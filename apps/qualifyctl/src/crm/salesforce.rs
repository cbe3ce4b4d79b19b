//! Salesforce Data Loader exports (API names as column names): Lead, and a
//! deal's Opportunity, OpportunityHistory and Task/Event files. A deal joins
//! the lead converted into it (`Lead.ConvertedOpportunityId`); the history's
//! rows are its stage changes, each by its `CreatedById`; a task or event
//! belongs to the deal its `WhatId` names (others are not about a deal in the
//! export and are left out).

use std::collections::{HashMap, HashSet};

use qualify_domain::LeadStage;

use crate::import::Loc;

use super::deal::{ActivityColumns, Attached, Change, Deal};
use super::{Export, Failure, LeadRow, Mapping, Row, Table, date, file, flag, money, non_empty, required_date};

/// Columns a Lead export must have.
pub(super) const LEAD_COLUMNS: &[&str] = &["Id", "Company", "LeadSource", "Status", "CreatedDate"];

const OPPORTUNITY_COLUMNS: &[&str] = &["Id", "StageName", "Amount", "CloseDate", "CreatedDate"];

const HISTORY_COLUMNS: &[&str] = &["OpportunityId", "StageName", "CreatedDate"];

/// Task and Event: `Type` when filled, else the subtype (`Call`, `Email`, `Task`, `Event`…),
/// else the `Subject` picklist value; `ActivityDateTime` (events), else `ActivityDate`, else
/// `CreatedDate`.
/// Qualify's id of a deal: this prefix and the CRM's id.
const DEAL_PREFIX: &str = "sf-";

const ACTIVITY: ActivityColumns = ActivityColumns {
    prefix: "sf-",
    id: &["Id"],
    kind: &["Type", "TaskSubtype", "EventSubtype", "Subject"],
    at: &["ActivityDateTime", "ActivityDate", "CreatedDate"],
    note: &["Subject"],
    by: &["OwnerId", "CreatedById"],
};

/// A Salesforce lead: one move, to its status's stage, when it converted (else when it last
/// changed; the export holds no earlier history).
pub(super) fn lead(row: &Row, m: &Mapping) -> Result<LeadRow, String> {
    let created = required_date(row, "CreatedDate")?;
    let stage = m.stage(&row.get("Status"))?;
    let moved =
        date(&row.get("ConvertedDate")).or_else(|| date(&row.get("LastModifiedDate"))).unwrap_or(created).max(created);
    Ok(LeadRow {
        lead_id: format!("sf-{}", row.get("Id")),
        company: non_empty(row.get("Company"), "Company")?,
        source: m.source(&row.get("LeadSource"))?,
        owner: row.get("OwnerId"),
        created,
        history: if stage == LeadStage::New { vec![] } else { vec![(stage, moved)] },
    })
}

/// The deals of the Opportunity file, each joined to its converted lead, with the history
/// and activities of the other files; a row that cannot be read is its failure.
pub(super) fn deals(leads: &Table, export: &Export, m: &Mapping) -> anyhow::Result<Vec<Result<Deal, Failure>>> {
    let Some(path) = export.deals else { return Ok(vec![]) };
    anyhow::ensure!(
        leads.has("ConvertedOpportunityId"),
        "{}: no \"ConvertedOpportunityId\" column: export it (and IsConverted) to join opportunities to their leads",
        leads.path.display()
    );
    // Opportunity id → its converted lead (the first, in file order).
    let mut converted: HashMap<String, String> = HashMap::new();
    for (_, row) in leads.rows() {
        let Ok(row) = row else { continue };
        let opportunity = row.get("ConvertedOpportunityId");
        if !opportunity.is_empty() && (!leads.has("IsConverted") || flag(&row.get("IsConverted"))) {
            converted.entry(opportunity).or_insert_with(|| format!("sf-{}", row.get("Id")));
        }
    }
    let table = Table::read(path, file::DEALS, OPPORTUNITY_COLUMNS, "a Salesforce Opportunity export")?;
    let ids: HashSet<String> = table.rows().filter_map(|(_, r)| r.ok().map(|r| r.get("Id"))).collect();
    let mut attached = Attached::new(DEAL_PREFIX);
    // Rows of the other files too broken to say which deal they are about fail on their own.
    let mut broken = Vec::new();
    if let Some(path) = export.history {
        let history = Table::read(path, file::HISTORY, HISTORY_COLUMNS, "a Salesforce OpportunityHistory export")?;
        for (at, row) in history.readable(&mut broken) {
            let deal = row.get("OpportunityId");
            if ids.contains(&deal) {
                attached.change(&deal, change(&row, m).map_err(|e| (at, e)));
            }
        }
    }
    for (n, path) in export.activities.iter().enumerate() {
        let tasks = Table::read(path, file::ACTIVITIES + n, &["WhatId"], "a Salesforce Task or Event export")?;
        for (at, row) in tasks.readable(&mut broken) {
            let deal = row.get("WhatId");
            if ids.contains(&deal) {
                attached.activity(&deal, ACTIVITY.read(&row, m).map_err(|e| (at, e)));
            }
        }
    }
    let mut out: Vec<_> = broken.into_iter().map(Err).collect();
    for (at, row) in table.rows() {
        let id = row.as_ref().map(|r| r.get("Id")).unwrap_or_default();
        let d = row.and_then(|row| {
            let lead_id = converted.get(&id).cloned().ok_or_else(|| {
                format!(
                    "no lead in {} was converted into opportunity {id} (ConvertedOpportunityId): an opportunity \
                     comes in with its lead; convert one in Salesforce, or import the deal as JSONL",
                    leads.name()
                )
            })?;
            deal(&row, m, at, lead_id)
        });
        out.extend(attached.deal(&id, at, d));
    }
    Ok(out)
}

/// One OpportunityHistory row.
fn change(row: &Row, m: &Mapping) -> Result<Change, String> {
    Ok(Change {
        kind: m.opportunity_stage(&row.get("StageName"))?,
        stage: row.get("StageName"),
        at: required_date(row, "CreatedDate")?,
        by: row.get("CreatedById"),
    })
}

/// One Opportunity row, before its history and activities are attached. Closed as
/// `IsClosed`/`IsWon` say when exported (Salesforce derives them from the stage's settings),
/// else as the stage's kind says.
fn deal(row: &Row, m: &Mapping, at: Loc, lead_id: String) -> Result<Deal, String> {
    let created = required_date(row, "CreatedDate")?;
    let stage = Change {
        kind: m.opportunity_stage(&row.get("StageName"))?,
        stage: row.get("StageName"),
        at: ["LastStageChangeDate", "LastModifiedDate"].iter().find_map(|c| date(&row.get(c))).unwrap_or(created),
        by: row.get("OwnerId"),
    };
    let closed = if row.get("IsClosed").is_empty() {
        stage.kind.closed()
    } else {
        flag(&row.get("IsClosed")).then(|| flag(&row.get("IsWon")))
    };
    Ok(Deal {
        at,
        id: format!("{DEAL_PREFIX}{}", row.get("Id")),
        lead_id,
        amount: money(&row.get("Amount"), &row.get("CurrencyIsoCode"))?,
        created,
        close_date: required_date(row, "CloseDate")?,
        submitted_by: row.first(&["CreatedById", "OwnerId"]),
        owner: row.get("OwnerId"),
        stage,
        closed,
        loss_reason: row.first(&["Loss_Reason__c", "Description"]),
        history: vec![],
        activities: vec![],
        failures: vec![],
    })
}
