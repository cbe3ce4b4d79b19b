//! `--scenario soak`: a bounded mixed load for `--seconds` against all three
//! services in one process (stored-lead scoring, submissions accepted by an
//! AE, funnel queries), sampled every `--sample-secs`: requests, errors and
//! p99 per kind, and the process's memory. It ends with the trend between the
//! first and last quarter of the run and fails (exit code 1) on any error or a
//! growth past the bounds printed. `.ci/run` runs a short variant; run the long
//! one by hand: `cargo run --release -p qualify-loadgen -- --scenario soak --postgres --seconds 600`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::metrics::{self as mt, metrics_service_client::MetricsServiceClient};
use qualify_proto::scoring::{
    self as sc, lead_scoring_service_client::LeadScoringServiceClient, score_lead_request::Target,
};
use qualify_testkit::{Backend, Cluster, Role, authed, token};

use crate::{Args, histogram, ms, opportunity, seed_scoring, seed_sql_lead};

const KINDS: [&str; 3] = ["score", "submit+accept", "funnel"];

/// Memory bound: the last quarter's resident set may exceed the second quarter's by this much.
const RSS_GROWTH_LIMIT: f64 = 0.25;
/// Latency bound: the last quarter's median p99 may be this many times the second quarter's
/// (medians, so one slow sample on a shared machine is not a trend).
const P99_GROWTH_LIMIT: f64 = 3.0;

#[derive(Default)]
struct Window {
    ok: [u64; 3],
    errors: Vec<String>,
    hist: Option<[Histogram<u64>; 3]>,
}

struct Sample {
    rss: f64,
    ok: [u64; 3],
    p99: [f64; 3],
}

fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    (pages * 4096) as f64 / (1024.0 * 1024.0)
}

