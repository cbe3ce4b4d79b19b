//! The metric formulas of the domain, exact over integers.
//!
//! Money is in integer minor units; rates are exact ratios so a figure can be
//! reproduced to the cent from the stored events, with one rounding at the end.

/// An exact, non-negative ratio `num / den` with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// Numerator.
    pub num: u64,
    /// Denominator, never zero.
    pub den: u64,
}

impl Ratio {
    /// A ratio, or `None` when the denominator is zero (no data, not 0 %).
    pub fn new(num: u64, den: u64) -> Option<Ratio> {
        (den > 0).then_some(Ratio { num, den })
    }

    /// The ratio as a percentage.
    pub fn percent(self) -> f64 {
        self.num as f64 * 100.0 / self.den as f64
    }

    /// The ratio as a plain fraction.
    pub fn value(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// Divides with rounding half away from zero.
pub(crate) fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() { q + n.signum() * d.signum() } else { q }
}

/// Stage conversion: of `from` leads that reached a stage, how many reached the next.
pub fn conversion(from: u64, to: u64) -> Option<Ratio> {
    Ratio::new(to, from)
}

/// Pipeline generated: the sum of the values of SDR-sourced opportunities.
pub fn pipeline_generated(values_minor: impl IntoIterator<Item = i64>) -> i64 {
    values_minor.into_iter().sum()
}

/// Average deal size = pipeline generated / number of qualified opportunities.
pub fn average_deal_size(pipeline_minor: i64, opportunities: u64) -> Option<i64> {
    (opportunities > 0).then(|| div_round(i128::from(pipeline_minor), i128::from(opportunities)) as i64)
}

/// Lead-to-opportunity conversion = SQOs / leads worked.
pub fn lead_to_opportunity(sqos: u64, leads_worked: u64) -> Option<Ratio> {
    Ratio::new(sqos, leads_worked)
}

/// Pipeline coverage = open pipeline value / quota, as a multiple.
pub fn coverage(open_pipeline_minor: i64, quota_minor: i64) -> Option<f64> {
    (quota_minor > 0).then(|| open_pipeline_minor as f64 / quota_minor as f64)
}

/// Win rate = won / (won + lost).
pub fn win_rate(won: u64, lost: u64) -> Option<Ratio> {
    Ratio::new(won, won + lost)
}

/// Forecast = open pipeline value × historical close rate, rounded to the minor unit.
pub fn forecast(open_pipeline_minor: i64, close_rate: Ratio) -> i64 {
    div_round(i128::from(open_pipeline_minor) * i128::from(close_rate.num), i128::from(close_rate.den)) as i64
}

/// Sales velocity: the average days from acceptance to close, over the `closed`
/// opportunities that took `seconds_to_close` in all; `None` when none closed.
pub fn velocity_days(seconds_to_close: i64, closed: u64) -> Option<f64> {
    (closed > 0).then(|| seconds_to_close as f64 / closed as f64 / 86_400.0)
}

/// Share of the submitted opportunities that were accepted; `None` when none was submitted.
pub fn acceptance_rate(accepted: u64, submitted: u64) -> Option<Ratio> {
    Ratio::new(accepted, submitted)
}

/// Share of the acceptances that overrode the gate; `None` when none was accepted.
pub fn override_share(overrides: u64, accepted: u64) -> Option<Ratio> {
    Ratio::new(overrides, accepted)
}

/// The `q` quantile (0 to 1) of a sample given as `(value, count)` pairs (a
/// histogram), interpolated linearly between the two closest ranks (the
/// definition of R's and NumPy's default): the median of an even sample is the
/// mean of its two middle values, so the median of 1, 3, 10 and 40 is 6.5.
/// `None` when the sample is empty.
pub fn quantile_of_counts(counts: &[(i64, u64)], q: f64) -> Option<f64> {
    let mut v: Vec<(i64, u64)> = counts.iter().copied().filter(|(_, n)| *n > 0).collect();
    v.sort_unstable();
    let total: u64 = v.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // The zero-based rank the quantile falls at, between `below` and `below + 1`.
    let at = q.clamp(0.0, 1.0) * (total - 1) as f64;
    let below = at.floor() as u64;
    let value = |rank: u64| {
        let mut seen = 0;
        v.iter().find(|(_, n)| {
            seen += n;
            seen > rank
        })
    };
    let lo = value(below)?.0 as f64;
    let hi = value((below + 1).min(total - 1))?.0 as f64;
    Some(lo + (hi - lo) * (at - below as f64))
}

/// Cohen's kappa between two raters' binary labels (`true` = accept), each
/// pair one item: (p_o - p_e) / (1 - p_e). `None` with no items; 1.0 when
/// both raters always give the same single label (agreement cannot exceed chance
/// there, and nothing disagrees).
pub fn cohen_kappa(pairs: &[(bool, bool)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let agree = pairs.iter().filter(|(a, b)| a == b).count() as f64;
    let a_yes = pairs.iter().filter(|(a, _)| *a).count() as f64 / n;
    let b_yes = pairs.iter().filter(|(_, b)| *b).count() as f64 / n;
    let p_o = agree / n;
    let p_e = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
    if (1.0 - p_e).abs() < f64::EPSILON {
        return Some(if p_o >= 1.0 { 1.0 } else { 0.0 });
    }
    Some((p_o - p_e) / (1.0 - p_e))
}

/// The benchmarks of `domain.md`, used as alarms.
pub mod benchmarks {
    use crate::Segment;

    /// SQL → SQO above this, with a close rate below [`CLOSE_RATE_FLOOR`], means loose criteria.
    pub const SQL_TO_SQO_LOOSE: f64 = 0.40;
    /// SQL → SQO below this, with a win rate above [`WIN_RATE_HIGH`], means too strict criteria.
    pub const SQL_TO_SQO_STRICT: f64 = 0.20;
    /// A win rate above this, with SQL → SQO below [`SQL_TO_SQO_STRICT`], means too strict criteria.
    pub const WIN_RATE_HIGH: f64 = 0.30;
    /// SQO → won below this means the criteria should be tightened.
    pub const CLOSE_RATE_FLOOR: f64 = 0.15;
    /// Pipeline coverage below this multiple of quota is pipeline risk.
    pub const COVERAGE_FLOOR: f64 = 3.0;
    /// An acceptance rate at or above this ...
    pub const INFLATION_ACCEPTANCE: f64 = 0.80;
    /// ... with fewer than this share of SQOs reached within 30 days is stage inflation.
    pub const INFLATION_CONTACT: f64 = 0.50;
    /// The follow-up window: an SQO accepted less than this many days ago may still be reached
    /// in time, so a month counts toward stage inflation only once this long after its end.
    pub const FOLLOW_UP_DAYS: i64 = 30;

    /// Whether every SQO accepted in `period` (`YYYY-MM`) has had its whole follow-up window by
    /// `now`; `false` for a period that is not a month.
    pub fn follow_up_matured(period: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Ok(first) = chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d") else { return false };
        let Some(end) = first.checked_add_months(chrono::Months::new(1)) else { return false };
        end.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(FOLLOW_UP_DAYS) <= now
    }

    /// SQOs per SDR per month expected in a segment (inclusive), where the domain gives one.
    pub fn sqo_target(segment: Segment) -> Option<(u64, u64)> {
        match segment {
            Segment::Smb => Some((15, 25)),
            Segment::Enterprise => Some((5, 10)),
            Segment::MidMarket => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_month_matures_thirty_days_after_its_end() {
        use super::benchmarks::follow_up_matured;
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        assert!(!follow_up_matured("2026-11", at("2026-12-30T23:59:59Z")));
        assert!(follow_up_matured("2026-11", at("2026-12-31T00:00:00Z")));
        assert!(follow_up_matured("2026-12", at("2027-01-31T00:00:00Z")), "across the year");
        assert!(!follow_up_matured("2026-13", at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn medians_are_medians() {
        let days = |sample: &[i64]| {
            let mut counts = std::collections::BTreeMap::new();
            for v in sample {
                *counts.entry(*v).or_insert(0u64) += 1;
            }
            counts.into_iter().collect::<Vec<_>>()
        };
        // domain.md: first conversations on days 1, 3, 10 and 40.
        assert_eq!(quantile_of_counts(&days(&[40, 1, 10, 3]), 0.5), Some(6.5));
        assert_eq!(quantile_of_counts(&days(&[1, 3, 10]), 0.5), Some(3.0));
        assert_eq!(quantile_of_counts(&days(&[2, 2, 2, 9]), 0.5), Some(2.0), "repeated values");
        assert_eq!(quantile_of_counts(&days(&[7]), 0.9), Some(7.0));
        // 1..=10: the 90th percentile falls nine tenths of the way from 9 to 10.
        let p90 = quantile_of_counts(&days(&(1..=10).collect::<Vec<_>>()), 0.9).unwrap();
        assert!((p90 - 9.1).abs() < 1e-9, "{p90}");
        assert_eq!(quantile_of_counts(&days(&[1, 5]), 0.0), Some(1.0));
        assert_eq!(quantile_of_counts(&days(&[1, 5]), 1.0), Some(5.0));
        assert_eq!(quantile_of_counts(&[(5, 0)], 0.5), None);
    }

    use super::*;
    use proptest::prelude::*;

    const DOLLAR: i64 = 100;

    #[test]
    fn hundred_leads_fifteen_sql_is_fifteen_percent() {
        let r = conversion(100, 15).unwrap();
        assert_eq!(r.percent(), 15.0);
    }

    #[test]
    fn five_hundred_thousand_open_at_a_quarter_close_rate_forecasts_125k() {
        // 20 open opportunities worth $500,000 in total, historical close rate 25 %.
        let open: i64 = (0..20).map(|_| 25_000 * DOLLAR).sum();
        assert_eq!(open, 500_000 * DOLLAR);
        let close_rate = win_rate(25, 75).unwrap();
        assert_eq!(close_rate.percent(), 25.0);
        assert_eq!(forecast(open, close_rate), 125_000 * DOLLAR);
    }

    #[test]
    fn a_gate_that_cuts_volume_forty_percent_and_doubles_the_win_rate_keeps_closed_deals() {
        // Auto-created opportunities from 80 % of 100 SQLs, 15 % won.
        let sqls = 100u64;
        let auto = sqls * 80 / 100;
        let auto_won = 12u64;
        assert_eq!(win_rate(auto_won, auto - auto_won).unwrap().percent(), 15.0);
        // The gate cuts volume by 40 %; the win rate doubles to 30 %.
        let gated = auto * 60 / 100;
        assert_eq!(gated, 48);
        let gated_won = 14u64; // 30 % of 48 = 14.4
        let rate = win_rate(gated_won, gated - gated_won).unwrap();
        assert!((rate.percent() - 30.0).abs() < 1.0, "{}", rate.percent());
        // About the same closed deals from a far cleaner pipeline.
        assert!(gated_won.abs_diff(auto_won) <= auto_won / 5);
    }

    #[test]
    fn pipeline_average_deal_size_coverage_and_lead_to_opportunity() {
        let pipeline = pipeline_generated([30_000 * DOLLAR, 50_000 * DOLLAR, 40_000 * DOLLAR]);
        assert_eq!(pipeline, 120_000 * DOLLAR);
        assert_eq!(average_deal_size(pipeline, 3), Some(40_000 * DOLLAR));
        assert_eq!(average_deal_size(pipeline, 0), None);
        assert_eq!(coverage(300_000 * DOLLAR, 100_000 * DOLLAR), Some(3.0));
        assert_eq!(coverage(1, 0), None);
        assert_eq!(lead_to_opportunity(12, 400).unwrap().percent(), 3.0);
    }

    #[test]
    fn no_data_is_none_not_zero() {
        assert_eq!(win_rate(0, 0), None);
        assert_eq!(conversion(0, 0), None);
        assert_eq!(win_rate(0, 3).unwrap().percent(), 0.0);
    }

    #[test]
    fn rounding_is_half_away_from_zero_once_at_the_end() {
        assert_eq!(forecast(1, Ratio::new(1, 2).unwrap()), 1);
        assert_eq!(forecast(-1, Ratio::new(1, 2).unwrap()), -1);
        assert_eq!(forecast(10, Ratio::new(1, 3).unwrap()), 3);
        assert_eq!(average_deal_size(5, 2), Some(3));
    }

    #[test]
    fn velocity_is_the_average_of_days_to_close() {
        // Two deals closed after 10 and 20 days: 15 days on average.
        assert_eq!(velocity_days(30 * 86_400, 2), Some(15.0));
        assert_eq!(velocity_days(0, 0), None);
    }

    proptest! {
        #[test]
        fn forecast_never_exceeds_open_pipeline(open in 0i64..1_000_000_000_000, won in 0u64..10_000, lost in 0u64..10_000) {
            if let Some(rate) = win_rate(won, lost) {
                let f = forecast(open, rate);
                prop_assert!(f >= 0 && f <= open);
            }
        }

        #[test]
        fn conversion_is_a_percentage_when_the_later_stage_is_a_subset(from in 1u64..1_000_000, frac in 0.0f64..=1.0) {
            let to = (from as f64 * frac) as u64;
            let p = conversion(from, to).unwrap().percent();
            prop_assert!((0.0..=100.0).contains(&p));
        }
    }

    #[test]
    fn cohen_kappa_matches_hand_computed_values() {
        // 50 items: both yes 20, both no 15, A yes B no 5, A no B yes 10.
        // p_o = 35/50 = 0.7; A yes 25/50, B yes 30/50; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4.
        let mut pairs = vec![(true, true); 20];
        pairs.extend(vec![(false, false); 15]);
        pairs.extend(vec![(true, false); 5]);
        pairs.extend(vec![(false, true); 10]);
        assert!((cohen_kappa(&pairs).unwrap() - 0.4).abs() < 1e-12);
        // Perfect agreement with both labels: 1; exactly opposite: -1.
        assert_eq!(cohen_kappa(&[(true, true), (false, false)]), Some(1.0));
        assert_eq!(cohen_kappa(&[(true, false), (false, true)]), Some(-1.0));
        // One label only and full agreement: 1. No items: none.
        assert_eq!(cohen_kappa(&[(true, true); 4]), Some(1.0));
        assert_eq!(cohen_kappa(&[]), None);
    }
}
