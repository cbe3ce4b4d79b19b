//! Scorecards: publishing a version, and the cache every score reads them
//! through. Published versions are immutable, so their compiled
//! bodies are cached in process by version forever (filled from Redis, then
//! the database). Only the pointer to the active version must be fresh: it is
//! read from Redis (a GET shared by concurrent scores but never one that began
//! before the score did), written there on publish, and read from the database
//! when Redis does not answer. A pointer read from Redis is trusted for a lease
//! of [`LEASE`] from when its read began, and a publish returns only once a
//! lease has passed since its pointer reached Redis: every lease taken on the
//! superseded pointer has expired by then, so no replica scores with it after
//! the publish returns, and a busy replica reads Redis once per lease rather
//! than once per score. Without Redis (the embedded default, one process) the
//! pointer lives in process and publishing replaces it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qualify_domain::scoring::{CompiledScorecard, PublishedScorecard, Scorecard};
use qualify_domain::{Caller, Segment, permission};
use qualify_platform::ApiError;
use qualify_platform::cache::Redis;
use sea_orm::ConnectionTrait;

use crate::store::scorecards::{self as store, segment_key};

/// How long a version pointer lives in Redis; bounds staleness if a publish
/// could not reach Redis and the publisher died before its retry succeeded.
const POINTER_TTL: Duration = Duration::from_secs(30);
/// How long a replica trusts a pointer it read from Redis (from when the read began).
pub const LEASE: Duration = Duration::from_millis(50);
/// What a publish waits for, once its pointer is in Redis: a lease, and a margin.
const PUBLISH_SETTLE: Duration = Duration::from_millis(60);
/// How long an immutable body lives in Redis.
const BODY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A published version, ready to score with.
pub struct Card {
    /// The version as published.
    pub published: PublishedScorecard,
    /// Compiled rules.
    pub compiled: CompiledScorecard,
}

impl Card {
    /// Its version.
    pub fn version(&self) -> i64 {
        self.published.version
    }
}

/// FAILED_PRECONDITION: scoring needs a published scorecard.
pub fn no_scorecard() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "NO_SCORECARD",
        message: "no scorecard is published for this tenant; publish one first".into(),
        violations: vec![],
    }
}

