//! The SQO gate policy and its evaluation.
//!
//! Evaluation never stops at the first failure: the AE and the SDR see every
//! check, each with a machine-readable code, so they know exactly what is
//! missing.

use chrono::{DateTime, Duration, Utc};

use crate::Segment;
use crate::framework::{Criterion, EvidenceStatus, Framework};

/// Role of a stakeholder in the buying group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum StakeholderRole {
    EconomicBuyer,
    DecisionMaker,
    Champion,
    Influencer,
    TechnicalEvaluator,
    Blocker,
    EndUser,
}

impl StakeholderRole {
    /// Every role.
    pub const ALL: [StakeholderRole; 7] = [
        StakeholderRole::EconomicBuyer,
        StakeholderRole::DecisionMaker,
        StakeholderRole::Champion,
        StakeholderRole::Influencer,
        StakeholderRole::TechnicalEvaluator,
        StakeholderRole::Blocker,
        StakeholderRole::EndUser,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            StakeholderRole::EconomicBuyer => "economic_buyer",
            StakeholderRole::DecisionMaker => "decision_maker",
            StakeholderRole::Champion => "champion",
            StakeholderRole::Influencer => "influencer",
            StakeholderRole::TechnicalEvaluator => "technical_evaluator",
            StakeholderRole::Blocker => "blocker",
            StakeholderRole::EndUser => "end_user",
        }
    }

    /// Parses a storage name written by [`StakeholderRole::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// People with purchase influence: they sign or decide.
    pub fn has_purchase_influence(self) -> bool {
        matches!(self, StakeholderRole::EconomicBuyer | StakeholderRole::DecisionMaker)
    }
}

/// What acceptance requires in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePolicy {
    /// Framework in force.
    pub framework: Framework,
    /// Criteria that must be confirmed; empty means the framework's default set.
    pub required_criteria: Vec<Criterion>,
    /// An economic buyer must be mapped.
    pub require_economic_buyer: bool,
    /// A champion must be mapped.
    pub require_champion: bool,
    /// Minimum size of the mapped buying group (0: no minimum).
    pub min_stakeholders: u32,
    /// A next step must be scheduled in the future.
    pub require_next_step: bool,
    /// Every stakeholder's contact data must be verified within this many days (0: off).
    pub contact_max_age_days: u32,
    /// Minimum lead score (0: off).
    pub min_score: i32,
}

/// Longest verification window a policy may ask for.
pub const MAX_CONTACT_AGE_DAYS: u32 = 3650;
/// Largest buying group a policy may require.
pub const MAX_MIN_STAKEHOLDERS: u32 = 50;

impl GatePolicy {
    /// The policy a segment gets before RevOps sets one: its framework's
    /// default criteria, an economic buyer and a champion, a scheduled next
    /// step and contacts verified by a provider within the last 7 days (the
    /// weekly refresh of seed practice).
    pub fn default_for(segment: Segment) -> Self {
        GatePolicy {
            framework: segment.default_framework(),
            required_criteria: Vec::new(),
            require_economic_buyer: true,
            require_champion: true,
            min_stakeholders: 2,
            require_next_step: true,
            contact_max_age_days: 7,
            min_score: 0,
        }
    }

    /// The criteria that must be confirmed.
    pub fn effective_criteria(&self) -> &[Criterion] {
        if self.required_criteria.is_empty() { self.framework.default_required() } else { &self.required_criteria }
    }

    /// Checks the policy is coherent. Each violation names its field.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        for (i, c) in self.required_criteria.iter().enumerate() {
            if !self.framework.has(*c) {
                errors.push((
                    format!("required_criteria[{i}]"),
                    format!("{c:?} is not a criterion of {:?}", self.framework),
                ));
            }
            if self.required_criteria[..i].contains(c) {
                errors.push((format!("required_criteria[{i}]"), format!("{c:?} is listed twice")));
            }
        }
        if self.min_stakeholders > MAX_MIN_STAKEHOLDERS {
            errors.push(("min_stakeholders".into(), format!("must be between 0 and {MAX_MIN_STAKEHOLDERS}")));
        }
        if self.contact_max_age_days > MAX_CONTACT_AGE_DAYS {
            errors.push(("contact_max_age_days".into(), format!("must be between 0 and {MAX_CONTACT_AGE_DAYS}")));
        }
        if self.min_score < 0 {
            errors.push(("min_score".into(), "must not be negative".into()));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// A segment's policy in force: the stored one with its version and when it
/// last changed, or the segment's default (version 0, never changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInForce {
    /// The policy.
    pub policy: GatePolicy,
    /// Its version; 0 for the segment's default.
    pub version: i64,
    /// When it last changed; `None` for the default.
    pub updated_at: Option<DateTime<Utc>>,
}

