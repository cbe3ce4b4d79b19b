//! `--scenario rescore`: bulk re-scoring after a publish. `--leads` leads (the
//! issue's figure: 1,000,000) are loaded straight into the service's schema on
//! PostgreSQL, each with a packed log of 50 signals, and a 20-rule scorecard is
//! in force; `ScoreLeads` with apply then reads, scores and stores every one of
//! them (committed batches of 500, every score streamed back to this client),
//! in leads/s. The baseline, in the same run on the same rows: PostgreSQL
//! itself reading and rewriting every lead row's score columns in one
//! `UPDATE`, in rows/s, with no client, no network and no scoring at all.

use std::time::Instant;

use qualify_domain::scoring::{Signal, SignalType, signal_log};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_testkit::{Backend, Role, authed, config, spawn, token};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{Args, channels, seed_scoring};

/// Leads per loading statement.
const LOAD_CHUNK: usize = 100_000;

pub async fn run(args: &Args, backend: Backend) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(backend, Backend::Postgres), "rescore measures PostgreSQL: pass --postgres");
    let cfg = config("scoring", backend).await;
    let db = qualify_platform::db::connect_url(&cfg.database_url, cfg.database_schema.as_deref(), 2).await?;
    let svc = spawn::<qualify_scoring::Scoring>(cfg).await;
    let chans = channels(&svc.url(), 1).await?;
    let (t, revops) = (token("bench", "pipeline", &[Role::Service]), token("bench", "rita", &[Role::Revops]));
    seed_scoring(chans[0].clone(), &t, &revops, 0).await?;

    // Fifty signals of every type over the last 50 days, as ingestion packs them.
    let now = qualify_platform::Clock::system().now();
    let signals: Vec<Signal> = (0..50)
        .map(|i| Signal {
            kind: SignalType::ALL[i % SignalType::ALL.len()],
            occurred_at: now - chrono::Duration::days(i as i64),
        })
        .collect();
    let log: String = signal_log::encode(&signals, 50).iter().map(|b| format!("{b:02x}")).collect();
    let started = Instant::now();
    for from in (0..args.leads).step_by(LOAD_CHUNK) {
        let to = (from + LOAD_CHUNK).min(args.leads);
        let sql = format!(
            "INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, contact_id, \
             score_doc, score_total, created_at, updated_at, signal_log) \
             SELECT 'bench', 'lead-' || lpad(g::text, 8, '0'), 'acc-1', 'inbound', '', '', 'new', NULL, NULL, NULL, \
             now(), now(), decode('{log}', 'hex') FROM generate_series({from}, {}) g",
            to - 1
        );
        db.execute_unprepared(&sql).await?;
    }
    db.execute_unprepared("VACUUM ANALYZE leads").await?;
    println!("loaded {} leads in {:.1} s", args.leads, started.elapsed().as_secs_f64());

    let started = Instant::now();
    let r = sc::ScoreLeadsRequest { lead_ids: vec![], apply: true, resume_after_lead_id: String::new() };
    let mut stream =
        LeadScoringServiceClient::new(chans[0].clone()).score_leads(authed(r, &revops)).await?.into_inner();
    let mut scored = 0u64;
    while let Some(item) = stream.message().await? {
        anyhow::ensure!(item.score.is_some(), "lead {} came back without a score", item.lead_id);
        scored += 1;
    }
    let took = started.elapsed().as_secs_f64();
    anyhow::ensure!(scored == args.leads as u64, "{scored} of {} leads re-scored", args.leads);
    let stored: i64 = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM leads WHERE score_doc IS NOT NULL".to_string(),
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    anyhow::ensure!(stored == args.leads as i64, "{stored} of {} scores stored", args.leads);
    let rate = scored as f64 / took;
    println!("ScoreLeads apply            {:>10.0} leads/s  ({scored} leads in {took:.1} s)", rate);

    db.execute_unprepared("VACUUM ANALYZE leads").await?;
    let started = Instant::now();
    let done = db
        .execute_unprepared(
            "UPDATE leads SET score_doc = score_doc || ' ', score_total = score_total + 1, updated_at = now() \
             WHERE tenant_id = 'bench'",
        )
        .await?;
    let took = started.elapsed().as_secs_f64();
    let pg = done.rows_affected() as f64 / took;
    println!("PostgreSQL UPDATE of the rows {:>8.0} rows/s   ({} rows in {took:.1} s)", pg, done.rows_affected());
    println!("ratio to PostgreSQL's own read and write: {:.2}x", rate / pg.max(1.0));
    Ok(())
}
