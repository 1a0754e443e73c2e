//! `webhooks`: the operator's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::signing::SigningSecret;

mod api_keys;
mod audit_log;
mod listen;
mod local;
mod poller;
mod tenant;
use shared::emit::{NewEvent, emit};
use shared::store::{DynamoStore, create_table};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `@path` reads a file, `-` reads standard input, anything else is the JSON itself.
fn read_data(arg: &str) -> Result<String, String> {
    if arg == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("--data -: {e}"))
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| format!("--data {arg}: {e}"))
    } else {
        Ok(arg.to_owned())
    }
}

#[derive(Parser)]
#[command(
    name = "webhooks",
    version,
    about = "Operator commands for the webhook platform"
)]
struct Cli {
    /// The DynamoDB table (the stack's TableName output).
    #[arg(long, env = "TABLE_NAME", global = true)]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Once after each deploy: bring items written by an earlier version up
    /// to date (API keys from before ids, delivery records from before the
    /// stats' index). Scans of the whole table; safe to run again.
    Upgrade,
    /// Validate an event and send it to the events queue; prints the event id.
    Emit {
        /// The events queue (the stack's EventsQueueUrl output).
        #[arg(long, env = "EVENTS_QUEUE_URL")]
        queue_url: String,
        #[arg(long)]
        tenant: String,
        /// One of the six event types, e.g. async.completed.
        #[arg(long = "type")]
        event_type: String,
        /// The event's data, a JSON object: inline, @file, or - for stdin.
        #[arg(long)]
        data: String,
        /// The event id (default: evt_ and a new ULID).
        #[arg(long)]
        id: Option<String>,
        /// RFC 3339 (default: now).
        #[arg(long)]
        timestamp: Option<String>,
        /// The job's reference (async request id, flow execution id,
        /// background-check profile id): 1 to 128 of letters, digits, _ . : -
        #[arg(long)]
        subject: Option<String>,
    },
    /// Run the whole system locally against moto (see scripts/dev).
    Local {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = "webhooks-events")]
        queue: String,
        /// The demo tenant that gets an API key.
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Refuse private and loopback targets, as in production (by default
        /// local webhooks may point at localhost).
        #[arg(long)]
        strict_targets: bool,
        /// Receive loops at once on the events queue (the main lane's
        /// event source concurrency).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Receive loops at once on the slow lane's queue.
        #[arg(long, default_value_t = shared::infra::DEFAULT_SLOW_CONCURRENCY)]
        slow_concurrency: usize,
        /// Where the data lives: `dynamo` (a table on moto) or `memory`
        /// (this process; the queues stay on moto; API keys on request:
        /// a tenant per line on standard input).
        #[arg(long, value_enum, default_value_t = local::StoreKind::Dynamo)]
        store: local::StoreKind,
    },
    /// Feed the real dispatch handler from an events queue as Lambda's SQS
    /// event source does: long polls, batches of up to 10, the function's 7 s
    /// deadline, failed messages left for redrive (local runs, the proof harness).
    Poll {
        /// The events queue.
        #[arg(long, env = "EVENTS_QUEUE_URL")]
        queue_url: String,
        /// The slow lane's queue (the stack's SlowQueueUrl output); without
        /// it every attempt is made on the main lane.
        #[arg(long, env = "SLOW_QUEUE_URL")]
        slow_queue_url: Option<String>,
        /// Receive loops at once on the events queue (the main lane's
        /// event source concurrency).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Receive loops at once on the slow lane's queue.
        #[arg(long, default_value_t = shared::infra::DEFAULT_SLOW_CONCURRENCY)]
        slow_concurrency: usize,
        /// Let webhooks point at private and loopback addresses (local
        /// receivers). Never in production.
        #[arg(long)]
        allow_private_targets: bool,
        /// Print a line per batch (otherwise only batches with failures).
        #[arg(long)]
        verbose: bool,
    },
    /// A receiver for trying deliveries out: prints each request, answers 200.
    Listen {
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// The webhook's signing secret (whsec_...), to check signatures.
        #[arg(long)]
        secret: Option<String>,
    },
    /// A tenant's audit log, newest first: who changed which webhook, key,
    /// setting or payload, and when.
    AuditLog {
        #[arg(long)]
        tenant: String,
        /// Only this action, e.g. webhook.updated.
        #[arg(long)]
        action: Option<String>,
        /// Entries at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Entries before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// A JSON array of the entries, as the API shows them.
        #[arg(long)]
        json: bool,
    },
    /// Whole tenants: `tenant purge` deletes every item of one (the
    /// customer has left).
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Manage the table itself (local development; production uses template.yaml).
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key for a tenant and print it once; only its hash is stored.
    Create {
        #[arg(long)]
        tenant: String,
        /// What the key is for, e.g. "ci" or "dashboard".
        #[arg(long)]
        name: Option<String>,
        /// A lifetime: 90d, 24h, 30m. Without it the key does not expire.
        #[arg(long)]
        expires_in: Option<String>,
        /// full (everything) or read (GET routes only).
        #[arg(long, default_value = "full")]
        scope: String,
    },
    /// List a tenant's keys: id, name, prefix, scope, status, dates, last use.
    List {
        #[arg(long)]
        tenant: String,
        /// The API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once: it changes nothing from then on (warm api
    /// containers may accept it for reads for up to
    /// API_KEY_CACHE_TTL_SECONDS more).
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The key's id (key_…), as `list` shows it.
        #[arg(long)]
        id: String,
        /// Also every key made from it through the API, directly or through
        /// keys it made (a leaked key and whatever was made with it).
        #[arg(long)]
        with_descendants: bool,
    },
    /// Once after upgrading from before keys had ids: list every such key
    /// under its tenant (a Scan of the table). A key's first use does the
    /// same for that key.
    Adopt,
    /// Make a new key with the same name and scope; the old one expires
    /// after the overlap.
    Rotate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: String,
        /// How long the old key keeps working: 24h, 7d, 30m or 0.
        #[arg(long, default_value = "24h")]
        overlap: String,
    },
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the table with the keys the code expects.
    Create,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("webhooks: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = aws_config::load_from_env().await;
    let table = || {
        cli.table
            .clone()
            .ok_or("no table: pass --table or set TABLE_NAME")
    };
    let dynamodb = || aws_sdk_dynamodb::Client::new(&config);
    match cli.command {
        Command::Local {
            port,
            queue,
            tenant,
            strict_targets,
            concurrency,
            slow_concurrency,
            store,
        } => {
            shared::logging::init_local();
            let table = cli.table.clone().unwrap_or_else(|| "webhooks-local".into());
            local::run(
                &config,
                local::Options {
                    port,
                    table,
                    queue,
                    tenant,
                    strict_targets,
                    concurrency,
                    slow_concurrency,
                    store,
                },
            )
            .await?;
        }
        Command::Poll {
            queue_url,
            slow_queue_url,
            concurrency,
            slow_concurrency,
            allow_private_targets,
            verbose,
        } => {
            shared::logging::init_local();
            poller::poll_command(
                &config,
                table()?,
                queue_url,
                slow_queue_url,
                allow_private_targets,
                poller::PollerOptions::main_lane(concurrency, verbose),
                poller::PollerOptions::slow_lane(slow_concurrency, verbose),
            )
            .await?;
        }
        Command::Listen { port, secret } => {
            let secret = secret
                .map(|s| SigningSecret::parse(&s))
                .transpose()
                .map_err(|e| e.to_string())?;
            listen::run(port, secret).await?;
        }
        Command::Emit {
            queue_url,
            tenant,
            event_type,
            data,
            id,
            timestamp,
            subject,
        } => {
            let timestamp = timestamp
                .map(|t| {
                    OffsetDateTime::parse(&t, &Rfc3339).map_err(|e| format!("--timestamp: {e}"))
                })
                .transpose()?;
            let data: serde_json::Value = serde_json::from_str(&read_data(&data)?)
                .map_err(|e| format!("--data: not JSON: {e}"))?;
            let event = NewEvent {
                id,
                tenant_id: tenant,
                event_type,
                timestamp,
                subject,
                data,
            };
            let id = emit(&aws_sdk_sqs::Client::new(&config), &queue_url, event)
                .await
                .map_err(|e| e.to_string())?;
            println!("{id}");
        }
        Command::Upgrade => {
            let store = DynamoStore::new(dynamodb(), table()?);
            let done = store.upgrade().await.map_err(|e| e.to_string())?;
            eprintln!(
                "{} API key(s) made before keys had ids now have one and are listed; \
                 {} delivery record(s) joined the stats' index.",
                done.api_keys_adopted, done.records_indexed
            );
        }
        Command::ApiKey { command } => {
            let store = DynamoStore::new(dynamodb(), table()?);
            let action = match command {
                ApiKeyCommand::Adopt => {
                    let adopted = store
                        .adopt_legacy_api_keys()
                        .await
                        .map_err(|e| e.to_string())?;
                    eprintln!(
                        "{adopted} API key(s) made before keys had ids now have one and are listed."
                    );
                    return Ok(());
                }
                ApiKeyCommand::Create {
                    tenant,
                    name,
                    expires_in,
                    scope,
                } => api_keys::Action::Create {
                    tenant,
                    name,
                    expires_in,
                    scope,
                },
                ApiKeyCommand::List { tenant, json } => api_keys::Action::List { tenant, json },
                ApiKeyCommand::Revoke {
                    tenant,
                    id,
                    with_descendants,
                } => api_keys::Action::Revoke {
                    tenant,
                    id,
                    with_descendants,
                },
                ApiKeyCommand::Rotate {
                    tenant,
                    id,
                    overlap,
                } => api_keys::Action::Rotate {
                    tenant,
                    id,
                    overlap,
                },
            };
            let out = api_keys::run(&store, action).await?;
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
        }
        Command::AuditLog {
            tenant,
            action,
            since,
            until,
            limit,
            json,
        } => {
            let store = DynamoStore::new(dynamodb(), table()?);
            let request = audit_log::Request {
                tenant,
                action,
                since,
                until,
                limit,
                json,
            };
            print!("{}", audit_log::run(&store, request).await?);
        }
        Command::Tenant { command } => {
            let store = DynamoStore::new(dynamodb(), table()?);
            if tenant::run(&store, command).await? == tenant::Done::Counted {
                // Only counted, as asked: not the success of a purge.
                std::process::exit(2);
            }
        }
        Command::Table {
            command: TableCommand::Create,
        } => {
            let table = table()?;
            create_table(&dynamodb(), &table)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("table {table} created");
        }
    }
    Ok(())
}
