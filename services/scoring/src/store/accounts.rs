//! The `accounts` table, read and written in domain types.

use qualify_domain::{Account, AccountDetails, Segment};
use qualify_platform::ApiError;
use sea_orm::ActiveValue::NotSet;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::entity::account;
use super::insert_error;

fn to_account(m: account::Model) -> Account {
    Account {
        account_id: m.account_id,
        details: AccountDetails {
            display_name: m.display_name,
            industry: m.industry,
            employee_count: m.employee_count,
            revenue_band: m.revenue_band,
            region: m.region,
            segment: m.segment.as_deref().and_then(Segment::parse),
        },
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// The account, if it exists.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, account_id: &str) -> Result<Option<Account>, ApiError> {
    Ok(account::Entity::find_by_id((tenant.to_string(), account_id.to_string())).one(db).await?.map(to_account))
}

/// The account, or NOT_FOUND.
pub async fn get(db: &impl ConnectionTrait, tenant: &str, account_id: &str) -> Result<Account, ApiError> {
    find(db, tenant, account_id)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "account", id: account_id.to_string() })
}

/// A tenant's accounts by id, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Account>, ApiError> {
    let mut q = account::Entity::find().filter(account::Column::TenantId.eq(tenant));
    if let Some(after) = after {
        q = q.filter(account::Column::AccountId.gt(after));
    }
    let rows = q.order_by_asc(account::Column::AccountId).limit(limit).all(db).await?;
    Ok(rows.into_iter().map(to_account).collect())
}

fn to_row(tenant: &str, a: &Account) -> account::ActiveModel {
    let d = &a.details;
    account::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        account_id: Set(a.account_id.clone()),
        display_name: Set(d.display_name.clone()),
        industry: Set(d.industry.clone()),
        employee_count: Set(d.employee_count),
        revenue_band: Set(d.revenue_band.clone()),
        region: Set(d.region.clone()),
        segment: Set(d.segment.map(|s| s.as_str().to_string())),
        version: Set(a.version),
        created_at: Set(a.created_at),
        updated_at: Set(a.updated_at),
    }
}

/// Stores a new account, as the database returns it; a taken id is ALREADY_EXISTS.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, a: &Account) -> Result<Account, ApiError> {
    Ok(to_account(to_row(tenant, a).insert(db).await.map_err(insert_error("account", &a.account_id))?))
}

/// Writes `a` over the stored account (its creation stays) only if that is
/// still at version `read`; `false` when a concurrent change got there first.
pub async fn update(db: &impl ConnectionTrait, tenant: &str, a: &Account, read: i64) -> Result<bool, ApiError> {
    let mut row = to_row(tenant, a);
    (row.tenant_id, row.account_id, row.created_at) = (NotSet, NotSet, NotSet);
    let done = account::Entity::update_many()
        .set(row)
        .filter(account::Column::TenantId.eq(tenant))
        .filter(account::Column::AccountId.eq(&a.account_id))
        .filter(account::Column::Version.eq(read))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}
