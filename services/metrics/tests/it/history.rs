//! History imported into lead scoring counts in metrics in the months it
//! happened: a quarter imported month by month gives each month its own
//! figures, a late import moves a past month's, and a rebuild from the streams
//! gives the same figures as live ingestion. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use qualify_acceptance::Acceptance;
use qualify_metrics::Metrics;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient as AccClient,
};
use qualify_proto::common::{ImportOutcome, LeadSource, LeadStage, Money, Segment};
use qualify_proto::convert::timestamp;
use qualify_proto::metrics::{self as pb, FunnelDimension, metrics_service_client::MetricsServiceClient};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, Tokens, authed, config, eventually, on_both_backends, spawn, token};
use tonic::transport::Channel;

on_both_backends!(
    an_imported_quarter_counts_month_by_month_and_a_rebuild_agrees,
    imported_deals_give_true_medians_close_rates_and_a_forecast,
);

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

fn usd(dollars: i64) -> Option<Money> {
    Some(Money { amount_minor: dollars * 100, currency_code: "USD".into() })
}

/// An SMB deal of $10,000 on `lead`, submitted the day before `accepted` and accepted then, with
/// a meaningful call on each of `calls` and, when given, a close.
fn deal(
    id: &str,
    lead: &str,
    accepted: DateTime<Utc>,
    calls: &[DateTime<Utc>],
    close: Option<(bool, DateTime<Utc>)>,
) -> acc::ImportedOpportunity {
    acc::ImportedOpportunity {
        opportunity: Some(acc::Opportunity {
            opportunity_id: id.into(),
            lead_id: lead.into(),
            segment: Segment::Smb as i32,
            amount: usd(10_000),
            expected_close_time: Some(timestamp(accepted + chrono::Duration::days(90))),
            team: "emea".into(),
            ..Default::default()
        }),
        submit_time: Some(timestamp(accepted - chrono::Duration::days(1))),
        submitted_by: "sam".into(),
        decision: Some(acc::ImportedDecision {
            accepted: true,
            decided_by: "alex".into(),
            decide_time: Some(timestamp(accepted)),
            ..Default::default()
        }),
        activities: calls
            .iter()
            .map(|at| acc::Activity {
                r#type: acc::ActivityType::Call as i32,
                meaningful: true,
                occur_time: Some(timestamp(*at)),
                ..Default::default()
            })
            .collect(),
        close: close.map(|(won, at)| acc::ImportedClose {
            won,
            close_time: Some(timestamp(at)),
            reason: if won { "signed" } else { "went with a competitor" }.into(),
            ..Default::default()
        }),
    }
}

