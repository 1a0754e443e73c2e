//! Tenant settings: the defaults until changed, only the tenant's, and read
//! with the tenant's webhooks in one call.

use shared::audit::operator as audit;
use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::{TenantId, TenantSettings};
use testkit::fresh_store;

use super::webhook;

async fn contract(store: &(impl SettingsStore + WebhookStore)) {
    let acme = TenantId::parse("acme").unwrap();
    let other = TenantId::parse("other").unwrap();
    assert_eq!(
        store.settings(&acme).await.unwrap(),
        TenantSettings::default()
    );
    let chosen = TenantSettings {
        payload_retention_hours: 0,
        keep_response_bodies: false,
    };
    store
        .put_settings(&acme, &chosen, &audit::settings(&acme, &chosen))
        .await
        .unwrap();
    assert_eq!(store.settings(&acme).await.unwrap(), chosen);
    assert_eq!(
        store.settings(&other).await.unwrap(),
        TenantSettings::default()
    );
    let hooks = [webhook("acme"), webhook("acme")];
    for w in &hooks {
        store
            .create_webhook(w, 50, &audit::created(w))
            .await
            .unwrap();
    }
    let theirs = webhook("other");
    store
        .create_webhook(&theirs, 50, &audit::created(&theirs))
        .await
        .unwrap();
    let (mut found, settings) = store.webhooks_with_settings(&acme).await.unwrap();
    found.sort_by_key(|w| w.id);
    let mut want = hooks.to_vec();
    want.sort_by_key(|w| w.id);
    assert_eq!((found, settings), (want, chosen));
    // The settings item is no webhook: the tenant's listing is unchanged.
    assert_eq!(store.webhooks_of(&acme).await.unwrap().len(), 2);
    let (theirs, defaults) = store.webhooks_with_settings(&other).await.unwrap();
    assert_eq!((theirs.len(), defaults), (1, TenantSettings::default()));
}

#[tokio::test]
async fn dynamo_store_keeps_the_settings_contract() {
    contract(&fresh_store().await).await;
}

#[tokio::test]
async fn memory_store_keeps_the_settings_contract() {
    contract(&MemoryStore::default()).await;
}
