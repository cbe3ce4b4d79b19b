//! The gRPC adapter: each handler takes the verified caller, decodes and
//! validates, runs a use case scoped to the caller's tenant, and encodes.

mod acceptance;
mod accounts;
mod contacts;
mod events;
mod imports;
mod leads;
mod scorecards;
mod scores;
mod signals;
mod stages;

use std::pin::Pin;

use futures::Stream;
use qualify_platform::follow::Following;
use qualify_platform::outbox::Relay;
use qualify_platform::page::{self, PageRequest};
use qualify_platform::validate::Item;
use qualify_platform::{Authenticator, Clock, Violations, caller, rpc};
use qualify_proto::scoring::{
    self as pb,
    lead_scoring_service_server::{LeadScoringService, LeadScoringServiceServer},
};
use sea_orm::DatabaseConnection;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

pub use acceptance::follow_acceptance;
pub use qualify_platform::outbox::SYSTEM_TENANT;
pub use signals::MAX_BATCH;

use crate::leads::ScoreReads;
use crate::scorecards::Cards;

/// ErrorInfo domain of this service.
pub const DOMAIN: &str = "scoring.qualify";

/// The delay a caller refused for saturated ingestion is asked to wait.
const INGEST_RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(250);
/// How long an ingestion call waits for a slot unless configured.
const INGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The kinds of bulk ingestion call, each with its own slots.
#[derive(Clone, Copy)]
enum Bulk {
    /// A verification feed: its own transaction and connection.
    Feed,
    /// A signal batch: a place in the writer's rounds.
    Signals,
}

/// The lead scoring API.
#[derive(Clone)]
pub struct ScoringApi {
    db: DatabaseConnection,
    cards: Cards,
    relay: Relay,
    reads: ScoreReads,
    clock: Clock,
    /// The follower of acceptance's stream, stopped with the last clone.
    following: Option<std::sync::Arc<Following>>,
    /// Slots for verification feeds (each holds a connection), and how long a call waits for one
    /// (see [`ScoringApi::ingest_slots`]).
    ingest: (std::sync::Arc<tokio::sync::Semaphore>, std::time::Duration),
    /// Slots for signal batches (they share the writer's connection).
    batches: std::sync::Arc<tokio::sync::Semaphore>,
    /// Signal batches, ingested together while a round runs (see [`signals::writers`]).
    signals: std::sync::Arc<signals::Writers>,
    /// How long signals are kept: older ones are refused, roll-ups reach no further.
    retention: crate::retention::Retention,
}

impl ScoringApi {
    /// An API over `db`, its scorecard cache and its outbox relay.
    /// `read_slots`: batched score reads running at once (see [`ScoreReads`]);
    /// `clock`: where every use case reads the time.
    pub fn new(db: DatabaseConnection, cards: Cards, relay: Relay, read_slots: usize, clock: Clock) -> Self {
        let reads = ScoreReads::new(db.clone(), read_slots);
        let ingest = (std::sync::Arc::new(tokio::sync::Semaphore::new(read_slots.max(1))), INGEST_WAIT);
        let signals = std::sync::Arc::new(signals::writers(db.clone(), cards.clone(), relay.clone(), clock.clone()));
        let batches = std::sync::Arc::new(tokio::sync::Semaphore::new(signals::DEFAULT_SLOTS));
        let retention = crate::retention::Retention::default();
        ScoringApi { db, cards, relay, reads, clock, following: None, ingest, batches, signals, retention }
    }

    /// Runs at most `feeds` verification feeds and admits at most `batches` signal batches
    /// at once (0: [`signals::DEFAULT_SLOTS`], two writer rounds); a call waits up to `wait`
    /// for a slot (in arrival order), then is refused: a short queue, never one that runs into
    /// the caller's deadline.
    pub fn ingest_slots(mut self, feeds: usize, batches: usize, wait: std::time::Duration) -> Self {
        self.ingest = (std::sync::Arc::new(tokio::sync::Semaphore::new(feeds.max(1))), wait);
        let batches = if batches == 0 { signals::DEFAULT_SLOTS } else { batches };
        self.batches = std::sync::Arc::new(tokio::sync::Semaphore::new(batches));
        self
    }

