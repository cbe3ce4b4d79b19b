#![allow(clippy::unwrap_used)]
//! The real `qualifyctl` binary against the three services spawned in this
//! test process (in-memory SQLite, loopback ports), signing its development
//! tokens with the test cluster's secret.

use std::path::PathBuf;
use std::process::Output;

use qualify_acceptance::Acceptance;
use qualify_metrics::Metrics;
use qualify_proto::common::{BuyingRole, Segment};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_scoring::Scoring;
use qualify_testkit::{Backend, Role, Running, TEST_SECRET, authed, config, spawn, token};
use serde_json::Value;

struct Cluster {
    scoring: Running,
    acceptance: Running,
    metrics: Running,
}

async fn cluster() -> Cluster {
    let scoring = spawn::<Scoring>(config("scoring", Backend::Sqlite).await).await;
    let mut a = config("acceptance", Backend::Sqlite).await;
    a.scoring_url = Some(scoring.url());
    let acceptance = spawn::<Acceptance>(a).await;
    let mut m = config("metrics", Backend::Sqlite).await;
    m.scoring_url = Some(scoring.url());
    m.acceptance_url = Some(acceptance.url());
    let metrics = spawn::<Metrics>(m).await;
    Cluster { scoring, acceptance, metrics }
}

impl Cluster {
    /// Runs `qualifyctl args...` against this cluster, with no token in the
    /// environment: the binary mints its own, signed with the test secret.
    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_qualifyctl"))
            .args(args)
            .env("QUALIFYCTL_SCORING_URL", self.scoring.url())
            .env("QUALIFYCTL_ACCEPTANCE_URL", self.acceptance.url())
            .env("QUALIFYCTL_METRICS_URL", self.metrics.url())
            .env("QUALIFY_JWT_SECRET", TEST_SECRET)
            .env_remove("QUALIFY_TOKEN")
            .kill_on_drop(true)
            .output()
            .await
            .expect("qualifyctl runs");
        eprintln!(
            "$ qualifyctl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "qualifyctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.run_ok(&all).await).expect("JSON on stdout")
    }
}

