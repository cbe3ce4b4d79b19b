//! History and time through the generated client, on SQLite and PostgreSQL.
//! Leads imported from a CRM keep their creation times and stage changes,
//! marked imported; each lead is judged alone; re-running an import changes
//! nothing; only an importer imports; the event stream carries each change at
//! the time it happened. A past score is reproduced exactly as of its time.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use chrono::{DateTime, Duration, Utc};
use qualify_proto::common::{ImportOutcome, LeadSource, LeadStage, Role as WireRole};
use qualify_proto::convert::timestamp;
use qualify_proto::scoring::{self as pb, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, Tokens, authed, config, on_both_backends, spawn, token};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(a_crm_history_is_imported_once_in_its_own_times, a_past_score_is_reproduced_as_of_its_time);

fn change(to: LeadStage, at: DateTime<Utc>, actor: &str) -> pb::ImportedStageChange {
    pb::ImportedStageChange {
        to_stage: to as i32,
        change_time: Some(timestamp(at)),
        actor: actor.into(),
        reason: "crm history".into(),
    }
}

fn imported(
    id: &str,
    account: &str,
    created: DateTime<Utc>,
    changes: Vec<pb::ImportedStageChange>,
) -> pb::ImportedLead {
    pb::ImportedLead {
        lead: Some(pb::Lead {
            lead_id: id.into(),
            account_id: account.into(),
            source: LeadSource::Outbound as i32,
            campaign: "2026-q3".into(),
            ..Default::default()
        }),
        create_time: Some(timestamp(created)),
        stage_changes: changes,
    }
}

