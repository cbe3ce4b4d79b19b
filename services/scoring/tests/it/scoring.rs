//! Scorecards, signals, scores, stage moves and events through the generated
//! client, on SQLite and on the machine's PostgreSQL; the Redis cache with two
//! service instances sharing PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;
use qualify_proto::common::{BuyingRole, LeadSource, LeadStage, Segment};
use qualify_proto::scoring::{
    self as pb, Attribute, SignalOutcome, SignalType, fit_rule, lead_scoring_service_client::LeadScoringServiceClient,
    score_lead_request::Target,
};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token, unique_tenant, with_redis};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Client = LeadScoringServiceClient<Channel>;

fn ago(days: f64) -> Option<Timestamp> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    Some(Timestamp { seconds: (now - days * 86_400.0) as i64, nanos: 0 })
}

/// Fit: fintech +20, 100–1000 employees +15, VP title +10. Engagement: pricing
/// visits 10 (half-life 7 d, cap 25, 30-day window), demo request 40, product
/// activation 30 (cap 60). MQL at 60, PQL at 50 product points.
fn scorecard(mql: i32) -> pb::Scorecard {
    pb::Scorecard {
        fit_rules: vec![
            pb::FitRule {
                id: "fintech".into(),
                attribute: Attribute::Industry as i32,
                points: 20,
                predicate: Some(fit_rule::Predicate::OneOf(pb::StringList { values: vec!["fintech".into()] })),
            },
            pb::FitRule {
                id: "mid-size".into(),
                attribute: Attribute::EmployeeCount as i32,
                points: 15,
                predicate: Some(fit_rule::Predicate::Between(pb::Range { min: 100, max: 1000 })),
            },
            pb::FitRule {
                id: "vp".into(),
                attribute: Attribute::Title as i32,
                points: 10,
                predicate: Some(fit_rule::Predicate::Contains("vp".into())),
            },
        ],
        engagement_rules: vec![
            pb::EngagementRule {
                id: "pricing".into(),
                signal_type: SignalType::PricingPageVisit as i32,
                points: 10,
                half_life_days: 7.0,
                cap: 25,
                window_days: 30,
            },
            pb::EngagementRule {
                id: "demo".into(),
                signal_type: SignalType::DemoRequest as i32,
                points: 40,
                ..Default::default()
            },
            pb::EngagementRule {
                id: "activation".into(),
                signal_type: SignalType::ProductActivation as i32,
                points: 30,
                half_life_days: 14.0,
                cap: 60,
                window_days: 90,
            },
        ],
        mql_threshold: mql,
        pql_threshold: 50,
        grade_bands: Some(pb::GradeBands {
            fit_a: 40,
            fit_b: 25,
            fit_c: 10,
            engagement_1: 60,
            engagement_2: 30,
            engagement_3: 10,
        }),
        ..Default::default()
    }
}

struct World {
    _svc: qualify_testkit::Running,
    c: Client,
    revops: String,
    sdr: String,
    bot: String,
}

async fn world(b: Backend) -> World {
    let svc = spawn::<Scoring>(config("scoring", b).await).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    World {
        _svc: svc,
        c,
        revops: token("acme", "rita", &[Role::Revops]),
        sdr: token("acme", "sam", &[Role::Sdr]),
        bot: token("acme", "sync", &[Role::Service]),
    }
}

impl World {
    async fn publish(&mut self, card: pb::Scorecard) -> pb::Scorecard {
        let req = pb::PublishScorecardRequest { scorecard: Some(card), ..Default::default() };
        self.c.publish_scorecard(authed(req, &self.revops)).await.unwrap().into_inner().scorecard.unwrap()
    }

