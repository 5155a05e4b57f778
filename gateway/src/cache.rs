//! The one cache shape the gateway uses (parses, decisions, analyses): a
//! map that empties itself when full. The keys are open-ended (client
//! addresses, hours, SQL texts), so it must be bounded; emptying whole is
//! cheaper than tracking recency and costs one miss per entry afterwards.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// A bounded map shared between request threads.
pub struct BoundedCache<K, V> {
    entries: RwLock<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The value cached for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Caches `value` under `key`, first emptying a full cache.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// The value cached for `key`, or `compute`'s, cached when it is Ok.
    pub fn get_or_try_insert<E>(
        &self,
        key: K,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let value = compute()?;
        self.insert(key, value.clone());
        Ok(value)
    }

    /// Empties the cache.
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_empties_before_inserting() {
        let cache = BoundedCache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!((cache.get("a"), cache.get("b")), (Some(1), Some(2)));
        cache.insert("c", 3);
        assert_eq!((cache.get("a"), cache.get("b")), (None, None));
        assert_eq!(cache.get("c"), Some(3));
    }

    #[test]
    fn failures_are_not_cached() {
        let cache: BoundedCache<&str, i32> = BoundedCache::new(4);
        assert_eq!(cache.get_or_try_insert("k", || Err("no")), Err("no"));
        assert_eq!(cache.get_or_try_insert("k", || Ok::<_, ()>(7)), Ok(7));
        assert_eq!(cache.get_or_try_insert("k", || Err(())), Ok(7));
    }
}
