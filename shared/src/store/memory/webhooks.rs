//! Webhooks, and the slow-lane mark.

use time::OffsetDateTime;

use super::MemoryStore;
use crate::store::{Conditional, Page, StoreError, WebhookStore};
use crate::{TenantId, Webhook, WebhookId};

impl WebhookStore for MemoryStore {
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

    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .webhooks
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, w)| w.clone())
            .collect())
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

    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<Conditional, StoreError> {
        let mut inner = self.lock();
        let Some(webhook) = inner.webhooks.get_mut(&(tenant.clone(), id)) else {
            return Ok(Conditional::Refused);
        };
        let changes = webhook.slow_since.is_some() != since.is_some();
        if changes {
            webhook.slow_since = since;
        }
        Ok(Conditional::of(changes))
    }
}
