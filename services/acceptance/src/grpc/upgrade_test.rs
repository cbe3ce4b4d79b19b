//! Upgrading a database: opportunities, decisions and activities written by
//! the release before M003 (each an encoded protobuf message in `body`) read
//! back through the service exactly as that release answered, after M003
//! turned them into domain documents; and a migrated opportunity still takes
//! a decision. On SQLite and on the machine's PostgreSQL.
//!
//! The old rows are written here with the wire types, as the old code wrote
//! them: that is why this test lives in `grpc/`, the one place that may name them.

use chrono::{DateTime, Utc};
use prost::Message;
use qualify_domain::{Caller, Role};
use qualify_platform::Clock;
use qualify_platform::auth::credentials::Credentials;
use qualify_platform::outbox::Relay;
use qualify_proto::acceptance as pb;
use qualify_proto::common::{self as cpb, BuyingRole, Criterion, EvidenceStatus, Framework, LeadSource, Segment};
use qualify_proto::convert::timestamp;
use sea_orm::sea_query::{Alias, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::{MigrationName, MigratorTrait};

use super::opportunities::encode_activity;
use super::{AcceptanceApi, ScoringClient};
use crate::store::migration::{M003DomainDocuments, Migrator};

const TENANT: &str = "acme";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn ts(s: &str) -> Option<prost_types::Timestamp> {
    Some(timestamp(at(s)))
}

fn evidence(criterion: Criterion, status: EvidenceStatus, note: &str) -> pb::CriterionEvidence {
    pb::CriterionEvidence {
        criterion: criterion as i32,
        status: status as i32,
        note: note.into(),
        confirmed_by: if note.is_empty() { String::new() } else { "cfo@acme".into() },
    }
}

fn usd(minor: i64) -> Option<cpb::Money> {
    Some(cpb::Money { amount_minor: minor, currency_code: "USD".into() })
}

/// Opportunities as the old release stored them, one per shape a row could take.
fn old_opportunities() -> Vec<pb::Opportunity> {
    let pending = pb::Opportunity {
        opportunity_id: "opp-pending".into(),
        lead_id: "l-1".into(),
        state: pb::OpportunityState::PendingReview as i32,
        amount: usd(2_400_000),
        expected_close_time: ts("2027-01-31T00:00:00Z"),
        segment: Segment::Smb as i32,
        framework: Framework::Bant as i32,
        evidence: vec![
            evidence(Criterion::Budget, EvidenceStatus::Confirmed, "allocated in Q1"),
            evidence(Criterion::Need, EvidenceStatus::Partial, ""),
        ],
        stakeholders: vec![
            pb::Stakeholder {
                contact_id: "c-1".into(),
                role: BuyingRole::Champion as i32,
                verify_time: ts("2026-10-30T08:15:00.123456789Z"),
            },
            pb::Stakeholder { contact_id: String::new(), role: BuyingRole::EconomicBuyer as i32, verify_time: None },
        ],
        competitors: vec!["Globex".into(), "Initech".into()],
        next_step: Some(pb::NextStep {
            description: "demo with the CFO".into(),
            scheduled_time: ts("2026-11-20T15:00:00Z"),
            r#type: pb::ActivityType::Demo as i32,
        }),
        team: "emea-smb".into(),
        submitted_by: "sam".into(),
        lead_snapshot: Some(pb::LeadSnapshot {
            score: 72,
            stage: cpb::LeadStage::Sql as i32,
            scorecard_version: 3,
            source: LeadSource::Inbound as i32,
            campaign: "q4-webinar".into(),
            snapshot_time: ts("2026-11-01T09:00:00.000001Z"),
        }),
        version: 1,
        create_time: ts("2026-11-01T09:00:00.000001Z"),
        update_time: ts("2026-11-01T09:00:00.000001Z"),
        ..Default::default()
    };
    let won = pb::Opportunity {
        opportunity_id: "opp-won".into(),
        state: pb::OpportunityState::ClosedWon as i32,
        segment: Segment::MidMarket as i32,
        framework: Framework::Meddic as i32,
        stakeholders: vec![],
        competitors: vec![],
        // A next step given empty: present, but without time or kind.
        next_step: Some(pb::NextStep::default()),
        lead_snapshot: Some(pb::LeadSnapshot {
            source: LeadSource::Unspecified as i32,
            scorecard_version: 0,
            score: 0,
            ..pending.lead_snapshot.clone().unwrap()
        }),
        overridden: true,
        version: 5,
        update_time: ts("2026-12-15T17:30:00.5Z"),
        accept_time: ts("2026-11-02T10:00:00.25Z"),
        first_meaningful_activity_time: ts("2026-11-04T11:00:00Z"),
        closed_amount: usd(2_000_000),
        close_reason: "signed after the pilot".into(),
        close_time: ts("2026-12-15T17:30:00.5Z"),
        accepted_by: "alex".into(),
        ..pending.clone()
    };
    let sent_back = pb::Opportunity {
        opportunity_id: "opp-sent-back".into(),
        state: pb::OpportunityState::SentBack as i32,
        segment: Segment::Enterprise as i32,
        framework: Framework::Meddpicc as i32,
        next_step: None,
        version: 2,
        missing_items: vec!["no next step scheduled".into(), "map the economic buyer".into()],
        ..pending.clone()
    };
    let lost = pb::Opportunity {
        opportunity_id: "opp-lost".into(),
        state: pb::OpportunityState::ClosedLost as i32,
        version: 4,
        accept_time: ts("2026-11-03T10:00:00Z"),
        close_reason: "went with Globex".into(),
        close_time: ts("2026-12-01T10:00:00Z"),
        accepted_by: "alex".into(),
        ..pending.clone()
    };
    vec![pending, won, sent_back, lost]
}

fn check(code: pb::GateCheckCode, passed: bool, criterion: Criterion, detail: &str) -> pb::GateCheck {
    pb::GateCheck { code: code as i32, passed, criterion: criterion as i32, detail: detail.into() }
}

/// Decisions as the old release stored them, by opportunity.
fn old_decisions() -> Vec<pb::Decision> {
    let accept = pb::Decision {
        decision_id: "0001-d-accept".into(),
        opportunity_id: "opp-won".into(),
        kind: pb::DecisionKind::Accept as i32,
        actor: Some(cpb::Actor {
            subject: "alex".into(),
            roles: vec![cpb::Role::Ae as i32, cpb::Role::Manager as i32],
        }),
        decide_time: ts("2026-11-02T10:00:00.25Z"),
        gate_passed: false,
        checks: vec![
            check(pb::GateCheckCode::CriterionNotConfirmed, true, Criterion::Budget, "Budget is Confirmed"),
            check(pb::GateCheckCode::NextStepMissing, false, Criterion::Unspecified, "no next step scheduled"),
        ],
        overridden: true,
        override_justification: "the CFO confirmed the pilot budget by phone".into(),
        scorecard_version: 3,
        policy_version: 2,
        evidence: vec![evidence(Criterion::Budget, EvidenceStatus::Confirmed, "allocated in Q1")],
        team: "emea-smb".into(),
        source: LeadSource::Inbound as i32,
        ..Default::default()
    };
    let send_back = pb::Decision {
        decision_id: "0002-d-send-back".into(),
        opportunity_id: "opp-sent-back".into(),
        kind: pb::DecisionKind::SendBack as i32,
        actor: Some(cpb::Actor { subject: "alex".into(), roles: vec![cpb::Role::Ae as i32] }),
        overridden: false,
        override_justification: String::new(),
        note: "map the economic buyer".into(),
        policy_version: 0,
        source: LeadSource::Unspecified as i32,
        ..accept.clone()
    };
    let reject = pb::Decision {
        decision_id: "0003-d-reject".into(),
        opportunity_id: "opp-sent-back".into(),
        kind: pb::DecisionKind::Reject as i32,
        reason: pb::RejectionReason::Other as i32,
        note: "a reseller deal, not ours".into(),
        checks: vec![],
        evidence: vec![],
        ..send_back.clone()
    };
    vec![accept, send_back, reject]
}

fn old_activities() -> Vec<pb::Activity> {
    vec![
        pb::Activity {
            activity_id: "0001-a-call".into(),
            r#type: pb::ActivityType::Call as i32,
            meaningful: true,
            occur_time: ts("2026-11-04T11:00:00Z"),
            note: "pricing walk-through".into(),
            recorded_by: "alex".into(),
        },
        pb::Activity {
            activity_id: "0002-a-email".into(),
            r#type: pb::ActivityType::Email as i32,
            meaningful: false,
            occur_time: ts("2026-11-05T08:00:00.999999999Z"),
            note: String::new(),
            recorded_by: "crm-sync".into(),
        },
    ]
}

fn time(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(qualify_proto::convert::from_timestamp)
}

/// One row written with the columns the old release wrote.
async fn insert(db: &DatabaseConnection, table: &str, row: Vec<(&str, SimpleExpr)>) {
    let (columns, values): (Vec<_>, Vec<_>) = row.into_iter().map(|(c, v)| (Alias::new(c), v)).unzip();
    let q = Query::insert().into_table(Alias::new(table)).columns(columns).values_panic(values).to_owned();
    db.execute(&q).await.unwrap_or_else(|e| panic!("{table}: {e}"));
}

async fn write_old_rows(db: &DatabaseConnection) {
    let state = |o: &pb::Opportunity| -> &'static str {
        use qualify_proto::convert::WireEnum;
        qualify_domain::OpportunityState::from_wire(o.state).unwrap().as_str()
    };
    for o in old_opportunities() {
        let created = time(&o.create_time).unwrap();
        insert(
            db,
            "opportunities",
            vec![
                ("tenant_id", TENANT.into()),
                ("opportunity_id", o.opportunity_id.clone().into()),
                ("lead_id", o.lead_id.clone().into()),
                ("state", state(&o).into()),
                ("team", o.team.clone().into()),
                ("submitted_by", o.submitted_by.clone().into()),
                ("version", o.version.into()),
                ("accepted_at", time(&o.accept_time).into()),
                ("first_meaningful_at", time(&o.first_meaningful_activity_time).into()),
                ("created_at", created.into()),
                ("body", o.encode_to_vec().into()),
            ],
        )
        .await;
    }
    for d in old_decisions() {
        let kind = match pb::DecisionKind::try_from(d.kind).unwrap() {
            pb::DecisionKind::Accept => "AcceptOpportunity",
            pb::DecisionKind::Reject => "RejectOpportunity",
            _ => "SendBackOpportunity",
        };
        insert(
            db,
            "decisions",
            vec![
                ("tenant_id", TENANT.into()),
                ("decision_id", d.decision_id.clone().into()),
                ("opportunity_id", d.opportunity_id.clone().into()),
                ("kind", kind.into()),
                ("team", d.team.clone().into()),
                ("decided_by", d.actor.clone().unwrap().subject.into()),
                ("decided_at", time(&d.decide_time).unwrap().into()),
                ("body", d.encode_to_vec().into()),
            ],
        )
        .await;
    }
    for a in old_activities() {
        insert(
            db,
            "activities",
            vec![
                ("tenant_id", TENANT.into()),
                ("activity_id", a.activity_id.clone().into()),
                ("opportunity_id", "opp-won".into()),
                ("meaningful", a.meaningful.into()),
                ("occurred_at", time(&a.occur_time).unwrap().into()),
                ("body", a.encode_to_vec().into()),
            ],
        )
        .await;
    }
}

