//! Opportunity acceptance's event stream, followed by lead scoring so a lead
//! follows its opportunity (`crate::milestones`): the client, the decoding of
//! its events, and the unit of work of a batch (the moves, their events and
//! the stream position in one transaction).

use futures::StreamExt;
use qualify_domain::OpportunityState;
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::Credentials;
use qualify_platform::client::{ServiceChannel, service_channel};
use qualify_platform::follow::{self, Events, Follower, Following};
use qualify_platform::outbox::Relay;
use qualify_platform::tls::ClientTls;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::convert::{WireEnum, from_timestamp};
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::events;
use crate::milestones::{self, Milestone, Reached};

/// The stream's name in `followed_streams`.
const STREAM: &str = "acceptance";
/// Most events applied in one transaction.
const BATCH: usize = 500;

/// Follows acceptance's stream at `url` for every tenant, as a platform
/// service with `credentials`, until the returned guard is dropped.
pub fn follow_acceptance(
    db: DatabaseConnection,
    relay: Relay,
    url: &str,
    credentials: Credentials,
    tls: &ClientTls,
) -> anyhow::Result<Following> {
    let follower = AcceptanceStream { db, relay, channel: service_channel(url, None, tls)?, credentials };
    Ok(Following::spawn(follower, BATCH))
}

#[derive(Clone)]
struct AcceptanceStream {
    db: DatabaseConnection,
    relay: Relay,
    channel: ServiceChannel,
    credentials: Credentials,
}

fn stream_failed(_: tonic::Status) -> ApiError {
    ApiError::Unavailable { dependency: "opportunity acceptance" }
}

/// An event's position, and the milestone it carries, if any.
type Positioned = (i64, Option<Milestone>);

/// The milestone an event of acceptance's stream is, if any: an ordinary
/// opportunity accepted, or closed won or lost, at the time it happened.
fn milestone(e: acc::Event) -> Option<Milestone> {
    let acc::event::Payload::OpportunityChanged(ch) = e.payload? else { return None };
    let o = ch.opportunity?;
    if !o.expansion_reason.is_empty() {
        return None;
    }
    let (to, from) = (OpportunityState::from_wire(o.state)?, OpportunityState::from_wire(ch.from_state));
    if from == Some(to) {
        return None;
    }
    let (reached, at) = match to {
        OpportunityState::Accepted => (Reached::Accepted { by: o.accepted_by }, o.accept_time),
        OpportunityState::ClosedWon => (Reached::Won, o.close_time),
        OpportunityState::ClosedLost => (Reached::Lost, o.close_time),
        _ => return None,
    };
    let at = at.or(e.occur_time).as_ref().and_then(from_timestamp)?;
    Some(Milestone { tenant: e.tenant, opportunity_id: o.opportunity_id, lead_id: o.lead_id, reached, at })
}

impl Follower for AcceptanceStream {
    type Event = Positioned;

    fn name(&self) -> &'static str {
        STREAM
    }

    async fn position(&self) -> Result<i64, ApiError> {
        follow::position(&self.db, STREAM).await
    }

    async fn open(&self, after: i64) -> Result<Events<Positioned>, ApiError> {
        let mut r = tonic::Request::new(acc::StreamEventsRequest { after_sequence: after, follow: true });
        self.credentials.platform(&mut r, "scoring-follower")?;
        let s = OpportunityAcceptanceServiceClient::new(self.channel.clone())
            .stream_events(r)
            .await
            .map_err(stream_failed)?
            .into_inner();
        Ok(s.filter_map(|m| async move {
            match m {
                Err(e) => Some(Err(stream_failed(e))),
                Ok(m) => m.event.map(|e| Ok((e.sequence, milestone(e)))),
            }
        })
        .boxed())
    }

    async fn apply(&self, batch: Vec<Positioned>) -> Result<(), ApiError> {
        let Some(last) = batch.last().map(|(seq, _)| *seq) else { return Ok(()) };
        let steps: Vec<Milestone> = batch.into_iter().filter_map(|(_, m)| m).collect();
        let txn = self.db.begin().await?;
        let moved = milestones::apply(&txn, &steps).await?;
        for (tenant, change) in &moved {
            events::stage_changed(&txn, tenant, change).await?;
        }
        follow::advance(&txn, STREAM, last).await?;
        txn.commit().await?;
        if !moved.is_empty() {
            self.relay.nudge();
        }
        Ok(())
    }
}
