//! CRM exports as the import's records. A Salesforce export (Data Loader API
//! names) or a HubSpot export (its standard column names) is a lead or contact
//! file, each row a lead with its account (made from the company name) and the
//! stage history the export holds, and optionally the deals: Salesforce's
//! Opportunity, OpportunityHistory and Task/Event files, or HubSpot's deal and
//! activity files, each deal an opportunity of its converted lead with its
//! submission, the gate's decision read from its stage history, its activities
//! and its close. Picklist values map to Qualify's through built-in defaults
//! for the standard values and an optional mapping file (YAML, CRM value →
//! Qualify name) for a CRM's own.

mod deal;
mod hubspot;
mod salesforce;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::ValueEnum;
use qualify_domain::{ActivityType, LeadSource, LeadStage, RejectionReason, Segment};
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as sc;
use serde::Deserialize;

use crate::import::{Loc, Record};
pub use deal::StageKind;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The neutral JSONL (one account, lead or opportunity a line).
    Jsonl,
    /// A Salesforce export: the Lead file (Id, Company, LeadSource, Status, CreatedDate,
    /// OwnerId, ConvertedDate, LastModifiedDate; IsConverted and ConvertedOpportunityId to
    /// join deals), and with --opportunities its Opportunity, OpportunityHistory and
    /// Task/Event files.
    #[value(alias = "salesforce-leads")]
    Salesforce,
    /// A HubSpot export: the contact file (Record ID, Company Name, Original Source, Lifecycle
    /// Stage, Create Date, Contact owner, the "Became a … Date" columns), and with --deals
    /// its deal and activity files.
    #[value(alias = "hubspot-contacts")]
    Hubspot,
}

/// The files of one CRM export. Their failures name them by [`Loc::file`]: 0 the leads,
/// 1 the deals, 2 the deals' stage history, 3 and on the activity files in order.
pub struct Export<'a> {
    /// Leads (Salesforce) or contacts (HubSpot).
    pub leads: &'a Path,
    /// Opportunities (Salesforce) or deals (HubSpot).
    pub deals: Option<&'a Path>,
    /// Salesforce's OpportunityHistory.
    pub history: Option<&'a Path>,
    /// Salesforce's Task and Event files, or HubSpot's activity export.
    pub activities: &'a [PathBuf],
}

/// [`Loc::file`] of each of an [`Export`]'s files.
pub mod file {
    /// The leads or contacts.
    pub const LEADS: usize = 0;
    /// The opportunities or deals.
    pub const DEALS: usize = 1;
    /// The opportunity history.
    pub const HISTORY: usize = 2;
    /// The first activity file.
    pub const ACTIVITIES: usize = 3;
}

impl Export<'_> {
    /// Every file by its [`Loc::file`] (an absent one as an empty path).
    pub fn files(&self) -> Vec<PathBuf> {
        let none = PathBuf::new;
        [Some(self.leads.to_path_buf()), self.deals.map(Path::to_path_buf), self.history.map(Path::to_path_buf)]
            .into_iter()
            .map(|p| p.unwrap_or_else(none))
            .chain(self.activities.iter().cloned())
            .collect()
    }
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
    /// Opportunity or deal stages → `submitted`, `accepted`, `rejected`, `won`, `lost`.
    #[serde(default)]
    opportunity_stages: BTreeMap<String, String>,
    /// Loss or rejection reasons → `no_budget`, `no_authority`, `no_need`, `no_timeline`,
    /// `no_next_step`, `not_icp`, `bad_contact_data`, `duplicate`, `competitor_locked_in`,
    /// `other`.
    #[serde(default)]
    rejection_reasons: BTreeMap<String, String>,
    /// Activity types → `call`, `meeting`, `email`, `demo`, `proposal`, or `skip`.
    #[serde(default)]
    activity_types: BTreeMap<String, String>,
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

