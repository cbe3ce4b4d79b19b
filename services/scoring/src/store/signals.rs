//! The `signals` table (the record of every signal, deduplicated by the
//! client's id) and the packed signal log each lead row carries, read and
//! written in domain types.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use qualify_domain::RecordedSignal;
use qualify_domain::scoring::{Signal, SignalType};
use qualify_platform::{ApiError, db};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
    TryInsertResult,
};

use tracing::Instrument;

use super::entity::signal;

/// Signals per insert statement: 8 bound values each, far below SQLite's limit.
const INSERT_CHUNK: usize = 500;

/// Records `signals` (distinct ids) in one multi-row insert per chunk, and returns
/// the ids it recorded: the others were recorded before (duplicates).
pub async fn insert_new<'a>(
    db: &impl ConnectionTrait,
    tenant: &str,
    signals: impl Iterator<Item = &'a RecordedSignal>,
) -> Result<HashSet<String>, ApiError> {
    let rows: Vec<signal::ActiveModel> = signals
        .map(|s| signal::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            signal_id: Set(s.signal_id.clone()),
            lead_id: Set(s.lead_id.clone()),
            account_id: Set(s.account_id.clone()),
            contact_id: Set(s.contact_id.clone()),
            kind: Set(s.signal.kind.as_str().to_string()),
            occurred_at: Set(s.signal.occurred_at),
            received_at: Set(s.received_at),
        })
        .collect();
    let mut inserted = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let keys = signal::Entity::insert_many(chunk.to_vec())
            .on_conflict_do_nothing()
            .exec_with_returning_keys(db)
            .instrument(db::span(db, "INSERT signals"))
            .await?;
        if let TryInsertResult::Inserted(keys) = keys {
            inserted.extend(keys.into_iter().map(|(_, signal_id)| signal_id));
        }
    }
    Ok(inserted)
}

fn to_recorded(m: signal::Model) -> Option<RecordedSignal> {
    Some(RecordedSignal {
        signal: Signal { kind: SignalType::parse(&m.kind)?, occurred_at: m.occurred_at },
        signal_id: m.signal_id,
        lead_id: m.lead_id,
        account_id: m.account_id,
        contact_id: m.contact_id,
        received_at: m.received_at,
    })
}

/// An account's signals that occurred since `since`.
fn at_account_since(tenant: &str, account_id: &str, since: DateTime<Utc>) -> Select<signal::Entity> {
    signal::Entity::find()
        .filter(signal::Column::TenantId.eq(tenant))
        .filter(signal::Column::AccountId.eq(account_id))
        .filter(signal::Column::OccurredAt.gte(since))
}

/// How many contacts of an account sent a signal since `since`.
pub async fn engaged_contacts(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let engaged: Vec<Option<String>> = at_account_since(tenant, account_id, since)
        .select_only()
        .column(signal::Column::ContactId)
        .filter(signal::Column::ContactId.is_not_null())
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(engaged.len())
}

/// How many signals an account received that occurred since `since`.
pub async fn count_at_account(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
) -> Result<u64, ApiError> {
    Ok(at_account_since(tenant, account_id, since).count(db).await?)
}

/// An account's latest signal of one of `kinds` that occurred since `since`.
pub async fn latest_at_account(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    since: DateTime<Utc>,
    kinds: &[SignalType],
) -> Result<Option<RecordedSignal>, ApiError> {
    let latest = at_account_since(tenant, account_id, since)
        .filter(signal::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
        .order_by_desc(signal::Column::OccurredAt)
        .one(db)
        .await?;
    Ok(latest.and_then(to_recorded)) // its kind is one of `kinds`, so one this build knows
}
