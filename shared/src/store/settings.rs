//! The tenant settings aggregate: one item per tenant that chose something.

use std::future::Future;

use super::StoreError;
use crate::audit::AuditEntry;
use crate::{TenantId, TenantSettings, Webhook};

pub trait SettingsStore: Send + Sync {
    /// The tenant's settings: the defaults when it never chose.
    fn settings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<TenantSettings, StoreError>> + Send;

    /// Replaces the tenant's settings, with the audit `entry`.
    fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every webhook of the tenant (as [`super::WebhookStore::webhooks_of`])
    /// and its settings, in one read: what the dispatcher needs of a tenant.
    fn webhooks_with_settings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<(Vec<Webhook>, TenantSettings), StoreError>> + Send;
}
