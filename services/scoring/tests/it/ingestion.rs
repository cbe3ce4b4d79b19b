//! Signals at scale through the generated client, on SQLite and PostgreSQL:
//! concurrent batches over the same leads end as a sequential run does, and
//! bulk re-scoring is resumable with progress.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use prost_types::Timestamp;
use qualify_proto::common::{LeadSource, LeadStage};
use qualify_proto::scoring::{
    self as pb, Attribute, SignalType, fit_rule, lead_scoring_service_client::LeadScoringServiceClient,
    score_lead_request::Target,
};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

type Client = LeadScoringServiceClient<Channel>;

on_both_backends!(
    concurrent_batches_over_the_same_leads_end_as_a_sequential_run,
    bulk_rescoring_resumes_where_a_broken_run_stopped,
    a_stream_interrupted_and_resumed_counts_every_signal_once,
);

const LEADS: usize = 100;

/// Fintech +20; pricing visits 10 (half-life 7 d, cap 25); demo requests 40 (no decay); MQL at `mql`.
pub(crate) fn scorecard(mql: i32) -> pb::Scorecard {
    pb::Scorecard {
        fit_rules: vec![pb::FitRule {
            id: "fintech".into(),
            attribute: Attribute::Industry as i32,
            points: 20,
            predicate: Some(fit_rule::Predicate::OneOf(pb::StringList { values: vec!["fintech".into()] })),
        }],
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
        ],
        mql_threshold: mql,
        pql_threshold: 0,
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

/// A tenant with a published scorecard, one fintech account and `leads` leads `lead-000`….
pub(crate) struct Tenant {
    pub(crate) c: Client,
    pub(crate) bot: String,
    revops: String,
}

impl Tenant {
    pub(crate) async fn new(c: &Client, tenant: &str, leads: usize, mql: i32) -> Self {
        let mut t = Tenant {
            c: c.clone(),
            bot: token(tenant, "pipeline", &[Role::Service]),
            revops: token(tenant, "rita", &[Role::Revops]),
        };
        t.publish(scorecard(mql)).await;
        let account = pb::Account {
            account_id: "acc-1".into(),
            display_name: "Acme".into(),
            industry: "fintech".into(),
            ..Default::default()
        };
        let req = pb::CreateAccountRequest { account: Some(account), ..Default::default() };
        t.c.create_account(authed(req, &t.bot)).await.unwrap();
        for i in 0..leads {
            let lead = pb::Lead {
                lead_id: lead_id(i),
                account_id: "acc-1".into(),
                source: LeadSource::Inbound as i32,
                ..Default::default()
            };
            t.c.create_lead(authed(pb::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &t.bot))
                .await
                .unwrap();
        }
        t
    }

    pub(crate) async fn publish(&mut self, card: pb::Scorecard) {
        let req = pb::PublishScorecardRequest { scorecard: Some(card), ..Default::default() };
        self.c.publish_scorecard(authed(req, &self.revops)).await.unwrap();
    }

    /// Each lead's stored score and stage, its score read again from its stored signals, and its moves.
    async fn leads(&mut self) -> Vec<(String, pb::Score, i32, pb::Score, Vec<(i32, i32)>)> {
        let mut out = Vec::new();
        for i in 0..LEADS {
            let id = lead_id(i);
            let lead = self.c.get_lead(authed(pb::GetLeadRequest { lead_id: id.clone() }, &self.bot)).await.unwrap();
            let lead = lead.into_inner().lead.unwrap();
            let req = pb::ScoreLeadRequest {
                target: Some(Target::LeadId(id.clone())),
                scorecard_version: 0,
                as_of_time: None,
            };
            let again = self.c.score_lead(authed(req, &self.bot)).await.unwrap().into_inner().score.unwrap();
            let req = pb::ListLeadStageChangesRequest { lead_id: id.clone(), ..Default::default() };
            let moves = self.c.list_lead_stage_changes(authed(req, &self.bot)).await.unwrap().into_inner();
            let moves = moves.stage_changes.iter().map(|m| (m.from_stage, m.to_stage)).collect();
            out.push((id, lead.score.unwrap(), lead.stage, again, moves));
        }
        out
    }
}

pub(crate) fn lead_id(i: usize) -> String {
    format!("lead-{i:04}")
}

/// `days` before `now`, less an hour: never after the service's clock.
fn days_before(now: chrono::DateTime<chrono::Utc>, days: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds: now.timestamp() - 3600 - days * 86_400, nanos: 0 })
}

