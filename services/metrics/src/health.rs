//! Funnel health: the figures of a range of months against the domain's
//! benchmarks, each finding with the figures behind it.

use chrono::{DateTime, Utc};
use qualify_domain::metrics::benchmarks as b;
use qualify_domain::metrics::{Ratio, acceptance_rate, override_share};
use qualify_platform::ApiError;
use sea_orm::DatabaseConnection;

use crate::funnel::{self, Dimension, Group, Query};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingCode {
    /// Many SQLs become SQOs, but few of those are won: the criteria let too much through.
    LooseCriteria,
    /// Few closed SQOs are won: tighten the acceptance criteria.
    TightenCriteria,
    /// A team's open pipeline is a small multiple of its quota.
    LowCoverage,
    /// Nearly every submission accepted, but few SQOs reached soon after.
    StageInflation,
    /// A larger share of acceptances overrode the gate than the month before.
    OverridesRising,
    /// Deals accepted over stale or unverified contact data.
    StaleContactData,
    /// An SDR's SQOs of a month are outside the segment's target.
    SdrOffTarget,
    /// Few SQLs become SQOs while most closed SQOs are won: good deals are left out.
    TooStrict,
    /// Amounts of a currency and month have no exchange rate: money figures leave them out.
    MissingExchangeRate,
}

/// A figure behind a finding, with the benchmark it was held against.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Figure name.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// The benchmark, if any.
    pub benchmark: Option<f64>,
}

/// One finding: what, where (`None`: the whole range), why.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What.
    pub code: FindingCode,
    /// The group it concerns; `None` for the whole range.
    pub group: Option<Group>,
    /// An explanation for people.
    pub message: String,
    /// The figures behind it.
    pub evidence: Vec<Evidence>,
}

fn evidence(name: &str, value: f64, benchmark: Option<f64>) -> Evidence {
    Evidence { name: name.into(), value, benchmark }
}

fn finding(code: FindingCode, group: Option<Group>, message: String, evidence: Vec<Evidence>) -> Finding {
    Finding { code, group, message, evidence }
}

/// The findings of the whole range's figures: loose, too strict or to be
/// tightened criteria, and deals accepted over stale contact data.
fn range_findings(f: &funnel::Figures) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(s), Some(w)) = (f.sql_to_sqo, f.win_rate)
        && s > b::SQL_TO_SQO_LOOSE
        && w < b::CLOSE_RATE_FLOOR
    {
        out.push(finding(
            FindingCode::LooseCriteria,
            None,
            format!("{:.0} % of SQLs became SQOs but only {:.0} % of closed deals were won", s * 100.0, w * 100.0),
            vec![
                evidence("sql_to_sqo", s, Some(b::SQL_TO_SQO_LOOSE)),
                evidence("win_rate", w, Some(b::CLOSE_RATE_FLOOR)),
            ],
        ));
    }
    if let Some(w) = f.win_rate
        && w < b::CLOSE_RATE_FLOOR
    {
        out.push(finding(
            FindingCode::TightenCriteria,
            None,
            format!("only {:.0} % of closed SQOs were won: tighten the acceptance criteria", w * 100.0),
            vec![evidence("win_rate", w, Some(b::CLOSE_RATE_FLOOR)), evidence("won", f.won as f64, None)],
        ));
    }
    if f.accepted_with_stale_contacts > 0 {
        out.push(finding(
            FindingCode::StaleContactData,
            None,
            format!("{} accepted deals stand on stale or unverified contact data", f.accepted_with_stale_contacts),
            vec![
                evidence("accepted_with_stale_contacts", f.accepted_with_stale_contacts as f64, Some(0.0)),
                evidence("sqos_accepted", f.sqos_accepted as f64, None),
            ],
        ));
    }
    if let (Some(s), Some(w)) = (f.sql_to_sqo, f.win_rate)
        && s < b::SQL_TO_SQO_STRICT
        && w > b::WIN_RATE_HIGH
    {
        out.push(finding(
            FindingCode::TooStrict,
            None,
            format!(
                "only {:.0} % of SQLs became SQOs while {:.0} % of closed deals were won: the criteria leave good deals out",
                s * 100.0,
                w * 100.0
            ),
            vec![evidence("sql_to_sqo", s, Some(b::SQL_TO_SQO_STRICT)), evidence("win_rate", w, Some(b::WIN_RATE_HIGH))],
        ));
    }
    for (currency, period) in &f.missing_rates {
        out.push(finding(
            FindingCode::MissingExchangeRate,
            Some(Group { period: period.clone(), ..Group::default() }),
            format!(
                "amounts in {currency} of {period} have no exchange rate into {}: money figures leave them out until one is set",
                f.currency_code
            ),
            vec![],
        ));
    }
    out
}