    /// Account acc-1 (fintech, 250 people), contact c-1 (VP), lead lead-1.
    async fn seed(&mut self) {
        let account = pb::Account {
            account_id: "acc-1".into(),
            display_name: "Acme".into(),
            industry: "Fintech".into(),
            employee_count: 250,
            segment: Segment::MidMarket as i32,
            ..Default::default()
        };
        self.c
            .create_account(authed(
                pb::CreateAccountRequest { account: Some(account), ..Default::default() },
                &self.bot,
            ))
            .await
            .unwrap();
        let contact = pb::Contact {
            contact_id: "c-1".into(),
            account_id: "acc-1".into(),
            full_name: "Vera Park".into(),
            title: "VP Finance".into(),
            buying_role: BuyingRole::EconomicBuyer as i32,
            email: "vera@acme.test".into(),
            email_status: pb::VerificationStatus::Verified as i32,
            email_verify_time: ago(2.0),
            ..Default::default()
        };
        self.c
            .create_contact(authed(
                pb::CreateContactRequest { contact: Some(contact), ..Default::default() },
                &self.bot,
            ))
            .await
            .unwrap();
        let lead = pb::Lead {
            lead_id: "lead-1".into(),
            account_id: "acc-1".into(),
            contact_id: "c-1".into(),
            source: LeadSource::Inbound as i32,
            ..Default::default()
        };
        self.c
            .create_lead(authed(pb::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &self.bot))
            .await
            .unwrap();
    }

    async fn ingest(&mut self, signals: Vec<pb::Signal>) -> pb::IngestSignalsResponse {
        self.c.ingest_signals(authed(pb::IngestSignalsRequest { signals }, &self.bot)).await.unwrap().into_inner()
    }

    async fn lead(&mut self) -> pb::Lead {
        self.c
            .get_lead(authed(pb::GetLeadRequest { lead_id: "lead-1".into() }, &self.sdr))
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap()
    }
}

fn signal(id: &str, t: SignalType, days_ago: f64) -> pb::Signal {
    pb::Signal {
        signal_id: id.into(),
        lead_id: "lead-1".into(),
        contact_id: "c-1".into(),
        r#type: t as i32,
        occur_time: ago(days_ago),
    }
}

on_both_backends!(
    scorecards_are_validated_versioned_and_immutable,
    signals_score_explain_and_cross_the_mql_threshold,
    bulk_ingestion_reports_each_item_and_counts_replays_once,
    inline_scoring_and_reproducing_a_past_score,
    people_move_leads_and_every_move_is_history,
    the_event_stream_resumes_from_a_cursor,
    account_rollup_shows_multi_threading_and_influence,
    concurrent_batches_for_one_lead_lose_no_signal,
);

