//! The eight qualification frameworks, their criteria and default required sets.

/// A qualification framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Framework {
    /// Budget, Authority, Need, Timeline.
    Bant,
    /// Metrics, Economic buyer, Decision criteria, Decision process, Identify pain, Champion.
    Meddic,
    /// MEDDIC plus Paper process and Competition.
    Meddpicc,
    /// Challenges, Authority, Money, Priority.
    Champ,
    /// Goals, Plans, Challenges, Timeline, Budget, Authority, Consequences, Implications.
    GpctbaCi,
    /// Funds, Authority, Interest, Need, Timing.
    Faint,
    /// Need, Economic impact, Access to authority, Timeline.
    Neat,
    /// Authority, Need, Urgency, Money.
    Anum,
}

/// One criterion, named as its framework names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Criterion {
    Budget,
    Authority,
    Need,
    Timeline,
    Metrics,
    EconomicBuyer,
    DecisionCriteria,
    DecisionProcess,
    IdentifyPain,
    Champion,
    PaperProcess,
    Competition,
    Challenges,
    Money,
    Priority,
    Goals,
    Plans,
    NegativeConsequences,
    PositiveImplications,
    Funds,
    Interest,
    Timing,
    EconomicImpact,
    AccessToAuthority,
    Urgency,
}

/// How well a criterion is evidenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum EvidenceStatus {
    /// Nobody knows yet.
    #[default]
    Unknown,
    /// Some evidence, not conclusive.
    Partial,
    /// Clear evidence, confirmed by a named person.
    Confirmed,
}

impl EvidenceStatus {
    /// Every status, weakest first.
    pub const ALL: [EvidenceStatus; 3] = [EvidenceStatus::Unknown, EvidenceStatus::Partial, EvidenceStatus::Confirmed];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceStatus::Unknown => "unknown",
            EvidenceStatus::Partial => "partial",
            EvidenceStatus::Confirmed => "confirmed",
        }
    }

    /// Parses a storage name written by [`EvidenceStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl Framework {
    /// Every framework.
    pub const ALL: [Framework; 8] = [
        Framework::Bant,
        Framework::Meddic,
        Framework::Meddpicc,
        Framework::Champ,
        Framework::GpctbaCi,
        Framework::Faint,
        Framework::Neat,
        Framework::Anum,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Bant => "bant",
            Framework::Meddic => "meddic",
            Framework::Meddpicc => "meddpicc",
            Framework::Champ => "champ",
            Framework::GpctbaCi => "gpctba_ci",
            Framework::Faint => "faint",
            Framework::Neat => "neat",
            Framework::Anum => "anum",
        }
    }

    /// Parses a storage name written by [`Framework::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The framework's criteria, in the order of its acronym.
    pub fn criteria(self) -> &'static [Criterion] {
        use Criterion::*;
        match self {
            Framework::Bant => &[Budget, Authority, Need, Timeline],
            Framework::Meddic => &[Metrics, EconomicBuyer, DecisionCriteria, DecisionProcess, IdentifyPain, Champion],
            Framework::Meddpicc => &[
                Metrics,
                EconomicBuyer,
                DecisionCriteria,
                DecisionProcess,
                PaperProcess,
                IdentifyPain,
                Champion,
                Competition,
            ],
            Framework::Champ => &[Challenges, Authority, Money, Priority],
            Framework::GpctbaCi => {
                &[Goals, Plans, Challenges, Timeline, Budget, Authority, NegativeConsequences, PositiveImplications]
            }
            Framework::Faint => &[Funds, Authority, Interest, Need, Timing],
            Framework::Neat => &[Need, EconomicImpact, AccessToAuthority, Timeline],
            Framework::Anum => &[Authority, Need, Urgency, Money],
        }
    }

    /// What an AE must see confirmed by default before accepting.
    ///
    /// The four-letter frameworks require everything: they are short by design.
    /// The long ones require what separates a deal from a conversation: the
    /// economic buyer, the pain, a champion and a known process for MEDDIC
    /// (plus competition for MEDDPICC); GPCTBA/C&I requires the BANT-like core;
    /// FAINT leaves timing open, since it is used where no formal budget cycle exists.
    pub fn default_required(self) -> &'static [Criterion] {
        use Criterion::*;
        match self {
            Framework::Bant | Framework::Champ | Framework::Neat | Framework::Anum => self.criteria(),
            Framework::Meddic => &[EconomicBuyer, DecisionProcess, IdentifyPain, Champion],
            Framework::Meddpicc => &[EconomicBuyer, DecisionProcess, IdentifyPain, Champion, Competition],
            Framework::GpctbaCi => &[Challenges, Timeline, Budget, Authority],
            Framework::Faint => &[Funds, Authority, Interest, Need],
        }
    }

    /// Whether `c` belongs to this framework.
    pub fn has(self, c: Criterion) -> bool {
        self.criteria().contains(&c)
    }
}

