//! What Lambda's SQS event source mapping does, locally: long-poll the events
//! queue with a number of concurrent receive loops (the function's
//! concurrency), hand each batch to the real dispatch handler with the
//! function's timeout as the deadline, delete what did not fail and leave the
//! failures for redrive. Used by `webhooks local` and `webhooks poll`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use dispatch::Dispatcher;
use shared::infra::{DISPATCH_TIMEOUT_SECS, SQS_BATCH_SIZE};
use shared::store::Store;

/// How the poller runs.
#[derive(Clone, Debug)]
pub struct PollerOptions {
    /// Receive loops at once, each handling one batch at a time (the event
    /// source's maximum concurrency).
    pub concurrency: usize,
    /// Print a line per batch (message counts only, never a payload).
    pub log_batches: bool,
}

/// Runs `options.concurrency` receive loops until the task is dropped.
pub async fn run<S: Store + 'static>(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    dispatcher: Arc<Dispatcher<S>>,
    options: PollerOptions,
) {
    let mut loops = tokio::task::JoinSet::new();
    for n in 0..options.concurrency.max(1) {
        let (sqs, queue, dispatcher) = (sqs.clone(), queue.clone(), Arc::clone(&dispatcher));
        let log = options.log_batches;
        loops.spawn(async move { receive_loop(n, &sqs, &queue, &dispatcher, log).await });
    }
    // The loops never end; if one panics, the others go on.
    while loops.join_next().await.is_some() {}
}

async fn receive_loop<S: Store>(
    n: usize,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dispatcher: &Dispatcher<S>,
    log: bool,
) {
    let mut batches: u64 = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(SQS_BATCH_SIZE as i32)
            .wait_time_seconds(5)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!("poller {n}: receiving failed: {}", DisplayErrorContext(e));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        batches += 1;
        let request_id = format!("local-{n}-{batches}");
        let Some(failed) = dispatch_batch(dispatcher, &messages, &request_id).await else {
            continue;
        };
        if log || !failed.is_empty() {
            eprintln!(
                "poller {n}: {}: dispatched {} message(s), {} failed",
                utc_now(),
                messages.len(),
                failed.len()
            );
        }
        delete_done(sqs, queue, &messages, &failed, n).await;
    }
}

/// The wall-clock time for the poller's lines, to match them with other logs.
fn utc_now() -> String {
    shared::delivery_log::sortable_time(shared::webhook::now_utc())
}

/// The handler's verdict on a batch: the ids of the failed messages, or None
/// if the handler itself failed (then nothing is deleted).
async fn dispatch_batch<S: Store>(
    dispatcher: &Dispatcher<S>,
    messages: &[Message],
    request_id: &str,
) -> Option<HashSet<String>> {
    let pairs = messages.iter().map(|m| {
        (
            m.message_id.clone().unwrap_or_default(),
            m.body.clone().unwrap_or_default(),
        )
    });
    let event = dispatch::local::sqs_event(pairs);
    let invocation = dispatch::local::invocation(event, DISPATCH_TIMEOUT_SECS * 1000, request_id);
    match dispatch::handle(dispatcher, invocation).await {
        Ok(response) => Some(
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
        ),
        Err(e) => {
            eprintln!("poller: the dispatch handler failed: {e}");
            None
        }
    }
}

/// Deletes the messages that did not fail, as the event source mapping does.
async fn delete_done(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    messages: &[Message],
    failed: &HashSet<String>,
    n: usize,
) {
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect();
    if done.is_empty() {
        return;
    }
    match sqs
        .delete_message_batch()
        .queue_url(queue)
        .set_entries(Some(done))
        .send()
        .await
    {
        Ok(out) if !out.failed.is_empty() => {
            eprintln!(
                "poller {n}: {}: {} message(s) could not be deleted",
                utc_now(),
                out.failed.len()
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("poller {n}: deleting failed: {}", DisplayErrorContext(e)),
    }
}

/// `webhooks poll`: the dispatcher alone, on an existing table and queue,
/// until Ctrl-C (or a signal that ends the process).
pub async fn poll_command(
    config: &aws_config::SdkConfig,
    table: String,
    queue: String,
    allow_private_targets: bool,
    options: PollerOptions,
) -> Result<(), String> {
    use shared::delivery::{ClientConfig, DeliveryClient};
    use shared::store::DynamoStore;
    use shared::{Settings, UrlPolicy};

    let settings = Settings {
        table_name: table.clone(),
        url_policy: UrlPolicy {
            allow_private_targets,
        },
        max_webhooks_per_tenant: Settings::DEFAULT_MAX_WEBHOOKS,
        delivery_timeout: Duration::from_millis(u64::from(Settings::DEFAULT_DELIVERY_TIMEOUT_MS)),
        delivery_log_ttl_days: Settings::DEFAULT_LOG_TTL_DAYS,
        events_queue_url: Some(queue.clone()),
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(config), &table);
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets,
        ..ClientConfig::default()
    })
    .map_err(|e| e.to_string())?;
    // Retries go back on the same queue, as in production (RETRY_SCHEDULE_SECONDS and the others from the environment).
    let recovery = shared::retry::RecoveryConfig::from_env().map_err(|e| e.to_string())?;
    let requeue = shared::requeue::Requeue::sqs(&queue);
    let dispatcher =
        Arc::new(Dispatcher::new(store, client, &settings).with_recovery(recovery, requeue));
    eprintln!(
        "poller: {} receive loop(s) on the events queue, table {table}{}",
        options.concurrency,
        if allow_private_targets {
            "; private targets allowed (never in production)"
        } else {
            ""
        }
    );
    tokio::select! {
        () = run(aws_sdk_sqs::Client::new(config), queue, dispatcher, options) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("poller: stopping");
            Ok(())
        }
    }
}
