//! Funnel stages of a lead and the moves allowed between them.
//!
//! Every move names who may make it. The scoring engine moves leads on
//! thresholds (MQL, PQL); people move them through SAL and SQL; only an AE's
//! acceptance in the opportunity service makes an SQO.

use crate::role::Role;

/// Where a lead stands in the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeadStage {
    /// Known, not yet qualified.
    New,
    /// Marketing qualified.
    Mql,
    /// Sales accepted.
    Sal,
    /// Sales qualified.
    Sql,
    /// Sales qualified opportunity (an AE accepted it).
    Sqo,
    /// Product qualified.
    Pql,
    /// Won.
    ClosedWon,
    /// Lost.
    ClosedLost,
    /// Removed from the funnel.
    Disqualified,
    /// Recycled to nurture.
    Nurture,
}

/// Who makes a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The scoring engine, on a threshold crossing.
    Scoring,
    /// Opportunity acceptance, following its opportunity: accepted by an AE
    /// (SQO), closed won or lost.
    Acceptance,
    /// A person or automation holding a role.
    Role(Role),
}

/// A recorded move of a lead: who made it, why, and with what score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChange {
    /// The lead moved.
    pub lead_id: String,
    /// Stage before.
    pub from: LeadStage,
    /// Stage after.
    pub to: LeadStage,
    /// Subject who moved it ("scoring" for a threshold move).
    pub actor: String,
    /// Roles the actor held.
    pub actor_roles: Vec<Role>,
    /// Why.
    pub reason: String,
    /// The lead's score at the move.
    pub score: i32,
    /// Scorecard version of that score (0 when none).
    pub scorecard_version: i64,
    /// When.
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// The funnel has no such move.
    #[error("a lead cannot move from {from:?} to {to:?}")]
    IllegalMove {
        /// Current stage.
        from: LeadStage,
        /// Requested stage.
        to: LeadStage,
    },
    /// The move exists but this mover may not make it.
    #[error("{mover:?} may not move a lead to {to:?}")]
    NotAllowed {
        /// Who tried.
        mover: Mover,
        /// Requested stage.
        to: LeadStage,
    },
}

