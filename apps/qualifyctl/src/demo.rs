//! `qualifyctl demo`: a realistic synthetic funnel loaded into a running
//! cluster through the public API, as the CRM sync, RevOps, SDRs and AEs would
//! drive it. The past months come in as a CRM's history through the import
//! RPCs (leads with their stage changes, deals with their decisions,
//! conversations and closes, each at its own time); the current month is
//! played live. Everything is drawn up front from a seeded `StdRng`, so a seed
//! always plans the same accounts, people, leads, signals and decisions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use qualify_domain::Role;
use qualify_platform::TokenIssuer;
use qualify_platform::config::{ProcessEnv, dev_signing_key};
use qualify_proto::acceptance as acc;
use qualify_proto::common::{BuyingRole, Criterion, EvidenceStatus, LeadSource, LeadStage, Money, Segment};
use qualify_proto::convert::WireEnum;
use qualify_proto::metrics as met;
use qualify_proto::scoring as sc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::commands::SIGNAL_BATCH;
use crate::rpc::{Clients, req};
use crate::table::money;
use crate::{Global, protojson};

/// The example scorecard shipped with qualifyctl; the demo publishes it for every segment.
pub const EXAMPLE_SCORECARD: &str = include_str!("../examples/scorecard.yaml");

#[derive(Args)]
pub struct DemoArgs {
    /// Leads to create.
    #[arg(long, default_value_t = 2000)]
    leads: usize,
    /// Seed of the generator: the same seed plans the same funnel.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Tenant to load (tokens are minted with QUALIFY_JWT_SECRET or the development key).
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to wait for metrics to show everything the demo did.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// Past months imported as history before the current one is played live (0: none); each
    /// month brings half as many leads as --leads.
    #[arg(long, default_value_t = 2)]
    history_months: u32,
}

const SDRS: [&str; 6] = ["sdr-ana", "sdr-ben", "sdr-chloe", "sdr-dev", "sdr-emma", "sdr-farid"];
const AES: [(&str, Segment); 5] = [
    ("ae-grace", Segment::Smb),
    ("ae-hugo", Segment::Smb),
    ("ae-ines", Segment::MidMarket),
    ("ae-jonas", Segment::MidMarket),
    ("ae-kemal", Segment::Enterprise),
];
const NAMES: [&str; 20] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Massive",
    "Piedpiper",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Dunder",
];
const SUFFIXES: [&str; 10] =
    ["Payments", "Logistics", "Health", "Labs", "Systems", "Retail", "Cloud", "Analytics", "Foods", "Energy"];
const INDUSTRIES: [&str; 8] =
    ["fintech", "saas", "healthcare", "retail", "manufacturing", "logistics", "insurance", "media"];
const REGIONS: [&str; 4] = ["emea", "na", "apac", "latam"];
const FIRST: [&str; 12] =
    ["Dana", "Sam", "Alex", "Priya", "Jon", "Mei", "Lucas", "Fatima", "Noah", "Ingrid", "Omar", "Zoe"];
const LAST: [&str; 12] =
    ["Whitfield", "Ortega", "Kim", "Patel", "Berg", "Chen", "Silva", "Haddad", "Novak", "Larsen", "Adeyemi", "Rossi"];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn segment_key(s: Segment) -> &'static str {
    match s {
        Segment::Smb => "smb",
        Segment::MidMarket => "mm",
        _ => "ent",
    }
}

struct Plan {
    accounts: Vec<(sc::Account, Vec<sc::Contact>)>,
    leads: Vec<LeadPlan>,
    signals: Vec<sc::Signal>,
}

/// What happens to one lead, drawn up front.
#[derive(Clone)]
struct LeadPlan {
    lead: sc::Lead,
    segment: Segment,
    /// The account's economic buyer and champion.
    eb: String,
    champion: String,
    /// SDR accepts it (SAL), qualifies it (SQL), submits an opportunity.
    sal: bool,
    sql: bool,
    submit: bool,
    /// 0: complete evidence; 1: a criterion only partly confirmed; 2: no champion mapped; 3: no next step.
    gap: u8,
    amount_minor: i64,
    close_in_days: i64,
    next_step_days: i64,
    ae: String,
    /// The AE's choice, read against the gate's verdict.
    decision_roll: f64,
    reject_reason: acc::RejectionReason,
    activity: bool,
    advance: u8,
    close_roll: f64,
    won_share: f64,
}

