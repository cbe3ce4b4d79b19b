//! The commands that talk to a running cluster with the caller's token.

use std::io::BufRead;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use qualify_proto::acceptance as acc;
use qualify_proto::common::{LeadSource, LeadStage, Segment};
use qualify_proto::metrics::{self as met, FunnelDimension};
use qualify_proto::scoring::{self as sc, score_lead_request::Target};
use serde_json::json;

use qualify_domain::Role;

use crate::rpc::{Clients, req};
use crate::table::{Table, bar, money, pct};
use crate::{FileArg, Global, protojson, request_id};

/// Largest batch `ingest signals` sends in one IngestSignals call.
pub const SIGNAL_BATCH: usize = 500;

/// `LEAD_SOURCE_INBOUND` -> `inbound`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase().replace('_', "-")
}

pub fn stage_name(stage: i32) -> String {
    LeadStage::try_from(stage).map_or_else(|_| stage.to_string(), |s| short(s.as_str_name(), "LEAD_STAGE_"))
}

pub fn source_name(source: i32) -> String {
    LeadSource::try_from(source).map_or_else(|_| source.to_string(), |s| short(s.as_str_name(), "LEAD_SOURCE_"))
}

pub fn segment_name(segment: i32) -> String {
    Segment::try_from(segment).map_or_else(|_| segment.to_string(), |s| short(s.as_str_name(), "SEGMENT_"))
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Inbound,
    Outbound,
    Plg,
    Event,
    Referral,
    Partner,
}

