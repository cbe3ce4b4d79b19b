#![allow(clippy::unwrap_used)]
//! Several metrics replicas (as the Helm chart runs them) apply the same
//! events at the same moment: each event still counts once.

use qualify_metrics::ingest::{Event, Upstream, apply_batch};
use qualify_metrics::rollup::figure;
use qualify_metrics::store::entity::rollup;
use qualify_metrics::store::migration::Migrator;
use qualify_proto::acceptance as acc;
use qualify_proto::scoring as sc;
use qualify_testkit::{Backend, config};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

fn lead_created(round: usize, i: usize) -> Event {
    let seq = (round * 50 + i + 1) as i64;
    Event::from(sc::Event {
        event_id: format!("evt-{seq}"),
        sequence: seq,
        tenant: "acme".into(),
        occur_time: Some(AT),
        payload: Some(sc::event::Payload::LeadCreated(sc::LeadCreated {
            lead: Some(sc::Lead {
                lead_id: format!("lead-{seq}"),
                source: qualify_proto::common::LeadSource::Inbound as i32,
                ..Default::default()
            }),
            segment: 0,
        })),
    })
}

const AT: prost_types::Timestamp = prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 };

/// A submission then its rejection: a decision's count is not an idempotent fact.
fn submitted_then_rejected(round: usize) -> [Event; 2] {
    let id = format!("opp-{round}");
    let event = |seq: i64, payload| {
        Event::from(acc::Event {
            event_id: format!("acc-{seq}"),
            sequence: seq,
            tenant: "acme".into(),
            occur_time: Some(AT),
            payload: Some(payload),
        })
    };
    let o = acc::Opportunity {
        opportunity_id: id.clone(),
        lead_id: "lead-1".into(),
        state: acc::OpportunityState::PendingReview as i32,
        update_time: Some(AT),
        ..Default::default()
    };
    let seq = (round * 2) as i64;
    [
        event(
            seq + 1,
            acc::event::Payload::OpportunityChanged(acc::OpportunityChanged { opportunity: Some(o), from_state: 0 }),
        ),
        event(
            seq + 2,
            acc::event::Payload::DecisionRecorded(acc::Decision {
                decision_id: format!("d-{round}"),
                opportunity_id: id,
                kind: acc::DecisionKind::Reject as i32,
                reason: acc::RejectionReason::NoBudget as i32,
                decide_time: Some(AT),
                ..Default::default()
            }),
        ),
    ]
}

#[tokio::test]
async fn concurrent_replicas_apply_each_event_once() {
    let cfg = config("metrics", Backend::Postgres).await;
    let db = qualify_platform::db::connect(&cfg).await.unwrap();
    qualify_platform::db::migrate::<Migrator>(&db, "metrics").await.unwrap();
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        let events: Vec<Event> = (0..50).map(|i| lead_created(round, i)).collect();
        let (a, b) =
            tokio::join!(apply_batch(&db, Upstream::Scoring, &events), apply_batch(&db, Upstream::Scoring, &events));
        a.unwrap();
        b.unwrap();
        let events = submitted_then_rejected(round);
        let (a, b) = tokio::join!(
            apply_batch(&db, Upstream::Acceptance, &events),
            apply_batch(&db, Upstream::Acceptance, &events)
        );
        a.unwrap();
        b.unwrap();
    }
    let rows = rollup::Entity::find()
        .filter(rollup::Column::Figure.eq(figure::LEADS))
        .filter(rollup::Column::Grain.eq("base"))
        .all(&db)
        .await
        .unwrap();
    let leads: i64 = rows.iter().map(|r| r.value).sum();
    assert_eq!(leads, (ROUNDS * 50) as i64, "{rows:?}");
    let reasons = rollup::Entity::find()
        .filter(rollup::Column::Figure.eq(format!("{}NO_BUDGET", figure::REJECT_REASON)))
        .filter(rollup::Column::Grain.eq("base"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(reasons.iter().map(|r| r.value).sum::<i64>(), ROUNDS as i64, "{reasons:?}");
}
