//! Queries of `reporting_currencies` and `exchange_rates`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use qualify_domain::currency::{DEFAULT_REPORTING, Rate};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entity::exchange_rate::{self, Column as X};
use super::entity::reporting_currency::{self, Column as C};

/// `tenant`'s reporting currency ([`DEFAULT_REPORTING`] until one is set).
pub(crate) async fn reporting(db: &impl ConnectionTrait, tenant: &str) -> Result<String, DbErr> {
    let row = reporting_currency::Entity::find_by_id(tenant.to_string()).one(db).await?;
    Ok(row.map_or_else(|| DEFAULT_REPORTING.to_string(), |r| r.currency_code))
}

/// Sets `tenant`'s reporting currency.
pub(crate) async fn set_reporting(
    db: &impl ConnectionTrait,
    tenant: &str,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = reporting_currency::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        currency_code: Set(code.to_string()),
        updated_at: Set(now),
    };
    reporting_currency::Entity::insert(row)
        .on_conflict(OnConflict::column(C::TenantId).update_columns([C::CurrencyCode, C::UpdatedAt]).to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Stores `rates` (currency → rate into `reporting`) as `tenant`'s of `period`,
/// replacing those of the same currencies.
pub(crate) async fn set_rates(
    db: &impl ConnectionTrait,
    tenant: &str,
    period: &str,
    reporting: &str,
    rates: &[(String, Rate)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows = rates.iter().map(|(code, rate)| exchange_rate::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        period: Set(period.to_string()),
        currency_code: Set(code.clone()),
        rate_nanos: Set(rate.nanos()),
        reporting_code: Set(reporting.to_string()),
        updated_at: Set(now),
    });
    exchange_rate::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([X::TenantId, X::Period, X::CurrencyCode])
                .update_columns([X::RateNanos, X::ReportingCode, X::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// `tenant`'s rates into `reporting` from `start` to `end` (months, inclusive),
/// by (month, currency). Rates kept for another reporting currency do not convert into this one.
pub(crate) async fn rates(
    db: &impl ConnectionTrait,
    tenant: &str,
    reporting: &str,
    (start, end): (&str, &str),
) -> Result<HashMap<(String, String), Rate>, DbErr> {
    let rows = exchange_rate::Entity::find()
        .filter(X::TenantId.eq(tenant))
        .filter(X::ReportingCode.eq(reporting))
        .filter(X::Period.between(start, end))
        .order_by_asc(X::CurrencyCode)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|r| Some(((r.period, r.currency_code), Rate::from_nanos(r.rate_nanos)?))).collect())
}
