//! Use cases around accounts: creating one, updating the fields a client names
//! (only on the version that was read), the account a new lead or contact must
//! name, and an account's engagement roll-up.

use chrono::{DateTime, Duration, Utc};
use qualify_domain::scoring::SignalType;
use qualify_domain::{Account, AccountDetails, AccountField, AccountRollup, StakeholderRole};
use qualify_platform::ApiError;
use qualify_platform::error::PreconditionViolation;
use sea_orm::ConnectionTrait;

use crate::store::{accounts as store, contacts, leads, signals};

/// The roll-up's window when a request names none.
pub const DEFAULT_WINDOW_DAYS: i32 = 90;

/// An update of the fields a client names.
pub struct Update {
    /// The account.
    pub account_id: String,
    /// The values sent.
    pub details: AccountDetails,
    /// The fields to take from them.
    pub fields: Vec<AccountField>,
    /// The version the client read (empty: whichever is stored).
    pub etag: String,
    /// Create the account (with every field sent) when it does not exist.
    pub allow_missing: bool,
}

/// Creates an account at version 1; a taken id is ALREADY_EXISTS.
pub async fn create(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: String,
    details: AccountDetails,
    now: DateTime<Utc>,
) -> Result<Account, ApiError> {
    let account = Account { account_id, details: details.normalized(), version: 1, created_at: now, updated_at: now };
    store::insert(db, tenant, &account).await
}

/// Updates an account, or creates it when missing and allowed. A stale etag,
/// or a change since the account was read, is ABORTED.
pub async fn update(
    txn: &impl ConnectionTrait,
    tenant: &str,
    u: Update,
    now: DateTime<Utc>,
) -> Result<Account, ApiError> {
    let Some(current) = store::find(txn, tenant, &u.account_id).await? else {
        if !u.allow_missing {
            return Err(ApiError::NotFound { kind: "account", id: u.account_id });
        }
        return create(txn, tenant, u.account_id, u.details, now).await;
    };
    if !u.etag.is_empty() && u.etag != current.version.to_string() {
        return Err(ApiError::Aborted(format!(
            "account {} changed since it was read (etag {} is now {})",
            u.account_id, u.etag, current.version
        )));
    }
    let details = current.details.clone().with(&u.details.normalized(), &u.fields);
    let next = Account { details, version: current.version + 1, updated_at: now, ..current };
    // Optimistic: the write only lands on the version that was read.
    if !store::update(txn, tenant, &next, current.version).await? {
        return Err(ApiError::Aborted(format!("account {} changed concurrently; retry", u.account_id)));
    }
    Ok(next)
}

/// The account a new lead or contact names (`whose`: "lead's", "contact's");
/// FAILED_PRECONDITION when it does not exist.
pub async fn require(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    whose: &str,
) -> Result<Account, ApiError> {
    store::find(db, tenant, account_id).await?.ok_or_else(|| ApiError::FailedPrecondition {
        reason: "ACCOUNT_NOT_FOUND",
        message: format!("account {account_id:?} does not exist; create it first"),
        violations: vec![PreconditionViolation {
            kind: "ACCOUNT_NOT_FOUND".into(),
            subject: format!("accounts/{account_id}"),
            description: format!("the {whose} account must exist"),
        }],
    })
}

/// An account's engagement over the last `window_days` (0: the default window) before `now`.
pub async fn rollup(
    db: &impl ConnectionTrait,
    tenant: &str,
    account_id: &str,
    window_days: i32,
    now: DateTime<Utc>,
) -> Result<AccountRollup, ApiError> {
    store::get(db, tenant, account_id).await?;
    let window = if window_days == 0 { DEFAULT_WINDOW_DAYS } else { window_days };
    let since = now - Duration::days(i64::from(window));
    let engaged_contacts = signals::engaged_contacts(db, tenant, account_id, since).await?;
    let signal_count = signals::count_at_account(db, tenant, account_id, since).await?;
    let timing: Vec<SignalType> = SignalType::ALL.into_iter().filter(|s| s.is_timing()).collect();
    let latest_timing_signal = signals::latest_at_account(db, tenant, account_id, since, &timing).await?;
    let influence: Vec<StakeholderRole> =
        StakeholderRole::ALL.into_iter().filter(|r| r.has_purchase_influence()).collect();
    let influencers = contacts::count_with_roles(db, tenant, account_id, &influence).await?;
    let leads = leads::count_at_account(db, tenant, account_id).await?;
    Ok(AccountRollup {
        account_id: account_id.to_string(),
        engaged_contacts,
        purchase_influence_identified: influencers > 0,
        latest_timing_signal,
        leads,
        signals: signal_count,
    })
}
