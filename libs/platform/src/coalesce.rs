//! Coalesced fresh reads: many concurrent readers of one key share a single
//! fetch, without ever being answered by a fetch that started before they
//! arrived. A reader that finds a fetch in flight waits for the *next* one, so
//! a value written before a read begins is always seen (the read is
//! linearizable), while under load one round trip serves every reader that
//! arrived during the previous one.
//!
//! Fetches run in their own task: a reader whose request is cancelled never
//! leaves a fetch half-done or the key stuck.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

struct State<V> {
    /// Fetches started so far; fetch `n` is the n-th one started.
    issued: u64,
    /// Number of the newest completed fetch.
    done: u64,
    in_flight: bool,
    value: Option<V>,
}

struct Slot<V> {
    state: Mutex<State<V>>,
    completed: watch::Sender<u64>,
}

/// Coalesced fresh reads keyed by string.
pub struct Coalesced<V> {
    slots: moka::sync::Cache<String, Arc<Slot<V>>>,
}

impl<V: Clone + Send + Sync + 'static> Default for Coalesced<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone + Send + Sync + 'static> Coalesced<V> {
    /// An empty set of keys; idle keys are forgotten after ten minutes.
    pub fn new() -> Self {
        Coalesced {
            slots: moka::sync::Cache::builder().max_capacity(100_000).time_to_idle(Duration::from_secs(600)).build(),
        }
    }

    /// The value of `key` as read by a fetch that started after this call
    /// began: `fetch` itself, or a concurrent reader's.
    pub async fn read<F, Fut>(&self, key: &str, fetch: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let slot = self.slots.get_with_by_ref(key, || {
            Arc::new(Slot {
                state: Mutex::new(State { issued: 0, done: 0, in_flight: false, value: None }),
                completed: watch::channel(0).0,
            })
        });
        let mut completed = slot.completed.subscribe();
        // Any fetch numbered `target` or later starts after this point.
        let target = lock(&slot.state).issued + 1;
        let mut fetch = Some(fetch);
        loop {
            {
                let mut s = lock(&slot.state);
                if s.done >= target
                    && let Some(v) = &s.value
                {
                    return v.clone();
                }
                if !s.in_flight
                    && let Some(f) = fetch.take()
                {
                    s.in_flight = true;
                    s.issued += 1;
                    let (n, fut, slot) = (s.issued, f(), slot.clone());
                    tokio::spawn(async move {
                        let v = fut.await;
                        let mut s = lock(&slot.state);
                        s.done = n;
                        s.value = Some(v);
                        s.in_flight = false;
                        drop(s);
                        slot.completed.send_replace(n);
                    });
                }
            }
            // The sender lives in the slot this reader holds, so this only
            // returns on a completed fetch.
            let _ = completed.changed().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store whose reads take a while, counting them.
    #[derive(Clone, Default)]
    struct SlowStore {
        value: Arc<AtomicU64>,
        reads: Arc<AtomicU64>,
    }

    impl SlowStore {
        fn fetch(&self) -> impl Future<Output = u64> + Send + 'static {
            let s = self.clone();
            async move {
                s.reads.fetch_add(1, Ordering::SeqCst);
                let v = s.value.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                v
            }
        }
    }

    #[tokio::test]
    async fn a_read_begun_after_a_write_never_gets_a_fetch_started_before_it() {
        let store = SlowStore::default();
        let reads = Arc::new(Coalesced::new());
        store.value.store(1, Ordering::SeqCst);
        let early = {
            let (reads, store) = (reads.clone(), store.clone());
            tokio::spawn(async move { reads.read("k", || store.fetch()).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await; // the first fetch has read 1 and is in flight
        store.value.store(2, Ordering::SeqCst);
        let late = reads.read("k", || store.fetch()).await;
        assert_eq!(early.await.unwrap(), 1);
        assert_eq!(late, 2, "a read that began after the write must see it");
    }

    #[tokio::test]
    async fn concurrent_readers_share_fetches() {
        let store = SlowStore::default();
        store.value.store(7, Ordering::SeqCst);
        let reads = Arc::new(Coalesced::new());
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (reads, store) = (reads.clone(), store.clone());
            tasks.push(tokio::spawn(async move { reads.read("k", || store.fetch()).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        let fetches = store.reads.load(Ordering::SeqCst);
        assert!((1..=3).contains(&fetches), "200 readers arriving together need at most 3 fetches, took {fetches}");
    }

    #[tokio::test]
    async fn a_cancelled_reader_does_not_stall_the_key() {
        let store = SlowStore::default();
        store.value.store(3, Ordering::SeqCst);
        let reads = Arc::new(Coalesced::new());
        let cancelled = tokio::time::timeout(Duration::from_millis(5), reads.read("k", || store.fetch())).await;
        assert!(cancelled.is_err(), "the first read was cancelled mid-fetch");
        let v = tokio::time::timeout(Duration::from_secs(2), reads.read("k", || store.fetch())).await;
        assert_eq!(v.unwrap(), 3);
    }

    #[tokio::test]
    async fn keys_are_independent() {
        let reads = Coalesced::new();
        assert_eq!(reads.read("a", || async { 1 }).await, 1);
        assert_eq!(reads.read("b", || async { 2 }).await, 2);
        assert_eq!(reads.read("a", || async { 3 }).await, 3, "every read fetches anew when none is in flight");
    }
}
