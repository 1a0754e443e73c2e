//! Tenant settings: item `TENANT#<tenant>` / `WEBHOOKS`, read with the
//! tenant's webhooks in one query (see [`keys::SETTINGS_SK`]).

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::query;
use super::{DynamoStore, Keyed, backend, item, key, parse};
use crate::audit::AuditEntry;
use crate::store::{SettingsStore, StoreError, keys};
use crate::{TenantId, TenantSettings, Webhook};

fn settings_key(tenant: &TenantId) -> super::Item {
    key(keys::tenant_pk(tenant), keys::SETTINGS_SK.into())
}

/// One item of the tenant's `WEBHOOK` range.
enum Found {
    Webhook(Box<Webhook>),
    Settings(TenantSettings),
}

impl SettingsStore for DynamoStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        // Consistent: a change just made is what the next read shows.
        match self.get(settings_key(tenant), true).await? {
            Some(item) => parse::<Keyed<TenantSettings>>(item).map(|k| k.attributes),
            None => Ok(TenantSettings::default()),
        }
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let item = item(Keyed {
            pk: keys::tenant_pk(tenant),
            sk: keys::SETTINGS_SK.to_owned(),
            attributes: settings,
        })?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(backend)?;
        self.audited(TransactWriteItem::builder().put(put).build(), entry)
            .await?;
        Ok(())
    }

    async fn webhooks_with_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<Webhook>, TenantSettings), StoreError> {
        let query = self
            .partition(keys::tenant_pk(tenant), "WEBHOOK".into())
            .await?;
        let found = query::all(query, |item| {
            let sk = item.get(keys::SK).and_then(|v| v.as_s().ok());
            if sk.map(String::as_str) == Some(keys::SETTINGS_SK) {
                parse::<Keyed<TenantSettings>>(item).map(|k| Found::Settings(k.attributes))
            } else {
                parse::<Keyed<Webhook>>(item).map(|k| Found::Webhook(Box::new(k.attributes)))
            }
        })
        .await?;
        let mut webhooks = Vec::with_capacity(found.len());
        let mut settings = TenantSettings::default();
        for f in found {
            match f {
                Found::Webhook(w) => webhooks.push(*w),
                Found::Settings(s) => settings = s,
            }
        }
        Ok((webhooks, settings))
    }
}
