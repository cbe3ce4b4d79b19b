//! The `leads` table and its `lead_stage_changes` history, read and written in
//! domain types. A lead row carries what its score reads (its signals packed in
//! `signal_log`) and its last score as a versioned JSON document (`score_doc`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{Contribution, Profile, RuleKind, Score, Signal, StoredScore, signal_log};
use qualify_domain::{Lead, LeadSource, LeadStage, Role, Segment, StageChange};
use qualify_platform::ApiError;
use qualify_platform::batch::{BatchFailed, Batcher};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::entity::{account, contact, lead, stage_change};

/// Everything a stored lead's score depends on.
#[derive(Clone)]
pub struct LeadData {
    /// The lead.
    pub lead: Lead,
    /// Its account's segment.
    pub segment: Option<Segment>,
    /// The attributes fit rules test (account and contact).
    pub profile: Profile,
    signal_log: Option<Vec<u8>>,
}

impl LeadData {
    /// Its most recent signals, newest first (from the packed log).
    pub fn signals(&self) -> Vec<Signal> {
        self.signal_log.as_deref().map(signal_log::decode).unwrap_or_default()
    }

    /// Its packed signal log (empty: none yet).
    pub fn signal_log(&self) -> &[u8] {
        self.signal_log.as_deref().unwrap_or_default()
    }

    /// Adds `new` signals to its log, newest first and bounded by `max`.
    pub fn add_signals(&mut self, new: &[Signal], max: usize) {
        self.signal_log = Some(signal_log::merge(self.signal_log(), new, max));
    }

    fn from_rows(lead: lead::Model, account: account::Model, contact: Option<contact::Model>) -> Self {
        let c = contact.as_ref();
        let profile = Profile {
            industry: account.industry.clone(),
            employee_count: i64::from(account.employee_count),
            revenue_band: account.revenue_band.clone(),
            region: account.region.clone(),
            title: c.map(|c| c.title.clone()).unwrap_or_default(),
            seniority: c.map(|c| c.seniority.clone()).unwrap_or_default(),
            department: c.map(|c| c.department.clone()).unwrap_or_default(),
            buying_role: c.and_then(|c| c.buying_role.clone()).unwrap_or_default(),
        };
        let segment = account.segment.as_deref().and_then(Segment::parse);
        let signal_log = lead.signal_log.clone();
        LeadData { lead: to_lead(lead), segment, profile, signal_log }
    }
}

/// A lead row in domain terms.
pub fn to_lead(m: lead::Model) -> Lead {
    Lead {
        score: m.score_doc.as_deref().and_then(|d| decode_score(d).ok()),
        lead_id: m.lead_id,
        account_id: m.account_id,
        source: LeadSource::parse(&m.source),
        campaign: m.campaign,
        owner_sdr: m.owner_sdr,
        stage: LeadStage::parse(&m.stage).unwrap_or(LeadStage::New),
        contact_id: m.contact_id,
        created_at: m.created_at,
        updated_at: m.updated_at,
        imported: m.imported,
    }
}

/// The lead, or NOT_FOUND.
pub async fn get(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<Lead, ApiError> {
    let row = lead::Entity::find_by_id((tenant.to_string(), lead_id.to_string()))
        .one(db)
        .instrument(qualify_platform::db::span(db, "SELECT leads"))
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "lead", id: lead_id.to_string() })?;
    Ok(to_lead(row))
}

/// A tenant's leads by id (at one account when given), after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Lead>, ApiError> {
    let mut q = lead::Entity::find().filter(lead::Column::TenantId.eq(tenant));
    if let Some(account_id) = account_id {
        q = q.filter(lead::Column::AccountId.eq(account_id));
    }
    if let Some(after) = after {
        q = q.filter(lead::Column::LeadId.gt(after));
    }
    let rows = q.order_by_asc(lead::Column::LeadId).limit(limit).all(db).await?;
    Ok(rows.into_iter().map(to_lead).collect())
}