impl Criterion {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        use Criterion::*;
        match self {
            Budget => "budget",
            Authority => "authority",
            Need => "need",
            Timeline => "timeline",
            Metrics => "metrics",
            EconomicBuyer => "economic_buyer",
            DecisionCriteria => "decision_criteria",
            DecisionProcess => "decision_process",
            IdentifyPain => "identify_pain",
            Champion => "champion",
            PaperProcess => "paper_process",
            Competition => "competition",
            Challenges => "challenges",
            Money => "money",
            Priority => "priority",
            Goals => "goals",
            Plans => "plans",
            NegativeConsequences => "negative_consequences",
            PositiveImplications => "positive_implications",
            Funds => "funds",
            Interest => "interest",
            Timing => "timing",
            EconomicImpact => "economic_impact",
            AccessToAuthority => "access_to_authority",
            Urgency => "urgency",
        }
    }

    /// Parses a storage name written by [`Criterion::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Every criterion.
    pub const ALL: [Criterion; 25] = [
        Criterion::Budget,
        Criterion::Authority,
        Criterion::Need,
        Criterion::Timeline,
        Criterion::Metrics,
        Criterion::EconomicBuyer,
        Criterion::DecisionCriteria,
        Criterion::DecisionProcess,
        Criterion::IdentifyPain,
        Criterion::Champion,
        Criterion::PaperProcess,
        Criterion::Competition,
        Criterion::Challenges,
        Criterion::Money,
        Criterion::Priority,
        Criterion::Goals,
        Criterion::Plans,
        Criterion::NegativeConsequences,
        Criterion::PositiveImplications,
        Criterion::Funds,
        Criterion::Interest,
        Criterion::Timing,
        Criterion::EconomicImpact,
        Criterion::AccessToAuthority,
        Criterion::Urgency,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use Criterion::*;

    #[test]
    fn every_framework_has_its_published_criteria() {
        let expect: [(Framework, &[Criterion]); 8] = [
            (Framework::Bant, &[Budget, Authority, Need, Timeline]),
            (Framework::Meddic, &[Metrics, EconomicBuyer, DecisionCriteria, DecisionProcess, IdentifyPain, Champion]),
            (
                Framework::Meddpicc,
                &[
                    Metrics,
                    EconomicBuyer,
                    DecisionCriteria,
                    DecisionProcess,
                    PaperProcess,
                    IdentifyPain,
                    Champion,
                    Competition,
                ],
            ),
            (Framework::Champ, &[Challenges, Authority, Money, Priority]),
            (
                Framework::GpctbaCi,
                &[Goals, Plans, Challenges, Timeline, Budget, Authority, NegativeConsequences, PositiveImplications],
            ),
            (Framework::Faint, &[Funds, Authority, Interest, Need, Timing]),
            (Framework::Neat, &[Need, EconomicImpact, AccessToAuthority, Timeline]),
            (Framework::Anum, &[Authority, Need, Urgency, Money]),
        ];
        for (f, criteria) in expect {
            assert_eq!(f.criteria(), criteria, "{f:?}");
        }
    }

    #[test]
    fn meddpicc_is_meddic_plus_paper_process_and_competition() {
        let mut extra: Vec<_> =
            Framework::Meddpicc.criteria().iter().filter(|c| !Framework::Meddic.has(**c)).copied().collect();
        extra.sort();
        assert_eq!(extra, vec![PaperProcess, Competition]);
    }

    #[test]
    fn default_required_sets_are_non_empty_subsets_of_their_framework() {
        for f in Framework::ALL {
            let req = f.default_required();
            assert!(!req.is_empty(), "{f:?}");
            assert!(req.iter().all(|c| f.has(*c)), "{f:?}");
        }
        assert_eq!(Framework::Bant.default_required(), &[Budget, Authority, Need, Timeline]);
        assert!(!Framework::Faint.default_required().contains(&Timing));
    }

    #[test]
    fn every_criterion_belongs_to_some_framework() {
        for c in Criterion::ALL {
            assert!(Framework::ALL.iter().any(|f| f.has(c)), "{c:?}");
        }
    }

    #[test]
    fn storage_names_round_trip() {
        for f in Framework::ALL {
            assert_eq!(Framework::parse(f.as_str()), Some(f));
        }
        for c in Criterion::ALL {
            assert_eq!(Criterion::parse(c.as_str()), Some(c));
        }
        for s in EvidenceStatus::ALL {
            assert_eq!(EvidenceStatus::parse(s.as_str()), Some(s));
        }
    }
}