/// Batches for the same lead from several callers at once: the lead's packed
/// signal log (what a stored score reads) ends up holding every signal.
async fn concurrent_batches_for_one_lead_lose_no_signal(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    w.publish(scorecard(100_000)).await;
    let calls = (0..8).map(|batch| {
        let (mut c, bot) = (w.c.clone(), w.bot.clone());
        tokio::spawn(async move {
            let signals =
                (0..5).map(|i| signal(&format!("b{batch}-{i}"), SignalType::DemoRequest, f64::from(i))).collect();
            c.ingest_signals(authed(pb::IngestSignalsRequest { signals }, &bot)).await.unwrap().into_inner()
        })
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().accepted_count, 5);
    }
    let s =
        w.c.score_lead(authed(
            pb::ScoreLeadRequest {
                target: Some(Target::LeadId("lead-1".into())),
                scorecard_version: 0,
                as_of_time: None,
            },
            &w.sdr,
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    let demo = s.contributions.iter().find(|c| c.rule_id == "demo").unwrap();
    assert_eq!((demo.signal_count, demo.points), (40, 40 * 40));
    // The score stored by the last batch agrees with the one read by id.
    assert_eq!(w.lead().await.score.unwrap().engagement, s.engagement);
}

async fn scorecards_are_validated_versioned_and_immutable(b: Backend) {
    let mut w = world(b).await;
    let v1 = w.publish(scorecard(60)).await;
    assert_eq!((v1.version, v1.published_by.as_str()), (1, "rita"));
    let v2 = w.publish(scorecard(70)).await;
    assert_eq!(v2.version, 2);
    // Old versions stay readable; the newest is active.
    let old =
        w.c.get_scorecard(authed(pb::GetScorecardRequest { segment: 0, version: 1 }, &w.sdr))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(old.scorecard.unwrap().mql_threshold, 60);
    let active = w.c.get_scorecard(authed(pb::GetScorecardRequest::default(), &w.sdr)).await.unwrap().into_inner();
    assert_eq!(active.scorecard.unwrap().version, 2);
    let list = w.c.list_scorecards(authed(pb::ListScorecardsRequest::default(), &w.sdr)).await.unwrap().into_inner();
    assert_eq!(list.scorecards.iter().map(|s| s.version).collect::<Vec<_>>(), [2, 1]);
    // A stale expected version is ABORTED.
    let stale =
        pb::PublishScorecardRequest { scorecard: Some(scorecard(80)), expected_version: 1, request_id: String::new() };
    assert_eq!(w.c.publish_scorecard(authed(stale, &w.revops)).await.unwrap_err().code(), Code::Aborted);
    // Only RevOps and managers publish.
    let req = pb::PublishScorecardRequest { scorecard: Some(scorecard(80)), ..Default::default() };
    assert_eq!(w.c.publish_scorecard(authed(req.clone(), &w.sdr)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(w.c.publish_scorecard(authed(req, &w.bot)).await.unwrap_err().code(), Code::PermissionDenied);
    // Invalid scorecards name every bad field and publish nothing.
    let mut bad = scorecard(0);
    bad.fit_rules[1].predicate = Some(fit_rule::Predicate::Between(pb::Range { min: 10, max: 1 }));
    bad.fit_rules[2].attribute = 42;
    bad.engagement_rules[0].half_life_days = f64::NAN;
    bad.engagement_rules[1].signal_type = 0;
    bad.grade_bands = None;
    let e =
        w.c.publish_scorecard(authed(
            pb::PublishScorecardRequest { scorecard: Some(bad), ..Default::default() },
            &w.revops,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(
        fields,
        ["scorecard.fit_rules[2].attribute", "scorecard.engagement_rules[1].signal_type", "scorecard.grade_bands"]
    );
    let mut bad = scorecard(0);
    bad.fit_rules[1].predicate = Some(fit_rule::Predicate::Between(pb::Range { min: 10, max: 1 }));
    bad.engagement_rules[0].half_life_days = -1.0;
    let e =
        w.c.publish_scorecard(authed(
            pb::PublishScorecardRequest { scorecard: Some(bad), ..Default::default() },
            &w.revops,
        ))
        .await
        .unwrap_err();
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(
        fields,
        ["scorecard.fit_rules[1].between", "scorecard.engagement_rules[0].half_life_days", "scorecard.mql_threshold"]
    );
    let list = w.c.list_scorecards(authed(pb::ListScorecardsRequest::default(), &w.sdr)).await.unwrap().into_inner();
    assert_eq!(list.scorecards.len(), 2, "refused publishes change nothing");
}

async fn signals_score_explain_and_cross_the_mql_threshold(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    // No scorecard yet: scoring says so; signals are still stored.
    let e =
        w.c.score_lead(authed(
            pb::ScoreLeadRequest {
                target: Some(Target::LeadId("lead-1".into())),
                scorecard_version: 0,
                as_of_time: None,
            },
            &w.sdr,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "NO_SCORECARD");
    w.publish(scorecard(60)).await;

    // Fit 45 (fintech 20 + mid-size 15 + VP 10) and one pricing visit a week ago (5): 50, below MQL.
    let r = w.ingest(vec![signal("s-1", SignalType::PricingPageVisit, 7.0)]).await;
    assert_eq!((r.accepted_count, r.stage_changes.len()), (1, 0));
    let lead = w.lead().await;
    let score = lead.score.unwrap();
    assert_eq!((score.fit, score.engagement, score.total, score.grade.as_str()), (45, 5, 50, "A4"));
    assert_eq!(lead.stage, LeadStage::New as i32);

    // A demo request (40) lifts it to 90: MQL, recorded with its actor and the version.
    let r = w.ingest(vec![signal("s-2", SignalType::DemoRequest, 0.0)]).await;
    assert_eq!(r.stage_changes.len(), 1);
    let change = &r.stage_changes[0];
    assert_eq!(
        (change.from_stage, change.to_stage, change.score, change.scorecard_version),
        (LeadStage::New as i32, LeadStage::Mql as i32, 90, 1)
    );
    assert_eq!(change.actor.as_ref().unwrap().subject, "scoring");
    assert_eq!(w.lead().await.stage, LeadStage::Mql as i32);

    // The explanation adds up.
    let s =
        w.c.score_lead(authed(
            pb::ScoreLeadRequest {
                target: Some(Target::LeadId("lead-1".into())),
                scorecard_version: 0,
                as_of_time: None,
            },
            &w.sdr,
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    // Read by id (on PostgreSQL in one statement), it matches the score stored on ingestion.
    assert_eq!((s.fit, s.engagement, s.total, s.scorecard_version), (45, 45, 90, 1));
    assert_eq!(s.contributions.iter().map(|c| c.points).sum::<i32>(), s.total);
    let ids: Vec<_> = s.contributions.iter().map(|c| c.rule_id.as_str()).collect();
    assert_eq!(ids, ["fintech", "mid-size", "vp", "pricing", "demo"]);
    assert_eq!(s.recommended_stage, LeadStage::Mql as i32);
}

async fn bulk_ingestion_reports_each_item_and_counts_replays_once(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    w.publish(scorecard(1000)).await;
    let batch = vec![
        signal("a", SignalType::PricingPageVisit, 1.0),
        pb::Signal { r#type: 99, ..signal("b", SignalType::PricingPageVisit, 1.0) },
        pb::Signal { lead_id: "ghost".into(), ..signal("c", SignalType::PricingPageVisit, 1.0) },
        pb::Signal { occur_time: None, ..signal("d", SignalType::PricingPageVisit, 1.0) },
        signal("a", SignalType::PricingPageVisit, 1.0),
        signal("e", SignalType::PricingPageVisit, 2.0),
    ];
    let r = w.ingest(batch.clone()).await;
    let outcomes: Vec<_> = r.results.iter().map(|x| x.outcome).collect();
    use SignalOutcome::*;
    assert_eq!(outcomes, [Accepted, Rejected, Rejected, Rejected, Duplicate, Accepted].map(|o| o as i32));
    assert_eq!(r.results[1].violations[0].field, "type");
    assert_eq!(r.results[2].violations[0].field, "lead_id");
    assert_eq!(r.results[3].violations[0].field, "occur_time");
    let before = w.lead().await.score.unwrap();
    // Replaying the whole batch counts nothing twice.
    let again = w.ingest(batch).await;
    assert_eq!((again.accepted_count, again.duplicate_count, again.rejected_count), (0, 3, 3));
    assert_eq!(w.lead().await.score.unwrap().engagement, before.engagement);
    // An oversized or empty batch is refused whole.
    let huge: Vec<_> = (0..1001).map(|i| signal(&format!("x{i}"), SignalType::WebsiteVisit, 1.0)).collect();
    let e = w.c.ingest_signals(authed(pb::IngestSignalsRequest { signals: huge }, &w.bot)).await.unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "signals");
    let e = w.c.ingest_signals(authed(pb::IngestSignalsRequest { signals: vec![] }, &w.bot)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn inline_scoring_and_reproducing_a_past_score(b: Backend) {
    let mut w = world(b).await;
    w.publish(scorecard(60)).await;
    let inline = pb::InlineLead {
        segment: 0,
        account: Some(pb::Account { industry: "fintech".into(), employee_count: 50, ..Default::default() }),
        contact: Some(pb::Contact { title: "Head of Ops".into(), ..Default::default() }),
        signals: vec![
            pb::Signal { r#type: SignalType::ProductActivation as i32, occur_time: ago(0.0), ..Default::default() },
            pb::Signal { r#type: SignalType::ProductActivation as i32, occur_time: ago(0.0), ..Default::default() },
            pb::Signal { r#type: SignalType::ProductActivation as i32, occur_time: ago(0.0), ..Default::default() },
        ],
    };
    let bot = w.bot.clone();
    let req = |v: i64| {
        authed(
            pb::ScoreLeadRequest {
                target: Some(Target::Inline(inline.clone())),
                scorecard_version: v,
                as_of_time: None,
            },
            &bot,
        )
    };
    let s = w.c.score_lead(req(0)).await.unwrap().into_inner().score.unwrap();
    // Fit: fintech 20. Product: 3 × 30 capped at 60 → PQL.
    assert_eq!((s.fit, s.product, s.total, s.recommended_stage), (20, 60, 80, LeadStage::Pql as i32));
    w.publish(pb::Scorecard { pql_threshold: 0, ..scorecard(100) }).await;
    let now = w.c.score_lead(req(0)).await.unwrap().into_inner().score.unwrap();
    assert_eq!((now.scorecard_version, now.recommended_stage), (2, LeadStage::New as i32));
    let then = w.c.score_lead(req(1)).await.unwrap().into_inner().score.unwrap();
    assert_eq!((then.scorecard_version, then.total, then.recommended_stage), (1, 80, LeadStage::Pql as i32));
    let bad = pb::InlineLead {
        signals: vec![pb::Signal { r#type: 0, occur_time: None, ..Default::default() }],
        ..inline.clone()
    };
    let e =
        w.c.score_lead(authed(
            pb::ScoreLeadRequest { target: Some(Target::Inline(bad)), scorecard_version: 0, as_of_time: None },
            &w.bot,
        ))
        .await
        .unwrap_err();
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["inline.signals[0].type", "inline.signals[0].occur_time"]);
    let e =
        w.c.score_lead(authed(
            pb::ScoreLeadRequest { target: Some(Target::Inline(inline)), scorecard_version: 9, as_of_time: None },
            &w.bot,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

async fn people_move_leads_and_every_move_is_history(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    let lead = |id: &str| id.to_string();
    // Automation cannot accept or qualify; an AE cannot accept a lead for the SDR.
    let e =
        w.c.accept_lead(authed(pb::AcceptLeadRequest { lead_id: lead("lead-1"), request_id: String::new() }, &w.bot))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let ae = token("acme", "alex", &[Role::Ae]);
    let e =
        w.c.accept_lead(authed(pb::AcceptLeadRequest { lead_id: lead("lead-1"), request_id: String::new() }, &ae))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Qualifying needs the discovery evidence, and SAL first.
    let q = pb::QualifyLeadRequest {
        lead_id: lead("lead-1"),
        discovery_call_held: true,
        pain_statement: "month-end close takes 9 days".into(),
        request_id: String::new(),
    };
    let e = w.c.qualify_lead(authed(q.clone(), &w.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "ILLEGAL_STAGE_MOVE");
    let e =
        w.c.qualify_lead(authed(
            pb::QualifyLeadRequest { pain_statement: String::new(), discovery_call_held: false, ..q.clone() },
            &w.sdr,
        ))
        .await
        .unwrap_err();
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["discovery_call_held", "pain_statement"]);

    let accepted =
        w.c.accept_lead(authed(pb::AcceptLeadRequest { lead_id: lead("lead-1"), request_id: "acc-1".into() }, &w.sdr))
            .await
            .unwrap()
            .into_inner();
    let moved = accepted.lead.clone().unwrap();
    assert_eq!(moved.stage, LeadStage::Sal as i32);
    assert_eq!(moved.update_time, accepted.stage_change.as_ref().unwrap().change_time, "the lead as it now is");
    let read = w.c.get_lead(authed(pb::GetLeadRequest { lead_id: lead("lead-1") }, &w.sdr)).await.unwrap();
    assert_eq!(read.into_inner().lead.unwrap(), moved, "the response is the stored lead");
    // A retry returns the first answer; it does not move twice.
    let again =
        w.c.accept_lead(authed(pb::AcceptLeadRequest { lead_id: lead("lead-1"), request_id: "acc-1".into() }, &w.sdr))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(again.stage_change, accepted.stage_change);
    let qualified = w.c.qualify_lead(authed(q, &w.sdr)).await.unwrap().into_inner();
    assert_eq!(qualified.lead.unwrap().stage, LeadStage::Sql as i32);
    let recycle = pb::RecycleLeadRequest {
        lead_id: lead("lead-1"),
        reason: "budget frozen until Q3".into(),
        request_id: String::new(),
    };
    w.c.recycle_lead(authed(recycle, &w.sdr)).await.unwrap();
    let history =
        w.c.list_lead_stage_changes(authed(
            pb::ListLeadStageChangesRequest { lead_id: lead("lead-1"), ..Default::default() },
            &w.sdr,
        ))
        .await
        .unwrap()
        .into_inner();
    let moves: Vec<_> =
        history.stage_changes.iter().map(|c| (c.from_stage, c.to_stage, c.actor.clone().unwrap().subject)).collect();
    use LeadStage::*;
    assert_eq!(
        moves,
        vec![
            (New as i32, Sal as i32, "sam".into()),
            (Sal as i32, Sql as i32, "sam".into()),
            (Sql as i32, Nurture as i32, "sam".into())
        ]
    );
    assert!(history.stage_changes[1].reason.contains("month-end close"));
    let e =
        w.c.disqualify_lead(authed(
            pb::DisqualifyLeadRequest { lead_id: lead("lead-1"), reason: " ".into(), request_id: String::new() },
            &w.sdr,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn the_event_stream_resumes_from_a_cursor(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    w.c.accept_lead(authed(pb::AcceptLeadRequest { lead_id: "lead-1".into(), request_id: String::new() }, &w.sdr))
        .await
        .unwrap();
    // Only service accounts read the stream.
    let e = w.c.stream_events(authed(pb::StreamEventsRequest::default(), &w.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let read = |after: i64| {
        let mut c = w.c.clone();
        let t = w.bot.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let mut s = c
                    .stream_events(authed(pb::StreamEventsRequest { after_sequence: after, follow: false }, &t))
                    .await
                    .unwrap()
                    .into_inner();
                let mut got = Vec::new();
                while let Some(e) = s.next().await {
                    got.push(e.unwrap().event.unwrap());
                }
                if got.len() >= 2 || after > 0 || tokio::time::Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let all = read(0).await;
    assert_eq!(all.len(), 2, "lead created, then accepted");
    assert!(matches!(all[0].payload, Some(pb::event::Payload::LeadCreated(_))));
    assert!(matches!(all[1].payload, Some(pb::event::Payload::LeadStageChanged(_))));
    assert!(all[0].sequence < all[1].sequence);
    let rest = read(all[0].sequence).await;
    assert_eq!(rest.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), [all[1].event_id.clone()]);
    // Another tenant's service account sees none of it.
    let other = token("globex", "sync", &[Role::Service]);
    let mut s = w.c.stream_events(authed(pb::StreamEventsRequest::default(), &other)).await.unwrap().into_inner();
    assert!(s.next().await.is_none());
    // Following delivers what is committed later.
    let mut follow =
        w.c.stream_events(authed(pb::StreamEventsRequest { after_sequence: all[1].sequence, follow: true }, &w.bot))
            .await
            .unwrap()
            .into_inner();
    let q = pb::QualifyLeadRequest {
        lead_id: "lead-1".into(),
        discovery_call_held: true,
        pain_statement: "slow close".into(),
        request_id: String::new(),
    };
    w.c.qualify_lead(authed(q, &w.sdr)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), follow.next()).await.unwrap().unwrap().unwrap();
    let Some(pb::event::Payload::LeadStageChanged(c)) = next.event.unwrap().payload else {
        panic!("expected a stage change")
    };
    assert_eq!(c.to_stage, LeadStage::Sql as i32);
}

async fn account_rollup_shows_multi_threading_and_influence(b: Backend) {
    let mut w = world(b).await;
    w.seed().await;
    let c2 = pb::Contact {
        contact_id: "c-2".into(),
        account_id: "acc-1".into(),
        title: "Analyst".into(),
        ..Default::default()
    };
    w.c.create_contact(authed(pb::CreateContactRequest { contact: Some(c2), ..Default::default() }, &w.bot))
        .await
        .unwrap();
    w.ingest(vec![
        signal("r1", SignalType::ContentDownload, 10.0),
        pb::Signal { contact_id: "c-2".into(), ..signal("r2", SignalType::WebinarAttended, 5.0) },
        signal("r3", SignalType::PricingPageVisit, 3.0),
        signal("r4", SignalType::DemoRequest, 200.0),
    ])
    .await;
    let r = w
        .c
        .get_account_rollup(authed(pb::GetAccountRollupRequest { account_id: "acc-1".into(), window_days: 0 }, &w.sdr))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.engaged_contact_count, r.signal_count, r.lead_count), (2, 3, 1));
    assert!(r.purchase_influence_identified);
    assert_eq!(r.latest_timing_signal.unwrap().signal_id, "r3");
    let e = w
        .c
        .get_account_rollup(authed(pb::GetAccountRollupRequest { account_id: "nope".into(), window_days: 0 }, &w.sdr))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// Two instances share PostgreSQL and Redis: after a publish returns on one,
/// the other never scores with the superseded version.
#[tokio::test]
async fn after_a_publish_no_replica_scores_with_the_old_version() {
    let tenant = unique_tenant("acme");
    let base = with_redis(config("scoring", Backend::Postgres).await).await;
    let a = spawn::<Scoring>(base.clone()).await;
    let mut b_config = base.clone();
    b_config.run_migrations = false;
    let b = spawn::<Scoring>(b_config).await;
    let mut ca = LeadScoringServiceClient::new(a.channel().await);
    let mut cb = LeadScoringServiceClient::new(b.channel().await);
    let revops = token(&tenant, "rita", &[Role::Revops]);
    let bot = token(&tenant, "sync", &[Role::Service]);
    let inline = pb::InlineLead {
        account: Some(pb::Account { industry: "fintech".into(), ..Default::default() }),
        ..Default::default()
    };
    for version in 1..=5 {
        let req = pb::PublishScorecardRequest { scorecard: Some(scorecard(60 + version as i32)), ..Default::default() };
        let published = ca.publish_scorecard(authed(req, &revops)).await.unwrap().into_inner().scorecard.unwrap();
        assert_eq!(published.version, version);
        // Immediately, and repeatedly, the other replica uses the new version.
        for _ in 0..20 {
            let s = cb
                .score_lead(authed(
                    pb::ScoreLeadRequest {
                        target: Some(Target::Inline(inline.clone())),
                        scorecard_version: 0,
                        as_of_time: None,
                    },
                    &bot,
                ))
                .await
                .unwrap()
                .into_inner()
                .score
                .unwrap();
            assert_eq!(s.scorecard_version, version, "replica B served a superseded scorecard");
        }
    }
}

/// A Redis of this test's own on a free port, so stopping it disturbs no other test.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis package) starts");
        let r = PrivateRedis { port, child: Some(child) };
        for _ in 0..100 {
            if r.cli(&["ping"]).as_deref() == Some("PONG") {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis on {port} never answered");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out =
            std::process::Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis stops and comes back (empty, as a restarted cache does) under two replicas: scoring
/// answers from the database meanwhile, a publish made while Redis is away is what both
/// replicas score with at once, and once Redis is back the cache is filled and used again.
#[tokio::test]
async fn redis_down_and_back_never_serves_a_superseded_scorecard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = PrivateRedis::start(port);
    let tenant = unique_tenant("acme");
    let pointer = format!("qualify:scorecard:active:{tenant}:default");
    let mut base = config("scoring", Backend::Postgres).await;
    base.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let a = spawn::<Scoring>(base.clone()).await;
    let mut b_config = base.clone();
    b_config.run_migrations = false;
    let b = spawn::<Scoring>(b_config).await;
    let ca = LeadScoringServiceClient::new(a.channel().await);
    let cb = LeadScoringServiceClient::new(b.channel().await);
    let revops = token(&tenant, "rita", &[Role::Revops]);
    let bot = token(&tenant, "sync", &[Role::Service]);
    let inline = pb::InlineLead {
        account: Some(pb::Account { industry: "fintech".into(), ..Default::default() }),
        ..Default::default()
    };
    let score = |mut c: Client| {
        let req = pb::ScoreLeadRequest {
            target: Some(Target::Inline(inline.clone())),
            scorecard_version: 0,
            as_of_time: None,
        };
        let t = bot.clone();
        async move { c.score_lead(authed(req, &t)).await.unwrap().into_inner().score.unwrap().scorecard_version }
    };
    let publish = |mut c: Client, mql: i32| {
        let t = revops.clone();
        async move {
            let req = pb::PublishScorecardRequest { scorecard: Some(scorecard(mql)), ..Default::default() };
            c.publish_scorecard(authed(req, &t)).await.unwrap().into_inner().scorecard.unwrap().version
        }
    };
    // Both replicas connect to Redis in the background; publish once it holds the pointer.
    let (rd, key) = (&redis, &pointer);
    let connected = qualify_testkit::eventually(Duration::from_secs(10), || {
        let published = publish(ca.clone(), 60);
        async move {
            published.await;
            rd.cli(&["get", key])
        }
    })
    .await;
    let v1: i64 = connected.expect("the pointer never reached redis").parse().unwrap();
    assert_eq!((score(ca.clone()).await, score(cb.clone()).await), (v1, v1));

    // Redis stops: both replicas answer from the database.
    redis.stop();
    assert_eq!((score(ca.clone()).await, score(cb.clone()).await), (v1, v1));
    // A publish while it is away takes effect on both at once.
    let v2 = publish(ca.clone(), 70).await;
    assert_eq!(v2, v1 + 1);
    for _ in 0..5 {
        assert_eq!(score(cb.clone()).await, v2, "replica B served a superseded scorecard while redis was away");
    }

    // Redis is back, empty: never the old version, and the cache is filled and used again.
    let redis = PrivateRedis::start(port);
    let (rd, key) = (&redis, &pointer);
    let refilled = qualify_testkit::eventually(Duration::from_secs(15), || {
        let (from_b, from_a) = (score(cb.clone()), score(ca.clone()));
        async move {
            assert_eq!(from_b.await, v2, "replica B served a superseded scorecard after redis returned");
            assert_eq!(from_a.await, v2);
            rd.cli(&["get", key])
        }
    })
    .await;
    assert_eq!(refilled.as_deref(), Some(v2.to_string().as_str()), "the cache holds the new pointer again");
}

/// Many RevOps users publish at the same moment on two replicas: each publish either gets the
/// next version or is refused with ABORTED, and the history is linear (1, 2, ... with no gap
/// and no version twice).
#[tokio::test]
async fn concurrent_publishes_leave_a_linear_version_history() {
    let tenant = unique_tenant("acme");
    let base = config("scoring", Backend::Postgres).await;
    let a = spawn::<Scoring>(base.clone()).await;
    let mut b_config = base.clone();
    b_config.run_migrations = false;
    let b = spawn::<Scoring>(b_config).await;
    let clients = [LeadScoringServiceClient::new(a.channel().await), LeadScoringServiceClient::new(b.channel().await)];
    let revops = token(&tenant, "rita", &[Role::Revops]);
    // A answers once it has migrated the schema B shares (B does not migrate).
    clients[0].clone().list_scorecards(authed(pb::ListScorecardsRequest::default(), &revops)).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (mut c, t) = (clients[i % 2].clone(), revops.clone());
            tokio::spawn(async move {
                let req =
                    pb::PublishScorecardRequest { scorecard: Some(scorecard(60 + i as i32)), ..Default::default() };
                c.publish_scorecard(authed(req, &t)).await.map(|r| r.into_inner().scorecard.unwrap().version)
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => won.push(v),
            Err(s) => assert_eq!(s.code(), Code::Aborted, "a losing publish is ABORTED: {s:?}"),
        }
    }
    won.sort_unstable();
    assert!(!won.is_empty());
    assert_eq!(won, (1..=won.len() as i64).collect::<Vec<_>>(), "each winner got the next version");
    let mut c = clients[0].clone();
    let listed = c
        .list_scorecards(authed(pb::ListScorecardsRequest { page_size: 100, ..Default::default() }, &revops))
        .await
        .unwrap()
        .into_inner()
        .scorecards;
    let history: Vec<i64> = listed.iter().map(|s| s.version).collect();
    assert_eq!(history, (1..=won.len() as i64).rev().collect::<Vec<_>>(), "the stored history is linear");
}

/// With Redis unreachable, scoring answers from the database.
#[tokio::test]
async fn scoring_answers_from_the_database_when_redis_is_unreachable() {
    let mut cfg = config("scoring", Backend::Postgres).await;
    cfg.redis_url = Some("redis://127.0.0.1:1".into());
    let svc = spawn::<Scoring>(cfg).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let revops = token("acme", "rita", &[Role::Revops]);
    let req = pb::PublishScorecardRequest { scorecard: Some(scorecard(60)), ..Default::default() };
    c.publish_scorecard(authed(req, &revops)).await.unwrap();
    let inline = pb::InlineLead {
        account: Some(pb::Account { industry: "fintech".into(), ..Default::default() }),
        ..Default::default()
    };
    let s = c
        .score_lead(authed(
            pb::ScoreLeadRequest { target: Some(Target::Inline(inline)), scorecard_version: 0, as_of_time: None },
            &revops,
        ))
        .await
        .unwrap();
    assert_eq!(s.into_inner().score.unwrap().total, 20);
}
