//! The data several tests start from, made through the public API by a
//! tenant's people ([`Tokens`]): account `acc-1` with verified contacts, a
//! lead walked to SQL, opportunities that pass the SMB default gate. Each
//! call must succeed: a fixture that fails panics with the refusal.

use prost_types::Timestamp;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::common::{BuyingRole, Criterion, EvidenceStatus, LeadSource, Money, Segment};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use tonic::transport::Channel;

use crate::{Tokens, authed};

/// The account of the fixtures.
pub const ACCOUNT: &str = "acc-1";
/// The lead [`sql_lead`] walks to SQL and [`opportunity`] comes from.
pub const LEAD: &str = "lead-1";

/// Now plus `days` (negative: in the past), in whole seconds.
pub fn ts(days: f64) -> Option<Timestamp> {
    let now = qualify_platform::Clock::system().now().timestamp();
    Some(Timestamp { seconds: now + (days * 86_400.0) as i64, nanos: 0 })
}

/// The provider the fixtures' verifier reports.
pub const PROVIDER: &str = "zerobounce";

/// The verifier records that `provider` verified the emails of `contacts`
/// `days_ago` days ago; each finding must be applied.
pub async fn verify_emails(
    s: &mut LeadScoringServiceClient<Channel>,
    people: &Tokens,
    contacts: &[&str],
    days_ago: f64,
) {
    let verifications = contacts
        .iter()
        .map(|id| sc::ContactVerification {
            contact_id: id.to_string(),
            channel: sc::ContactChannel::Email as i32,
            status: sc::VerificationStatus::Verified as i32,
            provider: PROVIDER.into(),
            verify_time: ts(-days_ago),
        })
        .collect();
    let req = sc::RecordContactVerificationsRequest { verifications, request_id: String::new() };
    let got =
        s.record_contact_verifications(authed(req, &people.verifier)).await.expect("the verifier's feed is taken");
    assert_eq!(got.into_inner().applied_count as usize, contacts.len(), "every fixture finding is applied");
}

/// Creates account `acc-1` (SMB) with two contacts whose email a provider
/// verified three days ago, as the verifier's feed recorded: `c-eb`, the
/// economic buyer, and `c-ch`, the champion.
pub async fn account_with_verified_contacts(s: &mut LeadScoringServiceClient<Channel>, people: &Tokens) {
    let account = sc::Account {
        account_id: ACCOUNT.into(),
        display_name: "Acme".into(),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &people.sync))
        .await
        .expect("the fixture account is created");
    for (id, role) in [("c-eb", BuyingRole::EconomicBuyer), ("c-ch", BuyingRole::Champion)] {
        let contact = sc::Contact {
            contact_id: id.into(),
            account_id: ACCOUNT.into(),
            full_name: id.into(),
            buying_role: role as i32,
            email: format!("{id}@acme.test"),
            ..Default::default()
        };
        let req = sc::CreateContactRequest { contact: Some(contact), ..Default::default() };
        s.create_contact(authed(req, &people.sync)).await.expect("the fixture contacts are created");
    }
    verify_emails(s, people, &["c-eb", "c-ch"], 3.0).await;
}

/// An inbound lead of `acc-1` from `campaign`, owned by `sam` (the SDR), whose
/// contact is `c-eb`.
pub fn lead(id: &str, campaign: &str) -> sc::Lead {
    sc::Lead {
        lead_id: id.into(),
        account_id: ACCOUNT.into(),
        source: LeadSource::Inbound as i32,
        campaign: campaign.into(),
        owner_sdr: "sam".into(),
        contact_id: "c-eb".into(),
        ..Default::default()
    }
}

/// The SDR accepts lead `id`, then qualifies it to SQL after a discovery call
/// that heard `pain`.
pub async fn walk_to_sql(s: &mut LeadScoringServiceClient<Channel>, people: &Tokens, id: &str, pain: &str) {
    let accept = sc::AcceptLeadRequest { lead_id: id.into(), request_id: String::new() };
    s.accept_lead(authed(accept, &people.sdr)).await.expect("the SDR accepts the lead");
    let qualify = sc::QualifyLeadRequest {
        lead_id: id.into(),
        discovery_call_held: true,
        pain_statement: pain.into(),
        request_id: String::new(),
    };
    s.qualify_lead(authed(qualify, &people.sdr)).await.expect("the SDR qualifies the lead");
}

/// [`account_with_verified_contacts`], then `lead-1` of campaign `q4-webinar`
/// created by the CRM sync and walked to SQL.
pub async fn sql_lead(s: &mut LeadScoringServiceClient<Channel>, people: &Tokens) {
    account_with_verified_contacts(s, people).await;
    another_sql_lead(s, people, LEAD).await;
}

/// Lead `id` of `acc-1` (campaign `q4-webinar`) created by the CRM sync and
/// walked to SQL: a lead carries one live opportunity, so each further
/// ordinary opportunity of a test needs a lead of its own.
pub async fn another_sql_lead(s: &mut LeadScoringServiceClient<Channel>, people: &Tokens, id: &str) {
    let req = sc::CreateLeadRequest { lead: Some(lead(id, "q4-webinar")), ..Default::default() };
    s.create_lead(authed(req, &people.sync)).await.expect("the fixture lead is created");
    walk_to_sql(s, people, id, "close takes 9 days").await;
}

/// [`opportunity`] `id` of lead `lead_id`.
pub fn opportunity_of(id: &str, lead_id: &str) -> acc::Opportunity {
    acc::Opportunity { lead_id: lead_id.into(), ..opportunity(id) }
}

/// An opportunity of `lead-1` (USD 24,000, team `emea-smb`) that passes the
/// SMB default gate: BANT confirmed, the economic buyer and the champion
/// mapped with fresh data, a demo in three days.
pub fn opportunity(id: &str) -> acc::Opportunity {
    acc::Opportunity {
        opportunity_id: id.into(),
        lead_id: LEAD.into(),
        amount: Some(Money { amount_minor: 2_400_000, currency_code: "USD".into() }),
        expected_close_time: ts(60.0),
        segment: Segment::Smb as i32,
        evidence: [Criterion::Budget, Criterion::Authority, Criterion::Need, Criterion::Timeline]
            .map(|c| acc::CriterionEvidence {
                criterion: c as i32,
                status: EvidenceStatus::Confirmed as i32,
                note: "heard on the call".into(),
                confirmed_by: "sam".into(),
            })
            .to_vec(),
        stakeholders: vec![
            // The submitter's claimed verification times are replaced by lead scoring's.
            acc::Stakeholder { contact_id: "c-eb".into(), role: BuyingRole::EconomicBuyer as i32, verify_time: None },
            acc::Stakeholder { contact_id: "c-ch".into(), role: BuyingRole::Champion as i32, verify_time: None },
        ],
        competitors: vec!["Globex".into()],
        next_step: Some(acc::NextStep {
            description: "demo".into(),
            scheduled_time: ts(3.0),
            r#type: acc::ActivityType::Demo as i32,
        }),
        team: "emea-smb".into(),
        ..Default::default()
    }
}

/// The SDR submits `o`, which must be stored.
pub async fn submit(
    a: &mut OpportunityAcceptanceServiceClient<Channel>,
    people: &Tokens,
    o: acc::Opportunity,
) -> acc::SubmitOpportunityResponse {
    let req = acc::SubmitOpportunityRequest { opportunity: Some(o), request_id: String::new() };
    a.submit_opportunity(authed(req, &people.sdr)).await.expect("the SDR submits the opportunity").into_inner()
}
