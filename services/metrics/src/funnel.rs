//! Funnel queries over the roll-ups: one grouped read whose size follows the
//! groups returned, then the domain's formulas per group.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use qualify_domain::metrics::{
    Ratio, average_deal_size, conversion, coverage, forecast, quantile_of_counts, velocity_days, win_rate,
};
use qualify_domain::{LeadSource, Segment};
use qualify_platform::ApiError;
use sea_orm::DatabaseConnection;

use crate::quotas::OwnerKind;
use crate::rollup::{Grain, figure as f};
use crate::store;
use crate::store::rollup::Cell;

/// A dimension the funnel is grouped or filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Month.
    Period,
    /// Lead source.
    Source,
    /// Segment.
    Segment,
    /// Team.
    Team,
    /// SDR.
    Rep,
    /// Campaign.
    Campaign,
}

impl Dimension {
    /// Every dimension, in the order of a group's values.
    pub const ALL: [Dimension; 6] = [
        Dimension::Period,
        Dimension::Source,
        Dimension::Segment,
        Dimension::Team,
        Dimension::Rep,
        Dimension::Campaign,
    ];
}

/// The groups a query keeps: only those with these values.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Lead source.
    pub source: Option<LeadSource>,
    /// Segment.
    pub segment: Option<Segment>,
    /// Team.
    pub team: Option<String>,
    /// SDR.
    pub rep: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
}

impl Filters {
    /// Each filter as (dimension, stored value).
    fn pairs(&self) -> Vec<(Dimension, &str)> {
        let mut out = Vec::new();
        out.extend(self.source.map(|s| (Dimension::Source, s.as_str())));
        out.extend(self.segment.map(|s| (Dimension::Segment, s.as_str())));
        out.extend(self.team.as_deref().map(|v| (Dimension::Team, v)));
        out.extend(self.rep.as_deref().map(|v| (Dimension::Rep, v)));
        out.extend(self.campaign.as_deref().map(|v| (Dimension::Campaign, v)));
        out
    }
}

/// A funnel query, validated.
#[derive(Debug, Clone)]
pub struct Query {
    /// Tenant.
    pub tenant: String,
    /// First month.
    pub start: String,
    /// Last month (inclusive).
    pub end: String,
    /// Dimensions grouped by.
    pub group_by: Vec<Dimension>,
    /// Filters.
    pub filters: Filters,
}

impl Query {
    /// The whole of `tenant`'s `start..=end` grouped by `group_by`, unfiltered.
    pub fn grouped(tenant: &str, start: &str, end: &str, group_by: Vec<Dimension>) -> Self {
        Query {
            tenant: tenant.to_string(),
            start: start.to_string(),
            end: end.to_string(),
            group_by,
            filters: Filters::default(),
        }
    }
}

/// The values of a group; a dimension not grouped by is empty (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Month.
    pub period: String,
    /// Lead source.
    pub source: Option<LeadSource>,
    /// Segment.
    pub segment: Option<Segment>,
    /// Team.
    pub team: String,
    /// SDR.
    pub rep: String,
    /// Campaign.
    pub campaign: String,
}

/// The figures of a group (see `FunnelFigures` in the contract): counts and
/// amounts in minor units of the reporting currency; rates as fractions,
/// `None` without data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub leads: i64,
    pub mqls: i64,
    pub sqls: i64,
    pub sqos_submitted: i64,
    pub sqos_accepted: i64,
    pub sqos_rejected: i64,
    pub overrides: i64,
    pub won: i64,
    pub lost: i64,
    pub pipeline_generated_minor: i64,
    pub won_amount_minor: i64,
    pub open_pipeline_minor: i64,
    pub mql_to_sql: Option<f64>,
    pub sql_to_sqo: Option<f64>,
    pub sqo_to_won: Option<f64>,
    pub sql_to_won: Option<f64>,
    pub win_rate: Option<f64>,
    pub average_deal_size_minor: Option<i64>,
    pub velocity_days: Option<f64>,
    pub forecast_minor: i64,
    pub accepted_without_activity: i64,
    pub followthrough_median_days: Option<f64>,
    pub followthrough_p90_days: Option<f64>,
    pub meaningful_within_30_days: Option<f64>,
    /// Rejections per reason name (`NO_BUDGET`), those not zero.
    pub rejection_reasons: BTreeMap<String, i64>,
    pub accepted_with_stale_contacts: i64,
    pub quota_minor: i64,
    pub coverage: Option<f64>,
    pub calibration_reviewed: i64,
    pub calibration_agreed: i64,
    pub calibration_agreement: Option<f64>,
    /// The currency of every money figure: the tenant's reporting currency.
    pub currency_code: String,
    /// (currency, month) of amounts left out of the money figures for want of a rate.
    pub missing_rates: Vec<(String, String)>,
    pub expansions_submitted: i64,
    pub expansions_accepted: i64,
    pub expansion_pipeline_minor: i64,
    pub expansions_won: i64,
    pub leads_verified: i64,
    pub leads_bounced: i64,
    pub verified_share: Option<f64>,
    pub bounce_rate: Option<f64>,
}

