//! `qualify-loadgen`: drives one unary RPC of the cluster at a fixed
//! concurrency for a fixed time and prints requests/s, p50 and p99, next to a
//! baseline measured in the same run on the same machine: the same generator
//! against a bare tonic server answering grpc.health.v1 `Check` (a trivial
//! echo with no layers, no auth, no storage). Read results as the ratio.
//!
//! ```text
//! cargo run --release -p qualify-loadgen -- --scenario get-account --concurrency 64 --seconds 10
//! ```

mod funnel;
mod import;
mod ingest;
mod overload;
mod paced;
mod rescore;
mod soak;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::common::{Criterion, EvidenceStatus, LeadSource, Segment};
use qualify_proto::scoring::{
    self as sc, lead_scoring_service_client::LeadScoringServiceClient, score_lead_request::Target,
};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Only the baseline.
    Baseline,
    /// `GetAccount` of one stored account (auth + one primary-key read).
    GetAccount,
    /// `CreateLead` with a fresh id each time and a request_id (auth + idempotent write transaction).
    CreateLead,
    /// `EvaluateGate` of an inline candidate against the stored policy.
    EvaluateGate,
    /// `ScoreLead` of an inline lead (attributes and 50 signals in the request, scorecard from the cache).
    ScoreInline,
    /// `ScoreLead` of a stored lead by id (attributes and 50 signals read from the database).
    ScoreStored,
    /// `SubmitOpportunity` (snapshot from lead scoring over gRPC) then `AcceptOpportunity` by an AE:
    /// one unit is the pair, two write transactions. Compare with `--pgbench` (one-row inserts).
    AcceptOpportunity,
    /// Metrics on PostgreSQL: `--leads` leads and `--opportunities` opportunities ingested as events
    /// (events/s), then `GetFunnel` by source and month against the GROUP BY over the raw rows.
    Funnel,
    /// `IngestSignals` on PostgreSQL from each of `--callers` callers, batches of 1,000 fresh
    /// signals over `--leads` leads; with `--pgbench`, multi-row inserts of signal-shaped rows.
    IngestSignals,
    /// `SubmitOpportunity` then `AcceptOpportunity` started at `--rate` pairs a second whatever
    /// the answers' speed (open loop): submit and accept p50/p99, next to pgbench's latency for
    /// one-row insert transactions at twice that rate.
    AcceptLatency,
    /// `ScoreLeads` with apply over `--leads` leads loaded into PostgreSQL, next to PostgreSQL
    /// reading and rewriting the same rows in one UPDATE.
    Rescore,
    /// `ImportLeads` on PostgreSQL of `--leads` leads with a stage change each, in batches of
    /// 1,000 from `--concurrency` callers; with `--pgbench`, multi-row inserts of rows of the same
    /// shapes in batches of the same size from as many clients.
    ImportLeads,
    /// `ScoreLead` by id from `--concurrency` callers, then from `--overload` times as many, then from
    /// `--concurrency` again, against a service shedding beyond `--limit` requests in flight and
    /// against one that never sheds: accepted req/s and p99, shed count and latency, memory,
    /// recovery.
    Overload,
    /// All three services under a bounded mixed load (stored scoring, submit + accept, funnel
    /// queries) for `--seconds`, sampled every `--sample-secs`: fails on any error or on memory or
    /// p99 growing between the second and the last quarter of the run.
    Soak,
}