/// Publishes `scorecard` for `segment` as the next version, in the caller's
/// transaction; `expected` (when not 0) must be the version in force, or the
/// publish is ABORTED. Only people in RevOps or sales management publish.
pub async fn publish(
    txn: &impl ConnectionTrait,
    caller: &Caller,
    segment: Option<Segment>,
    scorecard: Scorecard,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<PublishedScorecard, ApiError> {
    permission::administer(caller, "publish a scorecard")?;
    let seg = segment_key(segment);
    let current = store::active_version(txn, &caller.tenant, seg).await?.unwrap_or(0);
    if expected != 0 && expected != current {
        return Err(ApiError::Aborted(format!(
            "scorecard {seg} is at version {current}, not {expected}; read it again"
        )));
    }
    let published = PublishedScorecard {
        segment,
        version: current + 1,
        scorecard,
        published_by: caller.subject.clone(),
        published_at: now,
    };
    store::insert(txn, &caller.tenant, &published).await?;
    Ok(published)
}

/// Active-version pointers and compiled bodies. Database reads go through the
/// connection the caller passes, so they join its transaction (SQLite has a
/// single connection: a read beside an open transaction would wait for it).
#[derive(Clone)]
pub struct Cards {
    redis: Option<Redis>,
    bodies: moka::future::Cache<(String, &'static str, i64), Arc<Card>>,
    pointers: moka::future::Cache<(String, &'static str), i64>,
    /// Pointers read from Redis: (version, when the read began).
    leases: moka::sync::Cache<(String, &'static str), (i64, Instant)>,
}

fn pointer_key(tenant: &str, seg: &str) -> String {
    format!("qualify:scorecard:active:{tenant}:{seg}")
}

/// Bodies are JSON documents of the domain type (`store::scorecards::encode_published`);
/// "doc" in the key keeps them apart from the protobuf bodies older releases cached.
fn body_key(tenant: &str, seg: &str, version: i64) -> String {
    format!("qualify:scorecard:doc:{tenant}:{seg}:{version}")
}

impl Cards {
    /// A cache, using Redis when given.
    pub fn new(redis: Option<Redis>) -> Self {
        Cards {
            redis,
            bodies: moka::future::Cache::builder().max_capacity(10_000).build(),
            pointers: moka::future::Cache::builder().max_capacity(100_000).time_to_live(POINTER_TTL).build(),
            leases: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(LEASE).build(),
        }
    }

    /// The active version of a segment's scorecard, if any was published.
    pub async fn active_version(
        &self,
        db: &impl ConnectionTrait,
        tenant: &str,
        seg: &'static str,
    ) -> Result<Option<i64>, ApiError> {
        if let Some(redis) = &self.redis {
            let lease = (tenant.to_string(), seg);
            if let Some((v, since)) = self.leases.get(&lease)
                && since.elapsed() < LEASE
            {
                return Ok(Some(v));
            }
            let started = Instant::now(); // the shared GET this score waits for began after this
            let key = pointer_key(tenant, seg);
            match redis.get_fresh(&key).await {
                Ok(Some(raw)) => {
                    if let Some(v) = std::str::from_utf8(&raw).ok().and_then(|s| s.parse().ok()) {
                        self.leases.insert(lease, (v, started));
                        return Ok(Some(v));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "scorecard pointer from the database (cache unavailable)");
                    return store::active_version(db, tenant, seg).await;
                }
            }
            let v = store::active_version(db, tenant, seg).await?;
            if let Some(v) = v {
                let _ = redis.set_if_greater(&key, v, POINTER_TTL).await;
            }
            return Ok(v);
        }
        if let Some(v) = self.pointers.get(&(tenant.to_string(), seg)).await {
            return Ok(Some(v));
        }
        let v = store::active_version(db, tenant, seg).await?;
        if let Some(v) = v {
            self.pointers.insert((tenant.to_string(), seg), v).await;
        }
        Ok(v)
    }

    /// One published version, compiled.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        tenant: &str,
        seg: &'static str,
        version: i64,
    ) -> Result<Arc<Card>, ApiError> {
        let key = (tenant.to_string(), seg, version);
        let redis = self.redis.clone();
        let tenant = tenant.to_string();
        self.bodies
            .try_get_with(key, async move {
                let rkey = body_key(&tenant, seg, version);
                let cached = match &redis {
                    Some(r) => r.get(&rkey).await.ok().flatten(),
                    None => None,
                };
                let published = match cached.map(|b| store::decode_published(&b)) {
                    Some(Ok(p)) => p,
                    _ => {
                        let p = store::get(db, &tenant, seg, version).await?;
                        if let Some(r) = &redis {
                            let _ = r.set_ex(&rkey, &store::encode_published(&p), BODY_TTL).await;
                        }
                        p
                    }
                };
                let compiled = published.scorecard.compile();
                Ok::<_, ApiError>(Arc::new(Card { published, compiled }))
            })
            .await
            .map_err(|e: Arc<ApiError>| match &*e {
                ApiError::NotFound { kind, id } => ApiError::NotFound { kind, id: id.clone() },
                ApiError::Unavailable { dependency } => ApiError::Unavailable { dependency },
                other => ApiError::Internal(anyhow::anyhow!("loading scorecard: {other}")),
            })
    }

    /// The scorecard that applies to a lead of `segment`: the segment's own when
    /// one was published, else the tenant default; `version` 0 means the active one.
    pub async fn resolve(
        &self,
        db: &impl ConnectionTrait,
        tenant: &str,
        segment: Option<Segment>,
        version: i64,
    ) -> Result<Arc<Card>, ApiError> {
        let mut seg = segment_key(segment);
        let mut active = self.active_version(db, tenant, seg).await?;
        if active.is_none() && segment.is_some() {
            seg = segment_key(None);
            active = self.active_version(db, tenant, seg).await?;
        }
        let Some(active) = active else { return Err(no_scorecard()) };
        self.get(db, tenant, seg, if version > 0 { version } else { active }).await
    }

    /// Records a newly published version: the in-process pointer, and Redis
    /// (retried in the background while Redis does not answer).
    pub async fn published(&self, tenant: &str, p: &PublishedScorecard) {
        let (seg, version, body) = (segment_key(p.segment), p.version, store::encode_published(p));
        self.pointers.insert((tenant.to_string(), seg), version).await;
        let Some(redis) = self.redis.clone() else { return };
        let (pkey, bkey) = (pointer_key(tenant, seg), body_key(tenant, seg, version));
        let reached = redis.set_if_greater(&pkey, version, POINTER_TTL).await.is_ok();
        // Every lease on the superseded pointer (taken before this point) expires before the
        // publish returns, whether or not the new pointer reached Redis.
        let settled = Instant::now() + PUBLISH_SETTLE;
        self.leases.invalidate(&(tenant.to_string(), seg));
        if reached {
            let _ = redis.set_ex(&bkey, &body, BODY_TTL).await;
        } else {
            tracing::warn!(tenant, segment = seg, version, "published scorecard not yet in redis; retrying");
            tokio::spawn(async move {
                for _ in 0..600 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if redis.set_if_greater(&pkey, version, POINTER_TTL).await.is_ok() {
                        tracing::info!(segment = seg, version, "published scorecard pointer reached redis");
                        return;
                    }
                }
            });
        }
        tokio::time::sleep_until(settled.into()).await;
    }
}
