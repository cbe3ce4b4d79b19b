//! CRM exports as the import's records: a Salesforce lead export (Data Loader
//! API names) or a HubSpot contact export (its standard column names), each
//! row a lead with its account (made from the company name) and the stage
//! history the export holds. Picklist values map to Qualify's sources and
//! stages through built-in defaults for the standard values and an optional
//! mapping file (YAML: `sources:` and `stages:`, CRM value → Qualify name)
//! for a CRM's own.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::ValueEnum;
use qualify_domain::{LeadSource, LeadStage};
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as sc;
use serde::Deserialize;

use crate::import::Record;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The neutral JSONL (one account, lead or opportunity a line).
    Jsonl,
    /// A Salesforce lead export: Id, Company, LeadSource, Status, CreatedDate, OwnerId,
    /// ConvertedDate, LastModifiedDate.
    SalesforceLeads,
    /// A HubSpot contact export: Record ID, Company Name, Original Source, Lifecycle Stage,
    /// Create Date, Contact owner, and the "Became a … Date" columns of each lifecycle stage.
    HubspotContacts,
}

/// CRM values → Qualify names, over the built-in defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Lead source values → `inbound`, `outbound`, `plg`, `event`, `referral`, `partner`.
    #[serde(default)]
    sources: BTreeMap<String, String>,
    /// Status or lifecycle values → `new`, `mql`, `sal`, `sql`, `disqualified`, `nurture`, ….
    #[serde(default)]
    stages: BTreeMap<String, String>,
}

/// Salesforce's and HubSpot's standard picklist values, compared case-insensitively.
const DEFAULT_SOURCES: &[(&str, &str)] = &[
    ("web", "inbound"),
    ("phone inquiry", "inbound"),
    ("advertisement", "inbound"),
    ("purchased list", "outbound"),
    ("partner referral", "partner"),
    ("employee referral", "referral"),
    ("external referral", "referral"),
    ("word of mouth", "referral"),
    ("trade show", "event"),
    ("seminar - internal", "event"),
    ("seminar - partner", "partner"),
    ("organic search", "inbound"),
    ("organic_search", "inbound"),
    ("paid search", "inbound"),
    ("paid_search", "inbound"),
    ("direct traffic", "inbound"),
    ("direct_traffic", "inbound"),
    ("social media", "inbound"),
    ("social_media", "inbound"),
    ("paid social", "inbound"),
    ("paid_social", "inbound"),
    ("email marketing", "inbound"),
    ("email_marketing", "inbound"),
    ("other campaigns", "inbound"),
    ("other_campaigns", "inbound"),
    ("referrals", "referral"),
    ("offline sources", "event"),
    ("offline", "event"),
];

const DEFAULT_STAGES: &[(&str, &str)] = &[
    ("open - not contacted", "new"),
    ("working - contacted", "sal"),
    ("closed - converted", "sql"),
    ("closed - not converted", "disqualified"),
    ("subscriber", "new"),
    ("lead", "new"),
    ("marketingqualifiedlead", "mql"),
    ("marketing qualified lead", "mql"),
    ("salesqualifiedlead", "sql"),
    ("sales qualified lead", "sql"),
    ("opportunity", "sql"),
];

impl Mapping {
    /// Reads a mapping file; every value must name a Qualify source or stage.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let m: Mapping = serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (k, v) in &m.sources {
            anyhow::ensure!(LeadSource::parse(v).is_some(), "{}: sources.{k}: {v:?} is not a source", path.display());
        }
        for (k, v) in &m.stages {
            anyhow::ensure!(LeadStage::parse(v).is_some(), "{}: stages.{k}: {v:?} is not a stage", path.display());
        }
        Ok(m)
    }

    fn lookup<T>(
        own: &BTreeMap<String, String>,
        defaults: &[(&str, &str)],
        value: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let key = value.trim().to_lowercase();
        own.iter()
            .find(|(k, _)| k.trim().to_lowercase() == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
            .and_then(parse)
    }

    fn source(&self, value: &str) -> Result<LeadSource, String> {
        Self::lookup(&self.sources, DEFAULT_SOURCES, value, LeadSource::parse)
            .ok_or_else(|| format!("source {value:?} is not mapped: add it under sources: in --mapping"))
    }

    fn stage(&self, value: &str) -> Result<LeadStage, String> {
        Self::lookup(&self.stages, DEFAULT_STAGES, value, LeadStage::parse)
            .ok_or_else(|| format!("stage {value:?} is not mapped: add it under stages: in --mapping"))
    }
}

/// A CRM date: RFC 3339 (Salesforce's `2026-07-03T09:00:00.000+0000` too), `YYYY-MM-DD HH:MM[:SS]`
/// or `YYYY-MM-DD`, in UTC.
fn date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s).or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// An account id from a company name: lowercase letters, digits and dashes.
fn account_id(company: &str) -> String {
    let slug: String = company
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("acct-{}", slug.chars().take(100).collect::<String>())
}

