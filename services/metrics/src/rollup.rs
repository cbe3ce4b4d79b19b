//! What a roll-up counts: the names of the figures, the slice and the grain
//! a counter is kept at, and the month it falls in. Ingestion adds to the
//! counters ([`Deltas`]); the funnel reads them back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// Month of a time, `YYYY-MM` (UTC).
pub fn period(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// The slice a figure is counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slice {
    /// Lead source.
    pub source: String,
    /// Segment.
    pub segment: String,
    /// Team (empty for lead figures).
    pub team: String,
    /// SDR.
    pub rep: String,
    /// Campaign.
    pub campaign: String,
}

/// Figures kept in roll-ups (see `FunnelFigures` in the contract).
pub mod figure {
    pub const LEADS: &str = "leads";
    pub const MQLS: &str = "mqls";
    pub const SQLS: &str = "sqls";
    pub const SUBMITTED: &str = "sqos_submitted";
    pub const ACCEPTED: &str = "sqos_accepted";
    pub const REJECTED: &str = "sqos_rejected";
    pub const OVERRIDES: &str = "overrides";
    pub const WON: &str = "won";
    pub const LOST: &str = "lost";
    // Money figures are kept per currency (see [`money`]), never summed across currencies.
    pub const PIPELINE: &str = "pipeline_generated";
    pub const WON_AMOUNT: &str = "won_amount";
    pub const OPEN: &str = "open_pipeline";
    pub const VELOCITY_SECS: &str = "velocity_seconds";
    pub const CLOSED_ACCEPTED: &str = "closed_accepted";
    pub const NO_ACTIVITY: &str = "accepted_without_activity";
    // A cohort is the leads (or SQOs) that entered a stage in a month, so its size is that
    // month's count of entries (MQLS, SQLS, ACCEPTED); these count the cohort's later milestones,
    // in the month the cohort entered.
    pub const COHORT_MQL_SQL: &str = "cohort_mql_sql";
    pub const COHORT_SQL_SQO: &str = "cohort_sql_sqo";
    pub const COHORT_SQL_WON: &str = "cohort_sql_won";
    pub const COHORT_SQO_WON: &str = "cohort_sqo_won";
    pub const WITHIN_30: &str = "meaningful_within_30";
    pub const STALE_CONTACTS: &str = "accepted_stale_contacts";
    /// Prefix of the follow-through histogram: `followthrough_day:DD`, DD in 00..=90.
    pub const FOLLOWTHROUGH_DAY: &str = "followthrough_day:";
    /// Last day of the follow-through histogram (it holds that day and later).
    pub const FOLLOWTHROUGH_MAX_DAYS: i64 = 90;
    /// Prefix of rejections by reason: `reject_reason:NO_BUDGET`.
    pub const REJECT_REASON: &str = "reject_reason:";
    /// Calibration reviews of the decisions made in the month (one per reviewer and sample).
    pub const CALIBRATION_REVIEWED: &str = "calibration_reviewed";
    /// Those agreeing with the decision (a changed verdict moves this count).
    pub const CALIBRATION_AGREED: &str = "calibration_agreed";
    /// Leads created in the month whose contact a provider verified (on some channel).
    pub const LEADS_VERIFIED: &str = "leads_verified";
    /// Leads created in the month whose contact bounced or left, none verified.
    pub const LEADS_BOUNCED: &str = "leads_bounced";
    // Expansions, counted apart from the SDR funnel.
    pub const EXPANSIONS_SUBMITTED: &str = "expansions_submitted";
    pub const EXPANSIONS_ACCEPTED: &str = "expansions_accepted";
    pub const EXPANSION_PIPELINE: &str = "expansion_pipeline";
    pub const EXPANSIONS_WON: &str = "expansions_won";

    /// The counter of money figure `base` in `currency`: `pipeline_generated@EUR`.
    pub fn money(base: &str, currency: &str) -> String {
        format!("{base}@{currency}")
    }

    /// A money counter's figure and currency; `None` for any other counter.
    pub fn split_money(name: &str) -> Option<(&str, &str)> {
        name.split_once('@')
    }
}

/// The dimension sets roll-ups are kept at. Every grain keeps month, source
/// and segment (the forecast needs them) and at most one of team, rep and
/// campaign; a query reads the grain that holds its dimensions, so its cost
/// follows the groups it returns. (A grain of every dimension would hold
/// about a row per lead: no roll-up at all.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// Month, source, segment.
    Base,
    /// ... and team.
    Team,
    /// ... and rep.
    Rep,
    /// ... and campaign.
    Campaign,
}

impl Grain {
    /// Every grain.
    pub const ALL: [Grain; 4] = [Grain::Base, Grain::Team, Grain::Rep, Grain::Campaign];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Base => "base",
            Grain::Team => "team",
            Grain::Rep => "rep",
            Grain::Campaign => "campaign",
        }
    }

    /// The grain keeping team, rep or campaign as asked; `None` for more than one.
    pub fn for_dimensions(team: bool, rep: bool, campaign: bool) -> Option<Grain> {
        match (team, rep, campaign) {
            (false, false, false) => Some(Grain::Base),
            (true, false, false) => Some(Grain::Team),
            (false, true, false) => Some(Grain::Rep),
            (false, false, true) => Some(Grain::Campaign),
            _ => None,
        }
    }

    fn mask(self, s: &Slice) -> Slice {
        let keep = |on: bool, v: &String| if on { v.clone() } else { String::new() };
        Slice {
            source: s.source.clone(),
            segment: s.segment.clone(),
            team: keep(self == Grain::Team, &s.team),
            rep: keep(self == Grain::Rep, &s.rep),
            campaign: keep(self == Grain::Campaign, &s.campaign),
        }
    }
}

/// One roll-up counter: a figure of a tenant's month, in a slice kept at a grain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Counter {
    /// Tenant.
    pub tenant: String,
    /// Month, `YYYY-MM`.
    pub period: String,
    /// The dimensions `slice` keeps.
    pub grain: Grain,
    /// The slice, masked to `grain`.
    pub slice: Slice,
    /// Figure name (see [`figure`]).
    pub figure: String,
}

/// Roll-up changes of a batch, summed per counter so each is written once.
#[derive(Debug, Default)]
pub struct Deltas(HashMap<Counter, i64>);

impl Deltas {
    /// Adds `by` to `figure` of `tenant`'s `period` in `slice`, at every grain.
    pub fn add(&mut self, tenant: &str, period: &str, slice: &Slice, figure: impl Into<String>, by: i64) {
        if by == 0 {
            return;
        }
        let figure = figure.into();
        for grain in Grain::ALL {
            let counter = Counter {
                tenant: tenant.to_string(),
                period: period.to_string(),
                grain,
                slice: grain.mask(slice),
                figure: figure.clone(),
            };
            *self.0.entry(counter).or_default() += by;
        }
    }

    /// The counters that change (those whose changes cancel out are left out).
    pub fn into_changes(self) -> impl Iterator<Item = (Counter, i64)> {
        self.0.into_iter().filter(|(_, by)| *by != 0)
    }
}