/// Salesforce's standard opportunity stages and HubSpot's default sales pipeline (internal
/// names and labels). The early stages are before the gate: an SDR's deal awaiting an AE.
const DEFAULT_OPPORTUNITY_STAGES: &[(&str, &str)] = &[
    ("prospecting", "submitted"),
    ("qualification", "submitted"),
    ("needs analysis", "accepted"),
    ("value proposition", "accepted"),
    ("id. decision makers", "accepted"),
    ("perception analysis", "accepted"),
    ("proposal/price quote", "accepted"),
    ("negotiation/review", "accepted"),
    ("closed won", "won"),
    ("closed lost", "lost"),
    ("appointmentscheduled", "submitted"),
    ("appointment scheduled", "submitted"),
    ("qualifiedtobuy", "accepted"),
    ("qualified to buy", "accepted"),
    ("presentationscheduled", "accepted"),
    ("presentation scheduled", "accepted"),
    ("decisionmakerboughtin", "accepted"),
    ("decision maker bought-in", "accepted"),
    ("contractsent", "accepted"),
    ("contract sent", "accepted"),
    ("closedwon", "won"),
    ("closedlost", "lost"),
];

/// Common loss reasons that are not Qualify's own names (those map as they are, spaces or
/// dashes for underscores: "No Budget", "not-icp").
const DEFAULT_REJECTION_REASONS: &[(&str, &str)] = &[
    ("budget", "no_budget"),
    ("no decision maker", "no_authority"),
    ("no interest", "no_need"),
    ("timing", "no_timeline"),
    ("not a fit", "not_icp"),
    ("bad fit", "not_icp"),
    ("competitor", "competitor_locked_in"),
    ("lost to competitor", "competitor_locked_in"),
];

/// Salesforce's Task/Event Type and subtype values and HubSpot's activity types. Notes,
/// to-dos and social touches are no conversation with the buyer: skipped.
const DEFAULT_ACTIVITY_TYPES: &[(&str, &str)] = &[
    ("call", "call"),
    ("email", "email"),
    ("listemail", "email"),
    ("list email", "email"),
    ("incoming_email", "email"),
    ("forwarded_email", "email"),
    ("send letter", "email"),
    ("meeting", "meeting"),
    ("event", "meeting"),
    ("demo", "demo"),
    ("send quote", "proposal"),
    ("proposal", "proposal"),
    ("other", "skip"),
    ("task", "skip"),
    ("todo", "skip"),
    ("note", "skip"),
    ("cadence", "skip"),
    ("linkedin", "skip"),
    ("linkedin_message", "skip"),
    ("sms", "skip"),
    ("whats_app", "skip"),
    ("postal_mail", "skip"),
];

/// `no-budget`, `No Budget` → `no_budget`.
fn snake(s: &str) -> String {
    s.trim().to_lowercase().replace([' ', '-'], "_")
}

fn rejection_reason(s: &str) -> Option<RejectionReason> {
    RejectionReason::parse(&snake(s))
}

/// An activity type, `None` for `skip`.
fn activity_type(s: &str) -> Option<Option<ActivityType>> {
    if s.trim() == "skip" { Some(None) } else { ActivityType::parse(s.trim()).map(Some) }
}

