#![allow(dead_code, clippy::unwrap_used)]
//! What the acceptance tests share: lead scoring with a lead at SQL, and
//! acceptance calling it.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;
use qualify_acceptance::Acceptance;
use qualify_proto::acceptance::{
    self as pb, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient as Client,
};
use qualify_proto::common::{BuyingRole, Criterion, EvidenceStatus, LeadSource, Money, Segment};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, Running, authed, config, spawn, token};
use tonic::transport::Channel;

pub fn ts(days: f64) -> Option<Timestamp> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    Some(Timestamp { seconds: now + (days * 86_400.0) as i64, nanos: 0 })
}

pub struct World {
    pub scoring: Running,
    pub acceptance: Running,
    pub c: Client<Channel>,
    pub sdr: String,
    pub ae: String,
}

/// Lead scoring with lead-1 at SQL and two verified contacts (economic buyer,
/// champion), and acceptance calling it.
pub async fn world(b: Backend) -> World {
    let scoring = spawn::<Scoring>(config("scoring", b).await).await;
    let mut s = LeadScoringServiceClient::new(scoring.channel().await);
    let bot = token("acme", "sync", &[Role::Service]);
    let sdr = token("acme", "sam", &[Role::Sdr]);
    let account = sc::Account {
        account_id: "acc-1".into(),
        display_name: "Acme".into(),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &bot))
        .await
        .unwrap();
    for (id, role) in [("c-eb", BuyingRole::EconomicBuyer), ("c-ch", BuyingRole::Champion)] {
        let contact = sc::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            full_name: id.into(),
            buying_role: role as i32,
            email: format!("{id}@acme.test"),
            email_status: sc::VerificationStatus::Verified as i32,
            email_verify_time: ts(-3.0),
            ..Default::default()
        };
        s.create_contact(authed(sc::CreateContactRequest { contact: Some(contact), ..Default::default() }, &bot))
            .await
            .unwrap();
    }
    let lead = sc::Lead {
        lead_id: "lead-1".into(),
        account_id: "acc-1".into(),
        source: LeadSource::Inbound as i32,
        campaign: "q4-webinar".into(),
        owner_sdr: "sam".into(),
        contact_id: "c-eb".into(),
        ..Default::default()
    };
    s.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &bot)).await.unwrap();
    s.accept_lead(authed(sc::AcceptLeadRequest { lead_id: "lead-1".into(), request_id: String::new() }, &sdr))
        .await
        .unwrap();
    let q = sc::QualifyLeadRequest {
        lead_id: "lead-1".into(),
        discovery_call_held: true,
        pain_statement: "close takes 9 days".into(),
        request_id: String::new(),
    };
    s.qualify_lead(authed(q, &sdr)).await.unwrap();

    let mut cfg = config("acceptance", b).await;
    cfg.scoring_url = Some(scoring.url());
    let acceptance = spawn::<Acceptance>(cfg).await;
    let c = Client::new(acceptance.channel().await);
    World { scoring, acceptance, c, sdr, ae: token("acme", "alex", &[Role::Ae]) }
}

/// An opportunity that passes the SMB default gate (BANT confirmed, economic
/// buyer and champion mapped with fresh data, a demo in three days).
pub fn opportunity(id: &str) -> pb::Opportunity {
    pb::Opportunity {
        opportunity_id: id.into(),
        lead_id: "lead-1".into(),
        amount: Some(Money { amount_minor: 2_400_000, currency_code: "USD".into() }),
        expected_close_time: ts(60.0),
        segment: Segment::Smb as i32,
        evidence: [Criterion::Budget, Criterion::Authority, Criterion::Need, Criterion::Timeline]
            .map(|c| pb::CriterionEvidence {
                criterion: c as i32,
                status: EvidenceStatus::Confirmed as i32,
                note: "heard on the call".into(),
                confirmed_by: "sam".into(),
            })
            .to_vec(),
        stakeholders: vec![
            // The submitter's claimed verification times are replaced by lead scoring's.
            pb::Stakeholder { contact_id: "c-eb".into(), role: BuyingRole::EconomicBuyer as i32, verify_time: None },
            pb::Stakeholder { contact_id: "c-ch".into(), role: BuyingRole::Champion as i32, verify_time: None },
        ],
        competitors: vec!["Globex".into()],
        next_step: Some(pb::NextStep {
            description: "demo".into(),
            scheduled_time: ts(3.0),
            r#type: pb::ActivityType::Demo as i32,
        }),
        team: "emea-smb".into(),
        ..Default::default()
    }
}

impl World {
    pub async fn submit(&mut self, o: pb::Opportunity) -> pb::SubmitOpportunityResponse {
        let req = pb::SubmitOpportunityRequest { opportunity: Some(o), request_id: String::new() };
        self.c.submit_opportunity(authed(req, &self.sdr)).await.unwrap().into_inner()
    }

    pub async fn accept(
        &mut self,
        id: &str,
        t: &str,
        justification: &str,
    ) -> Result<pb::AcceptOpportunityResponse, tonic::Status> {
        let req = pb::AcceptOpportunityRequest {
            opportunity_id: id.into(),
            override_justification: justification.into(),
            ..Default::default()
        };
        self.c.accept_opportunity(authed(req, t)).await.map(|r| r.into_inner())
    }

    pub async fn decisions(&mut self, id: &str) -> Vec<pb::Decision> {
        let req = pb::ListDecisionsRequest { opportunity_id: id.into() };
        self.c.list_decisions(authed(req, &self.ae)).await.unwrap().into_inner().decisions
    }
}
