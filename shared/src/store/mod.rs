//! Persistence behind a small trait: DynamoDB in production and integration
//! tests, an in-memory map for fast unit tests of handler logic.

mod api_key_items;
mod dynamo;
pub mod keys;
mod memory;
mod modify;
mod record_batch;

use std::collections::HashSet;
use std::future::Future;

use time::OffsetDateTime;

pub use dynamo::{DynamoStore, create_table};
pub use keys::Allowance;
pub use memory::MemoryStore;
pub use modify::modify;

use crate::api_key::ApiKey;
use crate::delivery_log::DeliveryRecord;
use crate::event::EventId;
use crate::event_log::{EventFilter, StoredEvent};
use crate::recovery::RecoveryState;
use crate::{TenantId, Webhook, WebhookId};

/// One attempt to deliver one event to one webhook: a delivery record's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub tenant: TenantId,
    pub webhook: WebhookId,
    pub event: EventId,
    pub attempt: u32,
}

/// What a write that keeps the first copy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Written now: nothing was there before.
    New,
    /// A copy was there already, and stays.
    Before,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// Changed by someone else since it was read.
    #[error("changed concurrently")]
    Conflict,
    #[error("the tenant already has the maximum of {limit} webhooks")]
    LimitReached { limit: u32 },
    /// DynamoDB failed, was throttled or returned an item that does not map.
    #[error("store backend: {0}")]
    Backend(String),
}

/// The condition of a recovery's state write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryWrite {
    /// A new recovery: only if the webhook's last one is not running at
    /// `now` (Unix seconds; see [`RecoveryState::running`]).
    Start { now: i64 },
    /// Progress: only while the webhook's recovery is still this one.
    Advance,
}

/// One page of a newest-first listing; `next` is where the following page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

pub trait Store: Send + Sync {
    /// Creates a webhook unless the tenant already holds `limit` of them.
    fn create_webhook(
        &self,
        webhook: &Webhook,
        limit: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> impl Future<Output = Result<Option<Webhook>, StoreError>> + Send;

    /// The tenant's webhooks, newest first, starting after `after`.
    fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> impl Future<Output = Result<Page<Webhook, WebhookId>, StoreError>> + Send;

    /// Replaces a webhook if it is still as it was when loaded (its
    /// `updated_at` is `loaded_at`): `Conflict` if another write came first,
    /// `NotFound` if it was deleted.
    fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new API key (its hash and what is known of it).
    fn put_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The key with this hash, whatever its state; the caller checks it.
    fn api_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// The tenant's keys, newest first, revoked and expired ones included.
    /// A key stored before keys had ids is listed once it has been used.
    fn api_keys_of(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Revokes `key` at `at`; with `keep`, only while that other key is not
    /// revoked either (both in one transaction, so two revocations at once
    /// cannot leave the tenant without a full key). `NotFound` if `key` is
    /// gone or already revoked, `Conflict` if `keep` was revoked meanwhile.
    fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<&ApiKey>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes `key` expire at `at` unless it is revoked or expires sooner
    /// (a rotation's overlap). `NotFound` if it is gone or revoked.
    fn expire_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `last_used_at` = `now` unless it is less than
    /// [`crate::api_key::LAST_USED_EVERY`] old (a conditional write: at most
    /// once an hour per key, whatever the number of containers). A key
    /// stored before keys had ids gets one, and joins its tenant's list.
    fn touch_api_key(
        &self,
        key: &ApiKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every webhook of the tenant (at most the per-tenant limit): one query.
    fn webhooks_of(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Webhook>, StoreError>> + Send;

    /// Which of these attempts already have a recorded outcome.
    fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> impl Future<Output = Result<HashSet<AttemptKey>, StoreError>> + Send;

    /// Records an outcome, one record per attempt. Records that end together
    /// may be written together (DynamoDB: `BatchWriteItem`, which takes no
    /// condition: an attempt recorded twice keeps one of its records).
    fn record_delivery(
        &self,
        record: &DeliveryRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps an accepted event; an event already kept keeps its first copy.
    /// Says which: an event new here has no attempt recorded yet.
    fn put_event(
        &self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send;

    /// One of the tenant's events, without its attempts: one item read,
    /// whatever the number of attempts recorded for it.
    fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// One of the tenant's events with every recorded attempt to deliver it
    /// (ordered by webhook, then attempt).
    fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError>> + Send;

    /// The tenant's events, newest first by their timestamp, starting after
    /// `after` (a [`StoredEvent::sort_key`]).
    fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> impl Future<Output = Result<Page<StoredEvent, String>, StoreError>> + Send;

    /// Marks the webhook slow since `since`, or clears the mark (`None`),
    /// only if that changes it: true when this call changed it. A webhook that
    /// no longer exists changes nothing. The customer's `updated_at` stays.
    fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes `n` from the tenant's `allowance` of `limit` for one window of
    /// time (see [`Allowance::window_of`]): false (nothing taken) when fewer
    /// than `n` are left. One conditional write; the counter expires a day
    /// after its window.
    fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Numbers the next manual attempt of each of `webhooks` for the event:
    /// [`crate::retry::FIRST_MANUAL_ATTEMPT`], then one more each time, from
    /// a counter per webhook kept on the event, so two calls at once never
    /// get the same number and no manual attempt takes an automatic one's.
    /// `None` when the event is not kept.
    fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
    ) -> impl Future<Output = Result<Option<Vec<u32>>, StoreError>> + Send;

    /// The event's recorded attempts to one webhook, in any order: one query
    /// of the event's partition.
    fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, StoreError>> + Send;

    /// Numbers a manual attempt of `webhook` for the event, as
    /// [`Store::number_manual_attempts`] does, for a recovery: only when no
    /// manual attempt numbered in the last [`crate::recovery::PENDING_SECS`]
    /// before `now` (Unix seconds) is still unrecorded, i.e. the counter is
    /// at most `manual_recorded`. `None` when one is pending or the event is
    /// gone. One conditional write: two recoveries at once never both queue
    /// the same event.
    fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// The webhook's recovery: the one running, or the last one.
    fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> impl Future<Output = Result<Option<RecoveryState>, StoreError>> + Send;

    /// Writes a recovery's state if `write`'s condition holds: false when
    /// it does not (another recovery runs, or replaced this one).
    fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// What the stats need of a webhook's attempts since `since` (a
    /// [`crate::delivery_log::sortable_time`]), newest first, at most
    /// `limit`, and whether there are more.
    fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> impl Future<Output = Result<crate::delivery_stats::Samples, StoreError>> + Send;

    /// A webhook's delivery log, newest first, starting after `after`
    /// (a [`DeliveryRecord::cursor`]), only the attempts `filter` keeps. A
    /// page may hold fewer than `limit` with a `next` when the filter is
    /// sparse: DynamoDB reads a bounded number of pages per call.
    fn list_deliveries(
        &self,
        webhook: WebhookId,
        filter: &crate::delivery_log::DeliveryFilter,
        limit: usize,
        after: Option<String>,
    ) -> impl Future<Output = Result<Page<DeliveryRecord, String>, StoreError>> + Send;
}