/// One row's lead, its company and its history: (stage, time) oldest first.
struct Row {
    lead_id: String,
    company: String,
    source: LeadSource,
    owner: String,
    created: DateTime<Utc>,
    history: Vec<(LeadStage, DateTime<Utc>)>,
}

/// The records of `file` in `format` (not JSONL), each with its line (the header is line 1);
/// a row that cannot be read is its line and why.
pub fn records(
    format: Format,
    file: &std::path::Path,
    mapping: &Mapping,
) -> anyhow::Result<Vec<Result<Record, (usize, String)>>> {
    let mut reader = csv::Reader::from_path(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let required: &[&str] = match format {
        Format::SalesforceLeads => &["Id", "Company", "LeadSource", "Status", "CreatedDate"],
        Format::HubspotContacts => &["Record ID", "Company Name", "Original Source", "Lifecycle Stage", "Create Date"],
        Format::Jsonl => anyhow::bail!("JSONL is not a CSV export"),
    };
    if let Some(missing) = required.iter().find(|c| column(c).is_none()) {
        anyhow::bail!("{}: no {missing:?} column: is this a {format:?} export?", file.display());
    }
    let mut out = Vec::new();
    let mut accounts = HashSet::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                out.push(Err((line, e.to_string())));
                continue;
            }
        };
        let get = |name: &str| column(name).and_then(|c| row.get(c)).unwrap_or("").trim().to_string();
        let parsed = match format {
            Format::SalesforceLeads => salesforce(&get, mapping),
            _ => hubspot(&get, &headers, &row, mapping),
        };
        match parsed {
            Err(e) => out.push(Err((line, e))),
            Ok(r) => {
                let account = account_id(&r.company);
                if accounts.insert(account.clone()) {
                    let a = sc::Account {
                        account_id: account.clone(),
                        display_name: r.company.clone(),
                        ..Default::default()
                    };
                    out.push(Ok(Record::Account(line, a)));
                }
                let lead = sc::ImportedLead {
                    lead: Some(sc::Lead {
                        lead_id: r.lead_id,
                        account_id: account,
                        source: r.source.to_wire(),
                        owner_sdr: r.owner,
                        ..Default::default()
                    }),
                    create_time: Some(timestamp(r.created)),
                    stage_changes: r
                        .history
                        .into_iter()
                        .map(|(stage, at)| sc::ImportedStageChange {
                            to_stage: stage.to_wire(),
                            change_time: Some(timestamp(at)),
                            actor: "crm".into(),
                            reason: "imported from the CRM".into(),
                        })
                        .collect(),
                };
                out.push(Ok(Record::Lead(line, lead)));
            }
        }
    }
    Ok(out)
}

/// A Salesforce lead: one move, to its status's stage, when it converted (else when it last
/// changed; the export holds no earlier history).
fn salesforce(get: &dyn Fn(&str) -> String, m: &Mapping) -> Result<Row, String> {
    let created = date(&get("CreatedDate")).ok_or("CreatedDate: not a date")?;
    let stage = m.stage(&get("Status"))?;
    let moved = date(&get("ConvertedDate")).or_else(|| date(&get("LastModifiedDate"))).unwrap_or(created).max(created);
    Ok(Row {
        lead_id: format!("sf-{}", get("Id")),
        company: non_empty(get("Company"), "Company")?,
        source: m.source(&get("LeadSource"))?,
        owner: get("OwnerId"),
        created,
        history: if stage == LeadStage::New { vec![] } else { vec![(stage, moved)] },
    })
}

/// A HubSpot contact: every lifecycle stage it has a "Became a … Date" for, in time order,
/// then its current stage if no date says when it got there.
fn hubspot(
    get: &dyn Fn(&str) -> String,
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
    m: &Mapping,
) -> Result<Row, String> {
    let created = date(&get("Create Date")).ok_or("Create Date: not a date")?;
    let mut history = Vec::new();
    for (c, name) in headers.iter().enumerate() {
        let Some(stage_name) = name.trim().strip_prefix("Became a ").or_else(|| name.trim().strip_prefix("Became an "))
        else {
            continue;
        };
        let Some(stage_name) = stage_name.strip_suffix(" Date") else { continue };
        let Some(at) = row.get(c).and_then(date) else { continue };
        let stage = m.stage(stage_name)?;
        if stage != LeadStage::New {
            history.push((stage, at.max(created)));
        }
    }
    history.sort_by_key(|(_, at)| *at);
    history.dedup_by_key(|(stage, _)| *stage);
    let current = m.stage(&get("Lifecycle Stage"))?;
    if current != LeadStage::New && !history.iter().any(|(s, _)| *s == current) {
        let at = date(&get("Last Modified Date")).unwrap_or(created).max(history.last().map_or(created, |h| h.1));
        history.push((current, at));
    }
    Ok(Row {
        lead_id: format!("hs-{}", get("Record ID")),
        company: non_empty(get("Company Name"), "Company Name")?,
        source: m.source(&get("Original Source"))?,
        owner: get("Contact owner"),
        created,
        history,
    })
}

fn non_empty(v: String, column: &str) -> Result<String, String> {
    if v.is_empty() { Err(format!("{column}: is empty")) } else { Ok(v) }
}