    /// Keeps signals for `retention` (by default, for ever).
    pub fn retention(mut self, retention: crate::retention::Retention) -> Self {
        self.retention = retention;
        self
    }

    /// A slot for one verification feed (`Feed`) or signal batch, held until it is dropped;
    /// RESOURCE_EXHAUSTED with RetryInfo when none frees up within the wait.
    async fn ingest_slot(&self, kind: Bulk) -> Result<tokio::sync::OwnedSemaphorePermit, qualify_platform::ApiError> {
        let (feeds, wait) = &self.ingest;
        let slots = match kind {
            Bulk::Feed => feeds,
            Bulk::Signals => &self.batches,
        };
        match tokio::time::timeout(*wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(qualify_platform::ApiError::ResourceExhausted {
                reason: "INGESTION_SATURATED",
                message: "this replica runs as many ingestion calls as it takes; retry after the delay given".into(),
                retry_after: INGEST_RETRY_AFTER,
            }),
        }
    }

    /// Keeps `following` running as long as the API.
    pub fn following(mut self, following: Option<Following>) -> Self {
        self.following = following.map(std::sync::Arc::new);
        self
    }
}

/// The fully-qualified gRPC name of the service (health and reflection).
pub use qualify_proto::scoring::lead_scoring_service_server::SERVICE_NAME;

/// The service's routes behind `auth`, with messages bounded by `max_message_bytes` both ways.
pub fn routes(api: ScoringApi, auth: Authenticator, max_message_bytes: usize) -> Routes {
    let server = LeadScoringServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    Routes::new(auth.protect(server))
}

/// One page of `rows`, read with one row more than the page holds: the rows to
/// send, and the token of the page after them (empty after the last page).
fn page_of<T>(mut rows: Vec<T>, query: &str, p: &PageRequest, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
    let fetched = rows.len();
    rows.truncate(p.size as usize);
    let last = rows.last().map(key);
    let next_page_token = page::next_token(query, last.as_deref(), fetched, p.size);
    (rows, next_page_token)
}

/// Decodes an update mask into the fields it names (each must `parse`, or is a
/// violation with `description`); `all` when it names none.
fn decode_mask<F: Copy>(
    v: &mut Violations,
    mask: Option<&prost_types::FieldMask>,
    all: &[F],
    parse: fn(&str) -> Option<F>,
    description: &str,
) -> Vec<F> {
    match mask {
        Some(m) if !m.paths.is_empty() => m
            .paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let field = parse(p);
                v.check(field.is_some(), Item("update_mask.paths", i, ""), description);
                field
            })
            .collect(),
        _ => all.to_vec(),
    }
}

