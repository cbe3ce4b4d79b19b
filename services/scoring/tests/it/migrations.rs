//! Upgrading a database: rows written by the release before stored rows held
//! domain documents (scorecards and lead scores as encoded protobuf messages)
//! read back through the API exactly as that release answered, after the
//! service migrates them at start. On SQLite and on the machine's PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use chrono::{DateTime, Utc};
use prost::Message;
use qualify_platform::db::connect_url;
use qualify_proto::common::{Framework, LeadStage, Segment};
use qualify_proto::convert::timestamp;
use qualify_proto::scoring::{self as pb, fit_rule, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_scoring::store::migration::Migrator;
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use sea_orm_migration::MigratorTrait;

on_both_backends!(scorecards_and_scores_read_back_unchanged_after_the_upgrade);

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Two versions as the old release stored them: its body was the request's
/// message with version, publish time and publisher filled in.
fn old_scorecards() -> Vec<pb::Scorecard> {
    let v1 = pb::Scorecard {
        segment: Segment::MidMarket as i32,
        version: 1,
        fit_rules: vec![
            pb::FitRule {
                id: "fintech".into(),
                attribute: pb::Attribute::Industry as i32,
                points: 20,
                predicate: Some(fit_rule::Predicate::OneOf(pb::StringList {
                    values: vec!["fintech".into(), "banking".into()],
                })),
            },
            pb::FitRule {
                id: "vp".into(),
                attribute: pb::Attribute::Title as i32,
                points: 15,
                predicate: Some(fit_rule::Predicate::Contains("vp".into())),
            },
            pb::FitRule {
                id: "size".into(),
                attribute: pb::Attribute::EmployeeCount as i32,
                points: -5,
                predicate: Some(fit_rule::Predicate::Between(pb::Range { min: 1, max: 49 })),
            },
        ],
        engagement_rules: vec![pb::EngagementRule {
            id: "demo".into(),
            signal_type: pb::SignalType::DemoRequest as i32,
            points: 30,
            half_life_days: 14.5,
            cap: 60,
            window_days: 90,
        }],
        mql_threshold: 40,
        pql_threshold: 0,
        grade_bands: Some(pb::GradeBands {
            fit_a: 30,
            fit_b: 20,
            fit_c: 10,
            engagement_1: 40,
            engagement_2: 20,
            engagement_3: 5,
        }),
        framework: Framework::Unspecified as i32,
        publish_time: Some(timestamp(at("2026-02-01T09:00:00.123456Z"))),
        published_by: "ada".into(),
    };
    let v2 = pb::Scorecard {
        version: 2,
        mql_threshold: 35,
        framework: Framework::Meddic as i32,
        publish_time: Some(timestamp(at("2026-02-03T10:30:00Z"))),
        published_by: "grace".into(),
        ..v1.clone()
    };
    vec![v1, v2]
}

fn old_score() -> pb::Score {
    pb::Score {
        total: 50,
        fit: 20,
        engagement: 30,
        product: 0,
        grade: "B1".into(),
        recommended_stage: LeadStage::Mql as i32,
        scorecard_version: 2,
        contributions: vec![
            pb::RuleContribution {
                rule_id: "fintech".into(),
                kind: pb::RuleKind::Fit as i32,
                points: 20,
                signal_count: 0,
            },
            pb::RuleContribution {
                rule_id: "demo".into(),
                kind: pb::RuleKind::Engagement as i32,
                points: 30,
                signal_count: 1,
            },
        ],
        score_time: Some(timestamp(at("2026-02-04T08:00:00.000001Z"))),
    }
}

async fn scorecards_and_scores_read_back_unchanged_after_the_upgrade(b: Backend) {
    let mut cfg = config("scoring", b).await;
    let file = std::env::temp_dir().join(format!("qualify-m004-{}.db", uuid::Uuid::new_v4().simple()));
    if b == Backend::Sqlite {
        cfg.database_url = format!("sqlite://{}?mode=rwc", file.display());
    }
    // The database as the previous release left it.
    let db = connect_url(&cfg.database_url, cfg.database_schema.as_deref(), 1).await.unwrap();
    let before = Migrator::migrations().iter().take_while(|m| m.name() != "m20261203_000004_domain_documents").count();
    assert!(before < Migrator::migrations().len(), "the document migration is registered");
    Migrator::up(&db, Some(before as u32)).await.unwrap();
    let backend = db.get_database_backend();
    let sql = |pg: &str| match backend {
        DbBackend::Postgres => pg.to_string(),
        _ => pg.replace('$', "?"), // numbered parameters: ?1 is $1
    };
    let exec = |q: String, values: Vec<Value>| {
        let db = db.clone();
        async move { db.execute_raw(Statement::from_sql_and_values(backend, q, values)).await.unwrap() }
    };
    exec(
        sql("INSERT INTO accounts (tenant_id, account_id, display_name, industry, employee_count, revenue_band, region, segment, version, created_at, updated_at) VALUES ('acme', 'a-1', 'Acme', 'fintech', 250, '', 'emea', 'mid_market', 1, $1, $1)"),
        vec![at("2026-01-01T00:00:00Z").into()],
    )
    .await;
    for sc in old_scorecards() {
        let published_at = at(if sc.version == 1 { "2026-02-01T09:00:00.123456Z" } else { "2026-02-03T10:30:00Z" });
        exec(
            sql("INSERT INTO scorecards (tenant_id, segment, version, body, published_by, published_at) VALUES ('acme', 'mid_market', $1, $2, $3, $4)"),
            vec![sc.version.into(), sc.encode_to_vec().into(), sc.published_by.clone().into(), published_at.into()],
        )
        .await;
    }
    for (lead, score) in [("l-scored", Some(old_score())), ("l-new", None)] {
        exec(
            sql("INSERT INTO leads (tenant_id, lead_id, account_id, source, campaign, owner_sdr, stage, contact_id, score, score_total, created_at, updated_at) VALUES ('acme', $1, 'a-1', 'inbound', 'q1', 'sam', $2, NULL, $3, $4, $5, $5)"),
            vec![
                lead.into(),
                (if score.is_some() { "mql" } else { "new" }).into(),
                score.as_ref().map(Message::encode_to_vec).into(),
                score.as_ref().map(|s| s.total).into(),
                at("2026-01-15T00:00:00Z").into(),
            ],
        )
        .await;
    }
    db.close().await.unwrap();

    // The new release migrates at start and answers as the old one did.
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let t = token("acme", "ada", &[Role::Revops]);
    for want in old_scorecards() {
        let got = c
            .get_scorecard(authed(
                pb::GetScorecardRequest { segment: Segment::MidMarket as i32, version: want.version },
                &t,
            ))
            .await
            .unwrap()
            .into_inner()
            .scorecard
            .unwrap();
        assert_eq!(got, want, "version {}", want.version);
    }
    let listed = c
        .list_scorecards(authed(
            pb::ListScorecardsRequest { segment: Segment::MidMarket as i32, ..Default::default() },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .scorecards;
    assert_eq!(listed, old_scorecards().into_iter().rev().collect::<Vec<_>>());
    let lead = |id: &'static str| {
        let mut c = c.clone();
        let t = t.clone();
        async move {
            c.get_lead(authed(pb::GetLeadRequest { lead_id: id.into() }, &t)).await.unwrap().into_inner().lead.unwrap()
        }
    };
    assert_eq!(lead("l-scored").await.score, Some(old_score()));
    assert_eq!(lead("l-new").await.score, None);
    // The migrated rules still score: version 2 is the one in force.
    let scored = c
        .score_lead(authed(
            pb::ScoreLeadRequest {
                target: Some(pb::score_lead_request::Target::LeadId("l-scored".into())),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    assert_eq!((scored.scorecard_version, scored.fit), (2, 20), "{scored:?}");
    svc.stop().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
