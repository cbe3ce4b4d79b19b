//! A lead follows its opportunity: when opportunity acceptance accepts the
//! lead's opportunity the lead moves to SQO, when the deal closes to closed
//! won or lost. Acceptance's event stream drives it (`grpc::acceptance`), so
//! lead scoring's history, its own stream and metrics agree with acceptance.
//! Expansions (a lead's further deals) never move the lead.

use chrono::{DateTime, Utc};
use qualify_domain::{LeadStage, Mover, Role, StageChange};
use qualify_platform::ApiError;
use sea_orm::ConnectionTrait;

use crate::leads::{Actor, move_stage};
use crate::store::leads as store;

/// What happened to a lead's opportunity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// An account executive (`by`) accepted it: the lead is an SQO.
    Accepted {
        /// Subject of the AE.
        by: String,
    },
    /// It closed won.
    Won,
    /// It closed lost.
    Lost,
}

/// One step of a lead's ordinary opportunity, at the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    /// Tenant.
    pub tenant: String,
    /// The opportunity.
    pub opportunity_id: String,
    /// Its lead.
    pub lead_id: String,
    /// What it reached.
    pub reached: Reached,
    /// When.
    pub at: DateTime<Utc>,
}

impl Milestone {
    fn stage(&self) -> LeadStage {
        match self.reached {
            Reached::Accepted { .. } => LeadStage::Sqo,
            Reached::Won => LeadStage::ClosedWon,
            Reached::Lost => LeadStage::ClosedLost,
        }
    }

    fn actor(&self) -> (Actor, String) {
        let id = &self.opportunity_id;
        match &self.reached {
            Reached::Accepted { by } => (
                Actor { subject: by.clone(), roles: vec![Role::Ae], mover: Mover::Acceptance },
                format!("opportunity {id} accepted"),
            ),
            Reached::Won | Reached::Lost => {
                let how = if self.reached == Reached::Won { "won" } else { "lost" };
                (
                    Actor { subject: "acceptance".into(), roles: vec![], mover: Mover::Acceptance },
                    format!("opportunity {id} closed {how}"),
                )
            }
        }
    }
}

/// Moves each milestone's lead, in order, in the caller's transaction;
/// returns the moves made (tenant and change), whose events the caller
/// appends. A lead already there is left as it is; one the funnel cannot
/// move there (disqualified or recycled meanwhile, unknown) is skipped and
/// logged: acceptance already refuses to accept such a lead's opportunity.
pub async fn apply(
    txn: &impl ConnectionTrait,
    milestones: &[Milestone],
) -> Result<Vec<(String, StageChange)>, ApiError> {
    let mut moved = Vec::new();
    for m in milestones {
        let lead = match store::get(txn, &m.tenant, &m.lead_id).await {
            Ok(l) => l,
            Err(ApiError::NotFound { .. }) => {
                tracing::warn!(tenant = %m.tenant, lead = %m.lead_id, "opportunity of an unknown lead; not followed");
                continue;
            }
            Err(e) => return Err(e),
        };
        let to = m.stage();
        if lead.stage == to {
            continue;
        }
        if let Err(e) = lead.stage.transition(to, Mover::Acceptance) {
            tracing::warn!(tenant = %m.tenant, lead = %m.lead_id, opportunity = %m.opportunity_id, error = %e,
                "the lead cannot follow its opportunity");
            metrics::counter!("qualify_scoring_milestones_skipped_total").increment(1);
            continue;
        }
        let (actor, reason) = m.actor();
        let change = move_stage(txn, &m.tenant, &lead, to, &actor, &reason, lead.score_total(), 0, m.at).await?;
        moved.push((m.tenant.clone(), change));
    }
    Ok(moved)
}
