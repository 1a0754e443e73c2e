//! The webhook aggregate: a tenant's registrations and the slow-lane mark.

use std::future::Future;

use time::OffsetDateTime;

use super::{Conditional, Page, StoreError};
use crate::{TenantId, Webhook, WebhookId};

pub trait WebhookStore: Send + Sync {
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

    /// Every webhook of the tenant (at most the per-tenant limit): one query.
    fn webhooks_of(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Webhook>, StoreError>> + Send;

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
}
