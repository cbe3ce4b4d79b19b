//! The opportunity state machine: who may make which move.
//!
//! The SQO gate is enforced here, once, for every path: only a human AE who
//! did not submit the opportunity can accept it. The gate policy result is
//! checked by the caller of [`OpportunityState::apply`] (accepting needs the
//! gate to pass or an explicit override).

use crate::role::{Caller, Role};

/// Where an opportunity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpportunityState {
    /// Submitted by an SDR, waiting for an AE.
    PendingReview,
    /// Returned to the SDR with the missing items.
    SentBack,
    /// Accepted by an AE: a sales qualified opportunity.
    Accepted,
    /// Proposal sent.
    Proposal,
    /// In negotiation.
    Negotiation,
    /// Rejected by an AE with a reason.
    Rejected,
    /// Withdrawn by the submitter before a decision.
    Withdrawn,
    /// Won.
    ClosedWon,
    /// Lost.
    ClosedLost,
}

/// A move requested on an opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpportunityAction {
    /// Resubmit after a send-back.
    Resubmit,
    /// Accept as an SQO.
    Accept,
    /// Reject with a reason.
    Reject,
    /// Return to the SDR with the missing items.
    SendBack,
    /// Withdraw before a decision.
    Withdraw,
    /// Move an accepted deal to the next later stage.
    Advance,
    /// Close as won.
    CloseWon,
    /// Close as lost.
    CloseLost,
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The caller may not make this move (PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The move does not exist from the current state (FAILED_PRECONDITION).
    #[error("cannot {action:?} an opportunity that is {from:?}")]
    IllegalState {
        /// Current state.
        from: OpportunityState,
        /// Requested move.
        action: OpportunityAction,
    },
}

/// Roles that may submit an opportunity.
const SUBMITTERS: &[Role] = &[Role::Sdr, Role::Manager];

impl OpportunityState {
    /// Every state.
    pub const ALL: [OpportunityState; 9] = [
        OpportunityState::PendingReview,
        OpportunityState::SentBack,
        OpportunityState::Accepted,
        OpportunityState::Proposal,
        OpportunityState::Negotiation,
        OpportunityState::Rejected,
        OpportunityState::Withdrawn,
        OpportunityState::ClosedWon,
        OpportunityState::ClosedLost,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpportunityState::PendingReview => "pending_review",
            OpportunityState::SentBack => "sent_back",
            OpportunityState::Accepted => "accepted",
            OpportunityState::Proposal => "proposal",
            OpportunityState::Negotiation => "negotiation",
            OpportunityState::Rejected => "rejected",
            OpportunityState::Withdrawn => "withdrawn",
            OpportunityState::ClosedWon => "closed_won",
            OpportunityState::ClosedLost => "closed_lost",
        }
    }

    /// Parses a storage name written by [`OpportunityState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Accepted and not yet closed: counts as open pipeline.
    pub fn is_open_pipeline(self) -> bool {
        matches!(self, OpportunityState::Accepted | OpportunityState::Proposal | OpportunityState::Negotiation)
    }

    /// Checks that `caller` may submit a new opportunity.
    pub fn submit(caller: &Caller) -> Result<OpportunityState, TransitionError> {
        if caller.is_automation() {
            return Err(TransitionError::Forbidden("automation cannot submit opportunities"));
        }
        if !caller.has_any(SUBMITTERS) {
            return Err(TransitionError::Forbidden("only an SDR or a manager can submit an opportunity"));
        }
        Ok(OpportunityState::PendingReview)
    }

    /// Applies `action` by `caller` to an opportunity submitted by `submitter`.
    /// Permission is checked before state, so a refused caller learns nothing
    /// about where the opportunity stands.
    pub fn apply(
        self,
        action: OpportunityAction,
        caller: &Caller,
        submitter: &str,
    ) -> Result<OpportunityState, TransitionError> {
        use OpportunityAction as A;
        use OpportunityState as S;
        check_permission(action, caller, submitter)?;
        let next = match (self, action) {
            (S::SentBack, A::Resubmit) => S::PendingReview,
            (S::PendingReview, A::Accept) => S::Accepted,
            (S::PendingReview, A::Reject) => S::Rejected,
            (S::PendingReview, A::SendBack) => S::SentBack,
            (S::PendingReview | S::SentBack, A::Withdraw) => S::Withdrawn,
            (S::Accepted, A::Advance) => S::Proposal,
            (S::Proposal, A::Advance) => S::Negotiation,
            (S::Accepted | S::Proposal | S::Negotiation, A::CloseWon) => S::ClosedWon,
            (S::Accepted | S::Proposal | S::Negotiation, A::CloseLost) => S::ClosedLost,
            (from, action) => return Err(TransitionError::IllegalState { from, action }),
        };
        Ok(next)
    }
}

