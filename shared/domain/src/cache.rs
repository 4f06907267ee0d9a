//! A bounded cache whose entries expire, and whose concurrent loads of one
//! key share one call and its result (success or error), as the tenant
//! configs and knowledge-base answers need: during an S3 or Bedrock outage a
//! burst of visitors waits on one failing call, not on one each in turn.
//!
//! Hand-written rather than `moka`: these few operations are all we use,
//! and moka with its concurrency machinery was about 160 KB of each binary
//! (docs/performance.md).

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use futures_util::future::{BoxFuture, FutureExt, Shared};

type Load<V, E> = Shared<BoxFuture<'static, Result<V, Arc<E>>>>;

enum Entry<V, E> {
    Ready { value: V, at: Instant },
    Loading(Load<V, E>),
}

pub struct TtlCache<K, V, E = ()> {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<HashMap<K, Entry<V, E>>>,
}

impl<K, V, E> TtlCache<K, V, E>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// At most `capacity` entries, each kept for `ttl` after it was loaded.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity, ttl, entries: Mutex::default() }
    }

    /// The value, if one was loaded less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        match self.lock().get(key) {
            Some(Entry::Ready { value, at }) if at.elapsed() < self.ttl => Some(value.clone()),
            _ => None,
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        self.make_room(&mut entries);
        entries.insert(key, Entry::Ready { value, at: Instant::now() });
    }

    /// The cached value, or the result of `load`. Callers that ask while a
    /// load of the key is under way await that load; an error is shared by
    /// them and not cached (the next caller loads again).
    pub async fn try_get_with<F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let pending = {
            let mut entries = self.lock();
            match entries.get(&key) {
                Some(Entry::Ready { value, at }) if at.elapsed() < self.ttl => return Ok(value.clone()),
                Some(Entry::Loading(pending)) => pending.clone(),
                _ => {
                    self.make_room(&mut entries);
                    let pending = load.map(|r| r.map_err(Arc::new)).boxed().shared();
                    entries.insert(key.clone(), Entry::Loading(pending.clone()));
                    pending
                }
            }
        };
        let result = pending.clone().await;
        let mut entries = self.lock();
        // Only the load this caller awaited is replaced; a newer one stays.
        if let Some(Entry::Loading(current)) = entries.get(&key)
            && current.ptr_eq(&pending)
        {
            match &result {
                Ok(value) => entries.insert(key, Entry::Ready { value: value.clone(), at: Instant::now() }),
                Err(_) => entries.remove(&key),
            };
        }
        result
    }

    /// Drops expired entries; when still full, the oldest loaded one.
    fn make_room(&self, entries: &mut HashMap<K, Entry<V, E>>) {
        if entries.len() < self.capacity {
            return;
        }
        entries.retain(|_, entry| match entry {
            Entry::Ready { at, .. } => at.elapsed() < self.ttl,
            Entry::Loading(_) => true,
        });
        if entries.len() < self.capacity {
            return;
        }
        let oldest = entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                Entry::Ready { at, .. } => Some((key, *at)),
                Entry::Loading(_) => None,
            })
            .min_by_key(|(_, at)| *at)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            entries.remove(&key);
        }
    }

    /// The map; a panic while it was held cannot leave it half-updated
    /// (each update is one insert or remove), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V, E>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_loads_of_one_key_make_one_call_and_share_its_error() {
        let cache: TtlCache<&str, u32, String> = TtlCache::new(8, Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |answer: Result<u32, String>| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer
            }
        };
        let (a, b) = tokio::join!(
            cache.try_get_with("t", load(Err("S3 is down".into()))),
            cache.try_get_with("t", load(Err("a second call".into())))
        );
        assert_eq!((a.unwrap_err().as_str(), b.unwrap_err().as_str()), ("S3 is down", "S3 is down"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        assert_eq!(cache.try_get_with("t", load(Ok(7))).await.unwrap(), 7, "an error is not cached");
        assert_eq!(cache.try_get_with("t", load(Ok(8))).await.unwrap(), 7, "a value is");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_value_expires_after_its_ttl() {
        let cache: TtlCache<&str, u32> = TtlCache::new(8, Duration::from_millis(30));
        cache.insert("t", 1);
        assert_eq!(cache.get(&"t"), Some(1));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!cache.contains_key(&"t"));
        assert_eq!(cache.try_get_with("t", async { Ok(2) }).await.unwrap(), 2);
    }

    #[test]
    fn a_full_cache_drops_its_oldest_value() {
        let cache: TtlCache<u32, u32> = TtlCache::new(3, Duration::from_secs(60));
        for n in 0..4 {
            cache.insert(n, n);
            std::thread::sleep(Duration::from_millis(2)); // distinct load times
        }
        assert_eq!(cache.get(&0), None);
        assert_eq!((cache.get(&1), cache.get(&2), cache.get(&3)), (Some(1), Some(2), Some(3)));
    }
}
