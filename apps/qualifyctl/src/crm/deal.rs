//! A deal as either CRM holds it, and how its past becomes an imported
//! opportunity. The CRM's stages are read through `opportunity_stages:` as
//! one of five kinds, and the stage history gives the gate's decision:
//!
//! - submitted when the deal was created (by its creator), whatever its stage;
//! - decided at the first stage change out of the `submitted` stages: into an
//!   `accepted` stage, accepted by whoever made the change; into a `rejected`
//!   stage, rejected; into `won` (a deal won without ever being seen in an
//!   accepted stage), accepted at that change; into `lost` (lost before the gate
//!   accepted it), rejected at that change. Qualify holds one decision: a
//!   rejected deal's later stages are not imported;
//! - closed, once accepted, when the CRM says it closed, at its close date (at
//!   the decision if the date is earlier: a date-only close date reads as
//!   midnight).
//!
//! When the history does not end in the deal's current stage (a history file
//! not given, or cut short), the current stage is taken as one more change, at
//! the CRM's last stage change (or last modification) time, by the deal's owner.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use qualify_domain::{ActivityType, Segment};
use qualify_proto::acceptance as acc;
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, timestamp};

use super::{Failure, Item, Mapping, Row};
use crate::import::{Loc, Record};

/// Where a CRM stage puts a deal (`opportunity_stages:` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// Submitted to the gate, awaiting an AE.
    Submitted,
    /// Accepted as an SQO and being worked.
    Accepted,
    /// Rejected at the gate.
    Rejected,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl StageKind {
    /// Parses `submitted`, `accepted`, `rejected`, `won` or `lost`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "submitted" => StageKind::Submitted,
            "accepted" => StageKind::Accepted,
            "rejected" => StageKind::Rejected,
            "won" => StageKind::Won,
            "lost" => StageKind::Lost,
            _ => return None,
        })
    }

    /// Closed as the stage alone says (won: `Some(true)`); a rejected stage after the
    /// acceptance closes lost.
    pub(super) fn closed(self) -> Option<bool> {
        match self {
            StageKind::Won => Some(true),
            StageKind::Lost | StageKind::Rejected => Some(false),
            StageKind::Submitted | StageKind::Accepted => None,
        }
    }
}

/// A deal's entry into a stage.
pub(super) struct Change {
    pub kind: StageKind,
    /// The CRM's stage name.
    pub stage: String,
    pub at: DateTime<Utc>,
    /// Who moved it.
    pub by: String,
}

/// A deal as the CRM export holds it.
pub(super) struct Deal {
    /// Its row.
    pub at: Loc,
    pub id: String,
    pub lead_id: String,
    pub amount: cpb::Money,
    pub created: DateTime<Utc>,
    pub close_date: DateTime<Utc>,
    /// Its creator.
    pub submitted_by: String,
    pub owner: String,
    /// Its current stage.
    pub stage: Change,
    /// Closed (won: `Some(true)`), as the CRM says.
    pub closed: Option<bool>,
    /// The CRM's loss reason, free text.
    pub loss_reason: String,
    /// Its stage changes, in any order.
    pub history: Vec<Change>,
    pub activities: Vec<acc::Activity>,
    /// Rows of the other files about this deal that could not be read: it is held back.
    pub failures: Vec<(Loc, String)>,
}

/// What the other files say about each deal, by the CRM's deal id.
#[derive(Default)]
pub(super) struct Attached {
    /// What makes a CRM's deal id Qualify's opportunity id (`sf-`).
    prefix: &'static str,
    changes: HashMap<String, Vec<Change>>,
    activities: HashMap<String, Vec<acc::Activity>>,
    failures: HashMap<String, Vec<(Loc, String)>>,
}

impl Attached {
    /// Nothing yet, for deals whose Qualify ids are `prefix` and the CRM's.
    pub fn new(prefix: &'static str) -> Self {
        Attached { prefix, ..Default::default() }
    }

    pub fn change(&mut self, deal: &str, c: Result<Change, (Loc, String)>) {
        match c {
            Ok(c) => self.changes.entry(deal.to_string()).or_default().push(c),
            Err(f) => self.failures.entry(deal.to_string()).or_default().push(f),
        }
    }

    /// An activity row (`None`: a skipped type).
    pub fn activity(&mut self, deal: &str, a: Result<Option<acc::Activity>, (Loc, String)>) {
        match a {
            Ok(Some(a)) => self.activities.entry(deal.to_string()).or_default().push(a),
            Ok(None) => {}
            Err(f) => self.failures.entry(deal.to_string()).or_default().push(f),
        }
    }

