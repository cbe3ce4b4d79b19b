//! Lead scoring through its generated gRPC client, on SQLite and on the
//! machine's PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use qualify_proto::common::{LeadSource, LeadStage, Segment};
use qualify_proto::scoring::{self as pb, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Client = LeadScoringServiceClient<Channel>;

async fn start(backend: Backend) -> (qualify_testkit::Running, Client) {
    let running = spawn::<Scoring>(config("scoring", backend).await).await;
    let client = LeadScoringServiceClient::new(running.channel().await);
    (running, client)
}

fn account(id: &str) -> pb::Account {
    pb::Account {
        account_id: id.into(),
        display_name: "Acme Corp".into(),
        industry: "Fintech".into(),
        employee_count: 250,
        revenue_band: "10m-50m".into(),
        region: "EMEA".into(),
        segment: Segment::MidMarket as i32,
        ..Default::default()
    }
}

fn lead(id: &str, account_id: &str) -> pb::Lead {
    pb::Lead {
        lead_id: id.into(),
        account_id: account_id.into(),
        source: LeadSource::Inbound as i32,
        campaign: "q4-webinar".into(),
        ..Default::default()
    }
}

on_both_backends!(
    accounts_and_leads_round_trip,
    requests_without_a_valid_token_are_unauthenticated,
    another_tenant_sees_nothing,
    bad_input_names_every_field_and_changes_nothing,
    retries_with_the_same_request_id_change_nothing,
    update_masks_etags_and_upserts,
    pagination_walks_every_row_once,
    batch_get_contacts_answers_in_order_or_not_at_all,
    a_verification_time_in_the_future_is_refused,
);

async fn accounts_and_leads_round_trip(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "sync-job", &[Role::Service]);
    let a = c
        .create_account(authed(
            pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!((a.industry.as_str(), a.region.as_str(), a.etag.as_str()), ("fintech", "emea", "1"));
    assert!(a.create_time.is_some());

    let l = c
        .create_lead(authed(
            pb::CreateLeadRequest { lead: Some(lead("lead-1", "acc-1")), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(l.stage, LeadStage::New as i32);

    let got = c.get_lead(authed(pb::GetLeadRequest { lead_id: "lead-1".into() }, &t)).await.unwrap().into_inner();
    assert_eq!(got.lead.unwrap().campaign, "q4-webinar");

    let dup = c
        .create_account(authed(
            pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);

    let orphan = c
        .create_lead(authed(
            pb::CreateLeadRequest { lead: Some(lead("lead-2", "nope")), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(orphan.code(), Code::FailedPrecondition);
    assert_eq!(orphan.get_error_details().error_info().unwrap().reason, "ACCOUNT_NOT_FOUND");

    let missing = c.get_account(authed(pb::GetAccountRequest { account_id: "acc-9".into() }, &t)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn requests_without_a_valid_token_are_unauthenticated(b: Backend) {
    let (_s, mut c) = start(b).await;
    let no_token = c.get_account(pb::GetAccountRequest { account_id: "acc-1".into() }).await.unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);

    let forged = qualify_platform::TokenIssuer::hs256(b"someone-elses-key-0123456789abcdef")
        .issue("acme", "mallory", &[Role::Ae], std::time::Duration::from_secs(60))
        .unwrap();
    let e = c.get_account(authed(pb::GetAccountRequest { account_id: "acc-1".into() }, &forged)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(!e.message().contains("someone-elses-key"));
}

async fn another_tenant_sees_nothing(b: Backend) {
    let (_s, mut c) = start(b).await;
    let acme = token("acme", "ada", &[Role::Sdr]);
    let globex = token("globex", "gus", &[Role::Revops]);
    c.create_account(authed(
        pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
        &acme,
    ))
    .await
    .unwrap();
    c.create_lead(authed(
        pb::CreateLeadRequest { lead: Some(lead("lead-1", "acc-1")), request_id: String::new() },
        &acme,
    ))
    .await
    .unwrap();

    let e = c.get_account(authed(pb::GetAccountRequest { account_id: "acc-1".into() }, &globex)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.get_lead(authed(pb::GetLeadRequest { lead_id: "lead-1".into() }, &globex)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let list = c.list_accounts(authed(pb::ListAccountsRequest::default(), &globex)).await.unwrap().into_inner();
    assert!(list.accounts.is_empty());
    let list = c.list_leads(authed(pb::ListLeadsRequest::default(), &globex)).await.unwrap().into_inner();
    assert!(list.leads.is_empty());
    // Globex cannot attach a lead to Acme's account, and may reuse the same ids in its own space.
    let e = c
        .create_lead(authed(
            pb::CreateLeadRequest { lead: Some(lead("lead-9", "acc-1")), request_id: String::new() },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    c.create_account(authed(
        pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
        &globex,
    ))
    .await
    .unwrap();
    let acme_view = c.get_account(authed(pb::GetAccountRequest { account_id: "acc-1".into() }, &acme)).await.unwrap();
    assert_eq!(acme_view.into_inner().account.unwrap().etag, "1");
}

async fn bad_input_names_every_field_and_changes_nothing(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "ada", &[Role::Sdr]);
    let bad = pb::Account {
        account_id: "has spaces".into(),
        employee_count: -5,
        segment: 77,
        display_name: "x".repeat(300),
        ..Default::default()
    };
    let e = c
        .create_account(authed(pb::CreateAccountRequest { account: Some(bad), request_id: "bad key".into() }, &t))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    fields.sort();
    assert_eq!(
        fields,
        ["account.account_id", "account.display_name", "account.employee_count", "account.segment", "request_id"]
    );
    let e = c
        .create_lead(authed(
            pb::CreateLeadRequest { lead: Some(pb::Lead { source: 0, ..lead("l", "a") }), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "lead.source");
    let e =
        c.list_accounts(authed(pb::ListAccountsRequest { page_size: -1, ..Default::default() }, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let list = c.list_accounts(authed(pb::ListAccountsRequest::default(), &t)).await.unwrap().into_inner();
    assert!(list.accounts.is_empty(), "a refused request must change nothing");
}

async fn retries_with_the_same_request_id_change_nothing(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "ada", &[Role::Sdr]);
    let req = pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: "req-1".into() };
    let first = c.create_account(authed(req.clone(), &t)).await.unwrap().into_inner();
    let again = c.create_account(authed(req.clone(), &t)).await.unwrap().into_inner();
    assert_eq!(first, again, "a replay returns the first response");

    let mut other = req.clone();
    other.account.as_mut().unwrap().display_name = "Another".into();
    let e = c.create_account(authed(other, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "IDEMPOTENCY_KEY_REUSED");

    // The same key in another tenant is another key.
    let globex = token("globex", "gus", &[Role::Sdr]);
    c.create_account(authed(req, &globex)).await.unwrap();
    let list = c.list_accounts(authed(pb::ListAccountsRequest::default(), &t)).await.unwrap().into_inner();
    assert_eq!(list.accounts.len(), 1);
}

async fn update_masks_etags_and_upserts(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "sync", &[Role::Service]);
    // Upsert creates.
    let created = c
        .update_account(authed(
            pb::UpdateAccountRequest { account: Some(account("acc-1")), allow_missing: true, ..Default::default() },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(created.etag, "1");
    // A masked update changes only the named field.
    let patch = pb::Account {
        account_id: "acc-1".into(),
        employee_count: 900,
        industry: "retail".into(),
        ..Default::default()
    };
    let updated = c
        .update_account(authed(
            pb::UpdateAccountRequest {
                account: Some(patch.clone()),
                update_mask: Some(prost_types::FieldMask { paths: vec!["employee_count".into()] }),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!((updated.employee_count, updated.industry.as_str(), updated.etag.as_str()), (900, "fintech", "2"));
    // A stale etag is ABORTED.
    let stale = pb::Account { etag: "1".into(), ..patch.clone() };
    let e = c
        .update_account(authed(pb::UpdateAccountRequest { account: Some(stale), ..Default::default() }, &t))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    // Without allow_missing an unknown account is NOT_FOUND; an unknown mask path is INVALID_ARGUMENT.
    let e = c
        .update_account(authed(pb::UpdateAccountRequest { account: Some(account("acc-2")), ..Default::default() }, &t))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .update_account(authed(
            pb::UpdateAccountRequest {
                account: Some(patch),
                update_mask: Some(prost_types::FieldMask { paths: vec!["account_id".into()] }),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "update_mask.paths[0]");
}

async fn pagination_walks_every_row_once(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "sync", &[Role::Service]);
    for i in 0..25 {
        c.create_account(authed(
            pb::CreateAccountRequest { account: Some(account(&format!("acc-{i:02}"))), request_id: String::new() },
            &t,
        ))
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut token_ = String::new();
    loop {
        let page = c
            .list_accounts(authed(pb::ListAccountsRequest { page_size: 10, page_token: token_.clone() }, &t))
            .await
            .unwrap()
            .into_inner();
        assert!(page.accounts.len() <= 10);
        seen.extend(page.accounts.into_iter().map(|a| a.account_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    let expected: Vec<_> = (0..25).map(|i| format!("acc-{i:02}")).collect();
    assert_eq!(seen, expected);
    // A token from one query is refused by another.
    let page = c.list_leads(authed(pb::ListLeadsRequest { page_size: 1, ..Default::default() }, &t)).await.unwrap();
    assert!(page.into_inner().next_page_token.is_empty());
    let first = c
        .list_accounts(authed(pb::ListAccountsRequest { page_size: 1, ..Default::default() }, &t))
        .await
        .unwrap()
        .into_inner();
    let e = c
        .list_leads(authed(
            pb::ListLeadsRequest { page_size: 1, page_token: first.next_page_token, ..Default::default() },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn batch_get_contacts_answers_in_order_or_not_at_all(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "sync-job", &[Role::Service]);
    let globex = token("globex", "gus", &[Role::Service]);
    c.create_account(authed(
        pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
        &t,
    ))
    .await
    .unwrap();
    for (id, name) in [("c-1", "Ann"), ("c-2", "Bob"), ("c-3", "Cy")] {
        let contact = pb::Contact {
            contact_id: id.into(),
            account_id: "acc-1".into(),
            full_name: name.into(),
            ..Default::default()
        };
        c.create_contact(authed(pb::CreateContactRequest { contact: Some(contact), ..Default::default() }, &t))
            .await
            .unwrap();
    }
    let get = |ids: &[&str]| pb::BatchGetContactsRequest { contact_ids: ids.iter().map(|s| s.to_string()).collect() };

    // In the order asked, a repeated id answered twice.
    let got = c.batch_get_contacts(authed(get(&["c-3", "c-1", "c-3"]), &t)).await.unwrap().into_inner();
    let names: Vec<_> = got.contacts.iter().map(|x| x.full_name.as_str()).collect();
    assert_eq!(names, ["Cy", "Ann", "Cy"]);
    assert!(c.batch_get_contacts(authed(get(&[]), &t)).await.unwrap().into_inner().contacts.is_empty());

    // One missing id: NOT_FOUND naming it, and no partial answer.
    let e = c.batch_get_contacts(authed(get(&["c-1", "c-9"]), &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("c-9"), "{}", e.message());
    // Another tenant's contacts do not exist for the caller.
    let e = c.batch_get_contacts(authed(get(&["c-1"]), &globex)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Too many ids, or a malformed one: INVALID_ARGUMENT naming the field.
    let many: Vec<String> = (0..101).map(|i| format!("c-{i}")).collect();
    let e = c.batch_get_contacts(authed(pb::BatchGetContactsRequest { contact_ids: many }, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "contact_ids");
    let e = c.batch_get_contacts(authed(get(&["c-1", "bad id"]), &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "contact_ids[1]");
}

/// A contact cannot claim a verification that has not happened yet: a time
/// more than five minutes ahead of the server is INVALID_ARGUMENT naming the
/// field, on create and update alike, and nothing changes.
async fn a_verification_time_in_the_future_is_refused(b: Backend) {
    let (_s, mut c) = start(b).await;
    let t = token("acme", "sync-job", &[Role::Service]);
    c.create_account(authed(
        pb::CreateAccountRequest { account: Some(account("acc-1")), request_id: String::new() },
        &t,
    ))
    .await
    .unwrap();
    let in_an_hour = qualify_testkit::fixtures::ts(1.0 / 24.0);
    let contact = |email_at: Option<prost_types::Timestamp>, phone_at: Option<prost_types::Timestamp>| pb::Contact {
        contact_id: "c-1".into(),
        account_id: "acc-1".into(),
        full_name: "Ann".into(),
        email: "ann@acme.test".into(),
        email_status: pb::VerificationStatus::Verified as i32,
        email_verify_time: email_at,
        phone: "+1 555 0100".into(),
        phone_status: pb::VerificationStatus::Verified as i32,
        phone_verify_time: phone_at,
        ..Default::default()
    };
    let req = pb::CreateContactRequest { contact: Some(contact(in_an_hour, None)), ..Default::default() };
    let e = c.create_contact(authed(req, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
    assert_eq!(fields, ["contact.email_verify_time"]);
    let get = || pb::GetContactRequest { contact_id: "c-1".into() };
    assert_eq!(c.get_contact(authed(get(), &t)).await.unwrap_err().code(), Code::NotFound, "nothing stored");

    // A minute ahead is clock skew, not the future.
    let a_minute = qualify_testkit::fixtures::ts(1.0 / 1440.0);
    let req = pb::CreateContactRequest { contact: Some(contact(a_minute, None)), ..Default::default() };
    let stored = c.create_contact(authed(req, &t)).await.unwrap().into_inner().contact.unwrap();
    let req = pb::UpdateContactRequest {
        contact: Some(pb::Contact { etag: stored.etag.clone(), ..contact(None, in_an_hour) }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["phone_verify_time".into()] }),
        ..Default::default()
    };
    let e = c.update_contact(authed(req, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, "contact.phone_verify_time");
    let now = c.get_contact(authed(get(), &t)).await.unwrap().into_inner().contact.unwrap();
    assert_eq!((now.etag, now.phone_verify_time), (stored.etag, None), "the update changed nothing");
}
