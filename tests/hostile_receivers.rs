//! Hostile receivers in one batch with well-behaved ones: a connection reset,
//! garbage instead of HTTP, a 1 GB body streamed fast, response heads over
//! the client's limits (16 KiB, 64 headers) and one just within them, a
//! response head trickled one byte a second. Each is recorded within the delivery
//! deadline, the rest of the batch is delivered, and the handler returns
//! before the invocation's deadline. (tests/dispatch.rs covers the plainer
//! answers: 4xx/5xx, redirects, a closed connection, a refused port, a slow
//! 10 MB stream, TLS to a server that does not speak it.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::EventType::{AsyncCompleted, FlowxCompleted};
use shared::Status::Active;
use shared::delivery::Outcome;
use shared::store::prelude::*;
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{add_webhook, envelope, fresh_dispatcher};

/// The dispatch function's timeout, as the Lambda sets the invocation deadline.
const FUNCTION_TIMEOUT_MS: u64 = 6000;
/// The delivery deadline, with room for scheduling on a busy machine.
const DEADLINE_WITH_SLACK_MS: u64 = 5000 + 400;
const ONE_GB: usize = 1 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_are_recorded_within_the_deadline_and_spare_the_rest_of_the_batch() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let cases = [
        ("reset", Behavior::Reset, Outcome::ConnectError, None),
        (
            "garbage",
            Behavior::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not HTTP at all\r\n\r\n"),
            Outcome::ConnectError,
            None,
        ),
        (
            "1 GB body",
            Behavior::HugeBody { total: ONE_GB },
            Outcome::Delivered,
            Some(200),
        ),
        (
            "20 KiB head",
            Behavior::Respond {
                status: 200,
                headers: vec![("x-padding", "a".repeat(20 * 1024))],
                body: Vec::new(),
            },
            Outcome::ResponseTooLarge,
            None,
        ),
        (
            "70 headers",
            Behavior::Respond {
                status: 200,
                headers: vec![("x-n", "1".to_owned()); 70],
                body: Vec::new(),
            },
            Outcome::ResponseTooLarge,
            None,
        ),
        (
            // The negative control: a large head within the limit is read.
            "12 KiB head, 50 headers",
            Behavior::Respond {
                status: 200,
                headers: [("x-padding", "a".repeat(12 * 1024))]
                    .into_iter()
                    .chain(vec![("x-n", "1".to_owned()); 49])
                    .collect(),
                body: Vec::new(),
            },
            Outcome::Delivered,
            Some(200),
        ),
        (
            "trickled head",
            Behavior::TrickleHead {
                every: Duration::from_secs(1),
            },
            Outcome::Timeout,
            None,
        ),
    ];
    let mut hostile = Vec::new();
    for (name, behavior, outcome, status) in cases {
        let rx = Receiver::start(behavior).await;
        let wh = add_webhook(d.store(), "acme", &rx.url("/h"), &[AsyncCompleted], Active).await;
        hostile.push((name, rx, wh, outcome, status));
    }
    // A normal receiver of the same event, and another tenant's event in the
    // same batch.
    let normal = Receiver::start(Behavior::status(200)).await;
    let normal_wh = add_webhook(
        d.store(),
        "acme",
        &normal.url("/ok"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    let other = Receiver::start(Behavior::status(204)).await;
    let other_wh = add_webhook(
        d.store(),
        "globex",
        &other.url("/ok"),
        &[FlowxCompleted],
        Active,
    )
    .await;
    let (event, body) = envelope("acme", AsyncCompleted, json!({"case": "hostile"}));
    let (other_event, other_body) = envelope("globex", FlowxCompleted, json!({"case": "normal"}));

    let started = Instant::now();
    let response = dispatch::handle(
        &d,
        invocation(
            sqs_event(&[("m1".into(), body), ("m2".into(), other_body)]),
            FUNCTION_TIMEOUT_MS,
        ),
    )
    .await
    .expect("the handler never fails");
    let elapsed = started.elapsed();

    assert!(
        response.batch_item_failures.is_empty(),
        "every delivery recorded, so no message is retried: {:?}",
        response.batch_item_failures
    );
    assert!(
        elapsed < Duration::from_millis(FUNCTION_TIMEOUT_MS) - dispatch::SAFETY_MARGIN / 2,
        "the handler returns before the invocation's deadline: {elapsed:?}"
    );
    for (name, rx, wh, outcome, status) in &hostile {
        let log = d
            .store()
            .list_deliveries(wh.id, &Default::default(), 10, None)
            .await
            .expect("delivery log")
            .items;
        assert_eq!(log.len(), 1, "{name}: one record");
        let record = &log[0];
        assert_eq!(record.event_id, event.id, "{name}");
        assert_eq!(
            (record.outcome, record.status),
            (*outcome, *status),
            "{name}: {record:?}"
        );
        assert!(
            record.duration_ms <= DEADLINE_WITH_SLACK_MS,
            "{name}: recorded within the deadline, took {} ms",
            record.duration_ms
        );
        assert_eq!(rx.connections(), 1, "{name}: one connection, no retry");
        if *name == "1 GB body" {
            // Only the first 4 KiB are read: the client hangs up long before
            // 1 GB (what the kernel buffers on loopback is at most a few MB).
            assert!(
                rx.written() < 64 << 20,
                "{name}: {} bytes written before the client hung up",
                rx.written()
            );
            assert!(
                record
                    .response_body
                    .as_deref()
                    .is_some_and(|b| b.len() <= 1024)
            );
        }
        if *name == "trickled head" {
            assert!(
                rx.written() <= 7,
                "{name}: the deadline ended it after a few bytes, not {}",
                rx.written()
            );
        }
    }
    for (rx, wh, id, status) in [
        (&normal, &normal_wh, &event.id, 200),
        (&other, &other_wh, &other_event.id, 204),
    ] {
        assert_eq!(
            rx.requests().len(),
            1,
            "the normal receiver got the event once"
        );
        assert_eq!(
            rx.requests()[0].header("webhook-id"),
            Some(id.as_str()),
            "with its id"
        );
        let log = d
            .store()
            .list_deliveries(wh.id, &Default::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].outcome, log[0].status),
            (Outcome::Delivered, Some(status))
        );
        assert!(
            log[0].duration_ms < 2000,
            "not held up by the hostile receivers: {} ms",
            log[0].duration_ms
        );
    }
}
