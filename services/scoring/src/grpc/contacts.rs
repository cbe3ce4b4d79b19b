//! Contacts on the wire: decoding a contact sent to create or update (with
//! validation that names every bad field by its path in the request),
//! encoding one, and the contact RPCs.

use chrono::{DateTime, Utc};
use qualify_domain::{Caller, Contact, ContactDetails, ContactField, StakeholderRole, Verification, contact};
use qualify_platform::validate::Item;
use qualify_platform::{ApiError, Violations, idempotency};
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use qualify_proto::scoring::{self as pb, VerificationStatus};

use super::{ScoringApi, decode_mask};
use crate::contacts::{self, NewContact};
use crate::store::contacts as store;

/// Most contacts one BatchGetContacts may name.
const MAX_BATCH_GET: usize = 100;

fn decode_status(s: VerificationStatus) -> Verification {
    match s {
        VerificationStatus::Unspecified => Verification::Unverified,
        VerificationStatus::Verified => Verification::Verified,
        VerificationStatus::Bounced => Verification::Bounced,
        VerificationStatus::LeftCompany => Verification::LeftCompany,
        VerificationStatus::SelfReported => Verification::SelfReported,
    }
}

fn encode_status(s: Verification) -> i32 {
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
    ContactDetails {
        full_name: c.full_name.clone(),
        title: c.title.clone(),
        seniority: c.seniority.clone(),
        department: c.department.clone(),
        buying_role,
        email: c.email.clone(),
        email_status,
        email_verified_at,
        phone: c.phone.clone(),
        phone_status,
        phone_verified_at,
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
        email: d.email,
        email_status: encode_status(d.email_status),
        email_verify_time: d.email_verified_at.map(timestamp),
        phone: d.phone,
        phone_status: encode_status(d.phone_status),
        phone_verify_time: d.phone_verified_at.map(timestamp),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: c.version.to_string(),
        email_verify_provider: String::new(),
        phone_verify_provider: String::new(),
    }
}

impl ScoringApi {
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