async fn a_crm_history_is_imported_once_in_its_own_times(b: Backend) {
    let svc = spawn::<Scoring>(config("scoring", b).await).await;
    let mut c = LeadScoringServiceClient::new(svc.channel().await);
    let people = Tokens::new("acme");
    let account = pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    c.create_account(authed(pb::CreateAccountRequest { account: Some(account), ..Default::default() }, &people.sync))
        .await
        .unwrap();

    let now = qualify_platform::Clock::system().now();
    let day = |d: i64| now - Duration::days(d);
    let batch = vec![
        // Created 90 days ago, MQL 85 days ago, SQL 60 days ago.
        imported(
            "crm-1",
            "acc-1",
            day(90),
            vec![change(LeadStage::Mql, day(85), ""), change(LeadStage::Sql, day(60), "dana")],
        ),
        imported("crm-2", "acc-1", day(40), vec![]),
        // A change before the creation, and one in the future.
        imported("crm-3", "acc-1", day(30), vec![change(LeadStage::Mql, day(31), "")]),
        imported("crm-4", "acc-1", day(30), vec![change(LeadStage::Mql, now + Duration::days(2), "")]),
        imported("crm-5", "acc-404", day(30), vec![]),
        // The same CRM id twice in one batch: the first is the one imported.
        imported("crm-2", "acc-1", day(10), vec![]),
        pb::ImportedLead { create_time: None, ..imported("crm-6", "acc-1", day(1), vec![]) },
    ];
    let r = c.import_leads(authed(pb::ImportLeadsRequest { leads: batch.clone() }, &people.importer)).await.unwrap();
    let r = r.into_inner();
    use ImportOutcome::*;
    let outcomes: Vec<i32> = r.results.iter().map(|x| x.outcome).collect();
    assert_eq!(outcomes, [Imported, Imported, Rejected, Rejected, Rejected, Unchanged, Rejected].map(|o| o as i32));
    let field = |i: usize| r.results[i].violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>();
    assert_eq!(field(2), ["stage_changes[0].change_time"]);
    assert_eq!(field(3), ["stage_changes[0].change_time"]);
    assert_eq!(field(4), ["lead.account_id"]);
    assert_eq!(field(6), ["create_time"]);
    assert_eq!((r.imported_count, r.unchanged_count, r.rejected_count), (2, 1, 4));

    // The lead stands where its history ended, in the CRM's times, marked imported.
    let reader = c.clone();
    let get = |id: &str| {
        let (mut c, t, id) = (reader.clone(), people.sdr.clone(), id.to_string());
        async move { c.get_lead(authed(pb::GetLeadRequest { lead_id: id }, &t)).await.map(|r| r.into_inner().lead.unwrap()) }
    };
    let l = get("crm-1").await.unwrap();
    assert_eq!((l.stage, l.imported), (LeadStage::Sql as i32, true));
    assert_eq!((l.create_time, l.update_time), (Some(timestamp(day(90))), Some(timestamp(day(60)))));
    let history = |id: &str| {
        let (mut c, t, id) = (reader.clone(), people.sdr.clone(), id.to_string());
        async move {
            let req = pb::ListLeadStageChangesRequest { lead_id: id, ..Default::default() };
            c.list_lead_stage_changes(authed(req, &t)).await.unwrap().into_inner().stage_changes
        }
    };
    let moves = history("crm-1").await;
    let seen: Vec<_> = moves
        .iter()
        .map(|m| (m.from_stage, m.to_stage, m.change_time, m.actor.as_ref().unwrap().subject.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (LeadStage::New as i32, LeadStage::Mql as i32, Some(timestamp(day(85))), "import"),
            (LeadStage::Mql as i32, LeadStage::Sql as i32, Some(timestamp(day(60))), "dana"),
        ]
    );
    assert!(moves.iter().all(|m| m.actor.as_ref().unwrap().roles == [WireRole::Importer as i32]));
    assert_eq!(get("crm-2").await.unwrap().create_time, Some(timestamp(day(40))), "the first of the batch");
    for missing in ["crm-3", "crm-4", "crm-5", "crm-6"] {
        assert_eq!(get(missing).await.unwrap_err().code(), Code::NotFound, "{missing}");
    }

    // Re-running the import changes nothing.
    let again =
        c.import_leads(authed(pb::ImportLeadsRequest { leads: batch.clone() }, &people.importer)).await.unwrap();
    let again = again.into_inner();
    assert_eq!((again.imported_count, again.unchanged_count, again.rejected_count), (0, 3, 4));
    assert_eq!(history("crm-1").await, moves);

    // Nobody else back-dates: not sales, not automation, not an importer that also sells.
    let fresh = vec![imported("crm-9", "acc-1", day(5), vec![])];
    let others = [
        people.sdr.clone(),
        people.manager.clone(),
        people.revops.clone(),
        people.sync.clone(),
        token("acme", "sam", &[Role::Sdr, Role::Importer]),
    ];
    for t in others {
        let e = c.import_leads(authed(pb::ImportLeadsRequest { leads: fresh.clone() }, &t)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    }
    assert_eq!(get("crm-9").await.unwrap_err().code(), Code::NotFound);
    // A live lead keeps the server's time and is not imported.
    let live = pb::Lead { lead_id: "live-1".into(), ..batch[1].lead.clone().unwrap() };
    let l = c.create_lead(authed(pb::CreateLeadRequest { lead: Some(live), ..Default::default() }, &people.sync));
    let l = l.await.unwrap().into_inner().lead.unwrap();
    assert!(!l.imported);
    assert!(l.create_time.unwrap().seconds >= now.timestamp());

    // The stream carries each change at the time it happened.
    let mut s = c
        .stream_events(authed(pb::StreamEventsRequest { after_sequence: 0, follow: false }, &people.sync))
        .await
        .unwrap()
        .into_inner();
    let mut times = Vec::new();
    while let Some(e) = s.next().await {
        let e = e.unwrap().event.unwrap();
        let what = match e.payload.unwrap() {
            pb::event::Payload::LeadCreated(c) => format!("created {}", c.lead.unwrap().lead_id),
            pb::event::Payload::LeadStageChanged(c) => format!("moved {} to {}", c.lead_id, c.to_stage),
            pb::event::Payload::ContactVerificationRecorded(_) => "verified".into(),
        };
        times.push((what, e.occur_time.unwrap().seconds));
    }
    let at = |d: i64| timestamp(day(d)).seconds;
    assert_eq!(
        times[..4],
        [
            ("created crm-1".to_string(), at(90)),
            ("created crm-2".to_string(), at(40)),
            (format!("moved crm-1 to {}", LeadStage::Mql as i32), at(85)),
            (format!("moved crm-1 to {}", LeadStage::Sql as i32), at(60)),
        ]
    );
}

/// A lead scored at T with version 1; ten days later it has more signals and
/// version 2 is in force. As of T with version 1 it scores exactly as it was
/// stored at T; as of T with version 2 it scores with T's signals only; a time
/// in the future is refused with the field named.
async fn a_past_score_is_reproduced_as_of_its_time(b: Backend) {
    let mut cfg = config("scoring", b).await;
    let t0 = qualify_platform::Clock::system().now() - Duration::days(30);
    cfg.clock = qualify_platform::Clock::manual(t0);
    let svc = spawn::<Scoring>(cfg.clone()).await;
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let mut t = super::ingestion::Tenant::new(&c, "acme", 1, 1000).await;
    let signal = |id: &str, kind: pb::SignalType, at: DateTime<Utc>| pb::Signal {
        signal_id: id.into(),
        lead_id: super::ingestion::lead_id(0),
        r#type: kind as i32,
        occur_time: Some(timestamp(at)),
        ..Default::default()
    };
    let ingest = |signals: Vec<pb::Signal>| {
        let (mut c, bot) = (t.c.clone(), t.bot.clone());
        async move { c.ingest_signals(authed(pb::IngestSignalsRequest { signals }, &bot)).await.unwrap() }
    };
    // Pricing visits decay (half-life 7 days): the score depends on when it is computed.
    ingest(vec![signal("p1", pb::SignalType::PricingPageVisit, t0 - Duration::days(2))]).await;
    ingest(vec![signal("d1", pb::SignalType::DemoRequest, t0 - Duration::hours(5))]).await;
    let lead = |mut c: LeadScoringServiceClient<_>, bot: String| async move {
        c.get_lead(authed(pb::GetLeadRequest { lead_id: super::ingestion::lead_id(0) }, &bot))
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap()
    };
    let stored = lead(t.c.clone(), t.bot.clone()).await.score.unwrap();
    assert_eq!(stored.scorecard_version, 1);

    cfg.clock.advance(Duration::days(10));
    ingest(vec![signal("p2", pb::SignalType::PricingPageVisit, t0 + Duration::days(9))]).await;
    t.publish(super::ingestion::scorecard(500)).await;
    let score = |version: i64, as_of: Option<DateTime<Utc>>| {
        let (mut c, bot) = (t.c.clone(), t.bot.clone());
        async move {
            let req = pb::ScoreLeadRequest {
                target: Some(pb::score_lead_request::Target::LeadId(super::ingestion::lead_id(0))),
                scorecard_version: version,
                as_of_time: as_of.map(timestamp),
            };
            c.score_lead(authed(req, &bot)).await.map(|r| r.into_inner().score.unwrap())
        }
    };
    let now = score(0, None).await.unwrap();
    assert_eq!(now.scorecard_version, 2);
    assert_ne!(now.engagement, stored.engagement, "ten days on, the score moved");
    assert_eq!(score(1, Some(t0)).await.unwrap(), stored, "version 1 as of T: the score stored at T");
    let v2_then = score(2, Some(t0)).await.unwrap();
    assert_eq!((v2_then.scorecard_version, v2_then.engagement), (2, stored.engagement), "same rules, T's signals");
    assert_eq!(v2_then.score_time, Some(timestamp(t0)));
    let e = score(0, Some(t0 + Duration::days(11))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "as_of_time");
}
