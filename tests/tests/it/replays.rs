//! Every mutating RPC of the cluster (each one whose request carries a
//! `request_id`, found in the contract itself) is sent twice with the same
//! request: the retry returns the first answer and changes nothing (versions,
//! stage history, decisions, activities, quotas counted once). A new mutating
//! RPC without a replay here fails the test. Against the machine's PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::collections::BTreeSet;

use prost_reflect::DescriptorPool;
use qualify_proto::acceptance as acc;
use qualify_proto::common::{BuyingRole, Criterion, Framework, LeadSource, Money, Segment};
use qualify_proto::metrics as mt;
use qualify_proto::scoring as sc;
use qualify_testkit::fixtures::{opportunity, ts};
use qualify_testkit::{Backend, Clients, Cluster, Tokens, authed, impostor};

/// Sends `$req` twice through `$client.$method` as `$token`; asserts the answers are equal and
/// records the RPC as replayed; then once more as another subject with the same roles, which is
/// refused: a key belongs to its caller. Evaluates to the answer.
macro_rules! twice {
    ($seen:ident, $client:ident . $method:ident, $name:literal, $req:expr, $token:expr) => {{
        let req = $req;
        let first = $client.$method(authed(req.clone(), $token)).await.unwrap().into_inner();
        let again = $client.$method(authed(req.clone(), $token)).await.unwrap().into_inner();
        assert_eq!(first, again, "{}: a retry returns the first answer", $name);
        let stolen = $client.$method(authed(req, &impostor($token, "mallory"))).await;
        assert!(stolen.is_err(), "{}: another subject replaying the key gets nothing: {stolen:?}", $name);
        $seen.insert($name.to_string());
        first
    }};
}

