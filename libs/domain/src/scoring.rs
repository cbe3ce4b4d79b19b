//! The lead scoring engine: fit rules on account and contact attributes,
//! engagement rules on signals with half-life decay, caps and look-back
//! windows, grade bands and stage recommendation.
//!
//! A [`Scorecard`] is validated once and compiled into a [`CompiledScorecard`]
//! whose rules are indexed by signal type, so scoring a lead costs one pass
//! over its signals plus one pass over the fit rules. Every rule that fires
//! reports its integer contribution and the contributions add up to the total.

use chrono::{DateTime, Utc};

use crate::framework::Framework;
use crate::stage::LeadStage;

/// Kinds of engagement signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum SignalType {
    PricingPageVisit,
    ContentDownload,
    WebinarAttended,
    DemoRequest,
    FormSubmit,
    EmailReply,
    MeetingHeld,
    TrialSignup,
    ProductActivation,
    TeammateInvited,
    PaidFeatureUsed,
    WebsiteVisit,
    EmailUnsubscribe,
}

impl SignalType {
    /// Every signal type.
    pub const ALL: [SignalType; 13] = [
        SignalType::PricingPageVisit,
        SignalType::ContentDownload,
        SignalType::WebinarAttended,
        SignalType::DemoRequest,
        SignalType::FormSubmit,
        SignalType::EmailReply,
        SignalType::MeetingHeld,
        SignalType::TrialSignup,
        SignalType::ProductActivation,
        SignalType::TeammateInvited,
        SignalType::PaidFeatureUsed,
        SignalType::WebsiteVisit,
        SignalType::EmailUnsubscribe,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        use SignalType::*;
        match self {
            PricingPageVisit => "pricing_page_visit",
            ContentDownload => "content_download",
            WebinarAttended => "webinar_attended",
            DemoRequest => "demo_request",
            FormSubmit => "form_submit",
            EmailReply => "email_reply",
            MeetingHeld => "meeting_held",
            TrialSignup => "trial_signup",
            ProductActivation => "product_activation",
            TeammateInvited => "teammate_invited",
            PaidFeatureUsed => "paid_feature_used",
            WebsiteVisit => "website_visit",
            EmailUnsubscribe => "email_unsubscribe",
        }
    }

    /// Parses a storage name written by [`SignalType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Product usage: these qualify a lead as a PQL.
    pub fn is_product(self) -> bool {
        use SignalType::*;
        matches!(self, TrialSignup | ProductActivation | TeammateInvited | PaidFeatureUsed)
    }

    /// Signals that say something about when the prospect means to buy.
    pub fn is_timing(self) -> bool {
        use SignalType::*;
        matches!(self, DemoRequest | PricingPageVisit | MeetingHeld | PaidFeatureUsed)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Stable one-byte code for packed storage: the position in [`SignalType::ALL`]
    /// plus one. New types are appended, so a code never changes meaning.
    pub fn code(self) -> u8 {
        self.index() as u8 + 1
    }

    /// The type of a [`SignalType::code`], if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// A lead's recent signals packed for a one-row read: 9 bytes per signal, the
/// type's code then the occurrence time in microseconds (little-endian),
/// newest first, at most a bound of entries.
pub mod signal_log {
    use chrono::DateTime;

    use super::{Signal, SignalType};

    const ENTRY: usize = 9;

    /// Packs `signals` (any order) newest first, keeping at most `max`.
    pub fn encode(signals: &[Signal], max: usize) -> Vec<u8> {
        let mut sorted = signals.to_vec();
        // Ties broken by type, so the same signals pack the same whatever order they came in.
        sorted.sort_by_key(|s| std::cmp::Reverse((s.occurred_at, s.kind.code())));
        sorted.truncate(max);
        let mut out = Vec::with_capacity(sorted.len() * ENTRY);
        for s in &sorted {
            out.push(s.kind.code());
            out.extend_from_slice(&s.occurred_at.timestamp_micros().to_le_bytes());
        }
        out
    }

    /// Unpacks a log; entries of unknown type or time are skipped.
    pub fn decode(log: &[u8]) -> Vec<Signal> {
        log.chunks_exact(ENTRY)
            .filter_map(|e| {
                let micros = i64::from_le_bytes(e[1..].try_into().ok()?);
                Some(Signal {
                    kind: SignalType::from_code(e[0])?,
                    occurred_at: DateTime::from_timestamp_micros(micros)?,
                })
            })
            .collect()
    }

    /// The log with `new` signals added, still newest first and bounded by `max`.
    pub fn merge(log: &[u8], new: &[Signal], max: usize) -> Vec<u8> {
        let mut all = decode(log);
        all.extend_from_slice(new);
        encode(&all, max)
    }
}

/// One engagement signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// What happened.
    pub kind: SignalType,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// Attributes a fit rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Attribute {
    Industry,
    EmployeeCount,
    RevenueBand,
    Region,
    Title,
    Seniority,
    Department,
    BuyingRole,
}

impl Attribute {
    /// Every attribute, in order.
    pub const ALL: [Attribute; 8] = [
        Attribute::Industry,
        Attribute::EmployeeCount,
        Attribute::RevenueBand,
        Attribute::Region,
        Attribute::Title,
        Attribute::Seniority,
        Attribute::Department,
        Attribute::BuyingRole,
    ];

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribute::Industry => "industry",
            Attribute::EmployeeCount => "employee_count",
            Attribute::RevenueBand => "revenue_band",
            Attribute::Region => "region",
            Attribute::Title => "title",
            Attribute::Seniority => "seniority",
            Attribute::Department => "department",
            Attribute::BuyingRole => "buying_role",
        }
    }

    /// Parses a storage name written by [`Attribute::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the attribute is numeric (tested with ranges).
    pub fn is_numeric(self) -> bool {
        self == Attribute::EmployeeCount
    }
}

