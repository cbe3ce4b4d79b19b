//! Use cases around contacts, the people at accounts: creating one at an
//! existing account, updating the fields a client names (only on the version
//! that was read), reading many at once, and recording a verifier's findings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use qualify_domain::{Contact, ContactDetails, ContactField, Finding, Recorded, Verification};
use qualify_platform::ApiError;
use sea_orm::ConnectionTrait;

use crate::accounts;
use crate::signals::Rejection;
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
        details: c.details.normalized().entered_by_a_client(),
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

/// One finding of a verification feed, as sent.
pub struct IncomingFinding {
    /// The contact it is about.
    pub contact_id: String,
    /// The finding, or why it was rejected on its own.
    pub checked: Result<Finding, Vec<Rejection>>,
}

/// What became of one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingOutcome {
    /// Recorded on the contact.
    Applied,
    /// Refused on its own.
    Rejected(Vec<Rejection>),
    /// No such contact.
    NotFound,
    /// A finding as recent or newer was on record.
    Superseded,
}

/// A finding that changed a contact: what the event stream tells.
pub struct AppliedFinding {
    /// The contact.
    pub contact_id: String,
    /// Its account.
    pub account_id: String,
    /// The finding.
    pub finding: Finding,
    /// The channel's status before it.
    pub previous: Verification,
}

/// What a feed did.
pub struct FeedRecorded {
    /// An outcome per finding, in the feed's order.
    pub outcomes: Vec<FindingOutcome>,
    /// The findings that changed a contact, in order.
    pub applied: Vec<AppliedFinding>,
}

/// Contacts read per query while recording a feed.
const FEED_READ_CHUNK: usize = 500;

/// Records a verification feed in order: each finding on its contact unless
/// one as recent or newer is on record; each touched contact is written once,
/// only on the version read (a concurrent change is ABORTED: retry the feed).
pub async fn record_findings(
    txn: &impl ConnectionTrait,
    tenant: &str,
    feed: Vec<IncomingFinding>,
    now: DateTime<Utc>,
) -> Result<FeedRecorded, ApiError> {
    let mut ids: Vec<String> = feed.iter().filter(|f| f.checked.is_ok()).map(|f| f.contact_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut contacts: HashMap<String, (Contact, i64)> = HashMap::new();
    for chunk in ids.chunks(FEED_READ_CHUNK) {
        for c in store::get_many(txn, tenant, chunk).await? {
            let read = c.version;
            contacts.insert(c.contact_id.clone(), (c, read));
        }
    }
    let mut out = FeedRecorded { outcomes: Vec::with_capacity(feed.len()), applied: Vec::new() };
    for f in feed {
        let outcome = match (f.checked, contacts.get_mut(&f.contact_id)) {
            (Err(r), _) => FindingOutcome::Rejected(r),
            (Ok(_), None) => FindingOutcome::NotFound,
            (Ok(finding), Some((c, _))) => match c.details.record(&finding) {
                Recorded::Superseded => FindingOutcome::Superseded,
                Recorded::Applied { previous } => {
                    c.updated_at = now;
                    let (contact_id, account_id) = (c.contact_id.clone(), c.account_id.clone());
                    out.applied.push(AppliedFinding { contact_id, account_id, finding, previous });
                    FindingOutcome::Applied
                }
            },
        };
        out.outcomes.push(outcome);
    }
    let mut touched: Vec<&String> = out.applied.iter().map(|a| &a.contact_id).collect();
    touched.sort_unstable();
    touched.dedup();
    for id in touched {
        let (c, read) = &contacts[id];
        let next = Contact { version: read + 1, ..c.clone() };
        if !store::update(txn, tenant, &next, *read).await? {
            return Err(ApiError::Aborted(format!("contact {id} changed concurrently; retry the feed")));
        }
    }
    Ok(out)
}
