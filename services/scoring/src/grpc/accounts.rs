//! Accounts on the wire: decoding an account sent to create or update (with
//! validation that names every bad field by its path in the request),
//! encoding one and its engagement roll-up, and the account RPCs.

use qualify_domain::{Account, AccountDetails, AccountField, AccountRollup, Caller, RecordedSignal, Segment};
use qualify_platform::{ApiError, Violations, idempotency, page};
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as pb;

use super::{ScoringApi, decode_mask, page_of};
use crate::accounts;
use crate::store::accounts as store;

const MAX_EMPLOYEES: i32 = 10_000_000;

/// Decodes the writable fields of an account (the id separately).
fn decode_details(v: &mut Violations, a: &pb::Account) -> AccountDetails {
    v.text("account.display_name", &a.display_name, 256);
    v.text("account.industry", &a.industry, 128);
    v.check(
        (0..=MAX_EMPLOYEES).contains(&a.employee_count),
        "account.employee_count",
        "must be between 0 and 10000000",
    );
    v.text("account.revenue_band", &a.revenue_band, 64);
    v.text("account.region", &a.region, 64);
    let segment = v.optional_enum::<Segment>("account.segment", a.segment);
    AccountDetails {
        display_name: a.display_name.clone(),
        industry: a.industry.clone(),
        employee_count: a.employee_count,
        revenue_band: a.revenue_band.clone(),
        region: a.region.clone(),
        segment,
    }
}

/// Decodes an account sent to create or update: its id and writable fields.
fn decode_account<'a>(
    v: &mut Violations,
    a: Option<&'a pb::Account>,
) -> Result<(&'a pb::Account, AccountDetails), ApiError> {
    let Some(a) = a else { return Err(ApiError::field("account", "is required")) };
    v.id("account.account_id", &a.account_id);
    Ok((a, decode_details(v, a)))
}

fn encode_account(a: Account) -> pb::Account {
    let d = a.details;
    pb::Account {
        account_id: a.account_id,
        display_name: d.display_name,
        industry: d.industry,
        employee_count: d.employee_count,
        revenue_band: d.revenue_band,
        region: d.region,
        segment: d.segment.map_or(0, WireEnum::to_wire),
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
        etag: a.version.to_string(),
    }
}

fn encode_signal(s: RecordedSignal) -> pb::Signal {
    pb::Signal {
        signal_id: s.signal_id,
        lead_id: s.lead_id,
        contact_id: s.contact_id.unwrap_or_default(),
        r#type: s.signal.kind.to_wire(),
        occur_time: Some(timestamp(s.signal.occurred_at)),
    }
}

fn encode_rollup(r: AccountRollup) -> pb::GetAccountRollupResponse {
    pb::GetAccountRollupResponse {
        account_id: r.account_id,
        engaged_contact_count: r.engaged_contacts as i32,
        purchase_influence_identified: r.purchase_influence_identified,
        latest_timing_signal: r.latest_timing_signal.map(encode_signal),
        lead_count: r.leads as i32,
        signal_count: r.signals as i32,
    }
}

impl ScoringApi {
    pub(crate) async fn create_account(
        &self,
        c: Caller,
        req: pb::CreateAccountRequest,
    ) -> Result<pb::CreateAccountResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let (a, details) = decode_account(&mut v, req.account.as_ref())?;
        v.finish()?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "CreateAccount",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let (tenant, account_id, now) = (c.tenant.clone(), a.account_id.clone(), self.clock.now());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let a = accounts::create(txn, &tenant, account_id, details, now).await?;
                Ok(pb::CreateAccountResponse { account: Some(encode_account(a)) })
            })
        })
        .await
    }

    pub(crate) async fn get_account(
        &self,
        c: Caller,
        req: pb::GetAccountRequest,
    ) -> Result<pb::GetAccountResponse, ApiError> {
        let mut v = Violations::new();
        v.id("account_id", &req.account_id);
        v.finish()?;
        let a = store::get(&self.db, &c.tenant, &req.account_id).await?;
        Ok(pb::GetAccountResponse { account: Some(encode_account(a)) })
    }

    pub(crate) async fn list_accounts(
        &self,
        c: Caller,
        req: pb::ListAccountsRequest,
    ) -> Result<pb::ListAccountsResponse, ApiError> {
        let query = format!("accounts|{}", c.tenant);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let rows = store::list(&self.db, &c.tenant, p.after.as_deref(), p.size + 1).await?;
        let (rows, next_page_token) = page_of(rows, &query, &p, |a| a.account_id.clone());
        Ok(pb::ListAccountsResponse { accounts: rows.into_iter().map(encode_account).collect(), next_page_token })
    }

    pub(crate) async fn update_account(
        &self,
        c: Caller,
        req: pb::UpdateAccountRequest,
    ) -> Result<pb::UpdateAccountResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let (a, details) = decode_account(&mut v, req.account.as_ref())?;
        let fields = decode_mask(
            &mut v,
            req.update_mask.as_ref(),
            &AccountField::ALL,
            AccountField::parse,
            "is not an updatable field",
        );
        v.finish()?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "UpdateAccount",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let update = accounts::Update {
            account_id: a.account_id.clone(),
            details,
            fields,
            etag: a.etag.clone(),
            allow_missing: req.allow_missing,
        };
        let (tenant, now) = (c.tenant.clone(), self.clock.now());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let a = accounts::update(txn, &tenant, update, now).await?;
                Ok(pb::UpdateAccountResponse { account: Some(encode_account(a)) })
            })
        })
        .await
    }

    pub(crate) async fn get_account_rollup(
        &self,
        c: Caller,
        req: pb::GetAccountRollupRequest,
    ) -> Result<pb::GetAccountRollupResponse, ApiError> {
        let mut v = Violations::new();
        v.id("account_id", &req.account_id);
        v.check((0..=3650).contains(&req.window_days), "window_days", "must be between 0 and 3650");
        if let Some(days) = self.retention.days() {
            // Older signals are gone: a longer window would count fewer than it claims.
            let within = i64::from(req.window_days) <= i64::from(days);
            v.check(within, "window_days", &format!("must be at most the signal retention, {days} days"));
        }
        v.finish()?;
        let now = self.clock.now();
        let rollup = accounts::rollup(&self.db, &c.tenant, &req.account_id, req.window_days, now).await?;
        Ok(encode_rollup(rollup))
    }
}
