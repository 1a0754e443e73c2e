//! A webhook's lifecycle on DynamoDB and SQS (moto): its throttle, its
//! failing streak and the notices the platform sends about it, through the
//! dispatch handler and the real queues, to receivers on loopback.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::EventType::{AsyncCompleted, WebhookDisabled, WebhookFailing};
use shared::Status::{Active, Inactive};
use shared::event::Event;
use shared::infra::create_queues;
use shared::requeue::Requeue;
use shared::store::DynamoStore;
use shared::store::prelude::*;
use shared::throttle::ThrottleRate;
use testkit::aws::{invocation, receive, sqs_client, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{add_webhook, envelope, fresh_dispatcher, unique};

type Dispatcher = dispatch::Dispatcher<DynamoStore>;

/// A dispatcher whose retries, hand-overs and notices go to fresh queues
/// on moto; the slow lane's queue URL.
async fn dispatcher_with_lanes() -> (Dispatcher, aws_sdk_sqs::Client, String) {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("lifecycle"), 5).await.unwrap();
    let d = fresh_dispatcher(true, HashMap::new())
        .await
        .with_requeue(Requeue::lanes(&queues.events, &queues.slow));
    (d, sqs, queues.slow)
}

/// Runs one batch; the ids of the messages that came back.
async fn run(d: &Dispatcher, bodies: Vec<String>) -> Vec<String> {
    let messages: Vec<(String, String)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("m{i}"), b))
        .collect();
    let response = dispatch::handle(d, invocation(sqs_event(&messages), 6000))
        .await
        .expect("the handler never fails");
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// Every message now on the queue, taken off it.
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str, want: usize) -> Vec<String> {
    let messages = receive(sqs, queue, want).await;
    for m in &messages {
        sqs.delete_message()
            .queue_url(queue)
            .set_receipt_handle(m.receipt_handle.clone())
            .send()
            .await
            .expect("delete");
    }
    messages.into_iter().filter_map(|m| m.body).collect()
}

/// Tenant `acme`'s webhook at `rx`, subscribed to `async.completed` and
/// throttled to `rate` deliveries a second.
async fn throttled_webhook(d: &Dispatcher, rx: &Receiver, rate: i64) -> shared::Webhook {
    let mut w = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    let loaded = w.updated_at;
    w.throttle_rate = Some(ThrottleRate::new(rate).unwrap());
    d.store()
        .update_webhook(&w, loaded, &shared::audit::operator::updated(&w, &w))
        .await
        .unwrap();
    w
}

fn notices(bodies: &[String]) -> Vec<Event> {
    bodies
        .iter()
        .filter_map(|b| Event::from_json(b).ok())
        .filter(|e| e.event_type.is_notice())
        .collect()
}

async fn webhook(d: &Dispatcher, w: &shared::Webhook) -> shared::Webhook {
    d.store()
        .get_webhook(&w.tenant_id, w.id)
        .await
        .unwrap()
        .unwrap()
}

/// A webhook that fails every attempt: one `webhook.failing` at its 4th
/// failure, one `webhook.disabled` once its streak outlasts
/// AUTO_DISABLE_AFTER_SECONDS (here 3 s), the webhook inactive with its
/// reason; the notices reach the tenant's watcher and never the failing
/// endpoint; a notice from the producers' queue is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_streak_sends_one_notice_of_each_kind() {
    let (mut d, sqs, slow) = dispatcher_with_lanes().await;
    d.settings.auto_disable_after = Some(Duration::from_secs(3));
    let failing_rx = Receiver::start(Behavior::status(503)).await;
    let watcher_rx = Receiver::start(Behavior::status(200)).await;
    let failing = add_webhook(
        d.store(),
        "acme",
        &failing_rx.url("/"),
        &[AsyncCompleted, WebhookFailing, WebhookDisabled],
        Active,
    )
    .await;
    add_webhook(
        d.store(),
        "acme",
        &watcher_rx.url("/"),
        &[WebhookFailing, WebhookDisabled],
        Active,
    )
    .await;
    let event = || envelope("acme", AsyncCompleted, json!({"n": 1})).1;

    for _ in 0..6 {
        assert!(run(&d, vec![event()]).await.is_empty());
    }
    assert_eq!(failing_rx.requests().len(), 6);
    let w = webhook(&d, &failing).await;
    assert!(w.failing_since.is_some() && w.failing_notice_at.is_some());
    assert_eq!(w.last_error.as_deref(), Some("status 503"));
    let queued = drain(&sqs, &slow, 1).await;
    let sent = notices(&queued);
    assert_eq!(sent.len(), 1, "one webhook.failing per streak: {queued:?}");
    assert_eq!(sent[0].event_type, WebhookFailing);

    // Delivered to the watcher, not to the webhook it is about.
    assert!(run(&d, vec![sent[0].to_json()]).await.is_empty());
    let got = watcher_rx.requests();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "webhook.failing");
    assert_eq!(body["data"]["webhook_id"], failing.id.to_string());
    assert_eq!(failing_rx.requests().len(), 6);

    // Past the auto-disable period: one more failure disables it, once.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(run(&d, vec![event()]).await.is_empty());
    let w = webhook(&d, &failing).await;
    assert_eq!(w.status, Inactive);
    let reason = w.disabled_reason.unwrap_or_default();
    assert!(
        reason.contains("every attempt has failed since"),
        "{reason}"
    );
    assert!(run(&d, vec![event()]).await.is_empty());
    assert_eq!(failing_rx.requests().len(), 7, "nothing after the disable");
    let queued = drain(&sqs, &slow, 1).await;
    let sent = notices(&queued);
    assert_eq!(sent.len(), 1, "one webhook.disabled: {queued:?}");
    assert_eq!(sent[0].event_type, WebhookDisabled);
    assert!(run(&d, vec![sent[0].to_json()]).await.is_empty());
    assert_eq!(watcher_rx.requests().len(), 2);
    assert_eq!(failing_rx.requests().len(), 7);

    // A notice a producer forges on the events queue is refused.
    let events_arn = "arn:aws:sqs:eu-west-1:123456789012:hooks-events";
    let d = d.with_requeue(Requeue::lanes(
        "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events-slow",
    ));
    let mut forged = sqs_event(&[("f1".to_owned(), sent[0].to_json())]);
    forged.records[0].event_source_arn = Some(events_arn.to_owned());
    let response = dispatch::handle(&d, invocation(forged, 6000))
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(watcher_rx.requests().len(), 2);
}

