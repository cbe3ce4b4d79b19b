//! Queries of `quotas`.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::entity::quota::{self, Column as Q};
use crate::quotas::{OwnerKind, Quota};

/// Stores `q` as `tenant`'s quota of its owner and month, replacing the one there.
pub(crate) async fn upsert(txn: &DatabaseTransaction, tenant: &str, q: &Quota) -> Result<(), DbErr> {
    let row = quota::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        period: Set(q.period.clone()),
        owner_kind: Set(q.owner_kind.as_str().to_string()),
        owner_id: Set(q.owner_id.clone()),
        amount_minor: Set(q.amount_minor),
        currency_code: Set(q.currency_code.clone()),
        updated_at: Set(q.updated_at),
    };
    quota::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Q::TenantId, Q::Period, Q::OwnerKind, Q::OwnerId])
                .update_columns([Q::AmountMinor, Q::CurrencyCode, Q::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Up to `limit` of `tenant`'s quotas of `period` after `after` (owner kind name, owner id),
/// in that order.
pub(crate) async fn page(
    db: &impl ConnectionTrait,
    tenant: &str,
    period: &str,
    after: Option<(&str, &str)>,
    limit: u64,
) -> Result<Vec<Quota>, DbErr> {
    let mut q = quota::Entity::find().filter(Q::TenantId.eq(tenant)).filter(Q::Period.eq(period));
    if let Some((kind, id)) = after {
        // Keyset pagination over (owner_kind, owner_id).
        q = q.filter(
            Condition::any()
                .add(Q::OwnerKind.gt(kind))
                .add(Condition::all().add(Q::OwnerKind.eq(kind)).add(Q::OwnerId.gt(id))),
        );
    }
    let rows = q.order_by_asc(Q::OwnerKind).order_by_asc(Q::OwnerId).limit(limit).all(db).await?;
    rows.into_iter().map(quota_of).collect()
}

/// `tenant`'s quotas of every owner from `start` to `end` (months, inclusive).
pub(crate) async fn in_range(
    db: &impl ConnectionTrait,
    tenant: &str,
    (start, end): (&str, &str),
) -> Result<Vec<Quota>, DbErr> {
    let rows =
        quota::Entity::find().filter(Q::TenantId.eq(tenant)).filter(Q::Period.between(start, end)).all(db).await?;
    rows.into_iter().map(quota_of).collect()
}

fn quota_of(m: quota::Model) -> Result<Quota, DbErr> {
    let owner_kind = OwnerKind::parse(&m.owner_kind)
        .ok_or_else(|| DbErr::Custom(format!("quota owner kind {:?} is not team or rep", m.owner_kind)))?;
    Ok(Quota {
        owner_kind,
        owner_id: m.owner_id,
        period: m.period,
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
        updated_at: m.updated_at,
    })
}
