//! Batched point reads (the data-loader pattern): concurrent reads of one kind
//! are gathered into a single query for all their keys.
//!
//! A read never waits for company: when a query slot is free, the first key
//! goes out at once, alone. Only while every slot is busy do keys queue up, and
//! the next free slot takes all of them (up to a limit) in one query. So an
//! idle service answers as fast as with one query per read, and a loaded one
//! spends one round trip, one plan and one executor start-up on many reads,
//! where the database's cost per statement (not per row) dominates. Every read
//! is still answered by a query that started after it arrived.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// The batch this read was part of failed; the caller reads on its own to
/// learn why (the error is logged once per batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFailed;

type Reply<V> = oneshot::Sender<Result<Option<V>, BatchFailed>>;

/// A batching reader of `V` by key `K`.
pub struct Batcher<K, V> {
    tx: mpsc::UnboundedSender<(K, Reply<V>)>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Batcher { tx: self.tx.clone() }
    }
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the batcher (on the current Tokio runtime): `fetch` gets the
    /// distinct keys of a batch (at most `max_batch`) and returns the values
    /// it found; at most `slots` fetches run at once. It stops when every
    /// clone of the batcher is dropped.
    pub fn spawn<F, Fut>(name: &'static str, max_batch: usize, slots: usize, fetch: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<HashMap<K, V>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(K, Reply<V>)>();
        let fetch = Arc::new(fetch);
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            loop {
                // A slot first: while none is free, reads accumulate in the channel.
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let Some(first) = rx.recv().await else { return };
                let mut waiting = vec![first];
                while waiting.len() < max_batch {
                    match rx.try_recv() {
                        Ok(next) => waiting.push(next),
                        Err(_) => break,
                    }
                }
                let fetch = fetch.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut keys: Vec<K> = waiting.iter().map(|(k, _)| k.clone()).collect();
                    let mut seen = std::collections::HashSet::with_capacity(keys.len());
                    keys.retain(|k| seen.insert(k.clone()));
                    let size = keys.len();
                    match fetch(keys).await {
                        Ok(found) => {
                            for (k, reply) in waiting {
                                let _ = reply.send(Ok(found.get(&k).cloned()));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(batch = name, size, error = %format!("{e:#}"), "batched read failed");
                            for (_, reply) in waiting {
                                let _ = reply.send(Err(BatchFailed));
                            }
                        }
                    }
                });
            }
        });
        Batcher { tx }
    }

    /// The value of `key`, or `None` when there is none.
    pub async fn get(&self, key: K) -> Result<Option<V>, BatchFailed> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((key, reply)).map_err(|_| BatchFailed)?;
        answer.await.map_err(|_| BatchFailed)?
    }
}

type Answer<R> = oneshot::Sender<Result<R, crate::ApiError>>;

/// Group commit: writes of one kind that arrive while a round of them runs are
/// done together in the next round, by one worker, one round at a time (one
/// transaction each, say). A lone write goes out at once; under load one round
/// trip, one statement per table and one commit serve every write that arrived
/// during the previous round, and writes that would wait on each other's row
/// locks in separate transactions run as one. Every write is done by a round
/// that started after it arrived.
pub struct Group<Q, R> {
    tx: mpsc::UnboundedSender<(Q, Answer<R>)>,
}

impl<Q, R> Clone for Group<Q, R> {
    fn clone(&self) -> Self {
        Group { tx: self.tx.clone() }
    }
}