impl PolicyInForce {
    /// The segment's default, before RevOps sets a policy.
    pub fn default_for(segment: Segment) -> Self {
        PolicyInForce { policy: GatePolicy::default_for(segment), version: 0, updated_at: None }
    }
}

/// A stakeholder as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateStakeholder {
    /// Role in the buying group.
    pub role: StakeholderRole,
    /// When the contact data was last verified, if ever.
    pub verified_at: Option<DateTime<Utc>>,
}

/// Everything the gate looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GateCandidate {
    /// Evidence per criterion; a criterion not listed is unknown.
    pub evidence: Vec<(Criterion, EvidenceStatus)>,
    /// The buying group.
    pub stakeholders: Vec<GateStakeholder>,
    /// When the next step is scheduled, if any.
    pub next_step_at: Option<DateTime<Utc>>,
    /// The lead's score.
    pub score: i32,
}

/// Machine-readable code of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateCheckCode {
    /// A required criterion is not confirmed.
    CriterionNotConfirmed,
    /// No economic buyer.
    EconomicBuyerMissing,
    /// No champion.
    ChampionMissing,
    /// Buying group smaller than required.
    BuyingGroupTooSmall,
    /// No next step in the future.
    NextStepMissing,
    /// Contact data never verified or too old.
    ContactDataStale,
    /// Score below the floor.
    ScoreBelowFloor,
}

impl GateCheckCode {
    /// Every code, in policy order.
    pub const ALL: [GateCheckCode; 7] = [
        GateCheckCode::CriterionNotConfirmed,
        GateCheckCode::EconomicBuyerMissing,
        GateCheckCode::ChampionMissing,
        GateCheckCode::BuyingGroupTooSmall,
        GateCheckCode::NextStepMissing,
        GateCheckCode::ContactDataStale,
        GateCheckCode::ScoreBelowFloor,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateCheckCode::CriterionNotConfirmed => "criterion_not_confirmed",
            GateCheckCode::EconomicBuyerMissing => "economic_buyer_missing",
            GateCheckCode::ChampionMissing => "champion_missing",
            GateCheckCode::BuyingGroupTooSmall => "buying_group_too_small",
            GateCheckCode::NextStepMissing => "next_step_missing",
            GateCheckCode::ContactDataStale => "contact_data_stale",
            GateCheckCode::ScoreBelowFloor => "score_below_floor",
        }
    }

    /// Parses a storage name written by [`GateCheckCode::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCheck {
    /// What was checked.
    pub code: GateCheckCode,
    /// Whether it passed.
    pub passed: bool,
    /// The criterion, for criterion checks.
    pub criterion: Option<Criterion>,
    /// Explanation.
    pub detail: String,
}

/// Every check of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    /// Checks in policy order.
    pub checks: Vec<GateCheck>,
}

