//! Never losing an event for a customer: opt-in retries through SQS (moto),
//! `410 Gone`, redelivery, the catch-up API and signing-secret rotation, with
//! the real handlers and real receivers on 127.0.0.1. Schedules are seconds
//! long here (the setting), not hours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispatch::Dispatcher;
use serde_json::{Value, json};
use shared::EventType::{AsyncCompleted, FlowxCompleted};
use shared::Status::Active;
use shared::Webhook;
use shared::delivery_log::DeliveryRecord;
use shared::infra::create_queues;
use shared::requeue::Requeue;
use shared::retry::RetryPolicy;
use shared::store::DynamoStore;
use shared::store::prelude::*;
use testkit::aws::{invocation, sqs_client, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{
    Call, add_webhook, api_key_for, envelope, fresh_dispatcher, standard_webhooks_signature, unique,
};

/// The dispatcher with a short retry schedule.
fn retrying(mut d: Dispatcher<DynamoStore>, schedule: &[u64]) -> Dispatcher<DynamoStore> {
    d.settings.retry_schedule = schedule.iter().map(|s| Duration::from_secs(*s)).collect();
    d
}

/// Sets a stored webhook's retry policy.
async fn with_policy(store: &impl Store, webhook: &Webhook, policy: RetryPolicy) {
    let by = (
        shared::audit::Action::WebhookUpdated,
        &shared::audit::Actor::Operator,
    );
    shared::store::modify(store, &webhook.tenant_id, webhook.id, by, |w| {
        w.retry_policy = policy;
        true
    })
    .await
    .expect("set the retry policy");
}

async fn log_of(store: &impl Store, webhook: &Webhook) -> Vec<DeliveryRecord> {
    let mut log = store
        .list_deliveries(webhook.id, &Default::default(), 100, None)
        .await
        .expect("delivery log")
        .items;
    log.reverse(); // oldest first
    log
}

/// Plays Lambda's event source: receives from the queue and hands each batch
/// to the handler, deleting what did not fail, until `done` or the time is up.
async fn pump(
    d: &dispatch::Dispatcher<DynamoStore>,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    seconds: u64,
    done: impl Fn() -> bool,
) {
    let until = std::time::Instant::now() + Duration::from_secs(seconds);
    while std::time::Instant::now() < until && !done() {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let batch: Vec<(String, String)> = messages
            .iter()
            .map(|m| (m.message_id.clone().unwrap(), m.body.clone().unwrap()))
            .collect();
        let response = dispatch::handle(d, invocation(sqs_event(&batch), 6000))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty(), "a batch failed");
        for m in messages {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
}

fn seconds_between(a: &str, b: &str) -> f64 {
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    (parse(b) - parse(a)).as_seconds_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_exponential_retries_ends_delivered_with_every_attempt_logged() {
    let sqs = sqs_client().await;
    let queue = create_queues(&sqs, &unique("retry"), 5)
        .await
        .unwrap()
        .events;
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::sqs(&queue)),
        &[1, 4, 60],
    );
    // Down for two attempts, then up.
    let rx = Receiver::start(Behavior::Sequence(vec![503, 503, 200])).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &wh, RetryPolicy::Exponential).await;
    let (event, body) = envelope("acme", AsyncCompleted, json!({"n": 1}));
    sqs.send_message()
        .queue_url(&queue)
        .message_body(body)
        .send()
        .await
        .unwrap();

    let received = || rx.requests().len() >= 3;
    pump(&d, &sqs, &queue, 20, received).await;

    let log = log_of(d.store(), &wh).await;
    let outcomes: Vec<(u32, &str, Option<u16>)> = log
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str(), r.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "http_error", Some(503)),
            (2, "http_error", Some(503)),
            (3, "delivered", Some(200))
        ]
    );
    assert!(log[0].next_attempt_at.is_some() && log[1].next_attempt_at.is_some());
    assert!(log[2].next_attempt_at.is_none() && !log[2].exhausted);
    // The waits follow the schedule (1 s, then 4 s, ±20 %, SQS delays rounded
    // up to whole seconds), in order.
    let first_wait = seconds_between(&log[0].attempted_at, &log[1].attempted_at);
    let second_wait = seconds_between(&log[1].attempted_at, &log[2].attempted_at);
    assert!((0.75..3.0).contains(&first_wait), "first wait {first_wait}");
    assert!(second_wait >= 3.15, "second wait {second_wait}");
    // Every attempt carried the same webhook-id.
    let ids: Vec<_> = rx
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![event.id.to_string(); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_out_as_exhausted() {
    let queued = Arc::new(Mutex::new(Vec::new()));
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::Memory(queued.clone())),
        &[1],
    );
    let rx = Receiver::start(Behavior::status(500)).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &wh, RetryPolicy::Exponential).await;
    let (_, body) = envelope("acme", AsyncCompleted, json!({}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    let retry = queued.lock().unwrap().pop().expect("a retry was queued").0;
    dispatch::handle(&d, invocation(sqs_event(&[("m2".into(), retry)]), 6000))
        .await
        .unwrap();
    let log = log_of(d.store(), &wh).await;
    assert_eq!(log.len(), 2);
    assert!(log[1].exhausted && log[1].next_attempt_at.is_none());
    assert!(
        queued.lock().unwrap().is_empty(),
        "nothing after the last step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_tries_once_a_400_is_final_and_retry_after_is_read() {
    let queued = Arc::new(Mutex::new(Vec::new()));
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::Memory(queued.clone())),
        &[1, 2, 3],
    );
    let down = Receiver::start(Behavior::status(503)).await;
    let refusing = Receiver::start(Behavior::status(400)).await;
    let busy = Receiver::start(Behavior::Respond {
        status: 429,
        headers: vec![("retry-after", "7".into())],
        body: Vec::new(),
    })
    .await;
    let default_policy =
        add_webhook(d.store(), "acme", &down.url("/"), &[AsyncCompleted], Active).await;
    let bad_request = add_webhook(
        d.store(),
        "acme",
        &refusing.url("/"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    let throttled = add_webhook(d.store(), "acme", &busy.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &bad_request, RetryPolicy::Exponential).await;
    with_policy(d.store(), &throttled, RetryPolicy::Exponential).await;
    let (_, body) = envelope("acme", AsyncCompleted, json!({}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();

    for (wh, name) in [(&default_policy, "none"), (&bad_request, "400")] {
        let log = log_of(d.store(), wh).await;
        assert_eq!(log.len(), 1, "{name}");
        assert!(
            log[0].next_attempt_at.is_none() && !log[0].exhausted,
            "{name}"
        );
    }
    let queued = queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 1, "only the 429 is retried");
    let (message, delay) = &queued[0];
    assert_eq!(
        *delay,
        Duration::from_secs(7),
        "Retry-After, not the 1 s step"
    );
    let message: Value = serde_json::from_str(message).unwrap();
    assert_eq!(message["target"]["webhook_id"], throttled.id.to_string());
    assert_eq!(message["target"]["attempt"], 2);
    let log = log_of(d.store(), &throttled).await;
    assert_eq!(
        seconds_between(
            &log[0].attempted_at,
            log[0].next_attempt_at.as_ref().unwrap()
        )
        .round(),
        7.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_sets_the_webhook_inactive_with_the_reason() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::status(410)).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    let (_, body) = envelope("acme", AsyncCompleted, json!({}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    let stored = d
        .store()
        .get_webhook(&wh.tenant_id, wh.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, shared::Status::Inactive);
    assert!(
        stored
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("410 Gone")
    );

    // The API shows the reason, and activating the webhook clears it.
    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50));
    let key = api_key_for(&app.store, "acme").await;
    let shown = Call::new("GET", &format!("/webhooks/{}", wh.id), &key)
        .send(&app)
        .await;
    assert!(
        shown.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    assert_eq!(shown.body["status"], "inactive");
    let activated = Call::new("PATCH", &format!("/webhooks/{}", wh.id), &key)
        .json(json!({"status": "active"}))
        .send(&app)
        .await;
    assert_eq!(activated.status, 200);
    assert!(activated.body.get("disabled_reason").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_redelivery_arrives_with_the_same_webhook_id() {
    let sqs = sqs_client().await;
    let queue = create_queues(&sqs, &unique("redeliver"), 5)
        .await
        .unwrap()
        .events;
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::sqs(&queue)),
        &[1],
    );
    let rx = Receiver::start(Behavior::Sequence(vec![500, 200, 200])).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    let other = add_webhook(
        d.store(),
        "acme",
        &rx.url("/other"),
        &[FlowxCompleted],
        Active,
    )
    .await;
    let (event, body) = envelope("acme", AsyncCompleted, json!({"kyc": "pass"}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    assert_eq!(rx.requests().len(), 1);

    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(Requeue::sqs(&queue));
    let key = api_key_for(&app.store, "acme").await;
    // Everything subscribed: the event again to `wh` only (`other` is not subscribed).
    let all = Call::new("POST", &format!("/events/{}/redeliver", event.id), &key)
        .send(&app)
        .await;
    assert_eq!(all.status, 202, "{}", all.body);
    assert_eq!(all.body["queued"].as_array().unwrap().len(), 1);
    // Manual attempts are numbered from 101: they never take an automatic one's number.
    assert_eq!(all.body["queued"][0]["attempt"], 101);
    // One delivery, by its id from the log.
    let log = Call::new("GET", &format!("/webhooks/{}/deliveries", wh.id), &key)
        .send(&app)
        .await;
    let delivery_id = log.body["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(delivery_id, format!("{}~1", event.id));
    let one = Call::new(
        "POST",
        &format!("/webhooks/{}/deliveries/{delivery_id}/redeliver", wh.id),
        &key,
    )
    .send(&app)
    .await;
    assert_eq!(one.status, 202, "{}", one.body);
    // Both requests were made before either ran: each is an attempt of its own
    // (before, both asked for attempt 2 and the receiver could get it twice).
    assert_eq!(one.body["queued"][0]["attempt"], 102);

    pump(&d, &sqs, &queue, 10, || rx.requests().len() >= 3).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 3, "each manual attempt once");
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == Some(event.id.as_str()))
    );
    let mut records = log_of(d.store(), &wh).await;
    records.sort_by_key(|r| r.attempt);
    let numbers: Vec<(u32, bool)> = records.iter().map(|r| (r.attempt, r.manual)).collect();
    assert_eq!(numbers, [(1, false), (101, true), (102, true)]);
    assert!(
        records[1..]
            .iter()
            .all(|r| r.outcome.as_str() == "delivered")
    );
    assert!(log_of(d.store(), &other).await.is_empty());

    // The full event shows both attempts.
    let full = Call::new("GET", &format!("/events/{}", event.id), &key)
        .send(&app)
        .await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(full.body["deliveries"][0]["attempts"], 3);
    assert_eq!(full.body["deliveries"][0]["last_outcome"], "delivered");
    assert_eq!(full.body["data"], json!({"kyc": "pass"}));
}

/// A manual attempt never takes the number of a pending automatic retry
/// ("highest recorded + 1" would, and the retry would then be skipped as
/// recorded): the schedule runs to its end, `exhausted`, beside the manual
/// attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_redelivery_does_not_cancel_the_pending_retries() {
    let sqs = sqs_client().await;
    let queue = create_queues(&sqs, &unique("manual-auto"), 5)
        .await
        .unwrap()
        .events;
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::sqs(&queue)),
        &[1, 1, 1],
    );
    let rx = Receiver::start(Behavior::status(500)).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &wh, RetryPolicy::Exponential).await;
    let (event, body) = envelope("acme", AsyncCompleted, json!({}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    let first = log_of(d.store(), &wh).await;
    assert!(first.len() == 1 && first[0].next_attempt_at.is_some());

    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(Requeue::sqs(&queue));
    let key = api_key_for(&app.store, "acme").await;
    let redelivered = Call::new("POST", &format!("/events/{}/redeliver", event.id), &key)
        .send(&app)
        .await;
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);

    // Automatic 1 to 4 (three retries) and the manual one: five requests.
    pump(&d, &sqs, &queue, 20, || rx.requests().len() >= 5).await;
    let mut records = log_of(d.store(), &wh).await;
    records.sort_by_key(|r| r.attempt);
    let numbers: Vec<(u32, bool)> = records.iter().map(|r| (r.attempt, r.manual)).collect();
    assert_eq!(
        numbers,
        [(1, false), (2, false), (3, false), (4, false), (101, true)]
    );
    assert!(records[3].exhausted, "the schedule ran to its end");
    assert!(records[4].next_attempt_at.is_none() && !records[4].exhausted);
    assert_eq!(rx.requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catch_up_api_pages_newest_first_and_keeps_to_the_tenant() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::status(200)).await;
    add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    let base = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut messages = Vec::new();
    let mut acme_ids = Vec::new();
    for i in 0..7i64 {
        let event_type = if i % 3 == 0 {
            "flowx.completed"
        } else {
            "async.completed"
        };
        let event = json!({
            "id": format!("evt_acme_{i}"), "tenant_id": "acme", "type": event_type,
            "timestamp": (base + time::Duration::minutes(i)).format(&time::format_description::well_known::Rfc3339).unwrap(),
            "data": {"i": i}
        });
        acme_ids.push(format!("evt_acme_{i}"));
        messages.push((format!("a{i}"), event.to_string()));
    }
    let (globex_event, globex_body) =
        envelope("globex", AsyncCompleted, json!({"secret": "globex"}));
    messages.push(("g".into(), globex_body));
    for chunk in messages.chunks(4) {
        dispatch::handle(&d, invocation(sqs_event(chunk), 6000))
            .await
            .unwrap();
    }

    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50));
    let key = api_key_for(&app.store, "acme").await;
    let mut seen = Vec::new();
    let mut path = "/events?limit=3".to_owned();
    loop {
        let page = Call::new("GET", &path, &key).send(&app).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["data"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
            assert_ne!(e["data"]["secret"], "globex");
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/events?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = acme_ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // Each carries where its webhook stands.
    let one = Call::new("GET", "/events?limit=1&type=async.completed", &key)
        .send(&app)
        .await;
    assert_eq!(one.body["data"][0]["id"], "evt_acme_5");
    assert_eq!(
        one.body["data"][0]["deliveries"][0]["last_outcome"],
        "delivered"
    );
    // Filters: type, and a time window (since inclusive, until exclusive).
    let since = (base + time::Duration::minutes(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let until = (base + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let window = Call::new(
        "GET",
        &format!(
            "/events?since={}&until={}",
            urlencode(&since),
            urlencode(&until)
        ),
        &key,
    )
    .send(&app)
    .await;
    let ids: Vec<&str> = window.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_acme_4", "evt_acme_3", "evt_acme_2"]);
    let flows = Call::new("GET", "/events?type=flowx.completed", &key)
        .send(&app)
        .await;
    let ids: Vec<&str> = flows.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_acme_6", "evt_acme_3", "evt_acme_0"]);
    // Another tenant's event is not there for this key.
    let foreign = Call::new("GET", &format!("/events/{}", globex_event.id), &key)
        .send(&app)
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error().0, "event_not_found");
    let redeliver = Call::new(
        "POST",
        &format!("/events/{}/redeliver", globex_event.id),
        &key,
    )
    .send(&app)
    .await;
    assert_eq!(redeliver.status, 404);
    let bad = Call::new("GET", "/events?since=yesterday", &key)
        .send(&app)
        .await;
    assert_eq!(bad.error().1.as_deref(), Some("since"));
}

/// Enough percent-encoding for an RFC 3339 time in a query string.
fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

/// A Standard Webhooks verifier: accepts when any of the space-separated
/// signatures matches one computed with `secret`.
fn verifies(secret: &str, headers: &testkit::receiver::Received) -> bool {
    let id = headers.header("webhook-id").unwrap();
    let ts = headers.header("webhook-timestamp").unwrap();
    let expected = standard_webhooks_signature(secret, id, ts, &headers.body);
    headers
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one() {
    let store = testkit::fresh_store().await;
    let mut settings = testkit::settings(store.table(), 50);
    settings.url_policy.allow_private_targets = true;
    settings.test_events_per_10_seconds = 100;
    settings.secret_overlap = Duration::from_secs(2);
    let app = api::App::new(store, settings).with_requeue(Requeue::Disabled);
    let key = api_key_for(&app.store, "acme").await;
    let rx = Receiver::start(Behavior::status(200)).await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/"), "events": ["async.completed"]}))
        .send(&app)
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let old = created.body["signing_secret"].as_str().unwrap().to_owned();
    let rotated = Call::new("POST", &format!("/webhooks/{id}/signing-secret"), &key)
        .send(&app)
        .await;
    let new = rotated.body["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(rotated.body["previous_signing_secret_expires_at"].is_string());

    // During the overlap (a test event goes through the same client as the dispatcher).
    Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    let during = rx.requests().pop().unwrap();
    assert_eq!(
        during
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert!(verifies(&old, &during) && verifies(&new, &during));

    // A second rotation within the overlap would drop `old` at once: it is
    // refused, and both secrets still sign.
    let again = Call::new("POST", &format!("/webhooks/{id}/signing-secret"), &key)
        .send(&app)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.error().0, "rotation_in_progress");
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("until")
    );
    Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    let still = rx.requests().pop().unwrap();
    assert!(verifies(&old, &still) && verifies(&new, &still));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    let after = rx.requests().pop().unwrap();
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert!(verifies(&new, &after) && !verifies(&old, &after));
    let shown = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert!(
        shown
            .body
            .get("previous_signing_secret_expires_at")
            .is_none()
    );
    // After the overlap, rotating again is allowed.
    let later = Call::new("POST", &format!("/webhooks/{id}/signing-secret"), &key)
        .send(&app)
        .await;
    assert_eq!(later.status, 200, "{}", later.body);
    let newest = later.body["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(newest, new);
}

/// Redeliveries go to the slow lane's queue, never the events queue, and a
/// tenant's budget per minute bounds them: 429 with `Retry-After` beyond it,
/// for that tenant only. The negative control: without a slow lane they go
/// to the events queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_take_the_slow_lane_within_a_budget() {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("budget"), 5).await.unwrap();
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::lanes(&queues.events, &queues.slow)),
        &[1],
    );
    let rx = Receiver::start(Behavior::status(200)).await;
    let mut events = HashMap::new();
    for tenant in ["acme", "globex"] {
        for path in ["/a", "/b"] {
            add_webhook(d.store(), tenant, &rx.url(path), &[AsyncCompleted], Active).await;
        }
        let (event, body) = envelope(tenant, AsyncCompleted, json!({}));
        dispatch::handle(&d, invocation(sqs_event(&[("m".into(), body)]), 6000))
            .await
            .unwrap();
        events.insert(tenant, event);
    }
    assert_eq!(rx.requests().len(), 4);

    let settings = shared::Settings {
        redeliveries_per_minute: 3,
        ..testkit::settings(d.store().table(), 50)
    };
    let app = api::App::new(d.store().clone(), settings)
        .with_requeue(Requeue::lanes(&queues.events, &queues.slow));
    let acme = api_key_for(&app.store, "acme").await;
    let globex = api_key_for(&app.store, "globex").await;
    let redeliver = |tenant: &str| format!("/events/{}/redeliver", events[tenant].id);
    // The budget is per minute: keep both calls inside one.
    testkit::start_of_window(60, 5).await;

    let first = Call::new("POST", &redeliver("acme"), &acme)
        .send(&app)
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.body["queued"].as_array().unwrap().len(), 2);
    // Two more would make four of three: refused, with when to come back.
    let second = Call::new("POST", &redeliver("acme"), &acme)
        .send(&app)
        .await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "redelivery_limit_reached");
    let retry_after = second.retry_after();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another tenant's budget is its own.
    let other = Call::new("POST", &redeliver("globex"), &globex)
        .send(&app)
        .await;
    assert_eq!(other.status, 202, "{}", other.body);

    // Four messages, all on the slow lane's queue.
    let mut on_slow = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&queues.slow)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        on_slow.extend(out.messages.unwrap_or_default());
        if on_slow.len() >= 4 {
            break;
        }
    }
    assert_eq!(on_slow.len(), 4);
    for m in &on_slow {
        let message =
            shared::slow_lane::TargetedMessage::from_json(m.body.as_deref().unwrap()).unwrap();
        assert!(message.target.manual);
    }
    let on_events = sqs
        .receive_message()
        .queue_url(&queues.events)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(on_events.messages.unwrap_or_default().is_empty());

    // The slow lane makes them, and says so in the log.
    let batch: Vec<(String, String)> = on_slow
        .iter()
        .map(|m| (m.message_id.clone().unwrap(), m.body.clone().unwrap()))
        .collect();
    let response = dispatch::handle(&d, invocation(sqs_event(&batch), 6000))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(rx.requests().len(), 8);
    let log = Call::new("GET", &format!("/events/{}", events["acme"].id), &acme)
        .send(&app)
        .await;
    assert_eq!(log.status, 200, "{}", log.body);

    // Without a slow lane, the events queue carries them.
    let plain = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(Requeue::sqs(&queues.events));
    let key = api_key_for(&plain.store, "acme").await;
    let again = Call::new("POST", &redeliver("acme"), &key)
        .send(&plain)
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    let out = sqs
        .receive_message()
        .queue_url(&queues.events)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(!out.messages.unwrap_or_default().is_empty());
}

