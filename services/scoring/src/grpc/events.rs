//! The event stream that metrics consumes: outbox events in stream order from
//! a cursor, optionally following new ones. At-least-once: a consumer that
//! resumes from its last processed sequence sees nothing twice unless it
//! crashed between processing and saving its cursor, and dedupes by event id.

use chrono::{DateTime, Utc};
use prost::Message;
use qualify_domain::{Caller, Lead, Segment, StageChange};
use qualify_platform::ApiError;
use qualify_platform::outbox;
use qualify_proto::common as cpb;
use qualify_proto::convert::{WireEnum, timestamp};
use qualify_proto::scoring as pb;
use sea_orm::ConnectionTrait;
use tokio::sync::mpsc;

use super::ScoringApi;
use super::contacts::{encode_channel, encode_status};
use super::leads::encode_lead;
use crate::contacts::AppliedFinding;

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

/// An outbox row: a new event's id and its wire form (the event stream's wire
/// form is written here, beside the other encoders), happening at `now`.
fn event(tenant: &str, now: DateTime<Utc>, payload: pb::event::Payload) -> (String, Vec<u8>) {
    let event_id = uuid::Uuid::now_v7().to_string();
    let event = pb::Event {
        event_id: event_id.clone(),
        sequence: 0,
        tenant: tenant.to_string(),
        occur_time: Some(timestamp(now)),
        payload: Some(payload),
    };
    (event_id, event.encode_to_vec())
}

/// Appends the event of a lead's creation at an account of `segment`, in the transaction that made it.
pub(crate) async fn lead_created(
    txn: &impl ConnectionTrait,
    tenant: &str,
    lead: &Lead,
    segment: Option<Segment>,
) -> Result<(), ApiError> {
    leads_created(txn, tenant, &[(lead.clone(), segment)]).await
}

/// Appends the events of leads' creations (each at its account's segment) in one insert, in the
/// transaction that made them; each event happened when its lead was created (an imported lead's
/// past time).
pub(crate) async fn leads_created(
    txn: &impl ConnectionTrait,
    tenant: &str,
    leads: &[(Lead, Option<Segment>)],
) -> Result<(), ApiError> {
    if leads.is_empty() {
        return Ok(());
    }
    let events = leads.iter().map(|(lead, segment)| {
        let created =
            pb::LeadCreated { lead: Some(encode_lead(lead.clone())), segment: segment.map_or(0, WireEnum::to_wire) };
        event(tenant, lead.created_at, pb::event::Payload::LeadCreated(created))
    });
    outbox::append(txn, tenant, events).await?;
    Ok(())
}

/// Appends an event per finding a verification feed recorded, in the transaction that recorded them.
pub(crate) async fn verifications_recorded(
    txn: &impl ConnectionTrait,
    tenant: &str,
    applied: &[AppliedFinding],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if applied.is_empty() {
        return Ok(());
    }
    let events = applied.iter().map(|a| {
        let recorded = pb::ContactVerificationRecorded {
            contact_id: a.contact_id.clone(),
            account_id: a.account_id.clone(),
            channel: encode_channel(a.finding.channel),
            status: encode_status(a.finding.status),
            provider: a.finding.provider.clone(),
            verify_time: Some(timestamp(a.finding.verified_at)),
            previous_status: encode_status(a.previous),
        };
        event(tenant, now, pb::event::Payload::ContactVerificationRecorded(recorded))
    });
    outbox::append(txn, tenant, events).await?;
    Ok(())
}

/// Appends the event of a stage move, in the transaction that made it.
pub(crate) async fn stage_changed(txn: &impl ConnectionTrait, tenant: &str, c: &StageChange) -> Result<(), ApiError> {
    stage_changes(txn, tenant, std::slice::from_ref(c)).await
}

/// Appends the events of stage moves in one insert, in the transaction that made them.
pub(crate) async fn stage_changes(
    txn: &impl ConnectionTrait,
    tenant: &str,
    changes: &[StageChange],
) -> Result<(), ApiError> {
    if changes.is_empty() {
        return Ok(());
    }
    let events =
        changes.iter().map(|c| event(tenant, c.changed_at, pb::event::Payload::LeadStageChanged(encode_change(c))));
    outbox::append(txn, tenant, events).await?;
    Ok(())
}

/// The wire form of a stage move.
pub(crate) fn encode_change(c: &StageChange) -> pb::LeadStageChange {
    pb::LeadStageChange {
        lead_id: c.lead_id.clone(),
        from_stage: c.from.to_wire(),
        to_stage: c.to.to_wire(),
        actor: Some(cpb::Actor {
            subject: c.actor.clone(),
            roles: c.actor_roles.iter().map(|r| r.to_wire()).collect(),
        }),
        reason: c.reason.clone(),
        score: c.score,
        scorecard_version: c.scorecard_version,
        change_time: Some(timestamp(c.changed_at)),
    }
}
