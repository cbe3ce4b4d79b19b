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
pub struct Ingested {
    /// An outcome per signal, in the batch's order.
    pub outcomes: Vec<Outcome>,
    /// The threshold moves of the re-scored leads.
    pub stage_changes: Vec<StageChange>,
}

/// Records a batch of signals received at `now`, adds each touched lead's new
/// signals to its packed log, and re-scores those leads. Without a scorecard
/// the signals are kept and count as soon as one is published.
pub async fn ingest(
    txn: &impl ConnectionTrait,
    cards: &Cards,
    tenant: &str,
    batch: Vec<Incoming>,
    now: DateTime<Utc>,
) -> Result<Ingested, ApiError> {
    // The leads are locked (in key order) because their signal logs are rewritten below.
    let lead_ids: BTreeSet<&str> = batch.iter().map(|s| s.lead_id.as_str()).filter(|id| is_resource_id(id)).collect();
    let mut leads = leads::read_many(txn, tenant, &lead_ids, true).await?;

    // Each signal checked in order; the first of an id in the batch is the one recorded.
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut candidates: Vec<(usize, RecordedSignal)> = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for s in batch {
        let checked = s.checked.and_then(|signal| match leads.get(&s.lead_id) {
            Some(l) => Ok((signal, l)),
            None => Err(vec![Rejection { field: "lead_id", description: "no such lead" }]),
        });
        let outcome = match checked {
            Err(rejections) => Outcome::Rejected(rejections),
            Ok(_) if ids.contains(&s.signal_id) => Outcome::Duplicate,
            Ok((signal, l)) => {
                ids.insert(s.signal_id.clone());
                let recorded = RecordedSignal {
                    signal_id: s.signal_id,
                    lead_id: s.lead_id,
                    account_id: l.lead.account_id.clone(),
                    contact_id: s.contact_id,
                    signal,
                    received_at: now,
                };
                candidates.push((outcomes.len(), recorded));
                Outcome::Accepted // unless already recorded: see below
            }
        };
        outcomes.push(outcome);
    }
    // One multi-row insert per chunk; those it did not insert were recorded before.
    let inserted = store::insert_new(txn, tenant, candidates.iter().map(|(_, r)| r)).await?;
    let mut touched: BTreeMap<String, Vec<Signal>> = BTreeMap::new();
    for (at, r) in candidates {
        if inserted.contains(&r.signal_id) {
            touched.entry(r.lead_id).or_default().push(r.signal);
        } else {
            outcomes[at] = Outcome::Duplicate;
        }
    }

    // Each touched lead's packed log takes its new signals, then the lead is re-scored.
    leads.retain(|id, _| touched.contains_key(id));
    let rescored = leads::rescore_many(txn, cards, tenant, leads, &touched, now).await?;
    let stage_changes = rescored.into_iter().filter_map(|r| r.change).collect();
    Ok(Ingested { outcomes, stage_changes })
}