/// Stores an event as the dispatcher keeps it, without delivering it.
async fn keep_event(
    store: &impl Store,
    tenant: &str,
    id: &str,
    event_type: &str,
    minutes_ago: i64,
    data: Value,
) {
    let at = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    let raw = json!({
        "id": id, "tenant_id": tenant, "type": event_type,
        "timestamp": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "data": data,
    });
    let event = shared::event::Event::from_json(&raw.to_string()).unwrap();
    let stored = shared::event_log::StoredEvent::new(
        &event,
        time::OffsetDateTime::now_utc(),
        shared::event_log::Retention::WEEK,
    );
    store.put_event(&stored).await.unwrap();
}

/// `GET /events?type=<rare type>` on a large tenant must not read page
/// after page until it has `limit` matches (into the function's timeout):
/// one request reads at most 5 Query pages and answers with what it found
/// and a cursor; following the cursors finds the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_reads_a_bounded_number_of_pages_and_hands_back_a_cursor() {
    let store = testkit::fresh_store().await;
    keep_event(&store, "acme", "evt_rare", "flowx.skipped", 500, json!({})).await;
    for i in 0..120 {
        keep_event(
            &store,
            "acme",
            &format!("evt_{i:03}"),
            "async.completed",
            400 - i,
            json!({}),
        )
        .await;
    }
    let app = api::App::new(store.clone(), testkit::settings(store.table(), 50));
    let key = api_key_for(&app.store, "acme").await;
    let first = Call::new("GET", "/events?type=flowx.skipped&limit=10", &key)
        .send(&app)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    // 5 pages of 11 items read, none of them a match: an empty page and a cursor.
    assert!(
        first.body["data"].as_array().unwrap().is_empty(),
        "{}",
        first.body
    );
    let mut cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let mut found = Vec::new();
    for _ in 0..5 {
        let next = Call::new(
            "GET",
            &format!("/events?type=flowx.skipped&limit=10&cursor={cursor}"),
            &key,
        )
        .send(&app)
        .await;
        assert_eq!(next.status, 200, "{}", next.body);
        found.extend(
            next.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match next.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(found, [json!("evt_rare")]);
}

/// 100 events of ~250 KB would make a 26 MB answer, over Lambda's 6 MB
/// response limit: a page carries at most 4 MiB of event data and ends
/// early with a cursor; nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_large_events_ends_before_the_response_limit() {
    let store = testkit::fresh_store().await;
    let blob = "a".repeat(240 * 1024);
    for i in 0..20 {
        keep_event(
            &store,
            "acme",
            &format!("evt_{i:02}"),
            "async.completed",
            100 - i,
            json!({"blob": blob}),
        )
        .await;
    }
    let app = api::App::new(store.clone(), testkit::settings(store.table(), 50));
    let key = api_key_for(&app.store, "acme").await;
    let mut pages = Vec::new();
    let mut path = "/events?limit=100".to_owned();
    loop {
        let page = Call::new("GET", &path, &key).send(&app).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.to_string().len() < 6_000_000,
            "over Lambda's response limit"
        );
        let ids: Vec<String> = page.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        // 17 × 240 KiB fit in 4 MiB, 18 do not.
        assert!(
            !ids.is_empty() && ids.len() <= 17,
            "{} on a page",
            ids.len()
        );
        pages.push(ids);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/events?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages.len() >= 2);
    let all: Vec<String> = pages.concat();
    let want: Vec<String> = (0..20).rev().map(|i| format!("evt_{i:02}")).collect();
    assert_eq!(all, want, "every event once, newest first");
}