/// domain.md: five deals accepted on day 0 with first meaningful conversations on days 1, 3, 10
/// and 40 and one never, read sixty days on or more: a median of 6.5 days, 60 % within 30 days,
/// so two abandoned (one of them still untouched). Two deals of the month before, one won and one
/// lost, teach a 50 % close rate: the five open deals ($50,000) forecast $25,000.
async fn imported_deals_give_true_medians_close_rates_and_a_forecast(b: Backend) {
    let scoring = spawn::<Scoring>(config("scoring", b).await).await;
    let mut acc_cfg = config("acceptance", b).await;
    acc_cfg.scoring_url = Some(scoring.url());
    let acceptance = spawn::<Acceptance>(acc_cfg).await;
    let mut metrics_cfg = config("metrics", b).await;
    metrics_cfg.scoring_url = Some(scoring.url());
    metrics_cfg.acceptance_url = Some(acceptance.url());
    let metrics = spawn::<Metrics>(metrics_cfg).await;
    let m = MetricsServiceClient::new(metrics.channel().await);
    let mut s = LeadScoringServiceClient::new(scoring.channel().await);
    let mut a = AccClient::new(acceptance.channel().await);
    let acme = Tokens::new("acme");
    let account = sc::Account {
        account_id: "acc-1".into(),
        display_name: "Acme".into(),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &acme.sync))
        .await
        .unwrap();
    let day0 = day_of(3, 2);
    let day = |n: i64| day0 + chrono::Duration::days(n);
    let before = day_of(4, 3);
    let leads: Vec<_> = (1..=11)
        .map(|i| lead(&format!("l{i}"), before, &[(LeadStage::Mql, before), (LeadStage::Sql, before)]))
        .collect();
    s.import_leads(authed(sc::ImportLeadsRequest { leads }, &acme.importer)).await.unwrap();

    let deals = vec![
        deal("o1", "l1", day0, &[day(1)], None),
        deal("o2", "l2", day0, &[day(3), day(5)], None),
        deal("o3", "l3", day0, &[day(10)], None),
        deal("o4", "l4", day0, &[day(40)], None),
        deal("o5", "l5", day0, &[], None),
        deal("o6", "l6", before, &[before], Some((true, day_of(4, 20)))),
        deal("o7", "l7", before, &[before], Some((false, day_of(4, 25)))),
    ];
    // Five months ago, four deals accepted and one reached within 30 days: stage inflation,
    // once their follow-up window has passed.
    let inflated = day_of(5, 3);
    let later = |n: i64| inflated + chrono::Duration::days(n);
    let mut deals = deals;
    deals.push(deal("o8", "l8", inflated, &[later(2)], None));
    for (o, l) in [("o9", "l9"), ("o10", "l10"), ("o11", "l11")] {
        deals.push(deal(o, l, inflated, &[], None));
    }
    // Only an importer imports: an AE, a service or an SDR that also imports cannot.
    for t in [acme.ae.clone(), acme.sync.clone(), token("acme", "sam", &[Role::Sdr, Role::Importer])] {
        let e = a.import_opportunities(authed(acc::ImportOpportunitiesRequest { opportunities: deals.clone() }, &t));
        assert_eq!(e.await.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
    let r = a
        .import_opportunities(authed(acc::ImportOpportunitiesRequest { opportunities: deals.clone() }, &acme.importer));
    assert_eq!(r.await.unwrap().into_inner().imported_count, 11);
    let again =
        a.import_opportunities(authed(acc::ImportOpportunitiesRequest { opportunities: deals }, &acme.importer));
    assert_eq!(again.await.unwrap().into_inner().unchanged_count, 11, "a re-run changes nothing");
    let o4 = a.get_opportunity(authed(acc::GetOpportunityRequest { opportunity_id: "o4".into() }, &acme.sdr));
    let o4 = o4.await.unwrap().into_inner().opportunity.unwrap();
    assert!(o4.imported);
    assert_eq!((o4.accept_time, o4.first_meaningful_activity_time), (Some(timestamp(day0)), Some(timestamp(day(40)))));
    // The imported decisions are on record (by the CRM's AE, holding the importer role) but never
    // drawn for calibration: a live decision means something else.
    let decisions = a.list_decisions(authed(acc::ListDecisionsRequest { opportunity_id: "o4".into() }, &acme.sdr));
    let decisions = decisions.await.unwrap().into_inner().decisions;
    let actor = decisions[0].actor.clone().unwrap();
    assert_eq!(
        (actor.subject.as_str(), actor.roles.as_slice()),
        ("alex", &[qualify_proto::common::Role::Importer as i32][..])
    );
    let sample = acc::CreateCalibrationSampleRequest {
        start_time: Some(timestamp(day_of(5, 1))),
        end_time: Some(timestamp(qualify_platform::Clock::system().now())),
        size: 10,
        seed: 7,
        ..Default::default()
    };
    let drawn = a.create_calibration_sample(authed(sample, &acme.manager)).await.unwrap().into_inner();
    assert!(drawn.decisions.is_empty(), "{:?}", drawn.decisions);

    // Accepted and abandoned, read as of a past time: aged past the window untouched.
    let abandoned = |days: i32, as_of: DateTime<Utc>| {
        let (mut a, t) = (a.clone(), acme.ae.clone());
        async move {
            let req =
                acc::ListAbandonedOpportunitiesRequest { follow_up_days: days, as_of_time: Some(timestamp(as_of)) };
            let found = a.list_abandoned_opportunities(authed(req, &t)).await.unwrap().into_inner().opportunities;
            found.into_iter().map(|o| o.opportunity_id).collect::<Vec<_>>()
        }
    };
    // (o9 to o11, accepted two months earlier and never reached, are abandoned all along.)
    let early = ["o10", "o11", "o9"];
    assert_eq!(
        abandoned(30, day(60)).await,
        [&early[..], &["o4", "o5"]].concat(),
        "as of day 60: the day-40 call came too late"
    );
    assert_eq!(abandoned(5, day(8)).await, [&early[..], &["o3", "o4", "o5"]].concat(), "as of day 8, a 5-day window");
    assert_eq!(abandoned(30, day(20)).await, early, "none of day 0's deals is late before its window ends");

    let month_of = |t: DateTime<Utc>| t.format("%Y-%m").to_string();
    let t = token("acme", "mia", &[Role::Manager]);
    let read = |period: String| {
        let (mut m, t) = (m.clone(), t.clone());
        async move {
            let req = pb::GetFunnelRequest { start_period: period.clone(), end_period: period, ..Default::default() };
            m.get_funnel(authed(req, &t)).await.unwrap().into_inner().rows.first().and_then(|r| r.figures.clone())
        }
    };
    let got = eventually(Duration::from_secs(20), || {
        let read = &read;
        let period = month_of(day0);
        async move { read(period).await.filter(|f| f.sqos_accepted == 5 && f.followthrough_days_median.is_some()) }
    })
    .await;
    let f = got.unwrap_or_else(|| panic!("metrics never counted the five deals"));
    assert_eq!(f.followthrough_days_median, Some(6.5));
    assert_eq!(f.meaningful_within_30_days, Some(0.6));
    assert_eq!(f.sqos_accepted - (f.meaningful_within_30_days.unwrap() * 5.0).round() as i64, 2, "abandoned");
    assert_eq!(f.accepted_without_activity, 1, "o5, still untouched");
    assert_eq!(f.open_pipeline_minor, 50_000 * 100);
    assert_eq!(f.forecast_minor, 25_000 * 100, "a 50 % close rate learned from the imported closes");
    // Stage inflation is judged as of a time: not before the month's follow-up window has passed.
    let health = |as_of: DateTime<Utc>| {
        let (mut m, t, period) = (m.clone(), t.clone(), month_of(inflated));
        async move {
            let req = pb::GetFunnelHealthRequest {
                start_period: period.clone(),
                end_period: period,
                as_of_time: Some(timestamp(as_of)),
            };
            let found = m.get_funnel_health(authed(req, &t)).await.unwrap().into_inner().findings;
            found.iter().any(|f| f.code == pb::FindingCode::StageInflation as i32)
        }
    };
    assert!(!health(later(20)).await, "twenty days on, the deals may still be called in time");
    assert!(health(qualify_platform::Clock::system().now()).await, "25 % reached within 30 days, 100 % accepted");
    let earlier = read(month_of(before)).await.unwrap();
    assert_eq!((earlier.won, earlier.lost, earlier.win_rate), (1, 1, Some(0.5)));
}
