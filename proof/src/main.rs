//! `webhooks-proof`: load with accounting, under faults. Against moto (the
//! AWS_ENDPOINT_URL that scripts/moto exports): a table and queues of the
//! run's own; 20 tenants × 5 webhooks stored directly; receivers on
//! 127.0.0.1 answering 200, 500, slowly or never; N events and a few poison
//! messages on the queue; the real dispatch handler in a child process
//! (`webhooks poll`) whose DynamoDB traffic goes through a fault-injecting
//! proxy. Mid-run the child is SIGKILLed and restarted, and DynamoDB is cut
//! for a few seconds. Then every (event, webhook) pair is accounted for from
//! the delivery log and from what the receivers saw. Exits non-zero if any
//! invariant fails. Never prints a token, a secret or a payload.

mod account;
mod fixture;
mod proxy;
mod receivers;
mod serve;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use clap::Parser;
use futures_util::StreamExt;
use shared::infra;
use shared::store::prelude::*;
use shared::store::{DynamoStore, create_table};
use tokio::process::{Child, Command};

use crate::account::{Faults, Timing};
use crate::proxy::Proxy;
use crate::receivers::Recorder;

/// Above the dispatch function's deadline, so that a batch in progress is
/// never handed out twice; short, so that failures come back quickly.
const VISIBILITY_TIMEOUT_SECS: u64 = shared::infra::DISPATCH_TIMEOUT_SECS + 2;
/// Receives before the dead-letter queue. Four: a message may fail once to
/// the kill, once to the DynamoDB cut and once more to a slow machine (a batch
/// past its deadline) and still be delivered; poison gets there after about
/// four visibility timeouts.
const MAX_RECEIVE_COUNT: u32 = 4;
/// Messages the sender lets wait in the queue before it waits itself (a
/// producer at the dispatcher's pace; moto slows down with a deep queue).
const MAX_BACKLOG: u64 = 300;

#[derive(Parser)]
#[command(
    name = "webhooks-proof",
    about = "Load with accounting and faults against moto"
)]
struct Args {
    /// Events to send.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// The dispatcher's concurrent receive loops.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Do not cut DynamoDB mid-run.
    #[arg(long)]
    no_outage: bool,
    /// How long DynamoDB is cut.
    #[arg(long, default_value_t = 4)]
    outage_secs: u64,
    /// Do not SIGKILL and restart the dispatcher mid-run.
    #[arg(long)]
    no_kill: bool,
    /// Spread the sending over this many seconds (0: as fast as the queue
    /// takes them). Short runs need some spread to leave room for the faults.
    #[arg(long, default_value_t = 0)]
    send_over_secs: u64,
    /// The `webhooks` binary (default: next to this one).
    #[arg(long)]
    poller: Option<PathBuf>,
    /// Where the figures go (JSON); the poller's log goes beside it.
    #[arg(long, default_value = "target/proof/proof.json")]
    out: PathBuf,
    /// Give up (and fail) after this long.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("webhooks-proof: {message}");
            ExitCode::from(2)
        }
    }
}

/// The moto endpoint the SDK uses for DynamoDB (`AWS_ENDPOINT_URL_DYNAMODB`
/// when scripts/proof gives DynamoDB a moto of its own, else
/// `AWS_ENDPOINT_URL`), as a socket address for the proxy.
async fn moto_addr() -> Result<SocketAddr, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .map_err(|_| "AWS_ENDPOINT_URL is not set: run scripts/proof, which starts moto")?;
    let url = url::Url::parse(&endpoint).map_err(|e| format!("AWS_ENDPOINT_URL: {e}"))?;
    let host = url.host_str().ok_or("AWS_ENDPOINT_URL has no host")?;
    let port = url
        .port_or_known_default()
        .ok_or("AWS_ENDPOINT_URL has no port")?;
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("AWS_ENDPOINT_URL: {e}"))?
        .next()
        .ok_or_else(|| "AWS_ENDPOINT_URL resolves to nothing".to_owned())
}

struct Poller {
    bin: PathBuf,
    table: String,
    queue: String,
    slow_queue: String,
    concurrency: usize,
    dynamodb: SocketAddr,
    log: PathBuf,
}

