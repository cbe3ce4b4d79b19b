//! Batch statements for PostgreSQL whose only parameter is the rows as JSON:
//! the statement text never changes, so it is prepared once, and no statement
//! carries thousands of parameters. (SQLite takes chunks of ordinary inserts.)

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, FromQueryResult, Statement};

/// Rows per statement on SQLite, well below its limit on bound parameters.
pub(super) const CHUNK: usize = 500;

/// A table's columns with their PostgreSQL types, in the order of its rows' JSON.
pub(super) type Columns = &'static [(&'static str, &'static str)];

/// Upserts `rows` into `table` in one statement: on a conflict on `key`, `update` applies.
pub(super) async fn upsert_json(
    txn: &DatabaseTransaction,
    table: &str,
    columns: Columns,
    key: &str,
    update: &str,
    rows: impl Iterator<Item = serde_json::Value>,
) -> Result<(), DbErr> {
    let rows: Vec<serde_json::Value> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let typed: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM json_to_recordset($1::json) AS x({typed}) \
         ON CONFLICT ({key}) DO UPDATE SET {update}",
        cols = names.join(", "),
        typed = typed.join(", "),
    );
    let json = serde_json::Value::Array(rows).to_string();
    txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.into()])).await?;
    Ok(())
}

/// `SET` clause replacing every column after the first `skip` (the key) with the new row's.
pub(super) fn excluded(columns: Columns, skip: usize) -> String {
    columns[skip..].iter().map(|(n, _)| format!("{n} = excluded.{n}")).collect::<Vec<_>>().join(", ")
}

/// The rows of `table` keyed by (tenant_id, `id`) for each of `keys`, in one statement:
/// every key is a primary-key probe (a LATERAL subquery with a LIMIT is not flattened),
/// where an `IN` list is planned as a scan of the tenant's rows once the table is big.
pub(super) async fn by_keys<M: FromQueryResult>(
    txn: &DatabaseTransaction,
    table: &str,
    id: &str,
    keys: &[(String, String)],
) -> Result<Vec<M>, DbErr> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let json = serde_json::Value::Array(keys.iter().map(|(t, i)| serde_json::json!({ "t": t, "id": i })).collect());
    let sql = format!(
        "SELECT f.* FROM json_to_recordset($1::json) AS k(t text, id text) \
         CROSS JOIN LATERAL (SELECT * FROM {table} WHERE tenant_id = k.t AND {id} = k.id LIMIT 1) AS f"
    );
    let rows =
        txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.to_string().into()])).await?;
    rows.iter().map(|r| M::from_query_result(r, "")).collect()
}

/// Whether `db` is PostgreSQL (which takes the JSON paths above).
pub(super) fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}
