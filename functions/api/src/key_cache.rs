//! A per-container cache of API keys found in the store, by hash, for a
//! short time (`API_KEY_CACHE_TTL_SECONDS`, 30 s by default; 0 turns it
//! off): most requests then cost no DynamoDB read to authenticate.
//!
//! The trade-off: a key revoked in the table still works on a warm
//! container that read it less than the TTL ago. Only keys that exist are
//! kept (a guess that matches nothing is looked up every time, so guessing
//! costs the store each time, as before), and only their hash, never the key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shared::api_key::ApiKey;
use time::OffsetDateTime;

/// Most keys kept at once: a container serves few tenants; past this the
/// cache is emptied rather than grown.
const MAX_KEYS: usize = 10_000;

pub struct KeyCache {
    ttl: Duration,
    keys: Mutex<HashMap<String, (ApiKey, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ApiKey, Instant)>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key with this hash if it was read less than the TTL ago.
    pub fn get(&self, key_hash: &str) -> Option<ApiKey> {
        if self.ttl.is_zero() {
            return None;
        }
        let keys = self.lock();
        let (key, read_at) = keys.get(key_hash)?;
        (read_at.elapsed() < self.ttl).then(|| key.clone())
    }

    /// Keeps a key just read from the store.
    pub fn put(&self, key: &ApiKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS {
            let ttl = self.ttl;
            keys.retain(|_, (_, at)| at.elapsed() < ttl);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(key.hash.clone(), (key.clone(), Instant::now()));
    }

    /// Drops a key (revoked here).
    pub fn forget(&self, key_hash: &str) {
        self.lock().remove(key_hash);
    }

    /// Notes a `last_used_at` written, so that this container does not
    /// write it again within the hour.
    pub fn used(&self, key_hash: &str, at: OffsetDateTime) {
        if let Some((key, _)) = self.lock().get_mut(key_hash) {
            key.last_used_at = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::TenantId;
    use shared::api_key::{Scope, now};

    fn key() -> ApiKey {
        ApiKey::issue(
            TenantId::parse("a").unwrap(),
            String::new(),
            Scope::Full,
            None,
            now(),
        )
        .1
    }

    #[test]
    fn keys_are_kept_for_the_ttl_and_not_at_all_with_zero() {
        let k = key();
        let cache = KeyCache::new(Duration::from_millis(50));
        assert_eq!(cache.get(&k.hash), None);
        cache.put(&k);
        assert_eq!(cache.get(&k.hash), Some(k.clone()));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&k.hash), None, "stale after the TTL");

        let off = KeyCache::new(Duration::ZERO);
        off.put(&k);
        assert_eq!(off.get(&k.hash), None);
    }
}