#[derive(Parser)]
#[command(about = "Load generator for the Qualify cluster, with a bare tonic baseline in the same run")]
struct Args {
    /// What to drive.
    #[arg(long, value_enum, default_value = "get-account")]
    scenario: Scenario,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per measurement (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// HTTP/2 connections the clients spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Run the service on the machine's PostgreSQL (QUALIFY_TEST_DATABASE_URL) instead of in-memory SQLite.
    #[arg(long)]
    postgres: bool,
    /// Give the service the machine's Redis as its scorecard cache.
    #[arg(long)]
    redis: bool,
    /// `get-account` and `create-lead` over mutual TLS (certificates from a CA made for the run;
    /// the service requires client certificates), to compare with the same scenario in plaintext.
    #[arg(long)]
    tls: bool,
    /// Also measure `pgbench` on the same PostgreSQL in this run, with as many clients as the
    /// service has pooled connections and as the load's concurrency: select-only (`-S`) for
    /// reads, a one-row-insert transaction for `accept-opportunity`.
    #[arg(long)]
    pgbench: bool,
    /// Stored leads to spread ScoreStored requests over; leads loaded by `funnel`.
    #[arg(long, default_value_t = 1000)]
    leads: usize,
    /// Opportunities loaded by `funnel`.
    #[arg(long, default_value_t = 200_000)]
    opportunities: usize,
    /// Timed `GetFunnel` calls of `funnel`.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// `overload`: the service's QUALIFY_MAX_CONCURRENT_REQUESTS.
    #[arg(long, default_value_t = 32)]
    limit: usize,
    /// `soak`: seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// `accept-latency`: pairs started per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// `ingest-signals`: the caller counts measured one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    callers: Vec<usize>,
    /// `overload`: the overload phase runs this many times `--concurrency` callers.
    #[arg(long, default_value_t = 8)]
    overload: usize,
}

struct Stats {
    ok: u64,
    /// Failures other than load shedding.
    errors: u64,
    /// Requests refused with RESOURCE_EXHAUSTED, and how fast.
    shed: u64,
    shed_hist: Histogram<u64>,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn line(&self, name: &str) -> String {
        let mut line = format!(
            "{name:<28} {:>10.0} req/s   p50 {:>8.3} ms   p99 {:>8.3} ms   errors {}",
            self.rps(),
            ms(&self.hist, 0.5),
            ms(&self.hist, 0.99),
            self.errors
        );
        if self.shed > 0 {
            line += &format!(
                "   shed {} ({:.0}/s, p50 {:.3} ms, p99 {:.3} ms)",
                self.shed,
                self.shed as f64 / self.elapsed.as_secs_f64(),
                ms(&self.shed_hist, 0.5),
                ms(&self.shed_hist, 0.99)
            );
        }
        line
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// A latency quantile of a microsecond histogram, in milliseconds.
pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A CA made for one run, the service's certificate (client certificates required) and a
/// client's; the files go with it.
struct Certificates {
    dir: std::path::PathBuf,
    server: qualify_platform::tls::TlsFiles,
    client: qualify_platform::tls::ClientTls,
}

impl Certificates {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("qualify-loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca = qualify_testkit::tls::TestCa::new("qualify-loadgen CA");
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem())?;
        let (cert, key) = ca.server().write(&dir, "server");
        let server = qualify_platform::tls::TlsFiles { cert, key, client_ca: Some(ca_file.clone()) };
        let client = qualify_platform::tls::ClientTls {
            ca: Some(ca_file),
            identity: Some(ca.client("loadgen").write(&dir, "client")),
        };
        Ok(Certificates { dir, server, client })
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn channels(url: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut v = Vec::new();
    for _ in 0..n.max(1) {
        v.push(Endpoint::from_shared(url.to_string())?.tcp_nodelay(true).connect().await?);
    }
    Ok(v)
}

/// Runs `call(channel, i)` from `concurrency` workers for `seconds` (after a warm-up).
async fn drive<F, Fut>(chans: &[Channel], concurrency: usize, seconds: u64, call: F) -> Stats
where
    F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    drive_with_backoff(chans, concurrency, seconds, Duration::ZERO, call).await
}

/// [`drive`], with each worker pausing `backoff` after a RESOURCE_EXHAUSTED, as a client that
/// honours the server's retry advice does.
async fn drive_with_backoff<F, Fut>(
    chans: &[Channel],
    concurrency: usize,
    seconds: u64,
    backoff: Duration,
    call: F,
) -> Stats
where
    F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let ch = chans[w % chans.len()].clone();
        let call = call.clone();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let (mut hist, mut shed_hist) = (histogram(), histogram());
            let (mut ok, mut errors, mut shed) = (0u64, 0u64, 0u64);
            loop {
                let start = Instant::now();
                if start >= stop_at {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let r = call(ch.clone(), i).await;
                if start >= warm_until {
                    let micros = start.elapsed().as_micros().max(1) as u64;
                    match r {
                        Ok(()) => {
                            ok += 1;
                            let _ = hist.record(micros);
                        }
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            shed += 1;
                            let _ = shed_hist.record(micros);
                            if !backoff.is_zero() {
                                tokio::time::sleep(backoff).await;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            (ok, errors, shed, hist, shed_hist)
        }));
    }
    let mut total = Stats {
        ok: 0,
        errors: 0,
        shed: 0,
        shed_hist: histogram(),
        elapsed: Duration::from_secs(seconds),
        hist: histogram(),
    };
    for w in workers {
        if let Ok((ok, errors, shed, hist, shed_hist)) = w.await {
            total.ok += ok;
            total.errors += errors;
            total.shed += shed;
            let _ = total.hist.add(hist);
            let _ = total.shed_hist.add(shed_hist);
        }
    }
    total
}

async fn baseline(args: &Args) -> anyhow::Result<Stats> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))),
    );
    let chans = channels(&format!("http://{addr}"), args.connections).await?;
    Ok(drive(&chans, args.concurrency, args.seconds, |ch, _| async move {
        tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .map(|_| ())
    })
    .await)
}

