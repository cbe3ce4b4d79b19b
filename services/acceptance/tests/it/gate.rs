//! Gate policies and gate evaluation through the generated client, on SQLite
//! and on the machine's PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use prost_types::Timestamp;
use qualify_acceptance::Acceptance;
use qualify_proto::acceptance::{
    self as pb, GateCheckCode, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::common::{BuyingRole, Criterion, EvidenceStatus, Framework, Segment};
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Client = OpportunityAcceptanceServiceClient<Channel>;

async fn start(backend: Backend) -> (qualify_testkit::Running, Client) {
    let running = spawn::<Acceptance>(config("acceptance", backend).await).await;
    let client = OpportunityAcceptanceServiceClient::new(running.channel().await);
    (running, client)
}

fn at(days_from_now: i64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Some(Timestamp { seconds: now + days_from_now * 86_400, nanos: 0 })
}

fn bant_policy() -> pb::GatePolicy {
    pb::GatePolicy {
        segment: Segment::Smb as i32,
        framework: Framework::Bant as i32,
        required_criteria: vec![Criterion::Budget as i32, Criterion::Need as i32],
        require_economic_buyer: true,
        require_champion: false,
        min_stakeholders: 1,
        require_next_step: true,
        contact_max_age_days: 30,
        min_score: 40,
        ..Default::default()
    }
}

fn candidate() -> pb::GateCandidate {
    let confirmed = |c: Criterion| pb::CriterionEvidence {
        criterion: c as i32,
        status: EvidenceStatus::Confirmed as i32,
        note: "said so on the discovery call".into(),
        confirmed_by: "sam".into(),
    };
    pb::GateCandidate {
        segment: Segment::Smb as i32,
        evidence: vec![confirmed(Criterion::Budget), confirmed(Criterion::Need)],
        stakeholders: vec![pb::Stakeholder {
            contact_id: "c-1".into(),
            role: BuyingRole::EconomicBuyer as i32,
            verify_time: at(-3),
        }],
        next_step: Some(pb::NextStep { description: "demo".into(), scheduled_time: at(2), r#type: 0 }),
        score: 55,
    }
}

on_both_backends!(
    policies_default_per_segment_and_version_on_update,
    only_revops_and_managers_change_policies,
    evaluation_reports_every_check,
    malformed_candidates_name_their_fields,
    policies_are_per_tenant,
);

async fn policies_default_per_segment_and_version_on_update(b: Backend) {
    let (_s, mut c) = start(b).await;
    let revops = token("acme", "rita", &[Role::Revops]);
    let got = c
        .get_gate_policy(authed(
            pb::GetGatePolicyRequest { segment: Segment::Enterprise as i32, version: None },
            &revops,
        ))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!((got.framework, got.version), (Framework::Meddpicc as i32, 0));
    assert_eq!(got.required_criteria.len(), 5);

    let req =
        pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), expected_version: 0, request_id: "p-1".into() };
    let v1 = c.update_gate_policy(authed(req.clone(), &revops)).await.unwrap().into_inner().policy.unwrap();
    assert_eq!(v1.version, 1);
    // A retry returns the first answer and does not bump the version.
    let again = c.update_gate_policy(authed(req, &revops)).await.unwrap().into_inner().policy.unwrap();
    assert_eq!(again, v1);
    let v2 = c
        .update_gate_policy(authed(
            pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), expected_version: 1, request_id: String::new() },
            &revops,
        ))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(v2.version, 2);
    let stale = c
        .update_gate_policy(authed(
            pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), expected_version: 1, request_id: String::new() },
            &revops,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
}

async fn only_revops_and_managers_change_policies(b: Backend) {
    let (_s, mut c) = start(b).await;
    for (roles, allowed) in [
        (&[Role::Sdr][..], false),
        (&[Role::Ae], false),
        (&[Role::Service], false),
        (&[Role::Revops, Role::Service], false),
        (&[Role::Revops], true),
        (&[Role::Manager], true),
    ] {
        let t = token("acme", "someone", roles);
        let r = c
            .update_gate_policy(authed(
                pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), ..Default::default() },
                &t,
            ))
            .await;
        match allowed {
            true => assert!(r.is_ok(), "{roles:?}: {r:?}"),
            false => assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "{roles:?}"),
        }
    }
}

