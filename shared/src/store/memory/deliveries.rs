//! Delivery records: by webhook (the log), by event and by attempt key.

use std::collections::{BTreeMap, HashSet};

use super::{MemoryStore, page_desc};
use crate::delivery_log::{DeliveryCursor, DeliveryFilter, DeliveryRecord};
use crate::delivery_stats::{DeliverySample, Samples};
use crate::event::EventId;
use crate::store::{AttemptKey, DeliveryStore, Page, StoreError};
use crate::{TenantId, WebhookId};

impl DeliveryStore for MemoryStore {
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
        let key = AttemptKey::of_record(record);
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
