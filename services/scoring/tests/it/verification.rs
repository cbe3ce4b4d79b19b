//! Verification has provenance: only a verifier's feed marks an email or
//! phone verified, with the provider and when it checked; what anyone else
//! enters as verified is self-reported. Through the generated client, on
//! SQLite and on the machine's PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::time::Duration;

use futures::StreamExt;
use qualify_proto::common::Segment;
use qualify_proto::scoring::{self as pb, ContactChannel, VerificationOutcome, VerificationStatus};
use qualify_scoring::Scoring;
use qualify_testkit::fixtures::ts;
use qualify_testkit::{Backend, Role, Tokens, authed, config, on_both_backends, spawn};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    a_feed_records_each_finding_with_its_provider_and_a_result_per_item,
    only_a_verifier_records_findings,
    what_a_client_enters_as_verified_is_self_reported,
    a_feed_is_bounded_and_checked_before_anything_changes,
);

type Client = pb::lead_scoring_service_client::LeadScoringServiceClient<tonic::transport::Channel>;

/// Lead scoring with account `acc-1` and contacts `c-1` and `c-2` (an email and a phone each, never checked).
async fn start(b: Backend) -> (qualify_testkit::Running, Client, Tokens) {
    let running = spawn::<Scoring>(config("scoring", b).await).await;
    let mut c = Client::new(running.channel().await);
    let people = Tokens::new("acme");
    let account = pb::Account { account_id: "acc-1".into(), segment: Segment::Smb as i32, ..Default::default() };
    c.create_account(authed(pb::CreateAccountRequest { account: Some(account), ..Default::default() }, &people.sync))
        .await
        .unwrap();
    for id in ["c-1", "c-2"] {
        let contact = pb::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            email: format!("{id}@acme.test"),
            phone: "+1 555 0100".into(),
            ..Default::default()
        };
        c.create_contact(authed(
            pb::CreateContactRequest { contact: Some(contact), ..Default::default() },
            &people.sync,
        ))
        .await
        .unwrap();
    }
    (running, c, people)
}

fn finding(id: &str, channel: ContactChannel, status: VerificationStatus, days: f64) -> pb::ContactVerification {
    pb::ContactVerification {
        contact_id: id.into(),
        channel: channel as i32,
        status: status as i32,
        provider: "zerobounce".into(),
        verify_time: ts(days),
    }
}

fn feed(verifications: Vec<pb::ContactVerification>) -> pb::RecordContactVerificationsRequest {
    pb::RecordContactVerificationsRequest { verifications, request_id: String::new() }
}

async fn contact(c: &mut Client, people: &Tokens, id: &str) -> pb::Contact {
    let got = c.get_contact(authed(pb::GetContactRequest { contact_id: id.into() }, &people.sync)).await.unwrap();
    got.into_inner().contact.unwrap()
}

