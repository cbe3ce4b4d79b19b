//! The in-process scoring engine: leads per second for a 20-rule scorecard
//! (10 fit, 10 engagement) and 50 signals per lead.
//!
//! `cargo bench -p qualify-domain --bench engine`

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qualify_domain::Framework;
use qualify_domain::scoring::{
    Attribute, EngagementRule, FitRule, GradeBands, Predicate, Profile, Scorecard, Signal, SignalType,
};

fn scorecard() -> Scorecard {
    let text = |id: &str, a, v: &[&str], p| FitRule {
        id: id.into(),
        attribute: a,
        predicate: Predicate::OneOf(v.iter().map(|s| s.to_string()).collect()),
        points: p,
    };
    let fit_rules = vec![
        text("industry", Attribute::Industry, &["fintech", "banking", "insurance"], 20),
        FitRule {
            id: "size".into(),
            attribute: Attribute::EmployeeCount,
            predicate: Predicate::Between { min: 100, max: 5000 },
            points: 15,
        },
        text("region", Attribute::Region, &["emea", "na"], 5),
        text("band", Attribute::RevenueBand, &["10m-50m", "50m-250m"], 10),
        FitRule {
            id: "vp".into(),
            attribute: Attribute::Title,
            predicate: Predicate::Contains("vp".into()),
            points: 10,
        },
        FitRule {
            id: "head".into(),
            attribute: Attribute::Title,
            predicate: Predicate::Contains("head of".into()),
            points: 8,
        },
        text("seniority", Attribute::Seniority, &["vp", "director", "c-level"], 10),
        text("dept", Attribute::Department, &["finance", "revenue", "sales"], 6),
        text("role", Attribute::BuyingRole, &["economic_buyer", "decision_maker"], 12),
        text("student", Attribute::Seniority, &["student", "intern"], -30),
    ];
    let engagement_rules = [
        SignalType::PricingPageVisit,
        SignalType::ContentDownload,
        SignalType::WebinarAttended,
        SignalType::DemoRequest,
        SignalType::FormSubmit,
        SignalType::EmailReply,
        SignalType::MeetingHeld,
        SignalType::ProductActivation,
        SignalType::TeammateInvited,
        SignalType::WebsiteVisit,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, s)| EngagementRule {
        id: format!("e{i}"),
        signal: s,
        points: 5 + i as i32 * 3,
        half_life_days: 14.0,
        cap: 60,
        window_days: 90,
    })
    .collect();
    Scorecard {
        fit_rules,
        engagement_rules,
        mql_threshold: 80,
        pql_threshold: 50,
        bands: GradeBands { fit: [60, 40, 20], engagement: [60, 30, 10] },
        framework: Some(Framework::Bant),
    }
}

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let card = scorecard();
    assert!(card.validate().is_ok());
    let compiled = card.compile();
    let profile = Profile {
        industry: "Fintech".into(),
        employee_count: 800,
        revenue_band: "10m-50m".into(),
        region: "emea".into(),
        title: "VP Finance".into(),
        seniority: "vp".into(),
        department: "finance".into(),
        buying_role: "economic_buyer".into(),
    };
    let signals: Vec<Signal> = (0..50)
        .map(|i| Signal {
            kind: SignalType::ALL[i % SignalType::ALL.len()],
            occurred_at: now - Duration::hours(7 * i as i64),
        })
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("score_20_rules_50_signals", |b| {
        b.iter(|| black_box(compiled.score(black_box(&profile), black_box(&signals), now)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
