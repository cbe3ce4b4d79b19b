//! The `contacts` table, read and written in domain types.

use qualify_domain::{Contact, ContactDetails, Reach, StakeholderRole, Verification};
use qualify_platform::{ApiError, db};
use sea_orm::ActiveValue::NotSet;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use tracing::Instrument;

use super::entity::contact;
use super::insert_error;

fn to_contact(m: contact::Model) -> Contact {
    // A status this build does not know reads as unverified.
    let status = |s: &str| Verification::parse(s).unwrap_or(Verification::Unverified);
    Contact {
        details: ContactDetails {
            full_name: m.full_name,
            title: m.title,
            seniority: m.seniority,
            department: m.department,
            buying_role: m.buying_role.as_deref().and_then(StakeholderRole::parse),
            email: Reach {
                address: m.email,
                status: status(&m.email_status),
                verified_at: m.email_verified_at,
                provider: m.email_verify_provider,
            },
            phone: Reach {
                address: m.phone,
                status: status(&m.phone_status),
                verified_at: m.phone_verified_at,
                provider: m.phone_verify_provider,
            },
        },
        contact_id: m.contact_id,
        account_id: m.account_id,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn to_row(tenant: &str, c: &Contact) -> contact::ActiveModel {
    let d = &c.details;
    contact::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        contact_id: Set(c.contact_id.clone()),
        account_id: Set(c.account_id.clone()),
        full_name: Set(d.full_name.clone()),
        title: Set(d.title.clone()),
        seniority: Set(d.seniority.clone()),
        department: Set(d.department.clone()),
        buying_role: Set(d.buying_role.map(|r| r.as_str().to_string())),
        email: Set(d.email.address.clone()),
        email_status: Set(d.email.status.as_str().to_string()),
        email_verified_at: Set(d.email.verified_at),
        email_verify_provider: Set(d.email.provider.clone()),
        phone: Set(d.phone.address.clone()),
        phone_status: Set(d.phone.status.as_str().to_string()),
        phone_verified_at: Set(d.phone.verified_at),
        phone_verify_provider: Set(d.phone.provider.clone()),
        version: Set(c.version),
        created_at: Set(c.created_at),
        updated_at: Set(c.updated_at),
    }
}

/// The contact, if it exists.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, contact_id: &str) -> Result<Option<Contact>, ApiError> {
    Ok(contact::Entity::find_by_id((tenant.to_string(), contact_id.to_string())).one(db).await?.map(to_contact))
}

/// The contact, or NOT_FOUND.
pub async fn get(db: &impl ConnectionTrait, tenant: &str, contact_id: &str) -> Result<Contact, ApiError> {
    find(db, tenant, contact_id)
        .instrument(db::span(db, "SELECT contacts"))
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "contact", id: contact_id.to_string() })
}

/// Those of the contacts `ids` names that exist, in no particular order.
pub async fn get_many(db: &impl ConnectionTrait, tenant: &str, ids: &[String]) -> Result<Vec<Contact>, ApiError> {
    let rows = contact::Entity::find()
        .filter(contact::Column::TenantId.eq(tenant))
        .filter(contact::Column::ContactId.is_in(ids.iter().map(String::as_str)))
        .all(db)
        .instrument(db::span(db, "SELECT contacts"))
        .await?;
    Ok(rows.into_iter().map(to_contact).collect())
}

/// Stores a new contact, as the database returns it; a taken id is ALREADY_EXISTS.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, c: &Contact) -> Result<Contact, ApiError> {
    Ok(to_contact(to_row(tenant, c).insert(db).await.map_err(insert_error("contact", &c.contact_id))?))
}

/// Writes `c` over the stored contact (its account and creation stay) only if
/// that is still at version `read`; `false` when a concurrent change got there first.
pub async fn update(db: &impl ConnectionTrait, tenant: &str, c: &Contact, read: i64) -> Result<bool, ApiError> {
    let mut row = to_row(tenant, c);
    (row.tenant_id, row.contact_id, row.account_id, row.created_at) = (NotSet, NotSet, NotSet, NotSet);
    let done = contact::Entity::update_many()
        .set(row)
        .filter(contact::Column::TenantId.eq(tenant))
        .filter(contact::Column::ContactId.eq(&c.contact_id))
        .filter(contact::Column::Version.eq(read))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// Contacts at an account holding one of `roles`.
pub async fn count_with_roles(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    roles: &[StakeholderRole],
) -> Result<u64, ApiError> {
    Ok(contact::Entity::find()
        .filter(contact::Column::TenantId.eq(tenant))
        .filter(contact::Column::AccountId.eq(account_id))
        .filter(contact::Column::BuyingRole.is_in(roles.iter().map(|r| r.as_str())))
        .count(db)
        .await?)
}