/// Batch `b` of 8: one signal per lead, 100 leads. Pricing visits of different ages, and a
/// demo request for every fifth lead in batch 3 and every seventh in batch 6, so that some
/// leads cross the MQL threshold (in whichever batch lands first).
fn batch(now: chrono::DateTime<chrono::Utc>, b: usize) -> Vec<pb::Signal> {
    (0..LEADS)
        .map(|i| {
            let demo = (b == 3 && i % 5 == 0) || (b == 6 && i % 7 == 0);
            pb::Signal {
                signal_id: format!("b{b}-l{i}"),
                lead_id: lead_id(i),
                contact_id: String::new(),
                r#type: if demo { SignalType::DemoRequest } else { SignalType::PricingPageVisit } as i32,
                occur_time: days_before(now, ((b * 3 + i) % 20) as i64),
            }
        })
        .collect()
}

/// Eight batches over the same 100 leads, sent at once, leave every lead's stored
/// score, stage, signals (its score read again) and moves as eight batches sent one
/// after the other do: nothing lost, nothing counted twice, no deadlock. On
/// PostgreSQL the batches alternate between two replicas sharing the database
/// (one replica's concurrent batches share rounds; two replicas' rounds wait on
/// each other's row locks).
async fn concurrent_batches_over_the_same_leads_end_as_a_sequential_run(b: Backend) {
    let mut cfg = config("scoring", b).await;
    // Both runs score at the same instant, so that decay is the same.
    let now = qualify_platform::Clock::system().now();
    cfg.clock = qualify_platform::Clock::manual(now);
    let svc = spawn::<Scoring>(cfg.clone()).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let other = match b {
        Backend::Postgres => {
            let mut second = cfg.clone();
            second.run_migrations = false;
            let replica = spawn::<Scoring>(second).await;
            let client = LeadScoringServiceClient::new(replica.channel().await);
            Some((replica, client))
        }
        Backend::Sqlite => None,
    };
    let mut one_by_one = Tenant::new(&c, "sequential", LEADS, 60).await;
    let mut at_once = Tenant::new(&c, "concurrent", LEADS, 60).await;

    for b in 0..8 {
        let r =
            one_by_one.c.ingest_signals(authed(pb::IngestSignalsRequest { signals: batch(now, b) }, &one_by_one.bot));
        assert_eq!(r.await.unwrap().into_inner().accepted_count, LEADS as i32);
    }
    let calls = (0..8).map(|b| {
        let mut c = match &other {
            Some((_, other)) if b % 2 == 1 => other.clone(),
            _ => at_once.c.clone(),
        };
        let bot = at_once.bot.clone();
        tokio::spawn(async move {
            c.ingest_signals(authed(pb::IngestSignalsRequest { signals: batch(now, b) }, &bot))
                .await
                .unwrap()
                .into_inner()
        })
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().accepted_count, LEADS as i32);
    }

    let (expected, got) = (one_by_one.leads().await, at_once.leads().await);
    let mut moved = 0;
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e.0, g.0);
        // Every signal is in the lead's log: eight, of which demo requests are the lead's own.
        let counted: i32 = g.3.contributions.iter().map(|c| c.signal_count).sum();
        assert_eq!(counted, 8, "{}: {:?}", g.0, g.3.contributions);
        // Stored score (without its time of scoring, the same instant anyway) and stage.
        assert_eq!((&e.1.contributions, e.1.total, e.2), (&g.1.contributions, g.1.total, g.2), "{}", g.0);
        // The stored score is the score of the stored signals.
        assert_eq!((g.1.total, &g.1.contributions), (g.3.total, &g.3.contributions), "{}", g.0);
        assert_eq!(e.4, g.4, "{}: moves", g.0);
        if g.2 == LeadStage::Mql as i32 {
            moved += 1;
            assert_eq!(g.4, [(LeadStage::New as i32, LeadStage::Mql as i32)]);
        }
    }
    // 20 leads with a demo in batch 3, 15 in batch 6, 3 in both (0, 35, 70): 32 crossed.
    assert_eq!(moved, 32);
}

