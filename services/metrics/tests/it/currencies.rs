#![allow(clippy::unwrap_used)]
//! Money is never summed across currencies: a USD and a EUR deal of one
//! tenant, accepted through the generated clients, are reported in the
//! tenant's reporting currency at the rate it keeps for the month; without a
//! rate the EUR amount is left out, named, and a finding of funnel health.

use std::time::Duration;

use qualify_proto::common::Money;
use qualify_proto::metrics::{self as pb, metrics_service_client::MetricsServiceClient};
use qualify_testkit::fixtures::{another_sql_lead, opportunity, opportunity_of};
use qualify_testkit::{Backend, Cluster, authed, eventually, on_both_backends};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

on_both_backends!(two_currencies_in_one_tenant_convert_at_the_months_rate);

fn this_month() -> String {
    qualify_platform::Clock::system().now().format("%Y-%m").to_string()
}

/// The whole month's figures once `check` holds, or a failure showing the last ones.
async fn until(
    m: &MetricsServiceClient<Channel>,
    token: &str,
    check: impl Fn(&pb::FunnelFigures) -> bool,
) -> pb::FunnelFigures {
    let read = || {
        let (mut m, t) = (m.clone(), token.to_string());
        async move {
            let req =
                pb::GetFunnelRequest { start_period: this_month(), end_period: this_month(), ..Default::default() };
            m.get_funnel(authed(req, &t)).await.ok()?.into_inner().rows.first()?.figures.clone()
        }
    };
    let got = eventually(Duration::from_secs(20), || async { read().await.filter(|f| check(f)) }).await;
    match got {
        Some(f) => f,
        None => panic!("metrics never reached the figures; last: {:?}", read().await),
    }
}

fn missing(f: &pb::FunnelFigures) -> Vec<(String, String)> {
    f.missing_exchange_rates.iter().map(|m| (m.currency_code.clone(), m.period.clone())).collect()
}

async fn set_rate(
    m: &mut MetricsServiceClient<Channel>,
    token: &str,
    code: &str,
    rate: &str,
) -> pb::SetExchangeRatesResponse {
    let req = pb::SetExchangeRatesRequest {
        period: this_month(),
        rates: vec![pb::ExchangeRate { currency_code: code.into(), rate: rate.into() }],
        request_id: String::new(),
    };
    m.set_exchange_rates(authed(req, token)).await.unwrap().into_inner()
}

/// USD 24,000 and EUR 10,000 accepted this month. In USD without a EUR rate:
/// pipeline USD 24,000 and EUR named missing; at 1.10: USD 35,000. Reporting
/// in EUR instead: EUR 10,000 until USD has a rate; at 0.90: EUR 31,600.
async fn two_currencies_in_one_tenant_convert_at_the_months_rate(b: Backend) {
    let mut w = Cluster::with_sql_lead(b).await;
    another_sql_lead(&mut w.clients.scoring, &w.acme, "lead-2").await;
    w.submit(opportunity("opp-usd")).await;
    let eur = Money { amount_minor: 1_000_000, currency_code: "EUR".into() };
    w.submit(acc_with_amount(opportunity_of("opp-eur", "lead-2"), eur)).await;
    let ae = w.acme.ae.clone();
    for id in ["opp-usd", "opp-eur"] {
        w.accept(id, &ae, "").await.unwrap();
    }
    let (revops, manager, sdr) = (w.acme.revops.clone(), w.acme.manager.clone(), w.acme.sdr.clone());
    let mut m = w.clients.metrics.clone();
    let month = this_month();

    let f = until(&m, &manager, |f| f.sqos_accepted == 2).await;
    assert_eq!(
        (f.currency_code.as_str(), f.pipeline_generated_minor, f.open_pipeline_minor),
        ("USD", 2_400_000, 2_400_000)
    );
    assert_eq!(f.average_deal_size_minor, Some(1_200_000), "the EUR deal is counted, its amount is not");
    assert_eq!(missing(&f), [("EUR".to_string(), month.clone())]);
    let health = |m: &MetricsServiceClient<Channel>| {
        let (mut m, t) = (m.clone(), manager.clone());
        async move {
            let req =
                pb::GetFunnelHealthRequest { start_period: this_month(), end_period: this_month(), as_of_time: None };
            let findings = m.get_funnel_health(authed(req, &t)).await.unwrap().into_inner().findings;
            findings
                .into_iter()
                .filter(|f| f.code == pb::FindingCode::MissingExchangeRate as i32)
                .map(|f| (f.group.unwrap().period, f.message))
                .collect::<Vec<_>>()
        }
    };
    let found = health(&m).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, month);
    assert!(found[0].1.contains("EUR") && found[0].1.contains("USD"), "{}", found[0].1);

    // Only RevOps or a manager keeps rates; a bad rate names its field; nothing changes.
    let req = pb::SetExchangeRatesRequest {
        period: month.clone(),
        rates: vec![pb::ExchangeRate { currency_code: "EUR".into(), rate: "1.1".into() }],
        request_id: String::new(),
    };
    assert_eq!(m.set_exchange_rates(authed(req.clone(), &sdr)).await.unwrap_err().code(), Code::PermissionDenied);
    for (code, rate, field) in
        [("EUR", "0", "rates[0].rate"), ("EUR", "1,1", "rates[0].rate"), ("USD", "1", "rates[0].currency_code")]
    {
        let mut bad = req.clone();
        bad.rates[0] = pb::ExchangeRate { currency_code: code.into(), rate: rate.into() };
        let e = m.set_exchange_rates(authed(bad, &revops)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.get_error_details().bad_request().unwrap().field_violations[0].field, field);
    }
    let listed = m.list_exchange_rates(authed(pb::ListExchangeRatesRequest { period: month.clone() }, &sdr)).await;
    assert!(listed.unwrap().into_inner().rates.is_empty(), "refusals stored nothing");

    let set = set_rate(&mut m, &revops, "EUR", "1.10").await;
    assert_eq!((set.reporting_currency_code.as_str(), set.rates[0].rate.as_str()), ("USD", "1.1"));
    let f = until(&m, &manager, |f| f.missing_exchange_rates.is_empty()).await;
    assert_eq!((f.pipeline_generated_minor, f.open_pipeline_minor), (3_500_000, 3_500_000), "24,000 + 10,000 × 1.10");
    assert!(health(&m).await.is_empty());

    // Reporting in EUR: the USD rates kept so far convert into USD, not EUR.
    let req = pb::SetReportingCurrencyRequest { currency_code: "EUR".into(), request_id: String::new() };
    m.set_reporting_currency(authed(req, &revops)).await.unwrap();
    let got = m.get_reporting_currency(authed(pb::GetReportingCurrencyRequest {}, &sdr)).await.unwrap();
    assert_eq!(got.into_inner().currency_code, "EUR");
    let f = until(&m, &manager, |f| f.currency_code == "EUR").await;
    assert_eq!((f.pipeline_generated_minor, missing(&f)), (1_000_000, vec![("USD".to_string(), month.clone())]));
    set_rate(&mut m, &revops, "USD", "0.90").await;
    let f = until(&m, &manager, |f| f.missing_exchange_rates.is_empty()).await;
    assert_eq!(f.pipeline_generated_minor, 3_160_000, "10,000 + 24,000 × 0.90");
}

fn acc_with_amount(o: qualify_proto::acceptance::Opportunity, amount: Money) -> qualify_proto::acceptance::Opportunity {
    qualify_proto::acceptance::Opportunity { amount: Some(amount), ..o }
}