fn check_permission(action: OpportunityAction, caller: &Caller, submitter: &str) -> Result<(), TransitionError> {
    use OpportunityAction as A;
    if caller.is_automation() {
        return Err(TransitionError::Forbidden("automation cannot act on opportunities"));
    }
    let is_submitter = caller.subject == submitter;
    match action {
        A::Accept => {
            if !caller.has(Role::Ae) {
                return Err(TransitionError::Forbidden("only an account executive can accept an opportunity"));
            }
            if caller.has(Role::Sdr) {
                return Err(TransitionError::Forbidden("a caller holding the SDR role cannot accept"));
            }
            if is_submitter {
                return Err(TransitionError::Forbidden("the submitter cannot accept their own opportunity"));
            }
        }
        A::Reject | A::SendBack => {
            if !caller.has_any(&[Role::Ae, Role::Manager]) {
                return Err(TransitionError::Forbidden("only an account executive or a manager can decide"));
            }
            if is_submitter {
                return Err(TransitionError::Forbidden("the submitter cannot decide their own opportunity"));
            }
        }
        A::Resubmit | A::Withdraw => {
            if !(is_submitter || caller.has(Role::Manager)) {
                return Err(TransitionError::Forbidden("only the submitter or a manager can do this"));
            }
        }
        A::Advance | A::CloseWon | A::CloseLost => {
            if !caller.has_any(&[Role::Ae, Role::Manager]) {
                return Err(TransitionError::Forbidden("only an account executive or a manager can move a deal"));
            }
        }
    }
    Ok(())
}

