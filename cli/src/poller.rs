//! What Lambda's SQS event source mappings do, locally: long-poll a lane's
//! queue with a number of concurrent receive loops (the mapping's maximum
//! concurrency), gather a batch (up to the mapping's batch size, within its
//! batching window: several ReceiveMessage calls for the slow lane's 100),
//! hand it to the real dispatch handler with the function's timeout as the
//! deadline, delete what did not fail and leave the failures for redrive.
//! Used by `webhooks local` and `webhooks poll`, one poller per lane.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use dispatch::Dispatcher;
use shared::infra::{self, DISPATCH_TIMEOUT_SECS, SQS_BATCH_SIZE};
use shared::store::prelude::*;

/// How the poller runs.
#[derive(Clone, Debug)]
pub struct PollerOptions {
    /// Which lane, for the log lines.
    pub lane: &'static str,
    /// Receive loops at once, each handling one batch at a time (the event
    /// source's maximum concurrency).
    pub concurrency: usize,
    /// Messages per batch (the event source's batch size).
    pub batch_size: usize,
    /// How long a batch is gathered after its first message.
    pub batching_window: Duration,
    /// Print a line per batch (message counts only, never a payload).
    pub log_batches: bool,
}

impl PollerOptions {
    /// The main lane as the template's event source runs it.
    pub fn main_lane(concurrency: usize, log_batches: bool) -> Self {
        Self {
            lane: "main",
            concurrency,
            batch_size: SQS_BATCH_SIZE,
            batching_window: Duration::ZERO,
            log_batches,
        }
    }

    /// The slow lane as the template's event source runs it.
    pub fn slow_lane(concurrency: usize, log_batches: bool) -> Self {
        Self {
            lane: "slow",
            concurrency,
            batch_size: infra::SLOW_BATCH_SIZE,
            batching_window: Duration::from_secs(infra::SLOW_BATCHING_WINDOW_SECS),
            log_batches,
        }
    }
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
        let options = options.clone();
        loops.spawn(async move { receive_loop(n, &sqs, &queue, &dispatcher, &options).await });
    }
    // The loops never end; if one panics, the others go on.
    while loops.join_next().await.is_some() {}
}

