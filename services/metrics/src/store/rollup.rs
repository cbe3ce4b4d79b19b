//! Queries of `funnel_rollups`: counters added to by ingestion, summed by the funnel.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, IdenStatic, QueryFilter,
    QuerySelect, Set,
};

use super::bulk::{CHUNK, Columns, is_postgres, upsert_json};
use super::entity::rollup::{self, Column as R};
use crate::funnel::Dimension;
use crate::rollup::{Deltas, Grain, figure};

const COLUMNS: Columns = &[
    ("tenant_id", "text"),
    ("period", "text"),
    ("grain", "text"),
    ("source", "text"),
    ("segment", "text"),
    ("team", "text"),
    ("rep", "text"),
    ("campaign", "text"),
    ("figure", "text"),
    ("value", "bigint"),
];
const KEY: &str = "tenant_id, grain, period, source, segment, team, rep, campaign, figure";
/// A counter's new value is its old one plus the change.
const ADD: &str = "funnel_rollups.value + excluded.value";

/// Adds `deltas` to the counters, creating those that do not exist yet.
pub(crate) async fn add(txn: &DatabaseTransaction, deltas: Deltas) -> Result<(), DbErr> {
    if is_postgres(txn) {
        let rows = deltas.into_changes().map(|(c, value)| {
            let s = c.slice;
            serde_json::json!({
                "tenant_id": c.tenant, "period": c.period, "grain": c.grain.as_str(), "source": s.source,
                "segment": s.segment, "team": s.team, "rep": s.rep, "campaign": s.campaign, "figure": c.figure,
                "value": value,
            })
        });
        return upsert_json(txn, "funnel_rollups", COLUMNS, KEY, &format!("value = {ADD}"), rows).await;
    }
    let rows: Vec<rollup::ActiveModel> = deltas
        .into_changes()
        .map(|(c, value)| rollup::ActiveModel {
            tenant_id: Set(c.tenant),
            period: Set(c.period),
            grain: Set(c.grain.as_str().to_string()),
            source: Set(c.slice.source),
            segment: Set(c.slice.segment),
            team: Set(c.slice.team),
            rep: Set(c.slice.rep),
            campaign: Set(c.slice.campaign),
            figure: Set(c.figure),
            value: Set(value),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        rollup::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    R::TenantId,
                    R::Grain,
                    R::Period,
                    R::Source,
                    R::Segment,
                    R::Team,
                    R::Rep,
                    R::Campaign,
                    R::Figure,
                ])
                .value(R::Value, Expr::cust(ADD))
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Forgets every counter (a rebuild starts over).
pub(crate) async fn clear(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    rollup::Entity::delete_many().exec(txn).await?;
    Ok(())
}

/// A figure summed over a group; the dimensions not grouped by are empty.
#[derive(Debug, FromQueryResult)]
pub(crate) struct Cell {
    pub period: String,
    pub source: String,
    pub segment: String,
    pub team: String,
    pub rep: String,
    pub campaign: String,
    pub figure: String,
    pub value: i64,
}

fn column(d: Dimension) -> R {
    match d {
        Dimension::Period => R::Period,
        Dimension::Source => R::Source,
        Dimension::Segment => R::Segment,
        Dimension::Team => R::Team,
        Dimension::Rep => R::Rep,
        Dimension::Campaign => R::Campaign,
    }
}

/// Every figure of `tenant` from `start` to `end` (months, inclusive) read at `grain`,
/// summed per group of `grouped` and, always, per month (money converts at
/// its month's rate), source and segment (the forecast applies each one's own
/// close rate); only the
/// counters whose dimension equals the value of each of `filters`.
pub(crate) async fn cells(
    db: &impl ConnectionTrait,
    tenant: &str,
    grain: Grain,
    (start, end): (&str, &str),
    grouped: &[Dimension],
    filters: &[(Dimension, &str)],
) -> Result<Vec<Cell>, DbErr> {
    let mut select = rollup::Entity::find().select_only();
    for d in Dimension::ALL {
        let c = column(d);
        if grouped.contains(&d) || matches!(d, Dimension::Source | Dimension::Segment | Dimension::Period) {
            select = select.column(c).group_by(c);
        } else {
            select = select.expr_as(Expr::val(""), c.as_str());
        }
    }
    let mut select = select
        .column(R::Figure)
        .group_by(R::Figure)
        .expr_as(Expr::cust("CAST(SUM(value) AS BIGINT)"), "value")
        .filter(R::TenantId.eq(tenant))
        .filter(R::Grain.eq(grain.as_str()))
        .filter(R::Period.between(start, end));
    for (d, v) in filters {
        select = select.filter(column(*d).eq(*v));
    }
    select.into_model().all(db).await
}

/// Deals won and lost by `tenant` over every month: `(source, segment, figure, count)`,
/// `figure` being [`figure::WON`] or [`figure::LOST`].
pub(crate) async fn closed_deals(
    db: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Vec<(String, String, String, i64)>, DbErr> {
    rollup::Entity::find()
        .select_only()
        .column(R::Source)
        .column(R::Segment)
        .column(R::Figure)
        .expr_as(Expr::cust("CAST(SUM(value) AS BIGINT)"), "value")
        .filter(R::TenantId.eq(tenant))
        .filter(R::Grain.eq(Grain::Base.as_str()))
        .filter(R::Figure.is_in([figure::WON, figure::LOST]))
        .group_by(R::Source)
        .group_by(R::Segment)
        .group_by(R::Figure)
        .into_tuple()
        .all(db)
        .await
}

/// The tenants with a counter in `period`.
pub(crate) async fn tenants_in(db: &impl ConnectionTrait, period: &str) -> Result<Vec<String>, DbErr> {
    rollup::Entity::find()
        .select_only()
        .column(R::TenantId)
        .distinct()
        .filter(R::Period.eq(period))
        .into_tuple()
        .all(db)
        .await
}
