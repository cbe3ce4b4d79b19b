//! `qualifyctl import`: a CRM's history from a neutral JSONL file, one record a
//! line in proto JSON: `{"account": <qualify.scoring.v1.Account>}`, `{"lead":
//! <qualify.scoring.v1.ImportedLead>}` or `{"opportunity":
//! <qualify.acceptance.v1.ImportedOpportunity>}`. Records are sent in file
//! order (an account before the leads that name it, a lead before its
//! opportunities), leads and opportunities in batches of 1,000 through
//! `ImportLeads` and `ImportOpportunities`; every failure is reported with its
//! line number, and an interrupted import resumes after the last line sent.
//! Re-running a whole file changes nothing. A CRM export (`--format
//! salesforce` or `hubspot`, see [`crate::crm`]) may span several files: each
//! failure names the file and line of its row.

use std::io::BufRead;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qualify_domain::Role;
use qualify_proto::acceptance as acc;
use qualify_proto::common::{self as cpb, ImportOutcome};
use qualify_proto::scoring as sc;
use serde_json::{Value, json};

use crate::commands::{DEV_TENANT, SegmentArg};
use crate::crm;
use crate::rpc::{Clients, req};
use crate::{FileArg, Global, protojson, request_id};

/// Leads per `ImportLeads` call.
const BATCH: usize = 1000;

#[derive(Args)]
#[command(after_help = "Resuming a CRM export: --resume-after-line counts lines of --file (the leads or \
contacts). The deal, history and activity files are read whole every time: an opportunity already \
imported comes back unchanged (the import is idempotent by the CRM's id), so re-running the same \
files after a failure is always safe.")]
pub struct ImportArgs {
    /// The JSONL file, or a CRM export's lead (Salesforce) or contact (HubSpot) file.
    #[arg(long)]
    pub file: FileArg,
    /// Skip the records on lines of --file up to this one (where an interrupted import
    /// stopped). The other files of a CRM export are always read whole (see below).
    #[arg(long, default_value_t = 0)]
    pub resume_after_line: usize,
    /// What the files hold: the neutral JSONL, or a CRM's CSV export.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: crm::Format,
    /// A CSV export's own picklist values, mapped to Qualify's (YAML: `sources:`, `stages:`,
    /// `opportunity_stages:`, `rejection_reasons:`, `activity_types:`).
    #[arg(long)]
    pub mapping: Option<FileArg>,
    /// The deals: Salesforce's Opportunity export, or HubSpot's deal export (--deals).
    #[arg(long, visible_alias = "deals")]
    pub opportunities: Option<FileArg>,
    /// Salesforce's OpportunityHistory export: the deals' stage changes.
    #[arg(long)]
    pub opportunity_history: Option<FileArg>,
    /// The deals' activities: Salesforce's Task and Event exports, or HubSpot's activity
    /// export (repeat for several files).
    #[arg(long)]
    pub activities: Vec<FileArg>,
    /// The segment whose gate policy applies to the imported deals (a CRM has no standard
    /// field for it: import each segment's deals from their own export).
    #[arg(long, value_enum, default_value = "smb")]
    pub segment: SegmentArg,
}

/// Where a record is: a file (0 the --file, others numbered by [`crm::file`]) and a line
/// (the first is 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Loc {
    pub file: usize,
    pub line: usize,
}

impl Loc {
    /// Line `line` of the --file.
    fn primary(line: usize) -> Loc {
        Loc { file: 0, line }
    }
}

/// One record of the files, with where it is.
pub(crate) enum Record {
    Account(Loc, sc::Account),
    Lead(Loc, sc::ImportedLead),
    Opportunity(Loc, Box<acc::ImportedOpportunity>),
}

impl Record {
    fn at(&self) -> Loc {
        match self {
            Record::Account(at, _) | Record::Lead(at, _) | Record::Opportunity(at, _) => *at,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Record::Account(..) => 0,
            Record::Lead(..) => 1,
            Record::Opportunity(..) => 2,
        }
    }
}

