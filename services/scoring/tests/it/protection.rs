//! A service protects itself: beyond its concurrency limit it refuses at once
//! with RESOURCE_EXHAUSTED (probes still answer) and serves again as soon as
//! the burst is over; a tenant over its rate is refused without slowing
//! another. Against the machine's PostgreSQL, so requests really overlap.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use qualify_proto::common::LeadSource;
use qualify_proto::scoring::{self as pb, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, config, spawn, token};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

async fn seed(c: &mut LeadScoringServiceClient<tonic::transport::Channel>, tenant: &str) {
    let t = token(tenant, "sync", &[Role::Service]);
    let account = pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    c.create_account(authed(pb::CreateAccountRequest { account: Some(account), request_id: String::new() }, &t))
        .await
        .unwrap();
    let lead = pb::Lead {
        lead_id: "lead-1".into(),
        account_id: "acc-1".into(),
        source: LeadSource::Inbound as i32,
        ..Default::default()
    };
    c.create_lead(authed(pb::CreateLeadRequest { lead: Some(lead), request_id: String::new() }, &t)).await.unwrap();
}

fn get_lead(t: &str) -> tonic::Request<pb::GetLeadRequest> {
    authed(pb::GetLeadRequest { lead_id: "lead-1".into() }, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_limit_a_service_sheds_at_once_keeps_probes_and_recovers() {
    let mut cfg = config("scoring", Backend::Postgres).await;
    cfg.max_concurrent_requests = 2;
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    seed(&mut c, "acme").await;
    let t = token("acme", "ada", &[Role::Sdr]);

    // 200 reads at once from four connections against a limit of two.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(svc.channel().await);
    }
    let burst: Vec<_> = (0..200)
        .map(|i| {
            let mut c = LeadScoringServiceClient::new(channels[i % 4].clone());
            let t = t.clone();
            tokio::spawn(async move { c.get_lead(get_lead(&t)).await.map(|_| ()) })
        })
        .collect();
    // Probes are never shed: the readiness check answers during the burst (it reports whether
    // the database answers, which under a busy machine may lag, so only its answer is asserted).
    let probe = HealthClient::new(svc.channel().await)
        .check(HealthCheckRequest { service: "qualify.scoring.v1.LeadScoringService".into() })
        .await;
    assert!(probe.is_ok(), "the readiness probe was refused during the burst: {probe:?}");
    let (mut ok, mut shed) = (0, 0);
    for r in burst {
        match r.await.unwrap() {
            Ok(()) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                let d = s.get_error_details();
                assert_eq!(d.error_info().unwrap().reason, "SERVER_OVERLOADED");
                assert!(d.retry_info().is_some(), "shed requests say when to retry");
                shed += 1;
            }
        }
    }
    assert!(ok >= 2 && shed >= 1, "{ok} served, {shed} shed");
    // The burst is over: every request is served again.
    for _ in 0..5 {
        c.get_lead(get_lead(&t)).await.unwrap();
    }
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_refused_and_another_is_not() {
    let mut cfg = config("scoring", Backend::Postgres).await;
    cfg.tenant_rate_limit = 5;
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let (noisy, quiet) = (token("acme", "ada", &[Role::Sdr]), token("globex", "bob", &[Role::Sdr]));
    // A burst of 10 passes; well before 30 calls the budget is spent.
    let mut refused = None;
    for _ in 0..30 {
        if let Err(s) = c.get_lead(get_lead(&noisy)).await
            && s.code() == Code::ResourceExhausted
        {
            refused = Some(s);
            break;
        }
    }
    let s = refused.expect("the noisy tenant was never limited");
    let d = s.get_error_details();
    assert_eq!(d.error_info().unwrap().reason, "TENANT_RATE_LIMITED");
    assert!(d.retry_info().unwrap().retry_delay.is_some_and(|d| d.as_millis() <= 1000));
    // Another tenant is untouched (its lead does not exist: NOT_FOUND, not refused).
    assert_eq!(c.get_lead(get_lead(&quiet)).await.unwrap_err().code(), Code::NotFound);
}

/// Ingestion beyond the replica's slots waits its short turn, then is refused
/// with RetryInfo, never left to run into a deadline, while reads and probes
/// still answer; once the slot is free the same batch goes through. One slot,
/// held by a batch waiting on a lead another session has locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_ingestion_is_refused_at_once_and_reads_still_answer() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
    let mut cfg = config("scoring", Backend::Postgres).await;
    cfg.ingest_concurrency = 1;
    cfg.ingest_wait = std::time::Duration::from_millis(100);
    let db = qualify_platform::db::connect(&cfg).await.unwrap();
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    seed(&mut c, "acme").await;
    let (bot, sdr) = (token("acme", "sync", &[Role::Service]), token("acme", "ada", &[Role::Sdr]));
    let batch = |id: &str| pb::IngestSignalsRequest {
        signals: vec![pb::Signal {
            signal_id: id.into(),
            lead_id: "lead-1".into(),
            contact_id: String::new(),
            r#type: pb::SignalType::PricingPageVisit as i32,
            occur_time: qualify_testkit::fixtures::ts(-0.1),
        }],
    };

    let holder = db.begin().await.unwrap();
    holder.execute_unprepared("SELECT 1 FROM leads WHERE lead_id = 'lead-1' FOR UPDATE").await.unwrap();
    let pid_row = holder.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_backend_pid() AS pid"));
    let holder_pid: i32 = pid_row.await.unwrap().unwrap().try_get("", "pid").unwrap();
    let waiting = {
        let (mut c, bot) = (c.clone(), bot.clone());
        tokio::spawn(async move { c.ingest_signals(authed(batch("s-1"), &bot)).await })
    };
    // The first batch has taken the one slot once its session waits on the holder's lock.
    let blocked = qualify_testkit::eventually(std::time::Duration::from_secs(10), || {
        let db = db.clone();
        async move {
            let sql =
                format!("SELECT count(*) AS n FROM pg_stat_activity WHERE {holder_pid} = ANY(pg_blocking_pids(pid))");
            let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.ok()??;
            (row.try_get::<i64>("", "n").ok()? > 0).then_some(())
        }
    })
    .await;
    assert!(blocked.is_some(), "the first batch never waited on the lock");
    let refused = c.ingest_signals(authed(batch("s-2"), &bot)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let d = refused.get_error_details();
    assert_eq!(d.error_info().unwrap().reason, "INGESTION_SATURATED");
    assert!(d.retry_info().is_some(), "the refusal says when to retry");
    // Scoring reads (no scorecard is published: it answers FAILED_PRECONDITION, at once).
    let target = Some(pb::score_lead_request::Target::LeadId("lead-1".into()));
    let read =
        c.score_lead(authed(pb::ScoreLeadRequest { target, scorecard_version: 0, as_of_time: None }, &sdr)).await;
    assert_eq!(read.map(|_| ()).unwrap_err().code(), Code::FailedPrecondition);
    c.get_lead(get_lead(&sdr)).await.expect("reads answer while ingestion is saturated");
    let probe = HealthClient::new(svc.channel().await)
        .check(HealthCheckRequest { service: "qualify.scoring.v1.LeadScoringService".into() })
        .await;
    assert!(probe.is_ok(), "{probe:?}");

    holder.commit().await.unwrap();
    let first = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(first.accepted_count, 1);
    let again = c.ingest_signals(authed(batch("s-2"), &bot)).await.unwrap().into_inner();
    assert_eq!(again.accepted_count, 1, "the refused batch changed nothing and goes through now");
}
