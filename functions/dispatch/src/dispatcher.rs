//! What the handler needs, built once per container.

use std::time::Duration;

use shared::Settings;
use shared::delivery::{ClientConfig, ClientError, DeliveryClient, LazyClient};
use shared::requeue::Requeue;
use shared::retry::RecoveryConfig;
use shared::store::Store;

pub struct Dispatcher<S> {
    pub(crate) store: S,
    /// The delivery client, or where it is made on first use.
    pub(crate) client: LazyClient,
    pub(crate) delivery_timeout: Duration,
    /// An attempt longer than this marks its webhook slow (see `lane`).
    pub(crate) slow_threshold: Duration,
    pub(crate) log_ttl_days: u32,
    pub(crate) recovery: RecoveryConfig,
    /// Where retries are scheduled (the events queue) and slow webhooks'
    /// attempts are handed over (the slow lane's queue).
    pub(crate) requeue: Requeue,
}

impl<S: Store> Dispatcher<S> {
    pub fn new(store: S, client: DeliveryClient, settings: &Settings) -> Self {
        Self {
            store,
            client: LazyClient::ready(client),
            delivery_timeout: settings.delivery_timeout,
            slow_threshold: settings.slow_threshold,
            log_ttl_days: settings.delivery_log_ttl_days,
            recovery: RecoveryConfig::default(),
            requeue: Requeue::Disabled,
        }
    }

    /// A dispatcher whose delivery client is built from `config` by the first
    /// batch, not at cold start. If building it fails, that batch fails
    /// whole (every message is returned as a failure) and the next batch
    /// tries again.
    pub fn with_deferred_client(store: S, config: ClientConfig, settings: &Settings) -> Self {
        Self {
            store,
            client: LazyClient::new(config),
            delivery_timeout: settings.delivery_timeout,
            slow_threshold: settings.slow_threshold,
            log_ttl_days: settings.delivery_log_ttl_days,
            recovery: RecoveryConfig::default(),
            requeue: Requeue::Disabled,
        }
    }

    /// Event retention, the retry schedule, and where retries are queued.
    pub fn with_recovery(mut self, recovery: RecoveryConfig, requeue: Requeue) -> Self {
        self.recovery = recovery;
        self.requeue = requeue;
        self
    }

    /// The delivery client, built now if it has not been yet.
    pub fn client(&self) -> Result<&DeliveryClient, ClientError> {
        self.client.get()
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}
