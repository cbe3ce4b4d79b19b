//! The clients of the upstream event streams (`StreamEvents` of lead scoring
//! and of opportunity acceptance), and the decoding of their events into
//! [`Event`]s: only what a figure needs, every time placed.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use qualify_domain::{Channel, GateCheckCode, LeadSource, LeadStage, OpportunityState, Segment, Verification};
use qualify_platform::ApiError;
use qualify_platform::auth::credentials::Credentials;
use qualify_platform::client::{ServiceChannel, service_channel};
use qualify_platform::tls::ClientTls;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::convert::{WireEnum, from_timestamp};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};

use crate::ingest::Upstream;
use crate::ingest::event::{
    CalibrationReview, Change, ContactVerified, Decision, Event, LeadCreated, LeadStageChanged, OpportunityChanged,
    Verdict,
};

/// One stream's events, decoded; an error ends it.
pub type EventStream = BoxStream<'static, Result<Event, ApiError>>;

/// Where the upstream streams are, and the token metrics reads them with.
#[derive(Clone)]
pub struct Upstreams {
    scoring: Option<ServiceChannel>,
    acceptance: Option<ServiceChannel>,
    credentials: Credentials,
}

fn stream_failed(_: tonic::Status) -> ApiError {
    ApiError::Unavailable { dependency: "event stream" }
}

impl Upstreams {
    /// The streams at `scoring_url` and `acceptance_url` (either may be absent),
    /// read as a platform service with `credentials`, over TLS with `tls` for `https://` ones.
    pub fn new(
        scoring_url: Option<&str>,
        acceptance_url: Option<&str>,
        credentials: Credentials,
        tls: &ClientTls,
    ) -> anyhow::Result<Self> {
        let channel = |u: Option<&str>| u.map(|u| service_channel(u, None, tls)).transpose();
        Ok(Upstreams { scoring: channel(scoring_url)?, acceptance: channel(acceptance_url)?, credentials })
    }

