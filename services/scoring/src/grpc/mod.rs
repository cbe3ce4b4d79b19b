//! The gRPC adapter: each handler takes the verified caller, decodes and
//! validates, runs a use case scoped to the caller's tenant, and encodes.

mod accounts;
mod contacts;
mod events;
mod scorecards;
mod scores;
mod signals;
mod stages;

use std::pin::Pin;

use futures::Stream;
use qualify_platform::outbox::Relay;
use qualify_platform::{ApiError, caller};
use qualify_proto::scoring::{self as pb, lead_scoring_service_server::LeadScoringService};
use sea_orm::DatabaseConnection;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub use qualify_platform::outbox::SYSTEM_TENANT;
pub use signals::MAX_BATCH;

use crate::cards::Cards;
use crate::leads;

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "scoring.qualify";

/// The lead scoring API.
#[derive(Clone)]
pub struct ScoringApi {
    db: DatabaseConnection,
    cards: Cards,
    relay: Relay,
    reads: leads::ScoreReads,
}

impl ScoringApi {
    /// An API over `db`, its scorecard cache and its outbox relay.
    /// `read_slots`: batched score reads running at once (see [`leads::ScoreReads`]).
    pub fn new(db: DatabaseConnection, cards: Cards, relay: Relay, read_slots: usize) -> Self {
        let reads = leads::ScoreReads::new(db.clone(), read_slots);
        ScoringApi { db, cards, relay, reads }
    }
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs a unary use case with the verified caller.
macro_rules! unary {
    ($self:ident, $req:ident, $method:ident) => {{
        let c = caller(&$req).map_err(|e| e.into_status(DOMAIN))?;
        ScoringApi::$method($self, c, $req.into_inner())
            .await
            .map(Response::new)
            .map_err(|e: ApiError| e.into_status(DOMAIN))
    }};
}

#[tonic::async_trait]
impl LeadScoringService for ScoringApi {
    type ScoreLeadsStream = Stream_<pb::ScoreLeadsResponse>;
    type StreamEventsStream = Stream_<pb::StreamEventsResponse>;

    async fn create_account(
        &self,
        r: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        unary!(self, r, create_account)
    }
    async fn get_account(&self, r: Request<pb::GetAccountRequest>) -> Result<Response<pb::GetAccountResponse>, Status> {
        unary!(self, r, get_account)
    }
    async fn list_accounts(
        &self,
        r: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        unary!(self, r, list_accounts)
    }
    async fn update_account(
        &self,
        r: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::UpdateAccountResponse>, Status> {
        unary!(self, r, update_account)
    }
    async fn create_lead(&self, r: Request<pb::CreateLeadRequest>) -> Result<Response<pb::CreateLeadResponse>, Status> {
        unary!(self, r, create_lead)
    }
    async fn get_lead(&self, r: Request<pb::GetLeadRequest>) -> Result<Response<pb::GetLeadResponse>, Status> {
        unary!(self, r, get_lead)
    }
    async fn list_leads(&self, r: Request<pb::ListLeadsRequest>) -> Result<Response<pb::ListLeadsResponse>, Status> {
        unary!(self, r, list_leads)
    }
    async fn create_contact(
        &self,
        r: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        unary!(self, r, create_contact)
    }
    async fn get_contact(&self, r: Request<pb::GetContactRequest>) -> Result<Response<pb::GetContactResponse>, Status> {
        unary!(self, r, get_contact)
    }
    async fn batch_get_contacts(
        &self,
        r: Request<pb::BatchGetContactsRequest>,
    ) -> Result<Response<pb::BatchGetContactsResponse>, Status> {
        unary!(self, r, batch_get_contacts)
    }
    async fn update_contact(
        &self,
        r: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        unary!(self, r, update_contact)
    }
    async fn ingest_signals(
        &self,
        r: Request<pb::IngestSignalsRequest>,
    ) -> Result<Response<pb::IngestSignalsResponse>, Status> {
        unary!(self, r, ingest_signals)
    }
    async fn publish_scorecard(
        &self,
        r: Request<pb::PublishScorecardRequest>,
    ) -> Result<Response<pb::PublishScorecardResponse>, Status> {
        unary!(self, r, publish_scorecard)
    }
    async fn get_scorecard(
        &self,
        r: Request<pb::GetScorecardRequest>,
    ) -> Result<Response<pb::GetScorecardResponse>, Status> {
        unary!(self, r, get_scorecard)
    }
    async fn list_scorecards(
        &self,
        r: Request<pb::ListScorecardsRequest>,
    ) -> Result<Response<pb::ListScorecardsResponse>, Status> {
        unary!(self, r, list_scorecards)
    }
    async fn score_lead(&self, r: Request<pb::ScoreLeadRequest>) -> Result<Response<pb::ScoreLeadResponse>, Status> {
        unary!(self, r, score_lead)
    }
    async fn score_leads(&self, r: Request<pb::ScoreLeadsRequest>) -> Result<Response<Self::ScoreLeadsStream>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        let rx = ScoringApi::score_leads(self, c, r.into_inner()).await.map_err(|e| e.into_status(DOMAIN))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
    async fn get_account_rollup(
        &self,
        r: Request<pb::GetAccountRollupRequest>,
    ) -> Result<Response<pb::GetAccountRollupResponse>, Status> {
        unary!(self, r, get_account_rollup)
    }
    async fn accept_lead(&self, r: Request<pb::AcceptLeadRequest>) -> Result<Response<pb::AcceptLeadResponse>, Status> {
        unary!(self, r, accept_lead)
    }
    async fn qualify_lead(
        &self,
        r: Request<pb::QualifyLeadRequest>,
    ) -> Result<Response<pb::QualifyLeadResponse>, Status> {
        unary!(self, r, qualify_lead)
    }
    async fn disqualify_lead(
        &self,
        r: Request<pb::DisqualifyLeadRequest>,
    ) -> Result<Response<pb::DisqualifyLeadResponse>, Status> {
        unary!(self, r, disqualify_lead)
    }
    async fn recycle_lead(
        &self,
        r: Request<pb::RecycleLeadRequest>,
    ) -> Result<Response<pb::RecycleLeadResponse>, Status> {
        unary!(self, r, recycle_lead)
    }
    async fn list_lead_stage_changes(
        &self,
        r: Request<pb::ListLeadStageChangesRequest>,
    ) -> Result<Response<pb::ListLeadStageChangesResponse>, Status> {
        unary!(self, r, list_lead_stage_changes)
    }
    async fn stream_events(
        &self,
        r: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        let rx = ScoringApi::stream_events(self, c, r.into_inner()).await.map_err(|e| e.into_status(DOMAIN))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
