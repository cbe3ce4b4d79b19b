//! Use cases around contacts, the people at accounts: creating one at an
//! existing account, updating the fields a client names (only on the version
//! that was read), and reading many at once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use qualify_domain::{Contact, ContactDetails, ContactField};
use qualify_platform::ApiError;
use sea_orm::ConnectionTrait;

use crate::accounts;
use crate::store::contacts as store;

/// A contact as a client sends it.
pub struct NewContact {
    /// Its id.
    pub contact_id: String,
    /// Its account (empty in an update: it never changes).
    pub account_id: String,
    /// The values sent.
    pub details: ContactDetails,
}

/// An update of the fields a client names.
pub struct Update {
    /// The contact and the values sent.
    pub contact: NewContact,
    /// The fields to take from them.
    pub fields: Vec<ContactField>,
    /// The version the client read (empty: whichever is stored).
    pub etag: String,
    /// Create the contact (with every field sent) when it does not exist.
    pub allow_missing: bool,
}

/// Creates a contact at version 1 at an existing account; a taken id is ALREADY_EXISTS.
pub async fn create(
    db: &impl ConnectionTrait,
    tenant: &str,
    c: NewContact,
    now: DateTime<Utc>,
) -> Result<Contact, ApiError> {
    accounts::require(db, tenant, &c.account_id, "contact's").await?;
    let contact = Contact {
        contact_id: c.contact_id,
        account_id: c.account_id,
        details: c.details.normalized(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    store::insert(db, tenant, &contact).await
}

/// Updates a contact, or creates it when missing and allowed (it then needs
/// its account). A stale etag, or a change since the contact was read, is ABORTED.
pub async fn update(
    txn: &impl ConnectionTrait,
    tenant: &str,
    u: Update,
    now: DateTime<Utc>,
) -> Result<Contact, ApiError> {
    let c = u.contact;
    let Some(current) = store::find(txn, tenant, &c.contact_id).await? else {
        if !u.allow_missing {
            return Err(ApiError::NotFound { kind: "contact", id: c.contact_id });
        }
        if c.account_id.is_empty() {
            return Err(ApiError::field("contact.account_id", "is required to create a contact"));
        }
        return create(txn, tenant, c, now).await;
    };
    if !u.etag.is_empty() && u.etag != current.version.to_string() {
        return Err(ApiError::Aborted(format!("contact {} changed since it was read", c.contact_id)));
    }
    let details = current.details.clone().with(&c.details.normalized(), &u.fields);
    let next = Contact { details, version: current.version + 1, updated_at: now, ..current };
    // Optimistic: the write only lands on the version that was read.
    if !store::update(txn, tenant, &next, current.version).await? {
        return Err(ApiError::Aborted(format!("contact {} changed concurrently; retry", c.contact_id)));
    }
    Ok(next)
}

/// The contacts `ids` names, in that order; NOT_FOUND names the first missing one.
pub async fn batch_get(db: &impl ConnectionTrait, tenant: &str, ids: &[String]) -> Result<Vec<Contact>, ApiError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let rows = store::get_many(db, tenant, ids).await?;
    let found: HashMap<&str, &Contact> = rows.iter().map(|c| (c.contact_id.as_str(), c)).collect();
    ids.iter()
        .map(|id| match found.get(id.as_str()) {
            Some(c) => Ok((*c).clone()),
            None => Err(ApiError::NotFound { kind: "contact", id: id.clone() }),
        })
        .collect()
}
