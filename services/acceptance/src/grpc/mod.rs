//! The gRPC adapter of opportunity acceptance: each handler takes the
//! verified caller, decodes and validates, and runs a use case scoped to the
//! caller's tenant.

mod calibration;
mod opportunities;
mod policy;

use std::pin::Pin;

use futures::Stream;
use prost::Message;
use qualify_platform::auth::BearerToken;
use qualify_platform::outbox::{self, Relay};
use qualify_platform::{ApiError, caller};
use qualify_proto::acceptance::{self as pb, opportunity_acceptance_service_server::OpportunityAcceptanceService};
use sea_orm::DatabaseConnection;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::scoring::ScoringClient;

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
}

impl AcceptanceApi {
    /// An API over `db`, its outbox relay and a client of lead scoring.
    pub fn new(db: DatabaseConnection, relay: Relay, scoring: ScoringClient) -> Self {
        AcceptanceApi { db, relay, scoring }
    }
}

/// Runs a unary use case with the verified caller.
macro_rules! unary {
    ($self:ident, $req:ident, $method:ident) => {{
        let c = caller(&$req).map_err(|e| e.into_status(DOMAIN))?;
        AcceptanceApi::$method($self, c, $req.into_inner())
            .await
            .map(Response::new)
            .map_err(|e: ApiError| e.into_status(DOMAIN))
    }};
}

/// Runs a unary use case that calls lead scoring on the caller's behalf.
macro_rules! on_behalf {
    ($self:ident, $req:ident, $method:ident) => {{
        let c = caller(&$req).map_err(|e| e.into_status(DOMAIN))?;
        let token = $req.extensions().get::<BearerToken>().map(|t| t.0.clone()).unwrap_or_default();
        AcceptanceApi::$method($self, c, &token, $req.into_inner())
            .await
            .map(Response::new)
            .map_err(|e: ApiError| e.into_status(DOMAIN))
    }};
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OpportunityAcceptanceService for AcceptanceApi {
    type StreamEventsStream = EventStream;

    async fn get_gate_policy(
        &self,
        r: Request<pb::GetGatePolicyRequest>,
    ) -> Result<Response<pb::GetGatePolicyResponse>, Status> {
        unary!(self, r, get_gate_policy)
    }
    async fn update_gate_policy(
        &self,
        r: Request<pb::UpdateGatePolicyRequest>,
    ) -> Result<Response<pb::UpdateGatePolicyResponse>, Status> {
        unary!(self, r, update_gate_policy)
    }
    async fn evaluate_gate(
        &self,
        r: Request<pb::EvaluateGateRequest>,
    ) -> Result<Response<pb::EvaluateGateResponse>, Status> {
        unary!(self, r, evaluate_gate)
    }

    async fn backtest_gate_policy(
        &self,
        r: Request<pb::BacktestGatePolicyRequest>,
    ) -> Result<Response<pb::BacktestGatePolicyResponse>, Status> {
        unary!(self, r, backtest_gate_policy)
    }
    async fn submit_opportunity(
        &self,
        r: Request<pb::SubmitOpportunityRequest>,
    ) -> Result<Response<pb::SubmitOpportunityResponse>, Status> {
        on_behalf!(self, r, submit_opportunity)
    }
    async fn get_opportunity(
        &self,
        r: Request<pb::GetOpportunityRequest>,
    ) -> Result<Response<pb::GetOpportunityResponse>, Status> {
        unary!(self, r, get_opportunity)
    }
    async fn list_opportunities(
        &self,
        r: Request<pb::ListOpportunitiesRequest>,
    ) -> Result<Response<pb::ListOpportunitiesResponse>, Status> {
        unary!(self, r, list_opportunities)
    }
    async fn resubmit_opportunity(
        &self,
        r: Request<pb::ResubmitOpportunityRequest>,
    ) -> Result<Response<pb::ResubmitOpportunityResponse>, Status> {
        on_behalf!(self, r, resubmit_opportunity)
    }
    async fn accept_opportunity(
        &self,
        r: Request<pb::AcceptOpportunityRequest>,
    ) -> Result<Response<pb::AcceptOpportunityResponse>, Status> {
        unary!(self, r, accept_opportunity)
    }
    async fn reject_opportunity(
        &self,
        r: Request<pb::RejectOpportunityRequest>,
    ) -> Result<Response<pb::RejectOpportunityResponse>, Status> {
        unary!(self, r, reject_opportunity)
    }
    async fn send_back_opportunity(
        &self,
        r: Request<pb::SendBackOpportunityRequest>,
    ) -> Result<Response<pb::SendBackOpportunityResponse>, Status> {
        unary!(self, r, send_back_opportunity)
    }
    async fn list_decisions(
        &self,
        r: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        unary!(self, r, list_decisions)
    }
    async fn record_activity(
        &self,
        r: Request<pb::RecordActivityRequest>,
    ) -> Result<Response<pb::RecordActivityResponse>, Status> {
        unary!(self, r, record_activity)
    }
    async fn advance_opportunity(
        &self,
        r: Request<pb::AdvanceOpportunityRequest>,
    ) -> Result<Response<pb::AdvanceOpportunityResponse>, Status> {
        unary!(self, r, advance_opportunity)
    }
    async fn close_opportunity(
        &self,
        r: Request<pb::CloseOpportunityRequest>,
    ) -> Result<Response<pb::CloseOpportunityResponse>, Status> {
        unary!(self, r, close_opportunity)
    }
    async fn list_abandoned_opportunities(
        &self,
        r: Request<pb::ListAbandonedOpportunitiesRequest>,
    ) -> Result<Response<pb::ListAbandonedOpportunitiesResponse>, Status> {
        unary!(self, r, list_abandoned_opportunities)
    }
    async fn create_calibration_sample(
        &self,
        r: Request<pb::CreateCalibrationSampleRequest>,
    ) -> Result<Response<pb::CreateCalibrationSampleResponse>, Status> {
        unary!(self, r, create_calibration_sample)
    }
    async fn record_calibration_review(
        &self,
        r: Request<pb::RecordCalibrationReviewRequest>,
    ) -> Result<Response<pb::RecordCalibrationReviewResponse>, Status> {
        unary!(self, r, record_calibration_review)
    }
    async fn get_calibration_agreement(
        &self,
        r: Request<pb::GetCalibrationAgreementRequest>,
    ) -> Result<Response<pb::GetCalibrationAgreementResponse>, Status> {
        unary!(self, r, get_calibration_agreement)
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