impl Mapping {
    /// Reads a mapping file; every value must name a Qualify value of its section.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let m: Mapping = serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let check = |section: &str, own: &BTreeMap<String, String>, valid: &dyn Fn(&str) -> bool, what: &str| match own
            .iter()
            .find(|(_, v)| !valid(v))
        {
            Some((k, v)) => anyhow::bail!("{}: {section}.{k}: {v:?} is not {what}", path.display()),
            None => Ok(()),
        };
        check("sources", &m.sources, &|v| LeadSource::parse(v).is_some(), "a source")?;
        check("stages", &m.stages, &|v| LeadStage::parse(v).is_some(), "a stage")?;
        check(
            "opportunity_stages",
            &m.opportunity_stages,
            &|v| StageKind::parse(v).is_some(),
            "submitted, accepted, rejected, won or lost",
        )?;
        check("rejection_reasons", &m.rejection_reasons, &|v| rejection_reason(v).is_some(), "a rejection reason")?;
        check(
            "activity_types",
            &m.activity_types,
            &|v| activity_type(v).is_some(),
            "call, meeting, email, demo, proposal or skip",
        )?;
        Ok(m)
    }

    /// `value` through the file's own section, then the defaults; compared case-insensitively.
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

    /// Why `value` did not map: the line's failure.
    fn unmapped(what: &str, value: &str, section: &str) -> String {
        format!("{what} {value:?} is not mapped: add it under {section}: in --mapping")
    }

    fn source(&self, value: &str) -> Result<LeadSource, String> {
        Self::lookup(&self.sources, DEFAULT_SOURCES, value, LeadSource::parse)
            .ok_or_else(|| Self::unmapped("source", value, "sources"))
    }

    fn stage(&self, value: &str) -> Result<LeadStage, String> {
        Self::lookup(&self.stages, DEFAULT_STAGES, value, LeadStage::parse)
            .ok_or_else(|| Self::unmapped("stage", value, "stages"))
    }

    /// A deal stage. HubSpot labels a stage with its pipeline (`Contract Sent (Sales
    /// Pipeline)`): that label maps first, then the stage's own name.
    fn opportunity_stage(&self, value: &str) -> Result<StageKind, String> {
        let own = value.trim().strip_suffix(')').and_then(|v| v.rsplit_once(" (")).map(|(stage, _)| stage);
        [Some(value), own]
            .into_iter()
            .flatten()
            .find_map(|v| Self::lookup(&self.opportunity_stages, DEFAULT_OPPORTUNITY_STAGES, v, StageKind::parse))
            .ok_or_else(|| Self::unmapped("opportunity stage", value, "opportunity_stages"))
    }

    /// A loss reason as a rejection reason; `None` when unmapped (free text: the caller keeps
    /// it as a note under `other`).
    fn rejection_reason(&self, value: &str) -> Option<RejectionReason> {
        Self::lookup(&self.rejection_reasons, DEFAULT_REJECTION_REASONS, value, rejection_reason)
            .or_else(|| rejection_reason(value))
    }

    /// An activity type; `None` for one that is skipped.
    fn activity_type(&self, value: &str) -> Result<Option<ActivityType>, String> {
        Self::lookup(&self.activity_types, DEFAULT_ACTIVITY_TYPES, value, activity_type)
            .ok_or_else(|| Self::unmapped("activity type", value, "activity_types"))
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

/// The date in `column` of `row`, required.
fn required_date(row: &Row, column: &str) -> Result<DateTime<Utc>, String> {
    date(&row.get(column)).ok_or_else(|| format!("{column}: {:?} is not a date", row.get(column)))
}

/// A CRM checkbox: `true`/`false` (Data Loader), `1`/`0`, `yes`/`no`.
fn flag(s: &str) -> bool {
    matches!(s.trim().to_lowercase().as_str(), "true" | "1" | "yes")
}

/// A plain decimal amount (`48000`, `48000.00`) in `currency`'s minor units; must be positive.
fn money(amount: &str, currency: &str) -> Result<cpb::Money, String> {
    let currency = if currency.trim().is_empty() { "USD".to_string() } else { currency.trim().to_uppercase() };
    let digits = qualify_domain::currency::minor_digits(&currency) as usize;
    let (units, fraction) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let extra = fraction.get(digits..).unwrap_or("");
    if units.is_empty() || !all_digits(units) || !all_digits(fraction) || extra.bytes().any(|b| b != b'0') {
        return Err(format!(
            "Amount: {amount:?} is not a plain amount of {currency} (digits, a point, at most {digits} decimals)"
        ));
    }
    let minor = format!("{units}{:0<digits$}", &fraction[..fraction.len().min(digits)]);
    match minor.parse::<i64>() {
        Ok(n) if n > 0 => Ok(cpb::Money { amount_minor: n, currency_code: currency }),
        _ => Err(format!("Amount: {amount:?} must be positive (an opportunity needs its amount)")),
    }
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

fn non_empty(v: String, column: &str) -> Result<String, String> {
    if v.is_empty() { Err(format!("{column}: is empty")) } else { Ok(v) }
}

/// A CSV export read whole: its header and its rows, each with its line.
struct Table {
    path: PathBuf,
    file: usize,
    headers: csv::StringRecord,
    rows: Vec<(usize, Result<csv::StringRecord, String>)>,
}

impl Table {
    /// Reads `path` (file number `file`), which must have the `required` columns of `what`.
    fn read(path: &Path, file: usize, required: &[&str], what: &str) -> anyhow::Result<Table> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let headers: csv::StringRecord =
            reader.headers().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?.iter().map(str::trim).collect();
        if let Some(missing) = required.iter().find(|c| !headers.iter().any(|h| h == **c)) {
            anyhow::bail!("{}: no {missing:?} column: is this {what}?", path.display());
        }
        let mut rows = Vec::new();
        let mut last = 1;
        for row in reader.records() {
            // The line a row starts on (a quoted cell may span lines); the header is line 1.
            let line = match &row {
                Ok(r) => r.position().map_or(last + 1, |p| p.line() as usize),
                Err(e) => e.position().map_or(last + 1, |p| p.line() as usize),
            };
            last = line;
            rows.push((line, row.map_err(|e| e.to_string())));
        }
        Ok(Table { path: path.to_path_buf(), file, headers, rows })
    }

    fn has(&self, column: &str) -> bool {
        self.headers.iter().any(|h| h == column)
    }

    /// The file's name, for messages.
    fn name(&self) -> String {
        self.path.file_name().map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// Every row with where it is.
    fn rows(&self) -> impl Iterator<Item = (Loc, Result<Row<'_>, String>)> {
        self.rows.iter().map(|(line, r)| {
            let at = Loc { file: self.file, line: *line };
            (at, r.as_ref().map(|record| Row { headers: &self.headers, record }).map_err(Clone::clone))
        })
    }

    /// The rows that could be read; the others go to `broken`.
    fn readable(&self, broken: &mut Vec<Failure>) -> Vec<(Loc, Row<'_>)> {
        let mut ok = Vec::new();
        for (at, row) in self.rows() {
            match row {
                Ok(r) => ok.push((at, r)),
                Err(e) => broken.push((at, e)),
            }
        }
        ok
    }
}

/// One row of a [`Table`].
struct Row<'a> {
    headers: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    /// The trimmed cell of `column`; empty when there is no such column.
    fn get(&self, column: &str) -> String {
        self.headers.iter().position(|h| h == column).and_then(|c| self.record.get(c)).unwrap_or("").trim().to_string()
    }

    /// The first non-empty cell of `columns`.
    fn first(&self, columns: &[&str]) -> String {
        columns.iter().map(|c| self.get(c)).find(|v| !v.is_empty()).unwrap_or_default()
    }

    /// Every (column, cell).
    fn cells(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().zip(self.record.iter())
    }
}

/// One lead row: its lead, its company and its history, (stage, time) oldest first.
struct LeadRow {
    lead_id: String,
    company: String,
    source: LeadSource,
    owner: String,
    created: DateTime<Utc>,
    history: Vec<(LeadStage, DateTime<Utc>)>,
}

/// Where a row that could not be read is, and why.
pub type Failure = (Loc, String);

/// A record, or the failure of its row.
pub type Item = Result<Record, Failure>;

/// The records of `export` in `format` (not JSONL): accounts and leads in the lead file's
/// order, then the deals as opportunities of the segment `segment`, in the deal file's order.
/// Activities later than `now` have not happened yet and are left out.
pub fn records(
    format: Format,
    export: &Export,
    mapping: &Mapping,
    segment: Segment,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Item>> {
    let leads = match format {
        Format::Salesforce => {
            Table::read(export.leads, file::LEADS, salesforce::LEAD_COLUMNS, "a Salesforce Lead export")?
        }
        Format::Hubspot => {
            Table::read(export.leads, file::LEADS, hubspot::CONTACT_COLUMNS, "a HubSpot contact export")?
        }
        Format::Jsonl => anyhow::bail!("JSONL is not a CSV export"),
    };
    let mut out = lead_records(format, &leads, mapping);
    if export.deals.is_none() {
        return Ok(out);
    }
    let deals = match format {
        Format::Salesforce => salesforce::deals(&leads, export, mapping)?,
        _ => hubspot::deals(&leads, export, mapping)?,
    };
    for d in deals {
        match d {
            Err(failure) => out.push(Err(failure)),
            Ok(d) => out.extend(d.into_records(mapping, segment, now)),
        }
    }
    Ok(out)
}

/// The accounts (each once) and leads of a lead file.
fn lead_records(format: Format, table: &Table, mapping: &Mapping) -> Vec<Item> {
    let mut out = Vec::new();
    let mut accounts = HashSet::new();
    for (at, row) in table.rows() {
        let parsed = row.and_then(|row| match format {
            Format::Salesforce => salesforce::lead(&row, mapping),
            _ => hubspot::lead(&row, mapping),
        });
        let r = match parsed {
            Err(e) => {
                out.push(Err((at, e)));
                continue;
            }
            Ok(r) => r,
        };
        let account = account_id(&r.company);
        if accounts.insert(account.clone()) {
            let a = sc::Account { account_id: account.clone(), display_name: r.company.clone(), ..Default::default() };
            out.push(Ok(Record::Account(at, a)));
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
        out.push(Ok(Record::Lead(at, lead)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_in_the_currency_minor_units() {
        let m = |a: &str, c: &str| money(a, c).map(|m| (m.amount_minor, m.currency_code));
        assert_eq!(m("48000", ""), Ok((4_800_000, "USD".into())));
        assert_eq!(m("48000.5", "eur"), Ok((4_800_050, "EUR".into())));
        assert_eq!(m("1500000.00", "JPY"), Ok((1_500_000, "JPY".into())));
        assert!(m("1500000.50", "JPY").is_err(), "a yen has no minor unit");
        assert!(m("", "USD").is_err());
        assert!(m("0", "USD").unwrap_err().contains("must be positive"));
        assert!(m("48,000", "USD").is_err());
    }

    #[test]
    fn deal_stages_map_with_or_without_their_pipeline() {
        let m: Mapping =
            serde_yaml_ng::from_str("opportunity_stages:\n  Demo Booked (Partner Pipeline): accepted\n").unwrap();
        assert_eq!(m.opportunity_stage("Closed Won"), Ok(StageKind::Won));
        assert_eq!(m.opportunity_stage("Appointment Scheduled (Sales Pipeline)"), Ok(StageKind::Submitted));
        assert_eq!(m.opportunity_stage("Demo Booked (Partner Pipeline)"), Ok(StageKind::Accepted));
        let e = m.opportunity_stage("Demo Booked (Sales Pipeline)").unwrap_err();
        assert!(e.contains("\"Demo Booked (Sales Pipeline)\" is not mapped") && e.contains("opportunity_stages:"));
        assert_eq!(m.rejection_reason("No Budget"), Some(RejectionReason::NoBudget));
        assert_eq!(m.rejection_reason("Lost to Competitor"), Some(RejectionReason::CompetitorLockedIn));
        assert_eq!(m.rejection_reason("they went quiet"), None);
        assert_eq!(m.activity_type("CALL"), Ok(Some(ActivityType::Call)));
        assert_eq!(m.activity_type("NOTE"), Ok(None));
        assert!(m.activity_type("Webinar").is_err());
    }
}
