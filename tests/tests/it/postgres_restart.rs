//! PostgreSQL restarted (immediate shutdown, as a crash or failover does) in
//! the middle of a write load. The server is a private one this test starts
//! (initdb on a free port), so restarting it disturbs no other test. Every
//! create that returned OK is there afterwards; every stored lead has its
//! event in the outbox and every event its lead (nothing half-written);
//! readiness turns NOT_SERVING and back, and the service recovers without a
//! restart of its own.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qualify_proto::common::LeadSource;
use qualify_proto::scoring::{self as pb, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, authed, config, eventually, spawn, token};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A PostgreSQL cluster of this test's own, run as the `postgres` user.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser").args(["-u", "postgres", "--"]).arg(bin.join(tool)).args(args).output().unwrap()
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL server package")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("qualify-pg-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status().unwrap().success());
        let d = dir.to_str().unwrap();
        let init = as_postgres(&bin, "initdb", &["-D", d, "--auth=trust", "-U", "postgres"]);
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let pg = PrivatePostgres { dir, port, bin };
        pg.ctl(&["start", "-w"]);
        pg
    }

    fn ctl(&self, args: &[&str]) {
        let d = self.dir.to_str().unwrap();
        let opts = format!("-p {} -k {d} -c listen_addresses=127.0.0.1 -c fsync=on", self.port);
        let mut all = vec!["-D", d, "-o", &opts, "-l"];
        let log = format!("{d}/log");
        all.push(&log);
        all.extend_from_slice(args);
        let out = as_postgres(&self.bin, "pg_ctl", &all);
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap().to_string();
        let _ = as_postgres(&self.bin, "pg_ctl", &["-D", &d, "stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_writes_loses_nothing_acknowledged_and_leaves_nothing_half_written() {
    let pg = PrivatePostgres::start();
    let mut cfg = config("scoring", Backend::Sqlite).await;
    cfg.database_url = pg.url();
    cfg.database_schema = Some("scoring".into());
    cfg.database_max_connections = 4;
    let svc = spawn::<Scoring>(cfg).await;
    let ready = || {
        let ch = svc.channel();
        async move {
            let ch = ch.await;
            let r = HealthClient::new(ch)
                .check(HealthCheckRequest { service: "qualify.scoring.v1.LeadScoringService".into() })
                .await;
            r.map(|r| r.into_inner().status).unwrap_or(-1)
        }
    };
    eventually(Duration::from_secs(20), || async { (ready().await == ServingStatus::Serving as i32).then_some(()) })
        .await
        .expect("ready at start");
    let c = LeadScoringServiceClient::new(svc.channel().await);
    let bot = token("acme", "sync", &[Role::Service]);
    let account = pb::Account { account_id: "acc-1".into(), display_name: "Acme".into(), ..Default::default() };
    c.clone()
        .create_account(authed(pb::CreateAccountRequest { account: Some(account), ..Default::default() }, &bot))
        .await
        .unwrap();

    // Four writers create leads until told to stop, recording what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let codes = Arc::new(Mutex::new(Vec::<tonic::Code>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (mut c, bot, acked, codes, stop) = (c.clone(), bot.clone(), acked.clone(), codes.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("lead-{w}-{i}");
                    let lead = pb::Lead {
                        lead_id: id.clone(),
                        account_id: "acc-1".into(),
                        source: LeadSource::Inbound as i32,
                        ..Default::default()
                    };
                    let req = pb::CreateLeadRequest { lead: Some(lead), request_id: format!("r-{id}") };
                    match c.create_lead(authed(req, &bot)).await {
                        Ok(_) => acked.lock().unwrap().push(id),
                        Err(s) => {
                            codes.lock().unwrap().push(s.code());
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The crash: immediate shutdown, then the server is down for a moment, then back.
    pg.ctl(&["stop", "-m", "immediate"]);
    let not_ready = eventually(Duration::from_secs(15), || async {
        (ready().await == ServingStatus::NotServing as i32).then_some(())
    })
    .await;
    assert!(not_ready.is_some(), "readiness never reported NOT_SERVING while PostgreSQL was down");
    pg.ctl(&["start", "-w"]);
    eventually(Duration::from_secs(30), || async { (ready().await == ServingStatus::Serving as i32).then_some(()) })
        .await
        .expect("readiness came back without a restart of the service");
    let before = acked.lock().unwrap().len();
    eventually(Duration::from_secs(30), || async { (acked.lock().unwrap().len() >= before + 50).then_some(()) })
        .await
        .expect("writes succeed again without a restart of the service");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // Refusals during the outage said "retry" (or the transaction was aborted), never more.
    let codes = codes.lock().unwrap().clone();
    assert!(!codes.is_empty(), "the outage was noticed");
    let odd: Vec<_> = codes.iter().filter(|c| !matches!(c, tonic::Code::Unavailable | tonic::Code::Aborted)).collect();
    assert!(odd.is_empty(), "refusals during the outage: {odd:?}");

    // Every acknowledged lead is there, and leads and their events match one for one.
    let mut c = c;
    let mut stored = HashSet::new();
    let mut token_ = String::new();
    loop {
        let page = c
            .list_leads(authed(
                pb::ListLeadsRequest { page_size: 1000, page_token: token_.clone(), ..Default::default() },
                &bot,
            ))
            .await
            .unwrap()
            .into_inner();
        stored.extend(page.leads.into_iter().map(|l| l.lead_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged leads lost: {lost:?}");
    let svc_token = token("acme", "metrics", &[Role::Service]);
    let mut stream = c
        .stream_events(authed(pb::StreamEventsRequest { after_sequence: 0, follow: true }, &svc_token))
        .await
        .unwrap()
        .into_inner();
    let mut created = HashSet::new();
    while created.len() < stored.len() {
        let e = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("{} of {} leads have their event", created.len(), stored.len()))
            .unwrap()
            .unwrap();
        if let Some(pb::event::Payload::LeadCreated(lc)) = e.event.unwrap().payload {
            created.insert(lc.lead.unwrap().lead_id);
        }
    }
    assert_eq!(created, stored, "a lead without its event, or an event without its lead");
}