/// One group and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The group.
    pub group: Group,
    /// Its figures.
    pub figures: Figures,
}

/// A group's values in [`Dimension::ALL`] order, as stored.
type Key = [String; 6];
type Sums = HashMap<String, i64>;
/// A currency and a month without an exchange rate.
type Missing = (String, String);

/// A group's figures as the cells fold into it.
#[derive(Default)]
struct Folded {
    sums: Sums,
    forecast: i64,
    missing: BTreeSet<Missing>,
}

/// Runs `q`: the figures of every group, ordered by the group's values.
pub async fn funnel(db: &DatabaseConnection, q: &Query) -> Result<Vec<Row>, ApiError> {
    let filters = q.filters.pairs();
    let grouped = |d: Dimension| q.group_by.contains(&d);
    let wants = |d: Dimension| grouped(d) || filters.iter().any(|(f, _)| *f == d);
    let grain = Grain::for_dimensions(wants(Dimension::Team), wants(Dimension::Rep), wants(Dimension::Campaign))
        .ok_or_else(|| ApiError::field("group_by", "may group or filter by at most one of team, rep and campaign"))?;
    // Source and segment are always read apart: the forecast applies each one's own close rate.
    let range = (q.start.as_str(), q.end.as_str());
    let cells = store::rollup::cells(db, &q.tenant, grain, range, &q.group_by, &filters).await?;

    // Historical close rate per source and segment, over every month.
    let mut rates: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (source, segment, figure, value) in store::rollup::closed_deals(db, &q.tenant).await? {
        let e = rates.entry((source, segment)).or_default();
        if figure == f::WON { e.0 += value.max(0) as u64 } else { e.1 += value.max(0) as u64 }
    }

    // Money converts into the reporting currency at its month's rate; an
    // amount without one is left out and named, never summed as it is.
    let reporting = store::currency::reporting(db, &q.tenant).await?;
    let exchange = store::currency::rates(db, &q.tenant, &reporting, range).await?;
    let convert = |period: &str, currency: &str, value: i64| -> Result<i64, Missing> {
        if value == 0 || currency.is_empty() || currency == reporting {
            return Ok(value);
        }
        match exchange.get(&(period.to_string(), currency.to_string())) {
            Some(rate) => Ok(rate.convert(value, currency, &reporting)),
            None => Err((currency.to_string(), period.to_string())),
        }
    };

    // Fold the fine cells (group + month + source + segment) into the requested groups.
    let key = |c: &Cell| -> Key {
        let keep = |d: Dimension, v: &str| if grouped(d) { v.to_string() } else { String::new() };
        [
            keep(Dimension::Period, &c.period),
            keep(Dimension::Source, &c.source),
            keep(Dimension::Segment, &c.segment),
            keep(Dimension::Team, &c.team),
            keep(Dimension::Rep, &c.rep),
            keep(Dimension::Campaign, &c.campaign),
        ]
    };
    let mut groups: BTreeMap<Key, Folded> = BTreeMap::new();
    let mut fine: HashMap<(Key, String, String), i64> = HashMap::new();
    for c in &cells {
        let g = groups.entry(key(c)).or_default();
        let (name, value) = match f::split_money(&c.figure) {
            None => (c.figure.as_str(), c.value),
            Some((name, currency)) => match convert(&c.period, currency, c.value) {
                Ok(value) => (name, value),
                Err(missing) => {
                    g.missing.insert(missing);
                    continue;
                }
            },
        };
        *g.sums.entry(name.to_string()).or_default() += value;
        if name == f::OPEN {
            *fine.entry((key(c), c.source.clone(), c.segment.clone())).or_default() += value;
        }
    }
    for ((k, source, segment), open) in fine {
        let (won, lost) = rates.get(&(source, segment)).copied().unwrap_or_default();
        if let (Some(rate), Some(g)) = (win_rate(won, lost), groups.get_mut(&k)) {
            g.forecast += forecast(open, rate);
        }
    }
    // Quotas of the range, once; each group takes its team's, its rep's or every team's.
    let quotas = store::quota::in_range(db, &q.tenant, range).await?;
    let quota_of = |k: &Key, missing: &mut BTreeSet<Missing>| -> i64 {
        let [period, _, _, team, rep, _] = k;
        let (kind, owner) = match (grouped(Dimension::Team), grouped(Dimension::Rep)) {
            (true, _) if !team.is_empty() => (OwnerKind::Team, Some(team)),
            (_, true) if !rep.is_empty() => (OwnerKind::Rep, Some(rep)),
            _ => (OwnerKind::Team, None),
        };
        quotas
            .iter()
            .filter(|m| m.owner_kind == kind && owner.is_none_or(|o| *o == m.owner_id))
            .filter(|m| period.is_empty() || *period == m.period)
            .filter_map(|m| convert(&m.period, &m.currency_code, m.amount_minor).map_err(|e| missing.insert(e)).ok())
            .sum()
    };
    Ok(groups
        .into_iter()
        .map(|(k, mut g)| {
            let quota_minor = quota_of(&k, &mut g.missing);
            let [period, source, segment, team, rep, campaign] = k;
            Row {
                group: Group {
                    period,
                    source: LeadSource::parse(&source),
                    segment: Segment::parse(&segment),
                    team,
                    rep,
                    campaign,
                },
                figures: Figures {
                    currency_code: reporting.clone(),
                    missing_rates: g.missing.into_iter().collect(),
                    ..figures(&g.sums, g.forecast, quota_minor)
                },
            }
        })
        .collect())
}