/// The ids of a tenant's leads in order, after `after` when given.
pub async fn ids(
    db: &impl ConnectionTrait,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, ApiError> {
    let mut q =
        lead::Entity::find().select_only().column(lead::Column::LeadId).filter(lead::Column::TenantId.eq(tenant));
    if let Some(after) = after {
        q = q.filter(lead::Column::LeadId.gt(after));
    }
    Ok(q.order_by_asc(lead::Column::LeadId).limit(limit).into_tuple().all(db).await?)
}

/// How many leads a tenant has, after `after` when given.
pub async fn count(db: &impl ConnectionTrait, tenant: &str, after: Option<&str>) -> Result<u64, ApiError> {
    let mut q = lead::Entity::find().filter(lead::Column::TenantId.eq(tenant));
    if let Some(after) = after {
        q = q.filter(lead::Column::LeadId.gt(after));
    }
    Ok(q.count(db).await?)
}

/// The leads of an account.
pub async fn count_at_account(db: &impl ConnectionTrait, tenant: &str, account_id: &str) -> Result<u64, ApiError> {
    Ok(lead::Entity::find()
        .filter(lead::Column::TenantId.eq(tenant))
        .filter(lead::Column::AccountId.eq(account_id))
        .count(db)
        .await?)
}

/// Stores a new lead (no score, no signals yet), as the database returns it;
/// a taken id is ALREADY_EXISTS.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, l: &Lead) -> Result<Lead, ApiError> {
    Ok(to_lead(new_row(tenant, l).insert(db).await.map_err(super::insert_error("lead", &l.lead_id))?))
}

/// A new lead's row (its signal log empty).
fn new_row(tenant: &str, l: &Lead) -> lead::ActiveModel {
    lead::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        lead_id: Set(l.lead_id.clone()),
        account_id: Set(l.account_id.clone()),
        source: Set(l.source.map(LeadSource::as_str).unwrap_or_default().to_string()),
        campaign: Set(l.campaign.clone()),
        owner_sdr: Set(l.owner_sdr.clone()),
        stage: Set(l.stage.as_str().to_string()),
        contact_id: Set(l.contact_id.clone()),
        score_doc: Set(l.score.as_ref().map(encode_score)),
        score_total: Set(l.score.as_ref().map(|s| s.score.total)),
        created_at: Set(l.created_at),
        updated_at: Set(l.updated_at),
        signal_log: Set(None),
        imported: Set(l.imported),
    }
}

/// Inserts the leads whose id is not taken yet and returns the ids it
/// inserted (the others were present): a multi-row insert per chunk.
pub async fn insert_new(db: &impl ConnectionTrait, tenant: &str, leads: &[Lead]) -> Result<BTreeSet<String>, ApiError> {
    let mut inserted = BTreeSet::new();
    for chunk in leads.chunks(BULK_CHUNK / 10) {
        let rows = chunk.iter().map(|l| new_row(tenant, l));
        let keys = lead::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_with_returning_keys(db)
            .instrument(qualify_platform::db::span(db, "INSERT leads"))
            .await?;
        if let sea_orm::TryInsertResult::Inserted(keys) = keys {
            inserted.extend(keys.into_iter().map(|(_, lead_id)| lead_id));
        }
    }
    Ok(inserted)
}

/// Of `ids`, the leads that exist.
pub async fn existing(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &BTreeSet<&str>,
) -> Result<BTreeSet<String>, ApiError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = BTreeSet::new();
    for chunk in ids.chunks(BULK_CHUNK) {
        found.extend(leads_by_id(db, tenant, chunk, false).await?.into_iter().map(|l| l.lead_id));
    }
    Ok(found)
}

/// Of `ids`, the accounts that exist, each with its segment.
pub async fn account_segments(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &BTreeSet<&str>,
) -> Result<HashMap<String, Option<Segment>>, ApiError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = HashMap::new();
    for chunk in ids.chunks(BULK_CHUNK) {
        let key = (account::Column::TenantId, account::Column::AccountId);
        for a in find_by_keys::<account::Entity>(db, key, tenant, chunk).await? {
            found.insert(a.account_id, a.segment.as_deref().and_then(Segment::parse));
        }
    }
    Ok(found)
}

