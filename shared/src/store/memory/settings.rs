//! Tenant settings.

use super::MemoryStore;
use crate::audit::AuditEntry;
use crate::store::{SettingsStore, StoreError, WebhookStore};
use crate::{TenantId, TenantSettings, Webhook};

impl SettingsStore for MemoryStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self
            .lock()
            .settings
            .get(tenant)
            .copied()
            .unwrap_or_default())
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.settings.insert(tenant.clone(), *settings);
        inner.audit(entry);
        Ok(())
    }

    async fn webhooks_with_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<Webhook>, TenantSettings), StoreError> {
        let webhooks = self.webhooks_of(tenant).await?;
        Ok((webhooks, self.settings(tenant).await?))
    }
}