/// `ScoreLeads` with apply over 1,200 leads: the stream reports progress;
/// a client that breaks off after 600 leads resumes after the last lead it received, and
/// every lead ends scored by the new version with its threshold move made exactly once.
async fn bulk_rescoring_resumes_where_a_broken_run_stopped(b: Backend) {
    let svc = spawn::<Scoring>(config("scoring", b).await).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let mut t = Tenant::new(&c, "bulk", 1200, 1000).await;
    // Version 2 makes every fintech lead an MQL on fit alone.
    t.publish(scorecard(20)).await;
    let run =
        |after: &str| pb::ScoreLeadsRequest { lead_ids: vec![], apply: true, resume_after_lead_id: after.to_string() };

    let mut stream = t.c.score_leads(authed(run(""), &t.revops)).await.unwrap().into_inner();
    let mut last = String::new();
    for n in 1..=600 {
        let item = stream.next().await.unwrap().unwrap();
        assert_eq!((item.done_count, item.total_count), (n, 1200));
        assert_eq!(item.score.unwrap().scorecard_version, 2);
        last = item.lead_id;
    }
    assert_eq!(last, lead_id(599)); // in id order
    drop(stream); // the client goes away mid-run

    let mut resumed = t.c.score_leads(authed(run(&last), &t.revops)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(item) = resumed.next().await {
        let item = item.unwrap();
        assert_eq!(item.total_count, 600);
        seen.push(item.lead_id);
    }
    assert_eq!(seen, (600..1200).map(lead_id).collect::<Vec<_>>());

    for i in [0, 599, 600, 1199] {
        let id = lead_id(i);
        let lead = t.c.get_lead(authed(pb::GetLeadRequest { lead_id: id.clone() }, &t.bot)).await.unwrap();
        let lead = lead.into_inner().lead.unwrap();
        assert_eq!((lead.stage, lead.score.unwrap().scorecard_version), (LeadStage::Mql as i32, 2), "{id}");
        let req = pb::ListLeadStageChangesRequest { lead_id: id.clone(), ..Default::default() };
        let moves = t.c.list_lead_stage_changes(authed(req, &t.bot)).await.unwrap().into_inner().stage_changes;
        assert_eq!(moves.len(), 1, "{id}: {moves:?}");
    }
    // Only a caller allowed to store scores may apply them.
    let sdr = token("bulk", "sam", &[Role::Sdr]);
    let e = t.c.score_leads(authed(run(""), &sdr)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

/// Batch `n` (1-based) of a pipeline: ten pricing visits on lead-0000, ids `p{n}-{i}`.
fn pipeline_batch(now: chrono::DateTime<chrono::Utc>, n: i64) -> pb::StreamSignalsRequest {
    let signals = (0..10)
        .map(|i| pb::Signal {
            signal_id: format!("p{n}-{i}"),
            lead_id: lead_id(0),
            contact_id: String::new(),
            r#type: SignalType::PricingPageVisit as i32,
            occur_time: days_before(now, 1),
        })
        .collect();
    pb::StreamSignalsRequest { stream_id: "clickstream".into(), position: n, signals }
}

/// Opens the pipeline's stream; the opening acknowledgement and the channels to send and read on.
async fn open(
    t: &mut Tenant,
) -> (i64, tokio::sync::mpsc::Sender<pb::StreamSignalsRequest>, tonic::Streaming<pb::StreamSignalsResponse>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let hello = pb::StreamSignalsRequest { stream_id: "clickstream".into(), ..Default::default() };
    tx.send(hello).await.unwrap();
    let req = authed(tokio_stream::wrappers::ReceiverStream::new(rx), &t.bot);
    let mut acks = t.c.stream_signals(req).await.unwrap().into_inner();
    let opening = acks.next().await.unwrap().unwrap();
    assert!(opening.batch.is_none());
    // The empty opening message is acknowledged too, with the same position.
    assert_eq!(acks.next().await.unwrap().unwrap().acknowledged_position, opening.acknowledged_position);
    (opening.acknowledged_position, tx, acks)
}

/// A pipeline pushes batches on a stream, breaks off with a batch unacknowledged,
/// reconnects, is told where to resume, and resends from there (and, being careful,
/// the batch before): every signal is counted once and the position is kept.
async fn a_stream_interrupted_and_resumed_counts_every_signal_once(b: Backend) {
    let svc = spawn::<Scoring>(config("scoring", b).await).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let mut t = Tenant::new(&c, "pipeline", 1, 1000).await;
    let now = qualify_platform::Clock::system().now();

    let (start, tx, mut acks) = open(&mut t).await;
    assert_eq!(start, 0);
    for n in 1..=3 {
        tx.send(pipeline_batch(now, n)).await.unwrap();
        let ack = acks.next().await.unwrap().unwrap();
        assert_eq!(ack.acknowledged_position, n);
        assert_eq!(ack.batch.unwrap().accepted_count, 10);
    }
    // Batch 4 goes out and the connection drops before its acknowledgement is read.
    tx.send(pipeline_batch(now, 4)).await.unwrap();
    drop((tx, acks));

    let (resume, tx, mut acks) = open(&mut t).await;
    assert!(resume == 3 || resume == 4, "resume after {resume}");
    for n in resume..=6 {
        tx.send(pipeline_batch(now, n)).await.unwrap();
        let ack = acks.next().await.unwrap().unwrap();
        assert_eq!(ack.acknowledged_position, n.max(resume));
        // The batch at the acknowledged position is not ingested again.
        assert_eq!(ack.batch.map(|b| b.accepted_count), (n > resume).then_some(10), "batch {n}");
    }
    // A batch under a new position but with signals already ingested counts them as duplicates.
    tx.send(pipeline_batch(now, 5)).await.unwrap();
    let replay = acks.next().await.unwrap().unwrap();
    assert_eq!((replay.acknowledged_position, replay.batch.is_none()), (6, true));
    let mut again = pipeline_batch(now, 7);
    again.signals = pipeline_batch(now, 6).signals;
    tx.send(again).await.unwrap();
    let ack = acks.next().await.unwrap().unwrap().batch.unwrap();
    assert_eq!((ack.accepted_count, ack.duplicate_count), (0, 10));
    // A batch without a position is refused, naming the field, and ends the stream.
    tx.send(pb::StreamSignalsRequest { position: 0, ..pipeline_batch(now, 8) }).await.unwrap();
    let e = acks.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("position"), "{}", e.message());
    drop((tx, acks));

    // Sixty signals, each once: the lead's score reads them all (pricing: 10 points each, capped
    // at 25, but the count is every signal in the window).
    let req = pb::ScoreLeadRequest { target: Some(Target::LeadId(lead_id(0))), scorecard_version: 0, as_of_time: None };
    let score = t.c.score_lead(authed(req, &t.bot)).await.unwrap().into_inner().score.unwrap();
    let pricing = score.contributions.iter().find(|c| c.rule_id == "pricing").unwrap();
    assert_eq!(pricing.signal_count, 60);
    let (position, _, _) = open(&mut t).await;
    assert_eq!(position, 7);
}

/// One tenant's batch that fails in the database does not fail another tenant's
/// batches that shared its rounds: the writer ingests a failed round's batches
/// one by one. Tenant "broken" has a published scorecard whose stored document
/// is unreadable (written behind the service's back), so its batches fail with
/// INTERNAL; tenant "fine"'s concurrent batches are all accepted.
#[tokio::test]
async fn a_failing_batch_does_not_fail_the_batches_sharing_its_round() {
    let cfg = config("scoring", Backend::Postgres).await;
    let db = qualify_platform::db::connect_url(&cfg.database_url, cfg.database_schema.as_deref(), 1).await.unwrap();
    let svc = spawn::<Scoring>(cfg).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let fine = Tenant::new(&c, "fine", LEADS, 60).await;
    let broken = Tenant::new(&c, "broken", LEADS, 60).await;
    // The body was never read, so no cache holds it: the next scoring reads it from the database.
    let corrupt = "UPDATE scorecards SET doc = 'not a scorecard' WHERE tenant_id = 'broken'";
    sea_orm::ConnectionTrait::execute_unprepared(&db, corrupt).await.unwrap();
    let now = qualify_platform::Clock::system().now();
    let calls = (0..8).map(|b| {
        let t = if b % 2 == 0 { &fine } else { &broken };
        let (mut c, bot) = (t.c.clone(), t.bot.clone());
        tokio::spawn(async move {
            c.ingest_signals(authed(pb::IngestSignalsRequest { signals: batch(now, b) }, &bot)).await
        })
    });
    for (b, r) in futures::future::join_all(calls).await.into_iter().enumerate() {
        match r.unwrap() {
            Ok(ok) if b % 2 == 0 => assert_eq!(ok.into_inner().accepted_count, LEADS as i32, "batch {b}"),
            Err(e) if b % 2 == 1 => assert_eq!(e.code(), tonic::Code::Internal, "batch {b}: {e:?}"),
            other => panic!("batch {b}: {other:?}"),
        }
    }
}