/// Of `ids`, the contacts that exist, each with its account.
pub async fn contact_accounts(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &BTreeSet<&str>,
) -> Result<HashMap<String, String>, ApiError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = HashMap::new();
    for chunk in ids.chunks(BULK_CHUNK) {
        let key = (contact::Column::TenantId, contact::Column::ContactId);
        for c in find_by_keys::<contact::Entity>(db, key, tenant, chunk).await? {
            found.insert(c.contact_id, c.account_id);
        }
    }
    Ok(found)
}

/// Loads a lead with its account and contact, or NOT_FOUND.
pub async fn load(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<LeadData, ApiError> {
    let lead = lead::Entity::find_by_id((tenant.to_string(), lead_id.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "lead", id: lead_id.to_string() })?;
    let account = account::Entity::find_by_id((tenant.to_string(), lead.account_id.clone()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("lead {lead_id} has no account")))?;
    let contact = match &lead.contact_id {
        Some(id) => contact::Entity::find_by_id((tenant.to_string(), id.clone())).one(db).await?,
        None => None,
    };
    Ok(LeadData::from_rows(lead, account, contact))
}

/// Reads of stored leads for scoring. On PostgreSQL one statement reads a lead
/// joined to its account and contact, for every lead that concurrent scorings
/// asked for while the previous such statement ran (see [`Batcher`]); on
/// SQLite these are the plain primary-key reads of [`load`].
#[derive(Clone)]
pub struct ScoreReads {
    db: DatabaseConnection,
    batch: Option<Batcher<(String, String), LeadData>>,
}

/// Leads one statement reads at most.
const SCORE_READ_BATCH: usize = 256;

impl ScoreReads {
    /// Reads on `db`; `slots` batched statements at most run at once (and hold a connection each).
    pub fn new(db: DatabaseConnection, slots: usize) -> Self {
        let batch = (db.get_database_backend() == DbBackend::Postgres).then(|| {
            let conn = db.clone();
            Batcher::spawn("leads for scoring", SCORE_READ_BATCH, slots, move |keys| {
                let conn = conn.clone();
                async move { read_for_score(&conn, keys).await }
            })
        });
        ScoreReads { db, batch }
    }

    /// The lead with its account and contact, or NOT_FOUND.
    pub async fn load(&self, tenant: &str, lead_id: &str) -> Result<LeadData, ApiError> {
        if let Some(batch) = &self.batch {
            match batch.get((tenant.to_string(), lead_id.to_string())).await {
                Ok(Some(data)) => return Ok(data),
                Ok(None) => return Err(ApiError::NotFound { kind: "lead", id: lead_id.to_string() }),
                Err(BatchFailed) => {} // read alone, to answer with this read's own error
            }
        }
        load(&self.db, tenant, lead_id).await
    }
}

/// The leads `keys` name (tenant, lead id), each joined to its account and contact, in one statement.
async fn read_for_score(
    db: &DatabaseConnection,
    keys: Vec<(String, String)>,
) -> anyhow::Result<HashMap<(String, String), LeadData>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let cols = |alias: &str, names: Vec<&str>| {
            names.iter().map(|c| format!("{alias}.\"{c}\" AS \"{alias}_{c}\"")).collect::<Vec<_>>().join(", ")
        };
        format!(
            // Each key is a primary-key lookup whatever the tables' statistics say: a LATERAL
            // subquery with a LIMIT is not flattened into a join, which the planner would run
            // as a hash join scanning every lead for each batch.
            "SELECT {}, {}, {} \
             FROM json_to_recordset($1::json) AS k(t text, id text) \
             CROSS JOIN LATERAL (SELECT * FROM leads WHERE tenant_id = k.t AND lead_id = k.id LIMIT 1) l \
             CROSS JOIN LATERAL (SELECT * FROM accounts WHERE tenant_id = l.tenant_id AND account_id = l.account_id LIMIT 1) a \
             LEFT JOIN LATERAL (SELECT * FROM contacts WHERE tenant_id = l.tenant_id AND contact_id = l.contact_id LIMIT 1) c \
               ON true",
            cols("l", lead::Column::iter().map(|c| c.as_str()).collect()),
            cols("a", account::Column::iter().map(|c| c.as_str()).collect()),
            cols("c", contact::Column::iter().map(|c| c.as_str()).collect()),
        )
    });
    let json = serde_json::Value::Array(keys.iter().map(|(t, id)| serde_json::json!({ "t": t, "id": id })).collect());
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, SQL.as_str(), [json.to_string().into()]))
        .instrument(qualify_platform::db::span(db, "SELECT leads for scoring"))
        .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let lead = lead::Model::from_query_result(&row, "l_")?;
        let account = account::Model::from_query_result(&row, "a_")?;
        let contact = match row.try_get::<Option<String>>("", "c_contact_id")? {
            Some(_) => Some(contact::Model::from_query_result(&row, "c_")?),
            None => None,
        };
        let key = (lead.tenant_id.clone(), lead.lead_id.clone());
        found.insert(key, LeadData::from_rows(lead, account, contact));
    }
    Ok(found)
}

