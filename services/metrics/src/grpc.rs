//! The gRPC adapter of metrics.

use chrono::Utc;
use qualify_domain::{Caller, Role};
use qualify_platform::{ApiError, Violations, caller, idempotency, page};
use qualify_proto::common::Money;
use qualify_proto::convert::timestamp;
use qualify_proto::metrics::{self as pb, QuotaOwnerKind, metrics_service_server::MetricsService};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tonic::{Request, Response, Status};

use crate::entity::quota;

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "metrics.qualify";

fn reply<T>(r: Result<T, ApiError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(|e| e.into_status(DOMAIN))
}

/// The metrics API.
#[derive(Clone)]
pub struct MetricsApi {
    db: DatabaseConnection,
}

impl MetricsApi {
    /// An API over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        MetricsApi { db }
    }
}

/// A month as `YYYY-MM`.
fn is_period(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}

/// ISO 4217 shape: three upper-case letters.
fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn owner_kind_name(k: QuotaOwnerKind) -> Option<&'static str> {
    match k {
        QuotaOwnerKind::Team => Some("team"),
        QuotaOwnerKind::Rep => Some("rep"),
        QuotaOwnerKind::Unspecified => None,
    }
}

fn encode(m: quota::Model) -> pb::Quota {
    let kind = match m.owner_kind.as_str() {
        "team" => QuotaOwnerKind::Team,
        "rep" => QuotaOwnerKind::Rep,
        _ => QuotaOwnerKind::Unspecified,
    };
    pb::Quota {
        owner_kind: kind as i32,
        owner_id: m.owner_id,
        period: m.period,
        amount: Some(Money { amount_minor: m.amount_minor, currency_code: m.currency_code }),
        update_time: Some(timestamp(m.updated_at)),
    }
}

impl MetricsApi {
    async fn update_quota(&self, c: Caller, req: pb::UpdateQuotaRequest) -> Result<pb::UpdateQuotaResponse, ApiError> {
        if c.is_automation() || !c.has_any(&[Role::Revops, Role::Manager]) {
            return Err(ApiError::forbidden("ROLE_REQUIRED", "only RevOps or a manager can set quotas"));
        }
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(q) = req.quota.as_ref() else {
            return Err(ApiError::field("quota", "is required"));
        };
        let kind = QuotaOwnerKind::try_from(q.owner_kind).ok().and_then(owner_kind_name);
        v.check(kind.is_some(), "quota.owner_kind", "must be TEAM or REP");
        v.id("quota.owner_id", &q.owner_id);
        v.check(is_period(&q.period), "quota.period", "must be a month as YYYY-MM");
        match &q.amount {
            None => v.add("quota.amount", "is required"),
            Some(m) => {
                v.check(m.amount_minor >= 0, "quota.amount.amount_minor", "must not be negative");
                v.check(is_currency(&m.currency_code), "quota.amount.currency_code", "must be an ISO 4217 code");
            }
        }
        v.finish()?;
        let (Some(kind), Some(amount)) = (kind, q.amount.clone()) else {
            return Err(ApiError::field("quota", "is invalid"));
        };
        let key = idempotency::Key { tenant: &c.tenant, method: "UpdateQuota", request_id: &req.request_id };
        let row = quota::Model {
            tenant_id: c.tenant.clone(),
            period: q.period.clone(),
            owner_kind: kind.to_string(),
            owner_id: q.owner_id.clone(),
            amount_minor: amount.amount_minor,
            currency_code: amount.currency_code,
            updated_at: Utc::now(),
        };
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                use quota::Column as Q;
                let active = quota::ActiveModel {
                    tenant_id: Set(row.tenant_id.clone()),
                    period: Set(row.period.clone()),
                    owner_kind: Set(row.owner_kind.clone()),
                    owner_id: Set(row.owner_id.clone()),
                    amount_minor: Set(row.amount_minor),
                    currency_code: Set(row.currency_code.clone()),
                    updated_at: Set(row.updated_at),
                };
                quota::Entity::insert(active)
                    .on_conflict(
                        OnConflict::columns([Q::TenantId, Q::Period, Q::OwnerKind, Q::OwnerId])
                            .update_columns([Q::AmountMinor, Q::CurrencyCode, Q::UpdatedAt])
                            .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await?;
                Ok(pb::UpdateQuotaResponse { quota: Some(encode(row)) })
            })
        })
        .await
    }

    async fn list_quotas(&self, c: Caller, req: pb::ListQuotasRequest) -> Result<pb::ListQuotasResponse, ApiError> {
        let mut v = Violations::new();
        v.check(is_period(&req.period), "period", "must be a month as YYYY-MM");
        v.finish()?;
        let query = format!("quotas|{}|{}", c.tenant, req.period);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        let mut q = quota::Entity::find()
            .filter(quota::Column::TenantId.eq(&c.tenant))
            .filter(quota::Column::Period.eq(&req.period));
        if let Some(after) = &p.after
            && let Some((kind, id)) = after.split_once('/')
        {
            // Keyset pagination over (owner_kind, owner_id).
            q = q.filter(sea_orm::Condition::any().add(quota::Column::OwnerKind.gt(kind)).add(
                sea_orm::Condition::all().add(quota::Column::OwnerKind.eq(kind)).add(quota::Column::OwnerId.gt(id)),
            ));
        }
        let mut rows = q
            .order_by_asc(quota::Column::OwnerKind)
            .order_by_asc(quota::Column::OwnerId)
            .limit(p.size + 1)
            .all(&self.db)
            .await?;
        let fetched = rows.len();
        rows.truncate(p.size as usize);
        let last = rows.last().map(|r| format!("{}/{}", r.owner_kind, r.owner_id));
        let next_page_token = page::next_token(&query, last.as_deref(), fetched, p.size);
        Ok(pb::ListQuotasResponse { quotas: rows.into_iter().map(encode).collect(), next_page_token })
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsApi {
    async fn update_quota(
        &self,
        r: Request<pb::UpdateQuotaRequest>,
    ) -> Result<Response<pb::UpdateQuotaResponse>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        reply(MetricsApi::update_quota(self, c, r.into_inner()).await)
    }

    async fn list_quotas(&self, r: Request<pb::ListQuotasRequest>) -> Result<Response<pb::ListQuotasResponse>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        reply(MetricsApi::list_quotas(self, c, r.into_inner()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_currencies() {
        assert!(is_period("2026-11"));
        assert!(!is_period("2026-13") && !is_period("2026-1") && !is_period("26-11-01"));
        assert!(is_currency("USD") && !is_currency("usd") && !is_currency("US"));
    }
}
