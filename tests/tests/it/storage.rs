//! Storage behaviour that needs a real PostgreSQL server: readiness follows
//! the database, migrations are safe to start together, and an idempotency
//! key claimed by concurrent retries runs the change once.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::time::Duration;

use qualify_platform::ServiceConfig;
use qualify_platform::db::connect_url;
use qualify_proto::scoring::{self as pb, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, eventually, postgres_url, spawn, token};
use sea_orm::ConnectionTrait;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SCORING: &str = "qualify.scoring.v1.LeadScoringService";

/// A database of its own on the machine's server, dropped at the end.
struct ScratchDb {
    name: String,
    admin: sea_orm::DatabaseConnection,
}

impl ScratchDb {
    async fn create() -> Self {
        let admin = connect_url(&postgres_url(), None, 2).await.expect("PostgreSQL must answer for this test");
        let name = format!("qualify_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        ScratchDb { name, admin }
    }

    fn url(&self) -> String {
        let base = postgres_url();
        let root = &base[..base.rfind('/').unwrap()];
        format!("{root}/{}", self.name)
    }

    async fn lock_out(&self, locked: bool) {
        self.admin
            .execute_unprepared(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS {}", self.name, !locked))
            .await
            .unwrap();
        if locked {
            self.admin
                .execute_unprepared(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ))
                .await
                .unwrap();
        }
    }

    async fn drop(self) {
        self.lock_out(true).await;
        self.admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", self.name)).await.unwrap();
    }
}

async fn health(ch: tonic::transport::Channel, service: &str) -> Option<i32> {
    HealthClient::new(ch)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .ok()
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn readiness_follows_postgres_and_liveness_does_not() {
    let db = ScratchDb::create().await;
    let mut config = qualify_testkit::config("scoring", Backend::Sqlite).await;
    config.database_url = db.url();
    config.database_schema = Some("scoring".into());
    let svc = spawn::<Scoring>(config).await;
    let ch = svc.channel().await;
    let serving = Some(ServingStatus::Serving as i32);
    let not_serving = Some(ServingStatus::NotServing as i32);

    let wait = |want: Option<i32>| {
        let ch = ch.clone();
        async move {
            eventually(Duration::from_secs(20), || {
                let ch = ch.clone();
                async move { (health(ch, SCORING).await == want).then_some(()) }
            })
            .await
        }
    };
    assert!(wait(serving).await.is_some(), "ready once PostgreSQL answers");
    db.lock_out(true).await;
    assert!(wait(not_serving).await.is_some(), "not ready while PostgreSQL refuses connections");
    assert_eq!(health(ch.clone(), "").await, serving, "liveness never depends on the database");
    db.lock_out(false).await;
    assert!(wait(serving).await.is_some(), "ready again without a restart");
    svc.stop().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn migrations_started_together_apply_once() {
    let db = ScratchDb::create().await;
    let config = |_: usize| {
        let mut c = ServiceConfig::embedded("scoring", "127.0.0.1:0".parse().unwrap());
        c.database_url = db.url();
        c.database_schema = Some("scoring".into());
        c
    };
    let runs = (0..4).map(|i| <Scoring as qualify_platform::QualifyService>::migrate(config(i)));
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    let conn = connect_url(&db.url(), Some("scoring"), 1).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .unwrap();
    use sea_orm_migration::MigratorTrait;
    let expected = qualify_scoring::store::migration::Migrator::migrations().len();
    assert_eq!(rows.len(), expected, "each migration recorded exactly once");
    conn.close().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn concurrent_retries_of_one_request_run_it_once() {
    let svc = spawn::<Scoring>(qualify_testkit::config("scoring", Backend::Postgres).await).await;
    let ch = svc.channel().await;
    let t = token("acme", "sync", &[Role::Service]);
    let req = pb::UpdateAccountRequest {
        account: Some(pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() }),
        allow_missing: true,
        request_id: "same-key".into(),
        ..Default::default()
    };
    let calls = (0..16).map(|_| {
        let mut c = LeadScoringServiceClient::new(ch.clone());
        let r = authed(req.clone(), &t);
        async move { c.update_account(r).await.map(|r| r.into_inner()) }
    });
    let answers: Vec<_> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every retry sees the first answer");
    assert_eq!(answers[0].account.as_ref().unwrap().etag, "1", "the update ran once, not sixteen times");
}

qualify_testkit::on_both_backends!(idempotency_keys_are_kept_48_hours_and_no_longer);

/// Keys are kept 48 hours, as the README promises, and purged after: a retry
/// within the window gets the first answer; after it, the call runs anew.
async fn idempotency_keys_are_kept_48_hours_and_no_longer(b: Backend) {
    let clock = qualify_platform::Clock::manual(qualify_platform::Clock::system().now());
    let mut cfg = qualify_testkit::config("scoring", b).await;
    cfg.clock = clock.clone();
    cfg.idempotency_purge_every = Duration::from_millis(20);
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let t = token("acme", "sync", &[Role::Service]);
    let req = pb::CreateAccountRequest {
        account: Some(pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() }),
        request_id: "key-1".into(),
    };
    let first = c.create_account(authed(req.clone(), &t)).await.unwrap().into_inner();
    clock.advance(chrono::Duration::hours(47));
    tokio::time::sleep(Duration::from_millis(200)).await; // several purges at 47 h
    let retried = c.create_account(authed(req.clone(), &t)).await.unwrap().into_inner();
    assert_eq!(retried, first, "within 48 hours a retry gets the first answer");
    clock.advance(chrono::Duration::hours(2));
    let anew = eventually(Duration::from_secs(5), || {
        let (mut c, r) = (c.clone(), authed(req.clone(), &t));
        async move { c.create_account(r).await.err().filter(|s| s.code() == tonic::Code::AlreadyExists) }
    })
    .await;
    assert!(anew.is_some(), "after 48 hours the key is gone and the create runs again (and finds the account)");
}

qualify_testkit::on_both_backends!(outbox_events_past_their_retention_are_pruned_and_readers_told);

/// With a retention, stamped events older than it are pruned (the newest
/// always stays, so positions keep counting); a reader asking to resume
/// before the pruned range is told OUT_OF_RANGE with where to resume,
/// instead of silently missing events. Within the retention nothing goes.
async fn outbox_events_past_their_retention_are_pruned_and_readers_told(b: Backend) {
    let clock = qualify_platform::Clock::manual(qualify_platform::Clock::system().now());
    let mut cfg = qualify_testkit::config("scoring", b).await;
    cfg.clock = clock.clone();
    cfg.idempotency_purge_every = Duration::from_millis(20);
    cfg.outbox_retention_days = 1;
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let t = token("acme", "sync", &[Role::Service]);
    let account = pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    c.create_account(authed(pb::CreateAccountRequest { account: Some(account), request_id: String::new() }, &t))
        .await
        .unwrap();
    let create = |id: &str| pb::CreateLeadRequest {
        lead: Some(pb::Lead {
            lead_id: id.into(),
            account_id: "acc-1".into(),
            source: qualify_proto::common::LeadSource::Inbound as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    for id in ["lead-1", "lead-2", "lead-3"] {
        c.create_lead(authed(create(id), &t)).await.unwrap();
    }
    let reader = c.clone();
    let read = |after: i64| {
        let (mut c, t) = (reader.clone(), t.clone());
        async move {
            let req = pb::StreamEventsRequest { after_sequence: after, follow: false };
            let mut s = c.stream_events(authed(req, &t)).await?.into_inner();
            let mut seqs = Vec::new();
            while let Some(e) = s.message().await? {
                seqs.push(e.event.unwrap().sequence);
            }
            Ok::<_, tonic::Status>(seqs)
        }
    };
    let all = eventually(Duration::from_secs(5), || async { read(0).await.ok().filter(|s| s.len() == 3) }).await;
    assert_eq!(all, Some(vec![1, 2, 3]), "the three creations are stamped in order");

    clock.advance(chrono::Duration::hours(20));
    tokio::time::sleep(Duration::from_millis(300)).await; // several prunings within the retention
    assert_eq!(read(0).await.unwrap(), [1, 2, 3], "within the retention nothing is pruned");

    clock.advance(chrono::Duration::hours(8));
    let refused = eventually(Duration::from_secs(5), || async { read(0).await.err() }).await.unwrap();
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("resume after sequence 2"), "{}", refused.message());
    assert_eq!(read(2).await.unwrap(), [3], "the newest event stays");

    c.create_lead(authed(create("lead-4"), &t)).await.unwrap();
    // Event 3 is past the retention too once 4 is newer: read after it, whether or not it was pruned yet.
    let next = eventually(Duration::from_secs(5), || async { read(3).await.ok().filter(|s| !s.is_empty()) }).await;
    assert_eq!(next, Some(vec![4]), "positions continue after a pruning");
}
