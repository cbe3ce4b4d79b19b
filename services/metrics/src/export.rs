//! The funnel as Prometheus gauges, for the Grafana dashboard shipped with
//! the Helm chart: every `EXPORT_EVERY`, the current month's figures of each
//! tenant with activity this month, read from the roll-ups (a query per
//! tenant costs the groups it returns). Amounts are in major currency units.
//! Every replica exports the same values: the dashboard takes the max across
//! replicas.

use std::time::Duration;

use chrono::{DateTime, Utc};
use qualify_platform::{ApiError, Clock};
use sea_orm::DatabaseConnection;

use crate::funnel::{Dimension, Query, Row, funnel};
use crate::rollup::period;
use crate::store;

/// How often the gauges are refreshed.
pub const EXPORT_EVERY: Duration = Duration::from_secs(30);

/// Refreshes the gauges every `every` until the task is aborted.
pub fn spawn(db: DatabaseConnection, clock: Clock, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = export_once(&db, clock.now()).await {
                tracing::warn!(error = %e, "funnel gauges not refreshed");
            }
        }
    })
}

fn labels(row: &Row) -> (String, String) {
    let source = row.group.source.map_or("unknown", |s| s.as_str());
    let segment = row.group.segment.map_or("unknown", |s| s.as_str());
    (source.to_string(), segment.to_string())
}

/// Sets the gauges from the roll-ups of the month of `now`.
pub async fn export_once(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<(), ApiError> {
    let month = period(now);
    let tenants = store::rollup::tenants_in(db, &month).await?;
    let query = |tenant: &str, group_by| Query::grouped(tenant, &month, &month, group_by);
    for tenant in tenants {
        for row in funnel(db, &query(&tenant, vec![Dimension::Source, Dimension::Segment])).await? {
            let (source, segment) = labels(&row);
            let f = &row.figures;
            let l = [("tenant", tenant.clone()), ("source", source), ("segment", segment)];
            metrics::gauge!("qualify_pipeline_open_amount", &l).set(f.open_pipeline_minor as f64 / 100.0);
            metrics::gauge!("qualify_forecast_amount", &l).set(f.forecast_minor as f64 / 100.0);
        }
        for row in funnel(db, &query(&tenant, vec![Dimension::Source])).await? {
            let (source, _) = labels(&row);
            let f = &row.figures;
            for (from, to, ratio) in [
                ("mql", "sql", f.mql_to_sql),
                ("sql", "sqo", f.sql_to_sqo),
                ("sqo", "won", f.sqo_to_won),
                ("sql", "won", f.sql_to_won),
            ] {
                if let Some(r) = ratio {
                    let l = [
                        ("tenant", tenant.clone()),
                        ("source", source.clone()),
                        ("from", from.into()),
                        ("to", to.into()),
                    ];
                    metrics::gauge!("qualify_funnel_conversion_ratio", &l).set(r);
                }
            }
        }
        if let Some(row) = funnel(db, &query(&tenant, Vec::new())).await?.into_iter().next() {
            let f = &row.figures;
            for (quantile, days) in [("0.5", f.followthrough_median_days), ("0.9", f.followthrough_p90_days)] {
                if let Some(d) = days {
                    let l = [("tenant", tenant.clone()), ("quantile", quantile.to_string())];
                    metrics::gauge!("qualify_followthrough_days", &l).set(d);
                }
            }
            let l = [("tenant", tenant.clone())];
            metrics::gauge!("qualify_accepted_without_activity", &l).set(f.accepted_without_activity as f64);
        }
    }
    Ok(())
}
