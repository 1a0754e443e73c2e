//! The webhook aggregate: a tenant's registrations, and what the
//! dispatcher writes on them: the slow-lane mark, the throttle's slots and
//! the failing streak.

use std::future::Future;

use time::OffsetDateTime;

use super::{Conditional, Page, StoreError};
use crate::audit::AuditEntry;
use crate::throttle::SlotRequest;
use crate::{TenantId, Webhook, WebhookId};

pub trait WebhookStore: Send + Sync {
    /// Creates a webhook unless the tenant already holds `limit` of them,
    /// with its audit `entry`.
    fn create_webhook(
        &self,
        webhook: &Webhook,
        limit: u32,
        entry: &AuditEntry,
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

    /// Every webhook of the tenant (at most the per-tenant limit): one query.
    fn webhooks_of(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Webhook>, StoreError>> + Send;

    /// Replaces a webhook if it is still as it was when loaded (its
    /// `updated_at` is `loaded_at`): `Conflict` if another write came first,
    /// `NotFound` if it was deleted. With its audit `entry`.
    fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the webhook, with its audit `entry`: `NotFound` if it is gone.
    fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the webhook slow since `since`, or clears the mark (`None`),
    /// only if that changes it: `Applied` when this call changed it. A
    /// webhook that no longer exists changes nothing. The customer's
    /// `updated_at` stays.
    fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send;

    /// Reserves `want.count` consecutive delivery slots under the webhook's
    /// throttle, a gap apart, and returns the first (Unix ms): `now` when
    /// nothing waits, else the slot after the last one taken. One write in
    /// the common case, whatever the count. `None` when the webhook no
    /// longer exists.
    fn reserve_slots(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        want: SlotRequest,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// A change of the webhook's failing streak, only if its condition
    /// holds (see [`StreakChange`]): `Applied` when this call made it.
    fn change_streak(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        change: &StreakChange,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send;
}

/// The writes a failing streak makes, each on a change of state only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreakChange {
    /// The first failure after a success (or ever): `failing_since = at`,
    /// unless a streak is running.
    Began { at: OffsetDateTime, error: String },
    /// The streak's notice: `failing_notice_at = at`, if this streak (the
    /// one since `since`) has not had one.
    Noticed {
        since: OffsetDateTime,
        at: OffsetDateTime,
        error: String,
    },
    /// A success: the streak's fields removed, if one was running.
    Ended,
    /// The webhook set inactive with `reason`, if it is still active and
    /// still in the streak since `since`; its `updated_at` becomes `at`.
    /// The platform's audit `entry` is written with it.
    Disabled {
        since: OffsetDateTime,
        at: OffsetDateTime,
        reason: String,
        error: String,
        entry: Box<AuditEntry>,
    },
}