/// An outage, then one recovery call. The receiver answers
/// 503 for a run of events, then is back; one `POST /webhooks/{id}/recover`
/// brings every missed event once, with its original `webhook-id`, through
/// the slow lane; events delivered before the outage are not sent again; the
/// tenant's other webhook and another tenant's failed events are never
/// touched; a second identical call queues nothing while the first one's
/// attempts are pending, and nothing once they are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_recover_call_brings_back_every_event_missed_in_an_outage() {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("recover"), 5).await.unwrap();
    let lanes = || Requeue::lanes(&queues.events, &queues.slow);
    let d = fresh_dispatcher(true, HashMap::new())
        .await
        .with_requeue(lanes());
    // Two delivered, five while it is down, then it is back.
    let rx = Receiver::start(Behavior::Sequence(vec![
        200, 200, 503, 503, 503, 503, 503, 200,
    ]))
    .await;
    let side = Receiver::start(Behavior::status(200)).await;
    let theirs = Receiver::start(Behavior::status(503)).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    add_webhook(d.store(), "acme", &side.url("/"), &[AsyncCompleted], Active).await;
    let globex = add_webhook(
        d.store(),
        "globex",
        &theirs.url("/"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    let mut ids = Vec::new();
    for (i, tenant) in ["acme"; 7].into_iter().chain(["globex"; 2]).enumerate() {
        let (event, body) = envelope(tenant, AsyncCompleted, json!({"n": i}));
        let response =
            dispatch::handle(&d, invocation(sqs_event(&[(format!("m{i}"), body)]), 6000))
                .await
                .unwrap();
        assert!(response.batch_item_failures.is_empty());
        ids.push(event.id.to_string());
    }
    assert_eq!(
        (
            rx.requests().len(),
            side.requests().len(),
            theirs.requests().len()
        ),
        (7, 7, 2)
    );
    let missed: Vec<String> = ids[2..7].to_vec();

    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(lanes());
    let key = api_key_for(&app.store, "acme").await;
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let path = format!("/webhooks/{}/recover", wh.id);
    let preview = Call::new("POST", &path, &key)
        .json(json!({"since": since, "dry_run": true}))
        .send(&app)
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert_eq!(preview.body["would_queue"], 5);
    let first = Call::new("POST", &path, &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.body["queued"], 5);
    assert_eq!(first.body["status"], "done");
    let again = Call::new("POST", &path, &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        (
            again.body["queued"].as_u64(),
            again.body["already_pending"].as_u64()
        ),
        (Some(0), Some(5))
    );

    pump(&d, &sqs, &queues.slow, 15, || rx.requests().len() >= 12).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 12, "each missed event once");
    let mut resent: Vec<String> = requests[7..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    resent.sort();
    let mut expected = missed.clone();
    expected.sort();
    assert_eq!(
        resent, expected,
        "the missed events, with their own webhook-id"
    );
    assert_eq!(
        side.requests().len(),
        7,
        "the tenant's other webhook is not touched"
    );
    assert_eq!(
        theirs.requests().len(),
        2,
        "another tenant's events are not touched"
    );
    assert!(log_of(d.store(), &globex).await.iter().all(|r| !r.manual));

    // Delivered now: a recovery of the same window finds nothing to send.
    let after = Call::new("POST", &path, &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(after.status, 202, "{}", after.body);
    assert_eq!(
        (
            after.body["queued"].as_u64(),
            after.body["already_pending"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let state = Call::new("GET", &format!("/webhooks/{}/recovery", wh.id), &key)
        .send(&app)
        .await;
    assert_eq!(state.status, 200, "{}", state.body);
    assert_eq!(state.body["recovery_id"], after.body["recovery_id"]);
}

/// Five events fail while an exponential retry of each is scheduled; a
/// recovery called meanwhile leaves them to their retries (`retry_pending`)
/// instead of queueing a manual attempt beside each: the receiver gets each
/// event once more, not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_leaves_events_to_their_pending_retries() {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("pending-retry"), 5)
        .await
        .unwrap();
    let lanes = || Requeue::lanes(&queues.events, &queues.slow);
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(lanes()),
        &[2, 60],
    );
    let rx = Receiver::start(Behavior::Sequence(vec![503, 503, 503, 503, 503, 200])).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &wh, RetryPolicy::Exponential).await;
    for i in 0..5 {
        let (_, body) = envelope("acme", AsyncCompleted, json!({"n": i}));
        let response =
            dispatch::handle(&d, invocation(sqs_event(&[(format!("m{i}"), body)]), 6000))
                .await
                .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(rx.requests().len(), 5, "each failed once");

    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(lanes());
    let key = api_key_for(&app.store, "acme").await;
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recovered = Call::new("POST", &format!("/webhooks/{}/recover", wh.id), &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(recovered.status, 202, "{}", recovered.body);
    assert_eq!(
        (
            recovered.body["queued"].as_u64(),
            recovered.body["retry_pending"].as_u64()
        ),
        (Some(0), Some(5)),
        "{}",
        recovered.body
    );

    // The retries come due within about 3 s; anything sent twice would
    // arrive within the same few seconds.
    pump(&d, &sqs, &queues.slow, 8, || false).await;
    let mut ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "each event failed once, then arrived once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
}

/// An event fails and schedules a retry; the customer redelivers it, and
/// the redelivery arrives first. The automatic retry then finds the event
/// delivered to the webhook and is not made: the receiver gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_not_made_once_a_redelivery_delivered_the_event() {
    let sqs = sqs_client().await;
    let queue = create_queues(&sqs, &unique("retry-after-manual"), 5)
        .await
        .unwrap()
        .events;
    let d = retrying(
        fresh_dispatcher(true, HashMap::new())
            .await
            .with_requeue(Requeue::sqs(&queue)),
        &[3, 60],
    );
    let rx = Receiver::start(Behavior::Sequence(vec![503, 200])).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    with_policy(d.store(), &wh, RetryPolicy::Exponential).await;
    let (event, body) = envelope("acme", AsyncCompleted, json!({}));
    dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(Requeue::sqs(&queue));
    let key = api_key_for(&app.store, "acme").await;
    let redelivered = Call::new("POST", &format!("/events/{}/redeliver", event.id), &key)
        .send(&app)
        .await;
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);

    // The redelivery at once, the retry about 3 s later.
    pump(&d, &sqs, &queue, 8, || false).await;
    let mut records = log_of(d.store(), &wh).await;
    records.sort_by_key(|r| r.attempt);
    let attempts: Vec<(u32, &str)> = records
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str()))
        .collect();
    assert_eq!(attempts, [(1, "http_error"), (101, "delivered")]);
    assert_eq!(rx.requests().len(), 2, "the retry was not made");
}

