//! Webhooks, and what the dispatcher writes on them.

use time::OffsetDateTime;

use super::MemoryStore;
use crate::audit::AuditEntry;
use crate::store::{Conditional, Page, StoreError, StreakChange, WebhookStore};
use crate::throttle::{SlotRequest, unix_ms};
use crate::{Status, TenantId, Webhook, WebhookId};

impl WebhookStore for MemoryStore {
    async fn create_webhook(
        &self,
        webhook: &Webhook,
        limit: u32,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
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
        inner.audit(entry);
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
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner
            .webhooks
            .get_mut(&(webhook.tenant_id.clone(), webhook.id))
        {
            Some(slot) if slot.updated_at == loaded_at => {
                *slot = webhook.clone();
                inner.audit(entry);
                Ok(())
            }
            Some(_) => Err(StoreError::Conflict),
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.webhooks.remove(&(tenant.clone(), id)) {
            Some(_) => {
                inner.audit(entry);
                Ok(())
            }
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

    async fn reserve_slots(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        want: SlotRequest,
    ) -> Result<Option<i64>, StoreError> {
        let mut inner = self.lock();
        let Some(webhook) = inner.webhooks.get_mut(&(tenant.clone(), id)) else {
            return Ok(None);
        };
        let now_ms = unix_ms(want.now);
        // As the table's writes: a wait that goes on keeps its start; one
        // that begins (more than the slot of `now`) starts now.
        let first = match webhook.throttle_next {
            Some(next) if next > now_ms => {
                webhook.throttled_since.get_or_insert(want.now);
                next
            }
            _ => {
                webhook.throttled_since = (want.count > 1).then_some(want.now);
                now_ms
            }
        };
        webhook.throttle_next = Some(first + want.span_ms());
        Ok(Some(first))
    }

    async fn change_streak(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        change: &StreakChange,
    ) -> Result<Conditional, StoreError> {
        let mut inner = self.lock();
        let Some(w) = inner.webhooks.get_mut(&(tenant.clone(), id)) else {
            return Ok(Conditional::Refused);
        };
        let applies = match change {
            StreakChange::Began { .. } => w.failing_since.is_none(),
            StreakChange::Noticed { since, .. } => {
                w.failing_since == Some(*since) && w.failing_notice_at.is_none()
            }
            StreakChange::Ended => w.failing_since.is_some(),
            StreakChange::Disabled { since, .. } => {
                w.failing_since == Some(*since) && w.status == Status::Active
            }
        };
        if applies {
            match change {
                StreakChange::Began { at, error } => {
                    w.failing_since = Some(*at);
                    w.last_error = Some(error.clone());
                }
                StreakChange::Noticed { at, error, .. } => {
                    w.failing_notice_at = Some(*at);
                    w.last_error = Some(error.clone());
                }
                StreakChange::Ended => {
                    w.failing_since = None;
                    w.failing_notice_at = None;
                    w.last_error = None;
                }
                StreakChange::Disabled {
                    at,
                    reason,
                    error,
                    entry,
                    ..
                } => {
                    w.status = Status::Inactive;
                    w.disabled_reason = Some(reason.clone());
                    w.last_error = Some(error.clone());
                    w.updated_at = *at;
                    inner.audit(entry);
                }
            }
        }
        Ok(Conditional::of(applies))
    }
}