#[tokio::test]
async fn every_mutating_rpc_replayed_with_its_request_id_changes_nothing() {
    let cluster = Cluster::start(Backend::Postgres).await;
    let Clients { scoring: mut s, acceptance: mut a, metrics: mut m } = cluster.clients.clone();
    let Tokens { sync: bot, sdr, ae, revops, verifier, .. } = cluster.acme.clone();
    let mut seen = BTreeSet::new();

    // Lead scoring.
    let account = sc::Account {
        account_id: "acc-1".into(),
        display_name: "Acme".into(),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    twice!(
        seen,
        s.create_account,
        "CreateAccount",
        sc::CreateAccountRequest { account: Some(account.clone()), request_id: "r-1".into() },
        &bot
    );
    let renamed = sc::Account { display_name: "Acme Corp".into(), ..account };
    let updated = twice!(
        seen,
        s.update_account,
        "UpdateAccount",
        sc::UpdateAccountRequest { account: Some(renamed), request_id: "r-2".into(), ..Default::default() },
        &bot
    );
    let stored = s.get_account(authed(sc::GetAccountRequest { account_id: "acc-1".into() }, &bot)).await.unwrap();
    assert_eq!(stored.into_inner().account, updated.account, "one update, one version");
    for (id, role) in [("c-eb", BuyingRole::EconomicBuyer), ("c-ch", BuyingRole::Champion)] {
        let contact = sc::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            full_name: id.into(),
            buying_role: role as i32,
            email: format!("{id}@acme.test"),
            ..Default::default()
        };
        twice!(
            seen,
            s.create_contact,
            "CreateContact",
            sc::CreateContactRequest { contact: Some(contact.clone()), request_id: format!("r-3-{id}") },
            &bot
        );
        let titled = sc::Contact { title: "VP Finance".into(), ..contact };
        twice!(
            seen,
            s.update_contact,
            "UpdateContact",
            sc::UpdateContactRequest { contact: Some(titled), request_id: format!("r-4-{id}"), ..Default::default() },
            &bot
        );
    }
    let finding = |id: &str| sc::ContactVerification {
        contact_id: id.into(),
        channel: sc::ContactChannel::Email as i32,
        status: sc::VerificationStatus::Verified as i32,
        provider: "zerobounce".into(),
        verify_time: ts(-2.0),
    };
    let feed = sc::RecordContactVerificationsRequest {
        verifications: vec![finding("c-eb"), finding("c-ch")],
        request_id: "r-4-feed".into(),
    };
    let fed = twice!(seen, s.record_contact_verifications, "RecordContactVerifications", feed, &verifier);
    assert_eq!(fed.applied_count, 2, "the feed applied once: {fed:?}");
    let eb = s.get_contact(authed(sc::GetContactRequest { contact_id: "c-eb".into() }, &bot)).await.unwrap();
    assert_eq!(eb.into_inner().contact.unwrap().etag, "3", "created, updated, verified: one version each");
    let bands =
        sc::GradeBands { fit_a: 60, fit_b: 40, fit_c: 20, engagement_1: 60, engagement_2: 30, engagement_3: 10 };
    let card = sc::Scorecard { mql_threshold: 1000, grade_bands: Some(bands), ..Default::default() };
    let published = twice!(
        seen,
        s.publish_scorecard,
        "PublishScorecard",
        sc::PublishScorecardRequest { scorecard: Some(card), request_id: "r-5".into(), ..Default::default() },
        &revops
    );
    assert_eq!(published.scorecard.unwrap().version, 1);
    let versions = s.list_scorecards(authed(sc::ListScorecardsRequest::default(), &revops)).await.unwrap();
    assert_eq!(versions.into_inner().scorecards.len(), 1, "one publish, one version");
    for id in ["lead-1", "lead-2"] {
        let lead = sc::Lead {
            lead_id: id.into(),
            account_id: "acc-1".into(),
            source: LeadSource::Inbound as i32,
            owner_sdr: "sam".into(),
            contact_id: "c-eb".into(),
            ..Default::default()
        };
        twice!(
            seen,
            s.create_lead,
            "CreateLead",
            sc::CreateLeadRequest { lead: Some(lead), request_id: format!("r-6-{id}") },
            &bot
        );
        twice!(
            seen,
            s.accept_lead,
            "AcceptLead",
            sc::AcceptLeadRequest { lead_id: id.into(), request_id: format!("r-7-{id}") },
            &sdr
        );
    }
    let q = sc::QualifyLeadRequest {
        lead_id: "lead-1".into(),
        discovery_call_held: true,
        pain_statement: "close takes nine days".into(),
        request_id: "r-8".into(),
    };
    twice!(seen, s.qualify_lead, "QualifyLead", q, &sdr);
    twice!(
        seen,
        s.disqualify_lead,
        "DisqualifyLead",
        sc::DisqualifyLeadRequest {
            lead_id: "lead-2".into(),
            reason: "no budget this year".into(),
            request_id: "r-9".into()
        },
        &sdr
    );
    twice!(
        seen,
        s.recycle_lead,
        "RecycleLead",
        sc::RecycleLeadRequest {
            lead_id: "lead-2".into(),
            reason: "budget next year".into(),
            request_id: "r-10".into()
        },
        &sdr
    );
    let moves = s
        .list_lead_stage_changes(authed(
            sc::ListLeadStageChangesRequest { lead_id: "lead-2".into(), ..Default::default() },
            &sdr,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moves.stage_changes.len(), 3, "accept, disqualify, recycle: each once");

    // Opportunity acceptance.
    let policy = acc::GatePolicy {
        segment: Segment::Smb as i32,
        framework: Framework::Bant as i32,
        required_criteria: vec![Criterion::Budget as i32, Criterion::Need as i32],
        require_economic_buyer: true,
        min_stakeholders: 1,
        require_next_step: true,
        contact_max_age_days: 30,
        ..Default::default()
    };
    twice!(
        seen,
        a.update_gate_policy,
        "UpdateGatePolicy",
        acc::UpdateGatePolicyRequest { policy: Some(policy), request_id: "r-11".into(), ..Default::default() },
        &revops
    );
    // The fixture opportunity with the economic buyer alone, for team emea.
    let template = opportunity("");
    let (evidence, next) = (template.evidence.clone(), template.next_step.clone().unwrap());
    let stakeholders =
        vec![acc::Stakeholder { contact_id: "c-eb".into(), role: BuyingRole::EconomicBuyer as i32, verify_time: None }];
    let opportunity = |id: &str| acc::Opportunity {
        opportunity_id: id.into(),
        stakeholders: stakeholders.clone(),
        competitors: vec![],
        team: "emea".into(),
        ..template.clone()
    };
    twice!(
        seen,
        a.submit_opportunity,
        "SubmitOpportunity",
        acc::SubmitOpportunityRequest { opportunity: Some(opportunity("opp-1")), request_id: "r-12".into() },
        &sdr
    );
    twice!(
        seen,
        a.send_back_opportunity,
        "SendBackOpportunity",
        acc::SendBackOpportunityRequest {
            opportunity_id: "opp-1".into(),
            note: "name the champion".into(),
            request_id: "r-13".into(),
            ..Default::default()
        },
        &ae
    );
    let resubmit = acc::ResubmitOpportunityRequest {
        opportunity_id: "opp-1".into(),
        evidence: evidence.clone(),
        stakeholders: stakeholders.clone(),
        next_step: Some(next.clone()),
        request_id: "r-14".into(),
        ..Default::default()
    };
    twice!(seen, a.resubmit_opportunity, "ResubmitOpportunity", resubmit, &sdr);
    twice!(
        seen,
        a.accept_opportunity,
        "AcceptOpportunity",
        acc::AcceptOpportunityRequest {
            opportunity_id: "opp-1".into(),
            request_id: "r-15".into(),
            ..Default::default()
        },
        &ae
    );
    let activity = acc::Activity {
        activity_id: "call-1".into(),
        r#type: acc::ActivityType::Call as i32,
        meaningful: true,
        occur_time: ts(0.0),
        ..Default::default()
    };
    twice!(
        seen,
        a.record_activity,
        "RecordActivity",
        acc::RecordActivityRequest {
            opportunity_id: "opp-1".into(),
            activity: Some(activity),
            request_id: "r-16".into()
        },
        &ae
    );
    let advanced = twice!(
        seen,
        a.advance_opportunity,
        "AdvanceOpportunity",
        acc::AdvanceOpportunityRequest {
            opportunity_id: "opp-1".into(),
            request_id: "r-17".into(),
            ..Default::default()
        },
        &ae
    );
    assert_eq!(advanced.opportunity.unwrap().state, acc::OpportunityState::Proposal as i32, "advanced once, not twice");
    let close = acc::CloseOpportunityRequest {
        opportunity_id: "opp-1".into(),
        won: true,
        amount: Some(Money { amount_minor: 2_400_000, currency_code: "USD".into() }),
        reason: "signed".into(),
        request_id: "r-18".into(),
        ..Default::default()
    };
    twice!(seen, a.close_opportunity, "CloseOpportunity", close, &ae);
    let decisions =
        a.list_decisions(authed(acc::ListDecisionsRequest { opportunity_id: "opp-1".into() }, &ae)).await.unwrap();
    assert_eq!(decisions.into_inner().decisions.len(), 2, "send back and accept: each audited once");
    twice!(
        seen,
        a.submit_opportunity,
        "SubmitOpportunity",
        acc::SubmitOpportunityRequest {
            // lead-1 is a customer now: a second deal for it is an expansion.
            opportunity: Some(acc::Opportunity {
                expansion_reason: "the EMEA team buys its own seats".into(),
                ..opportunity("opp-2")
            }),
            request_id: "r-19".into()
        },
        &sdr
    );
    twice!(
        seen,
        a.reject_opportunity,
        "RejectOpportunity",
        acc::RejectOpportunityRequest {
            opportunity_id: "opp-2".into(),
            reason: acc::RejectionReason::NoBudget as i32,
            request_id: "r-20".into(),
            ..Default::default()
        },
        &ae
    );
    let decisions =
        a.list_decisions(authed(acc::ListDecisionsRequest { opportunity_id: "opp-2".into() }, &ae)).await.unwrap();
    assert_eq!(decisions.into_inner().decisions.len(), 1);

    // Metrics.
    let quota = mt::Quota {
        owner_kind: mt::QuotaOwnerKind::Team as i32,
        owner_id: "emea".into(),
        period: "2026-01".into(),
        amount: Some(Money { amount_minor: 10_000_000, currency_code: "USD".into() }),
        update_time: None,
    };
    twice!(
        seen,
        m.update_quota,
        "UpdateQuota",
        mt::UpdateQuotaRequest { quota: Some(quota), request_id: "r-21".into() },
        &revops
    );
    let quotas = m
        .list_quotas(authed(mt::ListQuotasRequest { period: "2026-01".into(), ..Default::default() }, &revops))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quotas.quotas.len(), 1);
    let reporting = twice!(
        seen,
        m.set_reporting_currency,
        "SetReportingCurrency",
        mt::SetReportingCurrencyRequest { currency_code: "EUR".into(), request_id: "r-22".into() },
        &revops
    );
    assert_eq!(reporting.currency_code, "EUR");
    let rates = mt::SetExchangeRatesRequest {
        period: "2026-01".into(),
        rates: vec![mt::ExchangeRate { currency_code: "USD".into(), rate: "0.92".into() }],
        request_id: "r-23".into(),
    };
    let set = twice!(seen, m.set_exchange_rates, "SetExchangeRates", rates, &revops);
    assert_eq!((set.reporting_currency_code.as_str(), set.rates.len()), ("EUR", 1));

    // Every mutating RPC of the contract was replayed above.
    let pool = DescriptorPool::decode(qualify_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mutating: BTreeSet<String> = pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| m.input().get_field_by_name("request_id").is_some())
        .map(|m| m.name().to_string())
        .collect();
    let missing: Vec<_> = mutating.difference(&seen).collect();
    assert!(missing.is_empty(), "mutating RPCs without a replay check: {missing:?}");
}
