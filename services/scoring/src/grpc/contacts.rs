//! Contacts: the people at accounts, with how fresh their contact data is.

use chrono::{DateTime, Utc};
use qualify_domain::{Caller, StakeholderRole};
use qualify_platform::error::PreconditionViolation;
use qualify_platform::validate::Item;
use qualify_platform::{ApiError, Violations, db, idempotency};
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use qualify_proto::scoring::{self as pb, VerificationStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set, TryIntoModel,
};
use tracing::Instrument;

use super::ScoringApi;
use crate::store::entity::{account, contact};
use qualify_platform::db::is_unique_violation;

/// Most contacts one BatchGetContacts may name.
const MAX_BATCH_GET: usize = 100;

const FIELDS: [&str; 12] = [
    "full_name",
    "title",
    "seniority",
    "department",
    "buying_role",
    "email",
    "email_status",
    "email_verify_time",
    "phone",
    "phone_status",
    "phone_verify_time",
    "account_id",
];

fn status_name(s: VerificationStatus) -> &'static str {
    match s {
        VerificationStatus::Unspecified => "unverified",
        VerificationStatus::Verified => "verified",
        VerificationStatus::Bounced => "bounced",
        VerificationStatus::LeftCompany => "left_company",
    }
}

fn status_wire(s: &str) -> i32 {
    match s {
        "verified" => VerificationStatus::Verified as i32,
        "bounced" => VerificationStatus::Bounced as i32,
        "left_company" => VerificationStatus::LeftCompany as i32,
        _ => VerificationStatus::Unspecified as i32,
    }
}

/// A validated contact, ready to store.
struct Decoded {
    role: Option<StakeholderRole>,
    email_status: &'static str,
    phone_status: &'static str,
    email_at: Option<DateTime<Utc>>,
    phone_at: Option<DateTime<Utc>>,
}

fn check(v: &mut Violations, c: &pb::Contact) -> Decoded {
    v.text("contact.full_name", &c.full_name, 256);
    v.text("contact.title", &c.title, 256);
    v.text("contact.seniority", &c.seniority, 64);
    v.text("contact.department", &c.department, 128);
    v.text("contact.email", &c.email, 320);
    v.check(c.email.is_empty() || c.email.contains('@'), "contact.email", "must be an email address");
    v.text("contact.phone", &c.phone, 64);
    let role = v.optional_enum::<StakeholderRole>("contact.buying_role", c.buying_role);
    let mut status = |field: &str, raw: i32| match VerificationStatus::try_from(raw) {
        Ok(s) => status_name(s),
        Err(_) => {
            v.add(field, "is not a known value");
            "unverified"
        }
    };
    let email_status = status("contact.email_status", c.email_status);
    let phone_status = status("contact.phone_status", c.phone_status);
    let mut time = |field: &str, t: &Option<prost_types::Timestamp>| match t {
        None => None,
        Some(t) => {
            let d = from_timestamp(t);
            v.check(d.is_some(), field, "is not a valid time");
            d
        }
    };
    let email_at = time("contact.email_verify_time", &c.email_verify_time);
    let phone_at = time("contact.phone_verify_time", &c.phone_verify_time);
    Decoded { role, email_status, phone_status, email_at, phone_at }
}

fn encode(m: contact::Model) -> pb::Contact {
    pb::Contact {
        contact_id: m.contact_id,
        account_id: m.account_id,
        full_name: m.full_name,
        title: m.title,
        seniority: m.seniority,
        department: m.department,
        buying_role: m.buying_role.as_deref().and_then(StakeholderRole::parse).map_or(0, WireEnum::to_wire),
        email: m.email,
        email_status: status_wire(&m.email_status),
        email_verify_time: m.email_verified_at.map(timestamp),
        phone: m.phone,
        phone_status: status_wire(&m.phone_status),
        phone_verify_time: m.phone_verified_at.map(timestamp),
        create_time: Some(timestamp(m.created_at)),
        update_time: Some(timestamp(m.updated_at)),
        etag: m.version.to_string(),
    }
}

async fn require_account(db: &impl ConnectionTrait, tenant: &str, account_id: &str) -> Result<(), ApiError> {
    if account::Entity::find_by_id((tenant.to_string(), account_id.to_string())).one(db).await?.is_some() {
        return Ok(());
    }
    Err(ApiError::FailedPrecondition {
        reason: "ACCOUNT_NOT_FOUND",
        message: format!("account {account_id:?} does not exist; create it first"),
        violations: vec![PreconditionViolation {
            kind: "ACCOUNT_NOT_FOUND".into(),
            subject: format!("accounts/{account_id}"),
            description: "the contact's account must exist".into(),
        }],
    })
}

async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    c: &pb::Contact,
    d: &Decoded,
    now: DateTime<Utc>,
) -> Result<contact::Model, ApiError> {
    require_account(db, tenant, &c.account_id).await?;
    contact::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        contact_id: Set(c.contact_id.clone()),
        account_id: Set(c.account_id.clone()),
        full_name: Set(c.full_name.clone()),
        title: Set(c.title.clone()),
        seniority: Set(c.seniority.to_lowercase()),
        department: Set(c.department.to_lowercase()),
        buying_role: Set(d.role.map(|r| r.as_str().to_string())),
        email: Set(c.email.clone()),
        email_status: Set(d.email_status.to_string()),
        email_verified_at: Set(d.email_at),
        phone: Set(c.phone.clone()),
        phone_status: Set(d.phone_status.to_string()),
        phone_verified_at: Set(d.phone_at),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::AlreadyExists { kind: "contact", id: c.contact_id.clone() }
        } else {
            e.into()
        }
    })
}

