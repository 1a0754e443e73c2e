//! Benchmarks 2 and 3: the deadline under hanging receivers, and memory with 1,000 deliveries in flight.

use std::time::{Duration, Instant};

use serde_json::json;
use shared::EventType::AsyncCompleted;
use shared::delivery::Outcome;
use shared::store::MemoryStore;
use shared::store::prelude::*;
use testkit::envelope;

use crate::measure::{Helper, status_kib};

async fn dispatcher_to(
    port: &str,
    webhooks: usize,
) -> (dispatch::Dispatcher<MemoryStore>, Vec<shared::WebhookId>) {
    crate::fanout::dispatcher_with(MemoryStore::default(), port, webhooks).await
}

fn batch(events: usize) -> aws_lambda_events::event::sqs::SqsEvent {
    dispatch::local::sqs_event((0..events).map(|i| {
        (
            format!("m{i}"),
            envelope("bench", AsyncCompleted, json!({"i": i})).1,
        )
    }))
}

pub struct Hang {
    pub wall: Duration,
    pub timeouts: usize,
    pub deliveries: usize,
}

/// 10 events x 10 webhooks whose receiver never answers, under the 6 s function timeout.
pub async fn hanging() -> Hang {
    let receiver = Helper::spawn(&["receiver", "hang"]);
    let (d, ids) = dispatcher_to(&receiver.first_line, 10).await;
    let start = Instant::now();
    let response = dispatch::handle(
        &d,
        dispatch::local::invocation(
            batch(10),
            shared::infra::DISPATCH_TIMEOUT_SECS * 1000,
            "hang",
        ),
    )
    .await
    .expect("handler");
    let wall = start.elapsed();
    assert!(response.batch_item_failures.is_empty());
    let mut timeouts = 0;
    let mut deliveries = 0;
    for id in ids {
        let log = d
            .store()
            .list_deliveries(id, &Default::default(), 100, None)
            .await
            .expect("log")
            .items;
        deliveries += log.len();
        timeouts += log.iter().filter(|r| r.outcome == Outcome::Timeout).count();
    }
    Hang {
        wall,
        timeouts,
        deliveries,
    }
}

/// Runs in a child process (`memory-child`), so that its RSS is the dispatcher's
/// alone: 10 events x 100 webhooks to receivers that answer after 2 s.
/// Prints `setup_kib peak_kib rest_kib`.
/// `receiver` is the receiver's mode, `webhooks` the fan-out of each of
/// the batch's 10 events.
pub async fn memory_child(receiver: &str, webhooks: usize) {
    let receiver = Helper::spawn(&["receiver", receiver]);
    let (d, _) = dispatcher_to(&receiver.first_line, webhooks).await;
    let event = batch(10);
    let setup = status_kib("VmRSS");
    let response = dispatch::handle(
        &d,
        dispatch::local::invocation(event, shared::infra::DISPATCH_TIMEOUT_SECS * 1000, "memory"),
    )
    .await
    .expect("handler");
    assert!(response.batch_item_failures.is_empty());
    let peak = status_kib("VmHWM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest = status_kib("VmRSS");
    println!("{setup} {peak} {rest}");
}

pub struct Memory {
    pub setup_kib: u64,
    pub peak_kib: u64,
    pub rest_kib: u64,
}

/// The figures of [`memory_child`] in a process of its own.
pub fn memory(receiver: &str, webhooks: usize) -> Memory {
    let webhooks = webhooks.to_string();
    let child = Helper::spawn(&["memory-child", receiver, &webhooks]);
    let figures: Vec<u64> = child
        .first_line
        .split(' ')
        .filter_map(|n| n.parse().ok())
        .collect();
    match figures.as_slice() {
        [setup, peak, rest] => Memory {
            setup_kib: *setup,
            peak_kib: *peak,
            rest_kib: *rest,
        },
        _ => panic!("memory child printed {:?}", child.first_line),
    }
}
