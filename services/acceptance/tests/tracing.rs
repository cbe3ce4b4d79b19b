#![allow(clippy::unwrap_used)]
//! One trace follows a submission from its caller through acceptance, the
//! call to lead scoring and lead scoring's database read: the W3C trace
//! context travels in gRPC metadata. Its own test binary, because the span
//! collector is the process-wide subscriber.

use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use qualify_platform::config::LogFormat;
use qualify_platform::telemetry;
use qualify_proto::acceptance as pb;
use qualify_testkit::fixtures::opportunity;
use qualify_testkit::{Backend, Cluster, authed, eventually};

const SUBMIT: &str = "qualify.acceptance.v1.OpportunityAcceptanceService/SubmitOpportunity";
const GET_LEAD: &str = "qualify.scoring.v1.LeadScoringService/GetLead";

fn one<'a>(spans: &'a [SpanData], trace: TraceId, name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<_> =
        spans.iter().filter(|s| s.span_context.trace_id() == trace && s.name == name && s.span_kind == kind).collect();
    assert_eq!(found.len(), 1, "one {kind:?} span {name} in the trace; spans: {:#?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| format!("{} {:?} {}", s.span_context.trace_id(), s.span_kind, s.name)).collect()
}

#[tokio::test]
async fn one_trace_runs_from_the_caller_through_acceptance_into_lead_scoring_and_its_database() {
    let exporter = InMemorySpanExporter::default();
    let _telemetry = telemetry::init_with_exporter(LogFormat::Text, "acceptance-test", exporter.clone());
    let mut w = Cluster::with_sql_lead(Backend::Sqlite).await;

    // The caller is itself traced: its context rides in `traceparent`.
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let caller_span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let req = pb::SubmitOpportunityRequest { opportunity: Some(opportunity("opp-1")), request_id: "t-1".into() };
    let mut req = authed(req, &w.acme.sdr);
    req.metadata_mut().insert("traceparent", format!("00-{trace}-{caller_span}-01").parse().unwrap());
    w.clients.acceptance.submit_opportunity(req).await.unwrap();

    // Server spans end as their responses complete; give the last a moment.
    let spans = eventually(Duration::from_secs(5), || {
        let exporter = exporter.clone();
        async move {
            let spans = exporter.get_finished_spans().unwrap();
            let done = spans
                .iter()
                .any(|s| s.span_context.trace_id() == trace && s.name == SUBMIT && s.span_kind == SpanKind::Server);
            done.then_some(spans)
        }
    })
    .await
    .unwrap_or_else(|| panic!("no submit span; spans: {:#?}", names(&exporter.get_finished_spans().unwrap())));

    let submit = one(&spans, trace, SUBMIT, SpanKind::Server);
    assert_eq!(submit.parent_span_id, caller_span, "acceptance continues the caller's trace");
    assert!(submit.parent_span_is_remote);
    let call = one(&spans, trace, GET_LEAD, SpanKind::Client);
    let served = one(&spans, trace, GET_LEAD, SpanKind::Server);
    assert_eq!(served.parent_span_id, call.span_context.span_id(), "lead scoring continues acceptance's call");
    assert!(served.parent_span_is_remote, "the context crossed the wire, not a task boundary");
    let read = one(&spans, trace, "SELECT leads", SpanKind::Client);
    assert_eq!(read.parent_span_id, served.span_context.span_id(), "the database read is lead scoring's");
    let stored = one(&spans, trace, "transaction SubmitOpportunity", SpanKind::Client);
    assert_eq!(stored.parent_span_id, submit.span_context.span_id(), "the submission is stored inside the RPC");

    // A call without a trace context starts a trace of its own.
    let req = pb::GetOpportunityRequest { opportunity_id: "opp-1".into() };
    w.clients.acceptance.get_opportunity(authed(req, &w.acme.ae)).await.unwrap();
    let fresh = eventually(Duration::from_secs(5), || {
        let exporter = exporter.clone();
        async move { exporter.get_finished_spans().unwrap().into_iter().find(|s| s.name.ends_with("/GetOpportunity")) }
    })
    .await
    .unwrap();
    assert_ne!(fresh.span_context.trace_id(), trace);
    assert_eq!(fresh.parent_span_id, SpanId::INVALID);
}
