#![allow(clippy::unwrap_used)]
//! The metrics binary killed with SIGKILL while it ingests (a process of its
//! own; lead scoring and acceptance run in the test): after a restart it
//! catches up to every event exactly once, and its figures equal those of a
//! clean rebuild. Against the machine's PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qualify_acceptance::Acceptance;
use qualify_proto::common::LeadSource;
use qualify_proto::metrics::{self as pb, metrics_service_client::MetricsServiceClient};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, TEST_SECRET, authed, config, eventually, spawn, token};
use tonic::transport::Channel;

const LEADS: usize = 200;

/// The running binary; dropping it is a SIGKILL (and a wait, so no zombie is left).
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, cfg: &qualify_platform::ServiceConfig, scoring: &str, acceptance: &str) -> Binary {
    let child = Command::new(env!("CARGO_BIN_EXE_qualify-metrics"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("QUALIFY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("QUALIFY_DATABASE_URL", &cfg.database_url)
        .env("QUALIFY_DATABASE_SCHEMA", cfg.database_schema.as_deref().unwrap())
        .env("QUALIFY_JWT_SECRET", TEST_SECRET)
        .env("QUALIFY_SCORING_URL", scoring)
        .env("QUALIFY_ACCEPTANCE_URL", acceptance)
        .env("QUALIFY_METRICS_ADDR", "off")
        .env("QUALIFY_DRAIN_GRACE_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the metrics binary starts");
    Binary(child)
}

async fn client(port: u16) -> MetricsServiceClient<Channel> {
    for _ in 0..300 {
        if let Ok(c) = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
            return MetricsServiceClient::new(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metrics never listened on {port}");
}

fn this_month() -> String {
    qualify_platform::Clock::system().now().format("%Y-%m").to_string()
}

async fn funnel(m: &mut MetricsServiceClient<Channel>, t: &str) -> Vec<pb::FunnelRow> {
    let req = pb::GetFunnelRequest {
        start_period: this_month(),
        end_period: this_month(),
        group_by: vec![pb::FunnelDimension::Source as i32],
        ..Default::default()
    };
    m.get_funnel(authed(req, t)).await.unwrap().into_inner().rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingestion_then_catch_up_equals_a_clean_rebuild() {
    let scoring = spawn::<Scoring>(config("scoring", Backend::Postgres).await).await;
    let mut acc_cfg = config("acceptance", Backend::Postgres).await;
    acc_cfg.scoring_url = Some(scoring.url());
    let acceptance = spawn::<Acceptance>(acc_cfg).await;
    let cfg = config("metrics", Backend::Postgres).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut running = Some(start(port, &cfg, &scoring.url(), &acceptance.url()));
    let _ = client(port).await;

    // Leads are created (and a third accepted by an SDR) while metrics ingests; it is killed
    // half-way through, and the rest is written while it is down.
    let mut s = LeadScoringServiceClient::new(scoring.channel().await);
    let (bot, sdr) = (token("acme", "sync", &[Role::Service]), token("acme", "sam", &[Role::Sdr]));
    let account = sc::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &bot))
        .await
        .unwrap();
    let sources = [LeadSource::Inbound, LeadSource::Outbound, LeadSource::Event, LeadSource::Referral];
    for i in 0..LEADS {
        if i == LEADS / 2 {
            drop(running.take()); // SIGKILL
        }
        let lead = sc::Lead {
            lead_id: format!("lead-{i}"),
            account_id: "acc-1".into(),
            source: sources[i % sources.len()] as i32,
            owner_sdr: "sam".into(),
            ..Default::default()
        };
        s.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &bot)).await.unwrap();
        if i % 3 == 0 {
            let req = sc::AcceptLeadRequest { lead_id: format!("lead-{i}"), request_id: String::new() };
            s.accept_lead(authed(req, &sdr)).await.unwrap();
        }
    }

    // Restarted, it catches up: every lead counted once.
    let _restarted = start(port, &cfg, &scoring.url(), &acceptance.url());
    let mut m = client(port).await;
    let manager = token("acme", "mia", &[Role::Manager]);
    let leads = |rows: &[pb::FunnelRow]| rows.iter().map(|r| r.figures.as_ref().unwrap().leads).sum::<i64>();
    let caught_up = eventually(Duration::from_secs(30), || {
        let (mut m, t) = (m.clone(), manager.clone());
        async move {
            let rows = funnel(&mut m, &t).await;
            (leads(&rows) == LEADS as i64).then_some(rows)
        }
    })
    .await
    .expect("metrics never caught up to every lead");
    assert_eq!(caught_up.len(), sources.len(), "{caught_up:?}");
    for r in &caught_up {
        assert_eq!(r.figures.as_ref().unwrap().leads, (LEADS / sources.len()) as i64, "{r:?}");
    }

    // A clean rebuild from both streams gives the very same figures.
    let operator = token(qualify_platform::outbox::SYSTEM_TENANT, "ops", &[Role::Revops]);
    m.rebuild_rollups(authed(pb::RebuildRollupsRequest {}, &operator)).await.unwrap();
    assert_eq!(funnel(&mut m, &manager).await, caught_up);
}