fn candidate() -> acc::GateCandidate {
    let ts = |days: i64| {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        Some(prost_types::Timestamp { seconds: now + days * 86_400, nanos: 0 })
    };
    acc::GateCandidate {
        segment: Segment::Smb as i32,
        evidence: [Criterion::Budget, Criterion::Authority, Criterion::Need, Criterion::Timeline]
            .map(|c| acc::CriterionEvidence {
                criterion: c as i32,
                status: EvidenceStatus::Confirmed as i32,
                note: String::new(),
                confirmed_by: "sam".into(),
            })
            .to_vec(),
        stakeholders: vec![
            acc::Stakeholder {
                contact_id: "c1".into(),
                role: qualify_proto::common::BuyingRole::EconomicBuyer as i32,
                verify_time: ts(-2),
            },
            acc::Stakeholder {
                contact_id: "c2".into(),
                role: qualify_proto::common::BuyingRole::Champion as i32,
                verify_time: ts(-2),
            },
        ],
        next_step: Some(acc::NextStep { description: "demo".into(), scheduled_time: ts(3), r#type: 0 }),
        score: 70,
    }
}

/// An opportunity for `lead-1` that passes the SMB default gate: BANT
/// confirmed, economic buyer and champion mapped, a demo in three days. A lead
/// carries one live ordinary opportunity, so the load's many are expansions
/// (the same submission and acceptance work, gate included).
pub(crate) fn opportunity(id: &str) -> acc::Opportunity {
    let c = candidate();
    acc::Opportunity {
        opportunity_id: id.to_string(),
        lead_id: "lead-1".into(),
        amount: Some(qualify_proto::common::Money { amount_minor: 2_400_000, currency_code: "USD".into() }),
        expected_close_time: c.next_step.as_ref().and_then(|n| n.scheduled_time),
        segment: c.segment,
        evidence: c.evidence,
        stakeholders: c.stakeholders,
        next_step: c.next_step,
        team: "emea-smb".into(),
        expansion_reason: "load: another team of the account".into(),
        ..Default::default()
    }
}

/// Lead scoring seeded by [`seed_sql_lead`] and acceptance calling it; channels to acceptance.
pub(crate) async fn acceptance_with_sql_lead(
    args: &Args,
    backend: Backend,
) -> anyhow::Result<(qualify_testkit::Running, qualify_testkit::Running, Vec<Channel>)> {
    let scoring = spawn::<qualify_scoring::Scoring>(config("scoring", backend).await).await;
    seed_sql_lead(scoring.channel().await).await?;
    let mut cfg = config("acceptance", backend).await;
    cfg.scoring_url = Some(scoring.url());
    let svc = spawn::<qualify_acceptance::Acceptance>(cfg).await;
    let chans = channels(&svc.url(), args.connections).await?;
    Ok((scoring, svc, chans))
}

/// Lead scoring with `lead-1` at SQL and the candidate's two contacts verified two days ago (by the verifier's feed).
async fn seed_sql_lead(ch: Channel) -> anyhow::Result<()> {
    let mut c = LeadScoringServiceClient::new(ch);
    let bot = token("bench", "sync", &[Role::Service]);
    let sdr = token("bench", "sam", &[Role::Sdr]);
    let account = sc::Account { account_id: "acc-1".into(), segment: Segment::Smb as i32, ..Default::default() };
    let mut up = false;
    for _ in 0..100 {
        let req = sc::CreateAccountRequest { account: Some(account.clone()), request_id: "seed-account".into() };
        if c.create_account(authed(req, &bot)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(up, "the scoring service did not come up");
    let mut findings = Vec::new();
    for s in candidate().stakeholders {
        let contact = sc::Contact {
            contact_id: s.contact_id.clone(),
            account_id: "acc-1".into(),
            full_name: s.contact_id.clone(),
            buying_role: s.role,
            email: format!("{}@bench.test", s.contact_id),
            ..Default::default()
        };
        c.create_contact(authed(sc::CreateContactRequest { contact: Some(contact), ..Default::default() }, &bot))
            .await?;
        findings.push(sc::ContactVerification {
            contact_id: s.contact_id,
            channel: sc::ContactChannel::Email as i32,
            status: sc::VerificationStatus::Verified as i32,
            provider: "bench-verifier".into(),
            verify_time: s.verify_time,
        });
    }
    let verifier = token("bench", "enricher", &[Role::Verifier]);
    let feed = sc::RecordContactVerificationsRequest { verifications: findings, request_id: String::new() };
    c.record_contact_verifications(authed(feed, &verifier)).await?;
    let lead = sc::Lead {
        lead_id: "lead-1".into(),
        account_id: "acc-1".into(),
        source: LeadSource::Inbound as i32,
        owner_sdr: "sam".into(),
        contact_id: "c1".into(),
        ..Default::default()
    };
    c.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &bot)).await?;
    c.accept_lead(authed(sc::AcceptLeadRequest { lead_id: "lead-1".into(), request_id: String::new() }, &sdr)).await?;
    let q = sc::QualifyLeadRequest {
        lead_id: "lead-1".into(),
        discovery_call_held: true,
        pain_statement: "month-end close takes nine days".into(),
        request_id: String::new(),
    };
    c.qualify_lead(authed(q, &sdr)).await?;
    Ok(())
}

/// Request handling is allocation-heavy (protobuf, HTTP/2 frames): mimalloc.
#[global_allocator]
static ALLOCATOR: qualify_platform::Allocator = qualify_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = if args.postgres { Backend::Postgres } else { Backend::Sqlite };
    println!(
        "qualify-loadgen: scenario {:?}, concurrency {}, {} s, {} connections, {:?}",
        args.scenario, args.concurrency, args.seconds, args.connections, backend
    );
    if matches!(args.scenario, Scenario::Funnel) {
        return funnel::run(args.leads, args.opportunities, args.iterations).await;
    }
    if matches!(args.scenario, Scenario::Overload) {
        return overload::run(&args, backend).await;
    }
    if matches!(args.scenario, Scenario::Soak) {
        return soak::run(&args, backend).await;
    }
    if matches!(args.scenario, Scenario::IngestSignals) {
        return ingest::run(&args, backend).await;
    }
    if matches!(args.scenario, Scenario::Rescore) {
        return rescore::run(&args, backend).await;
    }
    if matches!(args.scenario, Scenario::ImportLeads) {
        return import::run(&args, backend).await;
    }
    if matches!(args.scenario, Scenario::AcceptLatency) {
        return paced::run(&args, backend).await;
    }
    let base = baseline(&args).await?;
    println!("{}", base.line("baseline (bare tonic Check)"));
    let t = token("bench", "bench-user", &[Role::Sdr, Role::Service]);
    let stats = match args.scenario {
        Scenario::Baseline
        | Scenario::Funnel
        | Scenario::Overload
        | Scenario::Soak
        | Scenario::IngestSignals
        | Scenario::Rescore
        | Scenario::ImportLeads
        | Scenario::AcceptLatency => {
            return Ok(());
        }
        Scenario::GetAccount | Scenario::CreateLead => {
            let mut cfg = config("scoring", backend).await;
            let tls = args.tls.then(Certificates::new).transpose()?;
            if let Some(t) = &tls {
                cfg.tls = Some(t.server.clone());
            }
            let svc = spawn::<qualify_scoring::Scoring>(cfg).await;
            // Both ways through the services' own channel, so only TLS differs between them.
            let client_tls = tls.as_ref().map(|t| t.client.clone()).unwrap_or_default();
            let chans = (0..args.connections.max(1))
                .map(|_| qualify_platform::client::channel(&svc.url(), None, &client_tls))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut c = LeadScoringServiceClient::new(chans[0].clone());
            let account =
                sc::Account { account_id: "acc-1".into(), display_name: "Bench".into(), ..Default::default() };
            let setup =
                || authed(sc::CreateAccountRequest { account: Some(account.clone()), request_id: String::new() }, &t);
            let mut ready = false;
            for _ in 0..100 {
                if c.create_account(setup()).await.is_ok() {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::ensure!(ready, "the scoring service did not come up");
            let t = Arc::new(t.clone());
            match args.scenario {
                Scenario::GetAccount => {
                    drive(&chans, args.concurrency, args.seconds, move |ch, _| {
                        let t = t.clone();
                        async move {
                            LeadScoringServiceClient::new(ch)
                                .get_account(authed(sc::GetAccountRequest { account_id: "acc-1".into() }, &t))
                                .await
                                .map(|_| ())
                        }
                    })
                    .await
                }
                _ => {
                    drive(&chans, args.concurrency, args.seconds, move |ch, i| {
                        let t = t.clone();
                        async move {
                            let lead = sc::Lead {
                                lead_id: format!("lead-{i}"),
                                account_id: "acc-1".into(),
                                source: LeadSource::Inbound as i32,
                                ..Default::default()
                            };
                            LeadScoringServiceClient::new(ch)
                                .create_lead(authed(
                                    sc::CreateLeadRequest { lead: Some(lead), request_id: format!("r-{i}") },
                                    &t,
                                ))
                                .await
                                .map(|_| ())
                        }
                    })
                    .await
                }
            }
        }
        Scenario::ScoreInline | Scenario::ScoreStored => {
            let mut cfg = config("scoring", backend).await;
            if args.redis {
                cfg = qualify_testkit::with_redis(cfg).await;
            }
            let svc = spawn::<qualify_scoring::Scoring>(cfg).await;
            let chans = channels(&svc.url(), args.connections).await?;
            let revops = token("bench", "rita", &[Role::Revops]);
            seed_scoring(
                chans[0].clone(),
                &t,
                &revops,
                if matches!(args.scenario, Scenario::ScoreStored) { args.leads } else { 0 },
            )
            .await?;
            let t = Arc::new(t.clone());
            let leads = args.leads.max(1) as u64;
            if matches!(args.scenario, Scenario::ScoreInline) {
                let inline = Arc::new(inline_lead());
                drive(&chans, args.concurrency, args.seconds, move |ch, _| {
                    let (t, inline) = (t.clone(), inline.clone());
                    async move {
                        let req = sc::ScoreLeadRequest {
                            target: Some(Target::Inline((*inline).clone())),
                            scorecard_version: 0,
                            as_of_time: None,
                        };
                        LeadScoringServiceClient::new(ch).score_lead(authed(req, &t)).await.map(|_| ())
                    }
                })
                .await
            } else {
                drive(&chans, args.concurrency, args.seconds, move |ch, i| {
                    let t = t.clone();
                    async move {
                        let req = sc::ScoreLeadRequest {
                            target: Some(Target::LeadId(format!("lead-{}", i % leads))),
                            scorecard_version: 0,
                            as_of_time: None,
                        };
                        LeadScoringServiceClient::new(ch).score_lead(authed(req, &t)).await.map(|_| ())
                    }
                })
                .await
            }
        }
        Scenario::AcceptOpportunity => {
            let (scoring, _svc, chans) = acceptance_with_sql_lead(&args, backend).await?;
            let sdr = Arc::new(token("bench", "sam", &[Role::Sdr]));
            let ae = Arc::new(token("bench", "alex", &[Role::Ae]));
            let stats = drive(&chans, args.concurrency, args.seconds, move |ch, i| {
                let (sdr, ae) = (sdr.clone(), ae.clone());
                async move {
                    let mut c = OpportunityAcceptanceServiceClient::new(ch);
                    let id = format!("opp-{i}");
                    let req = acc::SubmitOpportunityRequest {
                        opportunity: Some(opportunity(&id)),
                        request_id: format!("submit-{i}"),
                    };
                    c.submit_opportunity(authed(req, &sdr)).await?;
                    let req = acc::AcceptOpportunityRequest {
                        opportunity_id: id,
                        request_id: format!("accept-{i}"),
                        ..Default::default()
                    };
                    let accepted = c.accept_opportunity(authed(req, &ae)).await?.into_inner();
                    match accepted.opportunity.map(|o| o.state) {
                        Some(s) if s == acc::OpportunityState::Accepted as i32 => Ok(()),
                        other => Err(Status::internal(format!("accepted opportunity is in state {other:?}"))),
                    }
                }
            })
            .await;
            drop(scoring);
            stats
        }
        Scenario::EvaluateGate => {
            let svc = spawn::<qualify_acceptance::Acceptance>(config("acceptance", backend).await).await;
            let chans = channels(&svc.url(), args.connections).await?;
            let t = Arc::new(t);
            drive(&chans, args.concurrency, args.seconds, move |ch, _| {
                let t = t.clone();
                async move {
                    OpportunityAcceptanceServiceClient::new(ch)
                        .evaluate_gate(authed(acc::EvaluateGateRequest { candidate: Some(candidate()) }, &t))
                        .await
                        .map(|_| ())
                }
            })
            .await
        }
    };
    let over = if args.tls { " over TLS" } else { "" };
    println!("{}", stats.line(&format!("{:?}{over}", args.scenario)));
    println!("ratio to baseline: {:.2}x requests/s", stats.rps() / base.rps().max(1.0));
    if args.pgbench {
        let clients = qualify_testkit::config("pgbench", Backend::Sqlite).await.database_max_connections.max(8);
        let workload = if matches!(args.scenario, Scenario::AcceptOpportunity) {
            Pgbench::InsertOneRow
        } else {
            Pgbench::SelectOnly
        };
        for c in [clients as usize, args.concurrency] {
            let tps = pgbench(workload, c, args.seconds)?;
            println!("{:<28} {:>10.0} tps     ({c} clients)", workload.name(), tps);
            println!("ratio to {} ({c} clients): {:.2}x", workload.name(), stats.rps() / tps.max(1.0));
        }
    }
    Ok(())
}

/// A scorecard of 20 rules (10 fit, 10 engagement), published once.
fn bench_scorecard() -> sc::Scorecard {
    use sc::fit_rule::Predicate;
    let one_of =
        |v: &[&str]| Some(Predicate::OneOf(sc::StringList { values: v.iter().map(|s| s.to_string()).collect() }));
    let fit = |id: &str, a: sc::Attribute, p: Option<Predicate>, points| sc::FitRule {
        id: id.into(),
        attribute: a as i32,
        points,
        predicate: p,
    };
    use sc::Attribute as A;
    let fit_rules = vec![
        fit("industry", A::Industry, one_of(&["fintech", "banking", "insurance"]), 20),
        fit("size", A::EmployeeCount, Some(Predicate::Between(sc::Range { min: 100, max: 5000 })), 15),
        fit("region", A::Region, one_of(&["emea", "na"]), 5),
        fit("band", A::RevenueBand, one_of(&["10m-50m", "50m-250m"]), 10),
        fit("vp", A::Title, Some(Predicate::Contains("vp".into())), 10),
        fit("head", A::Title, Some(Predicate::Contains("head of".into())), 8),
        fit("seniority", A::Seniority, one_of(&["vp", "director"]), 10),
        fit("dept", A::Department, one_of(&["finance", "sales"]), 6),
        fit("role", A::BuyingRole, one_of(&["economic_buyer"]), 12),
        fit("student", A::Seniority, one_of(&["student"]), -30),
    ];
    let engagement_rules = (1..=10)
        .map(|i| sc::EngagementRule {
            id: format!("e{i}"),
            signal_type: i,
            points: 5 + i * 3,
            half_life_days: 14.0,
            cap: 60,
            window_days: 90,
        })
        .collect();
    sc::Scorecard {
        fit_rules,
        engagement_rules,
        mql_threshold: 100_000,
        pql_threshold: 0,
        grade_bands: Some(sc::GradeBands {
            fit_a: 60,
            fit_b: 40,
            fit_c: 20,
            engagement_1: 60,
            engagement_2: 30,
            engagement_3: 10,
        }),
        ..Default::default()
    }
}

fn fifty_signals(lead: &str) -> Vec<sc::Signal> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    (0..50)
        .map(|i| sc::Signal {
            signal_id: format!("{lead}-s{i}"),
            lead_id: lead.to_string(),
            contact_id: String::new(),
            r#type: (i % 13) + 1,
            occur_time: Some(prost_types::Timestamp { seconds: now - i64::from(i) * 7 * 3600, nanos: 0 }),
        })
        .collect()
}

fn inline_lead() -> sc::InlineLead {
    sc::InlineLead {
        segment: 0,
        account: Some(sc::Account {
            industry: "fintech".into(),
            employee_count: 800,
            revenue_band: "10m-50m".into(),
            region: "emea".into(),
            ..Default::default()
        }),
        contact: Some(sc::Contact { title: "VP Finance".into(), seniority: "vp".into(), ..Default::default() }),
        // Inline signals are not stored: only their type and time matter.
        signals: fifty_signals("inline")
            .into_iter()
            .map(|s| sc::Signal { signal_id: String::new(), lead_id: String::new(), ..s })
            .collect(),
    }
}

/// Publishes the scorecard and stores `leads` leads with 50 signals each.
pub(crate) async fn seed_scoring(ch: Channel, t: &str, revops: &str, leads: usize) -> anyhow::Result<()> {
    let mut c = LeadScoringServiceClient::new(ch);
    let mut up = false;
    for _ in 0..100 {
        let req = sc::PublishScorecardRequest { scorecard: Some(bench_scorecard()), ..Default::default() };
        if c.publish_scorecard(authed(req, revops)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(up, "the scoring service did not come up");
    let account = sc::Account {
        account_id: "acc-1".into(),
        industry: "fintech".into(),
        employee_count: 800,
        ..Default::default()
    };
    c.create_account(authed(sc::CreateAccountRequest { account: Some(account), request_id: String::new() }, t)).await?;
    let mut batch = Vec::new();
    for i in 0..leads {
        let lead = sc::Lead {
            lead_id: format!("lead-{i}"),
            account_id: "acc-1".into(),
            source: LeadSource::Inbound as i32,
            ..Default::default()
        };
        c.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), request_id: String::new() }, t)).await?;
        batch.extend(fifty_signals(&format!("lead-{i}")));
        if batch.len() >= 1000 || i + 1 == leads {
            c.ingest_signals(authed(sc::IngestSignalsRequest { signals: std::mem::take(&mut batch) }, t)).await?;
        }
    }
    Ok(())
}