/// A recovery refused because the webhook's last one is still running
/// (409) spends none of the tenant's checks for the minute: the whole
/// allowance is still there after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_refused_as_running_spends_no_checks() {
    use shared::recovery::{RecoveryState, Window};
    use shared::store::{Allowance, Conditional, RecoveryWrite};
    let store = testkit::fresh_store().await;
    let queued = Arc::new(Mutex::new(Vec::new()));
    let app = api::App::new(store.clone(), testkit::settings(store.table(), 50))
        .with_requeue(Requeue::Memory(queued.clone()));
    let key = api_key_for(&app.store, "acme").await;
    let id = testkit::created_webhook(&app, &key, "https://hooks.example.com/x").await;
    let tenant = shared::TenantId::parse("acme").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let window = Window {
        since: now - time::Duration::hours(1),
        until: now,
    };
    let running = RecoveryState::start(tenant.clone(), id.parse().unwrap(), window, now);
    let entry = shared::audit::operator::recovery(&tenant, running.webhook_id);
    let started = store
        .save_recovery(
            &running,
            RecoveryWrite::Start {
                now: now.unix_timestamp(),
                entry: &entry,
            },
        )
        .await
        .unwrap();
    assert_eq!(started, Conditional::Applied);

    testkit::start_of_window(60, 5).await;
    let since = (now - time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let refused = Call::new("POST", &format!("/webhooks/{id}/recover"), &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(
        (refused.status, refused.error().0),
        (409, "recovery_running".into())
    );
    let checks = Allowance::RecoveryChecks;
    let limit = app.settings.recovery_checks_per_minute;
    let minute = checks.window_of(time::OffsetDateTime::now_utc().unix_timestamp());
    let whole = store
        .take_allowance(&tenant, checks, minute, limit, limit)
        .await
        .unwrap();
    assert_eq!(whole, Conditional::Applied, "nothing was taken by the 409");
    assert!(queued.lock().unwrap().is_empty());
}

/// Three failed events, recovered once: their attempts wait in the slow
/// lane's queue. Twenty minutes later (the claims aged in the table; the
/// backlog not drained), another recovery leaves them pending instead of
/// queueing them again; claims older than a queued message can live are
/// taken as lost, and queued again (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_queued_behind_a_long_backlog_stays_pending() {
    let (d, app, key, wh, events, lanes) = three_failed_events("backlog").await;
    let path = format!("/webhooks/{}/recover", wh.id);
    let since = hour_ago();
    let recover = || {
        let (path, key, since, app) = (&path, &key, &since, &app);
        async move {
            Call::new("POST", path, key)
                .json(json!({"since": since}))
                .send(app)
                .await
        }
    };
    let first = recover().await;
    assert_eq!(first.body["queued"], 3, "{}", first.body);

    age_claims(&d, &wh, &events, 20 * 60).await;
    let later = recover().await;
    assert_eq!(
        (
            later.body["queued"].as_u64(),
            later.body["already_pending"].as_u64()
        ),
        (Some(0), Some(3)),
        "{}",
        later.body
    );

    let lost = shared::recovery::PENDING_SECS + 60;
    age_claims(&d, &wh, &events, lost).await;
    let after_retention = recover().await;
    assert_eq!(
        after_retention.body["queued"], 3,
        "{}",
        after_retention.body
    );
    drop(lanes);
}

