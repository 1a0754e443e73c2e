//! What every handler is given: the store, the settings, and the clients
//! built once per container.

use shared::Settings;
use shared::delivery::{ClientConfig, DeliveryClient, LazyClient};
use shared::requeue::Requeue;

use crate::ApiError;
use crate::key_cache::KeyCache;
use crate::rate::Limits;

/// What the handlers need, built once per container.
pub struct App<S> {
    pub store: S,
    pub settings: Settings,
    /// Built on first use (a test event, a registration's DNS check), not
    /// at cold start.
    client: LazyClient,
    /// Where redeliveries are queued: the queues the settings name, unless
    /// a test replaces it.
    pub(crate) requeue: Requeue,
    /// API keys read lately (`API_KEY_CACHE_TTL_SECONDS`).
    pub(crate) keys: KeyCache,
    /// Request rates per tenant and per client address, in this container.
    pub(crate) limits: Limits,
}

impl<S> App<S> {
    pub fn new(store: S, settings: Settings) -> Self {
        let client_config = settings.client_config();
        Self {
            store,
            client: LazyClient::new(client_config),
            requeue: Requeue::from_settings(&settings),
            keys: KeyCache::new(settings.api_key_cache_ttl),
            limits: Limits::new(&settings),
            settings,
        }
    }

    /// Queues redeliveries there instead (tests: a memory queue).
    pub fn with_requeue(mut self, requeue: Requeue) -> Self {
        self.requeue = requeue;
        self
    }

    /// Replaces the delivery client's configuration (tests: DNS overrides).
    pub fn with_client_config(mut self, config: ClientConfig) -> Self {
        self.client = LazyClient::new(config);
        self
    }

    /// The delivery client, built on first use.
    pub(crate) fn client(&self) -> Result<&DeliveryClient, ApiError> {
        self.client
            .get()
            .map_err(|e| ApiError::Internal(format!("building the delivery client: {e}")))
    }
}
