use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{Allowance, AttemptKey, Kept, Page, RecoveryWrite, Store, StoreError};
use crate::api_key::ApiKey;
use crate::delivery_log::{DeliveryCursor, DeliveryFilter, DeliveryRecord};
use crate::delivery_stats::{DeliverySample, Samples};
use crate::event::EventId;
use crate::event_log::{EventFilter, StoredEvent};
use crate::recovery::{PENDING_SECS, RecoveryState};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::{TenantId, Webhook, WebhookId};

/// The same semantics as the DynamoDB store, in a map. For unit tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    webhooks: BTreeMap<(TenantId, WebhookId), Webhook>,
    /// By hash.
    api_keys: HashMap<String, ApiKey>,
    /// By webhook, then by sort key (newest last).
    deliveries: HashMap<WebhookId, BTreeMap<String, DeliveryRecord>>,
    /// The attempts that have a record: the key DynamoDB uses.
    recorded: HashSet<AttemptKey>,
    /// Each (tenant, event, webhook)'s records, by their log sort key: the
    /// event's partition in DynamoDB.
    by_event: HashMap<(TenantId, EventId, WebhookId), Vec<String>>,
    /// By tenant, then by sort key (newest last).
    events: HashMap<TenantId, BTreeMap<String, StoredEvent>>,
    /// The events kept, by key: the first copy stays.
    event_ids: HashSet<(TenantId, EventId)>,
    /// What each allowance's window has taken, by tenant.
    allowances: HashMap<(TenantId, Allowance, i64), u32>,
    /// Manual attempts numbered, and when the last was, by tenant, event
    /// and webhook.
    manual_attempts: HashMap<(TenantId, EventId, WebhookId), (u32, i64)>,
    /// Each webhook's recovery, the last one.
    recoveries: HashMap<(TenantId, WebhookId), RecoveryState>,
}

impl Inner {
    fn event(&self, tenant: &TenantId, id: &EventId) -> Option<&StoredEvent> {
        self.events
            .get(tenant)
            .and_then(|events| events.values().find(|e| &e.id == id))
    }
}

