//! The gRPC adapter of metrics: each RPC decodes its request ([`codec`]),
//! runs a use case and encodes the result; [`events`] reads the upstream
//! event streams.

mod codec;
pub mod events;

use qualify_domain::{Caller, permission};
use qualify_platform::{ApiError, Authenticator, Clock, idempotency, page, rpc};
use qualify_proto::metrics as pb;
use qualify_proto::metrics::metrics_service_server::{MetricsService, MetricsServiceServer};
use sea_orm::DatabaseConnection;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::ingest::{self, Ingestor};
use crate::{funnel, health, quotas, store};

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "metrics.qualify";

/// The fully-qualified gRPC name of the service (health and reflection).
pub use qualify_proto::metrics::metrics_service_server::SERVICE_NAME;

/// The service's routes behind `auth`, with messages bounded by `max_message_bytes` both ways.
pub fn routes(api: MetricsApi, auth: Authenticator, max_message_bytes: usize) -> Routes {
    let server = MetricsServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    Routes::new(auth.protect(server))
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

    async fn update_quota(&self, c: Caller, req: pb::UpdateQuotaRequest) -> Result<pb::UpdateQuotaResponse, ApiError> {
        permission::administer(&c, "set quotas")?;
        let change = codec::quota_change(&req)?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "UpdateQuota",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let (tenant, clock) = (c.tenant.clone(), self.clock.clone());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let quota = quotas::set(txn, &tenant, change, &clock).await?;
                Ok(pb::UpdateQuotaResponse { quota: Some(codec::quota(quota)) })
            })
        })
        .await
    }

    async fn list_quotas(&self, c: Caller, req: pb::ListQuotasRequest) -> Result<pb::ListQuotasResponse, ApiError> {
        codec::month("period", &req.period)?;
        let query = format!("quotas|{}|{}", c.tenant, req.period);
        let p = page::decode(req.page_size, &req.page_token, &query)?;
        // The page key is the last quota's (owner kind, owner id).
        let after = p.after.as_deref().and_then(|a| a.split_once('/'));
        let mut rows = quotas::list(&self.db, &c.tenant, &req.period, after, p.size + 1).await?;
        let fetched = rows.len();
        rows.truncate(p.size as usize);
        let last = rows.last().map(|q| format!("{}/{}", q.owner_kind.as_str(), q.owner_id));
        let next_page_token = page::next_token(&query, last.as_deref(), fetched, p.size);
        Ok(pb::ListQuotasResponse { quotas: rows.into_iter().map(codec::quota).collect(), next_page_token })
    }

    async fn get_funnel(&self, c: Caller, req: pb::GetFunnelRequest) -> Result<pb::GetFunnelResponse, ApiError> {
        let q = codec::funnel_query(c.tenant, req)?;
        Ok(pb::GetFunnelResponse {
            rows: funnel::funnel(&self.db, &q).await?.into_iter().map(codec::funnel_row).collect(),
        })
    }

    async fn get_funnel_health(
        &self,
        c: Caller,
        req: pb::GetFunnelHealthRequest,
    ) -> Result<pb::GetFunnelHealthResponse, ApiError> {
        codec::months(&req.start_period, &req.end_period)?;
        let now = self.clock.now();
        let at = match req.as_of_time.as_ref().map(qualify_proto::convert::from_timestamp) {
            None => now,
            Some(Some(t)) if t <= now => t,
            Some(_) => return Err(ApiError::field("as_of_time", "must be a valid time, not in the future")),
        };
        let range = (req.start_period.as_str(), req.end_period.as_str());
        let findings = health::findings(&self.db, &c.tenant, range, at).await?;
        Ok(pb::GetFunnelHealthResponse { findings: findings.into_iter().map(codec::finding).collect() })
    }

    async fn set_reporting_currency(
        &self,
        c: Caller,
        req: pb::SetReportingCurrencyRequest,
    ) -> Result<pb::SetReportingCurrencyResponse, ApiError> {
        permission::administer(&c, "set the reporting currency")?;
        let code = codec::reporting_currency(&req)?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "SetReportingCurrency",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let (tenant, now) = (c.tenant.clone(), self.clock.now());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                store::currency::set_reporting(txn, &tenant, &code, now).await?;
                Ok(pb::SetReportingCurrencyResponse { currency_code: code })
            })
        })
        .await
    }

    async fn get_reporting_currency(&self, c: Caller) -> Result<pb::GetReportingCurrencyResponse, ApiError> {
        Ok(pb::GetReportingCurrencyResponse { currency_code: store::currency::reporting(&self.db, &c.tenant).await? })
    }

    async fn set_exchange_rates(
        &self,
        c: Caller,
        req: pb::SetExchangeRatesRequest,
    ) -> Result<pb::SetExchangeRatesResponse, ApiError> {
        permission::administer(&c, "set exchange rates")?;
        // Everything is checked before the transaction (an idempotency key must be valid before
        // it is looked up); the reporting currency is read again inside it.
        let reporting = store::currency::reporting(&self.db, &c.tenant).await?;
        let rates = codec::exchange_rates(&req, &reporting)?;
        let key = idempotency::Key {
            tenant: &c.tenant,
            method: "SetExchangeRates",
            request_id: &req.request_id,
            subject: &c.subject,
        };
        let (tenant, now, period) = (c.tenant.clone(), self.clock.now(), req.period.clone());
        idempotency::run(&self.db, key, &req, move |txn| {
            Box::pin(async move {
                let reporting = store::currency::reporting(txn, &tenant).await?;
                if rates.iter().any(|(code, _)| *code == reporting) {
                    return Err(ApiError::field("rates", "names the reporting currency, which was just changed to it"));
                }
                store::currency::set_rates(txn, &tenant, &period, &reporting, &rates, now).await?;
                let month = (period.as_str(), period.as_str());
                let stored = store::currency::rates(txn, &tenant, &reporting, month).await?;
                Ok(pb::SetExchangeRatesResponse {
                    rates: codec::rates_of(stored.into_iter().map(|((_, code), r)| (code, r)).collect()),
                    reporting_currency_code: reporting,
                })
            })
        })
        .await
    }

    async fn list_exchange_rates(
        &self,
        c: Caller,
        req: pb::ListExchangeRatesRequest,
    ) -> Result<pb::ListExchangeRatesResponse, ApiError> {
        codec::month("period", &req.period)?;
        let reporting = store::currency::reporting(&self.db, &c.tenant).await?;
        let month = (req.period.as_str(), req.period.as_str());
        let stored = store::currency::rates(&self.db, &c.tenant, &reporting, month).await?;
        Ok(pb::ListExchangeRatesResponse {
            rates: codec::rates_of(stored.into_iter().map(|((_, code), r)| (code, r)).collect()),
            reporting_currency_code: reporting,
        })
    }

    async fn get_ingestion_status(&self, c: Caller) -> Result<pb::GetIngestionStatusResponse, ApiError> {
        // Stream positions count every tenant's events: the platform's business, not a tenant's.
        permission::operate_platform(&c, "reads ingestion status")?;
        Ok(pb::GetIngestionStatusResponse {
            streams: ingest::positions(&self.db).await?.into_iter().map(codec::position).collect(),
        })
    }

    async fn rebuild_rollups(&self, c: Caller) -> Result<pb::RebuildRollupsResponse, ApiError> {
        // Roll-ups span every tenant: only the platform's own operators rebuild them.
        permission::operate_platform(&c, "rebuilds roll-ups")?;
        Ok(pb::RebuildRollupsResponse {
            streams: self.ingestor.rebuild().await?.into_iter().map(codec::position).collect(),
        })
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

    async fn set_reporting_currency(
        &self,
        r: Request<pb::SetReportingCurrencyRequest>,
    ) -> Result<Response<pb::SetReportingCurrencyResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.set_reporting_currency(call.caller, m)).await
    }

    async fn get_reporting_currency(
        &self,
        r: Request<pb::GetReportingCurrencyRequest>,
    ) -> Result<Response<pb::GetReportingCurrencyResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, _| self.get_reporting_currency(call.caller)).await
    }

    async fn set_exchange_rates(
        &self,
        r: Request<pb::SetExchangeRatesRequest>,
    ) -> Result<Response<pb::SetExchangeRatesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.set_exchange_rates(call.caller, m)).await
    }

    async fn list_exchange_rates(
        &self,
        r: Request<pb::ListExchangeRatesRequest>,
    ) -> Result<Response<pb::ListExchangeRatesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_exchange_rates(call.caller, m)).await
    }
}
