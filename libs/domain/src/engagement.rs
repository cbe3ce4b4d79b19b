//! Engagement as lead scoring records it: each signal with whom it came from,
//! and an account's engagement over a window.

use chrono::{DateTime, Utc};

use crate::scoring::Signal;

/// A signal as it was recorded: deduplicated by the client's id, at the lead's account.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSignal {
    /// The client's id, unique in the tenant.
    pub signal_id: String,
    /// The lead it engaged.
    pub lead_id: String,
    /// The lead's account.
    pub account_id: String,
    /// The contact it came from, if known.
    pub contact_id: Option<String>,
    /// What happened, and when.
    pub signal: Signal,
    /// When Qualify received it.
    pub received_at: DateTime<Utc>,
}

/// An account's engagement over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRollup {
    /// The account.
    pub account_id: String,
    /// Contacts who sent a signal in the window.
    pub engaged_contacts: usize,
    /// Whether a contact with purchase influence is known at the account.
    pub purchase_influence_identified: bool,
    /// The latest timing signal in the window.
    pub latest_timing_signal: Option<RecordedSignal>,
    /// Leads at the account.
    pub leads: u64,
    /// Signals in the window.
    pub signals: u64,
}
