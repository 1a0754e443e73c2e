//! The dispatch handler against DynamoDB and SQS on moto, delivering to real
//! HTTP receivers on 127.0.0.1.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use shared::EventType::{AsyncCompleted, AsyncErrored, FactxQuery, FlowxCompleted};
use shared::Status::{Active, Inactive};
use shared::delivery::Outcome;
use shared::delivery_log::DeliveryRecord;
use shared::infra::create_queues;
use shared::store::prelude::*;
use testkit::aws::{invocation, receive, sqs_client, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::unique;
use testkit::{add_webhook, envelope, fresh_dispatcher, standard_webhooks_signature};

const FULL_TIME: u64 = 6000;

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

async fn log_of(store: &impl Store, webhook: shared::WebhookId) -> Vec<DeliveryRecord> {
    store
        .list_deliveries(webhook, &Default::default(), 100, None)
        .await
        .expect("delivery log")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_carries_the_documented_body_headers_and_signature() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::Respond {
        status: 200,
        headers: vec![],
        body: b"thanks".to_vec(),
    })
    .await;
    let wh = add_webhook(
        d.store(),
        "acme",
        &rx.url("/hooks/ekyc?src=1"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    let data = json!({"request_id": "r-1", "result": {"face_match": 0.97, "liveness": "pass"}});
    let (event, body) = envelope("acme", AsyncCompleted, data.clone());

    let response = shared_handle(&d, vec![("m1".into(), body)]).await;
    assert!(failures(&response).is_empty());

    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/ekyc?src=1");
    let sent: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    let timestamp = time::OffsetDateTime::parse(
        sent["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(timestamp, event.timestamp);
    assert_eq!(
        sent,
        json!({"id": event.id.as_str(), "type": "async.completed", "timestamp": sent["timestamp"], "data": data}),
        "the envelope without tenant_id"
    );
    assert!(sent.get("tenant_id").is_none());
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {}", wh.token.expose()).as_str())
    );
    assert!(
        req.header("user-agent")
            .unwrap()
            .starts_with("ekyc-webhooks/")
    );
    assert_eq!(req.header("webhook-id"), Some(event.id.as_str()));
    let ts = req.header("webhook-timestamp").unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (ts.parse::<i64>().unwrap() - now).abs() <= 5,
        "webhook-timestamp is now"
    );
    let expected =
        standard_webhooks_signature(wh.signing_secret.expose(), event.id.as_str(), ts, &req.body);
    assert_eq!(req.header("webhook-signature"), Some(expected.as_str()));

    let log = log_of(d.store(), wh.id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, Outcome::Delivered);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].event_id, event.id);
    assert_eq!(log[0].event_type, AsyncCompleted);
    assert_eq!(log[0].response_body.as_deref(), Some("thanks"));
    let expires_in_days = (log[0].expires_at - now) / 86_400;
    assert!((29..=30).contains(&expires_in_days), "{expires_in_days}");
}

