//! `qualifyctl import`: a CRM's history from a neutral JSONL file, one record a
//! line in proto JSON: `{"account": <qualify.scoring.v1.Account>}`, `{"lead":
//! <qualify.scoring.v1.ImportedLead>}` or `{"opportunity":
//! <qualify.acceptance.v1.ImportedOpportunity>}`. Records are sent in file
//! order (an account before the leads that name it, a lead before its
//! opportunities), leads and opportunities in batches of 1,000 through
//! `ImportLeads` and `ImportOpportunities`; every failure is reported with its
//! line number, and an interrupted import resumes after the last line sent.
//! Re-running a whole file changes nothing.

use std::io::BufRead;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qualify_domain::Role;
use qualify_proto::acceptance as acc;
use qualify_proto::common::{self as cpb, ImportOutcome};
use qualify_proto::scoring as sc;
use serde_json::{Value, json};

use crate::commands::DEV_TENANT;
use crate::crm;
use crate::rpc::{Clients, req};
use crate::{FileArg, Global, protojson, request_id};

/// Leads per `ImportLeads` call.
const BATCH: usize = 1000;

#[derive(Args)]
pub struct ImportArgs {
    /// The JSONL file.
    #[arg(long)]
    pub file: FileArg,
    /// Skip the records on lines up to this one (where an interrupted import stopped).
    #[arg(long, default_value_t = 0)]
    pub resume_after_line: usize,
    /// What the file holds: the neutral JSONL, or a CRM's CSV export.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: crm::Format,
    /// A CSV export's own picklist values, mapped to Qualify's (YAML: `sources:` and `stages:`).
    #[arg(long)]
    pub mapping: Option<FileArg>,
}

/// One record of the file, with its line.
pub(crate) enum Record {
    Account(usize, sc::Account),
    Lead(usize, sc::ImportedLead),
    Opportunity(usize, Box<acc::ImportedOpportunity>),
}

impl Record {
    fn line(&self) -> usize {
        match self {
            Record::Account(n, _) | Record::Lead(n, _) | Record::Opportunity(n, _) => *n,
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
fn parse(n: usize, line: &str) -> anyhow::Result<Record> {
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
    failed: Vec<(usize, String)>,
}

impl Tally {
    /// Counts a batch's results (`what` of each line); the batch's last line.
    fn count<T>(&mut self, batch: &[(usize, T)], results: &[cpb::ImportResult], what: &str) -> Option<usize> {
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
    if args.format == crm::Format::Jsonl {
        let f = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let (n, line) = (n + 1, line?);
            if n <= args.resume_after_line || line.trim().is_empty() {
                continue;
            }
            match parse(n, &line) {
                Ok(r) => records.push(r),
                Err(e) => tally.failed.push((n, format!("{e:#}"))),
            }
        }
    } else {
        let mapping = match &args.mapping {
            Some(path) => crm::Mapping::read(path)?,
            None => crm::Mapping::default(),
        };
        for r in crm::records(args.format, &args.file, &mapping)? {
            match r {
                Ok(r) if r.line() <= args.resume_after_line => {}
                Ok(r) => records.push(r),
                Err((n, why)) if n > args.resume_after_line => tally.failed.push((n, why)),
                Err(_) => {}
            }
        }
    }
    let sync = g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Service)?;
    let importer = g.token_or_dev(DEV_TENANT, "crm-import", Role::Importer)?;
    let pb = ProgressBar::new(records.len() as u64);
    pb.set_style(ProgressStyle::with_template("{spinner} records {bar:40} {pos}/{len} {per_sec} eta {eta}")?);
    let mut leads: Vec<(usize, sc::ImportedLead)> = Vec::new();
    let mut opportunities: Vec<(usize, acc::ImportedOpportunity)> = Vec::new();
    let mut sent_through = args.resume_after_line;
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
                    Err(s) => return Err(stopped(&pb, sent_through, s)),
                }
                sent_through = n;
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
                Err(s) => return Err(stopped(&pb, sent_through, s)),
            };
            sent_through = tally.count(&batch, &results, "lead").unwrap_or(sent_through);
            pb.inc(batch.len() as u64);
        }
        if !opportunities.is_empty() && (opportunities.len() == BATCH || next_kind != Some(kind)) {
            let batch = std::mem::take(&mut opportunities);
            let request =
                acc::ImportOpportunitiesRequest { opportunities: batch.iter().map(|(_, o)| o.clone()).collect() };
            let results = match c.acceptance.import_opportunities(req(request, &importer)?).await {
                Ok(r) => r.into_inner().results,
                Err(s) => return Err(stopped(&pb, sent_through, s)),
            };
            sent_through = tally.count(&batch, &results, "opportunity").unwrap_or(sent_through);
            pb.inc(batch.len() as u64);
        }
    }
    pb.finish_and_clear();
    tally.failed.sort();
    report(g, &args, &tally)
}

/// The error of a call that could not be made, with where to resume.
fn stopped(pb: &ProgressBar, sent_through: usize, s: tonic::Status) -> anyhow::Error {
    pb.abandon();
    eprintln!(
        "stopped: everything through line {sent_through} was sent; resume with --resume-after-line {sent_through}"
    );
    s.into()
}

fn report(g: &Global, args: &ImportArgs, t: &Tally) -> anyhow::Result<()> {
    if g.json() {
        let failed: Vec<_> = t.failed.iter().map(|(n, why)| json!({"line": n, "error": why})).collect();
        let out = json!({"imported": t.imported, "unchanged": t.unchanged, "failed": failed});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{} imported, {} unchanged, {} failed", t.imported, t.unchanged, t.failed.len());
        for (n, why) in &t.failed {
            println!("  {}:{n}: {why}", args.file.display());
        }
    }
    anyhow::ensure!(t.failed.is_empty(), "{} record(s) failed; fix them and run the file again", t.failed.len());
    Ok(())
}
