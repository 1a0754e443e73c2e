//! The delivery record aggregate: one record per attempt, in its event's
//! partition, and each webhook's delivery log.

use std::collections::HashSet;
use std::future::Future;

use super::{Page, StoreError};
use crate::delivery_log::{DeliveryFilter, DeliveryRecord};
use crate::delivery_stats::Samples;
use crate::event::EventId;
use crate::{TenantId, WebhookId};

/// One attempt to deliver one event to one webhook: a delivery record's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub tenant: TenantId,
    pub webhook: WebhookId,
    pub event: EventId,
    pub attempt: u32,
}

impl AttemptKey {
    pub fn of(tenant: &TenantId, event: &EventId, webhook: WebhookId, attempt: u32) -> Self {
        Self {
            tenant: tenant.clone(),
            webhook,
            event: event.clone(),
            attempt,
        }
    }

    /// The key of the attempt `record` records.
    pub fn of_record(record: &DeliveryRecord) -> Self {
        Self::of(
            &record.tenant_id,
            &record.event_id,
            record.webhook_id,
            record.attempt,
        )
    }
}

pub trait DeliveryStore: Send + Sync {
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

    /// The event's recorded attempts to one webhook, in any order: one query
    /// of the event's partition.
    fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, StoreError>> + Send;

    /// What the stats need of a webhook's attempts since `since` (a
    /// [`crate::delivery_log::sortable_time`]), newest first, at most
    /// `limit`, and whether there are more.
    fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Samples, StoreError>> + Send;

    /// A webhook's delivery log, newest first, starting after `after`
    /// (a [`DeliveryRecord::cursor`]), only the attempts `filter` keeps. A
    /// page may hold fewer than `limit` with a `next` when the filter is
    /// sparse: DynamoDB reads a bounded number of pages per call.
    fn list_deliveries(
        &self,
        webhook: WebhookId,
        filter: &DeliveryFilter,
        limit: usize,
        after: Option<String>,
    ) -> impl Future<Output = Result<Page<DeliveryRecord, String>, StoreError>> + Send;
}