impl GateResult {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &GateCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// Evaluates `candidate` against `policy` at time `now`.
pub fn evaluate(policy: &GatePolicy, candidate: &GateCandidate, now: DateTime<Utc>) -> GateResult {
    let mut checks = Vec::new();
    let mut check = |code, passed, criterion, detail: String| {
        checks.push(GateCheck { code, passed, criterion, detail });
    };

    for &c in policy.effective_criteria() {
        // The last word on a criterion counts: evidence lists are append-only notes.
        let status = candidate.evidence.iter().rev().find(|(k, _)| *k == c).map(|(_, s)| *s).unwrap_or_default();
        let ok = status == EvidenceStatus::Confirmed;
        check(GateCheckCode::CriterionNotConfirmed, ok, Some(c), format!("{c:?} is {status:?}"));
    }
    let has_role = |r| candidate.stakeholders.iter().any(|s| s.role == r);
    if policy.require_economic_buyer {
        let ok = has_role(StakeholderRole::EconomicBuyer);
        check(GateCheckCode::EconomicBuyerMissing, ok, None, presence("an economic buyer", ok));
    }
    if policy.require_champion {
        let ok = has_role(StakeholderRole::Champion);
        check(GateCheckCode::ChampionMissing, ok, None, presence("a champion", ok));
    }
    if policy.min_stakeholders > 0 {
        let n = candidate.stakeholders.len();
        let ok = n >= policy.min_stakeholders as usize;
        check(
            GateCheckCode::BuyingGroupTooSmall,
            ok,
            None,
            format!("{n} stakeholders mapped, {} required", policy.min_stakeholders),
        );
    }
    if policy.require_next_step {
        let (ok, detail) = match candidate.next_step_at {
            Some(t) if t > now => (true, format!("next step scheduled at {}", t.to_rfc3339())),
            Some(t) => (false, format!("next step at {} is not in the future", t.to_rfc3339())),
            None => (false, "no next step scheduled".to_string()),
        };
        check(GateCheckCode::NextStepMissing, ok, None, detail);
    }
    if policy.contact_max_age_days > 0 {
        let oldest_allowed = now - Duration::days(i64::from(policy.contact_max_age_days));
        let stale = candidate.stakeholders.iter().filter(|s| s.verified_at.is_none_or(|t| t < oldest_allowed)).count();
        let ok = stale == 0 && !candidate.stakeholders.is_empty();
        let detail = if candidate.stakeholders.is_empty() {
            "no contacts to verify".to_string()
        } else {
            format!(
                "{stale} of {} contacts not verified within {} days",
                candidate.stakeholders.len(),
                policy.contact_max_age_days
            )
        };
        check(GateCheckCode::ContactDataStale, ok, None, detail);
    }
    if policy.min_score > 0 {
        let ok = candidate.score >= policy.min_score;
        check(
            GateCheckCode::ScoreBelowFloor,
            ok,
            None,
            format!("score {} against a floor of {}", candidate.score, policy.min_score),
        );
    }
    GateResult { checks }
}

fn presence(what: &str, ok: bool) -> String {
    if ok { format!("{what} is identified") } else { format!("{what} is not identified") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn strong(framework: Framework) -> GateCandidate {
        GateCandidate {
            evidence: framework.criteria().iter().map(|c| (*c, EvidenceStatus::Confirmed)).collect(),
            stakeholders: vec![
                GateStakeholder { role: StakeholderRole::EconomicBuyer, verified_at: Some(now() - Duration::days(3)) },
                GateStakeholder { role: StakeholderRole::Champion, verified_at: Some(now() - Duration::days(6)) },
            ],
            next_step_at: Some(now() + Duration::days(2)),
            score: 80,
        }
    }

    #[test]
    fn check_codes_round_trip_their_storage_names() {
        for c in GateCheckCode::ALL {
            assert_eq!(GateCheckCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(GateCheckCode::parse("CONTACT_DATA_STALE"), None);
    }

    #[test]
    fn a_fully_evidenced_candidate_passes_every_framework_default() {
        for f in Framework::ALL {
            let policy = GatePolicy { framework: f, ..GatePolicy::default_for(Segment::Smb) };
            let r = evaluate(&policy, &strong(f), now());
            assert!(r.passed(), "{f:?}: {:?}", r.failures().collect::<Vec<_>>());
            // One check per required criterion + buyer + champion + group + next step + contacts.
            assert_eq!(r.checks.len(), f.default_required().len() + 5, "{f:?}");
        }
    }

    #[test]
    fn an_empty_candidate_fails_every_check_not_only_the_first() {
        let policy = GatePolicy { min_score: 50, ..GatePolicy::default_for(Segment::Smb) };
        let r = evaluate(&policy, &GateCandidate::default(), now());
        let codes: Vec<_> = r.failures().map(|c| (c.code, c.criterion)).collect();
        use GateCheckCode::*;
        assert_eq!(
            codes,
            vec![
                (CriterionNotConfirmed, Some(Criterion::Budget)),
                (CriterionNotConfirmed, Some(Criterion::Authority)),
                (CriterionNotConfirmed, Some(Criterion::Need)),
                (CriterionNotConfirmed, Some(Criterion::Timeline)),
                (EconomicBuyerMissing, None),
                (ChampionMissing, None),
                (BuyingGroupTooSmall, None),
                (NextStepMissing, None),
                (ContactDataStale, None),
                (ScoreBelowFloor, None),
            ]
        );
    }

    #[test]
    fn partial_evidence_is_not_confirmation() {
        let mut c = strong(Framework::Bant);
        c.evidence.push((Criterion::Budget, EvidenceStatus::Partial));
        let r = evaluate(&GatePolicy::default_for(Segment::Smb), &c, now());
        let failed: Vec<_> = r.failures().map(|c| c.criterion).collect();
        assert_eq!(failed, vec![Some(Criterion::Budget)]);
    }

    #[test]
    fn a_next_step_in_the_past_or_now_fails() {
        for at in [now(), now() - Duration::minutes(1)] {
            let mut c = strong(Framework::Bant);
            c.next_step_at = Some(at);
            let r = evaluate(&GatePolicy::default_for(Segment::Smb), &c, now());
            assert_eq!(r.failures().map(|c| c.code).collect::<Vec<_>>(), vec![GateCheckCode::NextStepMissing]);
        }
    }

    #[test]
    fn contacts_verified_exactly_at_the_limit_pass_and_a_day_older_fail() {
        let policy = GatePolicy::default_for(Segment::Smb);
        let mut c = strong(Framework::Bant);
        assert_eq!(policy.contact_max_age_days, 7, "the default is the weekly refresh");
        c.stakeholders[0].verified_at = Some(now() - Duration::days(7));
        assert!(evaluate(&policy, &c, now()).passed());
        c.stakeholders[0].verified_at = Some(now() - Duration::days(8));
        assert!(!evaluate(&policy, &c, now()).passed());
        c.stakeholders[0].verified_at = None;
        assert!(!evaluate(&policy, &c, now()).passed());
    }

    #[test]
    fn explicit_required_criteria_replace_the_default_set() {
        let policy = GatePolicy { required_criteria: vec![Criterion::Need], ..GatePolicy::default_for(Segment::Smb) };
        let mut c = strong(Framework::Bant);
        c.evidence = vec![(Criterion::Need, EvidenceStatus::Confirmed)];
        assert!(evaluate(&policy, &c, now()).passed());
    }

    #[test]
    fn disabled_checks_are_not_reported() {
        let policy = GatePolicy {
            framework: Framework::Bant,
            required_criteria: vec![Criterion::Budget],
            require_economic_buyer: false,
            require_champion: false,
            min_stakeholders: 0,
            require_next_step: false,
            contact_max_age_days: 0,
            min_score: 0,
        };
        let r = evaluate(&policy, &GateCandidate::default(), now());
        assert_eq!(r.checks.len(), 1);
    }

    #[test]
    fn validation_names_every_bad_field() {
        let policy = GatePolicy {
            required_criteria: vec![Criterion::Champion, Criterion::Budget, Criterion::Budget],
            min_stakeholders: 51,
            contact_max_age_days: 4000,
            min_score: -1,
            ..GatePolicy::default_for(Segment::Smb)
        };
        let fields: Vec<_> = policy.validate().unwrap_err().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            vec![
                "required_criteria[0]",
                "required_criteria[2]",
                "min_stakeholders",
                "contact_max_age_days",
                "min_score"
            ]
        );
        assert!(GatePolicy::default_for(Segment::Enterprise).validate().is_ok());
    }

    proptest! {
        /// The gate passes exactly when every reported check passed, and the
        /// number of checks depends only on the policy.
        #[test]
        fn passed_iff_every_check_passed(
            confirmed in proptest::collection::vec(any::<bool>(), 4),
            n_stake in 0usize..4, champion in any::<bool>(),
            next_days in -3i64..3, age in 0i64..20, score in -10i32..100,
        ) {
            let policy = GatePolicy { min_score: 40, ..GatePolicy::default_for(Segment::Smb) };
            let evidence = Framework::Bant.criteria().iter().zip(&confirmed)
                .map(|(c, ok)| (*c, if *ok { EvidenceStatus::Confirmed } else { EvidenceStatus::Partial })).collect();
            let mut stakeholders: Vec<_> = (0..n_stake).map(|_| GateStakeholder {
                role: StakeholderRole::EconomicBuyer, verified_at: Some(now() - Duration::days(age)) }).collect();
            if champion { stakeholders.push(GateStakeholder { role: StakeholderRole::Champion, verified_at: Some(now()) }); }
            let c = GateCandidate { evidence, stakeholders, next_step_at: Some(now() + Duration::days(next_days)), score };
            let r = evaluate(&policy, &c, now());
            prop_assert_eq!(r.checks.len(), 4 + 6);
            prop_assert_eq!(r.passed(), r.checks.iter().all(|c| c.passed));
            let expect = confirmed.iter().all(|b| *b) && n_stake >= 1 && champion
                && n_stake + usize::from(champion) >= 2 && next_days > 0 && age <= i64::from(policy.contact_max_age_days) && score >= 40;
            prop_assert_eq!(r.passed(), expect);
        }
    }
}