    /// The deal read on `at` (the CRM's `id`) with what was attached to it; when its own row
    /// could not be read, that failure and those of its other rows.
    pub fn deal(&mut self, id: &str, at: Loc, deal: Result<Deal, String>) -> Vec<Result<Deal, Failure>> {
        let failures = self.failures.remove(id).unwrap_or_default();
        match deal {
            Ok(mut d) => {
                d.history.extend(self.changes.remove(id).unwrap_or_default());
                d.activities.extend(self.activities.remove(id).unwrap_or_default());
                d.failures.extend(failures);
                vec![Ok(d)]
            }
            Err(why) => {
                let id = format!("{}{id}", self.prefix);
                std::iter::once((at, why)).chain(held_back(&id, failures)).map(Err).collect()
            }
        }
    }
}

/// The columns an activity export names its fields with, each the first non-empty of a list.
pub(super) struct ActivityColumns {
    /// Prefix of the CRM's id (`sf-`).
    pub prefix: &'static str,
    pub id: &'static [&'static str],
    /// Its type: the first non-empty of these maps through `activity_types:`.
    pub kind: &'static [&'static str],
    pub at: &'static [&'static str],
    pub note: &'static [&'static str],
    pub by: &'static [&'static str],
}

impl ActivityColumns {
    /// The activity on `row` (`None` for a skipped type).
    pub fn read(&self, row: &Row, m: &Mapping) -> Result<Option<acc::Activity>, String> {
        let value = row.first(self.kind);
        if value.is_empty() {
            return Err(format!("{}: all empty: what kind of activity is it?", self.kind.join(", ")));
        }
        let Some(kind) = m.activity_type(&value)? else { return Ok(None) };
        let at = self
            .at
            .iter()
            .find_map(|c| super::date(&row.get(c)))
            .ok_or_else(|| format!("{}: no date", self.at.join(", ")))?;
        let id = row.first(self.id);
        Ok(Some(acc::Activity {
            activity_id: if id.is_empty() { String::new() } else { format!("{}{id}", self.prefix) },
            r#type: kind.to_wire(),
            // A real conversation with the buyer; an email or a proposal sent is none.
            meaningful: matches!(kind, ActivityType::Call | ActivityType::Meeting | ActivityType::Demo),
            occur_time: Some(timestamp(at)),
            note: row.first(self.note),
            recorded_by: row.first(self.by),
        }))
    }
}

/// The failures of rows about deal `id`, each saying that the deal was not imported.
fn held_back(id: &str, failures: Vec<Failure>) -> impl Iterator<Item = Failure> {
    let id = id.to_string();
    failures.into_iter().map(move |(at, why)| (at, format!("{why} (deal {id} held back)")))
}

impl Deal {
    /// The deal's opportunity record, or its failures: its held-back rows, each naming the
    /// deal, or its own row's.
    pub fn into_records(self, m: &Mapping, segment: Segment, now: DateTime<Utc>) -> Vec<Item> {
        if !self.failures.is_empty() {
            return held_back(&self.id, self.failures).map(Err).collect();
        }
        let at = self.at;
        vec![Ok(Record::Opportunity(at, Box::new(self.imported(m, segment, now))))]
    }

