//! Queries of `stream_cursors` and `processed_events`: where each upstream
//! stream stands, and which event ids were applied.

use std::collections::HashSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect, Set,
    Statement,
};

use super::bulk::{CHUNK, is_postgres};
use super::entity::{cursor, processed};

/// Waits until no other replica applies a batch, up to the end of `txn` (PostgreSQL;
/// SQLite has one writer at a time anyway).
pub(crate) async fn lock_ingestion(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    if is_postgres(txn) {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('qualify.metrics.ingest'))").await?;
    }
    Ok(())
}

/// `stream`'s position: (last applied sequence, events applied), `(0, 0)` before any.
pub(crate) async fn position(db: &impl ConnectionTrait, stream: &str) -> Result<(i64, i64), DbErr> {
    let stored = cursor::Entity::find_by_id(stream).one(db).await?;
    Ok(stored.map_or((0, 0), |c| (c.applied_sequence, c.applied_events)))
}

/// Stores `stream`'s position.
pub(crate) async fn save_position(
    txn: &DatabaseTransaction,
    stream: &str,
    applied_sequence: i64,
    applied_events: i64,
) -> Result<(), DbErr> {
    let row = cursor::ActiveModel {
        stream: Set(stream.to_string()),
        applied_sequence: Set(applied_sequence),
        applied_events: Set(applied_events),
    };
    cursor::Entity::insert(row)
        .on_conflict(
            OnConflict::column(cursor::Column::Stream)
                .update_columns([cursor::Column::AppliedSequence, cursor::Column::AppliedEvents])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Records `ids` as applied; returns those not recorded before.
pub(crate) async fn claim(txn: &DatabaseTransaction, ids: &[String]) -> Result<HashSet<String>, DbErr> {
    let mut claimed = HashSet::with_capacity(ids.len());
    if is_postgres(txn) {
        // One statement for the batch: the claim and the check together.
        let json = serde_json::Value::Array(ids.iter().cloned().map(serde_json::Value::String).collect());
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO processed_events (event_id) SELECT json_array_elements_text($1::json) \
                 ON CONFLICT DO NOTHING RETURNING event_id",
                [json.to_string().into()],
            ))
            .await?;
        for r in rows {
            claimed.insert(r.try_get::<String>("", "event_id")?);
        }
        return Ok(claimed);
    }
    let mut known = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<String> = processed::Entity::find()
            .select_only()
            .column(processed::Column::EventId)
            .filter(processed::Column::EventId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(txn)
            .await?;
        known.extend(rows);
    }
    claimed.extend(ids.iter().filter(|i| !known.contains(*i)).cloned());
    let rows: Vec<String> = claimed.iter().cloned().collect();
    for chunk in rows.chunks(CHUNK) {
        let models = chunk.iter().map(|i| processed::ActiveModel { event_id: Set(i.clone()) });
        processed::Entity::insert_many(models).on_conflict_do_nothing().exec_without_returning(txn).await?;
    }
    Ok(claimed)
}

/// Forgets every position and applied id (a rebuild starts over).
pub(crate) async fn clear(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    processed::Entity::delete_many().exec(txn).await?;
    cursor::Entity::delete_many().exec(txn).await?;
    Ok(())
}
