//! What the handler needs, built once per container.

use shared::Settings;
use shared::delivery::{ClientError, DeliveryClient, LazyClient};
use shared::requeue::Requeue;
use shared::store::Store;

use crate::metrics::MetricsOut;
use crate::pace::Pace;

pub struct Dispatcher<S> {
    pub(crate) store: S,
    /// The delivery client, or where it is made on first use.
    pub(crate) client: LazyClient,
    /// The one configuration; tests may change it after construction
    /// (except what the delivery client was built from).
    pub settings: Settings,
    /// Where retries are scheduled and slow webhooks' attempts are handed
    /// over: the queues the settings name, unless a test replaces it.
    pub(crate) requeue: Requeue,
    /// Where each invocation's metrics go (EMF lines); nowhere by default.
    pub(crate) metrics: MetricsOut,
    /// How fast each webhook has been answering (this container's view).
    pub(crate) pace: Pace,
}

impl<S: Store> Dispatcher<S> {
    pub fn new(store: S, client: DeliveryClient, settings: &Settings) -> Self {
        Self {
            store,
            client: LazyClient::ready(client),
            settings: settings.clone(),
            requeue: Requeue::from_settings(settings),
            metrics: MetricsOut::Off,
            pace: Pace::default(),
        }
    }

    /// A dispatcher whose delivery client is built from the settings by the
    /// first batch, not at cold start. If building it fails, that batch
    /// fails whole (every message is returned as a failure) and the next
    /// batch tries again.
    pub fn with_deferred_client(store: S, settings: &Settings) -> Self {
        Self {
            store,
            client: LazyClient::new(settings.client_config()),
            settings: settings.clone(),
            requeue: Requeue::from_settings(settings),
            metrics: MetricsOut::Off,
            pace: Pace::default(),
        }
    }

    /// Sends retries and hand-overs there instead (tests: a memory queue).
    pub fn with_requeue(mut self, requeue: Requeue) -> Self {
        self.requeue = requeue;
        self
    }

    /// Writes each invocation's metrics there (the Lambda: standard output).
    pub fn with_metrics(mut self, metrics: MetricsOut) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where the metrics go (tests read [`MetricsOut::lines`]).
    pub fn metrics(&self) -> &MetricsOut {
        &self.metrics
    }

    /// The delivery client, built now if it has not been yet.
    pub fn client(&self) -> Result<&DeliveryClient, ClientError> {
        self.client.get()
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}