    /// The opportunity with its past, as the module says.
    fn imported(mut self, m: &Mapping, segment: Segment, now: DateTime<Utc>) -> acc::ImportedOpportunity {
        let submitted = self.created;
        self.history.sort_by_key(|c| c.at);
        if self.history.last().is_none_or(|c| c.kind != self.stage.kind) {
            let after = self.history.last().map_or(submitted, |c| c.at);
            self.stage.at = self.stage.at.max(after);
            self.history.push(self.stage);
        }
        let first = self.history.iter().find(|c| c.kind != StageKind::Submitted);
        let decided_at = first.map(|c| c.at.max(submitted));
        let decision = first.map(|c| {
            let accepted = matches!(c.kind, StageKind::Accepted | StageKind::Won);
            let note = if accepted {
                String::new()
            } else if self.loss_reason.is_empty() {
                format!("{} in the CRM", c.stage)
            } else {
                self.loss_reason.clone()
            };
            // An unmapped loss reason is free text: kept as the note of `other`.
            let reason = if accepted {
                None
            } else {
                Some(m.rejection_reason(&self.loss_reason).unwrap_or(qualify_domain::RejectionReason::Other))
            };
            let by = if c.by.is_empty() { self.owner.clone() } else { c.by.clone() };
            acc::ImportedDecision {
                accepted,
                decided_by: if by.is_empty() { "crm".into() } else { by },
                decide_time: decided_at.map(timestamp),
                reason: reason.map_or(0, WireEnum::to_wire),
                note,
            }
        });
        let close = match (decision.as_ref().filter(|d| d.accepted), self.closed, decided_at) {
            (Some(_), Some(won), Some(decided_at)) => {
                let last = self.history.last().map_or(String::new(), |c| c.stage.clone());
                Some(acc::ImportedClose {
                    won,
                    amount: won.then(|| self.amount.clone()),
                    close_time: Some(timestamp(self.close_date.max(decided_at))),
                    reason: if won || self.loss_reason.is_empty() { last } else { self.loss_reason.clone() },
                })
            }
            _ => None,
        };
        // A date-only activity date on the day of submission reads as midnight: it counts at
        // the submission. One dated after now is planned, not done.
        let activities = self
            .activities
            .into_iter()
            .filter(|a| a.occur_time.as_ref().and_then(qualify_proto::convert::from_timestamp).is_none_or(|t| t <= now))
            .map(|mut a| {
                let t = a.occur_time.as_ref().and_then(qualify_proto::convert::from_timestamp).unwrap_or(submitted);
                a.occur_time = Some(timestamp(t.max(submitted)));
                a
            })
            .collect();
        acc::ImportedOpportunity {
            opportunity: Some(acc::Opportunity {
                opportunity_id: self.id,
                lead_id: self.lead_id,
                amount: Some(self.amount),
                expected_close_time: Some(timestamp(self.close_date)),
                segment: segment.to_wire(),
                ..Default::default()
            }),
            submit_time: Some(timestamp(submitted)),
            submitted_by: self.submitted_by,
            decision,
            activities,
            close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        super::super::date(s).unwrap()
    }

    fn change(kind: StageKind, stage: &str, at: &str, by: &str) -> Change {
        Change { kind, stage: stage.into(), at: t(at), by: by.into() }
    }

    fn deal(stage: Change, closed: Option<bool>, history: Vec<Change>) -> Deal {
        Deal {
            at: Loc { file: 1, line: 2 },
            id: "sf-1".into(),
            lead_id: "sf-l".into(),
            amount: cpb::Money { amount_minor: 100, currency_code: "USD".into() },
            created: t("2026-03-02 10:00"),
            close_date: t("2026-04-01"),
            submitted_by: "sdr".into(),
            owner: "ae".into(),
            stage,
            closed,
            loss_reason: String::new(),
            history,
            activities: vec![],
            failures: vec![],
        }
    }

    fn secs(s: &str) -> Option<i64> {
        Some(t(s).timestamp())
    }

    #[test]
    fn won_without_an_accepted_stage_is_accepted_at_its_first_change_and_closes_no_earlier() {
        use StageKind::*;
        let d = deal(
            change(Won, "Closed Won", "2026-05-01", "ae"),
            Some(true),
            vec![
                change(Won, "Closed Won", "2026-04-01 15:00", "ae2"),
                change(Submitted, "Prospecting", "2026-03-02 10:00", "sdr"),
            ],
        );
        let o = d.imported(&Mapping::default(), Segment::Smb, t("2026-12-01"));
        let dec = o.decision.unwrap();
        assert!(dec.accepted);
        assert_eq!((dec.decided_by.as_str(), dec.decide_time.map(|x| x.seconds)), ("ae2", secs("2026-04-01 15:00")));
        let close = o.close.unwrap();
        assert!(close.won);
        assert_eq!(close.close_time.map(|x| x.seconds), secs("2026-04-01 15:00"), "not before the decision");
        assert_eq!(close.amount.unwrap().amount_minor, 100);
    }

    #[test]
    fn lost_before_acceptance_is_a_rejection_and_a_pending_deal_has_no_decision() {
        use StageKind::*;
        let mut d = deal(change(Lost, "Closed Lost", "2026-03-05", "ae"), Some(false), vec![]);
        d.loss_reason = "No Budget".into();
        let o = d.imported(&Mapping::default(), Segment::Smb, t("2026-12-01"));
        let dec = o.decision.unwrap();
        assert!(!dec.accepted);
        assert_eq!(dec.reason, acc::RejectionReason::NoBudget as i32);
        assert!(o.close.is_none(), "a rejected deal does not close");

        let d = deal(change(Submitted, "Qualification", "2026-03-03", "ae"), None, vec![]);
        let o = d.imported(&Mapping::default(), Segment::Smb, t("2026-12-01"));
        assert!(o.decision.is_none() && o.close.is_none());
    }
}
