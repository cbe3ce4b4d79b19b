//! Signal ingestion: an outcome per signal, duplicates counted once, and the
//! affected leads re-scored (and moved on thresholds) in the caller's
//! transaction. The moves' events are the caller's to append (`grpc::events`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use qualify_domain::scoring::Signal;
use qualify_domain::{RecordedSignal, StageChange};
use qualify_platform::ApiError;
use qualify_platform::validate::is_resource_id;
use sea_orm::ConnectionTrait;

use crate::leads;
use crate::scorecards::Cards;
use crate::store::signals as store;

/// Why an item of a batch (a signal, a verification finding) was rejected:
/// the field at fault and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The field, in the item.
    pub field: &'static str,
    /// What is wrong.
    pub description: &'static str,
}

/// One signal of a batch, as sent.
#[derive(Clone)]
pub struct Incoming {
    /// The client's id.
    pub signal_id: String,
    /// The lead it engaged (as sent, even when the signal was rejected on its own).
    pub lead_id: String,
    /// The contact it came from, if known.
    pub contact_id: Option<String>,
    /// The signal, or why it was rejected on its own (its lead is checked against the batch).
    pub checked: Result<Signal, Vec<Rejection>>,
}

/// What became of one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded.
    Accepted,
    /// Recorded before, under its id.
    Duplicate,
    /// Not recorded.
    Rejected(Vec<Rejection>),
}

/// What a batch did.
#[derive(Default)]
pub struct Ingested {
    /// An outcome per signal, in the batch's order.
    pub outcomes: Vec<Outcome>,
    /// The threshold moves of the re-scored leads.
    pub stage_changes: Vec<StageChange>,
}

/// Ingests a group of batches (each with its tenant), received at `now`, in the
/// caller's transaction, as if one after the other: signals recorded, each
/// touched lead's new signals added to its packed log, the lead re-scored
/// after each batch that touched it (so a batch's moves are its own), and
/// everything written once at the end. Without a scorecard the signals are
/// kept and count as soon as one is published.
pub async fn ingest(
    txn: &impl ConnectionTrait,
    cards: &Cards,
    group: Vec<(String, Vec<Incoming>)>,
    now: DateTime<Utc>,
) -> Result<Vec<Ingested>, ApiError> {
    let mut by_tenant: BTreeMap<String, Vec<(usize, Vec<Incoming>)>> = BTreeMap::new();
    for (i, (tenant, batch)) in group.into_iter().enumerate() {
        by_tenant.entry(tenant).or_default().push((i, batch));
    }
    let mut done: BTreeMap<usize, Ingested> = BTreeMap::new();
    for (tenant, batches) in by_tenant {
        done.extend(ingest_for(txn, cards, &tenant, batches, now).await?);
    }
    Ok(done.into_values().collect())
}

/// [`ingest`] of one tenant's batches, each with its place in the group.
async fn ingest_for(
    txn: &impl ConnectionTrait,
    cards: &Cards,
    tenant: &str,
    batches: Vec<(usize, Vec<Incoming>)>,
    now: DateTime<Utc>,
) -> Result<Vec<(usize, Ingested)>, ApiError> {
    // The leads are locked (in key order) because their signal logs are rewritten below.
    let lead_ids: BTreeSet<String> = batches
        .iter()
        .flat_map(|(_, b)| b.iter().map(|s| &s.lead_id))
        .filter(|id| is_resource_id(id))
        .cloned()
        .collect();
    let leads = leads::read_many(txn, tenant, &lead_ids.iter().map(String::as_str).collect(), true).await?;

    // Each signal checked in order; the first of a key (id, time) in the group is the one recorded.
    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(batches.len());
    let mut candidates: Vec<(usize, usize, RecordedSignal)> = Vec::new();
    let mut keys: BTreeSet<store::SignalKey> = BTreeSet::new();
    let mut places = Vec::with_capacity(batches.len());
    for (b, (place, batch)) in batches.into_iter().enumerate() {
        places.push(place);
        let mut mine = Vec::with_capacity(batch.len());
        for s in batch {
            let checked = s.checked.and_then(|signal| match leads.get(&s.lead_id) {
                Some(l) => Ok((signal, l)),
                None => Err(vec![Rejection { field: "lead_id", description: "no such lead" }]),
            });
            let outcome = match checked {
                Err(rejections) => Outcome::Rejected(rejections),
                Ok((signal, _)) if !keys.insert((s.signal_id.clone(), signal.occurred_at)) => Outcome::Duplicate,
                Ok((signal, l)) => {
                    let recorded = RecordedSignal {
                        signal_id: s.signal_id,
                        lead_id: s.lead_id,
                        account_id: l.lead.account_id.clone(),
                        contact_id: s.contact_id,
                        signal,
                        received_at: now,
                    };
                    candidates.push((b, mine.len(), recorded));
                    Outcome::Accepted // unless already recorded: see below
                }
            };
            mine.push(outcome);
        }
        outcomes.push(mine);
    }
    // One statement; those it did not insert were recorded before.
    let inserted = store::insert_new(txn, tenant, candidates.iter().map(|(_, _, r)| r)).await?;
    let mut touched: Vec<BTreeMap<String, Vec<Signal>>> = vec![BTreeMap::new(); places.len()];
    for (b, at, r) in candidates {
        if inserted.contains(&(r.signal_id, r.signal.occurred_at)) {
            touched[b].entry(r.lead_id).or_default().push(r.signal);
        } else {
            outcomes[b][at] = Outcome::Duplicate;
        }
    }

    // Batch after batch, each touched lead's log takes its new signals and the lead is re-scored.
    let mut rescoring = leads::Rescoring::new(leads);
    let mut done = Vec::with_capacity(places.len());
    for ((place, outcomes), touched) in places.into_iter().zip(outcomes).zip(&touched) {
        let rescored = rescoring.rescore(txn, cards, tenant, touched, touched.keys().map(String::as_str), now).await?;
        let stage_changes = rescored.into_iter().filter_map(|r| r.change).collect();
        done.push((place, Ingested { outcomes, stage_changes }));
    }
    rescoring.store(txn, tenant).await?;
    Ok(done)
}
