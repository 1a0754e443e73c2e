//! The AWS SDK configuration of the Lambda functions.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use crate::store::prelude::*;
    use crate::store::{DynamoStore, StoreError};

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
        crate::store::create_table(store.client().await.unwrap(), &table)
            .await
            .unwrap();
        assert_eq!(store.webhooks_of(&tenant).await.unwrap(), vec![]);
        assert_eq!(missing.webhooks_of(&tenant).await.unwrap(), vec![]);
    }
}
