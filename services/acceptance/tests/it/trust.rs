#![allow(clippy::unwrap_used)]
//! What the gate trusts, tried the way someone gaming it would: a
//! contributor deciding what they wrote, a second live opportunity on one
//! lead, an opportunity of a lead that left SQL, and the lead following its
//! opportunity to SQO and closed won or lost, also across a restart of either
//! service. Through the generated clients, on SQLite and PostgreSQL.

use std::time::Duration;

use qualify_proto::acceptance as pb;
use qualify_proto::common::{BuyingRole, LeadStage, Money, Segment};
use qualify_proto::scoring as sc;
use qualify_testkit::fixtures::{another_sql_lead, opportunity, opportunity_of, ts, verify_emails};
use qualify_testkit::{Backend, Cluster, Role, authed, eventually, on_both_backends, token};
use tonic::Code;
use tonic_types::StatusExt;

/// How long lead scoring may take to follow acceptance's stream.
const FOLLOW: Duration = Duration::from_secs(20);

async fn lead_stage(w: &mut Cluster, id: &str) -> LeadStage {
    let req = sc::GetLeadRequest { lead_id: id.into() };
    let lead = w.clients.scoring.get_lead(authed(req, &w.acme.sdr)).await.unwrap().into_inner().lead.unwrap();
    LeadStage::try_from(lead.stage).unwrap()
}

/// The lead's stage changes as (from, to, actor subject), oldest first.
async fn stage_changes(w: &mut Cluster, id: &str) -> Vec<(LeadStage, LeadStage, String)> {
    let req = sc::ListLeadStageChangesRequest { lead_id: id.into(), page_size: 100, page_token: String::new() };
    let r = w.clients.scoring.list_lead_stage_changes(authed(req, &w.acme.sdr)).await.unwrap().into_inner();
    r.stage_changes
        .into_iter()
        .map(|c| {
            let (from, to) = (LeadStage::try_from(c.from_stage).unwrap(), LeadStage::try_from(c.to_stage).unwrap());
            (from, to, c.actor.map(|a| a.subject).unwrap_or_default())
        })
        .collect()
}

/// Waits until lead `id` is at `stage`, failing with the stage it stayed at.
async fn until_stage(w: &mut Cluster, id: &str, stage: LeadStage) {
    let (mut s, lead) = (w.clients.scoring.clone(), id.to_string());
    let sdr = w.acme.sdr.clone();
    let reached = eventually(FOLLOW, || {
        let (mut s, lead, sdr) = (s.clone(), lead.clone(), sdr.clone());
        async move {
            let got = s.get_lead(authed(sc::GetLeadRequest { lead_id: lead }, &sdr)).await.ok()?;
            (got.into_inner().lead?.stage == stage as i32).then_some(())
        }
    })
    .await;
    if reached.is_none() {
        let now = s.get_lead(authed(sc::GetLeadRequest { lead_id: id.into() }, &sdr)).await.unwrap();
        panic!("lead {id} never reached {stage:?}; it is {:?}", now.into_inner().lead.unwrap().stage);
    }
}

fn close(id: &str, won: bool) -> pb::CloseOpportunityRequest {
    pb::CloseOpportunityRequest {
        opportunity_id: id.into(),
        won,
        amount: won.then(|| Money { amount_minor: 2_400_000, currency_code: "USD".into() }),
        reason: if won { "signed" } else { "went with Globex" }.into(),
        ..Default::default()
    }
}

async fn get(w: &mut Cluster, id: &str) -> Result<pb::Opportunity, tonic::Status> {
    let req = pb::GetOpportunityRequest { opportunity_id: id.into() };
    w.clients.acceptance.get_opportunity(authed(req, &w.acme.ae)).await.map(|r| r.into_inner().opportunity.unwrap())
}

