//! `webhooks`: the operator's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::store::{DynamoStore, Store, create_table};
use shared::{TenantId, api_key};

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
    let table = cli
        .table
        .ok_or("no table: pass --table or set TABLE_NAME")?;
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    match cli.command {
        Command::ApiKey {
            command: ApiKeyCommand::Create { tenant },
        } => {
            let tenant = TenantId::parse(&tenant).map_err(|e| e.to_string())?;
            let key = api_key::generate();
            DynamoStore::new(client, table)
                .put_api_key(&api_key::hash(&key), &tenant)
                .await
                .map_err(|e| e.to_string())?;
            println!("{key}");
            eprintln!("API key for tenant {tenant} created. It is shown only this once.");
        }
        Command::Table {
            command: TableCommand::Create,
        } => {
            create_table(&client, &table)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("table {table} created");
        }
    }
    Ok(())
}
