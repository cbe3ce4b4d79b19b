//! The event stream that metrics consumes: outbox events in stream order from
//! a cursor, optionally following new ones. At-least-once: a consumer that
//! resumes from its last processed sequence sees nothing twice unless it
//! crashed between processing and saving its cursor, and dedupes by event id.

use prost::Message;
use qualify_domain::Caller;
use qualify_platform::ApiError;
use qualify_platform::outbox;
use qualify_proto::scoring as pb;
use tokio::sync::mpsc;

use super::ScoringApi;

impl ScoringApi {
    pub(crate) async fn stream_events(
        &self,
        c: Caller,
        req: pb::StreamEventsRequest,
    ) -> Result<mpsc::Receiver<Result<pb::StreamEventsResponse, tonic::Status>>, ApiError> {
        let tenant = outbox::stream_scope(&c, req.after_sequence)?;
        let decode = |payload: &[u8], sequence| {
            let event = pb::Event::decode(payload).ok()?;
            Some(pb::StreamEventsResponse { event: Some(pb::Event { sequence, ..event }) })
        };
        Ok(outbox::stream(
            self.db.clone(),
            self.relay.clone(),
            tenant,
            req.after_sequence,
            req.follow,
            super::DOMAIN,
            decode,
        ))
    }
}
