//! The funnel benchmark: synthetic events for many leads and opportunities
//! folded by metrics' own ingestion code (events/s), then `GetFunnel` sliced
//! by source and month over gRPC against the equivalent GROUP BY over the
//! per-lead and per-opportunity rows, both on the same PostgreSQL in the same run.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prost_types::Timestamp;
use qualify_metrics::ingest::{self, Event, Upstream};
use qualify_proto::acceptance as acc;
use qualify_proto::common::{LeadSource, LeadStage, Money, Segment};
use qualify_proto::metrics::{self as pb, FunnelDimension, metrics_service_client::MetricsServiceClient};
use qualify_proto::scoring as sc;
use qualify_testkit::{Backend, Role, authed, config, spawn, token};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

const TENANT: &str = "bench";
const DAY: i64 = 86_400;

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// Deterministic spread of lead `i` over sources, segments, campaigns, reps and the last year.
struct Lead {
    id: String,
    source: LeadSource,
    segment: Segment,
    created: i64,
}

fn lead(i: usize, now: i64) -> Lead {
    const SOURCES: [LeadSource; 6] = [
        LeadSource::Inbound,
        LeadSource::Outbound,
        LeadSource::Plg,
        LeadSource::Event,
        LeadSource::Referral,
        LeadSource::Partner,
    ];
    const SEGMENTS: [Segment; 3] = [Segment::Smb, Segment::MidMarket, Segment::Enterprise];
    Lead {
        id: format!("lead-{i}"),
        source: SOURCES[i % 6],
        segment: SEGMENTS[(i / 6) % 3],
        created: now - ((i * 7919) % 360) as i64 * DAY,
    }
}

/// Events of lead scoring: every lead created; 40 % reach MQL a day later, 15 % SQL three days later.
fn scoring_events(leads: usize, now: i64) -> impl Iterator<Item = Event> {
    let mut seq = 0i64;
    (0..leads).flat_map(move |i| {
        let l = lead(i, now);
        let mut out = Vec::with_capacity(3);
        let mut push = |payload, t: i64| {
            seq += 1;
            out.push(Event::from(sc::Event {
                // Ids as the services make them: UUIDv7, in time order.
                event_id: uuid::Uuid::now_v7().to_string(),
                sequence: seq,
                tenant: TENANT.into(),
                occur_time: at(t),
                payload: Some(payload),
            }));
        };
        let created = sc::LeadCreated {
            lead: Some(sc::Lead {
                lead_id: l.id.clone(),
                source: l.source as i32,
                campaign: format!("campaign-{}", i % 20),
                owner_sdr: format!("sdr-{}", i % 50),
                create_time: at(l.created),
                ..Default::default()
            }),
            segment: l.segment as i32,
        };
        push(sc::event::Payload::LeadCreated(created), l.created);
        let change = |to: LeadStage, t: i64| {
            sc::event::Payload::LeadStageChanged(sc::LeadStageChange {
                lead_id: l.id.clone(),
                to_stage: to as i32,
                change_time: at(t),
                ..Default::default()
            })
        };
        if i % 10 < 4 {
            push(change(LeadStage::Mql, l.created + DAY), l.created + DAY);
        }
        if i % 20 < 3 {
            push(change(LeadStage::Sql, l.created + 3 * DAY), l.created + 3 * DAY);
        }
        out
    })
}

/// Events of acceptance: `n` opportunities on SQL leads, 80 % accepted a day after submission, of
/// those half closed a month later (one in four won).
fn acceptance_events(n: usize, now: i64) -> impl Iterator<Item = Event> {
    let mut seq = 0i64;
    (0..n).flat_map(move |k| {
        // The k-th SQL lead (every 20 leads has 3 SQLs: offsets 0, 1, 2).
        let l = lead((k / 3) * 20 + k % 3, now);
        let submitted = l.created + 4 * DAY;
        let mut o = acc::Opportunity {
            opportunity_id: format!("opp-{k}"),
            lead_id: l.id.clone(),
            state: acc::OpportunityState::PendingReview as i32,
            amount: Some(Money { amount_minor: 1_000_000 + (k as i64 % 40) * 250_000, currency_code: "USD".into() }),
            segment: l.segment as i32,
            team: format!("team-{}", k % 8),
            submitted_by: format!("sdr-{}", k % 50),
            lead_snapshot: Some(acc::LeadSnapshot {
                source: l.source as i32,
                campaign: format!("campaign-{}", k % 20),
                ..Default::default()
            }),
            create_time: at(submitted),
            update_time: at(submitted),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(3);
        let mut push = |o: &acc::Opportunity, from: acc::OpportunityState, t: i64| {
            seq += 1;
            let change = acc::OpportunityChanged { opportunity: Some(o.clone()), from_state: from as i32 };
            out.push(Event::from(acc::Event {
                event_id: uuid::Uuid::now_v7().to_string(),
                sequence: seq,
                tenant: TENANT.into(),
                occur_time: at(t),
                payload: Some(acc::event::Payload::OpportunityChanged(change)),
            }));
        };
        push(&o, acc::OpportunityState::Unspecified, submitted);
        if k % 5 != 0 {
            o.state = acc::OpportunityState::Accepted as i32;
            o.accept_time = at(submitted + DAY);
            push(&o, acc::OpportunityState::PendingReview, submitted + DAY);
            if k % 2 == 0 {
                let won = k % 8 == 0;
                o.state = if won { acc::OpportunityState::ClosedWon } else { acc::OpportunityState::ClosedLost } as i32;
                o.close_time = at(submitted + 31 * DAY);
                push(&o, acc::OpportunityState::Accepted, submitted + 31 * DAY);
            }
        }
        out
    })
}

/// Applies `events` in batches of [`ingest::BATCH`]; returns (events, seconds). The events are
/// made on another thread while batches are applied, as a service decodes its upstream stream
/// while it applies what it has read.
async fn ingest_all(
    db: &sea_orm::DatabaseConnection,
    upstream: Upstream,
    events: impl Iterator<Item = Event> + Send + 'static,
) -> anyhow::Result<(usize, f64)> {
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(2);
    let maker = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(ingest::BATCH);
        for e in events {
            batch.push(e);
            if batch.len() == ingest::BATCH && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    let mut total = 0;
    while let Some(batch) = rx.recv().await {
        total += batch.len();
        ingest::apply_batch(db, upstream, &batch).await?;
    }
    maker.join().map_err(|_| anyhow::anyhow!("the event maker panicked"))?;
    Ok((total, start.elapsed().as_secs_f64()))
}

fn months(now: i64) -> (String, String) {
    let month = |t: i64| {
        let days = t.div_euclid(DAY);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}")
    };
    (month(now - 365 * DAY), month(now))
}

fn line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name:<34} p50 {:>8.3} ms   p99 {:>8.3} ms   mean {:>8.3} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.mean() / 1000.0
    )
}