impl Poller {
    fn spawn(&self) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        Command::new(&self.bin)
            .arg("--table")
            .arg(&self.table)
            .arg("poll")
            .arg("--queue-url")
            .arg(&self.queue)
            .arg("--slow-queue-url")
            .arg(&self.slow_queue)
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .arg("--allow-private-targets")
            // Every attempt in the log (ids and outcomes, never a payload or token).
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env(
                "AWS_ENDPOINT_URL_DYNAMODB",
                format!("http://{}", self.dynamodb),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let moto = moto_addr().await?;
    let config = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let run_id = ulid::Ulid::generate().to_string().to_lowercase();
    let name = format!("proof-{run_id}");
    let short = &run_id[run_id.len() - 6..];

    create_table(&dynamodb, &name)
        .await
        .map_err(|e| format!("creating the table: {e}"))?;
    let queues = infra::create_queues(&sqs, &name, MAX_RECEIVE_COUNT).await?;
    for queue in [&queues.events, &queues.slow] {
        sqs.set_queue_attributes()
            .queue_url(queue)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_TIMEOUT_SECS.to_string(),
            )
            .send()
            .await
            .map_err(|e| format!("setting the visibility timeout: {}", DisplayErrorContext(e)))?;
    }
    let store = DynamoStore::new(dynamodb, &name);

    let recorder = Arc::new(Recorder::default());
    let addrs = receivers::start(Arc::clone(&recorder))
        .await
        .map_err(|e| format!("starting receivers: {e}"))?;
    let hooks = fixture::webhooks(short, &addrs)?;
    for h in &hooks {
        recorder.expect(&h.webhook.id.to_string(), h.webhook.token.expose());
        store
            .create_webhook(
                &h.webhook,
                50,
                &shared::audit::operator::created(&h.webhook),
            )
            .await
            .map_err(|e| format!("storing a webhook: {e}"))?;
    }
    let events = fixture::events(short, args.events)?;
    let poison = fixture::poison(short);
    let expected = fixture::expected_pairs(&hooks, &events);
    let active = hooks
        .iter()
        .filter(|h| h.webhook.status == shared::Status::Active)
        .count();
    eprintln!(
        "proof: table and queues {name}; {} tenants, {} webhooks ({active} active); \
         {} events, {} expected pairs, {} poison messages",
        fixture::TENANTS,
        hooks.len(),
        events.len(),
        expected.len(),
        poison.len()
    );

