//! `--scenario overload`: does a service protect itself at several times the
//! concurrency it sustains? Three phases against `ScoreLead` by id (auth, a
//! database read, scoring): at `--concurrency`, at `--overload` times that,
//! and at `--concurrency` again. Run once against a service that sheds beyond
//! `--limit` requests in flight and once against one that never sheds, so the
//! difference is measured in the same run. Memory is the process's resident
//! set (service and load generator together), sampled during each phase.

use std::sync::Arc;
use std::time::Duration;

use qualify_proto::scoring::{
    self as sc, lead_scoring_service_client::LeadScoringServiceClient, score_lead_request::Target,
};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};

use crate::{Args, Stats, channels, drive, seed_scoring};

/// Resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    (pages * 4096) as f64 / (1024.0 * 1024.0)
}

/// Runs `phase` while sampling memory every 250 ms; returns its stats and the (min, max) RSS.
async fn sampled<F: Future<Output = Stats>>(phase: F) -> (Stats, f64, f64) {
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
    let stats = phase.await;
    let _ = stop_tx.send(());
    let samples = sampler.await.unwrap_or_default();
    let min = samples.iter().copied().fold(f64::MAX, f64::min);
    let max = samples.iter().copied().fold(0.0, f64::max);
    (stats, min, max)
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    let high = args.concurrency * args.overload.max(1);
    println!(
        "phases: {} in flight, then {high}, then {} again; {} s each; shedding limit {}",
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
        let call = move |ch, i: u64| {
            let t = t.clone();
            async move {
                let req = sc::ScoreLeadRequest {
                    target: Some(Target::LeadId(format!("lead-{}", i % leads))),
                    scorecard_version: 0,
                };
                LeadScoringServiceClient::new(ch).score_lead(authed(req, &t)).await.map(|_| ())
            }
        };
        println!("-- service that {label} (limit {limit})");
        for (phase, concurrency) in [("before", args.concurrency), ("overload", high), ("after", args.concurrency)] {
            let (stats, min, max) = sampled(drive(&chans, concurrency, args.seconds, call.clone())).await;
            println!("{}   rss {min:.0}–{max:.0} MiB", stats.line(&format!("{phase} ({concurrency} in flight)")));
        }
    }
    Ok(())
}