/// Ids per statement of a bulk read or write: far below either backend's bound on parameters.
const BULK_CHUNK: usize = 1000;

/// Reads the leads `lead_ids` names that exist, each with its account and contact, in three
/// statements per chunk. With `lock` the leads are locked for update in key order, so that
/// batches touching the same leads wait for each other instead of deadlocking.
pub async fn read_many(
    db: &impl ConnectionTrait,
    tenant: &str,
    lead_ids: &BTreeSet<&str>,
    lock: bool,
) -> Result<BTreeMap<String, LeadData>, ApiError> {
    let ids: Vec<&str> = lead_ids.iter().copied().collect();
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(BULK_CHUNK) {
        let leads = leads_by_id(db, tenant, chunk, lock).await?;
        let account_ids: BTreeSet<&str> = leads.iter().map(|l| l.account_id.as_str()).collect();
        let account_ids: Vec<&str> = account_ids.into_iter().collect();
        let accounts: HashMap<String, account::Model> = find_by_keys::<account::Entity>(
            db,
            (account::Column::TenantId, account::Column::AccountId),
            tenant,
            &account_ids,
        )
        .await?
        .into_iter()
        .map(|a| (a.account_id.clone(), a))
        .collect();
        let contact_ids: Vec<&str> =
            leads.iter().filter_map(|l| l.contact_id.as_deref()).collect::<BTreeSet<_>>().into_iter().collect();
        let contacts: HashMap<String, contact::Model> = find_by_keys::<contact::Entity>(
            db,
            (contact::Column::TenantId, contact::Column::ContactId),
            tenant,
            &contact_ids,
        )
        .await?
        .into_iter()
        .map(|c| (c.contact_id.clone(), c))
        .collect();
        for l in leads {
            let account = accounts
                .get(&l.account_id)
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("lead {} has no account", l.lead_id)))?;
            let contact = l.contact_id.as_ref().and_then(|id| contacts.get(id)).cloned();
            found.insert(l.lead_id.clone(), LeadData::from_rows(l, account, contact));
        }
    }
    Ok(found)
}

/// The leads `ids` (in key order) names that exist, locked for update in that order with `lock`.
async fn leads_by_id(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &[&str],
    lock: bool,
) -> Result<Vec<lead::Model>, ApiError> {
    if db.get_database_backend() == DbBackend::Postgres {
        return by_keys::<lead::Entity>(db, "lead_id", tenant, ids, lock).await;
    }
    let mut q = lead::Entity::find()
        .filter(lead::Column::TenantId.eq(tenant))
        .filter(lead::Column::LeadId.is_in(ids.iter().copied()))
        .order_by_asc(lead::Column::LeadId);
    if lock {
        q = q.lock_exclusive();
    }
    Ok(q.all(db).instrument(qualify_platform::db::span(db, "SELECT leads")).await?)
}

