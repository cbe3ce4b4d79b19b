//! Signals as the table grows, on SQLite and PostgreSQL: after the upgrade the
//! table is partitioned by month (PostgreSQL) with every row in its month and
//! replays still duplicates; a retention drops whole months past it (deletes
//! the rows on SQLite), refuses signals older than it, bounds roll-ups, never
//! undercuts a published scorecard's window, and changes no score.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use chrono::{DateTime, Duration, Utc};
use qualify_platform::Clock;
use qualify_platform::db::connect_url;
use qualify_platform::partition::Month;
use qualify_proto::convert::timestamp;
use qualify_proto::scoring::{
    self as pb, SignalOutcome, SignalType, lead_scoring_service_client::LeadScoringServiceClient,
    score_lead_request::Target,
};
use qualify_scoring::Scoring;
use qualify_scoring::store::migration::Migrator;
use qualify_scoring::store::signals::PARTITIONS;
use qualify_testkit::{Backend, authed, durable_config, on_both_backends, spawn};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use tonic_types::StatusExt;

use super::ingestion::{Tenant, lead_id};

on_both_backends!(
    signals_keep_their_rows_and_replays_across_the_upgrade,
    a_retention_drops_old_months_and_refuses_older_signals,
);

fn demo(id: &str, at: DateTime<Utc>) -> pb::Signal {
    pb::Signal {
        signal_id: id.into(),
        lead_id: lead_id(0),
        contact_id: String::new(),
        r#type: SignalType::DemoRequest as i32,
        occur_time: Some(timestamp(at)),
    }
}

async fn ingest(t: &mut Tenant, signals: Vec<pb::Signal>) -> Vec<(i32, String)> {
    let r = t.c.ingest_signals(authed(pb::IngestSignalsRequest { signals }, &t.bot)).await.unwrap().into_inner();
    r.results
        .into_iter()
        .map(|r| (r.outcome, r.violations.first().map(|v| v.field.clone()).unwrap_or_default()))
        .collect()
}

fn accepted() -> (i32, String) {
    (SignalOutcome::Accepted as i32, String::new())
}

fn duplicate() -> (i32, String) {
    (SignalOutcome::Duplicate as i32, String::new())
}

async fn query(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap()
}

/// The signals stored, by id, oldest first.
async fn stored(db: &DatabaseConnection) -> Vec<String> {
    let rows = query(db, "SELECT signal_id FROM signals ORDER BY occurred_at").await;
    rows.iter().map(|r| r.try_get::<String>("", "signal_id").unwrap()).collect()
}

/// Rows written by the release before M007 are in their month's partition
/// afterwards, the months run from the oldest signal's through three ahead, a
/// replay of an old signal is still a duplicate, and a back-dated signal older
/// than every month still has a place (no retention is configured).
async fn signals_keep_their_rows_and_replays_across_the_upgrade(b: Backend) {
    let mut cfg = durable_config("scoring", b).await;
    let now = Clock::system().now();
    cfg.clock = Clock::manual(now);
    let db = connect_url(&cfg.database_url, cfg.database_schema.as_deref(), 1).await.unwrap();
    let before = Migrator::migrations().iter().take_while(|m| m.name() != "m20261206_000007_signal_partitions").count();
    assert!(before < Migrator::migrations().len(), "the partitioning migration is registered");
    Migrator::up(&db, Some(before as u32)).await.unwrap();
    let old = [("s-200", 200), ("s-100", 100), ("s-5", 5)].map(|(id, days)| (id, now - Duration::days(days)));
    let backend = db.get_database_backend();
    for (id, at) in old {
        let sql = "INSERT INTO signals (tenant_id, signal_id, lead_id, account_id, contact_id, kind, occurred_at, received_at) \
                   VALUES ('acme', $1, 'lead-0000', 'acc-1', NULL, 'demo_request', $2, $2)";
        let sql = if backend == DbBackend::Postgres { sql.to_string() } else { sql.replace('$', "?") };
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [id.into(), at.into()])).await.unwrap();
    }

    let svc = spawn::<Scoring>(cfg.clone()).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let mut t = Tenant::new(&c, "acme", 1, 1000).await;
    assert_eq!(stored(&db).await, ["s-200", "s-100", "s-5"]);
    if backend == DbBackend::Postgres {
        let layout = PARTITIONS.layout(&db).await.unwrap();
        let first = Month::of(now - Duration::days(200));
        let mut want = vec![first];
        while *want.last().unwrap() < Month::of(now).plus(3) {
            want.push(want.last().unwrap().next());
        }
        assert_eq!(layout.months, want, "every month from the oldest signal's through three ahead");
        assert_eq!(layout.before, Some(first), "and one partition for anything older");
        let rows = query(&db, "SELECT tableoid::regclass::text AS part, occurred_at FROM signals").await;
        for r in rows {
            let (part, at): (String, DateTime<Utc>) =
                (r.try_get("", "part").unwrap(), r.try_get("", "occurred_at").unwrap());
            assert_eq!(part, partition_name(Month::of(at)), "the partition holding {at}");
        }
    }

    // A replay is still a duplicate; the same id at another time is another signal.
    let (_, s100) = old[1];
    let replay =
        vec![demo("s-100", s100), demo("s-100", s100 + Duration::hours(1)), demo("s-400", now - Duration::days(400))];
    assert_eq!(ingest(&mut t, replay).await, [duplicate(), accepted(), accepted()]);
    assert_eq!(stored(&db).await, ["s-400", "s-200", "s-100", "s-100", "s-5"]);
}