impl SourceArg {
    pub fn wire(self) -> LeadSource {
        match self {
            SourceArg::Inbound => LeadSource::Inbound,
            SourceArg::Outbound => LeadSource::Outbound,
            SourceArg::Plg => LeadSource::Plg,
            SourceArg::Event => LeadSource::Event,
            SourceArg::Referral => LeadSource::Referral,
            SourceArg::Partner => LeadSource::Partner,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SegmentArg {
    Smb,
    MidMarket,
    Enterprise,
}

impl SegmentArg {
    pub fn wire(self) -> Segment {
        match self {
            SegmentArg::Smb => Segment::Smb,
            SegmentArg::MidMarket => Segment::MidMarket,
            SegmentArg::Enterprise => Segment::Enterprise,
        }
    }

    /// The domain's segment.
    pub fn domain(self) -> qualify_domain::Segment {
        match self {
            SegmentArg::Smb => qualify_domain::Segment::Smb,
            SegmentArg::MidMarket => qualify_domain::Segment::MidMarket,
            SegmentArg::Enterprise => qualify_domain::Segment::Enterprise,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReasonArg {
    NoBudget,
    NoAuthority,
    NoNeed,
    NoTimeline,
    NoNextStep,
    NotIcp,
    BadContactData,
    Duplicate,
    CompetitorLockedIn,
    Other,
}

impl ReasonArg {
    pub fn wire(self) -> acc::RejectionReason {
        use acc::RejectionReason as R;
        match self {
            ReasonArg::NoBudget => R::NoBudget,
            ReasonArg::NoAuthority => R::NoAuthority,
            ReasonArg::NoNeed => R::NoNeed,
            ReasonArg::NoTimeline => R::NoTimeline,
            ReasonArg::NoNextStep => R::NoNextStep,
            ReasonArg::NotIcp => R::NotIcp,
            ReasonArg::BadContactData => R::BadContactData,
            ReasonArg::Duplicate => R::Duplicate,
            ReasonArg::CompetitorLockedIn => R::CompetitorLockedIn,
            ReasonArg::Other => R::Other,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DimArg {
    Source,
    Segment,
    Period,
    Team,
    Rep,
    Campaign,
}

impl DimArg {
    fn wire(self) -> FunnelDimension {
        match self {
            DimArg::Source => FunnelDimension::Source,
            DimArg::Segment => FunnelDimension::Segment,
            DimArg::Period => FunnelDimension::Period,
            DimArg::Team => FunnelDimension::Team,
            DimArg::Rep => FunnelDimension::Rep,
            DimArg::Campaign => FunnelDimension::Campaign,
        }
    }
}

#[derive(Subcommand)]
pub enum LeadCommand {
    /// Create a lead (CreateLead); when it already exists, check it matches (the contract has no
    /// lead update: accounts and contacts have one, a lead's attributes are set once).
    Upsert {
        #[arg(long)]
        id: String,
        /// The account it belongs to (must exist).
        #[arg(long)]
        account: String,
        #[arg(long, value_enum)]
        source: SourceArg,
        #[arg(long)]
        campaign: Option<String>,
        /// The SDR who owns it.
        #[arg(long)]
        owner_sdr: Option<String>,
        /// The contact it came in through.
        #[arg(long)]
        contact: Option<String>,
    },
    /// Score a stored lead and explain it rule by rule.
    Score {
        #[arg(long)]
        id: String,
        /// Scorecard version (default: the one in force).
        #[arg(long, default_value_t = 0)]
        version: i64,
        /// Score as of this past time (RFC 3339), reproducing the score then with its version.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Subcommand)]
pub enum ScorecardCommand {
    /// Publish a new scorecard version from a YAML or JSON file holding a
    /// qualify.scoring.v1.Scorecard (proto JSON field names).
    Publish {
        #[arg(long)]
        file: FileArg,
        /// Segment it applies to (overrides the file's `segment`).
        #[arg(long, value_enum)]
        segment: Option<SegmentArg>,
        /// Fail unless the active version is this one (0: no check).
        #[arg(long, default_value_t = 0)]
        expected_version: i64,
    },
    /// Re-score and store every lead of the tenant with the scorecards in force (after a
    /// publish), making the threshold moves, with a progress bar. Leads are stored in batches;
    /// a broken run prints the lead to resume after.
    Rescore {
        /// Resume a broken run after this lead id.
        #[arg(long, default_value = "")]
        resume_after: String,
    },
}

#[derive(Subcommand)]
pub enum OppCommand {
    /// Submit an opportunity from a file holding a qualify.acceptance.v1.Opportunity.
    Submit {
        #[arg(long)]
        file: FileArg,
    },
    /// Evaluate the gate for a file holding a qualify.acceptance.v1.GateCandidate.
    Evaluate {
        #[arg(long)]
        file: FileArg,
    },
    /// Accept an opportunity as an account executive.
    Accept {
        #[arg(long)]
        id: String,
        /// Accept although the gate fails (an override), with this justification.
        #[arg(long)]
        justification: Option<String>,
    },
    /// Reject an opportunity with a reason.
    Reject {
        #[arg(long)]
        id: String,
        #[arg(long, value_enum)]
        reason: ReasonArg,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Args)]
pub struct PeriodArgs {
    /// First month, YYYY-MM (default: this month).
    #[arg(long)]
    pub from: Option<String>,
    /// Last month, YYYY-MM, inclusive (default: this month).
    #[arg(long)]
    pub to: Option<String>,
}

impl PeriodArgs {
    fn range(&self) -> (String, String) {
        let now = qualify_platform::Clock::system().now().format("%Y-%m").to_string();
        (self.from.clone().unwrap_or_else(|| now.clone()), self.to.clone().unwrap_or(now))
    }
}

#[derive(Args)]
pub struct FunnelArgs {
    #[command(flatten)]
    pub period: PeriodArgs,
    /// Group by: source, segment, period, team, rep, campaign (comma-separate).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub by: Vec<DimArg>,
}

#[derive(Subcommand)]
pub enum IngestCommand {
    /// Ingest a file of engagement signals, one qualify.scoring.v1.Signal per line as proto JSON.
    Signals {
        #[arg(long)]
        file: FileArg,
    },
}

/// Tenant of the development token used when no token is given.
pub const DEV_TENANT: &str = "demo";

pub async fn lead(g: &Global, mut c: Clients, cmd: LeadCommand) -> anyhow::Result<()> {
    let role = if matches!(cmd, LeadCommand::Upsert { .. }) { Role::Service } else { Role::Revops };
    let token = &g.token_or_dev(DEV_TENANT, "qualifyctl", role)?;
    match cmd {
        LeadCommand::Upsert { id, account, source, campaign, owner_sdr, contact } => {
            let lead = sc::Lead {
                lead_id: id.clone(),
                account_id: account,
                source: source.wire() as i32,
                campaign: campaign.unwrap_or_default(),
                owner_sdr: owner_sdr.unwrap_or_default(),
                contact_id: contact.unwrap_or_default(),
                ..Default::default()
            };
            let create = sc::CreateLeadRequest { lead: Some(lead.clone()), request_id: request_id() };
            let (stored, created) = match c.scoring.create_lead(req(create, token)?).await {
                Ok(r) => (r.into_inner().lead.unwrap_or_default(), true),
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    let got = c.scoring.get_lead(req(sc::GetLeadRequest { lead_id: id.clone() }, token)?).await?;
                    let stored = got.into_inner().lead.unwrap_or_default();
                    let differs = lead_differences(&lead, &stored);
                    if !differs.is_empty() {
                        anyhow::bail!(
                            "lead {id} already exists with other attributes ({}); qualify.scoring.v1 has no \
                             lead update RPC (only UpdateAccount and UpdateContact), so a lead's attributes \
                             are set once",
                            differs.join("; ")
                        );
                    }
                    (stored, false)
                }
                Err(s) => return Err(s.into()),
            };
            if g.json() {
                return protojson::print_json(&stored, "qualify.scoring.v1.Lead");
            }
            let verb = if created { "created" } else { "already exists, unchanged:" };
            println!(
                "lead {} {verb} account {}, source {}, stage {}{}{}",
                stored.lead_id,
                stored.account_id,
                source_name(stored.source),
                stage_name(stored.stage),
                if stored.campaign.is_empty() { String::new() } else { format!(", campaign {}", stored.campaign) },
                if stored.owner_sdr.is_empty() { String::new() } else { format!(", owner {}", stored.owner_sdr) },
            );
            Ok(())
        }
        LeadCommand::Score { id, version, as_of } => {
            let r = sc::ScoreLeadRequest {
                target: Some(Target::LeadId(id.clone())),
                scorecard_version: version,
                as_of_time: as_of.map(qualify_proto::convert::timestamp),
            };
            let resp = c.scoring.score_lead(req(r, token)?).await?.into_inner();
            if g.json() {
                return protojson::print_json(&resp, "qualify.scoring.v1.ScoreLeadResponse");
            }
            let s = resp.score.unwrap_or_default();
            println!(
                "lead {id}: total {} (fit {}, engagement {}{}), grade {}, recommended stage {}, scorecard v{}",
                s.total,
                s.fit,
                s.engagement,
                if s.product != 0 { format!(", product {}", s.product) } else { String::new() },
                if s.grade.is_empty() { "-" } else { &s.grade },
                stage_name(s.recommended_stage),
                s.scorecard_version
            );
            let mut t = Table::new(&["rule", "kind", "points", "signals"]);
            for r in &s.contributions {
                let kind = sc::RuleKind::try_from(r.kind).map_or("?".into(), |k| short(k.as_str_name(), "RULE_KIND_"));
                let signals =
                    if r.kind == sc::RuleKind::Engagement as i32 { r.signal_count.to_string() } else { "".into() };
                t.row(vec![r.rule_id.clone(), kind, r.points.to_string(), signals]);
            }
            let sum: i32 = s.contributions.iter().map(|r| r.points).sum();
            t.row(vec!["total".into(), String::new(), sum.to_string(), String::new()]);
            t.print();
            if sum != s.total {
                eprintln!("warning: the contributions add up to {sum}, the total is {}", s.total);
            }
            Ok(())
        }
    }
}

fn lead_differences(want: &sc::Lead, got: &sc::Lead) -> Vec<String> {
    let mut d = Vec::new();
    let mut cmp = |name: &str, a: String, b: String| {
        if a != b {
            d.push(format!("{name} is {b:?}, not {a:?}"));
        }
    };
    cmp("account", want.account_id.clone(), got.account_id.clone());
    cmp("source", source_name(want.source), source_name(got.source));
    cmp("campaign", want.campaign.clone(), got.campaign.clone());
    cmp("owner_sdr", want.owner_sdr.clone(), got.owner_sdr.clone());
    cmp("contact", want.contact_id.clone(), got.contact_id.clone());
    d
}

/// `scorecard rescore`: ScoreLeads with apply over every lead, progress from its counts.
async fn rescore(g: &Global, mut c: Clients, resume_after: String) -> anyhow::Result<()> {
    let token = g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Revops)?;
    let r = sc::ScoreLeadsRequest { lead_ids: vec![], apply: true, resume_after_lead_id: resume_after.clone() };
    let mut stream = c.scoring.score_leads(req(r, &token)?).await?.into_inner();
    let pb = ProgressBar::new(0);
    pb.set_style(ProgressStyle::with_template("{spinner} leads {bar:40} {pos}/{len} {per_sec} eta {eta}")?);
    let (mut last, mut moves) = (resume_after, 0usize);
    loop {
        match stream.message().await {
            Ok(Some(item)) => {
                pb.set_length(item.total_count.max(0) as u64);
                pb.set_position(item.done_count.max(0) as u64);
                moves += usize::from(item.stage_change.is_some());
                last = item.lead_id;
            }
            Ok(None) => break,
            Err(s) => {
                pb.abandon();
                if !last.is_empty() {
                    eprintln!("stored up to lead {last:?}; resume with --resume-after {last}");
                }
                return Err(s.into());
            }
        }
    }
    pb.finish_and_clear();
    if g.json() {
        println!("{}", serde_json::json!({ "rescoredCount": pb.position(), "stageChangeCount": moves }));
    } else {
        println!("re-scored and stored {} leads; {moves} crossed a threshold and moved", pb.position());
    }
    Ok(())
}

pub async fn scorecard(g: &Global, mut c: Clients, cmd: ScorecardCommand) -> anyhow::Result<()> {
    let (file, segment, expected_version) = match cmd {
        ScorecardCommand::Publish { file, segment, expected_version } => (file, segment, expected_version),
        ScorecardCommand::Rescore { resume_after } => return rescore(g, c, resume_after).await,
    };
    let mut card: sc::Scorecard = protojson::from_file(&file, "qualify.scoring.v1.Scorecard")?;
    if let Some(s) = segment {
        card.segment = s.wire() as i32;
    }
    let token = &g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Revops)?;
    let r = sc::PublishScorecardRequest { scorecard: Some(card), expected_version, request_id: request_id() };
    let resp = c.scoring.publish_scorecard(req(r, token)?).await?.into_inner();
    if g.json() {
        return protojson::print_json(&resp, "qualify.scoring.v1.PublishScorecardResponse");
    }
    let s = resp.scorecard.unwrap_or_default();
    println!(
        "published scorecard {} v{} by {}: {} fit rules, {} engagement rules, MQL at {}, framework {}",
        segment_name(s.segment),
        s.version,
        s.published_by,
        s.fit_rules.len(),
        s.engagement_rules.len(),
        s.mql_threshold,
        qualify_proto::common::Framework::try_from(s.framework)
            .map_or("-".into(), |f| short(f.as_str_name(), "FRAMEWORK_")),
    );
    Ok(())
}

fn print_gate(gate: &acc::EvaluateGateResponse) {
    println!("gate {} (policy v{})", if gate.passed { "PASSED" } else { "FAILED" }, gate.policy_version);
    let mut t = Table::new(&["check", "passed", "reason"]);
    for ch in &gate.checks {
        let code =
            acc::GateCheckCode::try_from(ch.code).map_or("?".into(), |c| short(c.as_str_name(), "GATE_CHECK_CODE_"));
        let crit = qualify_proto::common::Criterion::try_from(ch.criterion)
            .ok()
            .filter(|c| *c != qualify_proto::common::Criterion::Unspecified)
            .map_or(String::new(), |c| format!(" ({})", short(c.as_str_name(), "CRITERION_")));
        t.row(vec![format!("{code}{crit}"), if ch.passed { "yes" } else { "NO" }.into(), ch.detail.clone()]);
    }
    t.print();
}

fn opp_state(state: i32) -> String {
    acc::OpportunityState::try_from(state).map_or(state.to_string(), |s| short(s.as_str_name(), "OPPORTUNITY_STATE_"))
}

pub async fn opp(g: &Global, mut c: Clients, cmd: OppCommand) -> anyhow::Result<()> {
    match cmd {
        OppCommand::Submit { file } => {
            let o: acc::Opportunity = protojson::from_file(&file, "qualify.acceptance.v1.Opportunity")?;
            let token = &g.token_or_dev(DEV_TENANT, "qualifyctl-sdr", Role::Sdr)?;
            let r = acc::SubmitOpportunityRequest { opportunity: Some(o), request_id: request_id() };
            let resp = c.acceptance.submit_opportunity(req(r, token)?).await?.into_inner();
            if g.json() {
                return protojson::print_json(&resp, "qualify.acceptance.v1.SubmitOpportunityResponse");
            }
            let o = resp.opportunity.unwrap_or_default();
            println!("opportunity {} submitted: {} v{}", o.opportunity_id, opp_state(o.state), o.version);
            print_gate(&resp.gate.unwrap_or_default());
            Ok(())
        }
        OppCommand::Evaluate { file } => {
            let cand: acc::GateCandidate = protojson::from_file(&file, "qualify.acceptance.v1.GateCandidate")?;
            let token = &g.token_or_dev(DEV_TENANT, "qualifyctl-ae", Role::Ae)?;
            let r = acc::EvaluateGateRequest { candidate: Some(cand) };
            let resp = c.acceptance.evaluate_gate(req(r, token)?).await?.into_inner();
            if g.json() {
                return protojson::print_json(&resp, "qualify.acceptance.v1.EvaluateGateResponse");
            }
            print_gate(&resp);
            Ok(())
        }
        OppCommand::Accept { id, justification } => {
            let token = &g.token_or_dev(DEV_TENANT, "qualifyctl-ae", Role::Ae)?;
            let r = acc::AcceptOpportunityRequest {
                opportunity_id: id,
                expected_version: 0,
                override_justification: justification.unwrap_or_default(),
                request_id: request_id(),
            };
            let resp = c.acceptance.accept_opportunity(req(r, token)?).await?.into_inner();
            if g.json() {
                return protojson::print_json(&resp, "qualify.acceptance.v1.AcceptOpportunityResponse");
            }
            let o = resp.opportunity.unwrap_or_default();
            println!(
                "opportunity {} {} by {}{}",
                o.opportunity_id,
                opp_state(o.state),
                o.accepted_by,
                if o.overridden { " (gate overridden)" } else { "" }
            );
            Ok(())
        }
        OppCommand::Reject { id, reason, note } => {
            let token = &g.token_or_dev(DEV_TENANT, "qualifyctl-ae", Role::Ae)?;
            let r = acc::RejectOpportunityRequest {
                opportunity_id: id,
                expected_version: 0,
                reason: reason.wire() as i32,
                note: note.unwrap_or_default(),
                request_id: request_id(),
            };
            let resp = c.acceptance.reject_opportunity(req(r, token)?).await?.into_inner();
            if g.json() {
                return protojson::print_json(&resp, "qualify.acceptance.v1.RejectOpportunityResponse");
            }
            let o = resp.opportunity.unwrap_or_default();
            println!("opportunity {} {}", o.opportunity_id, opp_state(o.state));
            Ok(())
        }
    }
}

fn group_label(g: &met::FunnelGroup, dims: &[DimArg]) -> String {
    if dims.is_empty() {
        return "all".into();
    }
    let or_dash = |s: &str| if s.is_empty() { "(none)".to_string() } else { s.to_string() };
    dims.iter()
        .map(|d| match d {
            DimArg::Source => source_name(g.source),
            DimArg::Segment => segment_name(g.segment),
            DimArg::Period => or_dash(&g.period),
            DimArg::Team => or_dash(&g.team),
            DimArg::Rep => or_dash(&g.rep),
            DimArg::Campaign => or_dash(&g.campaign),
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

pub async fn funnel(g: &Global, mut c: Clients, args: FunnelArgs) -> anyhow::Result<()> {
    let token = &g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Revops)?;
    let (start, end) = args.period.range();
    let r = met::GetFunnelRequest {
        start_period: start.clone(),
        end_period: end.clone(),
        group_by: args.by.iter().map(|d| d.wire() as i32).collect(),
        ..Default::default()
    };
    let resp = c.metrics.get_funnel(req(r, token)?).await?.into_inner();
    if g.json() {
        return protojson::print_json(&resp, "qualify.metrics.v1.GetFunnelResponse");
    }
    println!("funnel {start} .. {end}");
    let max = resp.rows.iter().filter_map(|r| r.figures.as_ref()).map(|f| f.leads).max().unwrap_or(0) as f64;
    let mut t = Table::new(&[
        "group",
        "leads",
        "mql",
        "sql",
        "sqo sub",
        "sqo acc",
        "rej",
        "won",
        "lost",
        "pipeline",
        "won amt",
        "mql→sql",
        "sql→sqo",
        "win rate",
        "",
    ]);
    for row in &resp.rows {
        let f = row.figures.clone().unwrap_or_default();
        t.row(vec![
            group_label(&row.group.clone().unwrap_or_default(), &args.by),
            f.leads.to_string(),
            f.mqls.to_string(),
            f.sqls.to_string(),
            f.sqos_submitted.to_string(),
            f.sqos_accepted.to_string(),
            f.sqos_rejected.to_string(),
            f.won.to_string(),
            f.lost.to_string(),
            money(f.pipeline_generated_minor),
            money(f.won_amount_minor),
            pct(f.mql_to_sql),
            pct(f.sql_to_sqo),
            pct(f.win_rate),
            bar(f.leads as f64, max, 30),
        ]);
    }
    if resp.rows.is_empty() {
        println!("no funnel figures in this range");
    } else {
        t.print();
        let f = resp.rows[0].figures.clone().unwrap_or_default();
        println!("amounts in {}", f.currency_code);
        let missing: std::collections::BTreeSet<String> = resp
            .rows
            .iter()
            .flat_map(|r| r.figures.iter().flat_map(|f| f.missing_exchange_rates.iter()))
            .map(|m| format!("{} {}", m.currency_code, m.period))
            .collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing.into_iter().collect();
            println!("left out for want of an exchange rate: {}", list.join(", "));
        }
    }
    Ok(())
}

pub async fn health(g: &Global, mut c: Clients, args: PeriodArgs) -> anyhow::Result<()> {
    let token = &g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Revops)?;
    let (start, end) = args.range();
    let r = met::GetFunnelHealthRequest { start_period: start.clone(), end_period: end.clone(), as_of_time: None };
    let resp = c.metrics.get_funnel_health(req(r, token)?).await?.into_inner();
    if g.json() {
        return protojson::print_json(&resp, "qualify.metrics.v1.GetFunnelHealthResponse");
    }
    if resp.findings.is_empty() {
        println!("funnel health {start} .. {end}: no findings");
        return Ok(());
    }
    println!("funnel health {start} .. {end}: {} finding(s)", resp.findings.len());
    for f in &resp.findings {
        let code = met::FindingCode::try_from(f.code).map_or("?".into(), |c| short(c.as_str_name(), "FINDING_CODE_"));
        let grp = f.group.clone().unwrap_or_default();
        let mut scope = Vec::new();
        if !grp.period.is_empty() {
            scope.push(grp.period.clone());
        }
        if grp.source != 0 {
            scope.push(source_name(grp.source));
        }
        if grp.segment != 0 {
            scope.push(segment_name(grp.segment));
        }
        for s in [&grp.team, &grp.rep, &grp.campaign] {
            if !s.is_empty() {
                scope.push(s.clone());
            }
        }
        println!();
        println!(
            "{code}{}: {}",
            if scope.is_empty() { String::new() } else { format!(" [{}]", scope.join(" / ")) },
            f.message
        );
        for e in &f.evidence {
            let bench = e.benchmark.map_or(String::new(), |b| format!("  (benchmark {})", num(b)));
            println!("    {:<32} {}{bench}", e.name, num(e.value));
        }
    }
    Ok(())
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.3}") }
}

pub async fn ingest(g: &Global, mut c: Clients, cmd: IngestCommand) -> anyhow::Result<()> {
    let IngestCommand::Signals { file } = cmd;
    let f = std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut signals = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(anyhow::Error::from)
            .and_then(|v| protojson::from_value::<sc::Signal>(v, "qualify.scoring.v1.Signal"));
        match parsed {
            Ok(s) => signals.push(s),
            Err(e) => problems.push(format!("{}:{}: {e:#}", file.display(), n + 1)),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("nothing sent, {} bad line(s):\n{}", problems.len(), problems.join("\n"));
    }
    let token = g.token_or_dev(DEV_TENANT, "qualifyctl", Role::Revops)?;
    let pb = ProgressBar::new(signals.len() as u64);
    pb.set_style(ProgressStyle::with_template("{spinner} signals {bar:40} {pos}/{len} {per_sec} eta {eta}")?);
    let (mut accepted, mut duplicate, mut rejected, mut moves) = (0i64, 0i64, 0i64, 0usize);
    let mut rejects = Vec::new();
    for batch in signals.chunks(SIGNAL_BATCH) {
        let r = sc::IngestSignalsRequest { signals: batch.to_vec() };
        let resp = match c.scoring.ingest_signals(req(r, &token)?).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                pb.abandon();
                eprintln!("sent {} of {} signals before the failure", pb.position(), signals.len());
                return Err(s.into());
            }
        };
        for item in &resp.results {
            match sc::SignalOutcome::try_from(item.outcome) {
                Ok(sc::SignalOutcome::Accepted) => accepted += 1,
                Ok(sc::SignalOutcome::Duplicate) => duplicate += 1,
                _ => {
                    rejected += 1;
                    let why: Vec<_> =
                        item.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
                    rejects.push((item.signal_id.clone(), why.join("; ")));
                }
            }
        }
        moves += resp.stage_changes.len();
        pb.inc(batch.len() as u64);
    }
    pb.finish_and_clear();
    if g.json() {
        let items: Vec<_> = rejects.iter().map(|(id, why)| json!({"signalId": id, "violations": why})).collect();
        let out = json!({
            "signals": signals.len(), "accepted": accepted, "duplicate": duplicate, "rejected": rejected,
            "stageChanges": moves, "rejectedItems": items,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} signals in {} batch(es): {accepted} accepted, {duplicate} duplicate, {rejected} rejected; {moves} lead stage change(s)",
        signals.len(),
        signals.len().div_ceil(SIGNAL_BATCH)
    );
    for (id, why) in rejects.iter().take(50) {
        println!("  rejected {id}: {why}");
    }
    if rejects.len() > 50 {
        println!("  ... and {} more", rejects.len() - 50);
    }
    Ok(())
}

pub async fn rebuild(g: &Global, mut c: Clients) -> anyhow::Result<()> {
    let token = &g.token_or_dev(qualify_platform::outbox::SYSTEM_TENANT, "qualifyctl", Role::Revops)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("rebuilding the roll-ups from the event streams");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    let resp = c.metrics.rebuild_rollups(req(met::RebuildRollupsRequest {}, token)?).await;
    spinner.finish_and_clear();
    let resp = match resp {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            eprintln!(
                "hint: rebuilding needs a platform operator's token: \
                 qualifyctl token --tenant qualify-system --role revops"
            );
            return Err(s.into());
        }
        Err(s) => return Err(s.into()),
    };
    if g.json() {
        return protojson::print_json(&resp, "qualify.metrics.v1.RebuildRollupsResponse");
    }
    println!("roll-ups rebuilt in {:.1}s", started.elapsed().as_secs_f64());
    let mut t = Table::new(&["stream", "applied sequence", "applied events"]);
    for s in &resp.streams {
        t.row(vec![s.stream.clone(), s.applied_sequence.to_string(), s.applied_events.to_string()]);
    }
    t.print();
    Ok(())
}