fn plan(n: usize, seed: u64, now: i64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let day = 86_400;
    let n_accounts = (n / 3).max(6);
    let mut accounts = Vec::with_capacity(n_accounts);
    for i in 0..n_accounts {
        let r: f64 = rng.random();
        let segment = if r < 0.55 {
            Segment::Smb
        } else if r < 0.85 {
            Segment::MidMarket
        } else {
            Segment::Enterprise
        };
        let (employees, band) = match segment {
            Segment::Smb => (rng.random_range(15..250), *pick(&mut rng, &["1m-10m", "10m-50m"])),
            Segment::MidMarket => (rng.random_range(250..2500), *pick(&mut rng, &["50m-250m", "250m-1b"])),
            _ => (rng.random_range(2500..60000), "1b+"),
        };
        let id = format!("s{seed}-acc-{i:05}");
        let account = sc::Account {
            account_id: id.clone(),
            display_name: format!("{} {}", pick(&mut rng, &NAMES), pick(&mut rng, &SUFFIXES)),
            industry: pick(&mut rng, &INDUSTRIES).to_string(),
            employee_count: employees,
            revenue_band: band.to_string(),
            region: pick(&mut rng, &REGIONS).to_string(),
            segment: segment as i32,
            ..Default::default()
        };
        // Most buying groups were verified recently; some economic buyers' data went stale.
        let stale = rng.random_bool(0.08);
        let people = [
            (
                "eb",
                BuyingRole::EconomicBuyer,
                *pick(&mut rng, &["CFO", "VP Finance", "VP Operations"]),
                "vp",
                "finance",
            ),
            ("champion", BuyingRole::Champion, "Head of Revenue Operations", "director", "operations"),
            ("user", BuyingRole::EndUser, "Sales Operations Analyst", "individual", "sales"),
            ("eval", BuyingRole::TechnicalEvaluator, "Solutions Architect", "manager", "it"),
        ];
        let extra = rng.random_range(0..=2);
        let mut contacts = Vec::new();
        for (k, (tag, role, title, seniority, dept)) in people.into_iter().enumerate().take(2 + extra) {
            let age_days = if k == 0 && stale { rng.random_range(120..300) } else { rng.random_range(2..60) };
            let cid = format!("{id}-{tag}");
            contacts.push(sc::Contact {
                contact_id: cid.clone(),
                account_id: id.clone(),
                full_name: format!("{} {}", pick(&mut rng, &FIRST), pick(&mut rng, &LAST)),
                title: title.to_string(),
                seniority: seniority.to_string(),
                department: dept.to_string(),
                buying_role: role as i32,
                email: format!("{cid}@{}.example", account.display_name.to_lowercase().replace(' ', "-")),
                email_status: sc::VerificationStatus::Verified as i32,
                email_verify_time: ts(now - age_days * day),
                ..Default::default()
            });
        }
        accounts.push((account, contacts));
    }

    let sources = [
        (LeadSource::Inbound, 0.30, &["webinar-q3", "pricing-ppc", "ebook-finops"][..]),
        (LeadSource::Outbound, 0.25, &["abm-tier1", ""][..]),
        (LeadSource::Plg, 0.15, &["free-trial"][..]),
        (LeadSource::Event, 0.10, &["saastr-2026", "money2020"][..]),
        (LeadSource::Referral, 0.10, &[""][..]),
        (LeadSource::Partner, 0.10, &["partner-co-sell"][..]),
    ];
    let mut leads = Vec::with_capacity(n);
    let mut signals = Vec::new();
    for i in 0..n {
        let (account, contacts) = &accounts[rng.random_range(0..accounts.len())];
        let segment = Segment::try_from(account.segment).unwrap_or(Segment::Smb);
        let mut r: f64 = rng.random();
        let mut chosen = &sources[0];
        for s in &sources {
            if r < s.1 {
                chosen = s;
                break;
            }
            r -= s.1;
        }
        let (source, _, campaigns) = chosen;
        let contact = &contacts[rng.random_range(0..contacts.len())];
        let id = format!("s{seed}-lead-{i:05}");
        let lead = sc::Lead {
            lead_id: id.clone(),
            account_id: account.account_id.clone(),
            source: *source as i32,
            campaign: pick(&mut rng, campaigns).to_string(),
            owner_sdr: pick(&mut rng, &SDRS).to_string(),
            contact_id: contact.contact_id.clone(),
            ..Default::default()
        };
        // Intent drives both the signals and how far the lead goes.
        let intent: f64 = rng.random::<f64>().powf(1.6);
        let types: &[sc::SignalType] = match source {
            LeadSource::Plg => &[
                sc::SignalType::TrialSignup,
                sc::SignalType::ProductActivation,
                sc::SignalType::TeammateInvited,
                sc::SignalType::PaidFeatureUsed,
                sc::SignalType::PricingPageVisit,
            ],
            LeadSource::Outbound => {
                &[sc::SignalType::EmailReply, sc::SignalType::MeetingHeld, sc::SignalType::WebsiteVisit]
            }
            LeadSource::Event => {
                &[sc::SignalType::WebinarAttended, sc::SignalType::MeetingHeld, sc::SignalType::ContentDownload]
            }
            _ => &[
                sc::SignalType::WebsiteVisit,
                sc::SignalType::PricingPageVisit,
                sc::SignalType::ContentDownload,
                sc::SignalType::WebinarAttended,
                sc::SignalType::DemoRequest,
                sc::SignalType::FormSubmit,
            ],
        };
        let count = (intent * 10.0).round() as usize + rng.random_range(0..3);
        for k in 0..count {
            let ty = *pick(&mut rng, types);
            let contact_id = contacts[rng.random_range(0..contacts.len())].contact_id.clone();
            signals.push(sc::Signal {
                signal_id: format!("{id}-sig-{k}"),
                lead_id: id.clone(),
                contact_id,
                r#type: ty as i32,
                occur_time: ts(now - rng.random_range(3600..90 * day)),
            });
        }
        let p_sal = if *source == LeadSource::Outbound { 0.45 } else { 0.15 + 0.6 * intent };
        let sal = rng.random_bool(p_sal.min(0.95));
        let sql = sal && rng.random_bool(0.6);
        let submit = sql && rng.random_bool(0.75);
        let gap = if rng.random_bool(0.78) { 0 } else { rng.random_range(1..=3) };
        let amount_minor = match segment {
            Segment::Smb => rng.random_range(8_000..40_000) * 100,
            Segment::MidMarket => rng.random_range(40_000..150_000) * 100,
            _ => rng.random_range(150_000..900_000) * 100,
        };
        let ae_pool: Vec<&str> = AES.iter().filter(|(_, s)| *s == segment).map(|(a, _)| *a).collect();
        let eb = contacts.iter().find(|c| c.buying_role == BuyingRole::EconomicBuyer as i32);
        let champion = contacts.iter().find(|c| c.buying_role == BuyingRole::Champion as i32);
        leads.push(LeadPlan {
            lead,
            segment,
            eb: eb.map(|c| c.contact_id.clone()).unwrap_or_default(),
            champion: champion.map(|c| c.contact_id.clone()).unwrap_or_default(),
            sal,
            sql,
            submit,
            gap,
            amount_minor,
            close_in_days: rng.random_range(30..120),
            next_step_days: rng.random_range(2..14),
            ae: pick(&mut rng, &ae_pool).to_string(),
            decision_roll: rng.random(),
            reject_reason: *pick(
                &mut rng,
                &[
                    acc::RejectionReason::NoBudget,
                    acc::RejectionReason::NoTimeline,
                    acc::RejectionReason::NotIcp,
                    acc::RejectionReason::CompetitorLockedIn,
                    acc::RejectionReason::NoAuthority,
                ],
            ),
            activity: rng.random_bool(0.85),
            advance: *pick(&mut rng, &[0, 1, 1, 2, 2, 2]),
            close_roll: rng.random(),
            won_share: rng.random_range(0.85..=1.0),
        });
    }
    Plan { accounts, leads, signals }
}

