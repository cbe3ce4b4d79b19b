//! `--scenario import-leads`: a CRM's history imported into PostgreSQL.
//! `--leads` leads (the figure: 1,000,000), each with its creation
//! time and one stage change (to MQL, a day later), sent through `ImportLeads`
//! in batches of 1,000 from `--concurrency` callers: records (leads and stage
//! changes) per second. The baseline, in the same run: `pgbench` from as many
//! clients, each transaction inserting 1,000 lead-shaped rows and 1,000
//! stage-change-shaped rows (the same columns, keys and indexes as the
//! service's tables) in one multi-row `INSERT` each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::Duration;
use qualify_proto::common::{ImportOutcome, LeadSource, LeadStage};
use qualify_proto::convert::timestamp;
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};

use crate::{Args, Pgbench, channels, pgbench_with};

/// Leads per call, and per pgbench transaction.
pub(crate) const BATCH: usize = 1000;

/// Batch `i`: 1,000 leads created over the last two years, each an MQL a day after.
fn batch(i: usize, leads: usize) -> Vec<sc::ImportedLead> {
    let now = qualify_platform::Clock::system().now();
    (i * BATCH..((i + 1) * BATCH).min(leads))
        .map(|n| {
            let created = now - Duration::days(2 + (n % 700) as i64) - Duration::minutes((n % 1440) as i64);
            sc::ImportedLead {
                lead: Some(sc::Lead {
                    lead_id: format!("crm-{n:08}"),
                    account_id: "acc-1".into(),
                    source: LeadSource::Outbound as i32,
                    campaign: "2025-q3".into(),
                    owner_sdr: "sam".into(),
                    ..Default::default()
                }),
                create_time: Some(timestamp(created)),
                stage_changes: vec![sc::ImportedStageChange {
                    to_stage: LeadStage::Mql as i32,
                    change_time: Some(timestamp(created + Duration::days(1))),
                    actor: "marketo".into(),
                    reason: "score over 60".into(),
                }],
            }
        })
        .collect()
}

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(backend, Backend::Postgres), "import-leads measures PostgreSQL: pass --postgres");
    let svc = spawn::<qualify_scoring::Scoring>(config("scoring", backend).await).await;
    let chans = channels(&svc.url(), args.connections).await?;
    let sync = token("bench", "sync", &[Role::Service]);
    let importer = Arc::new(token("bench", "crm-migration", &[Role::Importer]));
    let account = sc::Account { account_id: "acc-1".into(), display_name: "Bench".into(), ..Default::default() };
    LeadScoringServiceClient::new(chans[0].clone())
        .create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &sync))
        .await?;

    let batches = args.leads.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut callers = Vec::new();
    for k in 0..args.concurrency.max(1) {
        let (ch, next, importer, leads) = (chans[k % chans.len()].clone(), next.clone(), importer.clone(), args.leads);
        callers.push(tokio::spawn(async move {
            let mut c = LeadScoringServiceClient::new(ch);
            let mut records = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= batches {
                    return Ok::<u64, anyhow::Error>(records);
                }
                let leads = batch(i, leads);
                let r = c.import_leads(authed(sc::ImportLeadsRequest { leads }, &importer)).await?.into_inner();
                let imported = r.results.iter().filter(|x| x.outcome == ImportOutcome::Imported as i32).count();
                anyhow::ensure!(imported == r.results.len(), "batch {i}: {} of {} imported", imported, r.results.len());
                records += 2 * imported as u64;
            }
        }));
    }
    let mut records = 0;
    for c in callers {
        records += c.await??;
    }
    let took = started.elapsed().as_secs_f64();
    let rate = records as f64 / took;
    println!(
        "ImportLeads x{}                {:>10.0} records/s  ({} leads and as many stage changes in {took:.1} s)",
        args.concurrency,
        rate,
        records / 2
    );
    if args.pgbench {
        let seconds = took.clamp(5.0, 30.0) as u64;
        let tps = pgbench_with(Pgbench::ImportLeads, args.concurrency.max(1), seconds, &[])?;
        let pg = tps * 2.0 * BATCH as f64;
        println!("pgbench 1000 leads + 1000 changes {pg:>8.0} records/s ({} clients)", args.concurrency.max(1));
        println!("ratio to pgbench: {:.2}x records/s", rate / pg.max(1.0));
    }
    Ok(())
}