fn caller(subject: &str, roles: &[Role]) -> Caller {
    Caller { tenant: TENANT.into(), subject: subject.into(), roles: roles.to_vec() }
}

async fn rows_read_back_unchanged_after_the_upgrade(db: DatabaseConnection) {
    let before = Migrator::migrations().iter().take_while(|m| m.name() != M003DomainDocuments.name()).count();
    assert!(before < Migrator::migrations().len(), "the document migration is registered");
    Migrator::up(&db, Some(before as u32)).await.unwrap();
    write_old_rows(&db).await;
    Migrator::up(&db, None).await.unwrap();

    let clock = Clock::manual(at("2026-11-10T12:00:00Z"));
    let api = AcceptanceApi::new(
        db.clone(),
        Relay::default(),
        ScoringClient::new(None, Credentials::new(None, "unused-in-this-test"), &Default::default()).unwrap(),
        clock,
    );
    let ae = caller("alex", &[Role::Ae]);
    // Rows written before contributors were recorded name their submitter as the one contributor.
    let old: Vec<_> = old_opportunities()
        .into_iter()
        .map(|o| pb::Opportunity { contributors: vec![o.submitted_by.clone()], ..o })
        .collect();
    for o in &old {
        let req = pb::GetOpportunityRequest { opportunity_id: o.opportunity_id.clone() };
        let got = api.get_opportunity(ae.clone(), req).await.unwrap().opportunity.unwrap();
        assert_eq!(&got, o, "{}", o.opportunity_id);
    }
    let listed = api.list_opportunities(ae.clone(), pb::ListOpportunitiesRequest::default()).await.unwrap();
    let mut by_id = old.clone();
    by_id.sort_by(|a, b| a.opportunity_id.cmp(&b.opportunity_id));
    assert_eq!(listed.opportunities, by_id);
    for o in &old {
        let req = pb::ListDecisionsRequest { opportunity_id: o.opportunity_id.clone() };
        let got = api.list_decisions(ae.clone(), req).await.unwrap().decisions;
        let want: Vec<_> = old_decisions().into_iter().filter(|d| d.opportunity_id == o.opportunity_id).collect();
        assert_eq!(got, want, "decisions of {}", o.opportunity_id);
    }
    let activities = crate::store::opportunities::activities_of(&db, TENANT, "opp-won").await.unwrap();
    assert_eq!(activities.iter().map(encode_activity).collect::<Vec<_>>(), old_activities());

    // A migrated row still takes a decision (one that needs no word from lead
    // scoring, which this test does not run): stored, versioned, and read back.
    let reject = pb::RejectOpportunityRequest {
        opportunity_id: "opp-pending".into(),
        expected_version: 1,
        reason: pb::RejectionReason::NoBudget as i32,
        note: String::new(),
        request_id: "r-1".into(),
    };
    let rejected = api.reject_opportunity(ae.clone(), reject).await.unwrap().opportunity.unwrap();
    let req = pb::GetOpportunityRequest { opportunity_id: "opp-pending".into() };
    let got = api.get_opportunity(ae, req).await.unwrap().opportunity.unwrap();
    assert_eq!(got, rejected);
    let want = pb::Opportunity {
        state: pb::OpportunityState::Rejected as i32,
        version: 2,
        update_time: ts("2026-11-10T12:00:00Z"),
        ..old[0].clone()
    };
    assert_eq!(got, want);
}

#[tokio::test]
async fn rows_read_back_unchanged_after_the_upgrade_on_sqlite() {
    let db = qualify_platform::db::connect_url("sqlite::memory:", None, 1).await.unwrap();
    rows_read_back_unchanged_after_the_upgrade(db).await;
}

#[tokio::test]
async fn rows_read_back_unchanged_after_the_upgrade_on_postgres() {
    let url =
        std::env::var("QUALIFY_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // `t_<name>_<pid>_<random>`: the test schema sweep of other test processes keeps it while this one runs.
    let schema = format!("t_accm003_{}_{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let db = qualify_platform::db::connect_url(&url, Some(&schema), 2)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required by this test: {e:#}"));
    rows_read_back_unchanged_after_the_upgrade(db.clone()).await;
    db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
}
