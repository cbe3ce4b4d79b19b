//! Quotas through the generated client, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use qualify_metrics::Metrics;
use qualify_proto::common::Money;
use qualify_proto::metrics::{self as pb, QuotaOwnerKind, metrics_service_client::MetricsServiceClient};
use qualify_testkit::{Backend, Role, authed, config, on_both_backends, spawn, token};
use tonic::Code;
use tonic_types::StatusExt;

fn quota(owner: &str, amount: i64) -> pb::Quota {
    pb::Quota {
        owner_kind: QuotaOwnerKind::Team as i32,
        owner_id: owner.into(),
        period: "2026-11".into(),
        amount: Some(Money { amount_minor: amount, currency_code: "USD".into() }),
        update_time: None,
    }
}

on_both_backends!(quotas_are_set_listed_and_scoped);

async fn quotas_are_set_listed_and_scoped(b: Backend) {
    let s = spawn::<Metrics>(config("metrics", b).await).await;
    let mut c = MetricsServiceClient::new(s.channel().await);
    let revops = token("acme", "rita", &[Role::Revops]);
    for (i, owner) in ["emea", "amer", "apac"].iter().enumerate() {
        c.update_quota(authed(
            pb::UpdateQuotaRequest {
                quota: Some(quota(owner, 10_000_000 * (i as i64 + 1))),
                request_id: String::new(),
            },
            &revops,
        ))
        .await
        .unwrap();
    }
    // Setting again replaces.
    c.update_quota(authed(
        pb::UpdateQuotaRequest { quota: Some(quota("emea", 5)), request_id: String::new() },
        &revops,
    ))
    .await
    .unwrap();
    let mut owners = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .list_quotas(authed(
                pb::ListQuotasRequest { period: "2026-11".into(), page_size: 2, page_token: page_token.clone() },
                &revops,
            ))
            .await
            .unwrap()
            .into_inner();
        owners.extend(page.quotas.iter().map(|q| (q.owner_id.clone(), q.amount.as_ref().unwrap().amount_minor)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(owners, vec![("amer".into(), 20_000_000), ("apac".into(), 30_000_000), ("emea".to_string(), 5)]);

    let sdr = token("acme", "sam", &[Role::Sdr]);
    let e = c
        .update_quota(authed(pb::UpdateQuotaRequest { quota: Some(quota("emea", 1)), request_id: String::new() }, &sdr))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let mut bad = quota("emea", -1);
    bad.period = "2026-13".into();
    let e = c
        .update_quota(authed(pb::UpdateQuotaRequest { quota: Some(bad), request_id: String::new() }, &revops))
        .await
        .unwrap_err();
    let fields: Vec<_> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["quota.period", "quota.amount.amount_minor"]);

    let globex = token("globex", "gus", &[Role::Revops]);
    let theirs = c
        .list_quotas(authed(pb::ListQuotasRequest { period: "2026-11".into(), ..Default::default() }, &globex))
        .await
        .unwrap();
    assert!(theirs.into_inner().quotas.is_empty());
}