fn partition_name(m: Month) -> String {
    format!("signals_p{}", m.start().format("%Y%m"))
}

/// Demo requests count for ever (40 points each, no decay); pricing visits 10 points within 130 days.
fn scorecard_with_a_130_day_window() -> pb::Scorecard {
    let mut card = super::ingestion::scorecard(1000);
    card.engagement_rules = vec![
        pb::EngagementRule {
            id: "demo".into(),
            signal_type: SignalType::DemoRequest as i32,
            points: 40,
            ..Default::default()
        },
        pb::EngagementRule {
            id: "pricing".into(),
            signal_type: SignalType::PricingPageVisit as i32,
            points: 10,
            window_days: 130,
            ..Default::default()
        },
    ];
    card
}

/// A retention of 100 days, with a published scorecard looking back 130: the
/// retention in effect is 130 days from the publish on. Signals older than
/// that are refused with the field named. Two hundred days later, the
/// restarted service has dropped the months wholly older (less a day's
/// margin) before it serves (deleted their rows on SQLite), the lead's score is
/// unchanged, and a roll-up may not reach past the retention.
async fn a_retention_drops_old_months_and_refuses_older_signals(b: Backend) {
    let mut cfg = durable_config("scoring", b).await;
    let now = Clock::system().now();
    cfg.clock = Clock::manual(now);
    cfg.signal_retention_days = 100;
    let svc = spawn::<Scoring>(cfg.clone()).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let mut t = Tenant::new(&c, "acme", 1, 1000).await;
    let days = |d: i64| now - Duration::days(d);
    let rejected = (SignalOutcome::Rejected as i32, "occur_time".to_string());
    assert_eq!(
        ingest(&mut t, vec![demo("d-120", days(120))]).await,
        std::slice::from_ref(&rejected),
        "100 days before the publish"
    );
    t.publish(scorecard_with_a_130_day_window()).await;
    let first =
        vec![demo("d-120", days(120)), demo("d-140", days(140)), demo("d-60", days(60)), demo("d-10", days(10))];
    assert_eq!(ingest(&mut t, first).await, [accepted(), rejected.clone(), accepted(), accepted()]);
    let score = |mut c: LeadScoringServiceClient<_>, bot: String| async move {
        let req =
            pb::ScoreLeadRequest { target: Some(Target::LeadId(lead_id(0))), scorecard_version: 0, as_of_time: None };
        let again = c.score_lead(authed(req, &bot)).await.unwrap().into_inner().score.unwrap();
        let lead = c.get_lead(authed(pb::GetLeadRequest { lead_id: lead_id(0) }, &bot)).await.unwrap();
        (lead.into_inner().lead.unwrap().score.unwrap().engagement, again.engagement)
    };
    assert_eq!(score(t.c.clone(), t.bot.clone()).await, (120, 120));
    svc.stop().await.unwrap();

    // Two hundred days later.
    let later = now + Duration::days(200);
    cfg.clock.set(later);
    let svc = spawn::<Scoring>(cfg.clone()).await;
    t.c = LeadScoringServiceClient::new(svc.channel().await);
    // Scores read the lead's own log: dropping months changes nothing. (The
    // first answer also means the service serves, so its first pass is done.)
    assert_eq!(score(t.c.clone(), t.bot.clone()).await, (120, 120));
    let db = connect_url(&cfg.database_url, cfg.database_schema.as_deref(), 1).await.unwrap();
    assert_eq!(stored(&db).await, Vec::<String>::new(), "every month of the first run is past the retention");
    if db.get_database_backend() == DbBackend::Postgres {
        let layout = PARTITIONS.layout(&db).await.unwrap();
        assert_eq!(layout.before, None, "with a retention nothing older than it has a place");
        // 130 days and a day's margin: the month holding that instant is the oldest kept.
        assert_eq!(layout.months.first(), Some(&Month::of(later - Duration::days(131))));
        assert_eq!(layout.months.last(), Some(&Month::of(later).plus(3)));
    }

    let back = |d: i64| later - Duration::days(d);
    let late = vec![demo("e-120", back(120)), demo("e-140", back(140))];
    assert_eq!(ingest(&mut t, late).await, [accepted(), rejected]);
    assert_eq!(stored(&db).await, ["e-120"]);
    let rollup = |window_days| pb::GetAccountRollupRequest { account_id: "acc-1".into(), window_days };
    let e = t.c.get_account_rollup(authed(rollup(365), &t.bot)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "window_days");
    let r = t.c.get_account_rollup(authed(rollup(130), &t.bot)).await.unwrap().into_inner();
    assert_eq!(r.signal_count, 1, "e-120");
}