/// Accepted and abandoned: an open, accepted deal whose acceptance is older
/// than the follow-up window and that has had no meaningful activity since.
pub fn is_abandoned(
    state: OpportunityState,
    accepted_at: Option<chrono::DateTime<chrono::Utc>>,
    first_meaningful_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    window: chrono::Duration,
) -> bool {
    state.is_open_pipeline() && first_meaningful_at.is_none() && accepted_at.is_some_and(|at| now - at > window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OpportunityAction as A;
    use OpportunityState as S;
    use proptest::prelude::*;

    fn caller(subject: &str, roles: &[Role]) -> Caller {
        Caller { tenant: "acme".into(), subject: subject.into(), roles: roles.to_vec() }
    }

    const ACTIONS: [OpportunityAction; 8] =
        [A::Resubmit, A::Accept, A::Reject, A::SendBack, A::Withdraw, A::Advance, A::CloseWon, A::CloseLost];

    /// The full matrix: every state × every action × every single role, as
    /// submitter and as someone else. Expected outcomes are spelled out.
    #[test]
    fn every_move_allowed_and_refused_per_role() {
        let legal = |from: S, a: A| -> Option<S> {
            Some(match (from, a) {
                (S::SentBack, A::Resubmit) => S::PendingReview,
                (S::PendingReview, A::Accept) => S::Accepted,
                (S::PendingReview, A::Reject) => S::Rejected,
                (S::PendingReview, A::SendBack) => S::SentBack,
                (S::PendingReview | S::SentBack, A::Withdraw) => S::Withdrawn,
                (S::Accepted, A::Advance) => S::Proposal,
                (S::Proposal, A::Advance) => S::Negotiation,
                (S::Accepted | S::Proposal | S::Negotiation, A::CloseWon) => S::ClosedWon,
                (S::Accepted | S::Proposal | S::Negotiation, A::CloseLost) => S::ClosedLost,
                _ => return None,
            })
        };
        let permitted = |a: A, role: Role, is_submitter: bool| -> bool {
            match (a, role) {
                (_, Role::Service) => false,
                (A::Accept, Role::Ae) => !is_submitter,
                (A::Accept, _) => false,
                (A::Reject | A::SendBack, Role::Ae | Role::Manager) => !is_submitter,
                (A::Reject | A::SendBack, _) => false,
                (A::Resubmit | A::Withdraw, r) => is_submitter || r == Role::Manager,
                (A::Advance | A::CloseWon | A::CloseLost, r) => matches!(r, Role::Ae | Role::Manager),
            }
        };
        let mut checked = 0;
        for from in S::ALL {
            for a in ACTIONS {
                for role in Role::ALL {
                    for is_submitter in [true, false] {
                        let who = if is_submitter { "sam" } else { "alex" };
                        let got = from.apply(a, &caller(who, &[role]), "sam");
                        match (permitted(a, role, is_submitter), legal(from, a)) {
                            (false, _) => assert!(
                                matches!(got, Err(TransitionError::Forbidden(_))),
                                "{from:?} {a:?} {role:?} submitter={is_submitter}: {got:?}"
                            ),
                            (true, None) => assert_eq!(got, Err(TransitionError::IllegalState { from, action: a })),
                            (true, Some(to)) => assert_eq!(got, Ok(to), "{from:?} {a:?} {role:?}"),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 9 * 8 * 5 * 2);
    }

    #[test]
    fn only_sdrs_and_managers_submit_and_never_automation() {
        assert_eq!(S::submit(&caller("s", &[Role::Sdr])), Ok(S::PendingReview));
        assert_eq!(S::submit(&caller("m", &[Role::Manager])), Ok(S::PendingReview));
        for roles in [&[Role::Ae][..], &[Role::Revops], &[Role::Service], &[Role::Sdr, Role::Service], &[]] {
            assert!(S::submit(&caller("x", roles)).is_err(), "{roles:?}");
        }
    }

    #[test]
    fn a_token_with_ae_and_sdr_or_service_roles_cannot_accept() {
        let pending = S::PendingReview;
        assert!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Sdr]), "sam").is_err());
        assert!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Service]), "sam").is_err());
        assert_eq!(pending.apply(A::Accept, &caller("x", &[Role::Ae, Role::Manager]), "sam"), Ok(S::Accepted));
    }

    #[test]
    fn abandoned_means_open_accepted_past_the_window_without_a_meaningful_activity() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        let w = Duration::days(14);
        let at = |d: i64| Some(now - Duration::days(d));
        assert!(is_abandoned(S::Accepted, at(15), None, now, w));
        assert!(is_abandoned(S::Proposal, at(30), None, now, w));
        assert!(!is_abandoned(S::Accepted, at(14), None, now, w), "exactly at the window is not yet late");
        assert!(!is_abandoned(S::Accepted, at(30), at(29), now, w), "a meaningful activity happened");
        assert!(!is_abandoned(S::ClosedLost, at(30), None, now, w), "closed deals are not abandoned");
        assert!(!is_abandoned(S::PendingReview, None, None, now, w));
    }

    #[test]
    fn open_pipeline_is_accepted_and_not_closed() {
        let open: Vec<_> = S::ALL.into_iter().filter(|s| s.is_open_pipeline()).collect();
        assert_eq!(open, vec![S::Accepted, S::Proposal, S::Negotiation]);
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// No sequence of moves by anyone but a non-submitting human AE ever yields Accepted.
        #[test]
        fn nothing_but_an_independent_ae_accepts(steps in proptest::collection::vec(
            (proptest::sample::select(ACTIONS.to_vec()),
             proptest::sample::subsequence(Role::ALL.to_vec(), 0..=5),
             any::<bool>()), 0..30)) {
            let mut state = S::PendingReview;
            for (a, roles, is_submitter) in steps {
                let who = if is_submitter { "sam" } else { "alex" };
                let c = caller(who, &roles);
                let independent_ae = c.has(Role::Ae) && !c.has(Role::Sdr) && !c.is_automation() && !is_submitter;
                if let Ok(next) = state.apply(a, &c, "sam") {
                    if next == S::Accepted && state != S::Accepted {
                        prop_assert!(independent_ae && a == A::Accept);
                    }
                    state = next;
                }
            }
        }
    }
}
