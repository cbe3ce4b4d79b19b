#![allow(clippy::unwrap_used)]
//! Opportunity acceptance killed with SIGKILL in the middle of a submission
//! load (the real binary, a process of its own): after a restart every
//! submission and acceptance that was acknowledged is there (each acceptance
//! with its one audited decision), a retry of any submission returns the
//! stored answer, and the outbox delivers an event for each. Against the
//! machine's PostgreSQL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qualify_proto::acceptance::{
    self as pb, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient as Client,
};
use qualify_testkit::fixtures::opportunity;
use qualify_testkit::{Backend, Cluster, Role, TEST_SECRET, authed, config, token};
use tonic::transport::Channel;

/// The `qualify-acceptance` binary on `port`, on the given PostgreSQL schema.
fn start(port: u16, cfg: &qualify_platform::ServiceConfig, scoring_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qualify-acceptance"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("QUALIFY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("QUALIFY_DATABASE_URL", &cfg.database_url)
        .env("QUALIFY_DATABASE_SCHEMA", cfg.database_schema.as_deref().unwrap())
        .env("QUALIFY_JWT_SECRET", TEST_SECRET)
        .env("QUALIFY_SCORING_URL", scoring_url)
        .env("QUALIFY_METRICS_ADDR", "off")
        .env("QUALIFY_DRAIN_GRACE_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the acceptance binary starts")
}

async fn client(port: u16) -> Client<Channel> {
    for _ in 0..300 {
        if let Ok(c) = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
            return Client::new(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("acceptance never listened on {port}");
}

/// Opportunity `id` of `lead-1`, an expansion: a lead carries one live
/// ordinary opportunity, and the load needs hundreds on the fixture's lead.
fn submit(id: &str) -> pb::SubmitOpportunityRequest {
    let o = pb::Opportunity { expansion_reason: "load: another team of the account".into(), ..opportunity(id) };
    pb::SubmitOpportunityRequest { opportunity: Some(o), request_id: format!("submit-{id}") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_submissions_loses_nothing_acknowledged() {
    // Lead scoring in process (it is not the one killed) with lead-1 at SQL.
    let w = Cluster::with_sql_lead(Backend::Postgres).await;
    let scoring = w.scoring.url();
    let cfg = config("acceptance", Backend::Postgres).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = start(port, &cfg, &scoring);
    let c = client(port).await;
    let sdr = token("acme", "sam", &[Role::Sdr]);

    // Eight callers submit as fast as they can; what was acknowledged is recorded.
    let ae = token("acme", "alex", &[Role::Ae]);
    let acked = Arc::new(Mutex::new(Vec::<(String, pb::SubmitOpportunityRequest)>::new()));
    let decided = Arc::new(Mutex::new(Vec::<String>::new()));
    let callers: Vec<_> = (0..8)
        .map(|w| {
            let (mut c, sdr, ae, acked, decided) = (c.clone(), sdr.clone(), ae.clone(), acked.clone(), decided.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("opp-{w}-{i}");
                    let req = submit(&id);
                    match c.submit_opportunity(authed(req.clone(), &sdr)).await {
                        Ok(_) => acked.lock().unwrap().push((id.clone(), req)),
                        Err(_) => return i,
                    }
                    // Every other one is accepted by an AE at once: decisions are in flight too.
                    if i % 2 == 0 {
                        let accept = pb::AcceptOpportunityRequest {
                            opportunity_id: id.clone(),
                            request_id: format!("accept-{id}"),
                            ..Default::default()
                        };
                        match c.accept_opportunity(authed(accept, &ae)).await {
                            Ok(_) => decided.lock().unwrap().push(id),
                            Err(_) => return i + 1,
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();
    // Kill it mid-load, as the kernel's OOM killer or a node failure would.
    while acked.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let attempted: usize = futures::future::join_all(callers).await.into_iter().map(|r| r.unwrap() as usize).sum();
    let acked: Vec<(String, pb::SubmitOpportunityRequest)> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40 && attempted >= acked.len());

    // Restart on the same database.
    let mut child = start(port, &cfg, &scoring);
    let mut c = client(port).await;
    for (id, req) in &acked {
        let got = c.get_opportunity(authed(pb::GetOpportunityRequest { opportunity_id: id.clone() }, &ae)).await;
        assert!(got.is_ok(), "acknowledged {id} is missing after the crash: {got:?}");
        // A client that missed the answer retries the same request: it gets the stored answer.
        let retry = c.submit_opportunity(authed(req.clone(), &sdr)).await.unwrap().into_inner();
        assert_eq!(retry.opportunity.unwrap().opportunity_id, *id);
    }

    // Every acknowledged acceptance is recorded: the opportunity accepted, one decision audited.
    let decided: Vec<String> = decided.lock().unwrap().clone();
    assert!(!decided.is_empty());
    for id in &decided {
        let o = c.get_opportunity(authed(pb::GetOpportunityRequest { opportunity_id: id.clone() }, &ae)).await;
        assert_eq!(o.unwrap().into_inner().opportunity.unwrap().state, pb::OpportunityState::Accepted as i32, "{id}");
        let d = c.list_decisions(authed(pb::ListDecisionsRequest { opportunity_id: id.clone() }, &ae)).await;
        assert_eq!(d.unwrap().into_inner().decisions.len(), 1, "{id}: one audited decision");
    }

    // The outbox delivers an event for every stored submission, acknowledged or not.
    let svc = token("acme", "metrics", &[Role::Service]);
    let listed = c
        .list_opportunities(authed(pb::ListOpportunitiesRequest { page_size: 1000, ..Default::default() }, &ae))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.next_page_token.is_empty(), "one page holds them all");
    let stored: HashSet<String> = listed.opportunities.into_iter().map(|o| o.opportunity_id).collect();
    assert!(acked.iter().all(|(id, _)| stored.contains(id)));
    let mut stream = c
        .stream_events(authed(pb::StreamEventsRequest { after_sequence: 0, follow: true }, &svc))
        .await
        .unwrap()
        .into_inner();
    let mut submitted = HashSet::new();
    while submitted.len() < stored.len() {
        let e = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} submissions reached the stream", submitted.len(), stored.len()))
            .unwrap()
            .unwrap();
        if let Some(pb::event::Payload::OpportunityChanged(ch)) = e.event.unwrap().payload
            && ch.from_state == 0
        {
            submitted.insert(ch.opportunity.unwrap().opportunity_id);
        }
    }
    assert_eq!(submitted, stored);
    child.kill().unwrap();
    child.wait().unwrap();
}