async fn evaluation_reports_every_check(b: Backend) {
    let (_s, mut c) = start(b).await;
    let revops = token("acme", "rita", &[Role::Revops]);
    let sdr = token("acme", "sam", &[Role::Sdr]);
    c.update_gate_policy(authed(
        pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), ..Default::default() },
        &revops,
    ))
    .await
    .unwrap();
    let ok = c
        .evaluate_gate(authed(pb::EvaluateGateRequest { candidate: Some(candidate()) }, &sdr))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.passed, "{:?}", ok.checks);
    assert_eq!(ok.policy_version, 1);
    // Budget, Need, economic buyer, buying group, next step, contacts, score.
    assert_eq!(ok.checks.len(), 7);

    let weak = pb::GateCandidate {
        evidence: vec![],
        stakeholders: vec![],
        next_step: Some(pb::NextStep { description: "circle back".into(), scheduled_time: at(-1), r#type: 0 }),
        score: 10,
        ..candidate()
    };
    let r =
        c.evaluate_gate(authed(pb::EvaluateGateRequest { candidate: Some(weak) }, &sdr)).await.unwrap().into_inner();
    assert!(!r.passed);
    let failed: Vec<_> = r.checks.iter().filter(|k| !k.passed).map(|k| (k.code, k.criterion)).collect();
    assert_eq!(
        failed,
        vec![
            (GateCheckCode::CriterionNotConfirmed as i32, Criterion::Budget as i32),
            (GateCheckCode::CriterionNotConfirmed as i32, Criterion::Need as i32),
            (GateCheckCode::EconomicBuyerMissing as i32, 0),
            (GateCheckCode::BuyingGroupTooSmall as i32, 0),
            (GateCheckCode::NextStepMissing as i32, 0),
            (GateCheckCode::ContactDataStale as i32, 0),
            (GateCheckCode::ScoreBelowFloor as i32, 0),
        ]
    );
}

async fn malformed_candidates_name_their_fields(b: Backend) {
    let (_s, mut c) = start(b).await;
    let sdr = token("acme", "sam", &[Role::Sdr]);
    let mut bad = candidate();
    bad.segment = 0;
    bad.evidence[1].status = 99;
    bad.stakeholders[0].verify_time = Some(Timestamp { seconds: 0, nanos: -5 });
    let e = c.evaluate_gate(authed(pb::EvaluateGateRequest { candidate: Some(bad) }, &sdr)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["candidate.segment", "candidate.evidence[1].status", "candidate.stakeholders[0].verify_time"]);
    let revops = token("acme", "rita", &[Role::Revops]);
    let mut p = bant_policy();
    p.required_criteria = vec![Criterion::Champion as i32];
    let e = c
        .update_gate_policy(authed(pb::UpdateGatePolicyRequest { policy: Some(p), ..Default::default() }, &revops))
        .await
        .unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "policy.required_criteria[0]");
    let got = c
        .get_gate_policy(authed(pb::GetGatePolicyRequest { segment: Segment::Smb as i32, version: None }, &revops))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.policy.unwrap().version, 0, "a refused update changes nothing");
}

async fn policies_are_per_tenant(b: Backend) {
    let (_s, mut c) = start(b).await;
    let acme = token("acme", "rita", &[Role::Revops]);
    let globex = token("globex", "gus", &[Role::Revops]);
    c.update_gate_policy(authed(
        pb::UpdateGatePolicyRequest { policy: Some(bant_policy()), ..Default::default() },
        &acme,
    ))
    .await
    .unwrap();
    let theirs = c
        .get_gate_policy(authed(pb::GetGatePolicyRequest { segment: Segment::Smb as i32, version: None }, &globex))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!((theirs.version, theirs.min_score), (0, 0), "globex sees the default, not acme's policy");
}