/// How a fit rule tests its attribute. Text comparisons ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Equal to one of the values.
    OneOf(Vec<String>),
    /// Contains the text (for titles: "vp", "head of").
    Contains(String),
    /// A number within `[min, max]` inclusive.
    Between {
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
    },
}

/// Points for an attribute of the lead's account or contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitRule {
    /// Rule id, unique in the scorecard.
    pub id: String,
    /// Attribute tested.
    pub attribute: Attribute,
    /// Test.
    pub predicate: Predicate,
    /// Points when it holds; negative allowed.
    pub points: i32,
}

/// Points for signals of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct EngagementRule {
    /// Rule id, unique in the scorecard.
    pub id: String,
    /// Signal type counted.
    pub signal: SignalType,
    /// Points per signal at the moment it happens; negative allowed.
    pub points: i32,
    /// Days for a signal's points to halve; 0 means no decay.
    pub half_life_days: f64,
    /// Largest absolute contribution of the rule; 0 means uncapped.
    pub cap: i32,
    /// Only signals of the last `window_days` count; 0 means all.
    pub window_days: u32,
}

/// Grade band lower bounds: fit A/B/C (else D), engagement 1/2/3 (else 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradeBands {
    /// Minimum fit score for A, B and C.
    pub fit: [i32; 3],
    /// Minimum engagement score for 1, 2 and 3.
    pub engagement: [i32; 3],
}

/// A tenant's scoring configuration (per segment, optionally).
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    /// Fit rules.
    pub fit_rules: Vec<FitRule>,
    /// Engagement rules.
    pub engagement_rules: Vec<EngagementRule>,
    /// Total score at which a lead becomes an MQL.
    pub mql_threshold: i32,
    /// Product-signal points at which a lead becomes a PQL (0 disables PQL).
    pub pql_threshold: i32,
    /// Grade bands.
    pub bands: GradeBands,
    /// Framework the segment qualifies with, when the scorecard names one
    /// (otherwise the segment's default applies; scoring never reads it).
    pub framework: Option<Framework>,
}

/// A published, immutable version of a segment's scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedScorecard {
    /// Segment it applies to; `None` is the tenant-wide default.
    pub segment: Option<crate::Segment>,
    /// Version, from 1, linear per segment.
    pub version: i64,
    /// The rules.
    pub scorecard: Scorecard,
    /// Subject who published it.
    pub published_by: String,
    /// When it was published.
    pub published_at: DateTime<Utc>,
}

/// A score as stored on a lead: the score, the version that computed it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScore {
    /// The score.
    pub score: Score,
    /// Scorecard version that computed it.
    pub scorecard_version: i64,
    /// When it was computed.
    pub scored_at: DateTime<Utc>,
}