/// Six events at a webhook throttled to 2 a second, through the real
/// queues: all handed to the slow lane, each delivered once, the later
/// ones after waiting on the queue (SQS delays); no less than 2.5 s from
/// the first to the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_webhook_is_paced_through_the_queue() {
    let (mut d, sqs, slow) = dispatcher_with_lanes().await;
    // The test's invocations have 6 s; with a 2 s delivery deadline they
    // can wait for a slot in place as the 7 s Lambda invocation does.
    d.settings.delivery_timeout = Duration::from_secs(2);
    let rx = Receiver::start(Behavior::status(200)).await;
    let w = throttled_webhook(&d, &rx, 2).await;

    let events: Vec<(Event, String)> = (0..6)
        .map(|i| envelope("acme", AsyncCompleted, json!({"i": i})))
        .collect();
    assert!(
        run(&d, events.iter().map(|(_, b)| b.clone()).collect())
            .await
            .is_empty()
    );
    assert!(rx.requests().is_empty(), "all handed over");

    let started = Instant::now();
    while rx.requests().len() < 6 && started.elapsed() < Duration::from_secs(20) {
        // What is there as soon as there is anything, as the event source
        // mapping hands it over.
        let bodies = drain(&sqs, &slow, 1).await;
        if !bodies.is_empty() {
            assert!(
                run(&d, bodies).await.is_empty(),
                "nothing fails for waiting"
            );
        }
    }
    let got = rx.requests();
    assert_eq!(got.len(), 6);
    let ids: HashSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 6, "each event once");
    assert!(
        started.elapsed() >= Duration::from_millis(2400),
        "{:?}",
        started.elapsed()
    );
    let read = webhook(&d, &w).await;
    assert!(read.throttle_next.is_some());
}

/// Events of about 150 KB go to the slow lane, and back to its queue to
/// wait for their slot, in requests SQS takes: eight of them in one
/// SendMessageBatch would pass its 1 MiB limit for a request.
#[tokio::test]
async fn large_events_are_handed_over_and_sent_back_within_the_batch_limit() {
    let (d, sqs, slow) = dispatcher_with_lanes().await;
    let rx = Receiver::start(Behavior::status(200)).await;
    throttled_webhook(&d, &rx, 1).await;
    let blob = "x".repeat(150 * 1024);
    let bodies: Vec<String> = (0..8)
        .map(|i| envelope("acme", AsyncCompleted, json!({"i": i, "blob": blob})).1)
        .collect();
    assert!(run(&d, bodies).await.is_empty(), "all eight handed over");
    let handed = drain(&sqs, &slow, 8).await;
    assert_eq!(handed.len(), 8);

    // One slot a second: the first is made now, the seven after it wait
    // on the queue.
    assert!(run(&d, handed).await.is_empty(), "the seven went back");
    assert_eq!(rx.requests().len(), 1);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&slow)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let waiting: usize = attributes
        .attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
        .unwrap_or(0);
    assert_eq!(waiting, 7);
}
