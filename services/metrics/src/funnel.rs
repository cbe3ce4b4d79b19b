//! Funnel queries over the roll-ups: one grouped read whose size follows the
//! groups returned, then the domain's formulas per group.

use std::collections::{BTreeMap, HashMap};

use qualify_domain::metrics::{
    Ratio, average_deal_size, conversion, coverage, forecast, percentile_of_counts, win_rate,
};
use qualify_domain::{LeadSource, Segment};
use qualify_platform::ApiError;
use qualify_proto::convert::WireEnum;
use qualify_proto::metrics::{self as pb, FunnelDimension};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, IdenStatic, QueryFilter, QuerySelect};

use crate::ingest::{Grain, figure as f};
use crate::store::entity::quota;
use crate::store::entity::rollup::{self, Column as R};

#[derive(Debug, FromQueryResult)]
struct Cell {
    period: String,
    source: String,
    segment: String,
    team: String,
    rep: String,
    campaign: String,
    figure: String,
    value: i64,
}

/// A funnel query, validated.
pub struct Query {
    /// Tenant.
    pub tenant: String,
    /// First month.
    pub start: String,
    /// Last month (inclusive).
    pub end: String,
    /// Dimensions grouped by.
    pub group_by: Vec<FunnelDimension>,
    /// Filters: (column, value).
    pub filters: Vec<(R, String)>,
}

fn column(d: FunnelDimension) -> Option<R> {
    Some(match d {
        FunnelDimension::Period => R::Period,
        FunnelDimension::Source => R::Source,
        FunnelDimension::Segment => R::Segment,
        FunnelDimension::Team => R::Team,
        FunnelDimension::Rep => R::Rep,
        FunnelDimension::Campaign => R::Campaign,
        FunnelDimension::Unspecified => return None,
    })
}

type Figures = HashMap<String, i64>;

/// Runs `q`: the figures of every group, ordered by the group's values.
pub async fn funnel(db: &DatabaseConnection, q: &Query) -> Result<Vec<pb::FunnelRow>, ApiError> {
    let grouped: Vec<&str> = q.group_by.iter().filter_map(|d| column(*d)).map(|c| c.as_str()).collect();
    let wants = |c: R| grouped.contains(&c.as_str()) || q.filters.iter().any(|(f, _)| f.as_str() == c.as_str());
    let grain = Grain::for_dimensions(wants(R::Team), wants(R::Rep), wants(R::Campaign))
        .ok_or_else(|| ApiError::field("group_by", "may group or filter by at most one of team, rep and campaign"))?;
    // Source and segment are always read apart: the forecast applies each one's own close rate.
    let mut select = rollup::Entity::find().select_only();
    for c in [R::Period, R::Source, R::Segment, R::Team, R::Rep, R::Campaign] {
        let name = c.as_str();
        if grouped.contains(&name) || matches!(c, R::Source | R::Segment) {
            select = select.column(c).group_by(c);
        } else {
            select = select.expr_as(Expr::val(""), name);
        }
    }
    let mut select = select
        .column(R::Figure)
        .group_by(R::Figure)
        .expr_as(Expr::cust("CAST(SUM(value) AS BIGINT)"), "value")
        .filter(R::TenantId.eq(&q.tenant))
        .filter(R::Grain.eq(grain.as_str()))
        .filter(R::Period.between(q.start.as_str(), q.end.as_str()));
    for (c, v) in &q.filters {
        select = select.filter(c.eq(v.as_str()));
    }
    let cells: Vec<Cell> = select.into_model().all(db).await?;

    // Historical close rate per source and segment, over every month.
    let history: Vec<(String, String, String, i64)> = rollup::Entity::find()
        .select_only()
        .column(R::Source)
        .column(R::Segment)
        .column(R::Figure)
        .expr_as(Expr::cust("CAST(SUM(value) AS BIGINT)"), "value")
        .filter(R::TenantId.eq(&q.tenant))
        .filter(R::Grain.eq(Grain::Base.as_str()))
        .filter(R::Figure.is_in([f::WON, f::LOST]))
        .group_by(R::Source)
        .group_by(R::Segment)
        .group_by(R::Figure)
        .into_tuple()
        .all(db)
        .await?;
    let mut rates: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (source, segment, figure, value) in history {
        let e = rates.entry((source, segment)).or_default();
        if figure == f::WON { e.0 += value.max(0) as u64 } else { e.1 += value.max(0) as u64 }
    }

    // Fold the fine cells (group + source + segment) into the requested groups.
    let key = |c: &Cell| -> [String; 6] {
        let keep = |col: R, v: &str| if grouped.contains(&col.as_str()) { v.to_string() } else { String::new() };
        [
            keep(R::Period, &c.period),
            keep(R::Source, &c.source),
            keep(R::Segment, &c.segment),
            keep(R::Team, &c.team),
            keep(R::Rep, &c.rep),
            keep(R::Campaign, &c.campaign),
        ]
    };
    let mut groups: BTreeMap<[String; 6], (Figures, i64)> = BTreeMap::new();
    let mut fine: HashMap<([String; 6], String, String), i64> = HashMap::new();
    for c in &cells {
        let g = groups.entry(key(c)).or_default();
        *g.0.entry(c.figure.clone()).or_default() += c.value;
        if c.figure == f::OPEN {
            *fine.entry((key(c), c.source.clone(), c.segment.clone())).or_default() += c.value;
        }
    }
    for ((k, source, segment), open) in fine {
        let (won, lost) = rates.get(&(source, segment)).copied().unwrap_or_default();
        if let (Some(rate), Some(g)) = (win_rate(won, lost), groups.get_mut(&k)) {
            g.1 += forecast(open, rate);
        }
    }
    // Quotas of the range, once; each group takes its team's, its rep's or every team's.
    let quotas: Vec<quota::Model> = quota::Entity::find()
        .filter(quota::Column::TenantId.eq(&q.tenant))
        .filter(quota::Column::Period.between(q.start.as_str(), q.end.as_str()))
        .all(db)
        .await?;
    let quota_of = |k: &[String; 6]| -> i64 {
        let [period, _, _, team, rep, _] = k;
        let (kind, owner) = match (grouped.contains(&"team"), grouped.contains(&"rep")) {
            (true, _) if !team.is_empty() => ("team", Some(team)),
            (_, true) if !rep.is_empty() => ("rep", Some(rep)),
            _ => ("team", None),
        };
        quotas
            .iter()
            .filter(|m| m.owner_kind == kind && owner.is_none_or(|o| *o == m.owner_id))
            .filter(|m| period.is_empty() || *period == m.period)
            .map(|m| m.amount_minor)
            .sum()
    };
    Ok(groups
        .into_iter()
        .map(|(k, (figs, fc))| {
            let quota = quota_of(&k);
            row(k, &figs, fc, quota)
        })
        .collect())
}