async fn receive_loop<S: Store>(
    n: usize,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dispatcher: &Dispatcher<S>,
    options: &PollerOptions,
) {
    let lane = options.lane;
    let mut batches: u64 = 0;
    loop {
        let messages = match gather(sqs, queue, options).await {
            Ok(messages) => messages,
            Err(e) => {
                eprintln!("poller {lane} {n}: receiving failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        batches += 1;
        let request_id = format!("local-{lane}-{n}-{batches}");
        let Some(failed) = dispatch_batch(dispatcher, queue, &messages, &request_id).await else {
            continue;
        };
        if options.log_batches || !failed.is_empty() {
            eprintln!(
                "poller {lane} {n}: {}: dispatched {} message(s), {} failed",
                utc_now(),
                messages.len(),
                failed.len()
            );
        }
        delete_done(sqs, queue, &messages, &failed, n).await;
    }
}

/// One batch: a long poll for the first messages, then what else the queue
/// holds, up to the batch size; if that is not a full batch, one wait for
/// the rest of the batching window and one more look. Few ReceiveMessage
/// calls per batch: each costs moto a scan of the queue.
async fn gather(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    options: &PollerOptions,
) -> Result<Vec<Message>, String> {
    let mut messages = receive(sqs, queue, options.batch_size, 5).await?;
    if messages.is_empty() || options.batching_window.is_zero() {
        return Ok(messages);
    }
    let window_ends = tokio::time::Instant::now() + options.batching_window;
    drain(sqs, queue, options.batch_size, &mut messages).await?;
    if messages.len() < options.batch_size {
        tokio::time::sleep_until(window_ends).await;
        drain(sqs, queue, options.batch_size, &mut messages).await?;
    }
    Ok(messages)
}

/// Receives what the queue holds now, ten at a time, until `batch_size`.
async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    batch_size: usize,
    messages: &mut Vec<Message>,
) -> Result<(), String> {
    while messages.len() < batch_size {
        let want = (batch_size - messages.len()).min(SQS_BATCH_SIZE);
        let more = receive(sqs, queue, want, 0).await?;
        let short = more.len() < want;
        messages.extend(more);
        if short {
            break;
        }
    }
    Ok(())
}

/// One ReceiveMessage call (at most ten messages, SQS's limit).
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    want: usize,
    wait_secs: i32,
) -> Result<Vec<Message>, String> {
    let max = i32::try_from(want.min(SQS_BATCH_SIZE)).unwrap_or(10);
    sqs.receive_message()
        .queue_url(queue)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .send()
        .await
        .map(|out| out.messages.unwrap_or_default())
        .map_err(|e| DisplayErrorContext(e).to_string())
}

/// The wall-clock time for the poller's lines, to match them with other logs.
fn utc_now() -> String {
    shared::delivery_log::sortable_time(shared::webhook::now_utc())
}

/// The handler's verdict on a batch: the ids of the failed messages, or None
/// if the handler itself failed (then nothing is deleted).
async fn dispatch_batch<S: Store>(
    dispatcher: &Dispatcher<S>,
    queue: &str,
    messages: &[Message],
    request_id: &str,
) -> Option<HashSet<String>> {
    let pairs = messages.iter().map(|m| {
        (
            m.message_id.clone().unwrap_or_default(),
            m.body.clone().unwrap_or_default(),
        )
    });
    let event = dispatch::local::sqs_event_from(Some(queue), pairs);
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
    // DeleteMessageBatch takes at most ten entries.
    for chunk in done.chunks(SQS_BATCH_SIZE) {
        match sqs
            .delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(chunk.to_vec()))
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
}

/// `webhooks poll`: the dispatcher alone, on an existing table and queues
/// (the slow lane's when `slow_queue` is given), until Ctrl-C (or a signal
/// that ends the process).
pub async fn poll_command(
    config: &aws_config::SdkConfig,
    table: String,
    queue: String,
    slow_queue: Option<String>,
    allow_private_targets: bool,
    options: PollerOptions,
    slow_options: PollerOptions,
) -> Result<(), String> {
    use shared::Settings;
    use shared::delivery::DeliveryClient;
    use shared::store::DynamoStore;

    let settings = Settings {
        events_queue_url: Some(queue.clone()),
        slow_queue_url: slow_queue.clone(),
        ..Settings::from_lookup(|name| match name {
            "TABLE_NAME" => Some(table.clone()),
            // The flag, not the environment: it also decides whether
            // EXTRA_CA_FILE may be read.
            "ALLOW_PRIVATE_TARGETS" => Some(allow_private_targets.to_string()),
            // SLOW_THRESHOLD_MS and the other settings from the environment.
            other => std::env::var(other).ok(),
        })
        .map_err(|e| e.to_string())?
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(config), &table);
    let client = DeliveryClient::new(settings.client_config()).map_err(|e| e.to_string())?;
    // Retries go back on the same queues, as in production.
    let dispatcher = Arc::new(Dispatcher::new(store, client, &settings));
    eprintln!(
        "poller: {} receive loop(s) on the events queue{}, table {table}{}",
        options.concurrency,
        match &slow_queue {
            Some(_) => format!(", {} on the slow lane", slow_options.concurrency),
            None => "; no slow lane".to_owned(),
        },
        if allow_private_targets {
            "; private targets allowed (never in production)"
        } else {
            ""
        }
    );
    let sqs = aws_sdk_sqs::Client::new(config);
    tokio::select! {
        () = run_lanes(sqs, queue, slow_queue, dispatcher, options, slow_options) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("poller: stopping");
            Ok(())
        }
    }
}

/// Both lanes' pollers on one dispatcher (as both event sources feed one
/// function), until the task is dropped.
pub async fn run_lanes<S: Store + 'static>(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    slow_queue: Option<String>,
    dispatcher: Arc<Dispatcher<S>>,
    options: PollerOptions,
    slow_options: PollerOptions,
) {
    let main = run(sqs.clone(), queue, Arc::clone(&dispatcher), options);
    match slow_queue {
        Some(slow) => {
            tokio::join!(main, run(sqs, slow, dispatcher, slow_options));
        }
        None => main.await,
    }
}
