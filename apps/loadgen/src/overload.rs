//! `--scenario overload`: does a service protect itself at several times the
//! concurrency it sustains? Three phases against `ScoreLead` by id (auth, a
//! database read, scoring): `--concurrency` callers, then `--overload` times as
//! many, then `--concurrency` again right away. Callers honour the retry advice
//! of a shed request (they pause its 100 ms before their next call), as gRPC
//! clients with a retry policy do.
//!
//! Run once against a service that sheds beyond `--limit` requests in flight
//! and once against one that never sheds, so the difference is measured in the
//! same run. Memory is this process's resident set (service and load
//! generator together), sampled every 250 ms: the first and last two seconds
//! of each phase are compared.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qualify_proto::scoring::{
    self as sc, lead_scoring_service_client::LeadScoringServiceClient, score_lead_request::Target,
};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};

use crate::{Args, channels, drive_with_backoff, seed_scoring};

/// The retry advice of a shed request (`RetryInfo` of SERVER_OVERLOADED).
const SHED_BACKOFF: Duration = Duration::from_millis(100);

/// Resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    (pages * 4096) as f64 / (1024.0 * 1024.0)
}

/// Runs `phase` while sampling memory every 250 ms; returns its result and the RSS averaged over
/// the phase's first and last two seconds, to show a trend.
async fn sampled<T, F: Future<Output = T>>(phase: F) -> (T, f64, f64) {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut samples = vec![rss_mib()];
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => samples.push(rss_mib()),
                _ = &mut stop_rx => return samples,
            }
        }
    });
    let out = phase.await;
    let _ = stop_tx.send(());
    let samples = sampler.await.unwrap_or_default();
    let avg = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let n = samples.len().min(8);
    (out, avg(&samples[..n]), avg(&samples[samples.len() - n..]))
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    let high = args.concurrency * args.overload.max(1);
    println!(
        "phases: {} callers, then {high}, then {} again; {} s each; shedding limit {}",
        args.concurrency, args.concurrency, args.seconds, args.limit
    );
    for (label, limit) in [("sheds", args.limit), ("never sheds", 1_000_000)] {
        let mut cfg = config("scoring", backend).await;
        if args.redis {
            cfg = qualify_testkit::with_redis(cfg).await;
        }
        cfg.max_concurrent_requests = limit;
        let svc = spawn::<qualify_scoring::Scoring>(cfg).await;
        let chans = channels(&svc.url(), args.connections).await?;
        let t = token("bench", "bench-user", &[Role::Sdr, Role::Service]);
        let revops = token("bench", "rita", &[Role::Revops]);
        seed_scoring(chans[0].clone(), &t, &revops, args.leads).await?;
        let t = Arc::new(t);
        let leads = args.leads.max(1) as u64;
        // Failures other than shedding, by code and message, so none goes unexplained.
        let failures = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
        let seen = failures.clone();
        let call = move |ch, i: u64| {
            let (t, seen) = (t.clone(), seen.clone());
            async move {
                let req = sc::ScoreLeadRequest {
                    target: Some(Target::LeadId(format!("lead-{}", i % leads))),
                    scorecard_version: 0,
                    as_of_time: None,
                };
                let r = LeadScoringServiceClient::new(ch).score_lead(authed(req, &t)).await.map(|_| ());
                if let Err(s) = &r
                    && s.code() != tonic::Code::ResourceExhausted
                {
                    let key = format!("{:?}: {}", s.code(), s.message());
                    *seen.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(0) += 1;
                }
                r
            }
        };
        println!("-- service that {label} (limit {limit})");
        for (phase, callers) in [("before", args.concurrency), ("overload", high), ("after", args.concurrency)] {
            let run = drive_with_backoff(&chans, callers, args.seconds, SHED_BACKOFF, call.clone());
            let (stats, first, last) = sampled(run).await;
            println!("{}   rss {first:.0} → {last:.0} MiB", stats.line(&format!("{phase} ({callers} callers)")));
            let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
            if !f.is_empty() {
                println!("    other failures: {f:?}");
                f.clear();
            }
        }
    }
    Ok(())
}
