use api::App;
use lambda_http::{Error, run, service_fn};
use shared::Settings;
use shared::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let settings = Settings::from_env()?;
    // The SDK configuration and client are made by the first request: a
    // shorter cold start (see docs/benchmarks.md).
    let store = DynamoStore::lazy(&settings.table_name);
    let app = App::new(store, settings);
    run(service_fn(|req| api::handle(&app, req))).await
}
