//! History imported into lead scoring counts in metrics in the months it
//! happened: a quarter imported month by month gives each month its own
//! figures, a late import moves a past month's, and a rebuild from the streams
//! gives the same figures as live ingestion. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use qualify_metrics::Metrics;
use qualify_proto::common::{ImportOutcome, LeadSource, LeadStage};
use qualify_proto::convert::timestamp;
use qualify_proto::metrics::{self as pb, FunnelDimension, metrics_service_client::MetricsServiceClient};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, Tokens, authed, config, eventually, on_both_backends, spawn, token};
use tonic::transport::Channel;

on_both_backends!(an_imported_quarter_counts_month_by_month_and_a_rebuild_agrees);

/// Day `day` (1-based) of the month `back` months before the current one.
fn day_of(back: u32, day: u32) -> DateTime<Utc> {
    let now = qualify_platform::Clock::system().now();
    let (mut y, mut m) = (now.year(), now.month());
    for _ in 0..back {
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    NaiveDate::from_ymd_opt(y, m, day).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc()
}

fn month(back: u32) -> String {
    day_of(back, 1).format("%Y-%m").to_string()
}

/// A lead created at `created`, moving to each stage at its time.
fn lead(id: &str, created: DateTime<Utc>, moves: &[(LeadStage, DateTime<Utc>)]) -> sc::ImportedLead {
    sc::ImportedLead {
        lead: Some(sc::Lead {
            lead_id: id.into(),
            account_id: "acc-1".into(),
            source: LeadSource::Inbound as i32,
            ..Default::default()
        }),
        create_time: Some(timestamp(created)),
        stage_changes: moves
            .iter()
            .map(|(to, at)| sc::ImportedStageChange {
                to_stage: *to as i32,
                change_time: Some(timestamp(*at)),
                ..Default::default()
            })
            .collect(),
    }
}

/// (month, leads, MQLs, SQLs, MQL→SQL of the month's MQL cohort) for the last three months.
type Row = (String, i64, i64, i64, Option<f64>);

async fn by_month(m: &mut MetricsServiceClient<Channel>) -> Vec<Row> {
    let req = pb::GetFunnelRequest {
        start_period: month(3),
        end_period: month(1),
        group_by: vec![FunnelDimension::Period as i32],
        ..Default::default()
    };
    let t = token("acme", "mia", &[Role::Manager]);
    let rows = m.get_funnel(authed(req, &t)).await.unwrap().into_inner().rows;
    rows.into_iter()
        .map(|r| {
            let f = r.figures.unwrap();
            (r.group.unwrap().period, f.leads, f.mqls, f.sqls, f.mql_to_sql)
        })
        .collect()
}

async fn reaches(m: &mut MetricsServiceClient<Channel>, want: &[Row]) {
    let got = eventually(Duration::from_secs(20), || {
        let mut m = m.clone();
        async move { (by_month(&mut m).await == want).then_some(()) }
    })
    .await;
    assert!(got.is_some(), "metrics never reached {want:?}; last: {:?}", by_month(m).await);
}

async fn an_imported_quarter_counts_month_by_month_and_a_rebuild_agrees(b: Backend) {
    let scoring = spawn::<Scoring>(config("scoring", b).await).await;
    let mut metrics_cfg = config("metrics", b).await;
    metrics_cfg.scoring_url = Some(scoring.url());
    let metrics = spawn::<Metrics>(metrics_cfg).await;
    let mut m = MetricsServiceClient::new(metrics.channel().await);
    let mut s = LeadScoringServiceClient::new(scoring.channel().await);
    let acme = Tokens::new("acme");
    let account = sc::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &acme.sync))
        .await
        .unwrap();

    use LeadStage::{Mql, Sql};
    // Three months ago: four leads, three MQLs, one SQL; a2 reaches SQL the month after.
    // Two months ago: three leads, two MQLs, b1 SQL. Last month: two leads, one MQL.
    let months = [
        vec![
            lead("a1", day_of(3, 5), &[(Mql, day_of(3, 6)), (Sql, day_of(3, 8))]),
            lead("a2", day_of(3, 5), &[(Mql, day_of(3, 7)), (Sql, day_of(2, 3))]),
            lead("a3", day_of(3, 9), &[(Mql, day_of(3, 20))]),
            lead("a4", day_of(3, 25), &[]),
        ],
        vec![
            lead("b1", day_of(2, 2), &[(Mql, day_of(2, 4)), (Sql, day_of(2, 20))]),
            lead("b2", day_of(2, 10), &[(Mql, day_of(2, 11))]),
            lead("b3", day_of(2, 27), &[]),
        ],
        vec![lead("c1", day_of(1, 1), &[(Mql, day_of(1, 2))]), lead("c2", day_of(1, 15), &[])],
    ];
    for batch in months {
        let n = batch.len() as i32;
        let r = s.import_leads(authed(sc::ImportLeadsRequest { leads: batch }, &acme.importer)).await.unwrap();
        assert_eq!(r.into_inner().imported_count, n);
    }
    let quarter =
        vec![(month(3), 4, 3, 1, Some(2.0 / 3.0)), (month(2), 3, 2, 2, Some(0.5)), (month(1), 2, 1, 0, Some(0.0))];
    reaches(&mut m, &quarter).await;

    // A late import of a lead of three months ago moves that month, and only that month.
    let late = vec![lead("a5", day_of(3, 28), &[(Mql, day_of(3, 28))])];
    let r = s.import_leads(authed(sc::ImportLeadsRequest { leads: late.clone() }, &acme.importer)).await.unwrap();
    assert_eq!(r.into_inner().results[0].outcome, ImportOutcome::Imported as i32);
    let mut moved = quarter.clone();
    moved[0] = (month(3), 5, 4, 1, Some(0.5));
    reaches(&mut m, &moved).await;
    // Re-running it changes nothing, here or in metrics.
    let r = s.import_leads(authed(sc::ImportLeadsRequest { leads: late }, &acme.importer)).await.unwrap();
    assert_eq!(r.into_inner().results[0].outcome, ImportOutcome::Unchanged as i32);

    // A rebuild from the streams gives what live ingestion gave.
    let operator = token(qualify_platform::outbox::SYSTEM_TENANT, "ops", &[Role::Revops]);
    m.rebuild_rollups(authed(pb::RebuildRollupsRequest {}, &operator)).await.unwrap();
    reaches(&mut m, &moved).await;
}
