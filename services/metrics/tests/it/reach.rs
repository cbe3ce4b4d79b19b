#![allow(clippy::unwrap_used)]
//! Data quality per source: the share of each source's leads whose contact a
//! provider verified, and the share that bounced, from the verifier's feed in
//! lead scoring through metrics' ingestion, whichever comes first, the lead or
//! the finding. On SQLite and PostgreSQL.

use std::time::Duration;

use qualify_proto::common::{LeadSource, Segment};
use qualify_proto::metrics::{self as pb, FunnelDimension};
use qualify_proto::scoring::{self as sc, ContactChannel, VerificationStatus};
use qualify_testkit::fixtures::ts;
use qualify_testkit::{Backend, Cluster, authed, eventually, on_both_backends};

on_both_backends!(verified_share_and_bounce_rate_per_source);

fn this_month() -> String {
    qualify_platform::Clock::system().now().format("%Y-%m").to_string()
}

fn finding(id: &str, channel: ContactChannel, status: VerificationStatus, days: f64) -> sc::ContactVerification {
    sc::ContactVerification {
        contact_id: id.into(),
        channel: channel as i32,
        status: status as i32,
        provider: "zerobounce".into(),
        verify_time: ts(days),
    }
}

/// Inbound leads a (contact c-1) and b (c-2), outbound leads c (c-3) and d
/// (no contact). c-1 is verified before its lead exists and bounces after;
/// c-2 bounces; c-3's phone is verified and its email bounces. Inbound: 0 of
/// 2 verified, 2 of 2 bounced; outbound: 1 of 2 verified, none bounced.
async fn verified_share_and_bounce_rate_per_source(b: Backend) {
    use ContactChannel::{Email, Phone};
    use VerificationStatus::{Bounced, Verified};
    let w = Cluster::start(b).await;
    let (mut s, people) = (w.clients.scoring.clone(), w.acme.clone());
    let account = sc::Account { account_id: "acc-1".into(), segment: Segment::Smb as i32, ..Default::default() };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &people.sync))
        .await
        .unwrap();
    for id in ["c-1", "c-2", "c-3"] {
        let contact = sc::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            email: format!("{id}@acme.test"),
            phone: "+1 555 0100".into(),
            ..Default::default()
        };
        s.create_contact(authed(
            sc::CreateContactRequest { contact: Some(contact), ..Default::default() },
            &people.sync,
        ))
        .await
        .unwrap();
    }
    let feed = |verifications| sc::RecordContactVerificationsRequest { verifications, request_id: String::new() };
    let before = feed(vec![finding("c-1", Email, Verified, -3.0), finding("c-3", Phone, Verified, -3.0)]);
    s.record_contact_verifications(authed(before, &people.verifier)).await.unwrap();
    for (lead, source, contact) in [
        ("lead-a", LeadSource::Inbound, "c-1"),
        ("lead-b", LeadSource::Inbound, "c-2"),
        ("lead-c", LeadSource::Outbound, "c-3"),
        ("lead-d", LeadSource::Outbound, ""),
    ] {
        let lead = sc::Lead {
            lead_id: lead.into(),
            account_id: "acc-1".into(),
            source: source as i32,
            contact_id: contact.into(),
            ..Default::default()
        };
        s.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &people.sync))
            .await
            .unwrap();
    }
    let after = feed(vec![
        finding("c-1", Email, Bounced, -1.0),
        finding("c-2", Email, Bounced, -1.0),
        finding("c-3", Email, Bounced, -1.0),
    ]);
    let r = s.record_contact_verifications(authed(after, &people.verifier)).await.unwrap().into_inner();
    assert_eq!(r.applied_count, 3);

    let want = [
        (LeadSource::Inbound as i32, 2, 0, 2, Some(0.0), Some(1.0)),
        (LeadSource::Outbound as i32, 2, 1, 0, Some(0.5), Some(0.0)),
    ];
    let read = || {
        let (mut m, t) = (w.clients.metrics.clone(), people.manager.clone());
        async move {
            let req = pb::GetFunnelRequest {
                start_period: this_month(),
                end_period: this_month(),
                group_by: vec![FunnelDimension::Source as i32],
                ..Default::default()
            };
            let rows = m.get_funnel(authed(req, &t)).await.ok()?.into_inner().rows;
            let got: Vec<_> = rows
                .into_iter()
                .map(|r| {
                    let f = r.figures.unwrap_or_default();
                    let source = r.group.unwrap_or_default().source;
                    (source, f.leads, f.leads_verified, f.leads_bounced, f.verified_share, f.bounce_rate)
                })
                .collect();
            Some(got)
        }
    };
    let got = eventually(Duration::from_secs(20), || async { read().await.filter(|g| g[..] == want[..]) }).await;
    assert!(got.is_some(), "per source (source, leads, verified, bounced, shares): {:?}", read().await);
}
