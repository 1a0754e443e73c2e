//! A store wrapper that counts store calls and times each delivery from its
//! start (`attempted_at`) to the moment its outcome is recorded.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shared::delivery_log::DeliveryRecord;
use shared::event::EventId;
use shared::store::{Page, Store, StoreError};
use shared::{TenantId, Webhook, WebhookId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct TimingStore<S> {
    pub inner: S,
    pub latencies_us: Mutex<Vec<u64>>,
    pub tenant_queries: AtomicU64,
    pub recorded_reads: AtomicU64,
    pub keys_read: AtomicU64,
    pub writes: AtomicU64,
}

impl<S> TimingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            latencies_us: Mutex::new(Vec::new()),
            tenant_queries: AtomicU64::new(0),
            recorded_reads: AtomicU64::new(0),
            keys_read: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    pub fn reset(&self) {
        if let Ok(mut l) = self.latencies_us.lock() {
            l.clear();
        }
        for c in [
            &self.tenant_queries,
            &self.recorded_reads,
            &self.keys_read,
            &self.writes,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn take_latencies(&self) -> Vec<u64> {
        self.latencies_us
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// DynamoDB requests these calls make: a query per tenant, a BatchGetItem
    /// per 100 keys, a PutItem per outcome.
    pub fn dynamodb_requests(&self) -> u64 {
        self.tenant_queries.load(Ordering::SeqCst)
            + self.recorded_reads.load(Ordering::SeqCst)
            + self.writes.load(Ordering::SeqCst)
    }
}

impl<S: Store> Store for TimingStore<S> {
    async fn create_webhook(&self, webhook: &Webhook, limit: u32) -> Result<(), StoreError> {
        self.inner.create_webhook(webhook, limit).await
    }
    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        self.inner.get_webhook(tenant, id).await
    }
    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        self.inner.list_webhooks(tenant, limit, after).await
    }
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.update_webhook(webhook, loaded_at).await
    }
    async fn delete_webhook(&self, tenant: &TenantId, id: WebhookId) -> Result<(), StoreError> {
        self.inner.delete_webhook(tenant, id).await
    }
    async fn put_api_key(&self, key_hash: &str, tenant: &TenantId) -> Result<(), StoreError> {
        self.inner.put_api_key(key_hash, tenant).await
    }
    async fn tenant_for_api_key(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        self.inner.tenant_for_api_key(key_hash).await
    }
    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        self.tenant_queries.fetch_add(1, Ordering::Relaxed);
        self.inner.webhooks_of(tenant).await
    }
    async fn recorded_deliveries(
        &self,
        pairs: &[(WebhookId, EventId)],
    ) -> Result<HashSet<(WebhookId, EventId)>, StoreError> {
        self.recorded_reads
            .fetch_add(pairs.len().div_ceil(100) as u64, Ordering::Relaxed);
        self.keys_read
            .fetch_add(pairs.len() as u64, Ordering::Relaxed);
        self.inner.recorded_deliveries(pairs).await
    }
    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        if let Ok(started) = OffsetDateTime::parse(&record.attempted_at, &Rfc3339) {
            let us = (OffsetDateTime::now_utc() - started)
                .whole_microseconds()
                .max(0) as u64;
            if let Ok(mut l) = self.latencies_us.lock() {
                l.push(us);
            }
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.record_delivery(record).await
    }
    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        self.inner.list_deliveries(webhook, limit, after).await
    }
}
