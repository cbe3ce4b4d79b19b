//! `--scenario accept-latency`: acceptance at a human pace. A submission and
//! its acceptance by an AE are started `--rate` times a second (open loop: a
//! slow answer does not slow the arrivals) for `--seconds`; submit and accept
//! latencies are reported apart (p50, p99), next to `pgbench` running a durable
//! one-row insert transaction at twice the rate (the same number of write
//! transactions) on the same PostgreSQL in the same run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_testkit::{Backend, Role, authed, token};

use crate::{Args, Pgbench, acceptance_with_sql_lead, histogram, ms, opportunity};

#[derive(Default)]
struct Latencies {
    submit: Option<Histogram<u64>>,
    accept: Option<Histogram<u64>>,
    errors: u64,
}

fn record(h: &mut Option<Histogram<u64>>, since: Instant) {
    let _ = h.get_or_insert_with(histogram).record(since.elapsed().as_micros().max(1) as u64);
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    let (scoring, svc, chans) = acceptance_with_sql_lead(args, backend).await?;
    let (sdr, ae) = (Arc::new(token("bench", "sam", &[Role::Sdr])), Arc::new(token("bench", "alex", &[Role::Ae])));
    let seen = Arc::new(Mutex::new(Latencies::default()));

    let rate = args.rate.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let pairs = u64::from(rate) * args.seconds;
    let mut running = Vec::with_capacity(pairs as usize);
    for i in 0..pairs {
        tick.tick().await;
        let (ch, sdr, ae, seen) = (chans[i as usize % chans.len()].clone(), sdr.clone(), ae.clone(), seen.clone());
        running.push(tokio::spawn(async move {
            let mut c = OpportunityAcceptanceServiceClient::new(ch);
            let id = format!("paced-{i}");
            let start = Instant::now();
            let req =
                acc::SubmitOpportunityRequest { opportunity: Some(opportunity(&id)), request_id: format!("s-{i}") };
            let submitted = c.submit_opportunity(authed(req, &sdr)).await.is_ok();
            {
                let mut l = seen.lock().unwrap_or_else(|p| p.into_inner());
                if !submitted {
                    l.errors += 1;
                    return;
                }
                record(&mut l.submit, start);
            }
            let start = Instant::now();
            let req = acc::AcceptOpportunityRequest {
                opportunity_id: id,
                request_id: format!("a-{i}"),
                ..Default::default()
            };
            let accepted = c.accept_opportunity(authed(req, &ae)).await;
            let mut l = seen.lock().unwrap_or_else(|p| p.into_inner());
            match accepted.map(|r| r.into_inner().opportunity.map(|o| o.state)) {
                Ok(Some(s)) if s == acc::OpportunityState::Accepted as i32 => record(&mut l.accept, start),
                _ => l.errors += 1,
            }
        }));
    }
    for r in running {
        r.await?;
    }
    let l = seen.lock().unwrap_or_else(|p| p.into_inner());
    let (submit, accept) = (l.submit.clone().unwrap_or_else(histogram), l.accept.clone().unwrap_or_else(histogram));
    println!(
        "{pairs} pairs at {rate}/s: submit p50 {:.2} ms p99 {:.2} ms; accept p50 {:.2} ms p99 {:.2} ms; errors {}",
        ms(&submit, 0.5),
        ms(&submit, 0.99),
        ms(&accept, 0.5),
        ms(&accept, 0.99),
        l.errors
    );
    drop((svc, scoring));

    if args.pgbench && matches!(backend, Backend::Postgres) {
        let dir = std::env::temp_dir().join(format!("qualify-pgbench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let prefix = dir.join("txn");
        let extra =
            ["-R".to_string(), (2 * rate).to_string(), "-l".into(), format!("--log-prefix={}", prefix.display())];
        pgbench_latencies(&dir, Pgbench::InsertOneRow, args.seconds, &extra)?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    anyhow::ensure!(l.errors == 0, "{} pairs failed", l.errors);
    Ok(())
}

/// Runs pgbench with a transaction log in `dir` and prints its latencies' p50 and p99.
fn pgbench_latencies(dir: &std::path::Path, workload: Pgbench, seconds: u64, extra: &[String]) -> anyhow::Result<()> {
    let tps = crate::pgbench_with(workload, 4, seconds, extra)?;
    let mut h = histogram();
    for file in std::fs::read_dir(dir)? {
        // One line per transaction: client, transaction, latency in µs, ...
        for line in std::fs::read_to_string(file?.path())?.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                let _ = h.record(us.max(1));
            }
        }
    }
    println!(
        "{} at {tps:.0} tps: p50 {:.2} ms p99 {:.2} ms ({} transactions)",
        workload.name(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.len()
    );
    Ok(())
}