/// The newest-first page after `after` from an ascending map.
fn page_desc<T: Clone>(
    map: &BTreeMap<String, T>,
    limit: usize,
    after: Option<&str>,
) -> Page<T, String> {
    let mut keys: Vec<(&String, &T)> = map
        .iter()
        .rev()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() < a))
        .take(limit + 1)
        .collect();
    let next = if keys.len() > limit {
        keys.truncate(limit);
        keys.last().map(|(k, _)| (*k).clone())
    } else {
        None
    };
    Page {
        items: keys.into_iter().map(|(_, v)| v.clone()).collect(),
        next,
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(webhook) = inner.webhooks.get_mut(&(tenant.clone(), id)) else {
            return Ok(false);
        };
        let changes = webhook.slow_since.is_some() != since.is_some();
        if changes {
            webhook.slow_since = since;
        }
        Ok(changes)
    }

    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let taken = inner
            .allowances
            .entry((tenant.clone(), allowance, window))
            .or_default();
        if taken.saturating_add(n) > limit {
            return Ok(false);
        }
        *taken += n;
        Ok(true)
    }

    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
    ) -> Result<Option<Vec<u32>>, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.contains(&(tenant.clone(), event.clone())) {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let numbers = webhooks
            .iter()
            .map(|w| {
                let (n, at) = inner
                    .manual_attempts
                    .entry((tenant.clone(), event.clone(), *w))
                    .or_default();
                *n += 1;
                *at = now;
                FIRST_MANUAL_ATTEMPT - 1 + *n
            })
            .collect();
        Ok(Some(numbers))
    }

    async fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let inner = self.lock();
        let (Some(keys), Some(log)) = (
            inner
                .by_event
                .get(&(tenant.clone(), event.clone(), webhook)),
            inner.deliveries.get(&webhook),
        ) else {
            return Ok(Vec::new());
        };
        Ok(keys.iter().filter_map(|k| log.get(k)).cloned().collect())
    }

    async fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.contains(&(tenant.clone(), event.clone())) {
            return Ok(None);
        }
        let (n, at) = inner
            .manual_attempts
            .entry((tenant.clone(), event.clone(), webhook))
            .or_default();
        if *n > manual_recorded && *at >= now - PENDING_SECS {
            return Ok(None);
        }
        *n += 1;
        *at = now;
        Ok(Some(FIRST_MANUAL_ATTEMPT - 1 + *n))
    }

    async fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> Result<Option<RecoveryState>, StoreError> {
        Ok(self
            .lock()
            .recoveries
            .get(&(tenant.clone(), webhook))
            .cloned())
    }

    async fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let key = (state.tenant_id.clone(), state.webhook_id);
        let allowed = match (write, inner.recoveries.get(&key)) {
            (RecoveryWrite::Start { .. }, None) => true,
            (RecoveryWrite::Start { now }, Some(last)) => !last.running(now),
            (RecoveryWrite::Advance, Some(last)) => last.recovery_id == state.recovery_id,
            (RecoveryWrite::Advance, None) => false,
        };
        if allowed {
            inner.recoveries.insert(key, state.clone());
        }
        Ok(allowed)
    }

    async fn create_webhook(&self, webhook: &Webhook, limit: u32) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let count = inner
            .webhooks
            .keys()
            .filter(|(t, _)| *t == webhook.tenant_id)
            .count();
        if count >= limit as usize {
            return Err(StoreError::LimitReached { limit });
        }
        let key = (webhook.tenant_id.clone(), webhook.id);
        if inner.webhooks.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        inner.webhooks.insert(key, webhook.clone());
        Ok(())
    }

    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        Ok(self.lock().webhooks.get(&(tenant.clone(), id)).cloned())
    }

    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        let inner = self.lock();
        let mut items: Vec<Webhook> = inner
            .webhooks
            .iter()
            .rev()
            .filter(|((t, id), _)| t == tenant && after.is_none_or(|a| *id < a))
            .map(|(_, w)| w.clone())
            .take(limit + 1)
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|w| w.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner
            .webhooks
            .get_mut(&(webhook.tenant_id.clone(), webhook.id))
        {
            Some(slot) if slot.updated_at == loaded_at => {
                *slot = webhook.clone();
                Ok(())
            }
            Some(_) => Err(StoreError::Conflict),
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: WebhookId) -> Result<(), StoreError> {
        match self.lock().webhooks.remove(&(tenant.clone(), id)) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.api_keys.contains_key(&key.hash) {
            return Err(StoreError::AlreadyExists);
        }
        inner.api_keys.insert(key.hash.clone(), key.clone());
        Ok(())
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.lock().api_keys.get(key_hash).cloned())
    }

    async fn api_keys_of(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<ApiKey> = self
            .lock()
            .api_keys
            .values()
            .filter(|k| &k.tenant_id == tenant)
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(keys)
    }

    async fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let revoked = |k: Option<&ApiKey>| k.is_none_or(|k| k.revoked_at.is_some());
        if revoked(inner.api_keys.get(&key.hash)) {
            return Err(StoreError::NotFound);
        }
        if keep.is_some_and(|k| revoked(inner.api_keys.get(&k.hash))) {
            return Err(StoreError::Conflict);
        }
        if let Some(k) = inner.api_keys.get_mut(&key.hash) {
            k.revoked_at = Some(at);
        }
        Ok(())
    }

    async fn expire_api_key(&self, key: &ApiKey, at: OffsetDateTime) -> Result<(), StoreError> {
        match self.lock().api_keys.get_mut(&key.hash) {
            Some(k) if k.revoked_at.is_none() => {
                if k.expires_at.is_none_or(|e| e > at) {
                    k.expires_at = Some(at);
                }
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }

    async fn touch_api_key(&self, key: &ApiKey, now: OffsetDateTime) -> Result<(), StoreError> {
        if let Some(k) = self.lock().api_keys.get_mut(&key.hash)
            && k.use_is_news(now)
        {
            k.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .webhooks
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, w)| w.clone())
            .collect())
    }

    async fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> Result<HashSet<AttemptKey>, StoreError> {
        let inner = self.lock();
        Ok(attempts
            .iter()
            .filter(|a| inner.recorded.contains(*a))
            .cloned()
            .collect())
    }

    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = AttemptKey {
            tenant: record.tenant_id.clone(),
            webhook: record.webhook_id,
            event: record.event_id.clone(),
            attempt: record.attempt,
        };
        if inner.recorded.insert(key) {
            let log = inner.deliveries.entry(record.webhook_id).or_default();
            log.insert(record.sort_key(), record.clone());
            inner
                .by_event
                .entry((
                    record.tenant_id.clone(),
                    record.event_id.clone(),
                    record.webhook_id,
                ))
                .or_default()
                .push(record.sort_key());
        }
        Ok(())
    }

    async fn put_event(&self, event: &StoredEvent) -> Result<Kept, StoreError> {
        let mut inner = self.lock();
        let key = (event.tenant_id.clone(), event.id.clone());
        if !inner.event_ids.insert(key) {
            return Ok(Kept::Before);
        }
        let events = inner.events.entry(event.tenant_id.clone()).or_default();
        events.insert(event.sort_key(), event.clone());
        Ok(Kept::New)
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self.lock().event(tenant, id).cloned())
    }

    async fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError> {
        let inner = self.lock();
        let Some(event) = inner.event(tenant, id) else {
            return Ok(None);
        };
        let mut deliveries: Vec<DeliveryRecord> = inner
            .deliveries
            .values()
            .flat_map(|log| log.values())
            .filter(|r| &r.tenant_id == tenant && &r.event_id == id)
            .cloned()
            .collect();
        deliveries.sort_by_key(|r| (r.webhook_id, r.attempt));
        Ok(Some((event.clone(), deliveries)))
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        let inner = self.lock();
        let Some(events) = inner.events.get(tenant) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        // Only the page is copied: a recovery pages through 100,000 events.
        let upper = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut items: Vec<StoredEvent> = events
            .range::<String, _>((Bound::Unbounded, upper))
            .rev()
            .map(|(_, e)| e)
            .filter(|e| filter.matches(e))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(StoredEvent::sort_key)
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    async fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> Result<Samples, StoreError> {
        let inner = self.lock();
        let Some(log) = inner.deliveries.get(&webhook) else {
            return Ok(Samples {
                items: Vec::new(),
                more: false,
            });
        };
        let mut items: Vec<DeliverySample> = log
            .range(since.to_owned()..)
            .rev()
            .take(limit + 1)
            .map(|(_, r)| DeliverySample {
                attempted_at: r.attempted_at.clone(),
                outcome: r.outcome,
                duration_ms: r.duration_ms,
            })
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(Samples { items, more })
    }

    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        filter: &DeliveryFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        let inner = self.lock();
        let after = match after {
            Some(cursor) => Some(
                DeliveryCursor::parse(&cursor)
                    .ok_or_else(|| StoreError::Backend("not a delivery cursor".into()))?
                    .sort_key,
            ),
            None => None,
        };
        let Some(log) = inner.deliveries.get(&webhook) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let kept: BTreeMap<String, DeliveryRecord>;
        let log = if *filter == DeliveryFilter::default() {
            log
        } else {
            kept = log
                .iter()
                .filter(|(_, r)| filter.matches(r))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            &kept
        };
        let found = page_desc(log, limit, after.as_deref());
        let next = found
            .items
            .last()
            .filter(|_| found.next.is_some())
            .map(DeliveryRecord::cursor);
        Ok(Page {
            items: found.items,
            next,
        })
    }
}
