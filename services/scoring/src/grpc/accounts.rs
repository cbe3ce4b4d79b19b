//! Accounts and leads.

use chrono::{DateTime, Utc};

use qualify_domain::{Caller, Lead, LeadSource, LeadStage, Segment};
use qualify_platform::db::is_unique_violation;
use qualify_platform::error::PreconditionViolation;
use qualify_platform::validate::{Item, MAX_TEXT};
use qualify_platform::{ApiError, Violations, db, idempotency, page};
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tracing::Instrument;

use super::ScoringApi;
use super::events::emit;
use super::scores::encode_stored;
use crate::store::entity::{account, contact, lead};
use crate::store::leads::to_lead;

const ACCOUNT_FIELDS: [&str; 6] = ["display_name", "industry", "employee_count", "revenue_band", "region", "segment"];
const MAX_EMPLOYEES: i32 = 10_000_000;

/// Validates the writable fields of an account (the id separately).
fn check_account(v: &mut Violations, a: &pb::Account) -> Option<Segment> {
    v.text("account.display_name", &a.display_name, 256);
    v.text("account.industry", &a.industry, 128);
    v.check(
        (0..=MAX_EMPLOYEES).contains(&a.employee_count),
        "account.employee_count",
        "must be between 0 and 10000000",
    );
    v.text("account.revenue_band", &a.revenue_band, 64);
    v.text("account.region", &a.region, 64);
    v.optional_enum::<Segment>("account.segment", a.segment)
}

fn encode_account(m: account::Model) -> pb::Account {
    pb::Account {
        account_id: m.account_id,
        display_name: m.display_name,
        industry: m.industry,
        employee_count: m.employee_count,
        revenue_band: m.revenue_band,
        region: m.region,
        segment: m.segment.as_deref().and_then(Segment::parse).map_or(0, WireEnum::to_wire),
        create_time: Some(timestamp(m.created_at)),
        update_time: Some(timestamp(m.updated_at)),
        etag: m.version.to_string(),
    }
}

pub(crate) fn encode_lead(l: Lead) -> pb::Lead {
    pb::Lead {
        lead_id: l.lead_id,
        account_id: l.account_id,
        source: l.source.map_or(0, WireEnum::to_wire),
        campaign: l.campaign,
        owner_sdr: l.owner_sdr,
        stage: l.stage.to_wire(),
        create_time: Some(timestamp(l.created_at)),
        update_time: Some(timestamp(l.updated_at)),
        contact_id: l.contact_id.unwrap_or_default(),
        score: l.score.as_ref().map(encode_stored),
    }
}

async fn insert_account(
    db: &impl ConnectionTrait,
    tenant: &str,
    a: &pb::Account,
    segment: Option<Segment>,
    now: DateTime<Utc>,
) -> Result<account::Model, ApiError> {
    let row = account::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        account_id: Set(a.account_id.clone()),
        display_name: Set(a.display_name.clone()),
        industry: Set(a.industry.to_lowercase()),
        employee_count: Set(a.employee_count),
        revenue_band: Set(a.revenue_band.clone()),
        region: Set(a.region.to_lowercase()),
        segment: Set(segment.map(|s| s.as_str().to_string())),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    };
    row.insert(db).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::AlreadyExists { kind: "account", id: a.account_id.clone() }
        } else {
            e.into()
        }
    })
}

