use dispatch::Dispatcher;
use lambda_runtime::{Error, run, service_fn};
use shared::Settings;
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();

    let settings = Settings::from_env()?;
    let config = shared::aws::load_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &settings.table_name);
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets: settings.url_policy.allow_private_targets,
        ..ClientConfig::default()
    })?;
    let dispatcher = Dispatcher::new(store, client, &settings);

    run(service_fn(|event| dispatch::handle(&dispatcher, event))).await
}
