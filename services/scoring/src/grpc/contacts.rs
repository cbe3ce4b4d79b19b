//! Contacts on the wire: decoding a contact sent to create or update (with
//! validation that names every bad field by its path in the request),
//! encoding one, the contact RPCs, and the verifiers' feed (each finding
//! checked on its own, a result per finding).

use chrono::{DateTime, Utc};
use qualify_domain::{
    Caller, Channel, Contact, ContactDetails, ContactField, Finding, Reach, StakeholderRole, Verification, contact,
    permission,
};
use qualify_platform::validate::{Item, is_resource_id};
use qualify_platform::{ApiError, Violations, idempotency};
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use qualify_proto::scoring::{self as pb, ContactChannel, VerificationOutcome, VerificationStatus};

use super::{ScoringApi, decode_mask, encode_rejections, events};
use crate::contacts::{self, FeedRecorded, FindingOutcome, IncomingFinding, NewContact};
use crate::signals::Rejection;
use crate::store::contacts as store;

/// Most contacts one BatchGetContacts may name.
const MAX_BATCH_GET: usize = 100;

/// Most findings one RecordContactVerifications may carry.
pub const MAX_FEED: usize = 5000;

fn decode_status(s: VerificationStatus) -> Verification {
    match s {
        VerificationStatus::Unspecified => Verification::Unverified,
        VerificationStatus::Verified => Verification::Verified,
        VerificationStatus::Bounced => Verification::Bounced,
        VerificationStatus::LeftCompany => Verification::LeftCompany,
        VerificationStatus::SelfReported => Verification::SelfReported,
    }
}

pub(crate) fn encode_status(s: Verification) -> i32 {
    (match s {
        Verification::Unverified => VerificationStatus::Unspecified,
        Verification::Verified => VerificationStatus::Verified,
        Verification::Bounced => VerificationStatus::Bounced,
        Verification::LeftCompany => VerificationStatus::LeftCompany,
        Verification::SelfReported => VerificationStatus::SelfReported,
    }) as i32
}

/// Decodes the writable fields of a contact (the ids separately).
fn decode_details(v: &mut Violations, c: &pb::Contact, now: DateTime<Utc>) -> ContactDetails {
    v.text("contact.full_name", &c.full_name, 256);
    v.text("contact.title", &c.title, 256);
    v.text("contact.seniority", &c.seniority, 64);
    v.text("contact.department", &c.department, 128);
    v.text("contact.email", &c.email, 320);
    v.check(c.email.is_empty() || c.email.contains('@'), "contact.email", "must be an email address");
    v.text("contact.phone", &c.phone, 64);
    let buying_role = v.optional_enum::<StakeholderRole>("contact.buying_role", c.buying_role);
    let mut status = |field: &str, raw: i32| match VerificationStatus::try_from(raw) {
        Ok(s) => decode_status(s),
        Err(_) => {
            v.add(field, "is not a known value");
            Verification::Unverified
        }
    };
    let email_status = status("contact.email_status", c.email_status);
    let phone_status = status("contact.phone_status", c.phone_status);
    let mut time = |field: &str, t: &Option<prost_types::Timestamp>| match t {
        None => None,
        Some(t) => {
            let d = from_timestamp(t);
            v.check(d.is_some(), field, "is not a valid time");
            let in_future = d.is_some_and(|d| !contact::verified_by(d, now));
            v.check(!in_future, field, "must not be in the future (a verification that has not happened)");
            d
        }
    };
    let email_verified_at = time("contact.email_verify_time", &c.email_verify_time);
    let phone_verified_at = time("contact.phone_verify_time", &c.phone_verify_time);
    // The providers are output only: a client's word is never a provider's finding.
    let email = Reach {
        address: c.email.clone(),
        status: email_status,
        verified_at: email_verified_at,
        provider: c.email_verify_provider.clone(),
    };
    let phone = Reach {
        address: c.phone.clone(),
        status: phone_status,
        verified_at: phone_verified_at,
        provider: c.phone_verify_provider.clone(),
    };
    ContactDetails {
        full_name: c.full_name.clone(),
        title: c.title.clone(),
        seniority: c.seniority.clone(),
        department: c.department.clone(),
        buying_role,
        email,
        phone,
    }
}

