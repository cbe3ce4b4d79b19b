#![allow(clippy::unwrap_used)]
//! One deal crossing every call between the services, for tests that change how
//! those calls are made (identity, TLS): acceptance snapshots the lead from lead
//! scoring, lead scoring follows the acceptance to SQO, metrics reads both streams.

use std::time::Duration;

use qualify_proto::common::LeadStage;
use qualify_proto::metrics as mpb;
use qualify_proto::scoring as sc;
use qualify_testkit::{Cluster, authed, eventually, fixtures};

/// `acme`'s people walk a lead to SQL, submit and accept its opportunity; then the
/// lead must reach SQO and metrics must have applied both streams (`operator` reads
/// ingestion status). `how` completes each failure message.
pub async fn a_deal_crosses_every_service(w: &mut Cluster, operator: &str, how: &str) {
    fixtures::sql_lead(&mut w.clients.scoring, &w.acme).await;
    let submitted = w.submit(fixtures::opportunity("opp-1")).await.opportunity.unwrap();
    assert_eq!(submitted.lead_snapshot.unwrap().stage, LeadStage::Sql as i32, "acceptance read the lead {how}");
    let ae = w.acme.ae.clone();
    w.accept("opp-1", &ae, "").await.unwrap();
    let (s, sdr) = (w.clients.scoring.clone(), w.acme.sdr.clone());
    let followed = eventually(Duration::from_secs(20), || {
        let (mut s, sdr) = (s.clone(), sdr.clone());
        async move {
            let got = s.get_lead(authed(sc::GetLeadRequest { lead_id: fixtures::LEAD.into() }, &sdr)).await.ok()?;
            (got.into_inner().lead?.stage == LeadStage::Sqo as i32).then_some(())
        }
    })
    .await;
    assert!(followed.is_some(), "lead scoring followed the acceptance {how}");
    let m = w.clients.metrics.clone();
    let ingested = eventually(Duration::from_secs(20), || {
        let (mut m, operator) = (m.clone(), operator.to_string());
        async move {
            let st = m.get_ingestion_status(authed(mpb::GetIngestionStatusRequest {}, &operator)).await.ok()?;
            let streams = st.into_inner().streams;
            (streams.len() == 2 && streams.iter().all(|s| s.applied_events > 0)).then_some(())
        }
    })
    .await;
    assert!(ingested.is_some(), "metrics read both streams {how}");
}