    /// Whether `upstream` has an endpoint.
    pub fn configured(&self, upstream: Upstream) -> bool {
        match upstream {
            Upstream::Scoring => self.scoring.is_some(),
            Upstream::Acceptance => self.acceptance.is_some(),
        }
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ApiError> {
        let mut r = tonic::Request::new(message);
        self.credentials.platform(&mut r, "metrics-ingestor")?;
        Ok(r)
    }

    /// Opens `upstream`'s stream after sequence `after`; with `follow` it stays
    /// open for new events, otherwise it ends at the stream's current end.
    pub async fn open(&self, upstream: Upstream, after: i64, follow: bool) -> Result<EventStream, ApiError> {
        Ok(match upstream {
            Upstream::Scoring => {
                let ch = self.scoring.clone().ok_or(ApiError::Unavailable { dependency: "lead scoring" })?;
                let r = self.request(sc::StreamEventsRequest { after_sequence: after, follow })?;
                let s = LeadScoringServiceClient::new(ch).stream_events(r).await.map_err(stream_failed)?.into_inner();
                s.filter_map(|m| async move { m.map(|m| m.event.map(Event::from)).map_err(stream_failed).transpose() })
                    .boxed()
            }
            Upstream::Acceptance => {
                let ch =
                    self.acceptance.clone().ok_or(ApiError::Unavailable { dependency: "opportunity acceptance" })?;
                let r = self.request(acc::StreamEventsRequest { after_sequence: after, follow })?;
                let s = OpportunityAcceptanceServiceClient::new(ch)
                    .stream_events(r)
                    .await
                    .map_err(stream_failed)?
                    .into_inner();
                s.filter_map(|m| async move { m.map(|m| m.event.map(Event::from)).map_err(stream_failed).transpose() })
                    .boxed()
            }
        })
    }
}

/// When the event happened; a change without a time of its own happened then.
/// Figures are bucketed by event time: an event without one (no producer sends
/// such) cannot be placed, and placing it at the time it arrived would make a
/// rebuild differ from live, so it counts nothing.
fn occurred(event_id: &str, t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let at = t.and_then(from_timestamp);
    if at.is_none() {
        tracing::warn!(event_id = %event_id, "event without an occur_time skipped");
    }
    at
}

/// `t`, or `at` when absent or out of range.
fn time_or(t: Option<&prost_types::Timestamp>, at: DateTime<Utc>) -> DateTime<Utc> {
    t.and_then(from_timestamp).unwrap_or(at)
}

impl From<sc::Event> for Event {
    fn from(e: sc::Event) -> Self {
        let change = occurred(&e.event_id, e.occur_time.as_ref()).and_then(|at| scoring_change(e.payload?, at));
        Event { id: e.event_id, sequence: e.sequence, tenant: e.tenant, change }
    }
}

fn scoring_change(payload: sc::event::Payload, at: DateTime<Utc>) -> Option<Change> {
    Some(match payload {
        sc::event::Payload::LeadCreated(c) => {
            let l = c.lead?;
            Change::LeadCreated(LeadCreated {
                created_at: time_or(l.create_time.as_ref(), at),
                source: LeadSource::from_wire(l.source),
                segment: Segment::from_wire(c.segment),
                lead_id: l.lead_id,
                sdr: l.owner_sdr,
                campaign: l.campaign,
                contact_id: l.contact_id,
            })
        }
        sc::event::Payload::LeadStageChanged(ch) => Change::LeadStageChanged(LeadStageChanged {
            to: LeadStage::from_wire(ch.to_stage),
            changed_at: time_or(ch.change_time.as_ref(), at),
            lead_id: ch.lead_id,
        }),
        sc::event::Payload::ContactVerificationRecorded(v) => Change::ContactVerified(ContactVerified {
            channel: match sc::ContactChannel::try_from(v.channel).ok()? {
                sc::ContactChannel::Email => Channel::Email,
                sc::ContactChannel::Phone => Channel::Phone,
                sc::ContactChannel::Unspecified => return None,
            },
            status: match sc::VerificationStatus::try_from(v.status).ok()? {
                sc::VerificationStatus::Verified => Verification::Verified,
                sc::VerificationStatus::Bounced => Verification::Bounced,
                sc::VerificationStatus::LeftCompany => Verification::LeftCompany,
                // A finding is one of the three: anything else is not one.
                _ => return None,
            },
            contact_id: v.contact_id,
        }),
    })
}

impl From<acc::Event> for Event {
    fn from(e: acc::Event) -> Self {
        let change = occurred(&e.event_id, e.occur_time.as_ref()).and_then(|at| acceptance_change(e.payload?, at));
        Event { id: e.event_id, sequence: e.sequence, tenant: e.tenant, change }
    }
}

fn acceptance_change(payload: acc::event::Payload, at: DateTime<Utc>) -> Option<Change> {
    Some(match payload {
        acc::event::Payload::OpportunityChanged(ch) => {
            let o = ch.opportunity?;
            let snapshot = o.lead_snapshot.unwrap_or_default();
            Change::OpportunityChanged(OpportunityChanged {
                source: LeadSource::from_wire(snapshot.source),
                campaign: snapshot.campaign,
                segment: Segment::from_wire(o.segment),
                currency_code: o.amount.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default(),
                amount_minor: o.amount.map_or(0, |m| m.amount_minor),
                created_at: time_or(o.create_time.as_ref(), at),
                updated_at: time_or(o.update_time.as_ref(), at),
                from_state: OpportunityState::from_wire(ch.from_state),
                state: OpportunityState::from_wire(o.state),
                // Present but out of range still means accepted: then, at the event's time.
                accepted_at: o.accept_time.as_ref().map(|t| from_timestamp(t).unwrap_or(at)),
                overridden: o.overridden,
                first_meaningful_activity_at: o.first_meaningful_activity_time.as_ref().and_then(from_timestamp),
                closed_at: time_or(o.close_time.as_ref(), at),
                closed_amount_minor: o.closed_amount.map(|m| m.amount_minor),
                expansion: !o.expansion_reason.is_empty(),
                opportunity_id: o.opportunity_id,
                lead_id: o.lead_id,
                team: o.team,
                submitted_by: o.submitted_by,
            })
        }
        acc::event::Payload::DecisionRecorded(dec) => {
            let verdict = match acc::DecisionKind::try_from(dec.kind) {
                Ok(acc::DecisionKind::Reject) => {
                    let reason = acc::RejectionReason::try_from(dec.reason).unwrap_or(acc::RejectionReason::Other);
                    Verdict::Reject { reason: reason.as_str_name().trim_start_matches("REJECTION_REASON_").to_string() }
                }
                Ok(acc::DecisionKind::Accept) => Verdict::Accept {
                    failed_checks: dec
                        .checks
                        .iter()
                        .filter(|c| !c.passed)
                        .filter_map(|c| GateCheckCode::from_wire(c.code))
                        .collect(),
                },
                // Send-backs count in no figure.
                _ => return None,
            };
            Change::DecisionRecorded(Decision {
                decided_at: time_or(dec.decide_time.as_ref(), at),
                opportunity_id: dec.opportunity_id,
                verdict,
            })
        }
        acc::event::Payload::CalibrationReviewed(r) => Change::CalibrationReviewed(CalibrationReview {
            decided_at: time_or(r.decide_time.as_ref(), at),
            opportunity_id: r.opportunity_id,
            agree: r.agree,
            previous_agree: r.previous_agree,
        }),
        // Activities that matter arrive as opportunity changes (the first meaningful one).
        acc::event::Payload::ActivityRecorded(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: prost_types::Timestamp = prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 };

    fn acceptance(payload: acc::event::Payload) -> Event {
        Event::from(acc::Event {
            event_id: "e".into(),
            sequence: 7,
            tenant: "acme".into(),
            occur_time: Some(AT),
            payload: Some(payload),
        })
    }

    #[test]
    fn an_event_without_a_time_moves_the_cursor_but_counts_nothing() {
        let created = sc::LeadCreated { lead: Some(sc::Lead::default()), segment: 0 };
        let e = Event::from(sc::Event {
            event_id: "e".into(),
            sequence: 3,
            tenant: "acme".into(),
            occur_time: None,
            payload: Some(sc::event::Payload::LeadCreated(created)),
        });
        assert_eq!((e.id.as_str(), e.sequence, e.change.is_none()), ("e", 3, true));
    }

    #[test]
    fn a_change_without_its_own_time_happened_when_its_event_did() {
        let at = from_timestamp(&AT);
        let bad = prost_types::Timestamp { seconds: 0, nanos: -1 };
        let o = acc::Opportunity { accept_time: Some(bad), close_time: Some(bad), ..Default::default() };
        let ch = acc::OpportunityChanged { opportunity: Some(o), from_state: 0 };
        let Some(Change::OpportunityChanged(o)) = acceptance(acc::event::Payload::OpportunityChanged(ch)).change else {
            panic!("an opportunity change")
        };
        // An accept time that is there but unreadable still says the opportunity was accepted.
        assert_eq!((o.accepted_at, Some(o.created_at), Some(o.closed_at)), (at, at, at));
        assert_eq!(o.first_meaningful_activity_at, None);
    }

    #[test]
    fn decisions_keep_rejections_by_reason_and_acceptances_with_failed_checks() {
        let decision = |kind: acc::DecisionKind, reason: i32| {
            let failed = acc::GateCheck {
                code: acc::GateCheckCode::ContactDataStale as i32,
                passed: false,
                ..Default::default()
            };
            let d = acc::Decision { kind: kind as i32, reason, checks: vec![failed], ..Default::default() };
            match acceptance(acc::event::Payload::DecisionRecorded(d)).change {
                Some(Change::DecisionRecorded(d)) => Some(d.verdict),
                _ => None,
            }
        };
        let no_budget = acc::RejectionReason::NoBudget as i32;
        assert!(
            matches!(decision(acc::DecisionKind::Reject, no_budget), Some(Verdict::Reject { reason }) if reason == "NO_BUDGET")
        );
        assert!(
            matches!(decision(acc::DecisionKind::Reject, 999), Some(Verdict::Reject { reason }) if reason == "OTHER")
        );
        assert!(matches!(
            decision(acc::DecisionKind::Accept, 0),
            Some(Verdict::Accept { failed_checks }) if failed_checks == [GateCheckCode::ContactDataStale]
        ));
        assert!(decision(acc::DecisionKind::SendBack, 0).is_none());
    }
}
