use api::App;
use lambda_http::{Error, run, service_fn};
use shared::Settings;
use shared::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();

    let settings = Settings::from_env()?;
    let config = shared::aws::load_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &settings.table_name);
    let app = App::new(store, settings);

    run(service_fn(|req| api::handle(&app, req))).await
}
