//! Quotas: the pipeline a team or an SDR is expected to build in a month,
//! which the funnel measures coverage against.

use chrono::{DateTime, Utc};
use qualify_platform::{ApiError, Clock};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::store;

/// Who owns a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A team.
    Team,
    /// An SDR.
    Rep,
}

impl OwnerKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Team => "team",
            OwnerKind::Rep => "rep",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [OwnerKind::Team, OwnerKind::Rep].into_iter().find(|k| k.as_str() == s)
    }
}

/// A quota as asked for: whose, which month, how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaChange {
    /// Owner's kind.
    pub owner_kind: OwnerKind,
    /// Team or SDR id.
    pub owner_id: String,
    /// Month, `YYYY-MM`.
    pub period: String,
    /// Amount, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency_code: String,
}

/// A stored quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Owner's kind.
    pub owner_kind: OwnerKind,
    /// Team or SDR id.
    pub owner_id: String,
    /// Month, `YYYY-MM`.
    pub period: String,
    /// Amount, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency_code: String,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

/// Sets `tenant`'s quota as `change` says (replacing the owner's quota of that month) in `txn`.
pub async fn set(
    txn: &DatabaseTransaction,
    tenant: &str,
    change: QuotaChange,
    clock: &Clock,
) -> Result<Quota, ApiError> {
    let QuotaChange { owner_kind, owner_id, period, amount_minor, currency_code } = change;
    let quota = Quota { owner_kind, owner_id, period, amount_minor, currency_code, updated_at: clock.now() };
    store::quota::upsert(txn, tenant, &quota).await?;
    Ok(quota)
}

/// Up to `limit` of `tenant`'s quotas of `period`, ordered by owner kind
/// name and owner id, after `after` (the last of the previous page as
/// (owner kind name, owner id)).
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    period: &str,
    after: Option<(&str, &str)>,
    limit: u64,
) -> Result<Vec<Quota>, ApiError> {
    Ok(store::quota::page(db, tenant, period, after, limit).await?)
}
