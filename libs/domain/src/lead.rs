//! A lead as lead scoring keeps it.

use chrono::{DateTime, Utc};

use crate::scoring::StoredScore;
use crate::{LeadSource, LeadStage};

/// A person at an account who may buy, moving through the funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    /// Id, unique in the tenant.
    pub lead_id: String,
    /// The account the lead belongs to.
    pub account_id: String,
    /// Where it came from (`None` only for a row written with a source this build does not know).
    pub source: Option<LeadSource>,
    /// Campaign that brought it.
    pub campaign: String,
    /// SDR who owns it.
    pub owner_sdr: String,
    /// Where it stands.
    pub stage: LeadStage,
    /// Its contact, if known.
    pub contact_id: Option<String>,
    /// Its last stored score.
    pub score: Option<StoredScore>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Written by an importer with its past times, not live.
    pub imported: bool,
}

impl Lead {
    /// The last stored total, 0 when never scored.
    pub fn score_total(&self) -> i32 {
        self.score.as_ref().map_or(0, |s| s.score.total)
    }
}