fn figures(sums: &Sums, forecast_minor: i64, quota_minor: i64) -> Figures {
    let g = |name: &str| sums.get(name).copied().unwrap_or(0);
    let n = |name: &str| g(name).max(0) as u64;
    let ratio = |r: Option<Ratio>| r.map(Ratio::value);
    let followthrough: Vec<(i64, u64)> = sums
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(f::FOLLOWTHROUGH_DAY)?.parse().ok()?, (*v).max(0) as u64)))
        .collect();
    Figures {
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
        velocity_days: velocity_days(g(f::VELOCITY_SECS), n(f::CLOSED_ACCEPTED)),
        forecast_minor,
        accepted_without_activity: g(f::NO_ACTIVITY),
        followthrough_median_days: quantile_of_counts(&followthrough, 0.5),
        followthrough_p90_days: quantile_of_counts(&followthrough, 0.9),
        meaningful_within_30_days: ratio(conversion(n(f::ACCEPTED), n(f::WITHIN_30))),
        rejection_reasons: sums
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
        currency_code: String::new(),
        missing_rates: vec![],
        expansions_submitted: g(f::EXPANSIONS_SUBMITTED),
        expansions_accepted: g(f::EXPANSIONS_ACCEPTED),
        expansion_pipeline_minor: g(f::EXPANSION_PIPELINE),
        expansions_won: g(f::EXPANSIONS_WON),
        leads_verified: g(f::LEADS_VERIFIED),
        leads_bounced: g(f::LEADS_BOUNCED),
        verified_share: ratio(Ratio::new(n(f::LEADS_VERIFIED), n(f::LEADS))),
        bounce_rate: ratio(Ratio::new(n(f::LEADS_BOUNCED), n(f::LEADS))),
    }
}