/// The first instant of the month `back` months before the one `t` is in.
fn month_start(t: i64, back: u32) -> i64 {
    use chrono::Datelike;
    let d = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    let (mut y, mut m) = (d.year(), d.month());
    for _ in 0..back {
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    chrono::NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(0, |t| t.and_utc().timestamp())
}

/// One past month of a CRM's history: leads with their stage changes, deals with their past.
struct PastMonth {
    leads: Vec<sc::ImportedLead>,
    deals: Vec<acc::ImportedOpportunity>,
}

/// `months` past months over the plan's accounts, oldest first, each with `n` leads. Every
/// time falls before the current month, which is played live.
fn history(plan: &Plan, n: usize, months: u32, seed: u64, now: i64) -> Vec<PastMonth> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005e_ed0f_4157_0121);
    let day = 86_400;
    let live_from = month_start(now, 0);
    let mut out = Vec::new();
    for back in (1..=months).rev() {
        let (from, to) = (month_start(now, back), month_start(now, back - 1));
        let mut month = PastMonth { leads: Vec::new(), deals: Vec::new() };
        for i in 0..n {
            let (account, _) = &plan.accounts[rng.random_range(0..plan.accounts.len())];
            let segment = Segment::try_from(account.segment).unwrap_or(Segment::Smb);
            let source = *pick(&mut rng, &[LeadSource::Inbound, LeadSource::Outbound, LeadSource::Event]);
            let id = format!("s{seed}-h{back}-lead-{i:05}");
            let created = rng.random_range(from..to - day);
            let mut changes = Vec::new();
            let at = |t: i64| (t < live_from).then(|| ts(t));
            let mql = created + rng.random_range(day / 2..5 * day);
            let sql = mql + rng.random_range(2 * day..15 * day);
            let reached_mql = rng.random_bool(0.5) && mql < live_from;
            let reached_sql = reached_mql && rng.random_bool(0.4) && sql < live_from;
            if reached_mql {
                changes.push((
                    sc::ImportedStageChange {
                        to_stage: LeadStage::Mql as i32,
                        change_time: at(mql).flatten(),
                        actor: "marketo".into(),
                        reason: "score over the MQL threshold".into(),
                    },
                    mql,
                ));
            }
            if reached_sql {
                let sdr = pick(&mut rng, &SDRS).to_string();
                changes.push((
                    sc::ImportedStageChange {
                        to_stage: LeadStage::Sql as i32,
                        change_time: at(sql).flatten(),
                        actor: sdr,
                        reason: "discovery call held".into(),
                    },
                    sql,
                ));
            }
            month.leads.push(sc::ImportedLead {
                lead: Some(sc::Lead {
                    lead_id: id.clone(),
                    account_id: account.account_id.clone(),
                    source: source as i32,
                    campaign: format!("{}-history", segment_key(segment)),
                    owner_sdr: pick(&mut rng, &SDRS).to_string(),
                    ..Default::default()
                }),
                create_time: ts(created),
                stage_changes: changes.into_iter().map(|(c, _)| c).collect(),
            });
            // Three in four SQLs were submitted; AEs accepted most, and worked and closed some.
            let submitted = sql + rng.random_range(day..4 * day);
            if !reached_sql || !rng.random_bool(0.75) || submitted >= live_from {
                continue;
            }
            let ae_pool: Vec<&str> = AES.iter().filter(|(_, s)| *s == segment).map(|(a, _)| *a).collect();
            let decided = submitted + rng.random_range(day / 4..3 * day);
            if decided >= live_from {
                continue;
            }
            let accepted = rng.random_bool(0.7);
            let amount = match segment {
                Segment::Smb => rng.random_range(8_000..40_000) * 100,
                Segment::MidMarket => rng.random_range(40_000..150_000) * 100,
                _ => rng.random_range(150_000..900_000) * 100,
            };
            let call = decided + rng.random_range(day / 2..20 * day);
            let closed = decided + rng.random_range(15 * day..60 * day);
            let close = (accepted && closed < live_from && rng.random_bool(0.7)).then(|| acc::ImportedClose {
                won: rng.random_bool(0.4),
                close_time: ts(closed),
                reason: "closed in the CRM".into(),
                ..Default::default()
            });
            month.deals.push(acc::ImportedOpportunity {
                opportunity: Some(acc::Opportunity {
                    opportunity_id: format!("s{seed}-h{back}-opp-{i:05}"),
                    lead_id: id,
                    segment: segment as i32,
                    amount: Some(Money { amount_minor: amount, currency_code: "USD".into() }),
                    expected_close_time: ts(decided + 60 * day),
                    team: format!("emea-{}", segment_key(segment)),
                    ..Default::default()
                }),
                submit_time: ts(submitted),
                submitted_by: pick(&mut rng, &SDRS).to_string(),
                decision: Some(acc::ImportedDecision {
                    accepted,
                    decided_by: pick(&mut rng, &ae_pool).to_string(),
                    decide_time: ts(decided),
                    reason: if accepted { 0 } else { acc::RejectionReason::NoBudget as i32 },
                    ..Default::default()
                }),
                activities: if accepted && call < live_from && rng.random_bool(0.85) {
                    vec![acc::Activity {
                        r#type: acc::ActivityType::Call as i32,
                        meaningful: true,
                        occur_time: ts(call),
                        note: "first conversation".into(),
                        ..Default::default()
                    }]
                } else {
                    vec![]
                },
                close,
            });
        }
        out.push(month);
    }
    out
}