/// After a send-back, a person holding both `manager` and `ae` resubmits
/// with evidence of their own, then tries to accept or reject it: refused,
/// under any spelling of their subject. Another AE accepts, and the
/// decision names everyone who wrote the opportunity.
async fn a_contributor_never_decides_what_they_wrote(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-1")).await;
    let back = pb::SendBackOpportunityRequest {
        opportunity_id: "opp-1".into(),
        note: "who signs?".into(),
        ..Default::default()
    };
    w.clients.acceptance.send_back_opportunity(authed(back, &w.acme.ae)).await.unwrap();

    let mia = token("acme", "mia", &[Role::Manager, Role::Ae]);
    let mut evidence = opportunity("opp-1").evidence;
    evidence[0].note = "the CFO confirmed the budget to me".into();
    evidence[0].confirmed_by = "mia".into();
    let resubmit = pb::ResubmitOpportunityRequest {
        opportunity_id: "opp-1".into(),
        expected_version: 2,
        evidence,
        stakeholders: opportunity("opp-1").stakeholders,
        next_step: opportunity("opp-1").next_step,
        request_id: String::new(),
    };
    let o = w.clients.acceptance.resubmit_opportunity(authed(resubmit, &mia)).await.unwrap().into_inner();
    let o = o.opportunity.unwrap();
    assert_eq!(o.submitted_by, "sam", "the submitter stays the SDR");
    assert_eq!(o.contributors, ["sam", "mia"]);

    // The resubmitter, as written and under other spellings of the same subject.
    for (subject, roles) in [
        ("mia", &[Role::Manager, Role::Ae][..]),
        ("Mia", &[Role::Ae][..]),
        (" MIA ", &[Role::Ae][..]),
        ("ｍｉａ", &[Role::Ae][..]),
    ] {
        let t = token("acme", subject, roles);
        let e = w.accept("opp-1", &t, "").await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{subject:?} accepting: {e:?}");
        assert!(e.message().contains("contributor"), "{subject:?}: {}", e.message());
        let reject = pb::RejectOpportunityRequest {
            opportunity_id: "opp-1".into(),
            reason: pb::RejectionReason::NoBudget as i32,
            ..Default::default()
        };
        let e = w.clients.acceptance.reject_opportunity(authed(reject, &t)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{subject:?} rejecting");
    }
    // The SDR holding an AE role too is a contributor as well.
    let e = w.accept("opp-1", &token("acme", "Sam", &[Role::Ae]), "").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let o = get(&mut w, "opp-1").await.unwrap();
    assert_eq!((o.state, o.version), (pb::OpportunityState::PendingReview as i32, 3), "the refusals changed nothing");
    assert_eq!(w.decisions("opp-1").await.len(), 1, "only the send-back is on record");

    let accepted = w.accept("opp-1", &w.acme.ae.clone(), "").await.unwrap();
    let d = accepted.decision.unwrap();
    assert_eq!(d.actor.unwrap().subject, "alex");
    assert_eq!(d.contributors, ["sam", "mia"]);
    assert_eq!(w.decisions("opp-1").await.last().unwrap().contributors, ["sam", "mia"]);
}

/// A lead carries one live opportunity: a second submission while the first
/// is pending, sent back or accepted and open is refused naming the first,
/// and stores nothing; after a rejection the lead may carry another; an
/// expansion with a reason is the exception; racing submissions leave one.
async fn a_lead_carries_one_live_opportunity(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-1")).await;
    let second =
        |id: &str| pb::SubmitOpportunityRequest { opportunity: Some(opportunity(id)), request_id: String::new() };
    let refused = |e: tonic::Status, live: &str| {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert_eq!(e.get_error_details().error_info().unwrap().reason, "LEAD_HAS_LIVE_OPPORTUNITY");
        let v = e.get_error_details().precondition_failure().unwrap().violations[0].clone();
        assert_eq!(v.subject, format!("opportunities/{live}"));
        assert!(e.message().contains(live));
    };
    let e = w.clients.acceptance.submit_opportunity(authed(second("opp-2"), &w.acme.sdr)).await.unwrap_err();
    refused(e, "opp-1");
    assert_eq!(get(&mut w, "opp-2").await.unwrap_err().code(), Code::NotFound, "nothing stored");
    // Another submitter (a manager) is refused the same way.
    let e = w.clients.acceptance.submit_opportunity(authed(second("opp-2"), &w.acme.manager)).await.unwrap_err();
    refused(e, "opp-1");

    // Sent back: still live.
    let back = pb::SendBackOpportunityRequest { opportunity_id: "opp-1".into(), ..Default::default() };
    w.clients.acceptance.send_back_opportunity(authed(back, &w.acme.ae)).await.unwrap();
    let e = w.clients.acceptance.submit_opportunity(authed(second("opp-2"), &w.acme.sdr)).await.unwrap_err();
    refused(e, "opp-1");

    // An expansion with a reason is allowed beside it, and needs its reason.
    let expansion =
        pb::Opportunity { expansion_reason: "the EMEA team buys separately".into(), ..opportunity("opp-x") };
    let req = pb::SubmitOpportunityRequest { opportunity: Some(expansion), request_id: String::new() };
    let x = w.clients.acceptance.submit_opportunity(authed(req, &w.acme.sdr)).await.unwrap().into_inner();
    assert_eq!(x.opportunity.unwrap().expansion_reason, "the EMEA team buys separately");
    let long = pb::Opportunity { expansion_reason: "x".repeat(1025), ..opportunity("opp-y") };
    let req = pb::SubmitOpportunityRequest { opportunity: Some(long), request_id: String::new() };
    let e = w.clients.acceptance.submit_opportunity(authed(req, &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "opportunity.expansion_reason");

    // Resubmitted and rejected: no longer live, the lead may carry another.
    let resubmit = pb::ResubmitOpportunityRequest {
        opportunity_id: "opp-1".into(),
        evidence: opportunity("opp-1").evidence,
        stakeholders: opportunity("opp-1").stakeholders,
        next_step: opportunity("opp-1").next_step,
        ..Default::default()
    };
    w.clients.acceptance.resubmit_opportunity(authed(resubmit, &w.acme.sdr)).await.unwrap();
    let reject = pb::RejectOpportunityRequest {
        opportunity_id: "opp-1".into(),
        reason: pb::RejectionReason::NoTimeline as i32,
        ..Default::default()
    };
    w.clients.acceptance.reject_opportunity(authed(reject, &w.acme.ae)).await.unwrap();
    w.submit(opportunity("opp-2")).await;

    // Accepted and open: still live, until it closes.
    w.accept("opp-2", &w.acme.ae.clone(), "").await.unwrap();
    let e = w.clients.acceptance.submit_opportunity(authed(second("opp-3"), &w.acme.sdr)).await.unwrap_err();
    refused(e, "opp-2");

    // Eight racing submissions for a fresh lead: exactly one is stored.
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-race").await;
    let racers = (0..8).map(|i| {
        let mut c = w.clients.acceptance.clone();
        let sdr = w.acme.sdr.clone();
        tokio::spawn(async move {
            let req = pb::SubmitOpportunityRequest {
                opportunity: Some(opportunity_of(&format!("race-{i}"), "lead-race")),
                request_id: String::new(),
            };
            c.submit_opportunity(authed(req, &sdr)).await.map(|r| r.into_inner().opportunity.unwrap().opportunity_id)
        })
    });
    let mut won = Vec::new();
    for r in futures::future::join_all(racers).await {
        match r.unwrap() {
            Ok(id) => won.push(id),
            Err(e) => assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "one racer wins: {won:?}");
    let listed = pb::ListOpportunitiesRequest { page_size: 100, ..Default::default() };
    let all = w.clients.acceptance.list_opportunities(authed(listed, &w.acme.ae)).await.unwrap().into_inner();
    let of_race: Vec<_> = all.opportunities.iter().filter(|o| o.lead_id == "lead-race").collect();
    assert_eq!(of_race.len(), 1);
}

/// A lead disqualified or recycled after its opportunity was submitted: the
/// AE's acceptance is refused, and nothing changes.
async fn an_opportunity_of_a_lead_that_left_sql_is_not_accepted(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-2").await;
    w.submit(opportunity("opp-1")).await;
    w.submit(opportunity_of("opp-2", "lead-2")).await;
    let dq =
        sc::DisqualifyLeadRequest { lead_id: "lead-1".into(), reason: "student".into(), request_id: String::new() };
    w.clients.scoring.disqualify_lead(authed(dq, &w.acme.sdr)).await.unwrap();
    let rc = sc::RecycleLeadRequest { lead_id: "lead-2".into(), reason: "next year".into(), request_id: String::new() };
    w.clients.scoring.recycle_lead(authed(rc, &w.acme.sdr)).await.unwrap();

    for (id, stage) in [("opp-1", "disqualified"), ("opp-2", "nurture")] {
        let e = w.accept(id, &w.acme.ae.clone(), "").await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{id}: {e:?}");
        assert_eq!(e.get_error_details().error_info().unwrap().reason, "LEAD_NOT_SQL");
        let v = e.get_error_details().precondition_failure().unwrap().violations[0].clone();
        assert!(v.description.contains(stage), "{}", v.description);
        // Not even with an override justification.
        let e = w
            .accept(id, &w.acme.ae.clone(), "the CEO insists on this one, budget confirmed verbally")
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        let o = get(&mut w, id).await.unwrap();
        assert_eq!((o.state, o.version), (pb::OpportunityState::PendingReview as i32, 1));
        assert!(w.decisions(id).await.is_empty());
    }
    // A rejection still goes through: the AE can clear the queue.
    let reject = pb::RejectOpportunityRequest {
        opportunity_id: "opp-1".into(),
        reason: pb::RejectionReason::NoBudget as i32,
        ..Default::default()
    };
    w.clients.acceptance.reject_opportunity(authed(reject, &w.acme.ae)).await.unwrap();
}

/// Contacts an SDR enters as verified (any provider, yesterday) are
/// self-reported: the gate finds their data stale and the AE cannot accept
/// without an override. Once the verifier's feed records a provider's
/// finding about the same contacts, the same opportunity passes.
async fn self_reported_verification_never_satisfies_the_gate(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    let people = w.acme.clone();
    for (id, role) in [("c-eb2", BuyingRole::EconomicBuyer), ("c-ch2", BuyingRole::Champion)] {
        let contact = sc::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            buying_role: role as i32,
            email: format!("{id}@acme.test"),
            email_status: sc::VerificationStatus::Verified as i32,
            email_verify_time: ts(-1.0),
            email_verify_provider: "zerobounce".into(),
            ..Default::default()
        };
        let req = sc::CreateContactRequest { contact: Some(contact), ..Default::default() };
        let made = w.clients.scoring.create_contact(authed(req, &people.sdr)).await.unwrap().into_inner();
        assert_eq!(made.contact.unwrap().email_status, sc::VerificationStatus::SelfReported as i32);
    }
    let mut o = opportunity("opp-1");
    for s in &mut o.stakeholders {
        s.contact_id = format!("{}2", s.contact_id);
    }
    let gate = w.submit(o).await.gate.unwrap();
    let failed: Vec<_> = gate.checks.iter().filter(|c| !c.passed).map(|c| c.code).collect();
    assert_eq!(failed, [pb::GateCheckCode::ContactDataStale as i32], "only the contacts' data fails");
    let e = w.accept("opp-1", &people.ae, "").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "GATE_NOT_PASSED");

    verify_emails(&mut w.clients.scoring, &people, &["c-eb2", "c-ch2"], 1.0).await;
    let r = w.accept("opp-1", &people.ae, "").await.unwrap();
    assert!(r.decision.unwrap().gate_passed, "a provider's finding is trusted");
}

/// Another AE replaying the first AE's `request_id` of an acceptance gets
/// IDEMPOTENCY_KEY_REUSED, not the stored decision, and nothing changes; the
/// first AE's own retry still gets its answer.
async fn a_replayed_key_from_another_subject_reveals_nothing(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-1")).await;
    let req = pb::AcceptOpportunityRequest {
        opportunity_id: "opp-1".into(),
        request_id: "accept-opp-1".into(),
        ..Default::default()
    };
    let first = w.clients.acceptance.accept_opportunity(authed(req.clone(), &w.acme.ae)).await.unwrap().into_inner();
    let blair = token(&w.acme.tenant, "blair", &[Role::Ae]);
    let e = w.clients.acceptance.accept_opportunity(authed(req.clone(), &blair)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "IDEMPOTENCY_KEY_REUSED");
    assert!(!format!("{e:?}").contains(&first.decision.as_ref().unwrap().decision_id), "nothing of the decision leaks");
    let again = w.clients.acceptance.accept_opportunity(authed(req, &w.acme.ae)).await.unwrap().into_inner();
    assert_eq!(again, first, "the first AE's retry gets its answer");
    assert_eq!(w.decisions("opp-1").await.len(), 1);
}

/// Accepted, the lead moves to SQO at the acceptance's time by the
/// accepting AE; closed, to closed won or lost. Expansions move nothing.
async fn the_lead_follows_its_opportunity(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-2").await;
    w.submit(opportunity("opp-1")).await;
    w.submit(opportunity_of("opp-2", "lead-2")).await;
    let ae = w.acme.ae.clone();
    let accepted = w.accept("opp-1", &ae, "").await.unwrap().opportunity.unwrap();
    w.accept("opp-2", &ae, "").await.unwrap();
    until_stage(&mut w, "lead-1", LeadStage::Sqo).await;
    until_stage(&mut w, "lead-2", LeadStage::Sqo).await;
    let req = sc::ListLeadStageChangesRequest { lead_id: "lead-1".into(), page_size: 100, page_token: String::new() };
    let changes = w.clients.scoring.list_lead_stage_changes(authed(req, &w.acme.sdr)).await.unwrap().into_inner();
    let last = changes.stage_changes.last().unwrap();
    assert_eq!((last.from_stage, last.to_stage), (LeadStage::Sql as i32, LeadStage::Sqo as i32));
    assert_eq!(last.actor.as_ref().unwrap().subject, "alex");
    assert_eq!(last.change_time, accepted.accept_time, "moved at the time it was accepted");

    // An expansion of lead-1 accepted and closed lost moves nothing.
    let x = pb::Opportunity { expansion_reason: "a second product line".into(), ..opportunity("opp-x") };
    w.submit(x).await;
    w.accept("opp-x", &ae, "").await.unwrap();
    w.clients.acceptance.close_opportunity(authed(close("opp-x", false), &ae)).await.unwrap();

    w.clients.acceptance.close_opportunity(authed(close("opp-1", true), &ae)).await.unwrap();
    w.clients.acceptance.close_opportunity(authed(close("opp-2", false), &ae)).await.unwrap();
    until_stage(&mut w, "lead-1", LeadStage::ClosedWon).await;
    until_stage(&mut w, "lead-2", LeadStage::ClosedLost).await;
    let moves: Vec<_> = stage_changes(&mut w, "lead-1").await.into_iter().map(|(f, t, _)| (f, t)).collect();
    assert_eq!(&moves[moves.len() - 2..], [(LeadStage::Sql, LeadStage::Sqo), (LeadStage::Sqo, LeadStage::ClosedWon)]);
    assert_eq!(lead_stage(&mut w, "lead-1").await, LeadStage::ClosedWon, "the closed-lost expansion moved nothing");
}

/// Either service restarted in the middle: lead scoring, stopped while an
/// accepted opportunity closes, catches up when it is back; acceptance,
/// restarted between submission and acceptance, is followed again. Each
/// move happens exactly once.
async fn the_lead_follows_across_restarts(b: Backend) {
    let mut w = Cluster::start_durable(b).await;
    qualify_testkit::fixtures::sql_lead(&mut w.clients.scoring, &w.acme).await;
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-2").await;
    let ae = w.acme.ae.clone();
    w.submit(opportunity("opp-1")).await;
    w.accept("opp-1", &ae, "").await.unwrap();
    until_stage(&mut w, "lead-1", LeadStage::Sqo).await;

    // Lead scoring is down while the deal closes.
    w.stop_scoring().await;
    w.clients.acceptance.close_opportunity(authed(close("opp-1", true), &ae)).await.unwrap();
    w.start_scoring().await;
    until_stage(&mut w, "lead-1", LeadStage::ClosedWon).await;

    // Acceptance restarts between submission and acceptance.
    w.submit(opportunity_of("opp-2", "lead-2")).await;
    w.stop_acceptance().await;
    w.start_acceptance().await;
    w.accept("opp-2", &ae, "").await.unwrap();
    until_stage(&mut w, "lead-2", LeadStage::Sqo).await;
    w.clients.acceptance.close_opportunity(authed(close("opp-2", false), &ae)).await.unwrap();
    until_stage(&mut w, "lead-2", LeadStage::ClosedLost).await;

    // Lead scoring restarted once more re-reads nothing twice.
    w.stop_scoring().await;
    w.start_scoring().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (lead, closed) in [("lead-1", LeadStage::ClosedWon), ("lead-2", LeadStage::ClosedLost)] {
        let moves: Vec<_> = stage_changes(&mut w, lead)
            .await
            .into_iter()
            .filter(|(_, t, _)| matches!(t, LeadStage::Sqo | LeadStage::ClosedWon | LeadStage::ClosedLost))
            .map(|(f, t, _)| (f, t))
            .collect();
        assert_eq!(moves, [(LeadStage::Sql, LeadStage::Sqo), (LeadStage::Sqo, closed)], "{lead}");
    }
}

/// Publishing a policy makes a version; a decision names the version it was
/// judged by, and that version reads back as it was, after a newer one.
async fn a_decisions_policy_version_reads_back(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-2").await;
    let ae = w.acme.ae.clone();
    let revops = w.acme.revops.clone();
    let get_version = |version: Option<i64>| pb::GetGatePolicyRequest { segment: Segment::Smb as i32, version };
    let default = w.clients.acceptance.get_gate_policy(authed(get_version(None), &revops)).await.unwrap();
    let default = default.into_inner().policy.unwrap();
    assert_eq!((default.version, default.contact_max_age_days), (0, 7), "contacts verified within a week by default");

    w.submit(opportunity("opp-1")).await;
    let d0 = w.accept("opp-1", &ae, "").await.unwrap().decision.unwrap();
    assert_eq!(d0.policy_version, 0);

    let v1 =
        pb::GatePolicy { contact_max_age_days: 30, min_score: 0, version: 0, update_time: None, ..default.clone() };
    let req = pb::UpdateGatePolicyRequest { policy: Some(v1), expected_version: 0, request_id: String::new() };
    w.clients.acceptance.update_gate_policy(authed(req, &revops)).await.unwrap();
    let v2 =
        pb::GatePolicy { contact_max_age_days: 14, min_score: 0, version: 0, update_time: None, ..default.clone() };
    let req = pb::UpdateGatePolicyRequest { policy: Some(v2), expected_version: 1, request_id: String::new() };
    w.clients.acceptance.update_gate_policy(authed(req, &revops)).await.unwrap();

    w.submit(opportunity_of("opp-2", "lead-2")).await;
    let d2 = w.accept("opp-2", &ae, "").await.unwrap().decision.unwrap();
    assert_eq!(d2.policy_version, 2);

    let read = |v: Option<i64>| {
        let mut c = w.clients.acceptance.clone();
        let revops = revops.clone();
        async move { c.get_gate_policy(authed(get_version(v), &revops)).await.map(|r| r.into_inner().policy.unwrap()) }
    };
    let at = |p: pb::GatePolicy| (p.version, p.contact_max_age_days);
    assert_eq!(at(read(Some(d0.policy_version)).await.unwrap()), (0, 7), "the built-in default, as judged");
    assert_eq!(at(read(Some(1)).await.unwrap()), (1, 30));
    assert_eq!(at(read(Some(d2.policy_version)).await.unwrap()), (2, 14));
    assert_eq!(at(read(None).await.unwrap()), (2, 14), "unset: the policy in force");
    let e = read(Some(3)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("smb/3") || e.message().contains("3"), "{}", e.message());
    let e = read(Some(-1)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "version");
    // Another tenant's versions are not there.
    let globex = token("globex", "rita", &[Role::Revops]);
    let e = w.clients.acceptance.get_gate_policy(authed(get_version(Some(1)), &globex)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

on_both_backends!(
    a_contributor_never_decides_what_they_wrote,
    a_lead_carries_one_live_opportunity,
    an_opportunity_of_a_lead_that_left_sql_is_not_accepted,
    the_lead_follows_its_opportunity,
    the_lead_follows_across_restarts,
    a_decisions_policy_version_reads_back,
    self_reported_verification_never_satisfies_the_gate,
    a_replayed_key_from_another_subject_reveals_nothing,
);