/// A recovery whose slow-lane queue refuses its messages gives up their
/// claims: the next recovery, with the queue back, queues the same events
/// at once instead of counting them pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_that_could_not_be_queued_are_queued_by_the_next_recovery() {
    let (_d, app, key, wh, _events, lanes) = three_failed_events("unsent").await;
    let path = format!("/webhooks/{}/recover", wh.id);
    let since = hour_ago();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let broken =
        api::App::new(app.store.clone(), testkit::settings(app.store.table(), 50)).with_requeue(
            Requeue::lanes(&lanes.0, format!("{endpoint}/123456789012/no-such-queue")),
        );
    let failed = Call::new("POST", &path, &key)
        .json(json!({"since": since}))
        .send(&broken)
        .await;
    assert!(failed.status >= 500, "{} {}", failed.status, failed.body);

    let next = Call::new("POST", &path, &key)
        .json(json!({"since": since}))
        .send(&app)
        .await;
    assert_eq!(next.status, 202, "{}", next.body);
    assert_eq!(
        (
            next.body["queued"].as_u64(),
            next.body["already_pending"].as_u64()
        ),
        (Some(3), Some(0)),
        "{}",
        next.body
    );
}

fn hour_ago() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A webhook whose receiver failed three events (no retries), an app on
/// the same store and queues, a key of its tenant, the events' ids and the
/// queues (events, slow lane).
async fn three_failed_events(
    name: &str,
) -> (
    Dispatcher<DynamoStore>,
    api::App<DynamoStore>,
    String,
    Webhook,
    Vec<shared::event::EventId>,
    (String, String),
) {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique(name), 5).await.unwrap();
    let lanes = || Requeue::lanes(&queues.events, &queues.slow);
    let d = fresh_dispatcher(true, HashMap::new())
        .await
        .with_requeue(lanes());
    let rx = Receiver::start(Behavior::status(503)).await;
    let wh = add_webhook(d.store(), "acme", &rx.url("/"), &[AsyncCompleted], Active).await;
    let mut events = Vec::new();
    for i in 0..3 {
        let (event, body) = envelope("acme", AsyncCompleted, json!({"n": i}));
        let response =
            dispatch::handle(&d, invocation(sqs_event(&[(format!("m{i}"), body)]), 6000))
                .await
                .unwrap();
        assert!(response.batch_item_failures.is_empty());
        events.push(event.id);
    }
    assert_eq!(rx.requests().len(), 3);
    let app = api::App::new(d.store().clone(), testkit::settings(d.store().table(), 50))
        .with_requeue(lanes());
    let key = api_key_for(&app.store, "acme").await;
    (d, app, key, wh, events, (queues.events, queues.slow))
}

/// Makes the webhook's manual attempt claims on `events` `secs` old, as if
/// they had been made that long ago.
async fn age_claims(
    d: &Dispatcher<DynamoStore>,
    wh: &Webhook,
    events: &[shared::event::EventId],
    secs: i64,
) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::store::keys;
    let store = d.store();
    let then = time::OffsetDateTime::now_utc().unix_timestamp() - secs;
    for event in events {
        store
            .client()
            .await
            .unwrap()
            .update_item()
            .table_name(store.table())
            .key(
                keys::PK,
                AttributeValue::S(keys::event_pk(&wh.tenant_id, event)),
            )
            .key(keys::SK, AttributeValue::S(keys::EVENT_SK.into()))
            .update_expression("SET #at = :then")
            .expression_attribute_names("#at", keys::manual_at(wh.id))
            .expression_attribute_values(":then", AttributeValue::N(then.to_string()))
            .send()
            .await
            .unwrap();
    }
}