    let proxy = Proxy::start(moto)
        .await
        .map_err(|e| format!("starting the proxy: {e}"))?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let poller = Poller {
        bin: match &args.poller {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("webhooks"),
        },
        table: name.clone(),
        queue: queues.events.clone(),
        slow_queue: queues.slow.clone(),
        concurrency: args.concurrency,
        dynamodb: proxy.addr,
        log: args.out.with_extension("poller.log"),
    };
    // One run's log: the restarted dispatcher appends to it, an earlier run does not.
    std::fs::write(&poller.log, b"").map_err(|e| format!("{}: {e}", poller.log.display()))?;
    let mut child = poller.spawn()?;

    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let started = Instant::now();
    let started_at = shared::delivery_log::sortable_time(shared::webhook::now_utc());
    let sender = tokio::spawn(send_all(
        sqs.clone(),
        queues.events.clone(),
        events
            .iter()
            .map(|e| (e.id.to_string(), e.to_json()))
            .collect(),
        poison.clone(),
        Duration::from_secs(args.send_over_secs),
    ));
    let mut sender = Some(sender);
    let mut sent: Option<Sent> = None;
    let mut faults = Faults {
        outage_requested: !args.no_outage,
        kill_requested: !args.no_kill,
        outage_secs: args.outage_secs,
        ..Faults::default()
    };
    let mut outage_started: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut empty_checks = 0;
    let mut last_check = Instant::now();
    let mut timed_out = false;
    let mut send_secs = 0.0;
    let total = expected.len() as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let progress = recorder.total();
        // The flipping receivers turn slow between 20 % and 50 % of the run:
        // their webhooks go to the slow lane and come back mid-run.
        let flip_slow = progress * 100 >= total * 20 && progress * 100 < total * 50;
        if flip_slow != faults.flip_slow_now {
            recorder.set_flip_slow(flip_slow);
            faults.flip_slow_now = flip_slow;
            faults.flips += 1;
            eprintln!(
                "proof: flipping receivers {} at {:.1} s",
                if flip_slow { "slowed" } else { "recovered" },
                started.elapsed().as_secs_f64()
            );
        }
        // Fault 1: SIGKILL the dispatcher in the middle of its batches, restart it.
        if faults.kill_requested && kill_at.is_none() && progress * 100 >= total * 15 {
            faults.kill_in_flight_requests = recorder.in_flight();
            child
                .start_kill()
                .map_err(|e| format!("killing the poller: {e}"))?;
            let _ = child.wait().await;
            let now = Instant::now();
            kill_at = Some(now);
            faults.kill_at_secs = Some(secs(now - started));
            eprintln!(
                "proof: SIGKILLed the dispatcher at {:.1} s with {} request(s) in flight; restarting",
                now.duration_since(started).as_secs_f64(),
                faults.kill_in_flight_requests
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            child = poller.spawn()?;
        }
        // Fault 2: cut DynamoDB, well clear of the kill's redelivery (the
        // visibility timeout and a dispatch deadline later), so no message
        // loses both of its receives to faults.
        let clear_of_kill = kill_at
            .is_none_or(|k| k.elapsed() >= Duration::from_secs(VISIBILITY_TIMEOUT_SECS + 8))
            && (kill_at.is_some() || !faults.kill_requested);
        if faults.outage_requested
            && outage_started.is_none()
            && clear_of_kill
            && progress * 100 >= total * 35
        {
            proxy.set_cut(true);
            let now = Instant::now();
            outage_started = Some(now);
            faults.outage_at_secs = Some(secs(now - started));
            eprintln!(
                "proof: DynamoDB cut at {:.1} s for {} s",
                now.duration_since(started).as_secs_f64(),
                args.outage_secs
            );
        }
        if let Some(at) = outage_started
            && !faults.outage_done
            && at.elapsed() >= Duration::from_secs(args.outage_secs)
        {
            proxy.set_cut(false);
            faults.outage_done = true;
            eprintln!("proof: DynamoDB restored");
        }
        if let Some(handle) = sender.take_if(|h| h.is_finished()) {
            sent = Some(handle.await.map_err(|e| e.to_string())??);
            send_secs = secs(started.elapsed());
            eprintln!("proof: all sent after {send_secs:.1} s");
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs)
            || interrupted.load(std::sync::atomic::Ordering::SeqCst)
        {
            timed_out = true;
            break;
        }
        if last_check.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_check = Instant::now();
        let left = lanes_depth(&sqs, &queues).await;
        let outage_over = outage_started.is_none() || faults.outage_done;
        if sent.is_some() && left == 0 && outage_over {
            empty_checks += 1;
            if empty_checks >= 2 {
                break;
            }
        } else {
            empty_checks = 0;
        }
        if last_check
            .duration_since(started)
            .as_secs()
            .is_multiple_of(10)
        {
            eprintln!(
                "proof: {:.0} s: {progress} of {total} pair requests seen, {} message(s) left",
                started.elapsed().as_secs_f64(),
                if left == u64::MAX { 0 } else { left }
            );
        }
    }
    let dispatch_secs = secs(started.elapsed());
    let _ = child.start_kill();
    let _ = child.wait().await;
    proxy.set_cut(false);
    faults.proxy_connections = proxy
        .stats
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    faults.proxy_refused = proxy
        .stats
        .refused
        .load(std::sync::atomic::Ordering::SeqCst);
    faults.proxy_severed = proxy
        .stats
        .severed
        .load(std::sync::atomic::Ordering::SeqCst);
    faults.kill_done = kill_at.is_some();

    let sent = match sent {
        Some(s) => s,
        None => match sender {
            Some(handle) => {
                handle.abort();
                Sent::default()
            }
            None => Sent::default(),
        },
    };
    let left = lanes_depth(&sqs, &queues).await;
    let dlq = drain(&sqs, &queues.dead_letter).await?;
    let windows = account::Windows {
        started,
        kill: kill_at,
        outage: outage_started.map(|s| (s, s + Duration::from_secs(args.outage_secs))),
    };
    let report = account::check(account::Input {
        store: &store,
        hooks: &hooks,
        events_requested: events.len(),
        accepted: &sent.accepted,
        poison: &poison,
        poison_sent: sent.poison,
        expected: &expected,
        recorder: &recorder,
        queue_left: left,
        dlq: &dlq,
        faults,
        windows,
        timing: Timing {
            started_at,
            total_secs: secs(started.elapsed()),
            send_secs,
            dispatch_secs,
            check_secs: 0.0,
        },
        timed_out,
        concurrency: args.concurrency,
        visibility_timeout_secs: VISIBILITY_TIMEOUT_SECS,
        max_receive_count: MAX_RECEIVE_COUNT,
        table: &name,
    })
    .await?;
    report.print();
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json + "\n").map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "proof: figures in {}, the dispatcher's log in {}",
        args.out.display(),
        poller.log.display()
    );
    Ok(report.passed)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