/// The record on line `n`.
fn parse(n: Loc, line: &str) -> anyhow::Result<Record> {
    let v: Value = serde_json::from_str(line)?;
    let Value::Object(o) = v else { anyhow::bail!("a record is a JSON object") };
    match o.into_iter().collect::<Vec<_>>().as_slice() {
        [(k, v)] if k == "account" => {
            Ok(Record::Account(n, protojson::from_value(v.clone(), "qualify.scoring.v1.Account")?))
        }
        [(k, v)] if k == "lead" => {
            Ok(Record::Lead(n, protojson::from_value(v.clone(), "qualify.scoring.v1.ImportedLead")?))
        }
        [(k, v)] if k == "opportunity" => {
            Ok(Record::Opportunity(n, protojson::from_value(v.clone(), "qualify.acceptance.v1.ImportedOpportunity")?))
        }
        _ => anyhow::bail!("a record has exactly one key, \"account\", \"lead\" or \"opportunity\""),
    }
}

/// What an import did.
#[derive(Default)]
struct Tally {
    imported: u64,
    unchanged: u64,
    failed: Vec<(Loc, String)>,
}

impl Tally {
    /// Counts a batch's results (`what` of each line); the batch's last line.
    fn count<T>(&mut self, batch: &[(Loc, T)], results: &[cpb::ImportResult], what: &str) -> Option<Loc> {
        for ((n, _), result) in batch.iter().zip(results) {
            match ImportOutcome::try_from(result.outcome) {
                Ok(ImportOutcome::Imported) => self.imported += 1,
                Ok(ImportOutcome::Unchanged) => self.unchanged += 1,
                _ => {
                    let why: Vec<_> =
                        result.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
                    self.failed.push((*n, format!("{what} {}: {}", result.id, why.join("; "))));
                }
            }
        }
        batch.last().map(|(n, _)| *n)
    }
}

pub async fn run(g: &Global, mut c: Clients, args: ImportArgs) -> anyhow::Result<()> {
    let mut records = Vec::new();
    let mut tally = Tally::default();
    let export = crm::Export {
        leads: &args.file,
        deals: args.opportunities.as_deref(),
        history: args.opportunity_history.as_deref(),
        activities: &args.activities,
    };
    check_files(&args)?;
    if args.format == crm::Format::Jsonl {
        let f = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let (n, line) = (n + 1, line?);
            if n <= args.resume_after_line || line.trim().is_empty() {
                continue;
            }
            match parse(Loc::primary(n), &line) {
                Ok(r) => records.push(r),
                Err(e) => tally.failed.push((Loc::primary(n), format!("{e:#}"))),
            }
        }
    } else {
        let mapping = match &args.mapping {
            Some(path) => crm::Mapping::read(path)?,
            None => crm::Mapping::default(),
        };
        let now = qualify_platform::Clock::system().now();
        let skipped = |at: Loc| at.file == 0 && at.line <= args.resume_after_line;
        for r in crm::records(args.format, &export, &mapping, args.segment.domain(), now)? {
            match r {
                Ok(r) if skipped(r.at()) => {}
                Ok(r) => records.push(r),
                Err((at, _)) if skipped(at) => {}
                Err(failure) => tally.failed.push(failure),
            }
        }
    }
    let sync = g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Service)?;
    let importer = g.token_or_dev(DEV_TENANT, "crm-import", Role::Importer)?;
    let pb = ProgressBar::new(records.len() as u64);
    pb.set_style(ProgressStyle::with_template("{spinner} records {bar:40} {pos}/{len} {per_sec} eta {eta}")?);
    let mut leads: Vec<(Loc, sc::ImportedLead)> = Vec::new();
    let mut opportunities: Vec<(Loc, acc::ImportedOpportunity)> = Vec::new();
    // The last line of --file sent: the other files are re-read whole on a resume.
    let mut sent_through = args.resume_after_line;
    let through = |sent: usize, last: Option<Loc>| last.filter(|at| at.file == 0).map_or(sent, |at| at.line);
    let mut records = records.into_iter().peekable();
    while let Some(r) = records.next() {
        let kind = r.kind();
        match r {
            Record::Account(n, account) => {
                let create = sc::CreateAccountRequest { account: Some(account), request_id: request_id() };
                match c.scoring.create_account(req(create, &sync)?).await {
                    Ok(_) => tally.imported += 1,
                    Err(s) if s.code() == tonic::Code::AlreadyExists => tally.unchanged += 1,
                    Err(s) if s.code() == tonic::Code::InvalidArgument => {
                        tally.failed.push((n, crate::rpc::describe_status(&s)));
                    }
                    Err(s) => return Err(stopped(&pb, &args.file, sent_through, s)),
                }
                sent_through = through(sent_through, Some(n));
                pb.inc(1);
            }
            Record::Lead(n, lead) => leads.push((n, lead)),
            Record::Opportunity(n, o) => opportunities.push((n, *o)),
        }
        // A batch goes when full, before a record of another kind (it may depend on this one's)
        // and at the end.
        let next_kind = records.peek().map(Record::kind);
        if !leads.is_empty() && (leads.len() == BATCH || next_kind != Some(kind)) {
            let batch = std::mem::take(&mut leads);
            let request = sc::ImportLeadsRequest { leads: batch.iter().map(|(_, l)| l.clone()).collect() };
            let results = match c.scoring.import_leads(req(request, &importer)?).await {
                Ok(r) => r.into_inner().results,
                Err(s) => return Err(stopped(&pb, &args.file, sent_through, s)),
            };
            sent_through = through(sent_through, tally.count(&batch, &results, "lead"));
            pb.inc(batch.len() as u64);
        }
        if !opportunities.is_empty() && (opportunities.len() == BATCH || next_kind != Some(kind)) {
            let batch = std::mem::take(&mut opportunities);
            let request =
                acc::ImportOpportunitiesRequest { opportunities: batch.iter().map(|(_, o)| o.clone()).collect() };
            let results = match c.acceptance.import_opportunities(req(request, &importer)?).await {
                Ok(r) => r.into_inner().results,
                Err(s) => return Err(stopped(&pb, &args.file, sent_through, s)),
            };
            sent_through = through(sent_through, tally.count(&batch, &results, "opportunity"));
            pb.inc(batch.len() as u64);
        }
    }
    pb.finish_and_clear();
    tally.failed.sort();
    report(g, &export.files(), &tally)
}