/// A proto-JSON int64 (a string, or absent when zero).
fn int(v: &Value, key: &str) -> i64 {
    match &v[key] {
        Value::Null => 0,
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_i64().unwrap(),
        other => panic!("{key} is {other}"),
    }
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_figures_match_what_it_reports_and_the_funnel_adds_up() {
    let c = cluster().await;
    let demo = c.json(&["demo", "--leads", "60", "--seed", "7"]).await;
    assert_eq!(demo["leads"], 60);
    assert_eq!(demo["metricsCaughtUp"], true, "the demo waited for metrics: {demo}");
    let n = |k: &str| demo[k].as_i64().unwrap();
    assert!(n("submitted") > 0 && n("accepted") > 0, "a 60-lead demo makes some opportunities: {demo}");
    assert_eq!(n("submitted"), n("accepted") + n("rejected") + n("sentBack"), "every submission was decided");
    let reasons: i64 = demo["rejectedByReason"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(reasons, n("rejected"));

    let funnel = c.json(&["funnel"]).await;
    let rows = funnel["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one row without --by: {funnel}");
    let f = &rows[0]["figures"];
    assert_eq!(int(f, "leads"), 60);
    assert_eq!(int(f, "sqls"), n("sqls"));
    assert_eq!(int(f, "sqosSubmitted"), n("submitted"));
    assert_eq!(int(f, "sqosAccepted"), n("accepted"));
    assert_eq!(int(f, "sqosRejected"), n("rejected"));
    assert_eq!(int(f, "overrides"), n("overrides"));
    assert_eq!(int(f, "won"), n("won"));
    assert_eq!(int(f, "lost"), n("lost"));
    assert_eq!(int(f, "pipelineGeneratedMinor"), n("pipelineMinor"));
    assert_eq!(int(f, "wonAmountMinor"), n("wonMinor"));
    // Internally consistent: each stage is a subset of the one before.
    assert!(int(f, "mqls") <= int(f, "leads"));
    assert!(int(f, "sqls") <= int(f, "leads"));
    assert!(int(f, "sqosSubmitted") <= int(f, "sqls"));
    assert!(int(f, "sqosAccepted") + int(f, "sqosRejected") <= int(f, "sqosSubmitted"));
    assert!(int(f, "won") + int(f, "lost") <= int(f, "sqosAccepted"));
    if let Some(rate) = f["winRate"].as_f64() {
        let (won, lost) = (int(f, "won") as f64, int(f, "lost") as f64);
        assert!((rate - won / (won + lost)).abs() < 1e-9, "win rate {rate} vs {won} won, {lost} lost");
    }
    let reasons: i64 = f["rejectionReasons"].as_object().map_or(0, |m| {
        m.values().map(|v| v.as_str().map_or_else(|| v.as_i64().unwrap(), |s| s.parse().unwrap())).sum()
    });
    assert_eq!(reasons, n("rejected"), "rejections by reason add up");

    // The two months before came in as history through the import path: the funnel by month
    // shows three periods, each of the past ones with its own leads.
    assert_eq!((demo["history"]["months"].as_i64(), demo["history"]["leads"].as_i64()), (Some(2), Some(60)), "{demo}");
    assert!(demo["history"]["opportunities"].as_i64().unwrap() > 0, "{demo}");
    let from = {
        use chrono::Datelike;
        let now = qualify_platform::Clock::system().now();
        let months = now.year() * 12 + now.month() as i32 - 1 - 2;
        format!("{:04}-{:02}", months.div_euclid(12), months.rem_euclid(12) + 1)
    };
    let by_month = c.json(&["funnel", "--from", &from, "--by", "period"]).await;
    let months: Vec<(String, i64)> = by_month["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"]["period"].as_str().unwrap().to_string(), int(&r["figures"], "leads")))
        .collect();
    assert_eq!(months.len(), 3, "{by_month}");
    assert_eq!(months.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [30, 30, 60], "{months:?}");

    // Grouped by source, the rows add up to the whole.
    let by_source = c.json(&["funnel", "--by", "source"]).await;
    let rows = by_source["rows"].as_array().unwrap();
    assert!(rows.len() >= 3, "leads come from several sources: {by_source}");
    for key in ["leads", "sqls", "sqosAccepted", "won", "pipelineGeneratedMinor"] {
        let sum: i64 = rows.iter().map(|r| int(&r["figures"], key)).sum();
        assert_eq!(sum, int(f, key), "{key} by source adds up");
    }
    // The table shows a bar per row.
    let table = c.run_ok(&["funnel", "--by", "source"]).await;
    assert!(table.contains("inbound") && table.contains('█'), "{table}");

    // The same seed plans the same funnel (in another tenant).
    let again = c.json(&["demo", "--leads", "60", "--seed", "7", "--tenant", "demo-again"]).await;
    for key in ["accounts", "contacts", "leads", "sals", "sqls", "submitted", "accepted", "rejected", "won", "lost"] {
        assert_eq!(again[key], demo[key], "{key} for the same seed");
    }
    assert_eq!(again["signals"], demo["signals"]);
    // And a second run of a seed on the same tenant is refused before writing anything.
    let out = c.run(&["demo", "--leads", "60", "--seed", "7"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds the demo of seed 7"));
    let f2 = c.json(&["funnel"]).await;
    assert_eq!(int(&f2["rows"][0]["figures"], "leads"), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_example_scorecard_explains_a_score_rule_by_rule() {
    let c = cluster().await;
    let published = c.run_ok(&["scorecard", "publish", "--file", example("scorecard.yaml").to_str().unwrap()]).await;
    assert!(published.contains("published scorecard smb v1"), "{published}");

    // The CRM side: an account and its economic buyer (not something qualifyctl does).
    let crm = token("demo", "crm-sync", &[Role::Service]);
    let mut s = LeadScoringServiceClient::new(c.scoring.channel().await);
    let account = sc::Account {
        account_id: "acme".into(),
        display_name: "Acme Payments".into(),
        industry: "fintech".into(),
        employee_count: 120,
        region: "emea".into(),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), request_id: "a".into() }, &crm))
        .await
        .unwrap();
    let contact = sc::Contact {
        contact_id: "acme-eb".into(),
        account_id: "acme".into(),
        full_name: "Dana Whitfield".into(),
        title: "VP Finance".into(),
        seniority: "vp".into(),
        buying_role: BuyingRole::EconomicBuyer as i32,
        ..Default::default()
    };
    s.create_contact(authed(sc::CreateContactRequest { contact: Some(contact), request_id: "c".into() }, &crm))
        .await
        .unwrap();

    let args = ["lead", "upsert", "--id", "lead-1", "--account", "acme", "--source", "inbound", "--contact", "acme-eb"];
    let created = c.run_ok(&args).await;
    assert!(created.contains("lead lead-1 created"), "{created}");
    let again = c.run_ok(&args).await;
    assert!(again.contains("unchanged"), "an identical upsert is a no-op: {again}");

    let dir = std::env::temp_dir().join(format!("qualifyctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signals = dir.join("signals.jsonl");
    let now = qualify_platform::Clock::system().now();
    let at = |days: i64| (now - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        &signals,
        format!(
            "{{\"signalId\": \"s1\", \"leadId\": \"lead-1\", \"type\": \"SIGNAL_TYPE_DEMO_REQUEST\", \"occurTime\": \"{}\"}}\n\
             {{\"signal_id\": \"s2\", \"lead_id\": \"lead-1\", \"type\": \"SIGNAL_TYPE_PRICING_PAGE_VISIT\", \"occur_time\": \"{}\"}}\n\
             \n\
             {{\"signal_id\": \"s3\", \"lead_id\": \"lead-1\", \"type\": \"SIGNAL_TYPE_WEBINAR_ATTENDED\", \"occur_time\": \"{}\"}}\n\
             {{\"signal_id\": \"s4\", \"lead_id\": \"no-such-lead\", \"type\": \"SIGNAL_TYPE_DEMO_REQUEST\", \"occur_time\": \"{}\"}}\n",
            at(0),
            at(2),
            at(10),
            at(1)
        ),
    )
    .unwrap();
    let ingested = c.json(&["ingest", "signals", "--file", signals.to_str().unwrap()]).await;
    assert_eq!((ingested["accepted"].as_i64(), ingested["rejected"].as_i64()), (Some(3), Some(1)), "{ingested}");
    let replay = c.json(&["ingest", "signals", "--file", signals.to_str().unwrap()]).await;
    assert_eq!(replay["duplicate"], 3, "a replayed file is counted once: {replay}");

    let resp = c.json(&["lead", "score", "--id", "lead-1"]).await;
    let score = &resp["score"];
    let total = score["total"].as_i64().unwrap();
    let contributions = score["contributions"].as_array().unwrap();
    let sum: i64 = contributions.iter().map(|r| r["points"].as_i64().unwrap_or(0)).sum();
    assert_eq!(sum, total, "the contributions add up to the total: {resp}");
    assert_eq!(score["fit"].as_i64().unwrap_or(0) + score["engagement"].as_i64().unwrap_or(0), total);
    assert_eq!(int(score, "scorecardVersion"), 1);
    // fintech 20 + 120 employees 15 + a vp 10 + the economic buyer 10 + emea 5.
    assert_eq!(score["fit"], 60, "{resp}");
    let rule = |id: &str| contributions.iter().find(|r| r["ruleId"] == id).cloned().unwrap_or(Value::Null);
    assert_eq!(rule("eng-demo")["points"], 25);
    assert!(total >= 50 && score["recommendedStage"] == "LEAD_STAGE_MQL", "{resp}");

    let table = c.run_ok(&["lead", "score", "--id", "lead-1"]).await;
    assert!(table.contains(&format!("total {total}")) && table.contains("fit-industry"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scorecard_files_fail_naming_the_field_and_publish_nothing() {
    let c = cluster().await;
    let dir = std::env::temp_dir().join(format!("qualifyctl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(example("scorecard.yaml")).unwrap();

    // Caught while decoding the file: an unknown enum value and an unknown field.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        good.replace("ATTRIBUTE_REGION", "ATTRIBUTE_REGON").replace("mql_threshold: 50", "mql_treshold: 50"),
    )
    .unwrap();
    let out = c.run(&["scorecard", "publish", "--file", bad.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("fit_rules[4].attribute") && err.contains("ATTRIBUTE_REGON"), "{err}");
    assert!(err.contains("mql_treshold: unknown field"), "{err}");

    // JSON with a wrong type.
    let bad_json = dir.join("bad.json");
    std::fs::write(&bad_json, r#"{"segment": "SEGMENT_SMB", "fitRules": [{"id": "x", "points": "many"}]}"#).unwrap();
    let out = c.run(&["scorecard", "publish", "--file", bad_json.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fitRules[0].points: expected an integer"));

    // Caught by the service: the google.rpc.BadRequest field violations are printed.
    let invalid = dir.join("invalid.yaml");
    std::fs::write(&invalid, good.replace("mql_threshold: 50", "mql_threshold: -5")).unwrap();
    let out = c.run(&["scorecard", "publish", "--file", invalid.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("field scorecard.mql_threshold: must be positive"),
        "{err}"
    );

    // Nothing was published.
    let revops = token("demo", "rita", &[Role::Revops]);
    let mut s = LeadScoringServiceClient::new(c.scoring.channel().await);
    let got =
        s.get_scorecard(authed(sc::GetScorecardRequest { segment: Segment::Smb as i32, version: 0 }, &revops)).await;
    assert_eq!(got.unwrap_err().code(), tonic::Code::NotFound);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_candidate_is_evaluated_check_by_check() {
    let c = cluster().await;
    let file = example("candidate.yaml");
    let resp = c.json(&["opp", "evaluate", "--file", file.to_str().unwrap()]).await;
    assert_eq!(resp["passed"], Value::Null, "the partial timeline fails the gate (false is omitted): {resp}");
    let checks = resp["checks"].as_array().unwrap();
    let failed: Vec<_> = checks.iter().filter(|ch| ch["passed"] != true).map(|ch| ch["code"].clone()).collect();
    assert!(failed.contains(&Value::from("GATE_CHECK_CODE_CRITERION_NOT_CONFIRMED")), "{resp}");
    assert!(checks.iter().any(|ch| ch["passed"] == true), "{resp}");
    let table = c.run_ok(&["opp", "evaluate", "--file", file.to_str().unwrap()]).await;
    assert!(table.contains("gate FAILED") && table.contains("check") && table.contains("reason"), "{table}");
    assert!(table.contains("criterion-not-confirmed (timeline)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_history_file_is_imported_once_with_failures_by_line_and_resumes() {
    let c = cluster().await;
    let file = example("history.jsonl");
    let file = file.to_str().unwrap();
    let resp = c.json(&["import", "--file", file]).await;
    assert_eq!((resp["imported"].as_i64(), resp["unchanged"].as_i64()), (Some(7), Some(0)), "{resp}");
    // The leads keep the CRM's times and stand where their history ended.
    let sdr = token("demo", "sam", &[Role::Sdr]);
    let mut s = LeadScoringServiceClient::new(c.scoring.channel().await);
    let lead = s.get_lead(authed(sc::GetLeadRequest { lead_id: "sf-00Q001".into() }, &sdr)).await.unwrap();
    let lead = lead.into_inner().lead.unwrap();
    assert!(lead.imported);
    assert_eq!(lead.stage, qualify_proto::common::LeadStage::Sql as i32);
    assert_eq!(lead.create_time.unwrap().seconds, 1_783_069_200, "2026-07-03T09:00:00Z");
    // Running the file again changes nothing.
    let again = c.json(&["import", "--file", file]).await;
    assert_eq!((again["imported"].as_i64(), again["unchanged"].as_i64()), (Some(0), Some(7)), "{again}");
    // The deal came with its past: accepted, worked and won in the CRM's times.
    let sales = token("demo", "alex", &[Role::Ae]);
    let mut a =
        qualify_proto::acceptance::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient::new(
            c.acceptance.channel().await,
        );
    let got = a.get_opportunity(authed(
        qualify_proto::acceptance::GetOpportunityRequest { opportunity_id: "sf-006001".into() },
        &sales,
    ));
    let o = got.await.unwrap().into_inner().opportunity.unwrap();
    assert!(o.imported);
    assert_eq!(o.state, qualify_proto::acceptance::OpportunityState::ClosedWon as i32);
    assert_eq!(o.closed_amount.unwrap().amount_minor, 5_200_000);

    // A bad line and a lead naming an unknown account fail by line; the rest is imported.
    let dir = std::env::temp_dir().join(format!("qualifyctl-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        [
            r#"{"lead": {"lead": {"leadId": "x-1", "accountId": "northwind", "source": "LEAD_SOURCE_REFERRAL"}, "createTime": "2026-10-01T00:00:00Z"}}"#,
            r#"{"contact": {}}"#,
            r#"{"lead": {"lead": {"leadId": "x-2", "accountId": "nowhere", "source": "LEAD_SOURCE_REFERRAL"}, "createTime": "2026-10-01T00:00:00Z"}}"#,
            r#"{"lead": {"lead": {"leadId": "x-3", "accountId": "contoso", "source": "LEAD_SOURCE_REFERRAL"}, "createTime": "2026-10-02T00:00:00Z"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = c.run(&["import", "--file", bad.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 imported, 0 unchanged, 2 failed"), "{text}");
    assert!(text.contains("bad.jsonl:2: a record has exactly one key"), "{text}");
    assert!(text.contains("bad.jsonl:3: lead x-2: lead.account_id: no such account"), "{text}");
    // Resuming after line 3 sends only line 4 (already imported: unchanged).
    let resumed = c.json(&["import", "--file", bad.to_str().unwrap(), "--resume-after-line", "3"]).await;
    assert_eq!((resumed["imported"].as_i64(), resumed["unchanged"].as_i64()), (Some(0), Some(1)), "{resumed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_and_hubspot_exports_are_imported_through_a_mapping() {
    let c = cluster().await;
    let hubspot = example("hubspot-contacts.csv");
    let hubspot = hubspot.to_str().unwrap();
    // "Podcast" is no standard HubSpot source: that row fails by line until the mapping names it.
    let out = c.run(&["import", "--format", "hubspot-contacts", "--file", hubspot]).await;
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 imported, 0 unchanged, 1 failed"), "{text}");
    assert!(text.contains("hubspot-contacts.csv:4: source \"Podcast\" is not mapped"), "{text}");
    let mapping = example("crm-mapping.yaml");
    let args = ["import", "--format", "hubspot-contacts", "--file", hubspot, "--mapping", mapping.to_str().unwrap()];
    let resp = c.json(&args).await;
    assert_eq!((resp["imported"].as_i64(), resp["unchanged"].as_i64()), (Some(1), Some(4)), "{resp}");

    // The lifecycle dates became the lead's history, in the CRM's times.
    let sdr = token("demo", "sam", &[Role::Sdr]);
    let s = LeadScoringServiceClient::new(c.scoring.channel().await);
    let history = |id: &str| {
        let (mut s, t, id) = (s.clone(), sdr.clone(), id.to_string());
        async move {
            let req = sc::ListLeadStageChangesRequest { lead_id: id, ..Default::default() };
            let changes = s.list_lead_stage_changes(authed(req, &t)).await.unwrap().into_inner().stage_changes;
            changes.into_iter().map(|c| (c.to_stage, c.change_time.unwrap().seconds)).collect::<Vec<_>>()
        }
    };
    use qualify_proto::common::LeadStage;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    assert_eq!(
        history("hs-51001").await,
        [(LeadStage::Mql as i32, at("2026-07-05T10:00:00Z")), (LeadStage::Sql as i32, at("2026-08-02T15:30:00Z"))]
    );
    let lead = s.clone().get_lead(authed(sc::GetLeadRequest { lead_id: "hs-51003".into() }, &sdr)).await.unwrap();
    let lead = lead.into_inner().lead.unwrap();
    assert_eq!(
        (lead.source, lead.account_id.as_str()),
        (qualify_proto::common::LeadSource::Event as i32, "acct-contoso")
    );

    // A Salesforce export: the status's stage, at conversion (or the last change).
    let sf = example("salesforce-leads.csv");
    let resp = c.json(&["import", "--format", "salesforce-leads", "--file", sf.to_str().unwrap()]).await;
    assert_eq!(
        (resp["imported"].as_i64(), resp["unchanged"].as_i64()),
        (Some(3), Some(0)),
        "an account and two leads: {resp}"
    );
    assert_eq!(history("sf-00Q5e00000AbCd1").await, [(LeadStage::Sal as i32, at("2026-06-03T11:00:00Z"))]);
    assert_eq!(history("sf-00Q5e00000AbCd2").await, [(LeadStage::Sql as i32, at("2026-07-01T00:00:00Z"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_comes_from_a_file_or_a_credential_helper_instead_of_being_minted() {
    let c = cluster().await;
    let dir = std::env::temp_dir().join(format!("qualifyctl-login-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // A tenant's RevOps token in a file: used instead of the operator token qualifyctl would mint.
    let file = dir.join("token");
    std::fs::write(&file, format!("{}\n", token("acme", "rita", &[Role::Revops]))).unwrap();
    let out = c.run(&["--token-file", file.to_str().unwrap(), "rebuild"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"), "the file's token was presented");
    // A helper printing an ExecCredential with an operator's token, as kubectl's exec plugins do.
    let cred = serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
        "status": {"token": token("qualify-system", "grace", &[Role::Revops])}});
    let helper = dir.join("helper.json");
    std::fs::write(&helper, cred.to_string()).unwrap();
    c.run_ok(&["--token-exec", &format!("cat {}", helper.display()), "rebuild"]).await;
    // A helper that fails stops the command, naming the option; nothing is minted in its place.
    let out = c.run(&["--token-exec", "echo 'not signed in' >&2; exit 7", "rebuild"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-exec") && err.contains("not signed in"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The acceptance service as an AE reads it.
async fn acceptance(
    c: &Cluster,
) -> qualify_proto::acceptance::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient<
    tonic::transport::Channel,
> {
    qualify_proto::acceptance::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient::new(
        c.acceptance.channel().await,
    )
}

/// The opportunity `id`, or the code it was refused with.
async fn opportunity(c: &Cluster, id: &str) -> Result<qualify_proto::acceptance::Opportunity, tonic::Code> {
    let ae = token("demo", "alex", &[Role::Ae]);
    let req = qualify_proto::acceptance::GetOpportunityRequest { opportunity_id: id.into() };
    match acceptance(c).await.get_opportunity(authed(req, &ae)).await {
        Ok(r) => Ok(r.into_inner().opportunity.unwrap()),
        Err(s) => Err(s.code()),
    }
}

/// The decisions on `id`, oldest first.
async fn decisions(c: &Cluster, id: &str) -> Vec<qualify_proto::acceptance::Decision> {
    let ae = token("demo", "alex", &[Role::Ae]);
    let req = qualify_proto::acceptance::ListDecisionsRequest { opportunity_id: id.into() };
    acceptance(c).await.list_decisions(authed(req, &ae)).await.unwrap().into_inner().decisions
}

/// Seconds of an RFC 3339 time, as a proto timestamp holds them.
fn secs(s: &str) -> Option<i64> {
    Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp())
}

/// An import that fails some lines: its JSON tally and its failures as `file:line`.
async fn import_with_failures(c: &Cluster, args: &[&str]) -> (Value, Vec<String>) {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = c.run(&all).await;
    assert!(!out.status.success(), "a failed line makes the import fail");
    let tally: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let failed = tally["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}:{}", f["file"].as_str().unwrap(), f["line"]))
        .collect();
    (tally, failed)
}

fn counts(tally: &Value) -> (Option<i64>, Option<i64>, usize) {
    (tally["imported"].as_i64(), tally["unchanged"].as_i64(), tally["failed"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_deal_export_becomes_opportunities_with_their_decisions_closes_and_failures_by_file() {
    use qualify_proto::acceptance::{DecisionKind, OpportunityState, RejectionReason};
    let c = cluster().await;
    let path = |f: &str| example(&format!("salesforce/{f}")).to_str().unwrap().to_string();
    let (lead, opp, hist, task, event) = (
        path("Lead.csv"),
        path("Opportunity.csv"),
        path("OpportunityHistory.csv"),
        path("Task.csv"),
        path("Event.csv"),
    );
    let args = [
        "import",
        "--format",
        "salesforce",
        "--file",
        &lead,
        "--opportunities",
        &opp,
        "--opportunity-history",
        &hist,
        "--activities",
        &task,
        "--activities",
        &event,
    ];

    // Six accounts, six leads and four of the six deals: Vandelay's "Discovery" stage is no
    // standard stage (its Opportunity row and its history row fail), and no lead was
    // converted into the Stark deal.
    let out = c.run(&args).await;
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("16 imported, 0 unchanged, 3 failed"), "{text}");
    assert!(text.contains(&format!("{opp}:6: opportunity stage \"Discovery\" is not mapped")), "{text}");
    assert!(
        text.contains(&format!(
            "{hist}:12: opportunity stage \"Discovery\" is not mapped: add it under opportunity_stages: in --mapping \
             (deal sf-0065e00000OpA05 held back)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{opp}:7: no lead in Lead.csv was converted into opportunity 0065e00000OpA06")),
        "{text}"
    );

    // Accepted at the first change into an accepted stage, worked, won at its close date.
    let o = opportunity(&c, "sf-0065e00000OpA01").await.unwrap();
    assert!(o.imported);
    assert_eq!((o.state, o.lead_id.as_str()), (OpportunityState::ClosedWon as i32, "sf-00Q5e00000LdA01"));
    assert_eq!(o.create_time.map(|t| t.seconds), secs("2026-08-03T09:30:00Z"));
    assert_eq!(o.submitted_by, "0055e000001SdrA");
    assert_eq!(o.accepted_by, "0055e000001AeA1");
    assert_eq!(o.accept_time.map(|t| t.seconds), secs("2026-08-05T14:00:00Z"));
    assert_eq!(o.close_time.map(|t| t.seconds), secs("2026-09-28T00:00:00Z"));
    let won = o.closed_amount.unwrap();
    assert_eq!((won.amount_minor, won.currency_code.as_str()), (4_800_000, "USD"));
    // The call on 7 August is the first conversation after acceptance (the email before it is
    // none; the planned call of 2099 and the to-do were left out).
    assert_eq!(o.first_meaningful_activity_time.map(|t| t.seconds), secs("2026-08-07T00:00:00Z"));

    // Accepted, then lost with its reason; the amount in its own currency.
    let o = opportunity(&c, "sf-0065e00000OpA02").await.unwrap();
    assert_eq!(o.state, OpportunityState::ClosedLost as i32);
    assert_eq!(
        (o.accepted_by.as_str(), o.accept_time.map(|t| t.seconds)),
        ("0055e000001AeA2", secs("2026-08-12T16:00:00Z"))
    );
    assert_eq!(o.close_reason, "Lost to Competitor");
    assert_eq!(o.close_time.map(|t| t.seconds), secs("2026-10-15T00:00:00Z"));
    let amount = o.amount.unwrap();
    assert_eq!((amount.amount_minor, amount.currency_code.as_str()), (12_000_000, "EUR"));
    assert_eq!(o.first_meaningful_activity_time.map(|t| t.seconds), secs("2026-08-14T00:00:00Z"));

    // Lost straight from Prospecting: the gate rejected it, with the mapped loss reason.
    let o = opportunity(&c, "sf-0065e00000OpA03").await.unwrap();
    assert_eq!(o.state, OpportunityState::Rejected as i32);
    let d = decisions(&c, "sf-0065e00000OpA03").await;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].kind, d[0].reason), (DecisionKind::Reject as i32, RejectionReason::NoBudget as i32));
    assert_eq!(d[0].decide_time.map(|t| t.seconds), secs("2026-09-03T09:15:00Z"));
    assert_eq!(d[0].note, "No Budget");

    // Still in Qualification: awaiting an AE.
    let o = opportunity(&c, "sf-0065e00000OpA04").await.unwrap();
    assert_eq!((o.state, o.accept_time), (OpportunityState::PendingReview as i32, None));
    assert!(decisions(&c, "sf-0065e00000OpA04").await.is_empty());
    for missing in ["sf-0065e00000OpA05", "sf-0065e00000OpA06"] {
        assert_eq!(opportunity(&c, missing).await.unwrap_err(), tonic::Code::NotFound, "{missing}");
    }

    // With the mapping, "Discovery" is an accepted stage: only that deal comes in.
    let mapping = example("crm-mapping.yaml");
    let mut mapped = args.to_vec();
    mapped.extend(["--mapping", mapping.to_str().unwrap()]);
    let (tally, failed) = import_with_failures(&c, &mapped).await;
    assert_eq!(counts(&tally), (Some(1), Some(16), 1), "{tally}");
    assert_eq!(failed, [format!("{opp}:7")]);
    let o = opportunity(&c, "sf-0065e00000OpA05").await.unwrap();
    assert_eq!(o.state, OpportunityState::Accepted as i32);
    assert_eq!(
        (o.accepted_by.as_str(), o.accept_time.map(|t| t.seconds)),
        ("0055e000001AeA2", secs("2026-10-03T15:00:00Z"))
    );

    // Running the files again changes nothing.
    let (tally, _) = import_with_failures(&c, &mapped).await;
    assert_eq!(counts(&tally), (Some(0), Some(17), 1), "{tally}");
    // Resuming after Lead.csv's last line skips its accounts and leads; the deal files are
    // read whole, and their opportunities come back unchanged.
    mapped.extend(["--resume-after-line", "7"]);
    let (tally, failed) = import_with_failures(&c, &mapped).await;
    assert_eq!(counts(&tally), (Some(0), Some(5), 1), "{tally}");
    assert_eq!(failed, [format!("{opp}:7")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_deal_export_reads_its_stage_history_from_the_date_entered_columns() {
    use qualify_proto::acceptance::{DecisionKind, OpportunityState, RejectionReason};
    let c = cluster().await;
    let path = |f: &str| example(&format!("hubspot/{f}")).to_str().unwrap().to_string();
    let (contacts, deals, activities) = (path("contacts.csv"), path("deals.csv"), path("activities.csv"));
    let args = ["import", "--format", "hubspot", "--file", &contacts, "--deals", &deals, "--activities", &activities];
    // Four accounts, four leads, four deals; the fifth deal's contact is not in the export.
    let (tally, failed) = import_with_failures(&c, &args).await;
    assert_eq!(counts(&tally), (Some(12), Some(0), 1), "{tally}");
    assert_eq!(failed, [format!("{deals}:6")]);
    let why = tally["failed"][0]["error"].as_str().unwrap();
    assert!(why.contains("none of its associated contacts (\"70001\") is in contacts.csv"), "{why}");

    // Won straight from Appointment Scheduled: accepted when it entered Closed Won.
    let o = opportunity(&c, "hs-deal-91001").await.unwrap();
    assert_eq!((o.state, o.lead_id.as_str()), (OpportunityState::ClosedWon as i32, "hs-61001"));
    assert_eq!((o.accepted_by.as_str(), o.accept_time.map(|t| t.seconds)), ("Alex Kim", secs("2026-10-02T17:00:00Z")));
    assert_eq!(o.close_time.map(|t| t.seconds), secs("2026-10-02T17:00:00Z"), "not before the acceptance");
    assert_eq!(o.closed_amount.unwrap().amount_minor, 3_600_000);

    // Lost before the gate accepted it: rejected, "Not a fit" read as not ICP. Its lead is the
    // first associated contact in the export.
    let o = opportunity(&c, "hs-deal-91002").await.unwrap();
    assert_eq!((o.state, o.lead_id.as_str()), (OpportunityState::Rejected as i32, "hs-61002"));
    let d = decisions(&c, "hs-deal-91002").await;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].kind, d[0].reason), (DecisionKind::Reject as i32, RejectionReason::NotIcp as i32));
    assert_eq!(d[0].decide_time.map(|t| t.seconds), secs("2026-08-29T11:00:00Z"));

    // Accepted on entering Qualified To Buy and still open; the call is its first conversation
    // (the email is none, the note is no activity).
    let o = opportunity(&c, "hs-deal-91003").await.unwrap();
    assert_eq!(o.state, OpportunityState::Accepted as i32);
    assert_eq!(
        (o.accepted_by.as_str(), o.accept_time.map(|t| t.seconds)),
        ("Jordan Lee", secs("2026-09-14T15:00:00Z"))
    );
    assert_eq!(o.first_meaningful_activity_time.map(|t| t.seconds), secs("2026-09-15T10:00:00Z"));

    let o = opportunity(&c, "hs-deal-91004").await.unwrap();
    assert_eq!(o.state, OpportunityState::PendingReview as i32);
    assert_eq!(opportunity(&c, "hs-deal-91005").await.unwrap_err(), tonic::Code::NotFound);

    // Running the files again changes nothing.
    let (tally, failed) = import_with_failures(&c, &args).await;
    assert_eq!(counts(&tally), (Some(0), Some(12), 1), "{tally}");
    assert_eq!(failed, [format!("{deals}:6")]);

    // Files that make no sense for the format are refused before anything is sent.
    let mut bad = args.to_vec();
    bad.extend(["--opportunity-history", &deals]);
    let out = c.run(&bad).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no --opportunity-history"));
    let out = c.run(&["import", "--file", &contacts, "--deals", &deals]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --format salesforce or hubspot"));
}
