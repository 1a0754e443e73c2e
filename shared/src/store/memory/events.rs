//! Events, and the counters that number their manual attempts.

use std::ops::Bound;

use super::MemoryStore;
use crate::audit::{self, Actor, AuditEntry};
use crate::delivery_log::DeliveryRecord;
use crate::event::{EventId, Subject};
use crate::event_log::{EventFilter, PayloadState, StoredEvent};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::store::{EventStore, Kept, Page, StoreError};
use crate::{TenantId, WebhookId};

impl EventStore for MemoryStore {
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

    async fn put_events(&self, events: &[StoredEvent]) -> Vec<Result<Kept, StoreError>> {
        let mut kept = Vec::with_capacity(events.len());
        for event in events {
            kept.push(self.put_event(event).await);
        }
        kept
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

    async fn delete_payload(
        &self,
        tenant: &TenantId,
        id: &EventId,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(event) = inner.event_mut(tenant, id) else {
            return Ok(false);
        };
        // As DynamoDB: a payload never written, or deleted already, is no
        // change, and no entry.
        let held = event.payload == PayloadState::Kept;
        erase(event);
        if held {
            inner.audit(entry);
        }
        Ok(true)
    }

    async fn delete_subject_payloads(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        actor: &Actor,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let Some(events) = inner.events.get_mut(tenant) else {
            return Ok(0);
        };
        let mut entries = Vec::new();
        let mut found = 0;
        for event in events
            .values_mut()
            .filter(|e| e.subject.as_ref() == Some(subject))
        {
            if event.payload == PayloadState::Kept {
                entries.push(audit::payload_deleted(
                    tenant,
                    &event.id,
                    Some(subject),
                    actor,
                ));
            }
            erase(event);
            found += 1;
        }
        for entry in &entries {
            inner.audit(entry);
        }
        Ok(found)
    }

    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<Vec<u32>>, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.contains(&(tenant.clone(), event.clone())) {
            return Ok(None);
        }
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
        inner.audit(entry);
        Ok(Some(numbers))
    }

    async fn release_manual_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        attempt: u32,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let claim = inner
            .manual_attempts
            .get_mut(&(tenant.clone(), event.clone(), webhook));
        if let Some((n, at)) = claim
            && FIRST_MANUAL_ATTEMPT - 1 + *n == attempt
        {
            *at = 0;
        }
        Ok(())
    }
}

/// What deleting a payload leaves: the event, saying its payload was deleted.
fn erase(event: &mut StoredEvent) {
    // Too large or never kept: nothing was held, and that stays the reason.
    if event.holds_payload() {
        event.data = None;
        event.payload = PayloadState::Deleted;
    }
}
