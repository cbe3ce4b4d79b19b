//! What became of each record of an import (a CRM's history brought in with
//! its own times), the same for every service's import RPC, and its wire form.

use qualify_proto::common as cpb;

use crate::error::FieldViolation;

/// What became of one imported record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written with its past, marked imported.
    Imported,
    /// Its id was present: nothing written (re-running an import changes nothing).
    Unchanged,
    /// Refused, with every problem: nothing written.
    Rejected(Vec<FieldViolation>),
}

impl Outcome {
    /// Refused for one reason.
    pub fn rejected(field: &str, description: &str) -> Self {
        Outcome::Rejected(vec![FieldViolation { field: field.into(), description: description.into() }])
    }
}

/// The wire results of a batch, in request order, and how many of each outcome.
#[derive(Debug, Default)]
pub struct Results {
    /// One result per record.
    pub results: Vec<cpb::ImportResult>,
    /// Records imported.
    pub imported: i32,
    /// Records already present.
    pub unchanged: i32,
    /// Records refused.
    pub rejected: i32,
}

/// The wire results of records with `ids` (the CRM's ids, as sent) and their `outcomes`.
pub fn encode(ids: impl IntoIterator<Item = String>, outcomes: Vec<Outcome>) -> Results {
    let mut out = Results::default();
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        let mut result = cpb::ImportResult { id, ..Default::default() };
        result.outcome = match outcome {
            Outcome::Imported => {
                out.imported += 1;
                cpb::ImportOutcome::Imported
            }
            Outcome::Unchanged => {
                out.unchanged += 1;
                cpb::ImportOutcome::Unchanged
            }
            Outcome::Rejected(violations) => {
                out.rejected += 1;
                result.violations = violations
                    .into_iter()
                    .map(|v| cpb::ImportViolation { field: v.field, description: v.description })
                    .collect();
                cpb::ImportOutcome::Rejected
            }
        } as i32;
        out.results.push(result);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_and_count_each_outcome() {
        let r = encode(
            ["a", "b", "c", "d"].map(String::from),
            vec![
                Outcome::Imported,
                Outcome::rejected("lead.account_id", "no such account"),
                Outcome::Unchanged,
                Outcome::Imported,
            ],
        );
        assert_eq!((r.imported, r.unchanged, r.rejected), (2, 1, 1));
        let ids: Vec<_> = r.results.iter().map(|x| (x.id.as_str(), x.outcome)).collect();
        assert_eq!(
            ids,
            [
                ("a", cpb::ImportOutcome::Imported as i32),
                ("b", cpb::ImportOutcome::Rejected as i32),
                ("c", cpb::ImportOutcome::Unchanged as i32),
                ("d", cpb::ImportOutcome::Imported as i32)
            ]
        );
        assert_eq!(r.results[1].violations[0].field, "lead.account_id");
    }
}