/// The rows of `E` (keyed by its tenant column and `key`) of `tenant` whose `key` is one of `ids`, unlocked: on
/// PostgreSQL through [`by_keys`], on SQLite an `IN` list.
async fn find_by_keys<E>(
    db: &impl ConnectionTrait,
    (tenant_col, key): (E::Column, E::Column),
    tenant: &str,
    ids: &[&str],
) -> Result<Vec<E::Model>, ApiError>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return by_keys::<E>(db, key.as_str(), tenant, ids, false).await;
    }
    Ok(E::find().filter(tenant_col.eq(tenant)).filter(key.is_in(ids.iter().copied())).all(db).await?)
}

/// On PostgreSQL, the rows of `E` whose `key` (with the tenant, the primary key) is one of
/// `ids`, in the order of `ids`, locked for update in that order with `lock`. Each id is a
/// primary-key lookup whatever plan a prepared statement settles on: a generic plan for
/// `= ANY($2)` or an `IN` list may scan the whole table (a second per thousand leads, seen on a
/// bloated leads table).
async fn by_keys<E>(
    db: &impl ConnectionTrait,
    key: &str,
    tenant: &str,
    ids: &[&str],
    lock: bool,
) -> Result<Vec<E::Model>, ApiError>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    let table = E::default().table_name().to_string();
    let sql = format!(
        "SELECT r.* FROM unnest($2::text[]) WITH ORDINALITY AS k(id, n) \
         CROSS JOIN LATERAL (SELECT * FROM {table} WHERE tenant_id = $1 AND {key} = k.id LIMIT 1{}) r ORDER BY k.n",
        if lock { " FOR UPDATE" } else { "" }
    );
    let values = vec![tenant.into(), qualify_platform::db::text_array(ids.iter().map(|id| id.to_string()))];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .instrument(qualify_platform::db::span(db, &format!("SELECT {table}")))
        .await?;
    Ok(rows.iter().map(|r| E::Model::from_query_result(r, "")).collect::<Result<_, _>>()?)
}

/// What a bulk write stores on one lead: its signal log when it changed, and
/// its new score (with the stage it moved to) when it was scored.
pub struct LeadWrite<'a> {
    /// The lead.
    pub lead_id: &'a str,
    /// Its new packed signal log, if it took signals.
    pub log: Option<&'a [u8]>,
    /// Its new score and its stage after the score's threshold move, if it was scored.
    pub score: Option<(&'a StoredScore, LeadStage)>,
}

/// Stores `writes`: one `UPDATE … FROM unnest(…)` per shape of write on
/// PostgreSQL (a parameter per column, whatever the rows), one `UPDATE … FROM
/// (VALUES …)` per shape and chunk on SQLite. The shapes: log and score, log
/// only (no scorecard in force), score only (re-scoring).
pub async fn write_many(db: &impl ConnectionTrait, tenant: &str, writes: &[LeadWrite<'_>]) -> Result<(), ApiError> {
    for shape in [(true, true), (true, false), (false, true)] {
        let rows: Vec<&LeadWrite> = writes.iter().filter(|w| (w.log.is_some(), w.score.is_some()) == shape).collect();
        if rows.is_empty() {
            continue;
        }
        let mut columns = vec!["lead_id"];
        if shape.0 {
            columns.push("signal_log");
        }
        if shape.1 {
            columns.extend(["score_doc", "score_total", "stage", "updated_at"]);
        }
        // A row's values in `columns` order.
        let values = |w: &LeadWrite| {
            let mut v: Vec<sea_orm::Value> = vec![w.lead_id.into()];
            if let Some(log) = w.log {
                v.push(log.to_vec().into());
            }
            if let Some((s, stage)) = w.score {
                v.extend([encode_score(s).into(), s.score.total.into(), stage.as_str().into(), s.scored_at.into()]);
            }
            v
        };
        if db.get_database_backend() == DbBackend::Postgres {
            write_unnested(db, tenant, &columns, rows.iter().map(|w| values(w))).await?;
        } else {
            for chunk in rows.chunks(BULK_CHUNK) {
                write_values(db, tenant, &columns, chunk.iter().map(|w| values(w))).await?;
            }
        }
    }
    Ok(())
}

async fn write_unnested(
    db: &impl ConnectionTrait,
    tenant: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<sea_orm::Value>>,
) -> Result<(), ApiError> {
    let mut by_column: Vec<Vec<sea_orm::Value>> = vec![Vec::new(); columns.len()];
    for row in rows {
        for (i, v) in row.into_iter().enumerate() {
            by_column[i].push(v);
        }
    }
    let mut params = vec![tenant.into()];
    let mut arrays = Vec::new();
    for (i, (name, values)) in columns.iter().zip(by_column).enumerate() {
        let (kind, cast) = match *name {
            "signal_log" => (sea_orm::sea_query::ArrayType::Bytes, "bytea[]"),
            "score_total" => (sea_orm::sea_query::ArrayType::Int, "int4[]"),
            "updated_at" => (sea_orm::sea_query::ArrayType::ChronoDateTimeUtc, "timestamptz[]"),
            _ => (sea_orm::sea_query::ArrayType::String, "text[]"),
        };
        params.push(sea_orm::Value::Array(kind, Some(Box::new(values))));
        arrays.push(format!("${}::{cast}", i + 2));
    }
    let sets: Vec<String> = columns[1..].iter().map(|c| format!("{c} = u.{c}")).collect();
    let sql = format!(
        "UPDATE leads SET {} FROM unnest({}) AS u({}) WHERE leads.tenant_id = $1 AND leads.lead_id = u.lead_id",
        sets.join(", "),
        arrays.join(", "),
        columns.join(", ")
    );
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, params))
        .instrument(qualify_platform::db::span(db, "UPDATE leads"))
        .await?;
    Ok(())
}

