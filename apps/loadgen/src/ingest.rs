//! `--scenario ingest-signals`: `IngestSignals` on PostgreSQL from 1, 4 and 16
//! callers (`--callers`), each call a batch of 1,000 fresh signals spread over
//! `--leads` stored leads (20-rule scorecard, so every touched lead is
//! re-scored), next to `pgbench` inserting the same number of signal-shaped
//! rows per transaction (one multi-row `INSERT … ON CONFLICT DO NOTHING
//! RETURNING` into a table shaped exactly like `signals`) from as many clients,
//! in the same run. Read the ratio of rows per second.

use std::sync::Arc;
use std::time::Duration;

use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};
use tonic::Status;

use crate::{Args, channels, drive_with_backoff, seed_scoring};

/// Signals per call, and rows per pgbench transaction.
const BATCH: usize = 1000;

/// The retry advice of a refused batch (`INGESTION_SATURATED`).
const SATURATED_BACKOFF: Duration = Duration::from_millis(100);

/// Batch `i`: 1,000 fresh signals on leads spread pseudo-randomly over `leads`.
fn batch(i: u64, leads: u64) -> Vec<sc::Signal> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    (0..BATCH as u64)
        .map(|k| {
            let n = i * BATCH as u64 + k;
            // A multiplicative hash spreads consecutive signals over the leads.
            let lead = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            sc::Signal {
                signal_id: format!("g{i}-{k}"),
                lead_id: format!("lead-{}", lead % leads),
                contact_id: String::new(),
                r#type: (n % 13) as i32 + 1,
                occur_time: Some(prost_types::Timestamp { seconds: now - (n % 2_000_000) as i64, nanos: 0 }),
            }
        })
        .collect()
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(backend, Backend::Postgres), "ingest-signals measures PostgreSQL: pass --postgres");
    let mut cfg = config("scoring", backend).await;
    if let Ok(n) = std::env::var("QUALIFY_INGEST_CONCURRENCY") {
        cfg.ingest_concurrency = n.parse()?;
    }
    if args.redis {
        cfg = qualify_testkit::with_redis(cfg).await;
    }
    let svc = spawn::<qualify_scoring::Scoring>(cfg).await;
    let chans = channels(&svc.url(), args.connections).await?;
    let t = token("bench", "pipeline", &[Role::Service]);
    let revops = token("bench", "rita", &[Role::Revops]);
    let started = std::time::Instant::now();
    seed_scoring(chans[0].clone(), &t, &revops, args.leads).await?;
    println!("seeded {} leads with 50 signals each in {:.1} s", args.leads, started.elapsed().as_secs_f64());

    let t = Arc::new(t);
    let leads = args.leads.max(1) as u64;
    let mut results = Vec::new();
    for (round, &callers) in args.callers.iter().enumerate() {
        let t = t.clone();
        let stats = drive_with_backoff(&chans, callers, args.seconds, SATURATED_BACKOFF, move |ch, i| {
            let t = t.clone();
            async move {
                // Fresh ids in every round.
                let signals = batch(round as u64 * 1_000_000_000 + i, leads);
                let r = LeadScoringServiceClient::new(ch)
                    .ingest_signals(authed(sc::IngestSignalsRequest { signals }, &t))
                    .await?
                    .into_inner();
                if r.accepted_count as usize != BATCH {
                    return Err(Status::internal(format!(
                        "{} of {BATCH} accepted, {} duplicates, {} rejected",
                        r.accepted_count, r.duplicate_count, r.rejected_count
                    )));
                }
                Ok(())
            }
        })
        .await;
        let rows = stats.rps() * BATCH as f64;
        println!("{}", stats.line(&format!("IngestSignals x{callers}")));
        println!("{:<28} {:>10.0} signals/s ({callers} callers)", "", rows);
        results.push((callers, rows));
    }
    drop(svc);

    if args.pgbench {
        for (callers, rows) in results {
            let tps = crate::pgbench(crate::Pgbench::InsertSignals, callers, args.seconds)?;
            let pg_rows = tps * BATCH as f64;
            println!("{:<28} {:>10.0} rows/s    ({callers} clients)", crate::Pgbench::InsertSignals.name(), pg_rows);
            println!("ratio to pgbench ({callers} clients): {:.2}x rows/s", rows / pg_rows.max(1.0));
        }
    }
    Ok(())
}
