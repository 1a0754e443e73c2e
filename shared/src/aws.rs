//! The AWS SDK configuration of the Lambda functions.

use std::collections::HashSet;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::delivery_log::DeliveryRecord;
use crate::event::EventId;
use crate::event_log::{EventFilter, StoredEvent};
use crate::store::{Allowance, AttemptKey, DynamoStore, Kept, Page, Store, StoreError};
use crate::{TenantId, Webhook, WebhookId};

/// The roots AWS service endpoints chain to (Amazon Trust Services: Amazon
/// Root CA 1-4 and Starfield Services Root CA G2), from Mozilla's store.
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon_roots.pem");

/// The SDK configuration from the environment, as `aws_config::load_from_env`,
/// with one difference: TLS trusts only the Amazon roots. The default client
/// finds and parses the system's whole CA bundle at start-up (about 0.6 ms of
/// a 2 ms cold start); these five roots cost next to nothing. The functions
/// only ever talk to AWS endpoints through the SDK.
pub async fn load_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS);
    let loader = match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => loader.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https(),
        ),
        // Not expected with the embedded roots; the default client still works.
        Err(_) => loader,
    };
    loader.load().await
}

/// The DynamoDB store of the functions, created on first use: loading the SDK
/// configuration and building its client cost about 0.4 ms, a third of a
/// cold start, and nothing needs them before the first invocation. Each
/// method loads them if that has not happened yet (once; concurrent first
/// calls wait for the same load), then calls [`DynamoStore`].
///
/// `DynamoStore::lazy(table)` makes one.
pub struct LazyDynamoStore {
    table: String,
    store: OnceCell<DynamoStore>,
}

impl DynamoStore {
    /// A store whose SDK configuration and client are made on first use.
    pub fn lazy(table: impl Into<String>) -> LazyDynamoStore {
        LazyDynamoStore {
            table: table.into(),
            store: OnceCell::new(),
        }
    }
}

impl LazyDynamoStore {
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the client has been made (tests, benchmarks).
    pub fn is_initialized(&self) -> bool {
        self.store.initialized()
    }

    /// The store, made on the first call. A failure is that call's
    /// [`StoreError::Backend`]; the next call tries again.
    pub async fn get(&self) -> Result<&DynamoStore, StoreError> {
        self.store
            .get_or_try_init(|| async {
                let config = load_config().await;
                if config.behavior_version().is_none() {
                    // `Client::new` would panic on it; `load_config` always sets it.
                    return Err(StoreError::Backend(
                        "AWS SDK configuration: no behavior version".into(),
                    ));
                }
                Ok(DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(&config),
                    self.table.clone(),
                ))
            })
            .await
    }
}

impl std::fmt::Debug for LazyDynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyDynamoStore")
            .field("table", &self.table)
            .field("initialized", &self.is_initialized())
            .finish()
    }
}

impl Store for LazyDynamoStore {
    async fn create_webhook(&self, webhook: &Webhook, limit: u32) -> Result<(), StoreError> {
        self.get().await?.create_webhook(webhook, limit).await
    }
    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        self.get().await?.get_webhook(tenant, id).await
    }
    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        self.get().await?.list_webhooks(tenant, limit, after).await
    }
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.get().await?.update_webhook(webhook, loaded_at).await
    }
    async fn delete_webhook(&self, tenant: &TenantId, id: WebhookId) -> Result<(), StoreError> {
        self.get().await?.delete_webhook(tenant, id).await
    }
    async fn put_api_key(&self, key_hash: &str, tenant: &TenantId) -> Result<(), StoreError> {
        self.get().await?.put_api_key(key_hash, tenant).await
    }
    async fn tenant_for_api_key(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        self.get().await?.tenant_for_api_key(key_hash).await
    }
    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        self.get().await?.webhooks_of(tenant).await
    }
    async fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> Result<HashSet<AttemptKey>, StoreError> {
        self.get().await?.recorded_deliveries(attempts).await
    }
    async fn put_event(&self, event: &StoredEvent) -> Result<Kept, StoreError> {
        self.get().await?.put_event(event).await
    }
    async fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError> {
        self.get().await?.event_with_deliveries(tenant, id).await
    }
    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        self.get()
            .await?
            .list_events(tenant, filter, limit, after)
            .await
    }
    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        self.get().await?.record_delivery(record).await
    }
    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        self.get()
            .await?
            .list_deliveries(webhook, limit, after)
            .await
    }
    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.get().await?.set_slow(tenant, id, since).await
    }
    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
    ) -> Result<Option<Vec<u32>>, StoreError> {
        self.get()
            .await?
            .number_manual_attempts(tenant, event, webhooks)
            .await
    }

    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.get()
            .await?
            .take_allowance(tenant, allowance, window, n, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_roots_are_five_certificates() {
        let text = std::str::from_utf8(AMAZON_ROOTS).unwrap();
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_ROOTS);
        assert!(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .is_ok()
        );
    }

    /// The lazy store on moto (scripts/test sets `AWS_ENDPOINT_URL`; without
    /// it the SDK would look for real credentials, so the test does nothing).
    #[tokio::test]
    async fn the_lazy_store_makes_its_client_on_first_use() {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            return;
        }
        let tenant = TenantId::parse("lazy").unwrap();
        let table = format!("lazy-{}", ulid::Ulid::generate().to_string().to_lowercase());

        // No such table: the call fails with an error, and the client is kept.
        let missing = DynamoStore::lazy(&table);
        assert!(!missing.is_initialized());
        assert!(matches!(
            missing.webhooks_of(&tenant).await,
            Err(StoreError::Backend(_))
        ));
        assert!(missing.is_initialized());

        let store = DynamoStore::lazy(&table);
        crate::store::create_table(store.get().await.unwrap().client(), &table)
            .await
            .unwrap();
        assert_eq!(store.webhooks_of(&tenant).await.unwrap(), vec![]);
        assert_eq!(missing.webhooks_of(&tenant).await.unwrap(), vec![]);
    }
}