impl<Q, R> Group<Q, R>
where
    Q: Clone + Send + 'static,
    R: Send + 'static,
{
    /// Starts the worker (on the current Tokio runtime): `run` gets the writes of
    /// a round in arrival order (at most `max_round`) and returns a result per
    /// write, in the same order. When a round of several writes fails, each is
    /// done again alone, in a round of its own, and gets that round's result. It
    /// stops when every clone is dropped.
    pub fn spawn<F, Fut>(name: &'static str, max_round: usize, run: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, crate::ApiError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Q, Answer<R>)>();
        let max_round = max_round.max(1);
        let run = Arc::new(run);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiting = vec![first];
                while waiting.len() < max_round {
                    match rx.try_recv() {
                        Ok(next) => waiting.push(next),
                        Err(_) => break,
                    }
                }
                let (writes, answers): (Vec<Q>, Vec<Answer<R>>) = waiting.into_iter().unzip();
                // A copy to do the writes one by one if the round fails: one write's failure
                // must not fail the others that shared its round.
                let alone = (writes.len() > 1).then(|| writes.clone());
                match round(name, &run, writes).await {
                    Ok(results) => {
                        for (answer, r) in answers.into_iter().zip(results) {
                            let _ = answer.send(Ok(r));
                        }
                    }
                    Err(e) => match alone {
                        None => {
                            if let Some(answer) = answers.into_iter().next() {
                                let _ = answer.send(Err(e));
                            }
                        }
                        Some(writes) => {
                            tracing::warn!(group = name, size = writes.len(), error = %e, "round failed; writes one by one");
                            for (write, answer) in writes.into_iter().zip(answers) {
                                let _ = answer.send(round(name, &run, vec![write]).await.map(|mut one| one.remove(0)));
                            }
                        }
                    },
                }
            }
        });
        Group { tx }
    }

    /// Does `write` in the next round; its result.
    pub async fn submit(&self, write: Q) -> Result<R, crate::ApiError> {
        let (answer, result) = oneshot::channel();
        let stopped = || crate::ApiError::Unavailable { dependency: "the write worker" };
        self.tx.send((write, answer)).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

/// One round in its own task, so that a panic fails the round, not the worker: a result per
/// write, or why the round failed.
async fn round<Q, R, F, Fut>(name: &'static str, run: &Arc<F>, writes: Vec<Q>) -> Result<Vec<R>, crate::ApiError>
where
    F: Fn(Vec<Q>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, crate::ApiError>> + Send + 'static,
    R: Send + 'static,
{
    let size = writes.len();
    let failed = match tokio::spawn(run(writes)).await {
        Ok(Ok(results)) if results.len() == size => return Ok(results),
        Ok(Err(e)) => e,
        Ok(Ok(results)) => {
            crate::ApiError::Internal(anyhow::anyhow!("{name}: {} results for {size} writes", results.len()))
        }
        Err(panic) => crate::ApiError::Internal(anyhow::anyhow!("{name} round failed: {panic}")),
    };
    if matches!(failed, crate::ApiError::Internal(_)) {
        tracing::error!(group = name, size, error = %format!("{failed:#}"), "group round failed");
    }
    Err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_reads_share_queries_and_each_gets_its_own_value() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let b = Batcher::spawn("test", 100, 1, move |keys: Vec<u32>| {
            seen.lock().unwrap().push(keys.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(keys.into_iter().filter(|k| k % 7 != 0).map(|k| (k, k * 10)).collect())
            }
        });
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.get(1).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await; // the first read is in flight, alone
        let reads = (2..=50u32).map(|k| {
            let b = b.clone();
            async move { (k, b.get(k).await) }
        });
        for (k, got) in futures::future::join_all(reads).await {
            assert_eq!(got, Ok((k % 7 != 0).then_some(k * 10)), "key {k}");
        }
        assert_eq!(first.await.unwrap(), Ok(Some(10)));
        let batches = batches.lock().unwrap();
        // The 49 reads that arrived while the only slot was busy share the next query.
        assert_eq!(*batches, vec![vec![1], (2..=50).collect::<Vec<_>>()]);
    }

    #[tokio::test]
    async fn writes_arriving_during_a_round_share_the_next_one_and_a_failed_round_fails_each() {
        let rounds = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = rounds.clone();
        let g = Group::spawn("test", 100, move |writes: Vec<u32>| {
            seen.lock().unwrap().push(writes.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if writes.contains(&99) {
                    return Err(crate::ApiError::Aborted("conflict".into()));
                }
                Ok(writes.into_iter().map(|w| w * 10).collect())
            }
        });
        let first = tokio::spawn({
            let g = g.clone();
            async move { g.submit(1).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await; // the first round runs, alone
        let writes = (2..=20u32).map(|w| {
            let g = g.clone();
            async move { (w, g.submit(w).await) }
        });
        for (w, got) in futures::future::join_all(writes).await {
            assert_eq!(got.unwrap(), w * 10);
        }
        assert_eq!(first.await.unwrap().unwrap(), 10);
        assert_eq!(*rounds.lock().unwrap(), vec![vec![1], (2..=20).collect::<Vec<_>>()]);
        // A failed round's writes are done again alone: only the failing one fails.
        let (a, b) = tokio::join!(g.submit(99), g.submit(98));
        assert!(matches!(a, Err(crate::ApiError::Aborted(_))), "{a:?}");
        assert_eq!(b.unwrap(), 980);
    }

    #[tokio::test]
    async fn duplicate_keys_are_fetched_once_and_a_failed_batch_fails_its_reads() {
        let b = Batcher::spawn("test", 10, 1, |keys: Vec<&'static str>| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            anyhow::ensure!(!keys.contains(&"boom"), "cannot read");
            assert_eq!(keys.len(), keys.iter().collect::<std::collections::HashSet<_>>().len());
            Ok(keys.into_iter().map(|k| (k, k.len())).collect())
        });
        let (a, x, y) = tokio::join!(b.get("a"), b.get("abc"), b.get("abc"));
        assert_eq!((a, x, y), (Ok(Some(1)), Ok(Some(3)), Ok(Some(3))));
        let (ok, failed) = tokio::join!(b.get("one"), async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::join!(b.get("boom"), b.get("two"))
        });
        assert_eq!(ok, Ok(Some(3)));
        assert_eq!(failed, (Err(BatchFailed), Err(BatchFailed)));
    }
}