/// What the demo did, counted from the services' answers.
#[derive(Default, Debug)]
struct Tally {
    accounts: u64,
    contacts: u64,
    leads: u64,
    signals_accepted: u64,
    signals_duplicate: u64,
    signals_rejected: u64,
    scorecards: u64,
    sals: u64,
    sqls: u64,
    submitted: u64,
    gate_failed: u64,
    accepted: u64,
    overrides: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    sent_back: u64,
    activities: u64,
    advanced: u64,
    won: u64,
    lost: u64,
    pipeline_minor: i64,
    won_minor: i64,
    history_months: u32,
    history_leads: u64,
    history_deals: u64,
}

fn bump(tally: &Mutex<Tally>, f: impl FnOnce(&mut Tally)) {
    if let Ok(mut t) = tally.lock() {
        f(&mut t);
    }
}

struct Tokens {
    importer: String,
    service: String,
    verifier: String,
    revops: String,
    sdr: BTreeMap<String, String>,
    ae: BTreeMap<String, String>,
}

fn tokens(tenant: &str) -> anyhow::Result<Tokens> {
    let (key, _) = dev_signing_key(&ProcessEnv);
    let issuer = TokenIssuer::hs256(key.as_bytes());
    let ttl = Duration::from_secs(4 * 3600);
    let mut sdr = BTreeMap::new();
    for s in SDRS {
        sdr.insert(s.to_string(), issuer.issue(tenant, s, &[Role::Sdr], ttl)?);
    }
    let mut ae = BTreeMap::new();
    for (a, _) in AES {
        ae.insert(a.to_string(), issuer.issue(tenant, a, &[Role::Ae], ttl)?);
    }
    Ok(Tokens {
        importer: issuer.issue(tenant, "crm-migration", &[Role::Importer], ttl)?,
        service: issuer.issue(tenant, "crm-sync", &[Role::Service], ttl)?,
        verifier: issuer.issue(tenant, "enrichment", &[Role::Verifier], ttl)?,
        revops: issuer.issue(tenant, "rita-revops", &[Role::Revops], ttl)?,
        sdr,
        ae,
    })
}

/// The example scorecard for `segment`, its framework the segment's default.
fn scorecard(segment: Segment) -> anyhow::Result<sc::Scorecard> {
    let value: serde_json::Value = serde_yaml_ng::from_str(EXAMPLE_SCORECARD)?;
    let mut card: sc::Scorecard = protojson::from_value(value, "qualify.scoring.v1.Scorecard")?;
    card.segment = segment as i32;
    let domain = qualify_domain::Segment::from_wire(segment as i32)
        .ok_or_else(|| anyhow::anyhow!("segment {segment:?} has no domain equivalent"))?;
    card.framework = domain.default_framework().to_wire();
    Ok(card)
}