/// What `pgbench` runs.
#[derive(Clone, Copy)]
pub(crate) enum Pgbench {
    /// The built-in select-only script (`-S`): one primary-key read per transaction.
    SelectOnly,
    /// A transaction as an application runs it (`BEGIN`, one `INSERT` of a row shaped like an
    /// opportunity: tenant, id, state, version, body; `END`), durably committed.
    InsertOneRow,
    /// A transaction inserting 1,000 signal-shaped rows in one multi-row `INSERT … ON CONFLICT
    /// DO NOTHING RETURNING` into a table shaped exactly like `signals` (same columns, primary
    /// key and indexes), as `IngestSignals` does.
    InsertSignals,
    /// A transaction inserting 1,000 lead-shaped rows and 1,000 stage-change-shaped rows (the
    /// columns, keys and indexes of `leads` and `lead_stage_changes`), one multi-row `INSERT`
    /// each, as `ImportLeads` writes a batch.
    ImportLeads,
}

impl Pgbench {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pgbench::SelectOnly => "pgbench -S",
            Pgbench::InsertOneRow => "pgbench one-row insert txn",
            Pgbench::InsertSignals => "pgbench 1000-row insert",
            Pgbench::ImportLeads => "pgbench 1000 leads + 1000 changes",
        }
    }
}