async fn write_values(
    db: &impl ConnectionTrait,
    tenant: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<sea_orm::Value>>,
) -> Result<(), ApiError> {
    let mut params = vec![tenant.into()];
    let mut tuples = Vec::new();
    for row in rows {
        let mut slots = Vec::with_capacity(row.len());
        for v in row {
            params.push(v);
            slots.push(format!("?{}", params.len()));
        }
        tuples.push(format!("({})", slots.join(", ")));
    }
    // VALUES columns are named column1, column2, …
    let sets: Vec<String> =
        columns.iter().enumerate().skip(1).map(|(i, c)| format!("{c} = v.column{}", i + 1)).collect();
    let sql = format!(
        "UPDATE leads SET {} FROM (VALUES {}) AS v WHERE leads.tenant_id = ?1 AND leads.lead_id = v.column1",
        sets.join(", "),
        tuples.join(", ")
    );
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, params))
        .instrument(qualify_platform::db::span(db, "UPDATE leads"))
        .await?;
    Ok(())
}

/// Appends moves to their leads' histories, in one insert per chunk.
pub async fn record_changes(db: &impl ConnectionTrait, tenant: &str, changes: &[StageChange]) -> Result<(), ApiError> {
    for chunk in changes.chunks(BULK_CHUNK / 10) {
        stage_change::Entity::insert_many(chunk.iter().map(|c| change_row(tenant, c))).exec(db).await?;
    }
    Ok(())
}

fn change_row(tenant: &str, c: &StageChange) -> stage_change::ActiveModel {
    stage_change::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        lead_id: Set(c.lead_id.clone()),
        from_stage: Set(c.from.as_str().to_string()),
        to_stage: Set(c.to.as_str().to_string()),
        actor: Set(c.actor.clone()),
        actor_roles: Set(c.actor_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")),
        reason: Set(c.reason.clone()),
        score: Set(c.score),
        scorecard_version: Set(c.scorecard_version),
        changed_at: Set(c.changed_at),
        ..Default::default()
    }
}