/// Limits that keep a scorecard cheap to evaluate.
pub const MAX_RULES: usize = 200;
/// Largest absolute points of one rule.
pub const MAX_POINTS: i32 = 1000;
/// Longest look-back window.
pub const MAX_WINDOW_DAYS: u32 = 3650;
/// Most values in a `OneOf` predicate.
pub const MAX_VALUES: usize = 100;

impl Scorecard {
    /// Checks the scorecard; every error names its field path.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut e: Vec<(String, String)> = Vec::new();
        let mut ids = std::collections::HashSet::new();
        if self.fit_rules.len() + self.engagement_rules.len() > MAX_RULES {
            e.push(("fit_rules".into(), format!("a scorecard has at most {MAX_RULES} rules")));
        }
        let mut check_id = |e: &mut Vec<(String, String)>, path: String, id: &str| {
            if id.is_empty() || id.len() > 64 {
                e.push((format!("{path}.id"), "must be 1 to 64 characters".into()));
            } else if !ids.insert(id.to_string()) {
                e.push((format!("{path}.id"), format!("{id:?} is used by another rule")));
            }
        };
        for (i, r) in self.fit_rules.iter().enumerate() {
            let p = format!("fit_rules[{i}]");
            check_id(&mut e, p.clone(), &r.id);
            if r.points.abs() > MAX_POINTS {
                e.push((format!("{p}.points"), format!("must be between -{MAX_POINTS} and {MAX_POINTS}")));
            }
            match (&r.predicate, r.attribute.is_numeric()) {
                (Predicate::Between { min, max }, true) if min <= max => {}
                (Predicate::Between { .. }, true) => e.push((format!("{p}.between"), "min must not exceed max".into())),
                (Predicate::Between { .. }, false) => {
                    e.push((format!("{p}.between"), "ranges apply to numeric attributes only".into()))
                }
                (_, true) => e.push((format!("{p}.attribute"), "numeric attributes are tested with a range".into())),
                (Predicate::OneOf(v), false) if v.is_empty() || v.len() > MAX_VALUES => {
                    e.push((format!("{p}.one_of"), format!("must list 1 to {MAX_VALUES} values")))
                }
                (Predicate::Contains(s), false) if s.is_empty() => {
                    e.push((format!("{p}.contains"), "must not be empty".into()))
                }
                _ => {}
            }
        }
        for (i, r) in self.engagement_rules.iter().enumerate() {
            let p = format!("engagement_rules[{i}]");
            check_id(&mut e, p.clone(), &r.id);
            if r.points.abs() > MAX_POINTS {
                e.push((format!("{p}.points"), format!("must be between -{MAX_POINTS} and {MAX_POINTS}")));
            }
            if !(r.half_life_days.is_finite() && (0.0..=3650.0).contains(&r.half_life_days)) {
                e.push((format!("{p}.half_life_days"), "must be between 0 and 3650".into()));
            }
            if !(0..=100 * MAX_POINTS).contains(&r.cap) {
                e.push((format!("{p}.cap"), "must be between 0 and 100000".into()));
            }
            if r.window_days > MAX_WINDOW_DAYS {
                e.push((format!("{p}.window_days"), format!("must be at most {MAX_WINDOW_DAYS}")));
            }
        }
        if self.mql_threshold <= 0 {
            e.push(("mql_threshold".into(), "must be positive".into()));
        }
        if self.pql_threshold < 0 {
            e.push(("pql_threshold".into(), "must not be negative".into()));
        }
        let desc = |b: &[i32; 3]| b[0] >= b[1] && b[1] >= b[2];
        if !desc(&self.bands.fit) {
            e.push(("grade_bands.fit".into(), "bounds must be in descending order A ≥ B ≥ C".into()));
        }
        if !desc(&self.bands.engagement) {
            e.push(("grade_bands.engagement".into(), "bounds must be in descending order 1 ≥ 2 ≥ 3".into()));
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }

    /// Compiles a validated scorecard for fast scoring.
    pub fn compile(&self) -> CompiledScorecard {
        let mut by_signal: Vec<Vec<usize>> = vec![Vec::new(); SignalType::ALL.len()];
        for (i, r) in self.engagement_rules.iter().enumerate() {
            by_signal[r.signal.index()].push(i);
        }
        let fit = self
            .fit_rules
            .iter()
            .map(|r| CompiledFit {
                attribute: r.attribute,
                test: match &r.predicate {
                    Predicate::OneOf(v) => Test::OneOf(v.iter().map(|s| s.trim().to_lowercase()).collect()),
                    Predicate::Contains(s) => Test::Contains(s.trim().to_lowercase()),
                    Predicate::Between { min, max } => Test::Between(*min, *max),
                },
            })
            .collect();
        let decay = self
            .engagement_rules
            .iter()
            .map(|r| if r.half_life_days > 0.0 { std::f64::consts::LN_2 / (r.half_life_days * 86_400.0) } else { 0.0 })
            .collect();
        CompiledScorecard { card: self.clone(), fit, by_signal, decay }
    }
}

#[derive(Debug, Clone)]
enum Test {
    OneOf(Vec<String>),
    Contains(String),
    Between(i64, i64),
}

#[derive(Debug, Clone)]
struct CompiledFit {
    attribute: Attribute,
    test: Test,
}

/// A scorecard ready to score: rules indexed by signal type, text lower-cased once.
#[derive(Debug, Clone)]
pub struct CompiledScorecard {
    card: Scorecard,
    fit: Vec<CompiledFit>,
    by_signal: Vec<Vec<usize>>,
    /// Decay rate per second of each engagement rule (0: none).
    decay: Vec<f64>,
}

/// What the fit rules look at; text is compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Account industry.
    pub industry: String,
    /// Account employee count.
    pub employee_count: i64,
    /// Account revenue band.
    pub revenue_band: String,
    /// Account region.
    pub region: String,
    /// Contact title.
    pub title: String,
    /// Contact seniority.
    pub seniority: String,
    /// Contact department.
    pub department: String,
    /// Contact role in the buying group.
    pub buying_role: String,
}

impl Profile {
    fn text(&self, a: Attribute) -> &str {
        match a {
            Attribute::Industry => &self.industry,
            Attribute::RevenueBand => &self.revenue_band,
            Attribute::Region => &self.region,
            Attribute::Title => &self.title,
            Attribute::Seniority => &self.seniority,
            Attribute::Department => &self.department,
            Attribute::BuyingRole => &self.buying_role,
            Attribute::EmployeeCount => "",
        }
    }
}

/// Whether a contribution came from a fit or an engagement rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A fit rule.
    Fit,
    /// An engagement rule.
    Engagement,
}

impl RuleKind {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Fit => "fit",
            RuleKind::Engagement => "engagement",
        }
    }

    /// Parses a storage name written by [`RuleKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [RuleKind::Fit, RuleKind::Engagement].into_iter().find(|k| k.as_str() == s)
    }
}

/// One rule that fired and the integer points it contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    /// Rule id.
    pub rule_id: String,
    /// Rule kind.
    pub kind: RuleKind,
    /// Points contributed (after decay, cap and rounding).
    pub points: i32,
    /// Signals counted (engagement rules).
    pub signals: u32,
}

/// A scored lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// Fit + engagement.
    pub total: i32,
    /// Sum of fit contributions.
    pub fit: i32,
    /// Sum of engagement contributions.
    pub engagement: i32,
    /// Part of engagement from product signals.
    pub product: i32,
    /// Grade such as "A1".
    pub grade: String,
    /// Stage the thresholds recommend: PQL, MQL or NEW.
    pub recommended: LeadStage,
    /// Every rule that fired, fit rules first, in scorecard order.
    pub contributions: Vec<Contribution>,
}

impl CompiledScorecard {
    /// The scorecard this was compiled from.
    pub fn scorecard(&self) -> &Scorecard {
        &self.card
    }