/// `pgbench` against a scratch database on the same server; returns transactions/s.
pub(crate) fn pgbench(workload: Pgbench, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    pgbench_with(workload, clients, seconds, &[])
}

/// [`pgbench`] with `extra` arguments (a rate, a transaction log).
pub(crate) fn pgbench_with(workload: Pgbench, clients: usize, seconds: u64, extra: &[String]) -> anyhow::Result<f64> {
    // The service's URL with another database, its options (sslmode, ...) kept:
    // pgbench and the service reach PostgreSQL the same way.
    let url = qualify_testkit::postgres_url();
    let (base, query) = url.split_once('?').map_or((url.as_str(), ""), |(b, q)| (b, q));
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    let db =
        if query.is_empty() { format!("{root}/qualify_pgbench") } else { format!("{root}/qualify_pgbench?{query}") };
    let _ = std::process::Command::new("psql").args([&url, "-qc", "CREATE DATABASE qualify_pgbench"]).output();
    let mut run = std::process::Command::new("pgbench");
    run.args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string()]).args(extra);
    let script = std::env::temp_dir().join(format!("qualify-pgbench-{}.sql", std::process::id()));
    match workload {
        Pgbench::SelectOnly => {
            let init = std::process::Command::new("pgbench").args(["-i", "-q", "-s", "10", &db]).output()?;
            anyhow::ensure!(init.status.success(), "pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
            run.arg("-S");
        }
        Pgbench::InsertOneRow => {
            let ddl = "DROP TABLE IF EXISTS loadgen_insert; CREATE TABLE loadgen_insert \
                (tenant_id text NOT NULL, opportunity_id uuid NOT NULL DEFAULT gen_random_uuid(), \
                 state text NOT NULL, version bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
                 body bytea NOT NULL, PRIMARY KEY (tenant_id, opportunity_id))";
            let made = std::process::Command::new("psql").args([db.as_str(), "-qc", ddl]).output()?;
            anyhow::ensure!(
                made.status.success(),
                "creating the insert table failed: {}",
                String::from_utf8_lossy(&made.stderr)
            );
            std::fs::write(
                &script,
                "BEGIN;\nINSERT INTO loadgen_insert (tenant_id, state, version, body) \
                 VALUES ('bench', 'pending_review', 1, convert_to(repeat('x', 400), 'UTF8'));\nEND;\n",
            )?;
            run.arg("-f").arg(&script);
        }
        Pgbench::InsertSignals => {
            let ddl = "DROP TABLE IF EXISTS loadgen_signals; CREATE TABLE loadgen_signals \
                (tenant_id varchar NOT NULL, signal_id varchar NOT NULL, lead_id varchar NOT NULL, \
                 account_id varchar NOT NULL, contact_id varchar, kind varchar NOT NULL, \
                 occurred_at timestamptz NOT NULL, received_at timestamptz NOT NULL, \
                 PRIMARY KEY (tenant_id, signal_id, occurred_at)); \
                 CREATE INDEX ON loadgen_signals (tenant_id, lead_id, occurred_at); \
                 CREATE INDEX ON loadgen_signals (tenant_id, account_id, occurred_at)";
            let made = std::process::Command::new("psql").args([db.as_str(), "-qc", ddl]).output()?;
            anyhow::ensure!(
                made.status.success(),
                "creating the signals table failed: {}",
                String::from_utf8_lossy(&made.stderr)
            );
            let row = "('bench', gen_random_uuid()::text, 'lead-' || (random() * 9999)::int, 'acc-1', NULL, \
                       'pricing_page_visit', now() - random() * interval '20 days', now())";
            let rows = vec![row; 1000].join(",\n");
            std::fs::write(
                &script,
                format!(
                    "INSERT INTO loadgen_signals (tenant_id, signal_id, lead_id, account_id, contact_id, kind, \
                     occurred_at, received_at) VALUES\n{rows}\nON CONFLICT DO NOTHING RETURNING signal_id;\n"
                ),
            )?;
            run.arg("-f").arg(&script);
        }
        Pgbench::ImportLeads => {
            let ddl = "DROP TABLE IF EXISTS loadgen_leads, loadgen_changes; CREATE TABLE loadgen_leads \
                (tenant_id varchar NOT NULL, lead_id varchar NOT NULL, account_id varchar NOT NULL, \
                 source varchar NOT NULL, campaign varchar NOT NULL, owner_sdr varchar NOT NULL, \
                 stage varchar NOT NULL, contact_id varchar, score_doc text, score_total integer, \
                 created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, signal_log bytea, \
                 imported boolean NOT NULL DEFAULT false, PRIMARY KEY (tenant_id, lead_id)); \
                 CREATE INDEX ON loadgen_leads (account_id, tenant_id); \
                 CREATE TABLE loadgen_changes (id bigserial PRIMARY KEY, tenant_id varchar NOT NULL, \
                 lead_id varchar NOT NULL, from_stage varchar NOT NULL, to_stage varchar NOT NULL, \
                 actor varchar NOT NULL, actor_roles varchar NOT NULL, reason varchar NOT NULL, \
                 score integer NOT NULL, scorecard_version bigint NOT NULL, changed_at timestamptz NOT NULL); \
                 CREATE INDEX ON loadgen_changes (lead_id, tenant_id, id)";
            let made = std::process::Command::new("psql").args([db.as_str(), "-qc", ddl]).output()?;
            anyhow::ensure!(
                made.status.success(),
                "creating the lead tables failed: {}",
                String::from_utf8_lossy(&made.stderr)
            );
            // One random id per transaction; row k's lead and its change share `id-k`.
            let batch = crate::import::BATCH;
            let leads: Vec<String> = (0..batch)
                .map(|k| {
                    format!(
                        "('bench', :id || '-{k}', 'acc-1', 'outbound', '2025-q3', 'sam', 'mql', NULL, NULL, NULL, \
                         now() - interval '30 days', now() - interval '29 days', NULL, true)"
                    )
                })
                .collect();
            let changes: Vec<String> = (0..batch)
                .map(|k| {
                    format!(
                        "('bench', :id || '-{k}', 'new', 'mql', 'marketo', 'importer', 'score over 60', 0, 0, \
                         now() - interval '29 days')"
                    )
                })
                .collect();
            std::fs::write(
                &script,
                format!(
                    "\\set id random(1, 2000000000)\nBEGIN;\n\
                     INSERT INTO loadgen_leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, \
                     contact_id, score_doc, score_total, created_at, updated_at, signal_log, imported) VALUES\n{}\n\
                     ON CONFLICT DO NOTHING RETURNING lead_id;\n\
                     INSERT INTO loadgen_changes (tenant_id, lead_id, from_stage, to_stage, actor, actor_roles, reason, \
                     score, scorecard_version, changed_at) VALUES\n{};\nCOMMIT;\n",
                    leads.join(",\n"),
                    changes.join(",\n"),
                ),
            )?;
            run.arg("-f").arg(&script);
        }
    }
    let out = run.arg(&db).output()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}{}", String::from_utf8_lossy(&out.stderr)))
}
