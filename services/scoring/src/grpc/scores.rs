//! Scores on the wire: one lead (stored or inline), many leads as a stream.

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{Profile, Score, Signal, SignalType, StoredScore};
use qualify_domain::{Caller, Segment, StakeholderRole};
use qualify_platform::validate::{Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations};
use qualify_proto::convert::{WireEnum, from_timestamp, timestamp};
use qualify_proto::scoring::{self as pb, score_lead_request::Target};
use sea_orm::TransactionTrait;
use tokio::sync::mpsc;

use super::signals::MAX_BATCH as MAX_INLINE_SIGNALS;
use super::{ScoringApi, events};
use crate::leads;
use crate::store::leads as store;

/// Most leads one ScoreLeads call names.
const MAX_LEAD_IDS: usize = 10_000;

fn decode_inline(v: &mut Violations, l: &pb::InlineLead) -> (Option<Segment>, Profile, Vec<Signal>) {
    let segment = v.optional_enum::<Segment>("inline.segment", l.segment);
    let a = l.account.clone().unwrap_or_default();
    let c = l.contact.clone().unwrap_or_default();
    for (f, s) in [
        ("inline.account.industry", &a.industry),
        ("inline.account.revenue_band", &a.revenue_band),
        ("inline.account.region", &a.region),
        ("inline.contact.title", &c.title),
        ("inline.contact.seniority", &c.seniority),
        ("inline.contact.department", &c.department),
    ] {
        v.text(f, s, MAX_TEXT);
    }
    v.check(a.employee_count >= 0, "inline.account.employee_count", "must not be negative");
    let role = v.optional_enum::<StakeholderRole>("inline.contact.buying_role", c.buying_role);
    v.check(l.signals.len() <= MAX_INLINE_SIGNALS, "inline.signals", "must hold at most 1000 signals");
    let mut signals = Vec::with_capacity(l.signals.len());
    for (i, s) in l.signals.iter().enumerate().take(MAX_INLINE_SIGNALS) {
        let kind = v.required_enum::<SignalType>(Item("inline.signals", i, "type"), s.r#type);
        let at = s.occur_time.as_ref().and_then(from_timestamp);
        v.check(at.is_some(), Item("inline.signals", i, "occur_time"), "is required and must be a valid time");
        if let (Some(kind), Some(occurred_at)) = (kind, at) {
            signals.push(Signal { kind, occurred_at });
        }
    }
    let profile = Profile {
        industry: a.industry,
        employee_count: i64::from(a.employee_count),
        revenue_band: a.revenue_band,
        region: a.region,
        title: c.title,
        seniority: c.seniority,
        department: c.department,
        buying_role: role.map(|r| r.as_str().to_string()).unwrap_or_default(),
    };
    (segment, profile, signals)
}

impl ScoringApi {
    pub(crate) async fn score_lead(
        &self,
        c: Caller,
        req: pb::ScoreLeadRequest,
    ) -> Result<pb::ScoreLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.check(req.scorecard_version >= 0, "scorecard_version", "must not be negative");
        let now = self.clock.now();
        match req.target {
            None => Err(ApiError::field("target", "lead_id or inline is required")),
            Some(Target::LeadId(id)) => {
                v.id("lead_id", &id);
                v.finish()?;
                let data = self.reads.load(&c.tenant, &id).await?;
                let (score, card) =
                    leads::score(&self.db, &self.cards, &c.tenant, &data, req.scorecard_version, now).await?;
                Ok(pb::ScoreLeadResponse { score: Some(encode_score(&score, card.version(), now)) })
            }
            Some(Target::Inline(l)) => {
                let (segment, profile, signals) = decode_inline(&mut v, &l);
                v.finish()?;
                let card = self.cards.resolve(&self.db, &c.tenant, segment, req.scorecard_version).await?;
                let score = card.compiled.score(&profile, &signals, now);
                Ok(pb::ScoreLeadResponse { score: Some(encode_score(&score, card.version(), now)) })
            }
        }
    }

    pub(crate) async fn score_leads(
        &self,
        c: Caller,
        req: pb::ScoreLeadsRequest,
    ) -> Result<mpsc::Receiver<Result<pb::ScoreLeadsResponse, tonic::Status>>, ApiError> {
        let mut v = Violations::new();
        v.check(req.lead_ids.len() <= MAX_LEAD_IDS, "lead_ids", "must name at most 10000 leads");
        for (i, id) in req.lead_ids.iter().enumerate() {
            v.id(Item("lead_ids", i, ""), id);
        }
        v.finish()?;
        if req.apply {
            qualify_domain::permission::rescore_and_store(&c)?;
        }
        let (tx, rx) = mpsc::channel(64);
        let api = self.clone();
        tokio::spawn(async move {
            let result = api.stream_scores(&c.tenant, req, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e.into_status(super::DOMAIN))).await;
            }
        });
        Ok(rx)
    }

    async fn stream_scores(
        &self,
        tenant: &str,
        req: pb::ScoreLeadsRequest,
        tx: &mpsc::Sender<Result<pb::ScoreLeadsResponse, tonic::Status>>,
    ) -> Result<(), ApiError> {
        let mut ids = req.lead_ids.into_iter();
        let mut after: Option<String> = None;
        let all = ids.len() == 0;
        loop {
            // Named leads in the given order, or every lead of the tenant by id, 500 at a time.
            let batch: Vec<String> = if all {
                store::ids(&self.db, tenant, after.as_deref(), 500).await?
            } else {
                ids.by_ref().take(500).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            after = batch.last().cloned();
            for id in batch {
                let now = self.clock.now();
                let item = if req.apply {
                    let txn = self.db.begin().await?;
                    let (stored, change) = leads::rescore(&txn, &self.cards, tenant, &id, now).await?;
                    if let Some(c) = &change {
                        events::stage_changed(&txn, tenant, c).await?;
                    }
                    let (wire, change) = (encode_stored(&stored), change.as_ref().map(events::encode_change));
                    txn.commit().await?;
                    if change.is_some() {
                        self.relay.nudge();
                    }
                    pb::ScoreLeadsResponse { lead_id: id, score: Some(wire), stage_change: change }
                } else {
                    let data = leads::load(&self.db, tenant, &id).await?;
                    let (score, card) = leads::score(&self.db, &self.cards, tenant, &data, 0, now).await?;
                    let wire = encode_score(&score, card.version(), now);
                    pb::ScoreLeadsResponse { lead_id: id, score: Some(wire), stage_change: None }
                };
                if tx.send(Ok(item)).await.is_err() {
                    return Ok(()); // the client went away
                }
            }
        }
    }
}

/// The wire form of a score computed by `version` at `at`.
pub(crate) fn encode_score(s: &Score, version: i64, at: DateTime<Utc>) -> pb::Score {
    pb::Score {
        total: s.total,
        fit: s.fit,
        engagement: s.engagement,
        product: s.product,
        grade: s.grade.clone(),
        recommended_stage: s.recommended.to_wire(),
        scorecard_version: version,
        contributions: s
            .contributions
            .iter()
            .map(|c| pb::RuleContribution {
                rule_id: c.rule_id.clone(),
                kind: c.kind.to_wire(),
                points: c.points,
                signal_count: c.signals as i32,
            })
            .collect(),
        score_time: Some(timestamp(at)),
    }
}

/// The wire form of a stored score.
pub(crate) fn encode_stored(s: &StoredScore) -> pb::Score {
    encode_score(&s.score, s.scorecard_version, s.scored_at)
}
