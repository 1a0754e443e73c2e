//! The event aggregate: the kept copy of each accepted event, and the
//! counters that number its manual attempts.

use std::future::Future;

use super::{Kept, Page, StoreError};
use crate::audit::{Actor, AuditEntry};
use crate::delivery_log::DeliveryRecord;
use crate::event::{EventId, Subject};
use crate::event_log::{EventFilter, StoredEvent};
use crate::{TenantId, WebhookId};

pub trait EventStore: Send + Sync {
    /// Keeps an accepted event; an event already kept keeps its first copy.
    /// Says which: an event new here has no attempt recorded yet.
    fn put_event(
        &self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send;

    /// Keeps a batch's events, each as [`EventStore::put_event`] does: one
    /// result per event, in order. The DynamoDB store writes them in one
    /// request.
    fn put_events(
        &self,
        events: &[StoredEvent],
    ) -> impl Future<Output = Vec<Result<Kept, StoreError>>> + Send;

    /// One of the tenant's events with its payload, without its attempts:
    /// whatever the number of attempts recorded for it, two small items read.
    fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// One of the tenant's events, with its payload and every recorded
    /// attempt to deliver it (ordered by webhook, then attempt).
    fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError>> + Send;

    /// The tenant's events, newest first by their timestamp, starting after
    /// `after` (a [`StoredEvent::sort_key`]). Without their payload: a
    /// listing reads the events' index, which holds none.
    fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> impl Future<Output = Result<Page<StoredEvent, String>, StoreError>> + Send;

    /// Deletes the event's payload from every item and index that holds
    /// it; the event stays listed with its deliveries, its payload
    /// `deleted`. `false` when the tenant has no such event. Doing it again
    /// is no error. With its audit `entry`, written when a payload went.
    fn delete_payload(
        &self,
        tenant: &TenantId,
        id: &EventId,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the payload of every event of the tenant with this subject
    /// (one person's check produces several); how many events it found.
    /// Each deletion writes its `event.payload_deleted` entry, by `actor`,
    /// in its own transaction.
    fn delete_subject_payloads(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        actor: &Actor,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Numbers the next manual attempt of each of `webhooks` for the event:
    /// [`crate::retry::FIRST_MANUAL_ATTEMPT`], then one more each time, from
    /// a counter per webhook kept on the event, so two calls at once never
    /// get the same number and no manual attempt takes an automatic one's.
    /// `now` (Unix seconds) is kept beside each counter. `None` when the
    /// event is not kept. With its audit `entry`, in one transaction.
    fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
        now: i64,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<Option<Vec<u32>>, StoreError>> + Send;

    /// Gives up the claim of manual attempt `attempt` of `webhook` for the
    /// event, whose message could not be queued: it no longer counts as
    /// pending, so a recovery may queue the event again. A later attempt
    /// numbered meanwhile keeps its own claim.
    fn release_manual_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        attempt: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