/// The wire form of why an item of a batch was rejected.
fn encode_rejections(rejections: Vec<crate::signals::Rejection>) -> Vec<pb::ItemViolation> {
    rejections
        .into_iter()
        .map(|r| pb::ItemViolation { field: r.field.into(), description: r.description.into() })
        .collect()
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl LeadScoringService for ScoringApi {
    type ScoreLeadsStream = Stream_<pb::ScoreLeadsResponse>;
    type StreamEventsStream = Stream_<pb::StreamEventsResponse>;
    type StreamSignalsStream = Stream_<pb::StreamSignalsResponse>;

    async fn create_account(
        &self,
        r: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.create_account(call.caller, m)).await
    }
    async fn get_account(&self, r: Request<pb::GetAccountRequest>) -> Result<Response<pb::GetAccountResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_account(call.caller, m)).await
    }
    async fn list_accounts(
        &self,
        r: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_accounts(call.caller, m)).await
    }
    async fn update_account(
        &self,
        r: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::UpdateAccountResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.update_account(call.caller, m)).await
    }
    async fn create_lead(&self, r: Request<pb::CreateLeadRequest>) -> Result<Response<pb::CreateLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.create_lead(call.caller, m)).await
    }
    async fn get_lead(&self, r: Request<pb::GetLeadRequest>) -> Result<Response<pb::GetLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_lead(call.caller, m)).await
    }
    async fn list_leads(&self, r: Request<pb::ListLeadsRequest>) -> Result<Response<pb::ListLeadsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_leads(call.caller, m)).await
    }
    async fn create_contact(
        &self,
        r: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.create_contact(call.caller, m)).await
    }
    async fn get_contact(&self, r: Request<pb::GetContactRequest>) -> Result<Response<pb::GetContactResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_contact(call.caller, m)).await
    }
    async fn batch_get_contacts(
        &self,
        r: Request<pb::BatchGetContactsRequest>,
    ) -> Result<Response<pb::BatchGetContactsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.batch_get_contacts(call.caller, m)).await
    }
    async fn update_contact(
        &self,
        r: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.update_contact(call.caller, m)).await
    }
    async fn record_contact_verifications(
        &self,
        r: Request<pb::RecordContactVerificationsRequest>,
    ) -> Result<Response<pb::RecordContactVerificationsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.record_contact_verifications(call.caller, m)).await
    }
    async fn ingest_signals(
        &self,
        r: Request<pb::IngestSignalsRequest>,
    ) -> Result<Response<pb::IngestSignalsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.ingest_signals(call.caller, m)).await
    }
    async fn import_leads(
        &self,
        r: Request<pb::ImportLeadsRequest>,
    ) -> Result<Response<pb::ImportLeadsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.import_leads(call.caller, m)).await
    }
    async fn stream_signals(
        &self,
        r: Request<tonic::Streaming<pb::StreamSignalsRequest>>,
    ) -> Result<Response<Self::StreamSignalsStream>, Status> {
        let c = caller(&r).map_err(|e| e.into_status(DOMAIN))?;
        let rx = ScoringApi::stream_signals(self, c, r.into_inner());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
    async fn publish_scorecard(
        &self,
        r: Request<pb::PublishScorecardRequest>,
    ) -> Result<Response<pb::PublishScorecardResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.publish_scorecard(call.caller, m)).await
    }
    async fn get_scorecard(
        &self,
        r: Request<pb::GetScorecardRequest>,
    ) -> Result<Response<pb::GetScorecardResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.get_scorecard(call.caller, m)).await
    }
    async fn list_scorecards(
        &self,
        r: Request<pb::ListScorecardsRequest>,
    ) -> Result<Response<pb::ListScorecardsResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_scorecards(call.caller, m)).await
    }
    async fn score_lead(&self, r: Request<pb::ScoreLeadRequest>) -> Result<Response<pb::ScoreLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.score_lead(call.caller, m)).await
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
        rpc::unary(DOMAIN, r, |call, m| self.get_account_rollup(call.caller, m)).await
    }
    async fn accept_lead(&self, r: Request<pb::AcceptLeadRequest>) -> Result<Response<pb::AcceptLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.accept_lead(call.caller, m)).await
    }
    async fn qualify_lead(
        &self,
        r: Request<pb::QualifyLeadRequest>,
    ) -> Result<Response<pb::QualifyLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.qualify_lead(call.caller, m)).await
    }
    async fn disqualify_lead(
        &self,
        r: Request<pb::DisqualifyLeadRequest>,
    ) -> Result<Response<pb::DisqualifyLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.disqualify_lead(call.caller, m)).await
    }
    async fn recycle_lead(
        &self,
        r: Request<pb::RecycleLeadRequest>,
    ) -> Result<Response<pb::RecycleLeadResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.recycle_lead(call.caller, m)).await
    }
    async fn list_lead_stage_changes(
        &self,
        r: Request<pb::ListLeadStageChangesRequest>,
    ) -> Result<Response<pb::ListLeadStageChangesResponse>, Status> {
        rpc::unary(DOMAIN, r, |call, m| self.list_lead_stage_changes(call.caller, m)).await
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
