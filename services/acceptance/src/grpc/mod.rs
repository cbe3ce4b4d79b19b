//! The gRPC adapter of opportunity acceptance: each handler takes the
//! verified caller, decodes and validates (the codec per topic), and runs a
//! use case scoped to the caller's tenant. The only part of the service that
//! speaks the wire.

mod calibration;
mod imports;
mod opportunities;
mod policies;
mod scoring;
#[cfg(test)]
mod upgrade_test;

use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures::Stream;
use prost::Message;
use qualify_platform::outbox::{self, Relay};
use qualify_platform::{ApiError, Authenticator, Clock, caller, rpc};
use qualify_proto::acceptance::{
    self as pb,
    opportunity_acceptance_service_server::{OpportunityAcceptanceService, OpportunityAcceptanceServiceServer},
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

pub use scoring::ScoringClient;

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "acceptance.qualify";

/// Most evidence items and stakeholders a request may carry.
const MAX_ITEMS: usize = 100;

/// The opportunity acceptance API.
#[derive(Clone)]
pub struct AcceptanceApi {
    db: DatabaseConnection,
    relay: Relay,
    scoring: ScoringClient,
    clock: Clock,
}

impl AcceptanceApi {
    /// An API over `db`, its outbox relay and a client of lead scoring, reading the time from `clock`.
    pub fn new(db: DatabaseConnection, relay: Relay, scoring: ScoringClient, clock: Clock) -> Self {
        AcceptanceApi { db, relay, scoring, clock }
    }
}

/// The fully-qualified gRPC name of the service (health and reflection).
pub use qualify_proto::acceptance::opportunity_acceptance_service_server::SERVICE_NAME;

/// The service's routes behind `auth`, with messages bounded by `max_message_bytes` both ways.
pub fn routes(api: AcceptanceApi, auth: Authenticator, max_message_bytes: usize) -> Routes {
    let server = OpportunityAcceptanceServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    Routes::new(auth.protect(server))
}

/// Appends events to the outbox in the caller's transaction (one statement):
/// the stream's wire form is written here, beside the other encoders.
async fn emit(
    txn: &impl ConnectionTrait,
    tenant: &str,
    now: DateTime<Utc>,
    payloads: impl IntoIterator<Item = pb::event::Payload>,
) -> Result<(), ApiError> {
    emit_at(txn, tenant, payloads.into_iter().map(|p| (now, p))).await
}

/// Appends events each happening at its own time (an import's past), in one insert.
async fn emit_at(
    txn: &impl ConnectionTrait,
    tenant: &str,
    events: impl IntoIterator<Item = (DateTime<Utc>, pb::event::Payload)>,
) -> Result<(), ApiError> {
    let events = events.into_iter().map(|(now, payload)| {
        let event_id = uuid::Uuid::now_v7().to_string();
        let event = pb::Event {
            event_id: event_id.clone(),
            sequence: 0,
            tenant: tenant.to_string(),
            occur_time: Some(qualify_proto::convert::timestamp(now)),
            payload: Some(payload),
        };
        (event_id, event.encode_to_vec())
    });
    outbox::append(txn, tenant, events).await?;
    Ok(())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OpportunityAcceptanceService for AcceptanceApi {
    type StreamEventsStream = EventStream;

    async fn get_gate_policy(
        &self,
        r: Request<pb::GetGatePolicyRequest>,
    ) -> Result<Response<pb::GetGatePolicyResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_gate_policy(call.caller, m)).await
    }
    async fn update_gate_policy(
        &self,
        r: Request<pb::UpdateGatePolicyRequest>,
    ) -> Result<Response<pb::UpdateGatePolicyResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.update_gate_policy(call.caller, m)).await
    }
    async fn evaluate_gate(
        &self,
        r: Request<pb::EvaluateGateRequest>,
    ) -> Result<Response<pb::EvaluateGateResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.evaluate_gate(call.caller, m)).await
    }

    async fn backtest_gate_policy(
        &self,
        r: Request<pb::BacktestGatePolicyRequest>,
    ) -> Result<Response<pb::BacktestGatePolicyResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.backtest_gate_policy(call.caller, m)).await
    }
    async fn submit_opportunity(
        &self,
        r: Request<pb::SubmitOpportunityRequest>,
    ) -> Result<Response<pb::SubmitOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| async move {
            let on = call.on_behalf();
            self.submit_opportunity(call.caller, &on, m).await
        })
        .await
    }
    async fn import_opportunities(
        &self,
        r: Request<pb::ImportOpportunitiesRequest>,
    ) -> Result<Response<pb::ImportOpportunitiesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| async move {
            let on = call.on_behalf();
            self.import_opportunities(call.caller, &on, m).await
        })
        .await
    }
    async fn get_opportunity(
        &self,
        r: Request<pb::GetOpportunityRequest>,
    ) -> Result<Response<pb::GetOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_opportunity(call.caller, m)).await
    }
    async fn list_opportunities(
        &self,
        r: Request<pb::ListOpportunitiesRequest>,
    ) -> Result<Response<pb::ListOpportunitiesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_opportunities(call.caller, m)).await
    }
    async fn resubmit_opportunity(
        &self,
        r: Request<pb::ResubmitOpportunityRequest>,
    ) -> Result<Response<pb::ResubmitOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| async move {
            let on = call.on_behalf();
            self.resubmit_opportunity(call.caller, &on, m).await
        })
        .await
    }
    async fn accept_opportunity(
        &self,
        r: Request<pb::AcceptOpportunityRequest>,
    ) -> Result<Response<pb::AcceptOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| async move {
            let on = call.on_behalf();
            self.accept_opportunity(call.caller, &on, m).await
        })
        .await
    }
    async fn reject_opportunity(
        &self,
        r: Request<pb::RejectOpportunityRequest>,
    ) -> Result<Response<pb::RejectOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.reject_opportunity(call.caller, m)).await
    }
    async fn send_back_opportunity(
        &self,
        r: Request<pb::SendBackOpportunityRequest>,
    ) -> Result<Response<pb::SendBackOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.send_back_opportunity(call.caller, m)).await
    }
    async fn list_decisions(
        &self,
        r: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_decisions(call.caller, m)).await
    }
    async fn record_activity(
        &self,
        r: Request<pb::RecordActivityRequest>,
    ) -> Result<Response<pb::RecordActivityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.record_activity(call.caller, m)).await
    }
    async fn advance_opportunity(
        &self,
        r: Request<pb::AdvanceOpportunityRequest>,
    ) -> Result<Response<pb::AdvanceOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.advance_opportunity(call.caller, m)).await
    }
    async fn close_opportunity(
        &self,
        r: Request<pb::CloseOpportunityRequest>,
    ) -> Result<Response<pb::CloseOpportunityResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.close_opportunity(call.caller, m)).await
    }
    async fn list_abandoned_opportunities(
        &self,
        r: Request<pb::ListAbandonedOpportunitiesRequest>,
    ) -> Result<Response<pb::ListAbandonedOpportunitiesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_abandoned_opportunities(call.caller, m)).await
    }
    async fn create_calibration_sample(
        &self,
        r: Request<pb::CreateCalibrationSampleRequest>,
    ) -> Result<Response<pb::CreateCalibrationSampleResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.create_calibration_sample(call.caller, m)).await
    }
    async fn record_calibration_review(
        &self,
        r: Request<pb::RecordCalibrationReviewRequest>,
    ) -> Result<Response<pb::RecordCalibrationReviewResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.record_calibration_review(call.caller, m)).await
    }
    async fn get_calibration_agreement(
        &self,
        r: Request<pb::GetCalibrationAgreementRequest>,
    ) -> Result<Response<pb::GetCalibrationAgreementResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_calibration_agreement(call.caller, m)).await
    }
    async fn stream_events(
        &self,
        r: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        let req = r.into_inner();
        let tenant = outbox::stream_scope(&c, req.after_sequence).map_err(|e| e.into_status(DOMAIN))?;
        let decode = |payload: &[u8], sequence| {
            let event = pb::Event::decode(payload).ok()?;
            Some(pb::StreamEventsResponse { event: Some(pb::Event { sequence, ..event }) })
        };
        let rx =
            outbox::stream(self.db.clone(), self.relay.clone(), tenant, req.after_sequence, req.follow, DOMAIN, decode);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
