#![allow(clippy::unwrap_used)]
//! The SQO gate through the generated client, with lead scoring running for
//! real beside it, on SQLite and on the machine's PostgreSQL.

use std::time::Duration;

use qualify_acceptance::Acceptance;
use qualify_proto::acceptance::{
    self as pb, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient as Client,
};
use qualify_proto::common::{BuyingRole, LeadSource, Money, Segment};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_testkit::fixtures::{another_sql_lead, opportunity, opportunity_of, ts, verify_emails};
use qualify_testkit::{Backend, Cluster, Role, authed, config, on_both_backends, spawn, token};
use tonic::Code;
use tonic_types::StatusExt;

async fn submit_snapshots_the_lead_and_an_ae_accepts_with_an_audit_trail(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    let r = w.submit(opportunity("opp-1")).await;
    let o = r.opportunity.unwrap();
    assert_eq!(o.state, pb::OpportunityState::PendingReview as i32);
    assert_eq!((o.submitted_by.as_str(), o.version), ("sam", 1));
    let snap = o.lead_snapshot.unwrap();
    assert_eq!((snap.source, snap.campaign.as_str()), (LeadSource::Inbound as i32, "q4-webinar"));
    assert_eq!(snap.stage, qualify_proto::common::LeadStage::Sql as i32);
    assert!(o.stakeholders.iter().all(|s| s.verify_time.is_some()), "verification comes from lead scoring");
    assert!(r.gate.unwrap().passed);

    let accepted = w.accept("opp-1", &w.acme.ae.clone(), "").await.unwrap();
    let (o, d) = (accepted.opportunity.unwrap(), accepted.decision.unwrap());
    assert_eq!((o.state, o.version, o.accepted_by.as_str()), (pb::OpportunityState::Accepted as i32, 2, "alex"));
    assert!(!o.overridden && o.accept_time.is_some());
    assert_eq!((d.kind, d.gate_passed, d.overridden), (pb::DecisionKind::Accept as i32, true, false));
    assert_eq!(d.actor.unwrap().subject, "alex");
    assert_eq!(d.evidence.len(), 4);
    assert!(d.checks.iter().all(|c| c.passed) && !d.checks.is_empty());
    assert_eq!(w.decisions("opp-1").await.len(), 1);

    // The events went out through the outbox, in order, to service accounts only.
    let svc = token("acme", "metrics", &[Role::Service]);
    let mut events = Vec::new();
    let mut stream = w
        .clients
        .acceptance
        .stream_events(authed(pb::StreamEventsRequest { after_sequence: 0, follow: true }, &svc))
        .await
        .unwrap()
        .into_inner();
    while events.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        events.push(e.event.unwrap());
    }
    use pb::event::Payload;
    assert!(matches!(&events[0].payload, Some(Payload::OpportunityChanged(c)) if c.from_state == 0));
    assert!(
        matches!(&events[1].payload, Some(Payload::OpportunityChanged(c)) if c.from_state == pb::OpportunityState::PendingReview as i32)
    );
    assert!(
        matches!(&events[2].payload, Some(Payload::DecisionRecorded(d)) if d.kind == pb::DecisionKind::Accept as i32)
    );
    assert!(events.windows(2).all(|p| p[0].sequence < p[1].sequence));
    let e =
        w.clients.acceptance.stream_events(authed(pb::StreamEventsRequest::default(), &w.acme.ae)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

/// Every role against every mutating RPC, on an opportunity that does not
/// exist: refused callers get PERMISSION_DENIED before anything is looked up,
/// permitted ones get as far as NOT_FOUND.
async fn every_role_against_every_mutating_rpc(b: Backend) {
    let w = Cluster::with_sql_lead(b).await;
    let mut c = w.clients.acceptance.clone();
    let id = || "ghost".to_string();
    let tokens: Vec<(&str, String)> = vec![
        ("sdr", token("acme", "sam", &[Role::Sdr])),
        ("ae", token("acme", "alex", &[Role::Ae])),
        ("manager", token("acme", "mo", &[Role::Manager])),
        ("revops", token("acme", "rita", &[Role::Revops])),
        ("service", token("acme", "sync", &[Role::Service])),
        ("ae+service", token("acme", "bot", &[Role::Ae, Role::Service])),
        ("ae+sdr", token("acme", "dual", &[Role::Ae, Role::Sdr])),
    ];
    let permitted: &[(&str, &[&str])] = &[
        ("submit", &["sdr", "manager", "ae+sdr"]),
        ("resubmit", &["sdr", "manager", "ae+sdr"]),
        ("accept", &["ae"]),
        ("reject", &["ae", "manager", "ae+sdr"]),
        ("send_back", &["ae", "manager", "ae+sdr"]),
        ("activity", &["ae", "manager", "service", "ae+service", "ae+sdr"]),
        ("advance", &["ae", "manager", "ae+sdr"]),
        ("close", &["ae", "manager", "ae+sdr"]),
    ];
    let mut checked = 0;
    for (rpc, allowed) in permitted {
        for (role, t) in &tokens {
            let code = match *rpc {
                "submit" => {
                    let o = pb::Opportunity { lead_id: "ghost-lead".into(), ..opportunity("opp-x") };
                    let req = pb::SubmitOpportunityRequest { opportunity: Some(o), request_id: String::new() };
                    c.submit_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "resubmit" => {
                    let req = pb::ResubmitOpportunityRequest { opportunity_id: id(), ..Default::default() };
                    c.resubmit_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "accept" => {
                    let req = pb::AcceptOpportunityRequest { opportunity_id: id(), ..Default::default() };
                    c.accept_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "reject" => {
                    let req = pb::RejectOpportunityRequest {
                        opportunity_id: id(),
                        reason: pb::RejectionReason::NoBudget as i32,
                        ..Default::default()
                    };
                    c.reject_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "send_back" => {
                    let req = pb::SendBackOpportunityRequest { opportunity_id: id(), ..Default::default() };
                    c.send_back_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "activity" => {
                    let activity = pb::Activity { r#type: pb::ActivityType::Call as i32, ..Default::default() };
                    let req = pb::RecordActivityRequest {
                        opportunity_id: id(),
                        activity: Some(activity),
                        request_id: String::new(),
                    };
                    c.record_activity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                "advance" => {
                    let req = pb::AdvanceOpportunityRequest { opportunity_id: id(), ..Default::default() };
                    c.advance_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
                _ => {
                    let req = pb::CloseOpportunityRequest {
                        opportunity_id: id(),
                        won: false,
                        reason: "went dark".into(),
                        ..Default::default()
                    };
                    c.close_opportunity(authed(req, t)).await.map(|_| ()).unwrap_err().code()
                }
            };
            let want = if allowed.contains(role) { Code::NotFound } else { Code::PermissionDenied };
            assert_eq!(code, want, "{rpc} as {role}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 7);
}

async fn the_submitter_never_accepts_and_a_failed_gate_needs_a_flagged_override(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    // No champion, and the next step is already past.
    let mut o = opportunity("opp-2");
    o.stakeholders.truncate(1);
    o.next_step.as_mut().unwrap().scheduled_time = ts(-1.0);
    let r = w.submit(o).await;
    let gate = r.gate.unwrap();
    assert!(!gate.passed);
    let failed: Vec<_> = gate.checks.iter().filter(|c| !c.passed).map(|c| c.code).collect();
    use pb::GateCheckCode as G;
    assert_eq!(
        failed,
        [G::ChampionMissing as i32, G::BuyingGroupTooSmall as i32, G::NextStepMissing as i32],
        "every failed check is reported"
    );

    // The submitter holding an AE role still cannot accept their own opportunity.
    let own = token("acme", "sam", &[Role::Ae]);
    assert_eq!(w.accept("opp-2", &own, "").await.unwrap_err().code(), Code::PermissionDenied);
    // An AE cannot accept a failed gate without a justification, nor with a token one.
    let ae = w.acme.ae.clone();
    let e = w.accept("opp-2", &ae, "").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "GATE_NOT_PASSED");
    assert_eq!(e.get_error_details().precondition_failure().unwrap().violations.len(), 3);
    let e = w.accept("opp-2", &ae, "trust me").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "override_justification");
    assert!(w.decisions("opp-2").await.is_empty(), "refusals change nothing");

    let r = w.accept("opp-2", &ae, "champion confirmed verbally by the CFO; demo moved to next week").await.unwrap();
    let (o, d) = (r.opportunity.unwrap(), r.decision.unwrap());
    assert!(o.overridden && d.overridden && !d.gate_passed);
    assert_eq!(d.override_justification, "champion confirmed verbally by the CFO; demo moved to next week");
    let got = w
        .clients
        .acceptance
        .get_opportunity(authed(pb::GetOpportunityRequest { opportunity_id: "opp-2".into() }, &w.acme.sdr))
        .await;
    assert!(got.unwrap().into_inner().opportunity.unwrap().overridden, "the flag is stored");
}

async fn many_concurrent_decisions_leave_exactly_one(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-3")).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = w.clients.acceptance.clone();
        let t = token("acme", &format!("ae-{i}"), &[Role::Ae]);
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let req = pb::AcceptOpportunityRequest { opportunity_id: "opp-3".into(), ..Default::default() };
                c.accept_opportunity(authed(req, &t)).await.map(|_| ())
            } else {
                let req = pb::RejectOpportunityRequest {
                    opportunity_id: "opp-3".into(),
                    reason: pb::RejectionReason::NotIcp as i32,
                    ..Default::default()
                };
                c.reject_opportunity(authed(req, &t)).await.map(|_| ())
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(matches!(e.code(), Code::Aborted | Code::FailedPrecondition), "{e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one decision wins");
    assert_eq!(w.decisions("opp-3").await.len(), 1);
    // A stale expected_version is ABORTED, not last-write-wins.
    w.submit(opportunity("opp-4")).await;
    let req = pb::RejectOpportunityRequest {
        opportunity_id: "opp-4".into(),
        expected_version: 7,
        reason: pb::RejectionReason::NoBudget as i32,
        ..Default::default()
    };
    assert_eq!(
        w.clients.acceptance.reject_opportunity(authed(req, &w.acme.ae)).await.unwrap_err().code(),
        Code::Aborted
    );
}

async fn retried_decisions_return_the_first_result(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-5")).await;
    let req = pb::RejectOpportunityRequest {
        opportunity_id: "opp-5".into(),
        reason: pb::RejectionReason::Other as i32,
        note: "reseller deal, route to partners".into(),
        request_id: "rej-1".into(),
        ..Default::default()
    };
    let first = w.clients.acceptance.reject_opportunity(authed(req.clone(), &w.acme.ae)).await.unwrap().into_inner();
    let again = w.clients.acceptance.reject_opportunity(authed(req.clone(), &w.acme.ae)).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(w.decisions("opp-5").await.len(), 1);
    let other = pb::RejectOpportunityRequest { note: "something else entirely".into(), ..req };
    let e = w.clients.acceptance.reject_opportunity(authed(other, &w.acme.ae)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // OTHER needs a note; an unknown reason is named.
    let bad = pb::RejectOpportunityRequest {
        opportunity_id: "opp-5".into(),
        reason: pb::RejectionReason::Other as i32,
        ..Default::default()
    };
    let e = w.clients.acceptance.reject_opportunity(authed(bad, &w.acme.ae)).await.unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "note");
}

async fn retried_submissions_return_the_first_answer_whatever_lead_scoring_says_now(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    // A stakeholder lead scoring does not know: NOT_FOUND naming the contact, nothing stored.
    let mut unknown = opportunity("opp-6");
    unknown.stakeholders[1].contact_id = "c-nope".into();
    let req = pb::SubmitOpportunityRequest { opportunity: Some(unknown), request_id: "sub-6".into() };
    let e = w.clients.acceptance.submit_opportunity(authed(req, &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("c-nope"), "{}", e.message());

    let req = pb::SubmitOpportunityRequest { opportunity: Some(opportunity("opp-7")), request_id: "sub-7".into() };
    let first = w.clients.acceptance.submit_opportunity(authed(req.clone(), &w.acme.sdr)).await.unwrap().into_inner();
    // Both stakeholders' verification times come from lead scoring, in their order.
    let verified: Vec<_> = first.opportunity.as_ref().unwrap().stakeholders.iter().map(|s| s.verify_time).collect();
    assert!(verified.iter().all(Option::is_some), "{verified:?}");
    let again = w.clients.acceptance.submit_opportunity(authed(req.clone(), &w.acme.sdr)).await.unwrap().into_inner();
    assert_eq!(first, again);

    // The lead leaves SQL: a new submission is refused, a retry still gets the first answer.
    let mut s = LeadScoringServiceClient::new(w.scoring.channel().await);
    let dq = sc::DisqualifyLeadRequest { lead_id: "lead-1".into(), reason: "went quiet".into(), ..Default::default() };
    s.disqualify_lead(authed(dq, &w.acme.sdr)).await.unwrap();
    let late = pb::SubmitOpportunityRequest { opportunity: Some(opportunity("opp-8")), request_id: "sub-8".into() };
    let e = w.clients.acceptance.submit_opportunity(authed(late, &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "LEAD_NOT_SQL");
    let retried = w.clients.acceptance.submit_opportunity(authed(req.clone(), &w.acme.sdr)).await.unwrap().into_inner();
    assert_eq!(first, retried);
    // The same key with another payload is refused, whatever the snapshot says.
    let mut other = opportunity("opp-7");
    other.team = "amer-smb".into();
    let reused = pb::SubmitOpportunityRequest { opportunity: Some(other), request_id: "sub-7".into() };
    let e = w.clients.acceptance.submit_opportunity(authed(reused, &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let list = w
        .clients
        .acceptance
        .list_opportunities(authed(pb::ListOpportunitiesRequest::default(), &w.acme.sdr))
        .await
        .unwrap();
    let ids: Vec<_> = list.into_inner().opportunities.into_iter().map(|o| o.opportunity_id).collect();
    assert_eq!(ids, ["opp-7"]);
}

async fn after_acceptance_activities_stages_close_and_calibration(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    w.submit(opportunity("opp-6")).await;
    let ae = w.acme.ae.clone();
    w.accept("opp-6", &ae, "").await.unwrap();
    // Not yet abandoned: accepted just now.
    let list = |days| pb::ListAbandonedOpportunitiesRequest { follow_up_days: days, as_of_time: None };
    let abandoned = w.clients.acceptance.list_abandoned_opportunities(authed(list(0), &ae)).await.unwrap().into_inner();
    assert!(abandoned.opportunities.is_empty());
    // Whole seconds on the wire: let the clock pass the acceptance first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let activity = pb::Activity {
        r#type: pb::ActivityType::Meeting as i32,
        meaningful: true,
        occur_time: ts(0.0),
        note: "discovery with the CFO".into(),
        ..Default::default()
    };
    let req = pb::RecordActivityRequest {
        opportunity_id: "opp-6".into(),
        activity: Some(activity),
        request_id: String::new(),
    };
    // A live activity happens now: back-dating one (to look followed through) is refused.
    let backdated = pb::RecordActivityRequest {
        activity: Some(pb::Activity { occur_time: ts(-1.0 / 24.0), ..req.activity.clone().unwrap() }),
        ..req.clone()
    };
    let e = w.clients.acceptance.record_activity(authed(backdated, &ae)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "activity.occur_time");
    let r = w.clients.acceptance.record_activity(authed(req, &ae)).await.unwrap().into_inner();
    assert!(r.opportunity.unwrap().first_meaningful_activity_time.is_some());
    // Without a time it is stamped now.
    let unstamped = pb::RecordActivityRequest {
        opportunity_id: "opp-6".into(),
        activity: Some(pb::Activity { r#type: pb::ActivityType::Email as i32, ..Default::default() }),
        request_id: String::new(),
    };
    let r = w.clients.acceptance.record_activity(authed(unstamped, &ae)).await.unwrap().into_inner();
    let at = r.activity.unwrap().occur_time.unwrap().seconds;
    assert!((at - qualify_platform::Clock::system().now().timestamp()).abs() <= 5, "stamped now");
    let adv = pb::AdvanceOpportunityRequest { opportunity_id: "opp-6".into(), ..Default::default() };
    let o = w.clients.acceptance.advance_opportunity(authed(adv, &ae)).await.unwrap().into_inner().opportunity.unwrap();
    assert_eq!(o.state, pb::OpportunityState::Proposal as i32);
    let close = pb::CloseOpportunityRequest {
        opportunity_id: "opp-6".into(),
        won: true,
        amount: Some(Money { amount_minor: 2_000_000, currency_code: "EUR".into() }),
        reason: "signed".into(),
        ..Default::default()
    };
    // Won in another currency than it was forecast in: refused, naming the field, nothing changed.
    let e = w.clients.acceptance.close_opportunity(authed(close.clone(), &ae)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "amount.currency_code");
    let close = pb::CloseOpportunityRequest {
        amount: Some(Money { amount_minor: 2_000_000, currency_code: "USD".into() }),
        ..close
    };
    let o = w.clients.acceptance.close_opportunity(authed(close, &ae)).await.unwrap().into_inner().opportunity.unwrap();
    assert_eq!(o.state, pb::OpportunityState::ClosedWon as i32);
    assert_eq!(o.closed_amount.unwrap().amount_minor, 2_000_000);

    // Calibration: reject a second one (of another lead), sample both, review: one agree, one disagree.
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-7").await;
    w.submit(opportunity_of("opp-7", "lead-7")).await;
    let rej = pb::RejectOpportunityRequest {
        opportunity_id: "opp-7".into(),
        reason: pb::RejectionReason::NoTimeline as i32,
        ..Default::default()
    };
    w.clients.acceptance.reject_opportunity(authed(rej, &ae)).await.unwrap();
    let manager = token("acme", "mo", &[Role::Manager]);
    let sample_req = pb::CreateCalibrationSampleRequest {
        team: "emea-smb".into(),
        start_time: ts(-1.0),
        end_time: ts(1.0),
        size: 10,
        seed: 42,
    };
    let s1 = w
        .clients
        .acceptance
        .create_calibration_sample(authed(sample_req.clone(), &manager))
        .await
        .unwrap()
        .into_inner();
    let s2 = w.clients.acceptance.create_calibration_sample(authed(sample_req, &manager)).await.unwrap().into_inner();
    assert_eq!(s1.decisions.len(), 2);
    let ids =
        |s: &pb::CreateCalibrationSampleResponse| s.decisions.iter().map(|d| d.decision_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&s1), ids(&s2), "the same seed draws the same sample");
    // The decider cannot review their own decision.
    let own = pb::RecordCalibrationReviewRequest {
        sample_id: s1.sample_id.clone(),
        decision_id: s1.decisions[0].decision_id.clone(),
        agree: true,
        note: String::new(),
    };
    assert_eq!(
        w.clients.acceptance.record_calibration_review(authed(own.clone(), &ae)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    for (d, agree) in s1.decisions.iter().zip([true, false]) {
        let review = pb::RecordCalibrationReviewRequest {
            sample_id: s1.sample_id.clone(),
            decision_id: d.decision_id.clone(),
            agree,
            note: if agree { String::new() } else { "would have accepted".into() },
        };
        w.clients.acceptance.record_calibration_review(authed(review, &manager)).await.unwrap();
    }
    let got = w
        .clients
        .acceptance
        .get_calibration_agreement(authed(pb::GetCalibrationAgreementRequest { sample_id: s1.sample_id }, &manager))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.reviewed, got.agreed, got.team.as_str()), (2, 1, "emea-smb"));
    // One accept and one reject; the reviewer accepts both: p_o = 0.5, p_e = 0.5 * 1 + 0.5 * 0 = 0.5, kappa 0.
    assert_eq!(got.kappa, Some(0.0));
}

on_both_backends!(
    submit_snapshots_the_lead_and_an_ae_accepts_with_an_audit_trail,
    every_role_against_every_mutating_rpc,
    the_submitter_never_accepts_and_a_failed_gate_needs_a_flagged_override,
    many_concurrent_decisions_leave_exactly_one,
    retried_decisions_return_the_first_result,
    retried_submissions_return_the_first_answer_whatever_lead_scoring_says_now,
    after_acceptance_activities_stages_close_and_calibration,
    a_stricter_policy_is_backtested_on_the_accepted_deals,
);

/// Five accepted deals, two of them with a technical evaluator mapped as a
/// third stakeholder. Actual: 5 SQOs, 2 won of 5 closed (40 %). Under a policy
/// asking for three stakeholders: 2 SQOs (-60 %), 1 won of 2 (50 %).
async fn a_stricter_policy_is_backtested_on_the_accepted_deals(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    let mut s = LeadScoringServiceClient::new(w.scoring.channel().await);
    let bot = token("acme", "sync", &[Role::Service]);
    let contact = sc::Contact {
        contact_id: "c-te".into(),
        account_id: "acc-1".into(),
        full_name: "Tess".into(),
        buying_role: BuyingRole::TechnicalEvaluator as i32,
        email: "tess@acme.test".into(),
        ..Default::default()
    };
    s.create_contact(authed(sc::CreateContactRequest { contact: Some(contact), ..Default::default() }, &bot))
        .await
        .unwrap();
    verify_emails(&mut s, &w.acme, &["c-te"], 1.0).await;
    let ae = w.acme.ae.clone();
    for (i, (third, won)) in
        [(true, true), (true, false), (false, true), (false, false), (false, false)].iter().enumerate()
    {
        let id = format!("opp-{i}");
        let lead = format!("lead-b{i}");
        another_sql_lead(&mut w.clients.scoring, &w.acme, &lead).await;
        let mut o = opportunity_of(&id, &lead);
        if *third {
            o.stakeholders.push(pb::Stakeholder {
                contact_id: "c-te".into(),
                role: BuyingRole::TechnicalEvaluator as i32,
                verify_time: None,
            });
        }
        w.submit(o).await;
        w.accept(&id, &ae, "").await.unwrap();
        let req = pb::CloseOpportunityRequest {
            opportunity_id: id,
            won: *won,
            amount: if *won { Some(Money { amount_minor: 2_400_000, currency_code: "USD".into() }) } else { None },
            reason: "decided".into(),
            ..Default::default()
        };
        w.clients.acceptance.close_opportunity(authed(req, &ae)).await.unwrap();
    }
    let month = qualify_platform::Clock::system().now().format("%Y-%m").to_string();
    let policy = pb::GatePolicy {
        segment: Segment::Smb as i32,
        framework: qualify_proto::common::Framework::Bant as i32,
        require_economic_buyer: true,
        require_champion: true,
        min_stakeholders: 3,
        require_next_step: true,
        contact_max_age_days: 90,
        ..Default::default()
    };
    let req =
        pb::BacktestGatePolicyRequest { policy: Some(policy.clone()), start_period: month.clone(), end_period: month };
    let revops = token("acme", "rita", &[Role::Revops]);
    let r = w.clients.acceptance.backtest_gate_policy(authed(req.clone(), &revops)).await.unwrap().into_inner();
    let (actual, under) = (r.actual.unwrap(), r.under_policy.unwrap());
    assert_eq!((actual.sqos, actual.closed, actual.won, actual.win_rate), (5, 5, 2, Some(0.4)));
    assert_eq!((actual.pipeline_minor, actual.won_amount_minor), (5 * 2_400_000, 2 * 2_400_000));
    assert_eq!((under.sqos, under.closed, under.won, under.win_rate), (2, 2, 1, Some(0.5)));
    assert_eq!(r.volume_change, Some(-0.6));
    // Only RevOps and managers backtest; a bad range names its field.
    let e = w.clients.acceptance.backtest_gate_policy(authed(req.clone(), &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let bad = pb::BacktestGatePolicyRequest { start_period: "2026-13".into(), ..req };
    let e = w.clients.acceptance.backtest_gate_policy(authed(bad, &revops)).await.unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "start_period");
}

/// With lead scoring unreachable, a submission is UNAVAILABLE (with retry
/// advice) and nothing is stored.
#[tokio::test]
async fn submit_without_lead_scoring_is_unavailable_and_stores_nothing() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let mut cfg = config("acceptance", Backend::Postgres).await;
    cfg.scoring_url = Some(format!("http://{addr}"));
    let svc = spawn::<Acceptance>(cfg).await;
    let mut c = Client::new(svc.channel().await);
    let sdr = token("acme", "sam", &[Role::Sdr]);
    let req = pb::SubmitOpportunityRequest { opportunity: Some(opportunity("opp-1")), request_id: "s-1".into() };
    let e = c.submit_opportunity(authed(req, &sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.get_error_details().retry_info().is_some());
    let list = c.list_opportunities(authed(pb::ListOpportunitiesRequest::default(), &sdr)).await.unwrap().into_inner();
    assert!(list.opportunities.is_empty());
}
