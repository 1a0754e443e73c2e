//! A store wrapper that counts store calls and times each delivery from its
//! start (`attempted_at`) to the moment its outcome is recorded.
//! It forwards every method, by design: it measures the in-memory store too
//! (no SDK to hook an interceptor into), and "to recorded" is a moment only
//! the store sees. The functions' own store has no such wrapper.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shared::api_key::ApiKey;
use shared::audit::{AuditEntry, AuditId};
use shared::delivery_log::DeliveryRecord;
use shared::event::{EventId, Subject};
use shared::event_log::{EventFilter, StoredEvent};
use shared::recovery::state::RecoveryState;
use shared::store::prelude::*;
use shared::store::{
    Allowance, AttemptKey, AuditQuery, Conditional, Kept, Page, RecoveryWrite, StoreError,
};
use shared::{TenantId, TenantSettings, Webhook, WebhookId};
use time::{Date, Month, OffsetDateTime, Time};

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

impl<S: WebhookStore> WebhookStore for TimingStore<S> {
    async fn create_webhook(
        &self,
        webhook: &Webhook,
        limit: u32,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.create_webhook(webhook, limit, entry).await
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
    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        self.inner.webhooks_of(tenant).await
    }
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.update_webhook(webhook, loaded_at, entry).await
    }
    async fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.delete_webhook(tenant, id, entry).await
    }
    /// Counted with the writes: one conditional UpdateItem on a change of state.
    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<Conditional, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.set_slow(tenant, id, since).await
    }
    /// Counted with the writes: one conditional UpdateItem for a batch's
    /// attempts at a webhook (two when the guess of a waiting queue was stale).
    async fn reserve_slots(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        want: shared::throttle::SlotRequest,
    ) -> Result<Option<i64>, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.reserve_slots(tenant, id, want).await
    }
    /// Counted with the writes: one conditional UpdateItem on a change of state.
    async fn change_streak(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        change: &shared::store::StreakChange,
    ) -> Result<Conditional, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.change_streak(tenant, id, change).await
    }
}

impl<S: ApiKeyStore> ApiKeyStore for TimingStore<S> {
    async fn put_api_key(
        &self,
        key: &ApiKey,
        limit: Option<usize>,
        entry: &AuditEntry,
    ) -> Result<Conditional, StoreError> {
        self.inner.put_api_key(key, limit, entry).await
    }
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(key_hash).await
    }
    async fn current_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.current_api_key(key_hash).await
    }
    async fn api_keys_of(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.api_keys_of(tenant).await
    }
    async fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<shared::store::Keep<'_>>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.revoke_api_key(key, at, keep, entry).await
    }
    async fn expire_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.expire_api_key(key, at, entry).await
    }
    async fn touch_api_key(&self, key: &ApiKey, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.touch_api_key(key, now).await
    }
}

impl<S: SettingsStore> SettingsStore for TimingStore<S> {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        self.inner.settings(tenant).await
    }
    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.put_settings(tenant, settings, entry).await
    }
    /// The dispatcher's one query per tenant: counted.
    async fn webhooks_with_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<Webhook>, TenantSettings), StoreError> {
        self.tenant_queries.fetch_add(1, Ordering::Relaxed);
        self.inner.webhooks_with_settings(tenant).await
    }
}

impl<S: EventStore> EventStore for TimingStore<S> {
    /// Counted with the writes: keeping each event is one write request.
    async fn put_event(&self, event: &StoredEvent) -> Result<Kept, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.put_event(event).await
    }
    /// One write request for the batch (a transaction), or one for a
    /// single event.
    async fn put_events(&self, events: &[StoredEvent]) -> Vec<Result<Kept, StoreError>> {
        if !events.is_empty() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.put_events(events).await
    }
    async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.get_event(tenant, id).await
    }
    async fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError> {
        self.inner.event_with_deliveries(tenant, id).await
    }
    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        self.inner.list_events(tenant, filter, limit, after).await
    }
    async fn delete_payload(
        &self,
        tenant: &TenantId,
        id: &EventId,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.inner.delete_payload(tenant, id, entry).await
    }
    async fn delete_subject_payloads(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        actor: &shared::audit::Actor,
    ) -> Result<u64, StoreError> {
        self.inner
            .delete_subject_payloads(tenant, subject, actor)
            .await
    }
    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<Vec<u32>>, StoreError> {
        self.inner
            .number_manual_attempts(tenant, event, webhooks, now, entry)
            .await
    }

    async fn release_manual_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        attempt: u32,
    ) -> Result<(), StoreError> {
        self.inner
            .release_manual_attempt(tenant, event, webhook, attempt)
            .await
    }
}

impl<S: DeliveryStore> DeliveryStore for TimingStore<S> {
    async fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> Result<HashSet<AttemptKey>, StoreError> {
        self.recorded_reads
            .fetch_add(attempts.len().div_ceil(100) as u64, Ordering::Relaxed);
        self.keys_read
            .fetch_add(attempts.len() as u64, Ordering::Relaxed);
        self.inner.recorded_deliveries(attempts).await
    }
    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        if let Some(started) = parse_sortable(&record.attempted_at) {
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
    async fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.deliveries_to(tenant, event, webhook).await
    }

    async fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> Result<shared::delivery_stats::Samples, StoreError> {
        self.inner.delivery_samples(webhook, since, limit).await
    }
    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        filter: &shared::delivery_log::DeliveryFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        self.inner
            .list_deliveries(webhook, filter, limit, after)
            .await
    }
}

impl<S: RecoveryStore> RecoveryStore for TimingStore<S> {
    async fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.inner
            .claim_recovery_attempt(tenant, event, webhook, manual_recorded, now)
            .await
    }

    async fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> Result<Option<RecoveryState>, StoreError> {
        self.inner.recovery(tenant, webhook).await
    }

    async fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite<'_>,
    ) -> Result<Conditional, StoreError> {
        self.inner.save_recovery(state, write).await
    }
}

impl<S: AllowanceStore> AllowanceStore for TimingStore<S> {
    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<Conditional, StoreError> {
        self.inner
            .take_allowance(tenant, allowance, window, n, limit)
            .await
    }
}

impl<S: AuditStore> AuditStore for TimingStore<S> {
    async fn audit_log(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
    ) -> Result<Page<AuditEntry, AuditId>, StoreError> {
        self.inner.audit_log(tenant, query).await
    }
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.record(entry).await
    }
}

/// `attempted_at` (`2026-11-25T17:00:00.500000Z`, always that shape) read
/// back by hand: this runs once per delivery inside the measured window, and
/// `time`'s RFC 3339 parser cost more than the rest of this wrapper.
fn parse_sortable(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    if b.len() != 27 {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = Date::from_calendar_date(
        i32::try_from(num(0, 4)?).ok()?,
        Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?,
        u8::try_from(num(8, 10)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_micro(
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(14, 16)?).ok()?,
        u8::try_from(num(17, 19)?).ok()?,
        num(20, 26)?,
    )
    .ok()?;
    Some(date.with_time(time).assume_utc())
}

#[cfg(test)]
mod tests {
    use shared::delivery_log::sortable_time;
    use time::macros::datetime;

    use super::parse_sortable;

    #[test]
    fn reads_back_what_the_record_holds() {
        let t = datetime!(2026-11-25 17:00:00.123456 UTC);
        assert_eq!(parse_sortable(&sortable_time(t)), Some(t));
        assert_eq!(parse_sortable("2026-11-25T17:00:00Z"), None);
    }
}