impl LeadStage {
    /// Every stage, in funnel order.
    pub const ALL: [LeadStage; 10] = [
        LeadStage::New,
        LeadStage::Mql,
        LeadStage::Sal,
        LeadStage::Sql,
        LeadStage::Sqo,
        LeadStage::Pql,
        LeadStage::ClosedWon,
        LeadStage::ClosedLost,
        LeadStage::Disqualified,
        LeadStage::Nurture,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStage::New => "new",
            LeadStage::Mql => "mql",
            LeadStage::Sal => "sal",
            LeadStage::Sql => "sql",
            LeadStage::Sqo => "sqo",
            LeadStage::Pql => "pql",
            LeadStage::ClosedWon => "closed_won",
            LeadStage::ClosedLost => "closed_lost",
            LeadStage::Disqualified => "disqualified",
            LeadStage::Nurture => "nurture",
        }
    }

    /// Parses a storage name written by [`LeadStage::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Stages still in play (not closed, disqualified or in nurture).
    pub fn is_open(self) -> bool {
        !matches!(self, LeadStage::ClosedWon | LeadStage::ClosedLost | LeadStage::Disqualified | LeadStage::Nurture)
    }

    /// Whether a lead at this stage may carry an opportunity to the gate (be
    /// submitted, resubmitted or accepted): an ordinary one at SQL only, an
    /// expansion also once the lead's first deal is accepted or closed. A
    /// disqualified or recycled lead carries none.
    pub fn carries_opportunity(self, expansion: bool) -> bool {
        match self {
            LeadStage::Sql => true,
            LeadStage::Sqo | LeadStage::ClosedWon | LeadStage::ClosedLost => expansion,
            _ => false,
        }
    }

    /// Whether the funnel has a move from `self` to `to`, whoever makes it.
    pub fn can_reach(self, to: LeadStage) -> bool {
        use LeadStage::*;
        match (self, to) {
            (New | Nurture, Mql | Pql) => true,
            (Mql, Pql) => true,
            // Outbound prospecting and recycled leads can be taken by an SDR directly.
            (New | Mql | Pql | Nurture, Sal) => true,
            (Sal, Sql) => true,
            (Sql, Sqo) => true,
            // A rejected or withdrawn opportunity hands the lead back to the SDR.
            (Sqo, Sql) => true,
            (Sqo, ClosedWon | ClosedLost) => true,
            (from, Disqualified | Nurture) => from.is_open() || (from == Disqualified && to == Nurture),
            _ => false,
        }
    }

    /// Who may make a move into `to`: thresholds are the scoring engine's,
    /// SAL and SQL are sales development's, SQO and closing are the AE's.
    pub fn may_move(mover: Mover, to: LeadStage) -> bool {
        use LeadStage::*;
        let role = match mover {
            Mover::Scoring => return matches!(to, Mql | Pql),
            Mover::Acceptance => return matches!(to, Sqo | ClosedWon | ClosedLost),
            Mover::Role(r) => r,
        };
        match to {
            New | Mql | Pql => false,
            Sal | Sql => matches!(role, Role::Sdr | Role::Manager),
            // Only the acceptance service, on an AE's decision, moves a lead to SQO
            // (or back to SQL when the opportunity is rejected or withdrawn).
            Sqo => role == Role::Ae,
            ClosedWon | ClosedLost => matches!(role, Role::Ae | Role::Manager),
            Disqualified | Nurture => matches!(role, Role::Sdr | Role::Ae | Role::Manager),
        }
    }

    /// Checks a move end to end.
    pub fn transition(self, to: LeadStage, mover: Mover) -> Result<LeadStage, StageError> {
        if !self.can_reach(to) {
            return Err(StageError::IllegalMove { from: self, to });
        }
        if !Self::may_move(mover, to) {
            return Err(StageError::NotAllowed { mover, to });
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LeadStage::*;
    use proptest::prelude::*;

    #[test]
    fn the_happy_path_is_allowed_to_the_right_people() {
        assert_eq!(New.transition(Mql, Mover::Scoring), Ok(Mql));
        assert_eq!(Mql.transition(Sal, Mover::Role(Role::Sdr)), Ok(Sal));
        assert_eq!(Sal.transition(Sql, Mover::Role(Role::Sdr)), Ok(Sql));
        assert_eq!(Sql.transition(Sqo, Mover::Role(Role::Ae)), Ok(Sqo));
        assert_eq!(Sqo.transition(ClosedWon, Mover::Role(Role::Ae)), Ok(ClosedWon));
        assert_eq!(New.transition(Pql, Mover::Scoring), Ok(Pql));
        assert_eq!(Pql.transition(Sal, Mover::Role(Role::Sdr)), Ok(Sal));
    }

    #[test]
    fn acceptance_moves_leads_to_sqo_and_closed_only_along_the_funnel() {
        assert_eq!(Sql.transition(Sqo, Mover::Acceptance), Ok(Sqo));
        assert_eq!(Sqo.transition(ClosedWon, Mover::Acceptance), Ok(ClosedWon));
        assert_eq!(Sqo.transition(ClosedLost, Mover::Acceptance), Ok(ClosedLost));
        assert!(Disqualified.transition(Sqo, Mover::Acceptance).is_err());
        assert!(Nurture.transition(Sqo, Mover::Acceptance).is_err());
        assert!(Sql.transition(Sal, Mover::Acceptance).is_err());
        assert!(Sql.transition(Disqualified, Mover::Acceptance).is_err());
    }

    #[test]
    fn only_sql_leads_carry_an_opportunity_and_later_stages_only_an_expansion() {
        for s in LeadStage::ALL {
            assert_eq!(s.carries_opportunity(false), s == Sql, "{s:?}");
            assert_eq!(s.carries_opportunity(true), matches!(s, Sql | Sqo | ClosedWon | ClosedLost), "{s:?}");
        }
    }

    #[test]
    fn nobody_but_an_ae_makes_an_sqo() {
        for r in [Role::Sdr, Role::Manager, Role::Revops, Role::Service] {
            assert_eq!(
                Sql.transition(Sqo, Mover::Role(r)),
                Err(StageError::NotAllowed { mover: Mover::Role(r), to: Sqo })
            );
        }
        assert!(Sql.transition(Sqo, Mover::Scoring).is_err());
    }

    #[test]
    fn skipping_stages_is_refused() {
        assert!(matches!(New.transition(Sql, Mover::Role(Role::Sdr)), Err(StageError::IllegalMove { .. })));
        assert!(matches!(Mql.transition(Sqo, Mover::Role(Role::Ae)), Err(StageError::IllegalMove { .. })));
        assert!(matches!(ClosedWon.transition(Sal, Mover::Role(Role::Sdr)), Err(StageError::IllegalMove { .. })));
    }

    #[test]
    fn thresholds_only_move_to_mql_or_pql() {
        for to in LeadStage::ALL {
            assert_eq!(LeadStage::may_move(Mover::Scoring, to), matches!(to, Mql | Pql), "{to:?}");
        }
    }

    #[test]
    fn disqualify_and_recycle_from_any_open_stage_but_never_reopen_closed_deals() {
        for from in LeadStage::ALL {
            let r = from.transition(Disqualified, Mover::Role(Role::Sdr));
            assert_eq!(r.is_ok(), from.is_open(), "{from:?}");
        }
        assert_eq!(Disqualified.transition(Nurture, Mover::Role(Role::Sdr)), Ok(Nurture));
        assert!(ClosedLost.transition(Nurture, Mover::Role(Role::Sdr)).is_err());
    }

    #[test]
    fn storage_names_round_trip() {
        for s in LeadStage::ALL {
            assert_eq!(LeadStage::parse(s.as_str()), Some(s));
        }
    }

    fn mover() -> impl Strategy<Value = Mover> {
        prop_oneof![
            Just(Mover::Scoring),
            Just(Mover::Acceptance),
            proptest::sample::select(Role::ALL.to_vec()).prop_map(Mover::Role),
        ]
    }

    proptest! {
        /// Whatever sequence of moves is attempted by anyone but an AE (or acceptance
        /// following an AE's decision), no lead reaches SQO.
        #[test]
        fn no_path_to_sqo_without_an_ae(moves in proptest::collection::vec(
            (proptest::sample::select(LeadStage::ALL.to_vec()), mover()), 0..40)) {
            let mut stage = New;
            for (to, m) in moves {
                if matches!(m, Mover::Role(Role::Ae) | Mover::Acceptance) { continue; }
                if let Ok(next) = stage.transition(to, m) { stage = next; }
                prop_assert_ne!(stage, Sqo);
            }
        }

        /// A successful transition always lands on the requested stage and respects both tables.
        #[test]
        fn transition_agrees_with_its_tables(
            from in proptest::sample::select(LeadStage::ALL.to_vec()),
            to in proptest::sample::select(LeadStage::ALL.to_vec()),
            m in mover()) {
            let r = from.transition(to, m);
            prop_assert_eq!(r.is_ok(), from.can_reach(to) && LeadStage::may_move(m, to));
            if let Ok(s) = r { prop_assert_eq!(s, to); }
        }
    }
}