fn record(w: &Mutex<Window>, kind: usize, start: Instant, r: Result<(), tonic::Status>) {
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    match r {
        Ok(()) => {
            w.ok[kind] += 1;
            let h = w.hist.get_or_insert_with(|| [histogram(), histogram(), histogram()]);
            let _ = h[kind].record(start.elapsed().as_micros().max(1) as u64);
        }
        Err(s) => w.errors.push(format!("{}: {:?} {}", KINDS[kind], s.code(), s.message())),
    }
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    let cluster = Cluster::start(backend).await;
    let (scoring, acceptance, metrics) = (&cluster.scoring, &cluster.acceptance, &cluster.metrics);
    let (soak_bot, soak_revops) = (token("soak", "bot", &[Role::Service]), token("soak", "rita", &[Role::Revops]));
    let leads = args.leads.clamp(1, 200);
    seed_scoring(scoring.channel().await, &soak_bot, &soak_revops, leads).await?;
    seed_sql_lead(scoring.channel().await).await?;
    let (s_ch, a_ch, m_ch) = (scoring.channel().await, acceptance.channel().await, metrics.channel().await);

    let window = Arc::new(Mutex::new(Window::default()));
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (ch, window, t) = (s_ch.clone(), window.clone(), soak_bot.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < end {
                let start = Instant::now();
                let req = sc::ScoreLeadRequest {
                    target: Some(Target::LeadId(format!("lead-{}", i % leads as u64))),
                    scorecard_version: 0,
                    as_of_time: None,
                };
                let r = LeadScoringServiceClient::new(ch.clone()).score_lead(authed(req, &t)).await.map(|_| ());
                record(&window, 0, start, r);
                i += 4;
            }
        }));
    }
    for w in 0..2u64 {
        let (ch, window) = (a_ch.clone(), window.clone());
        let (sdr, ae) = (token("bench", "sam", &[Role::Sdr]), token("bench", "alex", &[Role::Ae]));
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                let start = Instant::now();
                let mut c = OpportunityAcceptanceServiceClient::new(ch.clone());
                let id = format!("soak-{w}-{i}");
                let submit = acc::SubmitOpportunityRequest {
                    opportunity: Some(opportunity(&id)),
                    request_id: format!("s-{id}"),
                };
                let r = match c.submit_opportunity(authed(submit, &sdr)).await {
                    Ok(_) => {
                        let accept = acc::AcceptOpportunityRequest {
                            opportunity_id: id.clone(),
                            request_id: format!("a-{id}"),
                            ..Default::default()
                        };
                        c.accept_opportunity(authed(accept, &ae)).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                record(&window, 1, start, r);
                i += 1;
            }
        }));
    }
    {
        let (ch, window) = (m_ch.clone(), window.clone());
        let manager = token("bench", "mia", &[Role::Manager]);
        workers.push(tokio::spawn(async move {
            let month = chrono_month();
            while Instant::now() < end {
                let start = Instant::now();
                let req = mt::GetFunnelRequest {
                    start_period: month.clone(),
                    end_period: month.clone(),
                    group_by: vec![mt::FunnelDimension::Source as i32],
                    ..Default::default()
                };
                let r = MetricsServiceClient::new(ch.clone()).get_funnel(authed(req, &manager)).await.map(|_| ());
                record(&window, 2, start, r);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let every = Duration::from_secs(args.sample_secs.max(1));
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    println!("{:>6}  {:>8}  {:>24}  {:>24}  {:>24}", "t (s)", "rss MiB", KINDS[0], KINDS[1], KINDS[2]);
    let started = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(every.min(end.saturating_duration_since(Instant::now()))).await;
        let w = std::mem::take(&mut *window.lock().unwrap_or_else(|p| p.into_inner()));
        let p99 = |k: usize| w.hist.as_ref().map_or(0.0, |h| ms(&h[k], 0.99));
        let s = Sample { rss: rss_mib(), ok: w.ok, p99: [p99(0), p99(1), p99(2)] };
        let cell = |k: usize| format!("{:>7}/s p99 {:>7.2} ms", s.ok[k] / every.as_secs().max(1), s.p99[k]);
        println!("{:>6.0}  {:>8.1}  {}  {}  {}", started.elapsed().as_secs_f64(), s.rss, cell(0), cell(1), cell(2));
        errors.extend(w.errors);
        samples.push(s);
    }
    for w in workers {
        let _ = w.await;
    }

    // The first quarter warms up (pools, caches, allocator arenas); compare the second with the last.
    let q = (samples.len() / 4).max(1);
    let avg = |s: &[Sample], f: &dyn Fn(&Sample) -> f64| s.iter().map(f).sum::<f64>() / s.len().max(1) as f64;
    let (early, late) = (&samples[q.min(samples.len() - 1)..(2 * q).min(samples.len())], &samples[samples.len() - q..]);
    let rss = (avg(early, &|s| s.rss), avg(late, &|s| s.rss));
    let median_p99 = |s: &[Sample]| {
        let mut v: Vec<f64> = s.iter().map(|s| s.p99.iter().copied().fold(0.0, f64::max)).collect();
        v.sort_by(f64::total_cmp);
        // The lower middle of an even count: one noisy window is not a trend.
        v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
    };
    let p99 = (median_p99(early), median_p99(late));
    let total: u64 = samples.iter().map(|s| s.ok.iter().sum::<u64>()).sum();
    println!(
        "{total} requests, {} errors; rss {:.1} → {:.1} MiB ({:+.0} %, bound {:.0} %); median worst p99 {:.2} → {:.2} ms (bound {:.0}x)",
        errors.len(),
        rss.0,
        rss.1,
        (rss.1 / rss.0.max(1.0) - 1.0) * 100.0,
        RSS_GROWTH_LIMIT * 100.0,
        p99.0,
        p99.1,
        P99_GROWTH_LIMIT
    );
    for e in errors.iter().take(10) {
        println!("  error: {e}");
    }
    anyhow::ensure!(errors.is_empty(), "the soak saw {} errors", errors.len());
    anyhow::ensure!(rss.1 <= rss.0 * (1.0 + RSS_GROWTH_LIMIT), "memory grew past the bound");
    anyhow::ensure!(p99.1 <= p99.0 * P99_GROWTH_LIMIT + 1.0, "p99 latency grew past the bound");
    println!("soak: OK");
    Ok(())
}

fn chrono_month() -> String {
    qualify_platform::Clock::system().now().format("%Y-%m").to_string()
}
