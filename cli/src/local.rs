//! `webhooks local`: the whole system on one machine, against moto (or with
//! the store in memory and only the queues on moto). The real
//! api handler behind a local HTTP server, and the real dispatch handler fed
//! by a poller that does what Lambda's SQS event source mapping does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use api::App;
use dispatch::Dispatcher;
use shared::delivery::DeliveryClient;
use shared::infra;
use shared::store::{DynamoStore, MemoryStore, Store, create_table};
use shared::{Settings, TenantId, api_key};

use crate::poller::{self, PollerOptions};

/// Where the local stack keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A DynamoDB table on moto (or wherever `AWS_ENDPOINT_URL` points).
    Dynamo,
    /// In this process's memory, gone when it stops: the stack without the
    /// emulator's DynamoDB (the queues stay on moto). API keys are made on
    /// request: each line written to standard input names a tenant, and is
    /// answered on standard output with `api-key <tenant> <key>`.
    Memory,
}

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
    pub store: StoreKind,
}

pub async fn run(config: &aws_config::SdkConfig, opts: Options) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let queues = infra::create_queues(&sqs, &opts.queue, infra::DEFAULT_MAX_RECEIVE_COUNT).await?;
    let settings = Settings {
        events_queue_url: Some(queues.events.clone()),
        slow_queue_url: Some(queues.slow.clone()),
        ..Settings::from_lookup(|name| match name {
            "TABLE_NAME" => Some(opts.table.clone()),
            // Local receivers live on localhost; and EXTRA_CA_FILE (a CA
            // for HTTPS receivers on loopback) is read only where they may.
            "ALLOW_PRIVATE_TARGETS" => Some((!opts.strict_targets).to_string()),
            // SLOW_THRESHOLD_MS, REDELIVERY_LIMIT_PER_MINUTE and the others.
            other => std::env::var(other).ok(),
        })
        .map_err(|e| e.to_string())?
    };
    let stack = Stack {
        sqs,
        queues,
        settings,
        env: config_env(config),
    };
    match opts.store {
        StoreKind::Dynamo => {
            let dynamodb = aws_sdk_dynamodb::Client::new(config);
            ensure_table(&dynamodb, &opts.table).await?;
            stack
                .serve(DynamoStore::new(dynamodb, &opts.table), &opts)
                .await
        }
        StoreKind::Memory => {
            let store = MemoryStore::default();
            tokio::select! {
                result = stack.serve(store.clone(), &opts) => result,
                result = keys_on_request(&store) => result,
            }
        }
    }
}

/// What the stack runs on, whichever the store.
struct Stack {
    sqs: aws_sdk_sqs::Client,
    queues: infra::Queues,
    settings: Settings,
    env: String,
}

impl Stack {
    /// The api handler and both lanes' pollers on `store`, until Ctrl-C.
    async fn serve<S: Store + Clone + 'static>(
        self,
        store: S,
        opts: &Options,
    ) -> Result<(), String> {
        let tenant = TenantId::parse(&opts.tenant).map_err(|e| e.to_string())?;
        let (key, _) = shared::key_lifecycle::issue(
            &store,
            tenant,
            "local".into(),
            api_key::Scope::Full,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;

        let client =
            DeliveryClient::new(self.settings.client_config()).map_err(|e| e.to_string())?;
        // Retries, hand-overs and redeliveries go back on the local queues, as in
        // production: both read the queues from the settings.
        let dispatcher = Arc::new(Dispatcher::new(store.clone(), client, &self.settings));
        let app = Arc::new(App::new(store, self.settings));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port));
        let server = api::local::serve_api(addr, app);

        print_banner(opts, &key, &self.queues, &self.env);
        tokio::select! {
            result = server => result,
            () = poller::run_lanes(
                self.sqs.clone(),
                self.queues.events.clone(),
                Some(self.queues.slow.clone()),
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
}

/// With the store in memory no other process can make a key: each tenant
/// named on standard input gets a full key, printed on standard output
/// (where `webhooks api-key create` prints its keys), never logged.
async fn keys_on_request(store: &MemoryStore) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let answer = match TenantId::parse(line.trim()) {
            Ok(tenant) => {
                let name = "local".to_owned();
                match shared::key_lifecycle::issue(
                    store,
                    tenant.clone(),
                    name,
                    api_key::Scope::Full,
                    None,
                )
                .await
                {
                    Ok((key, _)) => format!("api-key {tenant} {key}\n"),
                    Err(e) => format!("error {e}\n"),
                }
            }
            Err(e) => format!("error {e}\n"),
        };
        out.write_all(answer.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        out.flush().await.map_err(|e| e.to_string())?;
    }
    // Standard input closed: serve on without taking requests for keys.
    std::future::pending().await
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
  store          {store}
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
        store = match opts.store {
            StoreKind::Dynamo => format!("table {}", opts.table),
            StoreKind::Memory =>
                "in memory (gone when this stops; a tenant per line on stdin gets an API key)"
                    .to_owned(),
        },
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
