//! The gRPC adapter of metrics.

use qualify_domain::{Caller, permission};
use qualify_platform::validate::{is_month, month_range};
use qualify_platform::{ApiError, Authenticator, Clock, Violations, idempotency, page, rpc};
use qualify_proto::common::Money;
use qualify_proto::convert::WireEnum;
use qualify_proto::convert::timestamp;
use qualify_proto::metrics::metrics_service_server::{MetricsService, MetricsServiceServer};
use qualify_proto::metrics::{self as pb, FunnelDimension, QuotaOwnerKind};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::ingest::{self, Ingestor};
use crate::store::entity::quota;
use crate::{funnel, health};

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "metrics.qualify";

/// The fully-qualified gRPC name of the service (health and reflection).
pub use qualify_proto::metrics::metrics_service_server::SERVICE_NAME;

/// The service's routes behind `auth`, with messages bounded by `max_message_bytes` both ways.
pub fn routes(api: MetricsApi, auth: Authenticator, max_message_bytes: usize) -> Routes {
    let server = MetricsServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    Routes::new(InterceptedService::new(server, auth))
}

/// The metrics API.
#[derive(Clone)]
pub struct MetricsApi {
    db: DatabaseConnection,
    ingestor: Ingestor,
    /// The stream consumers live as long as the service.
    _consumers: std::sync::Arc<ingest::Consumers>,
    clock: Clock,
}

impl MetricsApi {
    /// An API over `db`, with the ingestor that fills it and its running consumers,
    /// reading the time from `clock`.
    pub fn new(db: DatabaseConnection, ingestor: Ingestor, consumers: ingest::Consumers, clock: Clock) -> Self {
        MetricsApi { db, ingestor, _consumers: std::sync::Arc::new(consumers), clock }
    }
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
        permission::administer(&c, "set quotas")?;
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        let Some(q) = req.quota.as_ref() else {
            return Err(ApiError::field("quota", "is required"));
        };
        let kind = QuotaOwnerKind::try_from(q.owner_kind).ok().and_then(owner_kind_name);
        v.check(kind.is_some(), "quota.owner_kind", "must be TEAM or REP");
        v.id("quota.owner_id", &q.owner_id);
        v.check(is_month(&q.period), "quota.period", "must be a month as YYYY-MM");
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
            updated_at: self.clock.now(),
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
        v.check(is_month(&req.period), "period", "must be a month as YYYY-MM");
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

fn position(c: crate::store::entity::cursor::Model) -> pb::StreamPosition {
    pb::StreamPosition { stream: c.stream, applied_sequence: c.applied_sequence, applied_events: c.applied_events }
}

impl MetricsApi {
    async fn get_funnel(&self, c: Caller, req: pb::GetFunnelRequest) -> Result<pb::GetFunnelResponse, ApiError> {
        use crate::store::entity::rollup::Column as R;
        let mut v = Violations::new();
        month_range(&mut v, &req.start_period, &req.end_period);
        let mut group_by = Vec::new();
        for (i, d) in req.group_by.iter().enumerate() {
            match FunnelDimension::try_from(*d) {
                Ok(FunnelDimension::Unspecified) | Err(_) => {
                    v.add(format!("group_by[{i}]"), "must be a known dimension")
                }
                Ok(d) if group_by.contains(&d) => v.add(format!("group_by[{i}]"), "is repeated"),
                Ok(d) => group_by.push(d),
            }
        }
        let mut filters = Vec::new();
        if req.source != 0 {
            match qualify_domain::LeadSource::from_wire(req.source) {
                Some(s) => filters.push((R::Source, s.as_str().to_string())),
                None => v.add("source", "is not a known value"),
            }
        }
        if req.segment != 0 {
            match qualify_domain::Segment::from_wire(req.segment) {
                Some(s) => filters.push((R::Segment, s.as_str().to_string())),
                None => v.add("segment", "is not a known value"),
            }
        }
        for (field, col, value) in
            [("team", R::Team, &req.team), ("rep", R::Rep, &req.rep), ("campaign", R::Campaign, &req.campaign)]
        {
            if !value.is_empty() {
                v.text(field, value, 256);
                filters.push((col, value.clone()));
            }
        }
        let fine = [FunnelDimension::Team, FunnelDimension::Rep, FunnelDimension::Campaign];
        let asked = fine.iter().filter(|d| group_by.contains(d)).count()
            + [&req.team, &req.rep, &req.campaign].iter().filter(|v| !v.is_empty()).count();
        v.check(asked <= 1, "group_by", "may group or filter by at most one of team, rep and campaign");
        v.finish()?;
        let q = funnel::Query { tenant: c.tenant, start: req.start_period, end: req.end_period, group_by, filters };
        Ok(pb::GetFunnelResponse { rows: funnel::funnel(&self.db, &q).await? })
    }

    async fn get_funnel_health(
        &self,
        c: Caller,
        req: pb::GetFunnelHealthRequest,
    ) -> Result<pb::GetFunnelHealthResponse, ApiError> {
        let mut v = Violations::new();
        month_range(&mut v, &req.start_period, &req.end_period);
        v.finish()?;
        let findings = health::findings(&self.db, &c.tenant, &req.start_period, &req.end_period).await?;
        Ok(pb::GetFunnelHealthResponse { findings })
    }

    async fn get_ingestion_status(&self, c: Caller) -> Result<pb::GetIngestionStatusResponse, ApiError> {
        // Stream positions count every tenant's events: the platform's business, not a tenant's.
        permission::operate_platform(&c, "reads ingestion status")?;
        Ok(pb::GetIngestionStatusResponse {
            streams: ingest::positions(&self.db).await?.into_iter().map(position).collect(),
        })
    }

    async fn rebuild_rollups(&self, c: Caller) -> Result<pb::RebuildRollupsResponse, ApiError> {
        // Roll-ups span every tenant: only the platform's own operators rebuild them.
        permission::operate_platform(&c, "rebuilds roll-ups")?;
        Ok(pb::RebuildRollupsResponse { streams: self.ingestor.rebuild().await?.into_iter().map(position).collect() })
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsApi {
    async fn get_funnel(&self, r: Request<pb::GetFunnelRequest>) -> Result<Response<pb::GetFunnelResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_funnel(call.caller, m)).await
    }

    async fn get_funnel_health(
        &self,
        r: Request<pb::GetFunnelHealthRequest>,
    ) -> Result<Response<pb::GetFunnelHealthResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_funnel_health(call.caller, m)).await
    }

    async fn get_ingestion_status(
        &self,
        r: Request<pb::GetIngestionStatusRequest>,
    ) -> Result<Response<pb::GetIngestionStatusResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, _| self.get_ingestion_status(call.caller)).await
    }

    async fn rebuild_rollups(
        &self,
        r: Request<pb::RebuildRollupsRequest>,
    ) -> Result<Response<pb::RebuildRollupsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, _| self.rebuild_rollups(call.caller)).await
    }

    async fn update_quota(
        &self,
        r: Request<pb::UpdateQuotaRequest>,
    ) -> Result<Response<pb::UpdateQuotaResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.update_quota(call.caller, m)).await
    }

    async fn list_quotas(&self, r: Request<pb::ListQuotasRequest>) -> Result<Response<pb::ListQuotasResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_quotas(call.caller, m)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_currencies() {
        assert!(is_month("2026-11"));
        assert!(!is_month("2026-13") && !is_month("2026-1") && !is_month("26-11-01"));
        assert!(is_currency("USD") && !is_currency("usd") && !is_currency("US"));
    }
}
