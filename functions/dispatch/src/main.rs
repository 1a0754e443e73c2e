use dispatch::Dispatcher;
use dispatch::metrics::MetricsOut;
use lambda_runtime::{Error, run, service_fn};
use shared::Settings;
use shared::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let settings = Settings::from_env()?;
    // The SDK configuration, the DynamoDB client and the delivery client are
    // made by the first batch: about 0.4 ms less before the first request for
    // work (see docs/benchmarks.md).
    let store = DynamoStore::lazy(&settings.table_name);
    let dispatcher =
        Dispatcher::with_deferred_client(store, &settings).with_metrics(MetricsOut::Stdout);
    run(service_fn(|event| dispatch::handle(&dispatcher, event))).await
}