/// The files given make sense for the format.
fn check_files(args: &ImportArgs) -> anyhow::Result<()> {
    let deal_files = args.opportunity_history.is_some() || !args.activities.is_empty();
    match args.format {
        crm::Format::Jsonl => anyhow::ensure!(
            args.opportunities.is_none() && !deal_files,
            "--opportunities, --opportunity-history and --activities read a CRM export: add --format salesforce or hubspot"
        ),
        crm::Format::Hubspot => anyhow::ensure!(
            args.opportunity_history.is_none(),
            "a HubSpot deal export holds its own stage history (its \"Date entered\" columns): no --opportunity-history"
        ),
        crm::Format::Salesforce => {}
    }
    anyhow::ensure!(
        args.opportunities.is_some() || !deal_files,
        "--opportunity-history and --activities are about deals: add --opportunities (Salesforce) or --deals (HubSpot)"
    );
    Ok(())
}

/// The error of a call that could not be made, with where to resume.
fn stopped(pb: &ProgressBar, file: &std::path::Path, sent_through: usize, s: tonic::Status) -> anyhow::Error {
    pb.abandon();
    eprintln!(
        "stopped: everything through line {sent_through} of {} was sent; resume with --resume-after-line {sent_through}",
        file.display()
    );
    s.into()
}

/// Prints the tally, each failure as `file:line: why`; `files` by [`Loc::file`].
fn report(g: &Global, files: &[std::path::PathBuf], t: &Tally) -> anyhow::Result<()> {
    let file = |at: &Loc| files.get(at.file).map_or_else(String::new, |f| f.display().to_string());
    if g.json() {
        let failed: Vec<_> =
            t.failed.iter().map(|(at, why)| json!({"file": file(at), "line": at.line, "error": why})).collect();
        let out = json!({"imported": t.imported, "unchanged": t.unchanged, "failed": failed});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{} imported, {} unchanged, {} failed", t.imported, t.unchanged, t.failed.len());
        for (at, why) in &t.failed {
            println!("  {}:{}: {why}", file(at), at.line);
        }
    }
    anyhow::ensure!(t.failed.is_empty(), "{} record(s) failed; fix them and run the file again", t.failed.len());
    Ok(())
}
