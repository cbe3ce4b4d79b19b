//! Scorecards on the wire: decoding a scorecard sent for publishing (with
//! validation that names every bad field by its path in the request), encoding
//! a published version, and the publish, get and list RPCs.

use qualify_domain::scoring::{
    Attribute, EngagementRule, FitRule, GradeBands, Predicate, PublishedScorecard, Scorecard, SignalType,
};
use qualify_domain::{Caller, Framework, Segment};
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring::{self as pb, fit_rule};

use super::{ScoringApi, page_of};
use crate::scorecards;
use crate::store::scorecards::{self as store, segment_key};

/// Decodes and validates a scorecard sent for publishing.
pub fn decode(v: &mut Violations, sc: &pb::Scorecard) -> Option<(Option<Segment>, Scorecard)> {
    let segment = v.optional_enum::<Segment>("scorecard.segment", sc.segment);
    let framework = v.optional_enum::<Framework>("scorecard.framework", sc.framework);
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

/// The wire form of a published version.
pub(crate) fn encode(p: &PublishedScorecard) -> pb::Scorecard {
    let c = &p.scorecard;
    pb::Scorecard {
        segment: p.segment.map_or(0, WireEnum::to_wire),
        version: p.version,
        fit_rules: c
            .fit_rules
            .iter()
            .map(|r| pb::FitRule {
                id: r.id.clone(),
                attribute: r.attribute.to_wire(),
                points: r.points,
                predicate: Some(match &r.predicate {
                    Predicate::OneOf(values) => fit_rule::Predicate::OneOf(pb::StringList { values: values.clone() }),
                    Predicate::Contains(s) => fit_rule::Predicate::Contains(s.clone()),
                    Predicate::Between { min, max } => fit_rule::Predicate::Between(pb::Range { min: *min, max: *max }),
                }),
            })
            .collect(),
        engagement_rules: c
            .engagement_rules
            .iter()
            .map(|r| pb::EngagementRule {
                id: r.id.clone(),
                signal_type: r.signal.to_wire(),
                points: r.points,
                half_life_days: r.half_life_days,
                cap: r.cap,
                window_days: r.window_days as i32,
            })
            .collect(),
        mql_threshold: c.mql_threshold,
        pql_threshold: c.pql_threshold,
        grade_bands: Some(pb::GradeBands {
            fit_a: c.bands.fit[0],
            fit_b: c.bands.fit[1],
            fit_c: c.bands.fit[2],
            engagement_1: c.bands.engagement[0],
            engagement_2: c.bands.engagement[1],
            engagement_3: c.bands.engagement[2],
        }),
        framework: c.framework.map_or(0, WireEnum::to_wire),
        publish_time: Some(timestamp(p.published_at)),
        published_by: p.published_by.clone(),
    }
}

impl ScoringApi {
    pub(crate) async fn publish_scorecard(
        &self,
        caller: Caller,
        req: pb::PublishScorecardRequest,
    ) -> Result<pb::PublishScorecardResponse, ApiError> {
        // Permission before anything else: a refused caller learns nothing.
        qualify_domain::permission::administer(&caller, "publish a scorecard")?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.check(req.expected_version >= 0, "expected_version", "must not be negative");
        let Some(sc) = req.scorecard.as_ref() else { return Err(ApiError::field("scorecard", "is required")) };
        let decoded = decode(&mut v, sc);
        v.finish()?;
        let (segment, card) = decoded.ok_or_else(|| ApiError::field("scorecard", "is invalid"))?;
        let key = idempotency::Key {
            tenant: &caller.tenant,
            method: "PublishScorecard",
            request_id: &req.request_id,
            subject: &caller.subject,
        };
        let (c, expected, now) = (caller.clone(), req.expected_version, self.clock.now());
        let published = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let p = scorecards::publish(txn, &c, segment, card, expected, now).await?;
                Ok(pb::PublishScorecardResponse { scorecard: Some(encode(&p)) })
            })
        })
        .await?;
        if let Some(sc) = &published.scorecard {
            // Replays too: the cache learns of a version whichever call stored it.
            let seg = segment_key(segment);
            let p = store::get(&self.db, &caller.tenant, seg, sc.version).await?;
            self.cards.published(&caller.tenant, &p).await;
            let longest = p.scorecard.engagement_rules.iter().map(|r| r.window_days).max().unwrap_or(0);
            self.retention.cover_window(longest);
            tracing::info!(tenant = %caller.tenant, segment = seg, version = sc.version, "scorecard published");
        }
        Ok(published)
    }

    pub(crate) async fn get_scorecard(
        &self,
        caller: Caller,
        req: pb::GetScorecardRequest,
    ) -> Result<pb::GetScorecardResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.optional_enum::<Segment>("segment", req.segment);
        v.check(req.version >= 0, "version", "must not be negative");
        v.finish()?;
        let seg = segment_key(segment);
        let version = match req.version {
            0 => self
                .cards
                .active_version(&self.db, &caller.tenant, seg)
                .await?
                .ok_or(ApiError::NotFound { kind: "scorecard", id: seg.to_string() })?,
            v => v,
        };
        let card = self.cards.get(&self.db, &caller.tenant, seg, version).await?;
        Ok(pb::GetScorecardResponse { scorecard: Some(encode(&card.published)) })
    }

    pub(crate) async fn list_scorecards(
        &self,
        caller: Caller,
        req: pb::ListScorecardsRequest,
    ) -> Result<pb::ListScorecardsResponse, ApiError> {
        let mut v = Violations::new();
        let segment = v.optional_enum::<Segment>("segment", req.segment);
        v.finish()?;
        let seg = segment_key(segment);
        let query = format!("scorecards|{}|{seg}", caller.tenant);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let before = match &p.after {
            Some(after) => {
                Some(after.parse().map_err(|_| ApiError::field("page_token", "is not a token from this query"))?)
            }
            None => None,
        };
        let rows = store::list(&self.db, &caller.tenant, seg, before, p.size + 1).await?;
        let (rows, next_page_token) = page_of(rows, &query, &p, |r| r.version.to_string());
        Ok(pb::ListScorecardsResponse { scorecards: rows.iter().map(encode).collect(), next_page_token })
    }
}