impl ScoringApi {
    pub(crate) async fn create_contact(
        &self,
        caller: Caller,
        req: pb::CreateContactRequest,
    ) -> Result<pb::CreateContactResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(c) = req.contact.clone() else { return Err(ApiError::field("contact", "is required")) };
        v.id("contact.contact_id", &c.contact_id);
        v.id("contact.account_id", &c.account_id);
        let d = check(&mut v, &c);
        v.finish()?;
        let key = idempotency::Key { tenant: &caller.tenant, method: "CreateContact", request_id: &req.request_id };
        let tenant = caller.tenant.clone();
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let m = insert(txn, &tenant, &c, &d, now).await?;
                Ok(pb::CreateContactResponse { contact: Some(encode(m)) })
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
        let m = contact::Entity::find_by_id((caller.tenant, req.contact_id.clone()))
            .one(&self.db)
            .instrument(db::span(&self.db, "SELECT contacts"))
            .await?
            .ok_or(ApiError::NotFound { kind: "contact", id: req.contact_id })?;
        Ok(pb::GetContactResponse { contact: Some(encode(m)) })
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
        if req.contact_ids.is_empty() {
            return Ok(pb::BatchGetContactsResponse::default());
        }
        let rows = contact::Entity::find()
            .filter(contact::Column::TenantId.eq(&caller.tenant))
            .filter(contact::Column::ContactId.is_in(req.contact_ids.iter().map(String::as_str)))
            .all(&self.db)
            .instrument(db::span(&self.db, "SELECT contacts"))
            .await?;
        let found: std::collections::HashMap<&str, &contact::Model> =
            rows.iter().map(|m| (m.contact_id.as_str(), m)).collect();
        let contacts = req
            .contact_ids
            .iter()
            .map(|id| match found.get(id.as_str()) {
                Some(m) => Ok(encode((*m).clone())),
                None => Err(ApiError::NotFound { kind: "contact", id: id.clone() }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pb::BatchGetContactsResponse { contacts })
    }

    pub(crate) async fn update_contact(
        &self,
        caller: Caller,
        req: pb::UpdateContactRequest,
    ) -> Result<pb::UpdateContactResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(c) = req.contact.clone() else { return Err(ApiError::field("contact", "is required")) };
        v.id("contact.contact_id", &c.contact_id);
        v.optional_id("contact.account_id", &c.account_id);
        let d = check(&mut v, &c);
        let paths: Vec<String> = match &req.update_mask {
            Some(m) if !m.paths.is_empty() => m.paths.clone(),
            _ => FIELDS[..FIELDS.len() - 1].iter().map(|s| s.to_string()).collect(),
        };
        for (i, p) in paths.iter().enumerate() {
            let ok = FIELDS[..FIELDS.len() - 1].contains(&p.as_str());
            v.check(ok, Item("update_mask.paths", i, ""), "is not an updatable field (account_id is immutable)");
        }
        v.finish()?;
        let key = idempotency::Key { tenant: &caller.tenant, method: "UpdateContact", request_id: &req.request_id };
        let (tenant, allow_missing) = (caller.tenant.clone(), req.allow_missing);
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let Some(cur) = contact::Entity::find_by_id((tenant.clone(), c.contact_id.clone())).one(txn).await?
                else {
                    if !allow_missing {
                        return Err(ApiError::NotFound { kind: "contact", id: c.contact_id.clone() });
                    }
                    if c.account_id.is_empty() {
                        return Err(ApiError::field("contact.account_id", "is required to create a contact"));
                    }
                    let m = insert(txn, &tenant, &c, &d, now).await?;
                    return Ok(pb::UpdateContactResponse { contact: Some(encode(m)) });
                };
                if !c.etag.is_empty() && c.etag != cur.version.to_string() {
                    return Err(ApiError::Aborted(format!("contact {} changed since it was read", c.contact_id)));
                }
                let version = cur.version;
                let mut am = cur.into_active_model();
                for p in &paths {
                    match p.as_str() {
                        "full_name" => am.full_name = Set(c.full_name.clone()),
                        "title" => am.title = Set(c.title.clone()),
                        "seniority" => am.seniority = Set(c.seniority.to_lowercase()),
                        "department" => am.department = Set(c.department.to_lowercase()),
                        "buying_role" => am.buying_role = Set(d.role.map(|r| r.as_str().to_string())),
                        "email" => am.email = Set(c.email.clone()),
                        "email_status" => am.email_status = Set(d.email_status.to_string()),
                        "email_verify_time" => am.email_verified_at = Set(d.email_at),
                        "phone" => am.phone = Set(c.phone.clone()),
                        "phone_status" => am.phone_status = Set(d.phone_status.to_string()),
                        "phone_verify_time" => am.phone_verified_at = Set(d.phone_at),
                        _ => {}
                    }
                }
                am.version = Set(version + 1);
                am.updated_at = Set(now);
                // Optimistic: the write only lands on the version that was read.
                let done = contact::Entity::update_many()
                    .set(am.clone())
                    .filter(contact::Column::TenantId.eq(&tenant))
                    .filter(contact::Column::ContactId.eq(&c.contact_id))
                    .filter(contact::Column::Version.eq(version))
                    .exec(txn)
                    .await?;
                if done.rows_affected == 0 {
                    return Err(ApiError::Aborted(format!("contact {} changed concurrently; retry", c.contact_id)));
                }
                let m = am.try_into_model().map_err(|e| ApiError::Internal(e.into()))?;
                Ok(pb::UpdateContactResponse { contact: Some(encode(m)) })
            })
        })
        .await
    }
}