/// Moves a lead from `from` to `to` only if it still stands at `from`;
/// `false` when a concurrent move got there first.
pub async fn set_stage(
    db: &impl ConnectionTrait,
    tenant: &str,
    lead_id: &str,
    from: LeadStage,
    to: LeadStage,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let done = lead::Entity::update_many()
        .col_expr(lead::Column::Stage, Expr::value(to.as_str()))
        .col_expr(lead::Column::UpdatedAt, Expr::value(now))
        .filter(lead::Column::TenantId.eq(tenant))
        .filter(lead::Column::LeadId.eq(lead_id))
        .filter(lead::Column::Stage.eq(from.as_str()))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// Appends a move to the lead's history.
pub async fn record_change(db: &impl ConnectionTrait, tenant: &str, c: &StageChange) -> Result<(), ApiError> {
    change_row(tenant, c).insert(db).await?;
    Ok(())
}

/// A lead's moves in order, after position `after`; each with its position (for page tokens).
pub async fn changes(
    db: &impl ConnectionTrait,
    tenant: &str,
    lead_id: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<(i64, StageChange)>, ApiError> {
    let mut q = stage_change::Entity::find()
        .filter(stage_change::Column::TenantId.eq(tenant))
        .filter(stage_change::Column::LeadId.eq(lead_id));
    if let Some(after) = after {
        q = q.filter(stage_change::Column::Id.gt(after));
    }
    let rows = q.order_by_asc(stage_change::Column::Id).limit(limit).all(db).await?;
    let stage = |s: &str| LeadStage::parse(s).unwrap_or(LeadStage::New);
    Ok(rows
        .into_iter()
        .map(|m| {
            let change = StageChange {
                from: stage(&m.from_stage),
                to: stage(&m.to_stage),
                actor_roles: m.actor_roles.split(',').filter_map(Role::parse).collect(),
                lead_id: m.lead_id,
                actor: m.actor,
                reason: m.reason,
                score: m.score,
                scorecard_version: m.scorecard_version,
                changed_at: m.changed_at,
            };
            (m.id, change)
        })
        .collect())
}

/// Whether the lead exists.
pub async fn exists(db: &impl ConnectionTrait, tenant: &str, lead_id: &str) -> Result<bool, ApiError> {
    Ok(lead::Entity::find_by_id((tenant.to_string(), lead_id.to_string())).one(db).await?.is_some())
}

/// The stored document of a score, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct ScoreDocV1 {
    v: u32,
    total: i32,
    fit: i32,
    engagement: i32,
    product: i32,
    grade: String,
    recommended: String,
    scorecard_version: i64,
    scored_at: DateTime<Utc>,
    contributions: Vec<ContributionDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContributionDoc {
    rule_id: String,
    kind: String,
    points: i32,
    signals: u32,
}

/// The document form of a stored score.
pub fn encode_score(s: &StoredScore) -> String {
    let doc = ScoreDocV1 {
        v: 1,
        total: s.score.total,
        fit: s.score.fit,
        engagement: s.score.engagement,
        product: s.score.product,
        grade: s.score.grade.clone(),
        recommended: s.score.recommended.as_str().to_string(),
        scorecard_version: s.scorecard_version,
        scored_at: s.scored_at,
        contributions: s
            .score
            .contributions
            .iter()
            .map(|c| ContributionDoc {
                rule_id: c.rule_id.clone(),
                kind: c.kind.as_str().to_string(),
                points: c.points,
                signals: c.signals,
            })
            .collect(),
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

/// Reads a stored score document.
pub fn decode_score(doc: &str) -> anyhow::Result<StoredScore> {
    let d: ScoreDocV1 = serde_json::from_str(doc)?;
    anyhow::ensure!(d.v == 1, "unknown score document version {}", d.v);
    let recommended =
        LeadStage::parse(&d.recommended).ok_or_else(|| anyhow::anyhow!("unknown stage {:?}", d.recommended))?;
    let contributions = d
        .contributions
        .into_iter()
        .map(|c| {
            let kind = RuleKind::parse(&c.kind).ok_or_else(|| anyhow::anyhow!("unknown rule kind {:?}", c.kind))?;
            Ok(Contribution { rule_id: c.rule_id, kind, points: c.points, signals: c.signals })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(StoredScore {
        score: Score {
            total: d.total,
            fit: d.fit,
            engagement: d.engagement,
            product: d.product,
            grade: d.grade,
            recommended,
            contributions,
        },
        scorecard_version: d.scorecard_version,
        scored_at: d.scored_at,
    })
}