    /// Scores a lead at time `now`.
    pub fn score(&self, profile: &Profile, signals: &[Signal], now: DateTime<Utc>) -> Score {
        let mut contributions = Vec::new();
        let mut fit = 0i32;
        for (rule, c) in self.card.fit_rules.iter().zip(&self.fit) {
            let hit = match &c.test {
                Test::Between(min, max) => (*min..=*max).contains(&profile.employee_count),
                Test::OneOf(values) => {
                    let v = profile.text(c.attribute).trim();
                    values.iter().any(|x| x.eq_ignore_ascii_case(v))
                }
                Test::Contains(needle) => contains_ignore_case(profile.text(c.attribute), needle),
            };
            if hit {
                fit += rule.points;
                contributions.push(Contribution {
                    rule_id: rule.id.clone(),
                    kind: RuleKind::Fit,
                    points: rule.points,
                    signals: 0,
                });
            }
        }

        // One pass over the signals, accumulating raw decayed points per rule.
        let n = self.card.engagement_rules.len();
        let mut raw = vec![0.0f64; n];
        let mut counted = vec![0u32; n];
        let now_s = now.timestamp() as f64;
        for s in signals {
            let age = (now_s - s.occurred_at.timestamp() as f64).max(0.0);
            if s.occurred_at > now {
                continue; // a signal from the future is clock skew; it counts once it happens
            }
            for &i in &self.by_signal[s.kind.index()] {
                let r = &self.card.engagement_rules[i];
                if r.window_days > 0 && age > f64::from(r.window_days) * 86_400.0 {
                    continue;
                }
                let k = self.decay[i];
                raw[i] += f64::from(r.points) * if k > 0.0 { (-k * age).exp() } else { 1.0 };
                counted[i] += 1;
            }
        }
        let (mut engagement, mut product) = (0i32, 0i32);
        for (i, r) in self.card.engagement_rules.iter().enumerate() {
            if counted[i] == 0 {
                continue;
            }
            let mut v = raw[i];
            if r.cap > 0 {
                v = v.clamp(-f64::from(r.cap), f64::from(r.cap));
            }
            let points = v.round() as i32;
            engagement += points;
            if r.signal.is_product() {
                product += points;
            }
            contributions.push(Contribution {
                rule_id: r.id.clone(),
                kind: RuleKind::Engagement,
                points,
                signals: counted[i],
            });
        }
        let total = fit + engagement;
        let recommended = if self.card.pql_threshold > 0 && product >= self.card.pql_threshold {
            LeadStage::Pql
        } else if total >= self.card.mql_threshold {
            LeadStage::Mql
        } else {
            LeadStage::New
        };
        Score { total, fit, engagement, product, grade: self.grade(fit, engagement), recommended, contributions }
    }

    /// The grade of a fit and an engagement score: A–D × 1–4.
    pub fn grade(&self, fit: i32, engagement: i32) -> String {
        let b = &self.card.bands;
        let letter = match fit {
            f if f >= b.fit[0] => 'A',
            f if f >= b.fit[1] => 'B',
            f if f >= b.fit[2] => 'C',
            _ => 'D',
        };
        let digit = match engagement {
            e if e >= b.engagement[0] => '1',
            e if e >= b.engagement[1] => '2',
            e if e >= b.engagement[2] => '3',
            _ => '4',
        };
        format!("{letter}{digit}")
    }
}

fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if needle_lower.len() > haystack.len() {
        return false;
    }
    haystack.as_bytes().windows(needle_lower.len()).any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn signal_codes_are_stable_and_round_trip() {
        assert_eq!(SignalType::PricingPageVisit.code(), 1);
        assert_eq!(SignalType::EmailUnsubscribe.code(), 13);
        for t in SignalType::ALL {
            assert_eq!(SignalType::from_code(t.code()), Some(t));
        }
        assert_eq!(SignalType::from_code(0), None);
        assert_eq!(SignalType::from_code(14), None);
    }

    #[test]
    fn signal_log_keeps_the_newest_within_its_bound() {
        let at = |h: i64| DateTime::from_timestamp(1_700_000_000 + h * 3600, 123_000).unwrap();
        let sig = |kind, h| Signal { kind, occurred_at: at(h) };
        let log = signal_log::encode(&[sig(SignalType::DemoRequest, 1), sig(SignalType::FormSubmit, 3)], 10);
        assert_eq!(log.len(), 18);
        let merged = signal_log::merge(&log, &[sig(SignalType::MeetingHeld, 2), sig(SignalType::TrialSignup, 0)], 3);
        assert_eq!(
            signal_log::decode(&merged),
            vec![sig(SignalType::FormSubmit, 3), sig(SignalType::MeetingHeld, 2), sig(SignalType::DemoRequest, 1)]
        );
        // A truncated tail or an unknown code is skipped, not misread.
        let mut bad = merged.clone();
        bad[0] = 200;
        bad.push(1);
        assert_eq!(signal_log::decode(&bad).len(), 2);
    }

    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn card() -> Scorecard {
        Scorecard {
            fit_rules: vec![
                FitRule {
                    id: "fintech".into(),
                    attribute: Attribute::Industry,
                    predicate: Predicate::OneOf(vec!["Fintech".into(), "banking".into()]),
                    points: 20,
                },
                FitRule {
                    id: "mid-size".into(),
                    attribute: Attribute::EmployeeCount,
                    predicate: Predicate::Between { min: 100, max: 1000 },
                    points: 15,
                },
                FitRule {
                    id: "vp".into(),
                    attribute: Attribute::Title,
                    predicate: Predicate::Contains("vp".into()),
                    points: 10,
                },
                FitRule {
                    id: "student".into(),
                    attribute: Attribute::Seniority,
                    predicate: Predicate::OneOf(vec!["student".into()]),
                    points: -30,
                },
            ],
            engagement_rules: vec![
                EngagementRule {
                    id: "pricing".into(),
                    signal: SignalType::PricingPageVisit,
                    points: 10,
                    half_life_days: 7.0,
                    cap: 25,
                    window_days: 30,
                },
                EngagementRule {
                    id: "demo".into(),
                    signal: SignalType::DemoRequest,
                    points: 40,
                    half_life_days: 0.0,
                    cap: 0,
                    window_days: 0,
                },
                EngagementRule {
                    id: "activation".into(),
                    signal: SignalType::ProductActivation,
                    points: 30,
                    half_life_days: 14.0,
                    cap: 60,
                    window_days: 90,
                },
                EngagementRule {
                    id: "unsubscribe".into(),
                    signal: SignalType::EmailUnsubscribe,
                    points: -20,
                    half_life_days: 0.0,
                    cap: 0,
                    window_days: 0,
                },
            ],
            mql_threshold: 60,
            pql_threshold: 50,
            bands: GradeBands { fit: [40, 25, 10], engagement: [60, 30, 10] },
            framework: Some(Framework::Bant),
        }
    }

    fn sig(kind: SignalType, days_ago: f64) -> Signal {
        Signal { kind, occurred_at: now() - Duration::seconds((days_ago * 86_400.0) as i64) }
    }

    fn fintech_vp() -> Profile {
        Profile { industry: "FINTECH".into(), employee_count: 250, title: "SVP Revenue".into(), ..Default::default() }
    }

    #[test]
    fn fit_rules_match_case_insensitively_and_ranges_inclusively() {
        let s = card().compile().score(&fintech_vp(), &[], now());
        assert_eq!((s.fit, s.engagement, s.total), (45, 0, 45));
        let ids: Vec<_> = s.contributions.iter().map(|c| c.rule_id.as_str()).collect();
        assert_eq!(ids, ["fintech", "mid-size", "vp"]);
        let edge = Profile { employee_count: 1000, ..Default::default() };
        assert_eq!(card().compile().score(&edge, &[], now()).fit, 15);
        let student = Profile { seniority: "Student".into(), ..Default::default() };
        assert_eq!(card().compile().score(&student, &[], now()).fit, -30);
    }

    #[test]
    fn decay_halves_points_every_half_life() {
        let c = card().compile();
        // One pricing visit now: 10; one 7 days ago: 5; one 14 days ago: 2.5 → rounds to 3 (half away from zero).
        assert_eq!(c.score(&Profile::default(), &[sig(SignalType::PricingPageVisit, 0.0)], now()).engagement, 10);
        assert_eq!(c.score(&Profile::default(), &[sig(SignalType::PricingPageVisit, 7.0)], now()).engagement, 5);
        assert_eq!(c.score(&Profile::default(), &[sig(SignalType::PricingPageVisit, 14.0)], now()).engagement, 3);
        // No decay configured: a demo request a year ago still counts in full.
        assert_eq!(c.score(&Profile::default(), &[sig(SignalType::DemoRequest, 365.0)], now()).engagement, 40);
    }

    #[test]
    fn caps_bound_a_rule_and_windows_drop_old_signals() {
        let c = card().compile();
        let five_visits: Vec<_> = (0..5).map(|_| sig(SignalType::PricingPageVisit, 0.0)).collect();
        let s = c.score(&Profile::default(), &five_visits, now());
        assert_eq!(s.engagement, 25, "5 × 10 capped at 25");
        assert_eq!(s.contributions[0].signals, 5);
        let old = [sig(SignalType::PricingPageVisit, 31.0), sig(SignalType::PricingPageVisit, 29.0)];
        let s = c.score(&Profile::default(), &old, now());
        // Only the 29-day-old visit counts: 10 × 0.5^(29/7) = 0.567… → 1.
        assert_eq!((s.engagement, s.contributions[0].signals), (1, 1));
        let future = [Signal { kind: SignalType::DemoRequest, occurred_at: now() + Duration::hours(1) }];
        assert_eq!(c.score(&Profile::default(), &future, now()).engagement, 0);
    }

    #[test]
    fn negative_points_lower_the_score() {
        let c = card().compile();
        let s = c.score(&fintech_vp(), &[sig(SignalType::EmailUnsubscribe, 1.0)], now());
        assert_eq!(s.total, 25);
    }

    #[test]
    fn grade_bands_cross_fit_and_engagement() {
        let c = card().compile();
        assert_eq!(c.grade(40, 60), "A1");
        assert_eq!(c.grade(39, 59), "B2");
        assert_eq!(c.grade(10, 10), "C3");
        assert_eq!(c.grade(9, 9), "D4");
        assert_eq!(c.grade(-50, -5), "D4");
    }

    #[test]
    fn thresholds_recommend_mql_and_product_signals_recommend_pql() {
        let c = card().compile();
        let s = c.score(&fintech_vp(), &[sig(SignalType::PricingPageVisit, 0.0)], now());
        assert_eq!((s.total, s.recommended), (55, LeadStage::New));
        let s = c.score(&fintech_vp(), &[sig(SignalType::DemoRequest, 0.0)], now());
        assert_eq!((s.total, s.recommended), (85, LeadStage::Mql));
        let usage = [sig(SignalType::ProductActivation, 0.0), sig(SignalType::ProductActivation, 0.0)];
        let s = c.score(&Profile::default(), &usage, now());
        assert_eq!((s.product, s.recommended), (60, LeadStage::Pql));
    }

    #[test]
    fn validation_names_every_bad_field() {
        let mut bad = card();
        bad.fit_rules[1].predicate = Predicate::Between { min: 10, max: 1 };
        bad.fit_rules[2].attribute = Attribute::EmployeeCount;
        bad.fit_rules[3].id = "fintech".into();
        bad.engagement_rules[0].half_life_days = -1.0;
        bad.engagement_rules[1].points = 5000;
        bad.mql_threshold = 0;
        bad.bands.fit = [10, 20, 30];
        let fields: Vec<_> = bad.validate().unwrap_err().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "fit_rules[1].between",
                "fit_rules[2].attribute",
                "fit_rules[3].id",
                "engagement_rules[0].half_life_days",
                "engagement_rules[1].points",
                "mql_threshold",
                "grade_bands.fit"
            ]
        );
        assert!(card().validate().is_ok());
    }

    #[test]
    fn storage_names_round_trip() {
        for s in SignalType::ALL {
            assert_eq!(SignalType::parse(s.as_str()), Some(s));
        }
        for a in Attribute::ALL {
            assert_eq!(Attribute::parse(a.as_str()), Some(a));
        }
        for k in [RuleKind::Fit, RuleKind::Engagement] {
            assert_eq!(RuleKind::parse(k.as_str()), Some(k));
        }
    }

    proptest! {
        /// The contributions always add up to the total, and fit + engagement = total.
        #[test]
        fn contributions_add_up(days in proptest::collection::vec((0usize..13, 0.0f64..400.0), 0..60),
                                employees in 0i64..5000) {
            let signals: Vec<_> = days.iter().map(|(k, d)| sig(SignalType::ALL[*k], *d)).collect();
            let p = Profile { employee_count: employees, ..fintech_vp() };
            let s = card().compile().score(&p, &signals, now());
            prop_assert_eq!(s.contributions.iter().map(|c| c.points).sum::<i32>(), s.total);
            prop_assert_eq!(s.fit + s.engagement, s.total);
            for c in &s.contributions {
                if c.rule_id == "pricing" { prop_assert!(c.points.abs() <= 25); }
            }
        }
    }
}