/// The findings for `tenant` over `start..=end`.
pub async fn findings(
    db: &DatabaseConnection,
    tenant: &str,
    (start, end): (&str, &str),
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, ApiError> {
    let query = |group_by: Vec<Dimension>| Query::grouped(tenant, start, end, group_by);
    let mut out = Vec::new();

    // The whole range.
    let all = funnel::funnel(db, &query(vec![])).await?;
    if let Some(r) = all.first() {
        out.extend(range_findings(&r.figures));
    }

    // Coverage per team that has a quota.
    for r in funnel::funnel(db, &query(vec![Dimension::Team])).await? {
        let (g, f) = (r.group, r.figures);
        if let Some(c) = f.coverage
            && !g.team.is_empty()
            && c < b::COVERAGE_FLOOR
        {
            out.push(finding(
                FindingCode::LowCoverage,
                Some(g.clone()),
                format!("team {} has {c:.1}x its quota in open pipeline", g.team),
                vec![
                    evidence("coverage", c, Some(b::COVERAGE_FLOOR)),
                    evidence("open_pipeline_minor", f.open_pipeline_minor as f64, None),
                    evidence("quota_minor", f.quota_minor as f64, None),
                ],
            ));
        }
    }

    // Month by month: stage inflation, and overrides on the rise.
    let mut previous_share: Option<f64> = None;
    for r in funnel::funnel(db, &query(vec![Dimension::Period])).await? {
        let (g, f) = (r.group, r.figures);
        // Only months with acceptances (no acceptance is no inflation) whose SQOs have all had
        // their follow-up window: a deal accepted last week may still be called in time.
        if f.sqos_accepted > 0
            && b::follow_up_matured(&g.period, now)
            && let Some(acceptance) = acceptance_rate(f.sqos_accepted as u64, f.sqos_submitted.max(0) as u64)
        {
            let acceptance = acceptance.value();
            let contact = f.meaningful_within_30_days.unwrap_or(0.0);
            if acceptance >= b::INFLATION_ACCEPTANCE && contact < b::INFLATION_CONTACT {
                out.push(finding(
                    FindingCode::StageInflation,
                    Some(g.clone()),
                    format!(
                        "{}: {:.0} % of submissions accepted, but only {:.0} % of SQOs reached within 30 days",
                        g.period,
                        acceptance * 100.0,
                        contact * 100.0
                    ),
                    vec![
                        evidence("acceptance_rate", acceptance, Some(b::INFLATION_ACCEPTANCE)),
                        evidence("meaningful_within_30_days", contact, Some(b::INFLATION_CONTACT)),
                    ],
                ));
            }
        }
        let share = override_share(f.overrides.max(0) as u64, f.sqos_accepted.max(0) as u64).map(Ratio::value);
        if let (Some(now), Some(before)) = (share, previous_share)
            && now > before
        {
            out.push(finding(
                FindingCode::OverridesRising,
                Some(g.clone()),
                format!(
                    "{}: {:.0} % of acceptances overrode the gate, up from {:.0} %",
                    g.period,
                    now * 100.0,
                    before * 100.0
                ),
                vec![evidence("override_share", now, Some(before)), evidence("overrides", f.overrides as f64, None)],
            ));
        }
        if share.is_some() {
            previous_share = share;
        }
    }

    // SQOs per SDR per month against the segment's target.
    let by_rep = query(vec![Dimension::Period, Dimension::Rep, Dimension::Segment]);
    for r in funnel::funnel(db, &by_rep).await? {
        let (g, f) = (r.group, r.figures);
        let Some((low, high)) = g.segment.and_then(b::sqo_target) else { continue };
        let sqos = f.sqos_accepted.max(0) as u64;
        if g.rep.is_empty() || (sqos == 0 && f.sqos_submitted == 0) || (low..=high).contains(&sqos) {
            continue;
        }
        out.push(finding(
            FindingCode::SdrOffTarget,
            Some(g.clone()),
            format!("{} had {sqos} SQOs in {}, against a target of {low}–{high}", g.rep, g.period),
            vec![evidence("sqos_accepted", sqos as f64, Some(low as f64)), evidence("target_high", high as f64, None)],
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(f: &funnel::Figures) -> Vec<FindingCode> {
        range_findings(f).into_iter().map(|f| f.code).collect()
    }

    /// domain.md: SQL → SQO of 20–40 %; far below it while most closed deals
    /// are won, the gate leaves good deals out. 1 SQO of 6 SQLs (16.7 %), won
    /// 2 of 5 closed (40 %): too strict; at 20 % or at a 30 % win rate: not.
    #[test]
    fn too_strict_when_few_sqls_pass_and_most_closed_deals_are_won() {
        let f = |s: f64, w: f64| funnel::Figures { sql_to_sqo: Some(s), win_rate: Some(w), ..Default::default() };
        assert_eq!(codes(&f(1.0 / 6.0, 0.4)), [FindingCode::TooStrict]);
        let found = range_findings(&f(1.0 / 6.0, 0.4)).remove(0);
        assert_eq!(found.evidence[0].benchmark, Some(0.20));
        assert_eq!(found.evidence[1].benchmark, Some(0.30));
        assert!(codes(&f(0.20, 0.4)).is_empty(), "at the benchmark's floor");
        assert!(codes(&f(1.0 / 6.0, 0.30)).is_empty(), "a 30 % win rate is not high");
        assert_eq!(codes(&f(0.5, 0.1)), [FindingCode::LooseCriteria, FindingCode::TightenCriteria]);
        assert!(codes(&funnel::Figures::default()).is_empty(), "no figures, no finding");
    }
}
