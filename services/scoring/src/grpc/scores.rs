//! Scores on the wire: one lead (stored or inline), many leads as a stream.

use std::collections::{BTreeMap, HashMap};

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
        // As of a past time: what had happened by then, decayed to then.
        let now = match req.as_of_time.as_ref().map(from_timestamp) {
            None => now,
            Some(Some(t)) if t <= now => t,
            Some(_) => {
                v.check(false, "as_of_time", "must be a valid time, not in the future");
                now
            }
        };
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
        let all = req.lead_ids.is_empty();
        let mut after = (!req.resume_after_lead_id.is_empty()).then(|| req.resume_after_lead_id.clone());
        let total =
            if all { store::count(&self.db, tenant, after.as_deref()).await? } else { req.lead_ids.len() as u64 };
        let mut ids = req.lead_ids.into_iter();
        let mut done = 0i64;
        loop {
            // Named leads in the given order, or every lead of the tenant by id, batches at a time.
            let batch: Vec<String> = if all {
                store::ids(&self.db, tenant, after.as_deref(), (SCORE_BATCH * SCORE_AT_ONCE) as u64).await?
            } else {
                ids.by_ref().take(SCORE_BATCH * SCORE_AT_ONCE).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            after = batch.last().cloned();
            let now = self.clock.now();
            let mut scored = if req.apply {
                // Batches stored side by side, each in its transaction: the service scores one
                // while the database writes another. All are committed before any is streamed.
                let stored = batch.chunks(SCORE_BATCH).map(|b| self.rescore_batch(tenant, b, now));
                futures::future::try_join_all(stored).await?.into_iter().flatten().collect()
            } else {
                self.score_batch(tenant, &batch, now).await?
            };
            for id in batch {
                done += 1;
                let (score, stage_change) = scored.get(&id).cloned().unwrap_or_default();
                let item = pb::ScoreLeadsResponse {
                    lead_id: id,
                    score: Some(score),
                    stage_change,
                    done_count: done,
                    total_count: total.max(done as u64) as i64,
                };
                if tx.send(Ok(item)).await.is_err() {
                    return Ok(()); // the client went away
                }
            }
            scored.clear();
        }
    }

    /// Re-scores and stores a batch of leads in one transaction; the wire form of each
    /// stored score and move. A named lead that does not exist fails the batch.
    async fn rescore_batch(&self, tenant: &str, batch: &[String], now: DateTime<Utc>) -> Result<Scored, ApiError> {
        let txn = self.db.begin().await?;
        let found = leads::read_many(&txn, tenant, &batch.iter().map(String::as_str).collect(), true).await?;
        if let Some(missing) = batch.iter().find(|id| !found.contains_key(*id)) {
            return Err(ApiError::NotFound { kind: "lead", id: missing.clone() });
        }
        let mut rescoring = leads::Rescoring::new(found);
        let ids = batch.iter().map(String::as_str);
        let rescored = rescoring.rescore(&txn, &self.cards, tenant, &BTreeMap::new(), ids, now).await?;
        let changes = rescoring.store(&txn, tenant).await?;
        events::stage_changes(&txn, tenant, &changes).await?;
        let mut scored = Scored::with_capacity(rescored.len());
        for r in rescored {
            let Some(stored) = r.stored else { return Err(crate::scorecards::no_scorecard()) };
            scored.insert(r.lead_id, (encode_stored(&stored), r.change.as_ref().map(events::encode_change)));
        }
        txn.commit().await?;
        if !changes.is_empty() {
            self.relay.nudge();
        }
        Ok(scored)
    }

    /// Scores a batch of stored leads without storing anything.
    async fn score_batch(&self, tenant: &str, batch: &[String], now: DateTime<Utc>) -> Result<Scored, ApiError> {
        let found = leads::read_many(&self.db, tenant, &batch.iter().map(String::as_str).collect(), false).await?;
        let mut scored = Scored::with_capacity(found.len());
        for id in batch {
            let data = found.get(id).ok_or_else(|| ApiError::NotFound { kind: "lead", id: id.clone() })?;
            let (score, card) = leads::score(&self.db, &self.cards, tenant, data, 0, now).await?;
            scored.insert(id.clone(), (encode_score(&score, card.version(), now), None));
        }
        Ok(scored)
    }
}

/// Leads a ScoreLeads batch reads and stores at once.
const SCORE_BATCH: usize = 2000;

/// ScoreLeads batches stored at once (a connection each).
const SCORE_AT_ONCE: usize = 2;

/// A batch's scores on the wire, with the moves they made, by lead.
type Scored = HashMap<String, (pb::Score, Option<pb::LeadStageChange>)>;

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