/// The findings of the event stream, once the relay has positioned `n` of them.
async fn findings_streamed(c: &Client, people: &Tokens, n: usize) -> Vec<pb::ContactVerificationRecorded> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let req = pb::StreamEventsRequest { after_sequence: 0, follow: false };
        let mut s = c.clone().stream_events(authed(req, &people.sync)).await.unwrap().into_inner();
        let mut got = Vec::new();
        while let Some(e) = s.next().await {
            if let Some(pb::event::Payload::ContactVerificationRecorded(r)) = e.unwrap().event.unwrap().payload {
                got.push(r);
            }
        }
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A feed of seven findings: each gets its own result in order, only the
/// applied ones change a contact (one version per contact touched) and reach
/// the event stream, and an older finding never replaces a newer one.
async fn a_feed_records_each_finding_with_its_provider_and_a_result_per_item(b: Backend) {
    use ContactChannel::{Email, Phone};
    use VerificationStatus::{Bounced, LeftCompany, Verified};
    let (_s, mut c, people) = start(b).await;
    let mut no_provider = finding("c-2", Email, Verified, -1.0);
    no_provider.provider = "  ".into();
    let first = finding("c-1", Email, Verified, -2.0);
    let items = vec![
        first.clone(),
        finding("c-1", Email, Verified, -5.0), // older than the one just recorded
        finding("c-2", Phone, Bounced, -1.0),
        finding("c-9", Email, Verified, -1.0),       // no such contact
        finding("c-2", Email, Verified, 1.0 / 24.0), // an hour ahead: has not happened
        no_provider,
        finding("c-2", Email, VerificationStatus::SelfReported, -1.0),
        finding("c-1", Phone, LeftCompany, -1.0),
    ];
    let got = c.record_contact_verifications(authed(feed(items), &people.verifier)).await.unwrap().into_inner();
    let outcomes: Vec<_> = got.results.iter().map(|r| VerificationOutcome::try_from(r.outcome).unwrap()).collect();
    use VerificationOutcome::{Applied, NotFound, Rejected, Superseded};
    assert_eq!(outcomes, [Applied, Superseded, Applied, NotFound, Rejected, Rejected, Rejected, Applied]);
    let fields: Vec<_> = got.results[4..7].iter().map(|r| r.violations[0].field.as_str()).collect();
    assert_eq!(fields, ["verify_time", "provider", "status"]);
    assert_eq!((got.applied_count, got.superseded_count, got.not_found_count, got.rejected_count), (3, 1, 1, 3));

    let c1 = contact(&mut c, &people, "c-1").await;
    assert_eq!(
        (c1.email_status, c1.email_verify_provider.as_str(), c1.email_verify_time),
        // The time as sent: computing "two days ago" again could land a second later.
        (Verified as i32, "zerobounce", first.verify_time)
    );
    assert_eq!((c1.phone_status, c1.etag.as_str()), (LeftCompany as i32, "2"), "one version for two findings");
    let c2 = contact(&mut c, &people, "c-2").await;
    assert_eq!((c2.email_status, c2.phone_status), (0, Bounced as i32), "only the bounce changed c-2");

    let streamed = findings_streamed(&c, &people, 3).await;
    let told: Vec<_> =
        streamed.iter().map(|r| (r.contact_id.as_str(), r.channel, r.status, r.previous_status)).collect();
    assert_eq!(
        told,
        [
            ("c-1", Email as i32, Verified as i32, 0),
            ("c-2", Phone as i32, Bounced as i32, 0),
            ("c-1", Phone as i32, LeftCompany as i32, 0),
        ]
    );
    assert!(streamed.iter().all(|r| r.provider == "zerobounce" && r.account_id == "acc-1"));

    // A later bounce replaces the verification; the same finding again is superseded.
    let bounce = finding("c-1", Email, Bounced, -0.5);
    let again = c.record_contact_verifications(authed(feed(vec![bounce.clone()]), &people.verifier)).await.unwrap();
    assert_eq!(again.into_inner().applied_count, 1);
    let twice = c.record_contact_verifications(authed(feed(vec![bounce]), &people.verifier)).await.unwrap();
    assert_eq!(twice.into_inner().superseded_count, 1);
    assert_eq!(contact(&mut c, &people, "c-1").await.email_status, Bounced as i32);
}

