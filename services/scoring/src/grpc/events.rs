//! The event stream that metrics consumes: outbox events in stream order from
//! a cursor, optionally following new ones. At-least-once: a consumer that
//! resumes from its last processed sequence sees nothing twice unless it
//! crashed between processing and saving its cursor, and dedupes by event id.

use std::time::Duration;

use prost::Message;
use qualify_domain::{Caller, Role};
use qualify_platform::outbox;
use qualify_platform::{ApiError, Violations};
use qualify_proto::scoring as pb;
use tokio::sync::mpsc;

use super::ScoringApi;

/// The tenant of platform-internal service accounts that read every tenant's events.
pub const SYSTEM_TENANT: &str = "qualify-system";

impl ScoringApi {
    pub(crate) async fn stream_events(
        &self,
        c: Caller,
        req: pb::StreamEventsRequest,
    ) -> Result<mpsc::Receiver<Result<pb::StreamEventsResponse, tonic::Status>>, ApiError> {
        if !c.has(Role::Service) {
            return Err(ApiError::forbidden("SERVICE_ACCOUNT_REQUIRED", "only service accounts read the event stream"));
        }
        let mut v = Violations::new();
        v.check(req.after_sequence >= 0, "after_sequence", "must not be negative");
        v.finish()?;
        let tenant = (c.tenant != SYSTEM_TENANT).then_some(c.tenant);
        let (tx, rx) = mpsc::channel(256);
        let (db, relay) = (self.db.clone(), self.relay.clone());
        tokio::spawn(async move {
            let mut cursor = req.after_sequence;
            loop {
                let rows = match outbox::read_after(&db, tenant.as_deref(), cursor, 500).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into_status(super::DOMAIN))).await;
                        return;
                    }
                };
                if rows.is_empty() {
                    if !req.follow {
                        return;
                    }
                    tokio::select! {
                        _ = relay.wait_stamped(Duration::from_millis(250)) => {}
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                for row in rows {
                    let seq = row.seq.unwrap_or_default();
                    cursor = seq;
                    let mut event = match pb::Event::decode(row.payload.as_slice()) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::error!(seq, error = %e, "undecodable outbox event");
                            continue;
                        }
                    };
                    event.sequence = seq;
                    if tx.send(Ok(pb::StreamEventsResponse { event: Some(event) })).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
