//! `webhooks local`: the whole system on one machine, against moto. The real
//! api handler behind a local HTTP server, and the real dispatch handler fed
//! by a poller that does what Lambda's SQS event source mapping does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use api::App;
use dispatch::Dispatcher;
use shared::delivery::DeliveryClient;
use shared::infra;
use shared::store::{DynamoStore, create_table};
use shared::{Settings, TenantId, UrlPolicy, api_key};

use crate::poller::{self, PollerOptions};

pub struct Options {
    pub port: u16,
    pub table: String,
    pub queue: String,
    pub tenant: String,
    pub strict_targets: bool,
    /// Receive loops at once on the events queue (the main lane).
    pub concurrency: usize,
    /// Receive loops at once on the slow lane's queue.
    pub slow_concurrency: usize,
}

pub async fn run(config: &aws_config::SdkConfig, opts: Options) -> Result<(), String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    ensure_table(&dynamodb, &opts.table).await?;
    let queues = infra::create_queues(&sqs, &opts.queue, infra::DEFAULT_MAX_RECEIVE_COUNT).await?;
    let settings = Settings {
        // Local receivers live on localhost.
        url_policy: UrlPolicy {
            allow_private_targets: !opts.strict_targets,
        },
        events_queue_url: Some(queues.events.clone()),
        slow_queue_url: Some(queues.slow.clone()),
        ..Settings::from_lookup(|name| match name {
            "TABLE_NAME" => Some(opts.table.clone()),
            // SLOW_THRESHOLD_MS, REDELIVERY_LIMIT_PER_MINUTE and the others.
            other => std::env::var(other).ok(),
        })
        .map_err(|e| e.to_string())?
    };
    let store = DynamoStore::new(dynamodb, &opts.table);
    let tenant = TenantId::parse(&opts.tenant).map_err(|e| e.to_string())?;
    let (key, _) =
        shared::key_lifecycle::issue(&store, tenant, "local".into(), api_key::Scope::Full, None)
            .await
            .map_err(|e| e.to_string())?;

    let client = DeliveryClient::new(settings.client_config()).map_err(|e| e.to_string())?;
    // Retries, hand-overs and redeliveries go back on the local queues, as in
    // production: both read the queues from the settings.
    let dispatcher = Arc::new(Dispatcher::new(store.clone(), client, &settings));
    let app = Arc::new(App::new(store, settings));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port));
    let server = api::local::serve_api(addr, app);

    print_banner(&opts, &key, &queues, &config_env(config));
    tokio::select! {
        result = server => result,
        () = poller::run_lanes(
            sqs.clone(),
            queues.events.clone(),
            Some(queues.slow.clone()),
            dispatcher,
            PollerOptions::main_lane(opts.concurrency, true),
            PollerOptions::slow_lane(opts.slow_concurrency, true),
        ) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nstopping");
            Ok(())
        }
    }
}

async fn ensure_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    let exists = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok();
    if exists {
        Ok(())
    } else {
        create_table(dynamodb, table)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The variables another shell needs to reach the same moto.
fn config_env(config: &aws_config::SdkConfig) -> String {
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "eu-west-1".into());
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    format!(
        "export AWS_ENDPOINT_URL={endpoint} AWS_REGION={region} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    )
}

fn print_banner(opts: &Options, key: &str, queues: &infra::Queues, env: &str) {
    let api = format!("http://127.0.0.1:{}", opts.port);
    let queue_url = &queues.events;
    println!(
        r#"
eKYC webhooks: local stack
  API            {api}   (the real api handler, API Gateway HTTP API events)
  dashboard      {api}/dashboard   (sign in with the API key below)
  events queue   {queue_url}   (main lane: {concurrency} receive loop(s))
  slow lane      {slow_url}   ({slow_concurrency} receive loop(s), batches of up to {slow_batch})
  table          {table}
  tenant         {tenant}
  API key        {key}
  {targets}

Try it (in another shell):
  export API={api} KEY={key}
  curl -s -X POST $API/webhooks -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
       -d '{{"url": "http://127.0.0.1:4000/hook", "events": ["async.completed"]}}'
  curl -s $API/webhooks -H "Authorization: Bearer $KEY"
  {env}
  cargo run -q -p webhooks-cli -- emit --queue-url {queue_url} --tenant {tenant} --type async.completed --data '{{"result": "pass"}}'

Ctrl-C stops everything.
"#,
        table = opts.table,
        tenant = opts.tenant,
        concurrency = opts.concurrency,
        slow_url = queues.slow,
        slow_concurrency = opts.slow_concurrency,
        slow_batch = infra::SLOW_BATCH_SIZE,
        targets = if opts.strict_targets {
            "Private and loopback targets are refused, as in production (--strict-targets)."
        } else {
            "ALLOW_PRIVATE_TARGETS=true: webhooks may point at localhost. Never use this in production."
        },
    );
}
