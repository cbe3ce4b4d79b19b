//! The client of lead scoring: snapshots of a lead and its contacts, taken on
//! the caller's behalf (in its tenant, with the pod's service-account token
//! on Kubernetes or the caller's own token in the embedded cluster), with short deadlines,
//! answered in domain types (`crate::opportunities::LeadScoring`).
//! Calls carry the caller's trace context and are retried with backoff when
//! lead scoring is briefly unavailable (they only read). A dependency that
//! stays down is UNAVAILABLE with retry advice: the caller retries the whole
//! submission, which stored nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use qualify_domain::{LeadSource, LeadStage};
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::{Credentials, OnBehalf};
use qualify_platform::client::{ServiceChannel, service_channel};
use qualify_platform::resilience::retry_idempotent;
use qualify_platform::tls::ClientTls;
use qualify_proto::convert::{WireEnum, from_timestamp};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use tonic::{Code, Status};

use crate::opportunities::{LeadScoring, ScoredLead};

const DEPENDENCY: &str = "lead scoring";

/// A lazily connected client; `None` when no endpoint is configured.
#[derive(Clone)]
pub struct ScoringClient {
    channel: Option<ServiceChannel>,
    credentials: Credentials,
}

impl ScoringClient {
    /// A client of `url` (connected on first use), calling with `credentials`, over TLS with `tls`
    /// when `url` is `https://`.
    pub fn new(url: Option<&str>, credentials: Credentials, tls: &ClientTls) -> anyhow::Result<Self> {
        let channel = url.map(|u| service_channel(u, Some(Duration::from_secs(3)), tls)).transpose()?;
        Ok(ScoringClient { channel, credentials })
    }

    fn request<T>(&self, message: T, on: &OnBehalf) -> Result<tonic::Request<T>, Status> {
        let mut r = tonic::Request::new(message);
        self.credentials.on_behalf(&mut r, on).map_err(|e| Status::internal(format!("{e}")))?;
        Ok(r)
    }

    fn client(&self) -> Result<LeadScoringServiceClient<ServiceChannel>, ApiError> {
        self.channel.clone().map(LeadScoringServiceClient::new).ok_or(ApiError::Unavailable { dependency: DEPENDENCY })
    }
}

impl LeadScoring for ScoringClient {
    async fn lead(&self, on: &OnBehalf, lead_id: &str) -> Result<ScoredLead, ApiError> {
        let client = self.client()?;
        let lead = retry_idempotent(|| {
            let mut c = client.clone();
            let req = self.request(sc::GetLeadRequest { lead_id: lead_id.to_string() }, on);
            async move { c.get_lead(req?).await }
        })
        .await
        .map_err(|s| map_status(s, "lead", lead_id))?;
        let lead = lead
            .into_inner()
            .lead
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("lead scoring returned no lead")))?;
        let score = lead.score.as_ref();
        Ok(ScoredLead {
            stage: LeadStage::from_wire(lead.stage),
            score: score.map_or(0, |s| s.total),
            scorecard_version: score.map_or(0, |s| s.scorecard_version),
            source: LeadSource::from_wire(lead.source),
            campaign: lead.campaign,
        })
    }

    async fn contacts_verified_at(
        &self,
        on: &OnBehalf,
        contact_ids: &[String],
    ) -> Result<Vec<Option<DateTime<Utc>>>, ApiError> {
        if contact_ids.is_empty() {
            return Ok(vec![]);
        }
        let client = self.client()?;
        let got = retry_idempotent(|| {
            let mut c = client.clone();
            let req = self.request(sc::BatchGetContactsRequest { contact_ids: contact_ids.to_vec() }, on);
            async move { c.batch_get_contacts(req?).await }
        })
        .await
        .map_err(|s| {
            let id = missing_contact(&s, contact_ids);
            map_status(s, "contact", &id)
        })?;
        Ok(got.into_inner().contacts.iter().map(verified_at).collect())
    }
}

/// The contact a NOT_FOUND names (lead scoring says which), else the first asked.
fn missing_contact(s: &Status, asked: &[String]) -> String {
    asked.iter().find(|id| s.message().contains(id.as_str())).or(asked.first()).cloned().unwrap_or_default()
}

/// When a provider last verified the contact's data, as a verifier recorded
/// it: a self-reported verification (no provider) is never trusted.
fn verified_at(c: &sc::Contact) -> Option<DateTime<Utc>> {
    let trusted = |status: i32, provider: &str, at: &Option<prost_types::Timestamp>| {
        let verified = status == sc::VerificationStatus::Verified as i32 && !provider.is_empty();
        verified.then(|| at.as_ref().and_then(from_timestamp)).flatten()
    };
    let email = trusted(c.email_status, &c.email_verify_provider, &c.email_verify_time);
    let phone = trusted(c.phone_status, &c.phone_verify_provider, &c.phone_verify_time);
    email.max(phone)
}

fn map_status(s: Status, kind: &'static str, id: &str) -> ApiError {
    match s.code() {
        Code::NotFound => ApiError::NotFound { kind, id: id.to_string() },
        Code::PermissionDenied => ApiError::forbidden("SCORING_REFUSED", s.message().to_string()),
        // This service's own credentials were refused (an unmapped service account, a token
        // file gone stale): a deployment fault the caller cannot fix, and no retry will either.
        Code::Unauthenticated => {
            tracing::error!(message = s.message(), "lead scoring refused this service's credentials");
            ApiError::Unavailable { dependency: DEPENDENCY }
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::ResourceExhausted => {
            tracing::warn!(code = ?s.code(), message = s.message(), "lead scoring did not answer");
            ApiError::Unavailable { dependency: DEPENDENCY }
        }
        _ => ApiError::Internal(anyhow::anyhow!("lead scoring answered {:?}: {}", s.code(), s.message())),
    }
}