fn row(k: [String; 6], figs: &Figures, forecast_minor: i64, quota_minor: i64) -> pb::FunnelRow {
    let g = |name: &str| figs.get(name).copied().unwrap_or(0);
    let n = |name: &str| g(name).max(0) as u64;
    let ratio = |r: Option<Ratio>| r.map(Ratio::value);
    let [period, source, segment, team, rep, campaign] = k;
    let followthrough: Vec<(i64, u64)> = figs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(f::FOLLOWTHROUGH_DAY)?.parse().ok()?, (*v).max(0) as u64)))
        .collect();
    let velocity =
        (n(f::CLOSED_ACCEPTED) > 0).then(|| g(f::VELOCITY_SECS) as f64 / n(f::CLOSED_ACCEPTED) as f64 / 86_400.0);
    pb::FunnelRow {
        group: Some(pb::FunnelGroup {
            period,
            source: LeadSource::parse(&source).map_or(0, WireEnum::to_wire),
            segment: Segment::parse(&segment).map_or(0, WireEnum::to_wire),
            team,
            rep,
            campaign,
        }),
        figures: Some(pb::FunnelFigures {
            leads: g(f::LEADS),
            mqls: g(f::MQLS),
            sqls: g(f::SQLS),
            sqos_submitted: g(f::SUBMITTED),
            sqos_accepted: g(f::ACCEPTED),
            sqos_rejected: g(f::REJECTED),
            overrides: g(f::OVERRIDES),
            won: g(f::WON),
            lost: g(f::LOST),
            pipeline_generated_minor: g(f::PIPELINE),
            won_amount_minor: g(f::WON_AMOUNT),
            open_pipeline_minor: g(f::OPEN),
            mql_to_sql: ratio(conversion(n(f::MQLS), n(f::COHORT_MQL_SQL))),
            sql_to_sqo: ratio(conversion(n(f::SQLS), n(f::COHORT_SQL_SQO))),
            sqo_to_won: ratio(conversion(n(f::ACCEPTED), n(f::COHORT_SQO_WON))),
            sql_to_won: ratio(conversion(n(f::SQLS), n(f::COHORT_SQL_WON))),
            win_rate: ratio(win_rate(n(f::WON), n(f::LOST))),
            average_deal_size_minor: average_deal_size(g(f::PIPELINE), n(f::ACCEPTED)),
            velocity_days: velocity,
            forecast_minor,
            accepted_without_activity: g(f::NO_ACTIVITY),
            followthrough_median_days: percentile_of_counts(&followthrough, 50),
            followthrough_p90_days: percentile_of_counts(&followthrough, 90),
            meaningful_within_30_days: ratio(conversion(n(f::ACCEPTED), n(f::WITHIN_30))),
            rejection_reasons: figs
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(f::REJECT_REASON)?.to_string(), *v)))
                .filter(|(_, v)| *v != 0)
                .collect(),
            accepted_with_stale_contacts: g(f::STALE_CONTACTS),
            quota_minor,
            coverage: coverage(g(f::OPEN), quota_minor),
            calibration_reviewed: g(f::CALIBRATION_REVIEWED),
            calibration_agreed: g(f::CALIBRATION_AGREED),
            calibration_agreement: ratio(Ratio::new(n(f::CALIBRATION_AGREED), n(f::CALIBRATION_REVIEWED))),
        }),
    }
}