/// Runs the benchmark with `leads` leads and `opportunities` opportunities.
pub async fn run(leads: usize, opportunities: usize, iterations: usize) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let cfg = config("metrics", Backend::Postgres).await;
    let db = qualify_platform::db::connect(&cfg).await?;
    let svc = spawn::<qualify_metrics::Metrics>(cfg).await;
    let mut client = None;
    for _ in 0..100 {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(svc.url())?.connect().await {
            client = Some(MetricsServiceClient::new(ch));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.ok_or_else(|| anyhow::anyhow!("metrics did not come up"))?;
    // Wait for the service's migrations before writing through its code.
    let t = token(TENANT, "mia", &[Role::Manager]);
    let (start, end) = months(now);
    let req = || pb::GetFunnelRequest {
        start_period: start.clone(),
        end_period: end.clone(),
        group_by: vec![FunnelDimension::Source as i32, FunnelDimension::Period as i32],
        ..Default::default()
    };
    for _ in 0..100 {
        if client.get_funnel(authed(req(), &t)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("loading {leads} leads and {opportunities} opportunities through metrics' ingestion ...");
    let (n1, s1) = ingest_all(&db, Upstream::Scoring, scoring_events(leads, now)).await?;
    let (n2, s2) = ingest_all(&db, Upstream::Acceptance, acceptance_events(opportunities, now)).await?;
    println!(
        "{:<34} {:>10.0} events/s   ({} events in {:.1} s, batches of {})",
        "ingestion (apply, PostgreSQL)",
        (n1 + n2) as f64 / (s1 + s2),
        n1 + n2,
        s1 + s2,
        ingest::BATCH
    );
    db.execute_unprepared("ANALYZE").await?;

    let mut rows = 0;
    let mut rpc = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for i in 0..iterations + 5 {
        let t0 = Instant::now();
        rows = client.get_funnel(authed(req(), &t)).await?.into_inner().rows.len();
        if i >= 5 {
            rpc.record(t0.elapsed().as_micros().max(1) as u64)?;
        }
    }
    // The same figures read from the per-lead and per-opportunity rows.
    let raw_sql = "SELECT source, period, figure, SUM(n)::bigint FROM ( \
          SELECT source, created_period AS period, 'leads' AS figure, count(*) AS n FROM lead_facts \
           WHERE tenant_id = $1 AND created_period BETWEEN $2 AND $3 GROUP BY 1, 2 \
          UNION ALL SELECT source, mql_period, 'mqls', count(*) FROM lead_facts \
           WHERE tenant_id = $1 AND mql_period BETWEEN $2 AND $3 GROUP BY 1, 2 \
          UNION ALL SELECT source, sql_period, 'sqls', count(*) FROM lead_facts \
           WHERE tenant_id = $1 AND sql_period BETWEEN $2 AND $3 GROUP BY 1, 2 \
          UNION ALL SELECT source, accept_period, 'accepted', count(*) FROM opportunity_facts \
           WHERE tenant_id = $1 AND accept_period BETWEEN $2 AND $3 GROUP BY 1, 2 \
          UNION ALL SELECT source, accept_period, 'pipeline', sum(amount_minor) FROM opportunity_facts \
           WHERE tenant_id = $1 AND accept_period BETWEEN $2 AND $3 GROUP BY 1, 2 \
          UNION ALL SELECT source, accept_period, 'open', sum(amount_minor) FROM opportunity_facts \
           WHERE tenant_id = $1 AND accept_period BETWEEN $2 AND $3 AND NOT closed GROUP BY 1, 2 \
        ) f GROUP BY 1, 2, 3";
    let mut raw = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let raw_iterations = (iterations / 10).max(5);
    for i in 0..raw_iterations + 1 {
        let t0 = Instant::now();
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            raw_sql,
            [TENANT.into(), start.clone().into(), end.clone().into()],
        );
        db.query_all_raw(stmt).await?;
        if i >= 1 {
            raw.record(t0.elapsed().as_micros().max(1) as u64)?;
        }
    }
    println!("{}   ({rows} rows, {iterations} calls)", line("GetFunnel by source x month (gRPC)", &rpc));
    println!("{}   ({raw_iterations} runs)", line("GROUP BY over the raw rows (SQL)", &raw));
    println!(
        "raw GROUP BY / GetFunnel: {:.0}x at p50, {:.0}x at p99",
        raw.value_at_quantile(0.5) as f64 / rpc.value_at_quantile(0.5).max(1) as f64,
        raw.value_at_quantile(0.99) as f64 / rpc.value_at_quantile(0.99).max(1) as f64
    );
    Ok(())
}