/// Decodes a contact sent to create or update; its account is required to create only.
fn decode_contact<'a>(
    v: &mut Violations,
    c: Option<&'a pb::Contact>,
    create: bool,
    now: DateTime<Utc>,
) -> Result<(&'a pb::Contact, NewContact), ApiError> {
    let Some(c) = c else { return Err(ApiError::field("contact", "is required")) };
    v.id("contact.contact_id", &c.contact_id);
    if create {
        v.id("contact.account_id", &c.account_id);
    } else {
        v.optional_id("contact.account_id", &c.account_id);
    }
    let details = decode_details(v, c, now);
    Ok((c, NewContact { contact_id: c.contact_id.clone(), account_id: c.account_id.clone(), details }))
}

fn encode(c: Contact) -> pb::Contact {
    let d = c.details;
    pb::Contact {
        contact_id: c.contact_id,
        account_id: c.account_id,
        full_name: d.full_name,
        title: d.title,
        seniority: d.seniority,
        department: d.department,
        buying_role: d.buying_role.map_or(0, WireEnum::to_wire),
        email: d.email.address,
        email_status: encode_status(d.email.status),
        email_verify_time: d.email.verified_at.map(timestamp),
        email_verify_provider: d.email.provider,
        phone: d.phone.address,
        phone_status: encode_status(d.phone.status),
        phone_verify_time: d.phone.verified_at.map(timestamp),
        phone_verify_provider: d.phone.provider,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: c.version.to_string(),
    }
}

/// The wire form of a channel.
pub(crate) fn encode_channel(c: Channel) -> i32 {
    (match c {
        Channel::Email => ContactChannel::Email,
        Channel::Phone => ContactChannel::Phone,
    }) as i32
}

/// Checks one finding on its own; the contact's existence is checked against the stored ones.
fn check_finding(f: &pb::ContactVerification, now: DateTime<Utc>) -> Result<Finding, Vec<Rejection>> {
    let mut errors = Vec::new();
    let mut reject = |field, description| errors.push(Rejection { field, description });
    if !is_resource_id(&f.contact_id) {
        reject("contact_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]");
    }
    let channel = match ContactChannel::try_from(f.channel) {
        Ok(ContactChannel::Email) => Some(Channel::Email),
        Ok(ContactChannel::Phone) => Some(Channel::Phone),
        Ok(ContactChannel::Unspecified) => None,
        Err(_) => None,
    };
    if channel.is_none() {
        reject("channel", if f.channel == 0 { "is required" } else { "is not a known value" });
    }
    let status =
        VerificationStatus::try_from(f.status).ok().map(decode_status).filter(|s| Finding::STATUSES.contains(s));
    if status.is_none() {
        reject("status", "must be VERIFIED, BOUNCED or LEFT_COMPANY");
    }
    if f.provider.trim().is_empty() || f.provider.chars().count() > 128 {
        reject("provider", "is required, at most 128 characters");
    }
    let at = f.verify_time.as_ref().and_then(from_timestamp);
    match at {
        None => reject("verify_time", "is required and must be a valid time"),
        Some(t) if !contact::verified_by(t, now) => {
            reject("verify_time", "must not be in the future (a verification that has not happened)")
        }
        Some(_) => {}
    }
    match (channel, status, at) {
        (Some(channel), Some(status), Some(verified_at)) if errors.is_empty() => {
            Ok(Finding { channel, status, provider: f.provider.trim().to_string(), verified_at })
        }
        _ => Err(errors),
    }
}

fn encode_feed(feed: &[pb::ContactVerification], recorded: FeedRecorded) -> pb::RecordContactVerificationsResponse {
    let mut out = pb::RecordContactVerificationsResponse::default();
    for (f, outcome) in feed.iter().zip(recorded.outcomes) {
        let mut result = pb::ContactVerificationResult { contact_id: f.contact_id.clone(), ..Default::default() };
        let (code, count) = match outcome {
            FindingOutcome::Applied => (VerificationOutcome::Applied, &mut out.applied_count),
            FindingOutcome::NotFound => (VerificationOutcome::NotFound, &mut out.not_found_count),
            FindingOutcome::Superseded => (VerificationOutcome::Superseded, &mut out.superseded_count),
            FindingOutcome::Rejected(rejections) => {
                result.violations = encode_rejections(rejections);
                (VerificationOutcome::Rejected, &mut out.rejected_count)
            }
        };
        result.outcome = code as i32;
        *count += 1;
        out.results.push(result);
    }
    out
}

