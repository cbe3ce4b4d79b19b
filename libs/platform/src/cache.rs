//! Redis as a cache, never the source of truth: short timeouts so a hung
//! Redis degrades to the database instead of stalling requests, a connection
//! that is retried in the background when Redis is down at start, and every
//! failure logged and counted (`qualify_cache_errors_total`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Longest a cache operation may take before the caller falls back.
pub const TIMEOUT: Duration = Duration::from_millis(200);

use crate::coalesce::Coalesced;

/// A Redis connection that may be absent (down, or not configured).
#[derive(Clone)]
pub struct Redis {
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    fresh: Arc<Coalesced<Result<Option<Vec<u8>>, CacheError>>>,
}

/// A cache operation did not complete; use the database.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(String);

impl Redis {
    /// Connects to `url` in the background; until it answers, every call fails fast.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let redis = Redis { conn: Arc::new(RwLock::new(None)), fresh: Arc::new(Coalesced::new()) };
        let slot = redis.conn.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1);
            let mut attempt = 0u32;
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(c) => {
                        if let Ok(mut s) = slot.write() {
                            *s = Some(c);
                        }
                        tracing::info!("redis connected");
                        return;
                    }
                    Err(e) => {
                        attempt += 1;
                        if attempt == 1 || attempt.is_multiple_of(30) {
                            tracing::warn!(error = %e, attempt, "redis unreachable; serving from the database");
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(redis)
    }

    fn conn(&self) -> Result<ConnectionManager, CacheError> {
        self.conn.read().ok().and_then(|c| c.clone()).ok_or_else(|| fail("not connected"))
    }

    /// Whether a connection has been established (it may still fail per call).
    pub fn is_connected(&self) -> bool {
        self.conn.read().map(|c| c.is_some()).unwrap_or(false)
    }

    /// GET.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut c = self.conn()?;
        bounded(async move { c.get::<_, Option<Vec<u8>>>(key).await }).await
    }

    /// GET that sees every write completed before it began, with concurrent
    /// callers of one key sharing round trips (see [`Coalesced`]): for hot
    /// keys that must never be stale, such as version pointers.
    pub async fn get_fresh(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let (redis, owned) = (self.clone(), key.to_string());
        self.fresh.read(key, move || async move { redis.get(&owned).await }).await
    }

    /// SET with a time to live.
    pub async fn set_ex(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut c = self.conn()?;
        bounded(async move { c.set_ex::<_, _, ()>(key, value, ttl.as_secs().max(1)).await }).await
    }

    /// Sets `key` to `value` only if it holds nothing or a smaller number, so
    /// concurrent writers of version pointers never move a pointer backwards.
    pub async fn set_if_greater(&self, key: &str, value: i64, ttl: Duration) -> Result<(), CacheError> {
        let mut c = self.conn()?;
        let script = redis::Script::new(
            "local cur = redis.call('GET', KEYS[1]) \
             if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then \
               redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end \
             return 1",
        );
        bounded(async move {
            script.key(key).arg(value).arg(ttl.as_secs().max(1)).invoke_async::<i64>(&mut c).await.map(|_| ())
        })
        .await
    }
}

fn fail(why: &str) -> CacheError {
    metrics::counter!("qualify_cache_errors_total").increment(1);
    CacheError(why.to_string())
}

async fn bounded<T>(f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "redis call failed");
            Err(fail(&e.to_string()))
        }
        Err(_) => Err(fail("timed out")),
    }
}