impl ScoringApi {
    pub(crate) async fn create_account(
        &self,
        c: Caller,
        req: pb::CreateAccountRequest,
    ) -> Result<pb::CreateAccountResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(a) = req.account.as_ref() else {
            return Err(ApiError::field("account", "is required"));
        };
        v.id("account.account_id", &a.account_id);
        let segment = check_account(&mut v, a);
        v.finish()?;
        let key = idempotency::Key { tenant: &c.tenant, method: "CreateAccount", request_id: &req.request_id };
        let tenant = c.tenant.clone();
        let a = a.clone();
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let m = insert_account(txn, &tenant, &a, segment, now).await?;
                Ok(pb::CreateAccountResponse { account: Some(encode_account(m)) })
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
        let m = account::Entity::find_by_id((c.tenant, req.account_id.clone()))
            .one(&self.db)
            .await?
            .ok_or(ApiError::NotFound { kind: "account", id: req.account_id })?;
        Ok(pb::GetAccountResponse { account: Some(encode_account(m)) })
    }

    pub(crate) async fn list_accounts(
        &self,
        c: Caller,
        req: pb::ListAccountsRequest,
    ) -> Result<pb::ListAccountsResponse, ApiError> {
        let query = format!("accounts|{}", c.tenant);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let mut q = account::Entity::find().filter(account::Column::TenantId.eq(&c.tenant));
        if let Some(after) = &p.after {
            q = q.filter(account::Column::AccountId.gt(after.as_str()));
        }
        let mut rows = q.order_by_asc(account::Column::AccountId).limit(p.size + 1).all(&self.db).await?;
        let fetched = rows.len();
        rows.truncate(p.size as usize);
        let next_page_token = page::next_token(&query, rows.last().map(|r| r.account_id.as_str()), fetched, p.size);
        Ok(pb::ListAccountsResponse { accounts: rows.into_iter().map(encode_account).collect(), next_page_token })
    }

    pub(crate) async fn update_account(
        &self,
        c: Caller,
        req: pb::UpdateAccountRequest,
    ) -> Result<pb::UpdateAccountResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(a) = req.account.as_ref() else {
            return Err(ApiError::field("account", "is required"));
        };
        v.id("account.account_id", &a.account_id);
        let segment = check_account(&mut v, a);
        let paths: Vec<String> = match &req.update_mask {
            Some(m) if !m.paths.is_empty() => m.paths.clone(),
            _ => ACCOUNT_FIELDS.iter().map(|s| s.to_string()).collect(),
        };
        for (i, p) in paths.iter().enumerate() {
            v.check(
                ACCOUNT_FIELDS.contains(&p.as_str()),
                Item("update_mask.paths", i, ""),
                "is not an updatable field",
            );
        }
        v.finish()?;
        let key = idempotency::Key { tenant: &c.tenant, method: "UpdateAccount", request_id: &req.request_id };
        let (tenant, a, allow_missing) = (c.tenant.clone(), a.clone(), req.allow_missing);
        let now = self.clock.now();
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let current = account::Entity::find_by_id((tenant.clone(), a.account_id.clone())).one(txn).await?;
                let Some(current) = current else {
                    if !allow_missing {
                        return Err(ApiError::NotFound { kind: "account", id: a.account_id.clone() });
                    }
                    let m = insert_account(txn, &tenant, &a, segment, now).await?;
                    return Ok(pb::UpdateAccountResponse { account: Some(encode_account(m)) });
                };
                if !a.etag.is_empty() && a.etag != current.version.to_string() {
                    return Err(ApiError::Aborted(format!(
                        "account {} changed since it was read (etag {} is now {})",
                        a.account_id, a.etag, current.version
                    )));
                }
                let mut next = current.clone();
                for p in &paths {
                    match p.as_str() {
                        "display_name" => next.display_name = a.display_name.clone(),
                        "industry" => next.industry = a.industry.to_lowercase(),
                        "employee_count" => next.employee_count = a.employee_count,
                        "revenue_band" => next.revenue_band = a.revenue_band.clone(),
                        "region" => next.region = a.region.to_lowercase(),
                        "segment" => next.segment = segment.map(|s| s.as_str().to_string()),
                        _ => {}
                    }
                }
                next.version = current.version + 1;
                next.updated_at = now;
                // Optimistic: the write only lands on the version that was read.
                let done = account::Entity::update_many()
                    .col_expr(account::Column::DisplayName, Expr::value(next.display_name.clone()))
                    .col_expr(account::Column::Industry, Expr::value(next.industry.clone()))
                    .col_expr(account::Column::EmployeeCount, Expr::value(next.employee_count))
                    .col_expr(account::Column::RevenueBand, Expr::value(next.revenue_band.clone()))
                    .col_expr(account::Column::Region, Expr::value(next.region.clone()))
                    .col_expr(account::Column::Segment, Expr::value(next.segment.clone()))
                    .col_expr(account::Column::Version, Expr::value(next.version))
                    .col_expr(account::Column::UpdatedAt, Expr::value(next.updated_at))
                    .filter(account::Column::TenantId.eq(&tenant))
                    .filter(account::Column::AccountId.eq(&a.account_id))
                    .filter(account::Column::Version.eq(current.version))
                    .exec(txn)
                    .await?;
                if done.rows_affected == 0 {
                    return Err(ApiError::Aborted(format!("account {} changed concurrently; retry", a.account_id)));
                }
                Ok(pb::UpdateAccountResponse { account: Some(encode_account(next)) })
            })
        })
        .await
    }

    pub(crate) async fn create_lead(
        &self,
        c: Caller,
        req: pb::CreateLeadRequest,
    ) -> Result<pb::CreateLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(l) = req.lead.as_ref() else {
            return Err(ApiError::field("lead", "is required"));
        };
        v.id("lead.lead_id", &l.lead_id);
        v.id("lead.account_id", &l.account_id);
        let source = v.required_enum::<LeadSource>("lead.source", l.source);
        v.text("lead.campaign", &l.campaign, 256);
        v.text("lead.owner_sdr", &l.owner_sdr, MAX_TEXT);
        v.optional_id("lead.contact_id", &l.contact_id);
        v.finish()?;
        let source = source.ok_or_else(|| ApiError::field("lead.source", "is required"))?;
        let key = idempotency::Key { tenant: &c.tenant, method: "CreateLead", request_id: &req.request_id };
        let (tenant, l) = (c.tenant.clone(), l.clone());
        let now = self.clock.now();
        let created = idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let Some(acct) = account::Entity::find_by_id((tenant.clone(), l.account_id.clone())).one(txn).await?
                else {
                    return Err(ApiError::FailedPrecondition {
                        reason: "ACCOUNT_NOT_FOUND",
                        message: format!("account {:?} does not exist; create it first", l.account_id),
                        violations: vec![PreconditionViolation {
                            kind: "ACCOUNT_NOT_FOUND".into(),
                            subject: format!("accounts/{}", l.account_id),
                            description: "the lead's account must exist".into(),
                        }],
                    });
                };
                if !l.contact_id.is_empty() {
                    let c = contact::Entity::find_by_id((tenant.clone(), l.contact_id.clone())).one(txn).await?;
                    if c.is_none_or(|c| c.account_id != l.account_id) {
                        return Err(ApiError::FailedPrecondition {
                            reason: "CONTACT_NOT_FOUND",
                            message: format!("contact {:?} does not exist at account {:?}", l.contact_id, l.account_id),
                            violations: vec![PreconditionViolation {
                                kind: "CONTACT_NOT_FOUND".into(),
                                subject: format!("contacts/{}", l.contact_id),
                                description: "the lead's contact must exist at its account".into(),
                            }],
                        });
                    }
                }
                let row = lead::ActiveModel {
                    tenant_id: Set(tenant.clone()),
                    lead_id: Set(l.lead_id.clone()),
                    account_id: Set(l.account_id.clone()),
                    source: Set(source.as_str().to_string()),
                    campaign: Set(l.campaign.clone()),
                    owner_sdr: Set(l.owner_sdr.clone()),
                    stage: Set(LeadStage::New.as_str().to_string()),
                    contact_id: Set((!l.contact_id.is_empty()).then(|| l.contact_id.clone())),
                    score_doc: Set(None),
                    score_total: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    signal_log: Set(None),
                };
                let m = row.insert(txn).await.map_err(|e| {
                    if is_unique_violation(&e) {
                        ApiError::AlreadyExists { kind: "lead", id: l.lead_id.clone() }
                    } else {
                        e.into()
                    }
                })?;
                let lead = encode_lead(to_lead(m));
                let segment = acct.segment.as_deref().and_then(Segment::parse).map_or(0, WireEnum::to_wire);
                let created = pb::LeadCreated { lead: Some(lead.clone()), segment };
                emit(txn, &tenant, now, pb::event::Payload::LeadCreated(created)).await?;
                Ok(pb::CreateLeadResponse { lead: Some(lead) })
            })
        })
        .await?;
        self.relay.nudge();
        Ok(created)
    }

    pub(crate) async fn get_lead(&self, c: Caller, req: pb::GetLeadRequest) -> Result<pb::GetLeadResponse, ApiError> {
        let mut v = Violations::new();
        v.id("lead_id", &req.lead_id);
        v.finish()?;
        let m = lead::Entity::find_by_id((c.tenant, req.lead_id.clone()))
            .one(&self.db)
            .instrument(db::span(&self.db, "SELECT leads"))
            .await?
            .ok_or(ApiError::NotFound { kind: "lead", id: req.lead_id })?;
        Ok(pb::GetLeadResponse { lead: Some(encode_lead(to_lead(m))) })
    }

    pub(crate) async fn list_leads(
        &self,
        c: Caller,
        req: pb::ListLeadsRequest,
    ) -> Result<pb::ListLeadsResponse, ApiError> {
        let mut v = Violations::new();
        v.optional_id("account_id", &req.account_id);
        v.finish()?;
        let query = format!("leads|{}|{}", c.tenant, req.account_id);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let mut q = lead::Entity::find().filter(lead::Column::TenantId.eq(&c.tenant));
        if !req.account_id.is_empty() {
            q = q.filter(lead::Column::AccountId.eq(&req.account_id));
        }
        if let Some(after) = &p.after {
            q = q.filter(lead::Column::LeadId.gt(after.as_str()));
        }
        let mut rows = q.order_by_asc(lead::Column::LeadId).limit(p.size + 1).all(&self.db).await?;
        let fetched = rows.len();
        rows.truncate(p.size as usize);
        let next_page_token = page::next_token(&query, rows.last().map(|r| r.lead_id.as_str()), fetched, p.size);
        Ok(pb::ListLeadsResponse {
            leads: rows.into_iter().map(|m| encode_lead(to_lead(m))).collect(),
            next_page_token,
        })
    }
}