impl ScoringApi {
    pub(crate) async fn record_contact_verifications(
        &self,
        caller: Caller,
        req: pb::RecordContactVerificationsRequest,
    ) -> Result<pb::RecordContactVerificationsResponse, ApiError> {
        permission::verify_contacts(&caller)?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.check(!req.verifications.is_empty(), "verifications", "must not be empty");
        v.check(req.verifications.len() <= MAX_FEED, "verifications", "must hold at most 5000 findings");
        v.finish()?;
        let _slot = self.ingest_slot(super::Bulk::Feed).await?;
        let key = idempotency::Key {
            tenant: &caller.tenant,
            method: "RecordContactVerifications",
            request_id: &req.request_id,
            subject: &caller.subject,
        };
        let (tenant, now) = (caller.tenant.clone(), self.clock.now());
        let feed: Vec<IncomingFinding> = req
            .verifications
            .iter()
            .map(|f| IncomingFinding { contact_id: f.contact_id.clone(), checked: check_finding(f, now) })
            .collect();
        let sent = req.verifications.clone();
        let out = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move { record(txn, &tenant, &sent, feed, now).await })
        })
        .await?;
        if out.applied_count > 0 {
            self.relay.nudge();
        }
        metrics::counter!("qualify_contact_verifications_total", "outcome" => "applied")
            .increment(out.applied_count as u64);
        Ok(out)
    }

    pub(crate) async fn create_contact(
        &self,
        caller: Caller,
        req: pb::CreateContactRequest,
    ) -> Result<pb::CreateContactResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let (_, new) = decode_contact(&mut v, req.contact.as_ref(), true, self.clock.now())?;
        v.finish()?;
        let key = idempotency::Key {
            tenant: &caller.tenant,
            method: "CreateContact",
            request_id: &req.request_id,
            subject: &caller.subject,
        };
        let (tenant, now) = (caller.tenant.clone(), self.clock.now());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let c = contacts::create(txn, &tenant, new, now).await?;
                Ok(pb::CreateContactResponse { contact: Some(encode(c)) })
            })
        })
        .await
    }

    pub(crate) async fn get_contact(
        &self,
        caller: Caller,
        req: pb::GetContactRequest,
    ) -> Result<pb::GetContactResponse, ApiError> {
        let mut v = Violations::new();
        v.id("contact_id", &req.contact_id);
        v.finish()?;
        let c = store::get(&self.db, &caller.tenant, &req.contact_id).await?;
        Ok(pb::GetContactResponse { contact: Some(encode(c)) })
    }

    pub(crate) async fn batch_get_contacts(
        &self,
        caller: Caller,
        req: pb::BatchGetContactsRequest,
    ) -> Result<pb::BatchGetContactsResponse, ApiError> {
        let mut v = Violations::new();
        v.check(req.contact_ids.len() <= MAX_BATCH_GET, "contact_ids", "must name at most 100 contacts");
        for (i, id) in req.contact_ids.iter().enumerate().take(MAX_BATCH_GET) {
            v.id(Item("contact_ids", i, ""), id);
        }
        v.finish()?;
        let found = contacts::batch_get(&self.db, &caller.tenant, &req.contact_ids).await?;
        Ok(pb::BatchGetContactsResponse { contacts: found.into_iter().map(encode).collect() })
    }

    pub(crate) async fn update_contact(
        &self,
        caller: Caller,
        req: pb::UpdateContactRequest,
    ) -> Result<pb::UpdateContactResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let (c, contact) = decode_contact(&mut v, req.contact.as_ref(), false, self.clock.now())?;
        let fields = decode_mask(
            &mut v,
            req.update_mask.as_ref(),
            &ContactField::ALL,
            ContactField::parse,
            "is not an updatable field (account_id is immutable)",
        );
        v.finish()?;
        let key = idempotency::Key {
            tenant: &caller.tenant,
            method: "UpdateContact",
            request_id: &req.request_id,
            subject: &caller.subject,
        };
        let update = contacts::Update { contact, fields, etag: c.etag.clone(), allow_missing: req.allow_missing };
        let (tenant, now) = (caller.tenant.clone(), self.clock.now());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let c = contacts::update(txn, &tenant, update, now).await?;
                Ok(pb::UpdateContactResponse { contact: Some(encode(c)) })
            })
        })
        .await
    }
}

/// Records a feed and appends its events in the caller's transaction.
async fn record(
    txn: &impl sea_orm::ConnectionTrait,
    tenant: &str,
    sent: &[pb::ContactVerification],
    feed: Vec<IncomingFinding>,
    now: DateTime<Utc>,
) -> Result<pb::RecordContactVerificationsResponse, ApiError> {
    let recorded = contacts::record_findings(txn, tenant, feed, now).await?;
    events::verifications_recorded(txn, tenant, &recorded.applied, now).await?;
    Ok(encode_feed(sent, recorded))
}