/// SDRs, AEs, managers, RevOps, service accounts and a sales person holding
/// the verifier role too are refused, and nothing changes.
async fn only_a_verifier_records_findings(b: Backend) {
    let (_s, mut c, people) = start(b).await;
    let item = finding("c-1", ContactChannel::Email, VerificationStatus::Verified, -1.0);
    // The SDR who also holds the verifier role is refused too: whoever works deals never vouches.
    let sdr_verifier = qualify_testkit::token("acme", "sam", &[Role::Sdr, Role::Verifier]);
    for t in [&people.sdr, &people.ae, &people.manager, &people.revops, &people.sync, &sdr_verifier] {
        let e = c.record_contact_verifications(authed(feed(vec![item.clone()]), t)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert_eq!(e.get_error_details().error_info().unwrap().reason, "VERIFIER_REQUIRED");
    }
    let other = qualify_testkit::token("globex", "enricher", &[Role::Verifier]);
    let got = c.record_contact_verifications(authed(feed(vec![item]), &other)).await.unwrap().into_inner();
    assert_eq!(got.not_found_count, 1, "another tenant's contact does not exist for it");
    let c1 = contact(&mut c, &people, "c-1").await;
    assert_eq!((c1.email_status, c1.etag.as_str()), (0, "1"));
}

/// An SDR who creates or updates a contact as VERIFIED with any provider gets
/// SELF_REPORTED and no provider; sending back a verifier's finding unchanged
/// keeps it, and changing the email drops it.
async fn what_a_client_enters_as_verified_is_self_reported(b: Backend) {
    let (_s, mut c, people) = start(b).await;
    let claimed = pb::Contact {
        contact_id: "c-3".into(),
        account_id: "acc-1".into(),
        email: "c-3@acme.test".into(),
        email_status: VerificationStatus::Verified as i32,
        email_verify_time: ts(-1.0),
        email_verify_provider: "trust-me".into(),
        ..Default::default()
    };
    let req = pb::CreateContactRequest { contact: Some(claimed), ..Default::default() };
    let made = c.create_contact(authed(req, &people.sdr)).await.unwrap().into_inner().contact.unwrap();
    assert_eq!((made.email_status, made.email_verify_provider.as_str()), (VerificationStatus::SelfReported as i32, ""));

    let item = finding("c-1", ContactChannel::Email, VerificationStatus::Verified, -1.0);
    c.record_contact_verifications(authed(feed(vec![item]), &people.verifier)).await.unwrap();
    let verified = contact(&mut c, &people, "c-1").await;
    let renamed = pb::Contact { full_name: "Cy".into(), ..verified.clone() };
    let req = pb::UpdateContactRequest { contact: Some(renamed), ..Default::default() };
    let kept = c.update_contact(authed(req, &people.sdr)).await.unwrap().into_inner().contact.unwrap();
    assert_eq!(
        (kept.full_name.as_str(), kept.email_status, kept.email_verify_provider.as_str()),
        ("Cy", VerificationStatus::Verified as i32, "zerobounce")
    );
    let moved = pb::Contact { email: "someone-else@acme.test".into(), ..kept };
    let req = pb::UpdateContactRequest { contact: Some(moved), ..Default::default() };
    let now = c.update_contact(authed(req, &people.sdr)).await.unwrap().into_inner().contact.unwrap();
    assert_eq!(
        (now.email_status, now.email_verify_provider.as_str()),
        (VerificationStatus::SelfReported as i32, ""),
        "the old address's finding says nothing of the new one"
    );
}

/// An empty feed, one of 5001 findings, or a bad request id is INVALID_ARGUMENT naming the field.
async fn a_feed_is_bounded_and_checked_before_anything_changes(b: Backend) {
    let (_s, mut c, people) = start(b).await;
    let item = finding("c-1", ContactChannel::Email, VerificationStatus::Verified, -1.0);
    let too_many = feed(vec![item.clone(); 5001]);
    let bad_key =
        pb::RecordContactVerificationsRequest { verifications: vec![item.clone()], request_id: "no spaces".into() };
    for (req, field) in [(feed(vec![]), "verifications"), (too_many, "verifications"), (bad_key, "request_id")] {
        let e = c.record_contact_verifications(authed(req, &people.verifier)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, field);
    }
    assert_eq!(contact(&mut c, &people, "c-1").await.etag, "1", "nothing changed");
    let full = feed(vec![item; 5000]);
    let got = c.record_contact_verifications(authed(full, &people.verifier)).await.unwrap().into_inner();
    assert_eq!((got.applied_count, got.superseded_count), (1, 4999), "5000 findings a call are taken");
}
