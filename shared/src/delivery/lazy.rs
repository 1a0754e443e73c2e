//! A delivery client made on first use: building it (TLS configuration,
//! connection pool) is work a cold start need not pay before the first request.

use std::sync::OnceLock;

use super::client::{ClientConfig, ClientError, DeliveryClient};

pub struct LazyClient {
    config: ClientConfig,
    client: OnceLock<DeliveryClient>,
}

impl LazyClient {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            client: OnceLock::new(),
        }
    }

    /// One that is already built.
    pub fn ready(client: DeliveryClient) -> Self {
        Self {
            config: ClientConfig::default(),
            client: OnceLock::from(client),
        }
    }

    /// The client, built now if it has not been yet. A failure is this
    /// call's; the next call tries again.
    pub fn get(&self) -> Result<&DeliveryClient, ClientError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = DeliveryClient::new(self.config.clone())?;
        // A concurrent first call may have set it meanwhile: either is as good.
        Ok(self.client.get_or_init(|| built))
    }

    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}