#[derive(Default)]
struct Sent {
    /// Ids of the events SQS accepted.
    accepted: HashSet<String>,
    poison: usize,
}

/// Sends the events in batches of 10, four batches at a time, spread over
/// `over` if non-zero and never more than [`MAX_BACKLOG`] ahead of the
/// dispatcher, with the poison messages after the first tenth.
async fn send_all(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    events: Vec<(String, String)>,
    poison: Vec<String>,
    over: Duration,
) -> Result<Sent, String> {
    let mut batches: Vec<(bool, Vec<(String, String)>)> = events
        .chunks(infra::SQS_BATCH_SIZE)
        .map(|c| (false, c.to_vec()))
        .collect();
    let poison_batch = poison
        .iter()
        .enumerate()
        .map(|(i, body)| (format!("poison-{i}"), body.clone()))
        .collect();
    batches.insert(batches.len() / 10, (true, poison_batch));
    let step = over / u32::try_from(batches.len().max(1)).unwrap_or(u32::MAX);
    let start = tokio::time::Instant::now();
    let results: Vec<Result<(bool, Vec<String>), String>> =
        futures_util::stream::iter(batches.into_iter().enumerate())
            .map(|(i, (is_poison, batch))| {
                let (sqs, queue) = (sqs.clone(), queue.clone());
                async move {
                    tokio::time::sleep_until(start + step * u32::try_from(i).unwrap_or(0)).await;
                    // Keep the backlog short: moto scans the whole queue on
                    // every receive, so a deep queue slows everything down.
                    if i % 5 == 0 {
                        while queue_depth(&sqs, &queue)
                            .await
                            .is_ok_and(|d| d > MAX_BACKLOG)
                        {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                    send_batch(&sqs, &queue, batch)
                        .await
                        .map(|ok| (is_poison, ok))
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
    let mut sent = Sent::default();
    for r in results {
        let (is_poison, ok) = r?;
        if is_poison {
            sent.poison += ok.len();
        } else {
            sent.accepted.extend(ok);
        }
    }
    Ok(sent)
}

/// One SendMessageBatch, retrying entries that failed; returns the ids accepted.
async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    mut batch: Vec<(String, String)>,
) -> Result<Vec<String>, String> {
    let mut accepted = Vec::new();
    for _ in 0..5 {
        if batch.is_empty() {
            break;
        }
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, (_, body))| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .ok()
            })
            .collect();
        let out = match sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("proof: SendMessageBatch failed: {}", DisplayErrorContext(e));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let ok: HashSet<usize> = out
            .successful
            .iter()
            .filter_map(|s| s.id.parse().ok())
            .collect();
        let mut retry = Vec::new();
        for (i, entry) in batch.into_iter().enumerate() {
            if ok.contains(&i) {
                accepted.push(entry.0);
            } else {
                retry.push(entry);
            }
        }
        batch = retry;
    }
    Ok(accepted)
}

/// Messages still in either lane's queue (`u64::MAX` if one cannot be read).
async fn lanes_depth(sqs: &aws_sdk_sqs::Client, queues: &infra::Queues) -> u64 {
    match (
        queue_depth(sqs, &queues.events).await,
        queue_depth(sqs, &queues.slow).await,
    ) {
        (Ok(a), Ok(b)) => a.saturating_add(b),
        _ => u64::MAX,
    }
}

/// Messages still in the queue: visible, in flight or delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<u64, String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?
        .attributes
        .unwrap_or_default();
    Ok(attrs
        .values()
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX / 4))
        .sum())
}

/// Every message body in the dead-letter queue (received, not deleted).
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<Vec<String>, String> {
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("reading the DLQ: {}", DisplayErrorContext(e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
        }
        bodies.extend(messages.into_iter().map(|m| m.body.unwrap_or_default()));
    }
    Ok(bodies)
}
