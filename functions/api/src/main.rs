use api::App;
use lambda_http::{Error, run, service_fn};
use shared::Settings;
use shared::requeue::Requeue;
use shared::retry::RecoveryConfig;
use shared::store::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();

    let settings = Settings::from_env()?;
    // The SDK configuration and client are made by the first request: a
    // shorter cold start (see the README's benchmarks).
    let store = DynamoStore::lazy(&settings.table_name);
    let recovery = RecoveryConfig::from_env()?;
    let requeue = Requeue::from_settings(&settings);
    let app = App::new(store, settings).with_recovery(recovery, requeue);

    run(service_fn(|req| api::handle(&app, req))).await
}
