use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{Page, Store, StoreError};
use crate::delivery_log::DeliveryRecord;
use crate::event::EventId;
use crate::{TenantId, Webhook, WebhookId};

/// The same semantics as the DynamoDB store, in a map. For unit tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    webhooks: BTreeMap<(TenantId, WebhookId), Webhook>,
    api_keys: HashMap<String, TenantId>,
    /// By webhook, then by sort key (newest last).
    deliveries: HashMap<WebhookId, BTreeMap<String, DeliveryRecord>>,
    /// The (webhook, event) pairs that have a record: the key DynamoDB uses.
    recorded: HashSet<(WebhookId, EventId)>,
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

    async fn put_api_key(&self, key_hash: &str, tenant: &TenantId) -> Result<(), StoreError> {
        self.lock()
            .api_keys
            .insert(key_hash.to_owned(), tenant.clone());
        Ok(())
    }

    async fn tenant_for_api_key(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        Ok(self.lock().api_keys.get(key_hash).cloned())
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
        pairs: &[(WebhookId, EventId)],
    ) -> Result<HashSet<(WebhookId, EventId)>, StoreError> {
        let inner = self.lock();
        Ok(pairs
            .iter()
            .filter(|p| inner.recorded.contains(*p))
            .cloned()
            .collect())
    }

    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .recorded
            .insert((record.webhook_id, record.event_id.clone()))
        {
            let log = inner.deliveries.entry(record.webhook_id).or_default();
            log.insert(record.sort_key(), record.clone());
        }
        Ok(())
    }

    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        let inner = self.lock();
        Ok(match inner.deliveries.get(&webhook) {
            Some(log) => page_desc(log, limit, after.as_deref()),
            None => Page {
                items: Vec::new(),
                next: None,
            },
        })
    }
}
