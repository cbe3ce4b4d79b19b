//! Scorecards on the wire ↔ the domain scorecard, with validation that names
//! every bad field by its path in the request.

use qualify_domain::scoring::{Attribute, EngagementRule, FitRule, GradeBands, Predicate, Scorecard, SignalType};
use qualify_domain::{Framework, Segment};
use qualify_platform::Violations;
use qualify_proto::convert::WireEnum;
use qualify_proto::scoring::{self as pb, fit_rule};

/// Storage key of a segment's scorecard; the tenant-wide one is "default".
pub fn segment_key(segment: Option<Segment>) -> &'static str {
    segment.map_or("default", Segment::as_str)
}

/// Decodes and validates a scorecard sent for publishing.
pub fn decode(v: &mut Violations, sc: &pb::Scorecard) -> Option<(Option<Segment>, Scorecard)> {
    let segment = v.optional_enum::<Segment>("scorecard.segment", sc.segment);
    let framework = match v.optional_enum::<Framework>("scorecard.framework", sc.framework) {
        Some(f) => f,
        None => segment.map_or(Framework::Bant, Segment::default_framework),
    };
    let mut fit_rules = Vec::new();
    for (i, r) in sc.fit_rules.iter().enumerate() {
        let p = format!("scorecard.fit_rules[{i}]");
        let attribute = v.required_enum::<Attribute>(&format!("{p}.attribute"), r.attribute);
        let predicate = match &r.predicate {
            None => {
                v.add(format!("{p}.predicate"), "one of one_of, contains or between is required");
                None
            }
            Some(fit_rule::Predicate::OneOf(list)) => {
                for (j, s) in list.values.iter().enumerate() {
                    v.text(format!("{p}.one_of.values[{j}]"), s, 256);
                }
                Some(Predicate::OneOf(list.values.clone()))
            }
            Some(fit_rule::Predicate::Contains(s)) => {
                v.text(format!("{p}.contains"), s, 256);
                Some(Predicate::Contains(s.clone()))
            }
            Some(fit_rule::Predicate::Between(r)) => Some(Predicate::Between { min: r.min, max: r.max }),
        };
        if let (Some(attribute), Some(predicate)) = (attribute, predicate) {
            fit_rules.push(FitRule { id: r.id.clone(), attribute, predicate, points: r.points });
        }
    }
    let mut engagement_rules = Vec::new();
    for (i, r) in sc.engagement_rules.iter().enumerate() {
        let p = format!("scorecard.engagement_rules[{i}]");
        let signal = v.required_enum::<SignalType>(&format!("{p}.signal_type"), r.signal_type);
        v.check(r.window_days >= 0, format!("{p}.window_days"), "must not be negative");
        if let Some(signal) = signal {
            engagement_rules.push(EngagementRule {
                id: r.id.clone(),
                signal,
                points: r.points,
                half_life_days: r.half_life_days,
                cap: r.cap,
                window_days: r.window_days.max(0) as u32,
            });
        }
    }
    let Some(b) = sc.grade_bands.as_ref() else {
        v.add("scorecard.grade_bands", "is required");
        return None;
    };
    let card = Scorecard {
        fit_rules,
        engagement_rules,
        mql_threshold: sc.mql_threshold,
        pql_threshold: sc.pql_threshold,
        bands: GradeBands {
            fit: [b.fit_a, b.fit_b, b.fit_c],
            engagement: [b.engagement_1, b.engagement_2, b.engagement_3],
        },
        framework,
    };
    if !v.is_empty() {
        return None;
    }
    if let Err(errors) = card.validate() {
        for (field, msg) in errors {
            v.add(format!("scorecard.{field}"), msg);
        }
        return None;
    }
    Some((segment, card))
}

/// Decodes a stored (already validated) scorecard.
pub fn decode_stored(sc: &pb::Scorecard) -> anyhow::Result<Scorecard> {
    let mut v = Violations::new();
    decode(&mut v, sc).map(|(_, c)| c).ok_or_else(|| anyhow::anyhow!("stored scorecard no longer decodes: {v:?}"))
}

/// The wire form of a domain signal type, for responses.
pub fn signal_type_wire(s: SignalType) -> i32 {
    s.to_wire()
}