async fn shared_handle(
    d: &dispatch::Dispatcher<shared::store::DynamoStore>,
    messages: Vec<(String, String)>,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    dispatch::handle(d, invocation(sqs_event(&messages), FULL_TIME))
        .await
        .expect("handler never fails")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reaches_exactly_the_active_subscribed_webhooks_of_the_tenant() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let mut subscribed = Vec::new();
    for _ in 0..3 {
        let rx = Receiver::start(Behavior::status(200)).await;
        add_webhook(
            d.store(),
            "tenant-a",
            &rx.url("/"),
            &[FlowxCompleted, AsyncErrored],
            Active,
        )
        .await;
        subscribed.push(rx);
    }
    let inactive = Receiver::start(Behavior::status(200)).await;
    add_webhook(
        d.store(),
        "tenant-a",
        &inactive.url("/"),
        &[FlowxCompleted],
        Inactive,
    )
    .await;
    let other_type = Receiver::start(Behavior::status(200)).await;
    add_webhook(
        d.store(),
        "tenant-a",
        &other_type.url("/"),
        &[FactxQuery],
        Active,
    )
    .await;
    let tenant_b = Receiver::start(Behavior::status(200)).await;
    add_webhook(
        d.store(),
        "tenant-b",
        &tenant_b.url("/"),
        &[FlowxCompleted],
        Active,
    )
    .await;

    let (event, body) = envelope("tenant-a", FlowxCompleted, json!({"flow_id": "f-9"}));
    let response = shared_handle(&d, vec![("m1".into(), body)]).await;
    assert!(failures(&response).is_empty());
    for rx in &subscribed {
        let got = rx.requests();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("webhook-id"), Some(event.id.as_str()));
    }
    assert_eq!(inactive.connections(), 0, "inactive webhook");
    assert_eq!(
        other_type.connections(),
        0,
        "webhook subscribed to other types"
    );
    assert_eq!(tenant_b.connections(), 0, "another tenant's webhook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_times_out_at_the_deadline_without_delaying_the_rest() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let hanging = Receiver::start(Behavior::Hang).await;
    let slow = add_webhook(d.store(), "acme", &hanging.url("/"), &[FactxQuery], Active).await;
    let fine = Receiver::start(Behavior::status(200)).await;
    let ok = add_webhook(d.store(), "acme", &fine.url("/"), &[AsyncCompleted], Active).await;

    let mut messages = vec![(
        "hang".to_owned(),
        envelope("acme", FactxQuery, json!({"q": 1})).1,
    )];
    for i in 0..3 {
        messages.push((
            format!("ok-{i}"),
            envelope("acme", AsyncCompleted, json!({"n": i})).1,
        ));
    }
    let started = Instant::now();
    let response = shared_handle(&d, messages).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(5800),
        "invocation took {elapsed:?}"
    );
    assert!(
        failures(&response).is_empty(),
        "a receiver's failure is not a batch failure"
    );

    let log = log_of(d.store(), slow.id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, Outcome::Timeout);
    assert_eq!(log[0].status, None);
    assert!(
        (4700..=5300).contains(&log[0].duration_ms),
        "timed out after {} ms",
        log[0].duration_ms
    );
    let delivered = log_of(d.store(), ok.id).await;
    assert_eq!(delivered.len(), 3);
    assert!(
        delivered
            .iter()
            .all(|r| r.outcome == Outcome::Delivered && r.duration_ms < 1000)
    );
    assert_eq!(hanging.requests().len(), 1, "sent once, not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_receiver_answer_is_recorded() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let cases = [
        (
            Behavior::Respond {
                status: 500,
                headers: vec![],
                body: b"boom".to_vec(),
            },
            Outcome::HttpError,
            Some(500),
        ),
        (
            Behavior::Respond {
                status: 302,
                headers: vec![("location", "https://elsewhere.example.com/x".into())],
                body: vec![],
            },
            Outcome::Redirect,
            Some(302),
        ),
        (Behavior::status(204), Outcome::Delivered, Some(204)),
        (Behavior::status(404), Outcome::HttpError, Some(404)),
        (Behavior::Close, Outcome::ConnectError, None),
        (
            Behavior::SlowStream {
                total: 10 * 1024 * 1024,
                chunk: 1024,
                every: Duration::from_millis(50),
            },
            Outcome::Delivered,
            Some(200),
        ),
    ];
    let mut receivers = Vec::new();
    let mut webhooks = Vec::new();
    for (behavior, _, _) in &cases {
        let rx = Receiver::start(behavior.clone()).await;
        webhooks
            .push(add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await);
        receivers.push(rx);
    }
    // A webhook whose port has no listener at all.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = add_webhook(
        d.store(),
        "acme",
        &format!("http://127.0.0.1:{closed_port}/"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    // An https URL whose server does not speak TLS.
    let not_tls = Receiver::start(Behavior::Garbage(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
    let tls = add_webhook(
        d.store(),
        "acme",
        &format!("https://{}/", not_tls.addr),
        &[AsyncCompleted],
        Active,
    )
    .await;

    let started = Instant::now();
    let response = shared_handle(
        &d,
        vec![("m1".into(), envelope("acme", AsyncCompleted, json!({})).1)],
    )
    .await;
    let elapsed = started.elapsed();
    assert!(failures(&response).is_empty());
    assert!(
        elapsed < Duration::from_secs(3),
        "no receiver delays the batch: {elapsed:?}"
    );

    for ((_, outcome, status), wh) in cases.iter().zip(&webhooks) {
        let log = log_of(d.store(), wh.id).await;
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].outcome, log[0].status),
            (*outcome, *status),
            "{:?}",
            log[0]
        );
    }
    let redirect = &log_of(d.store(), webhooks[1].id).await[0];
    assert_eq!(
        redirect.location.as_deref(),
        Some("https://elsewhere.example.com/x")
    );
    assert_eq!(
        receivers[1].requests().len(),
        1,
        "the redirect is not followed"
    );
    let error = &log_of(d.store(), webhooks[0].id).await[0];
    assert_eq!(error.response_body.as_deref(), Some("boom"));
    let streamed = &log_of(d.store(), webhooks[5].id).await[0];
    let excerpt = streamed.response_body.as_deref().unwrap();
    assert!(
        excerpt.len() <= 1024 && !excerpt.is_empty(),
        "at most 1 KiB kept"
    );
    let refused = &log_of(d.store(), refused.id).await[0];
    assert_eq!(refused.outcome, Outcome::ConnectError);
    assert!(refused.error.is_some());
    let tls = &log_of(d.store(), tls.id).await[0];
    assert_eq!(tls.outcome, Outcome::TlsError, "{tls:?}");
    assert!(tls.error.as_deref().unwrap().starts_with("TLS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_blocked_at_send_time_without_a_connection() {
    let rx = Receiver::start(Behavior::status(200)).await;
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let metadata: IpAddr = "169.254.169.254".parse().unwrap();
    let dns = HashMap::from([
        ("rebound.example.com".to_owned(), vec![loopback]),
        ("metadata.example.com".to_owned(), vec![metadata]),
        ("mixed.example.com".to_owned(), vec![metadata, loopback]),
    ]);
    let d = fresh_dispatcher(false, dns).await;
    let port = rx.addr.port();
    let urls = [
        format!("http://rebound.example.com:{port}/"),
        "http://metadata.example.com/latest/meta-data/".to_owned(),
        format!("http://mixed.example.com:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ];
    let mut webhooks = Vec::new();
    for url in &urls {
        webhooks.push(add_webhook(d.store(), "acme", url, &[AsyncCompleted], Active).await);
    }
    let response = shared_handle(
        &d,
        vec![("m1".into(), envelope("acme", AsyncCompleted, json!({})).1)],
    )
    .await;
    assert!(failures(&response).is_empty());
    for (url, wh) in urls.iter().zip(&webhooks) {
        let log = log_of(d.store(), wh.id).await;
        assert_eq!(log[0].outcome, Outcome::Blocked, "{url}: {:?}", log[0]);
    }
    assert_eq!(
        rx.connections(),
        0,
        "no connection reached the loopback receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_queue_and_the_rest_is_delivered() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::status(200)).await;
    let wh = add_webhook(
        d.store(),
        "acme",
        &rx.url("/"),
        &[AsyncCompleted, AsyncErrored],
        Active,
    )
    .await;
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("events"), 1).await.unwrap();
    let (queue, dlq) = (queues.events, queues.dead_letter);
    let bodies = [
        envelope("acme", AsyncCompleted, json!({"a": 1})).1,
        r#"{"id": "evt_bad", "tenant_id": "acme", "type": "async.finished", "timestamp": "2026-11-25T17:00:00Z", "data": {}}"#.to_owned(),
        envelope("acme", AsyncErrored, json!({"a": 2})).1,
        "not json at all".to_owned(),
    ];
    for body in &bodies {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // What the event source mapping does: receive, invoke, delete all but the failures.
    let received = receive(&sqs, &queue, bodies.len()).await;
    assert_eq!(received.len(), bodies.len());
    let messages: Vec<(String, String)> = received
        .iter()
        .map(|m| (m.message_id.clone().unwrap(), m.body.clone().unwrap()))
        .collect();
    let response = shared_handle(&d, messages).await;
    let failed = failures(&response);
    let mut expected_failed: Vec<String> = received
        .iter()
        .filter(|m| {
            !m.body.as_deref().unwrap().contains("\"acme\"")
                || m.body.as_deref().unwrap().contains("evt_bad")
        })
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    expected_failed.sort();
    assert_eq!(failed, expected_failed);
    for m in &received {
        if !failed.contains(m.message_id.as_ref().unwrap()) {
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        rx.requests().len(),
        2,
        "the valid messages of the batch are delivered"
    );
    assert_eq!(log_of(d.store(), wh.id).await.len(), 2);

    // When their visibility timeout ends, the failures come back once too often and move to the DLQ.
    for m in received
        .iter()
        .filter(|m| failed.contains(m.message_id.as_ref().unwrap()))
    {
        sqs.change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let again = receive(&sqs, &queue, 1).await;
    assert!(
        again.is_empty(),
        "moved to the DLQ, not redelivered: {again:?}"
    );
    let dead = receive(&sqs, &dlq, 2).await;
    let mut dead_bodies: Vec<String> = dead.iter().map(|m| m.body.clone().unwrap()).collect();
    dead_bodies.sort();
    let mut want = vec![bodies[1].clone(), bodies[3].clone()];
    want.sort();
    assert_eq!(dead_bodies, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_reaches_each_receiver_once() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx1 = Receiver::start(Behavior::status(200)).await;
    let rx2 = Receiver::start(Behavior::status(500)).await;
    add_webhook(d.store(), "acme", &rx1.url("/"), &[AsyncCompleted], Active).await;
    add_webhook(d.store(), "acme", &rx2.url("/"), &[AsyncCompleted], Active).await;
    let (_, body) = envelope("acme", AsyncCompleted, json!({"x": 1}));

    // Twice in one batch, then again in a later invocation.
    let first = shared_handle(
        &d,
        vec![("m1".into(), body.clone()), ("m1-dup".into(), body.clone())],
    )
    .await;
    assert!(failures(&first).is_empty());
    let second = shared_handle(&d, vec![("m1-again".into(), body)]).await;
    assert!(failures(&second).is_empty());
    assert_eq!(rx1.requests().len(), 1);
    assert_eq!(
        rx2.requests().len(),
        1,
        "a recorded failure is not sent again either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_second_left_the_handler_returns_in_time_and_records_a_shortened_attempt() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let hanging = Receiver::start(Behavior::Hang).await;
    let slow = add_webhook(d.store(), "acme", &hanging.url("/"), &[FactxQuery], Active).await;
    let fine = Receiver::start(Behavior::status(200)).await;
    let ok = add_webhook(d.store(), "acme", &fine.url("/"), &[AsyncCompleted], Active).await;
    let messages = vec![
        ("hang".to_owned(), envelope("acme", FactxQuery, json!({})).1),
        (
            "ok".to_owned(),
            envelope("acme", AsyncCompleted, json!({})).1,
        ),
    ];
    let started = Instant::now();
    let response = dispatch::handle(&d, invocation(sqs_event(&messages), 1000))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed
            <= Duration::from_millis(1000) - dispatch::SAFETY_MARGIN + Duration::from_millis(100),
        "{elapsed:?}"
    );
    // The hanging attempt's deadline ended in time for its record (it used to
    // be cut off unrecorded, and sent again when its message came back).
    assert!(failures(&response).is_empty(), "{:?}", failures(&response));
    let hung = log_of(d.store(), slow.id).await;
    assert_eq!(hung.len(), 1);
    assert_eq!(hung[0].outcome.as_str(), "timeout");
    assert_eq!(log_of(d.store(), ok.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_makes_every_message_a_batch_failure() {
    let good = fresh_dispatcher(true, HashMap::new()).await;
    // The same client on a table that does not exist: every store call fails.
    let store = shared::store::DynamoStore::new(
        good.store().client().await.expect("client").clone(),
        "no-such-table",
    );
    let settings = testkit::settings("no-such-table", 50);
    let client = shared::delivery::DeliveryClient::new(Default::default()).unwrap();
    let broken = dispatch::Dispatcher::new(store, client, &settings);
    let messages = vec![
        (
            "a".to_owned(),
            envelope("acme", AsyncCompleted, json!({})).1,
        ),
        (
            "b".to_owned(),
            envelope("other", AsyncCompleted, json!({})).1,
        ),
    ];
    let response = dispatch::handle(&broken, invocation(sqs_event(&messages), FULL_TIME))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitted_event_travels_through_sqs_to_the_receiver() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::status(200)).await;
    add_webhook(d.store(), "acme", &rx.url("/"), &[FlowxCompleted], Active).await;
    let sqs = sqs_client().await;
    let queue = create_queues(&sqs, &unique("events"), 5)
        .await
        .unwrap()
        .events;
    let new = |event_type: &str| shared::emit::NewEvent {
        id: None,
        tenant_id: "acme".into(),
        event_type: event_type.into(),
        timestamp: None,
        subject: None,
        data: json!({"flow_id": "f-1", "stages": ["id", "selfie"]}),
    };
    let refused = shared::emit::emit(&sqs, &queue, new("flowx.finished")).await;
    assert!(
        matches!(refused, Err(shared::emit::EmitError::Invalid(ref e)) if e.field == "type"),
        "{refused:?}"
    );
    let id = shared::emit::emit(&sqs, &queue, new("flowx.completed"))
        .await
        .expect("emit");

    let received = receive(&sqs, &queue, 1).await;
    assert_eq!(received.len(), 1, "only the valid event reached the queue");
    let messages = vec![(
        received[0].message_id.clone().unwrap(),
        received[0].body.clone().unwrap(),
    )];
    let response = shared_handle(&d, messages).await;
    assert!(failures(&response).is_empty());
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), Some(id.as_str()));
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"]["stages"], json!(["id", "selfie"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_batch_is_in_flight_at_once() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    // 10 webhooks that each take a second to answer; 10 events: 100 deliveries.
    let mut receivers = Vec::new();
    for _ in 0..10 {
        let rx = Receiver::start(Behavior::Delayed {
            status: 200,
            after: Duration::from_secs(1),
        })
        .await;
        add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
        receivers.push(rx);
    }
    let messages: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("m{i}"),
                envelope("acme", AsyncCompleted, json!({"i": i})).1,
            )
        })
        .collect();
    let started = Instant::now();
    let response = shared_handle(&d, messages).await;
    let elapsed = started.elapsed();
    assert!(failures(&response).is_empty());
    assert!(receivers.iter().all(|rx| rx.requests().len() == 10));
    // In sequence this would take 100 s; together, about one second plus the store writes.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
}

/// The batch's EMF metrics say what happened in it: messages
/// received, the one repeated, the invalid one returned, and each delivery
/// by outcome; tenants as a property, never a dimension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_metrics_that_count_what_happened() {
    let d = fresh_dispatcher(true, HashMap::new())
        .await
        .with_metrics(dispatch::metrics::MetricsOut::memory());
    let ok = Receiver::start(Behavior::status(200)).await;
    let broken = Receiver::start(Behavior::status(500)).await;
    for rx in [&ok, &broken] {
        add_webhook(d.store(), "acme", &rx.url("/h"), &[AsyncCompleted], Active).await;
    }
    let (_, body) = envelope("acme", AsyncCompleted, json!({"n": 1}));
    let messages = vec![
        ("m1".into(), body.clone()),
        ("m2".into(), body),
        ("m3".into(), "not json".into()),
    ];
    let response = shared_handle(&d, messages).await;
    assert_eq!(failures(&response), ["m3"]);

    let lines: Vec<serde_json::Value> = d
        .metrics()
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "the batch, then delivered and http_error: {lines:?}"
    );
    let batch = &lines[0];
    assert_eq!(batch["EventsReceived"], 3);
    assert_eq!(batch["DuplicatesSkipped"], 1);
    assert_eq!(batch["BatchItemFailures"], 1);
    assert_eq!(batch["Deliveries"], 2);
    assert_eq!(batch["DeliveriesFailed"], 1);
    assert_eq!(batch["TenantIds"], json!(["acme"]));
    let outcomes: Vec<(&str, &str, u64)> = lines[1..]
        .iter()
        .map(|l| {
            (
                l["Lane"].as_str().unwrap(),
                l["Outcome"].as_str().unwrap(),
                l["DeliveriesByOutcome"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("main", "delivered", 1), ("main", "http_error", 1)]
    );
    for line in &lines {
        let dims = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].to_string();
        assert!(!dims.contains("Tenant"), "{dims}");
    }
}