/// The criteria the segment's default gate policy requires.
fn required_criteria(segment: Segment) -> Vec<Criterion> {
    qualify_domain::Segment::from_wire(segment as i32)
        .map(|s| {
            s.default_framework()
                .default_required()
                .iter()
                .filter_map(|c| Criterion::try_from(c.to_wire()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn bar(len: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template("{prefix:>12} {bar:40} {pos}/{len} {per_sec} {elapsed}")?);
    pb.set_prefix(what.to_string());
    Ok(pb)
}

/// Runs `tasks` with at most `n` in flight, ticking `pb`; the first error stops the run.
async fn bounded<F>(n: usize, pb: &ProgressBar, tasks: Vec<F>) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut s = futures::stream::iter(tasks).buffer_unordered(n.max(1));
    while let Some(r) = s.next().await {
        r?;
        pb.inc(1);
    }
    pb.finish();
    Ok(())
}

pub async fn run(g: &Global, c: Clients, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let now = qualify_platform::Clock::system().now().timestamp();
    let plan = plan(args.leads, args.seed, now);
    let t = Arc::new(tokens(&args.tenant)?);
    let tally_cell = Mutex::new(Tally::default());
    let tally = &tally_cell;
    let n = args.concurrency;
    let rid = |what: &str| format!("demo-{}-{what}", args.seed);

    // A second run of the same seed on the same tenant would only find its ids taken.
    if let Some(first) = plan.leads.first() {
        let probe = sc::GetLeadRequest { lead_id: first.lead.lead_id.clone() };
        match c.scoring.clone().get_lead(req(probe, &t.revops)?).await {
            Ok(_) => anyhow::bail!(
                "tenant {} already holds the demo of seed {}: pick another --tenant or --seed",
                args.tenant,
                args.seed
            ),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(s.into()),
        }
    }
    if !g.json() {
        println!(
            "loading a demo funnel into tenant {:?}: {} accounts, {} leads, {} signals (seed {})",
            args.tenant,
            plan.accounts.len(),
            plan.leads.len(),
            plan.signals.len(),
            args.seed
        );
    }

    // 1. RevOps publishes a scorecard per segment.
    for segment in [Segment::Smb, Segment::MidMarket, Segment::Enterprise] {
        let r = sc::PublishScorecardRequest {
            scorecard: Some(scorecard(segment)?),
            expected_version: 0,
            request_id: rid(&format!("scorecard-{}", segment_key(segment))),
        };
        c.scoring.clone().publish_scorecard(req(r, &t.revops)?).await?;
        bump(tally, |t| t.scorecards += 1);
    }

    // 2. The CRM sync brings in accounts and their buying groups.
    let pb = bar(plan.accounts.len() as u64, "accounts")?;
    let tasks: Vec<_> = plan
        .accounts
        .iter()
        .map(|(account, contacts)| {
            let (mut s, t) = (c.scoring.clone(), t.clone());
            let rid = rid(&format!("account-{}", account.account_id));
            async move {
                let r = sc::CreateAccountRequest { account: Some(account.clone()), request_id: rid.clone() };
                s.create_account(req(r, &t.service)?).await?;
                // The CRM brings the people; the enrichment integration's feed verifies their emails.
                let mut verifications = Vec::new();
                for contact in contacts {
                    verifications.push(sc::ContactVerification {
                        contact_id: contact.contact_id.clone(),
                        channel: sc::ContactChannel::Email as i32,
                        status: contact.email_status,
                        provider: "neverbounce".into(),
                        verify_time: contact.email_verify_time,
                    });
                    let entered = sc::Contact { email_status: 0, email_verify_time: None, ..contact.clone() };
                    let r = sc::CreateContactRequest {
                        contact: Some(entered),
                        request_id: format!("{rid}-{}", contact.contact_id),
                    };
                    s.create_contact(req(r, &t.service)?).await?;
                }
                let r = sc::RecordContactVerificationsRequest { verifications, request_id: format!("{rid}-verified") };
                s.record_contact_verifications(req(r, &t.verifier)?).await?;
                bump(tally, |t| {
                    t.accounts += 1;
                    t.contacts += contacts.len() as u64;
                });
                Ok(())
            }
        })
        .collect();
    bounded(n, &pb, tasks).await?;

    // 3. The CRM's history of the past months, imported with its own times.
    let past = history(&plan, args.leads / 2, args.history_months, args.seed, now);
    let total: usize = past.iter().map(|m| m.leads.len() + m.deals.len()).sum();
    let pb = bar(total as u64, "history")?;
    for month in &past {
        for batch in month.leads.chunks(1000) {
            let r = sc::ImportLeadsRequest { leads: batch.to_vec() };
            let resp = c.scoring.clone().import_leads(req(r, &t.importer)?).await?.into_inner();
            bump(tally, |t| t.history_leads += resp.imported_count as u64);
            pb.inc(batch.len() as u64);
        }
        for batch in month.deals.chunks(1000) {
            let r = acc::ImportOpportunitiesRequest { opportunities: batch.to_vec() };
            let resp = c.acceptance.clone().import_opportunities(req(r, &t.importer)?).await?.into_inner();
            bump(tally, |t| t.history_deals += resp.imported_count as u64);
            pb.inc(batch.len() as u64);
        }
    }
    pb.finish();
    bump(tally, |t| t.history_months = args.history_months);

    // 4. Leads of the current month, live.
    let pb = bar(plan.leads.len() as u64, "leads")?;
    let tasks: Vec<_> = plan
        .leads
        .iter()
        .map(|l| {
            let (mut s, t) = (c.scoring.clone(), t.clone());
            let r = sc::CreateLeadRequest { lead: Some(l.lead.clone()), request_id: rid(&l.lead.lead_id) };
            async move {
                s.create_lead(req(r, &t.service)?).await?;
                bump(tally, |t| t.leads += 1);
                Ok(())
            }
        })
        .collect();
    bounded(n, &pb, tasks).await?;

    // 5. A quarter of engagement signals, in batches; crossing the MQL threshold moves leads.
    let pb = bar(plan.signals.len() as u64, "signals")?;
    let tasks: Vec<_> = plan
        .signals
        .chunks(SIGNAL_BATCH)
        .map(|batch| {
            let (mut s, t, pb) = (c.scoring.clone(), t.clone(), pb.clone());
            let r = sc::IngestSignalsRequest { signals: batch.to_vec() };
            async move {
                let resp = s.ingest_signals(req(r, &t.revops)?).await?.into_inner();
                bump(tally, |t| {
                    t.signals_accepted += resp.accepted_count as u64;
                    t.signals_duplicate += resp.duplicate_count as u64;
                    t.signals_rejected += resp.rejected_count as u64;
                });
                pb.inc(batch.len() as u64 - 1);
                Ok(())
            }
        })
        .collect();
    bounded(n.min(4), &pb, tasks).await?;

    // 6. SDRs work their leads, AEs decide and work their deals.
    let journeys: Vec<&LeadPlan> = plan.leads.iter().filter(|l| l.sal).collect();
    let pb = bar(journeys.len() as u64, "pipeline")?;
    let tasks: Vec<_> = journeys
        .into_iter()
        .map(|l| {
            let (c, t) = (c.clone(), t.clone());
            let prefix = rid(&l.lead.lead_id);
            async move { journey(c, &t, l, &prefix, now, tally).await }
        })
        .collect();
    bounded(n, &pb, tasks).await?;

    // 7. Metrics follows the event streams: wait until the funnel shows everything.
    let tally = tally_cell.into_inner().map_err(|_| anyhow::anyhow!("a task panicked while counting"))?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("waiting for metrics to catch up with the event streams");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let period = qualify_platform::Clock::system().now().format("%Y-%m").to_string();
    let start_period = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().format("%Y-%m").to_string();
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let mut figures;
    loop {
        let r = met::GetFunnelRequest {
            start_period: start_period.clone(),
            end_period: period.clone(),
            ..Default::default()
        };
        let resp = c.metrics.clone().get_funnel(req(r, &t.revops)?).await?.into_inner();
        figures = resp.rows.first().and_then(|r| r.figures.clone()).unwrap_or_default();
        let caught_up = figures.leads >= tally.leads as i64
            && figures.sqos_submitted >= tally.submitted as i64
            && figures.sqos_accepted >= tally.accepted as i64
            && figures.sqos_rejected >= tally.rejected as i64
            && figures.won + figures.lost >= (tally.won + tally.lost) as i64;
        if caught_up || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    spinner.finish_and_clear();
    let elapsed = started.elapsed();
    summary(g, &args, &tally, &figures, elapsed)
}

/// One lead's way through the funnel, each step by the person who makes it.
async fn journey(
    mut c: Clients,
    t: &Tokens,
    l: &LeadPlan,
    prefix: &str,
    now: i64,
    tally: &Mutex<Tally>,
) -> anyhow::Result<()> {
    let lead_id = l.lead.lead_id.clone();
    let sdr = l.lead.owner_sdr.as_str();
    let sdr_token = t.sdr.get(sdr).ok_or_else(|| anyhow::anyhow!("no token for {sdr}"))?;
    let r = sc::AcceptLeadRequest { lead_id: lead_id.clone(), request_id: format!("{prefix}-sal") };
    c.scoring.accept_lead(req(r, sdr_token)?).await?;
    bump(tally, |t| t.sals += 1);
    if !l.sql {
        return Ok(());
    }
    let r = sc::QualifyLeadRequest {
        lead_id: lead_id.clone(),
        discovery_call_held: true,
        pain_statement: "Pipeline reviews argue about stage definitions; forecast misses by 30% every quarter.".into(),
        request_id: format!("{prefix}-sql"),
    };
    c.scoring.qualify_lead(req(r, sdr_token)?).await?;
    bump(tally, |t| t.sqls += 1);
    if !l.submit {
        return Ok(());
    }

    let day = 86_400;
    let criteria = required_criteria(l.segment);
    let evidence: Vec<_> = criteria
        .iter()
        .enumerate()
        .map(|(i, c)| acc::CriterionEvidence {
            criterion: *c as i32,
            status: if l.gap == 1 && i == criteria.len() - 1 {
                EvidenceStatus::Partial as i32
            } else {
                EvidenceStatus::Confirmed as i32
            },
            note: format!("{} on the discovery call", c.as_str_name().trim_start_matches("CRITERION_").to_lowercase()),
            confirmed_by: sdr.to_string(),
        })
        .collect();
    let mut stakeholders =
        vec![acc::Stakeholder { contact_id: l.eb.clone(), role: BuyingRole::EconomicBuyer as i32, verify_time: None }];
    if l.gap != 2 {
        stakeholders.push(acc::Stakeholder {
            contact_id: l.champion.clone(),
            role: BuyingRole::Champion as i32,
            verify_time: None,
        });
    }
    let next_step = (l.gap != 3).then(|| acc::NextStep {
        description: "demo with the buying group".into(),
        scheduled_time: ts(now + l.next_step_days * day),
        r#type: acc::ActivityType::Demo as i32,
    });
    let team = match l.segment {
        Segment::Smb => "smb-emea",
        Segment::MidMarket => "mid-market",
        _ => "enterprise",
    };
    let opp_id = lead_id.replace("-lead-", "-opp-");
    let opportunity = acc::Opportunity {
        opportunity_id: opp_id.clone(),
        lead_id: lead_id.clone(),
        amount: Some(Money { amount_minor: l.amount_minor, currency_code: "USD".into() }),
        expected_close_time: ts(now + l.close_in_days * day),
        segment: l.segment as i32,
        evidence,
        stakeholders,
        competitors: vec!["LegacyLedger".into()],
        next_step,
        team: team.into(),
        ..Default::default()
    };
    let r = acc::SubmitOpportunityRequest { opportunity: Some(opportunity), request_id: format!("{prefix}-submit") };
    let submitted = c.acceptance.submit_opportunity(req(r, sdr_token)?).await?.into_inner();
    let passed = submitted.gate.as_ref().is_some_and(|g| g.passed);
    bump(tally, |t| {
        t.submitted += 1;
        t.gate_failed += u64::from(!passed);
    });

    let ae_token = t.ae.get(&l.ae).ok_or_else(|| anyhow::anyhow!("no token for {}", l.ae))?;
    let roll = l.decision_roll;
    enum Act {
        Accept(String),
        Reject,
        SendBack,
    }
    let act = match (passed, roll) {
        (true, r) if r < 0.70 => Act::Accept(String::new()),
        (true, r) if r < 0.85 => Act::Reject,
        (true, _) => Act::SendBack,
        (false, r) if r < 0.45 => Act::Reject,
        (false, r) if r < 0.85 => Act::SendBack,
        (false, _) => Act::Accept("strategic logo: the CFO committed budget on the call, paperwork follows".into()),
    };
    match act {
        Act::Reject => {
            let reason = if passed {
                l.reject_reason
            } else {
                match l.gap {
                    1 => acc::RejectionReason::NoBudget,
                    2 => acc::RejectionReason::NoAuthority,
                    3 => acc::RejectionReason::NoNextStep,
                    _ => acc::RejectionReason::BadContactData,
                }
            };
            let r = acc::RejectOpportunityRequest {
                opportunity_id: opp_id,
                expected_version: 0,
                reason: reason as i32,
                note: "reviewed with the SDR".into(),
                request_id: format!("{prefix}-reject"),
            };
            c.acceptance.reject_opportunity(req(r, ae_token)?).await?;
            let name = reason.as_str_name().trim_start_matches("REJECTION_REASON_").to_lowercase();
            bump(tally, |t| {
                t.rejected += 1;
                *t.rejected_by_reason.entry(name.clone()).or_default() += 1;
            });
            return Ok(());
        }
        Act::SendBack => {
            let r = acc::SendBackOpportunityRequest {
                opportunity_id: opp_id,
                expected_version: 0,
                note: "map the rest of the buying group and book the demo first".into(),
                request_id: format!("{prefix}-send-back"),
            };
            c.acceptance.send_back_opportunity(req(r, ae_token)?).await?;
            bump(tally, |t| t.sent_back += 1);
            return Ok(());
        }
        Act::Accept(justification) => {
            let overridden = !justification.is_empty();
            let r = acc::AcceptOpportunityRequest {
                opportunity_id: opp_id.clone(),
                expected_version: 0,
                override_justification: justification,
                request_id: format!("{prefix}-accept"),
            };
            c.acceptance.accept_opportunity(req(r, ae_token)?).await?;
            bump(tally, |t| {
                t.accepted += 1;
                t.overrides += u64::from(overridden);
                t.pipeline_minor += l.amount_minor;
            });
        }
    }

    if l.activity {
        let r = acc::RecordActivityRequest {
            opportunity_id: opp_id.clone(),
            activity: Some(acc::Activity {
                r#type: acc::ActivityType::Demo as i32,
                meaningful: true,
                occur_time: ts(qualify_platform::Clock::system().now().timestamp()),
                note: "demo with the economic buyer".into(),
                ..Default::default()
            }),
            request_id: format!("{prefix}-activity"),
        };
        c.acceptance.record_activity(req(r, ae_token)?).await?;
        bump(tally, |t| t.activities += 1);
    } else {
        return Ok(());
    }
    for step in 0..l.advance {
        let r = acc::AdvanceOpportunityRequest {
            opportunity_id: opp_id.clone(),
            expected_version: 0,
            request_id: format!("{prefix}-advance-{step}"),
        };
        c.acceptance.advance_opportunity(req(r, ae_token)?).await?;
        bump(tally, |t| t.advanced += 1);
    }
    // Deals that reached negotiation mostly close; a few earlier ones are lost.
    let close = match l.advance {
        2 => l.close_roll < 0.85,
        _ => l.close_roll < 0.15,
    };
    if !close {
        return Ok(());
    }
    let won = l.advance == 2 && l.close_roll < 0.55;
    let amount = if won { (l.amount_minor as f64 * l.won_share / 100.0).round() as i64 * 100 } else { l.amount_minor };
    let r = acc::CloseOpportunityRequest {
        opportunity_id: opp_id,
        expected_version: 0,
        won,
        amount: won.then(|| Money { amount_minor: amount, currency_code: "USD".into() }),
        reason: if won { "signed the annual plan".into() } else { "lost to LegacyLedger on price".into() },
        request_id: format!("{prefix}-close"),
    };
    c.acceptance.close_opportunity(req(r, ae_token)?).await?;
    bump(tally, |t| {
        if won {
            t.won += 1;
            t.won_minor += amount;
        } else {
            t.lost += 1;
        }
    });
    Ok(())
}

fn summary(g: &Global, args: &DemoArgs, t: &Tally, f: &met::FunnelFigures, elapsed: Duration) -> anyhow::Result<()> {
    let consistent = f.leads == t.leads as i64
        && f.sqls == t.sqls as i64
        && f.sqos_submitted == t.submitted as i64
        && f.sqos_accepted == t.accepted as i64
        && f.sqos_rejected == t.rejected as i64
        && f.won == t.won as i64
        && f.lost == t.lost as i64;
    if g.json() {
        let out = json!({
            "tenant": args.tenant, "seed": args.seed, "seconds": elapsed.as_secs_f64(),
            "accounts": t.accounts, "contacts": t.contacts, "leads": t.leads, "scorecards": t.scorecards,
            "signals": {"accepted": t.signals_accepted, "duplicate": t.signals_duplicate, "rejected": t.signals_rejected},
            "sals": t.sals, "sqls": t.sqls, "submitted": t.submitted, "gateFailed": t.gate_failed,
            "accepted": t.accepted, "overrides": t.overrides, "rejected": t.rejected,
            "rejectedByReason": t.rejected_by_reason, "sentBack": t.sent_back, "activities": t.activities,
            "advanced": t.advanced, "won": t.won, "lost": t.lost,
            "pipelineMinor": t.pipeline_minor, "wonMinor": t.won_minor,
            "history": {"months": t.history_months, "leads": t.history_leads, "opportunities": t.history_deals},
            "metricsCaughtUp": consistent,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!();
        println!("demo loaded into tenant {:?} in {:.1}s (seed {})", args.tenant, elapsed.as_secs_f64(), args.seed);
        println!(
            "  {} accounts with {} contacts, {} leads, {} signals accepted, 3 scorecards (SMB, mid-market, enterprise)",
            t.accounts, t.contacts, t.leads, t.signals_accepted
        );
        println!(
            "  SDRs moved {} leads to SAL and {} to SQL, and submitted {} opportunities ({} failing the gate)",
            t.sals, t.sqls, t.submitted, t.gate_failed
        );
        let reasons: Vec<_> = t.rejected_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "  AEs accepted {} ({} overriding the gate), rejected {} ({}), sent back {}",
            t.accepted,
            t.overrides,
            t.rejected,
            reasons.join(", "),
            t.sent_back
        );
        if t.history_months > 0 {
            println!(
                "  history of the {} months before, imported with its own times: {} leads, {} opportunities",
                t.history_months, t.history_leads, t.history_deals
            );
        }
        println!(
            "  {} deals advanced, {} won ({} USD), {} lost; {} USD of pipeline accepted",
            t.advanced,
            t.won,
            money(t.won_minor),
            t.lost,
            money(t.pipeline_minor)
        );
        if consistent {
            println!("  metrics shows all of it: {} leads, {} SQOs accepted, {} won", f.leads, f.sqos_accepted, f.won);
        } else {
            println!(
                "  metrics has not caught up yet (funnel shows {} leads, {} SQOs accepted): look again in a moment",
                f.leads, f.sqos_accepted
            );
        }
        println!();
        println!("Look at the funnel:");
        if args.tenant != crate::commands::DEV_TENANT {
            println!(
                "  export QUALIFY_TOKEN=$(cargo run -q -p qualifyctl -- token --tenant {} --subject ada --role revops)",
                args.tenant
            );
        }
        println!("  cargo run -p qualifyctl -- funnel --by source");
        if t.history_months > 0 {
            let from = chrono::DateTime::from_timestamp(
                month_start(qualify_platform::Clock::system().now().timestamp(), t.history_months),
                0,
            )
            .unwrap_or_default()
            .format("%Y-%m");
            println!("  cargo run -p qualifyctl -- funnel --from {from} --by period");
        }
        println!("  cargo run -p qualifyctl -- funnel --by segment,rep");
        println!("  cargo run -p qualifyctl -- health");
        println!("  cargo run -p qualifyctl -- lead score --id {}", format_args!("s{}-lead-00000", args.seed));
    }
    Ok(())
}
