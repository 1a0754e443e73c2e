//! "Send a test event" through the real api handler, on moto, to real HTTP
//! receivers on 127.0.0.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};
use shared::delivery::ClientConfig;
use shared::{EventType, samples};
use testkit::receiver::{Behavior, Receiver};
use testkit::{
    Call, api_key_for, created_webhook, fresh_store, settings, standard_webhooks_signature,
};

/// The API on a fresh table, its delivery client configured as given.
async fn app(
    allow_private: bool,
    dns: HashMap<String, Vec<IpAddr>>,
) -> api::App<impl shared::store::Store> {
    let store = fresh_store().await;
    let mut settings = settings(store.table(), 50);
    settings.url_policy.allow_private_targets = allow_private;
    api::App::new(store, settings).with_client_config(ClientConfig {
        allow_private_targets: allow_private,
        dns_overrides: dns,
        ..ClientConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_event_reaches_the_receiver_signed_and_its_outcome_is_shown_and_logged() {
    let app = app(true, HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    let rx = Receiver::start(Behavior::Respond {
        status: 200,
        headers: vec![],
        body: b"got it".to_vec(),
    })
    .await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/hook"), "events": ["flowx.completed", "factx.query"], "status": "inactive"}))
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let token = created.body["token"].as_str().unwrap();
    let secret = created.body["signing_secret"].as_str().unwrap();

    // Inactive, and the type asked for is not even subscribed: a test is sent anyway.
    let reply = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .json(json!({"type": "async.errored"}))
        .send(&app)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "delivered");
    assert_eq!(reply.body["status"], 200);
    assert_eq!(reply.body["response_body"], "got it");
    assert_eq!(reply.body["test"], true);
    assert_eq!(reply.body["event_type"], "async.errored");
    assert!(reply.body["duration_ms"].as_u64().is_some());

    let received = rx.requests();
    assert_eq!(received.len(), 1);
    let req = &received[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {token}").as_str())
    );
    let event_id = req.header("webhook-id").unwrap();
    assert_eq!(reply.body["event_id"], event_id);
    let ts = req.header("webhook-timestamp").unwrap();
    assert_eq!(
        req.header("webhook-signature"),
        Some(standard_webhooks_signature(secret, event_id, ts, &req.body).as_str())
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["id"], event_id);
    assert_eq!(body["type"], "async.errored");
    assert_eq!(
        body["data"],
        serde_json::from_str::<Value>(samples::data(EventType::AsyncErrored)).unwrap()
    );
    assert!(body.get("tenant_id").is_none());

    let log = Call::new("GET", &format!("/webhooks/{id}/deliveries"), &key)
        .send(&app)
        .await;
    assert_eq!(log.status, 200);
    let entries = log.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["event_id"], event_id);
    assert_eq!(entries[0]["test"], true);
    assert_eq!(entries[0]["outcome"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_body_the_first_subscribed_type_is_sent_and_a_failure_is_still_a_200() {
    let app = app(true, HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    let rx = Receiver::start(Behavior::Respond {
        status: 503,
        headers: vec![],
        body: vec![b'x'; 3000],
    })
    .await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/"), "events": ["factx.query", "flowx.skipped"]}))
        .send(&app)
        .await;
    let id = created.body["id"].as_str().unwrap();
    let reply = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Canonical order: flowx.skipped comes before factx.query.
    assert_eq!(reply.body["event_type"], "flowx.skipped");
    assert_eq!(reply.body["outcome"], "http_error");
    assert_eq!(reply.body["status"], 503);
    assert_eq!(reply.body["response_body"].as_str().unwrap().len(), 1024);
    let received = rx.requests();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], "flowx.skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_applies_to_test_events() {
    // Stored while the name was public; at send time it resolves to a private address.
    let dns = HashMap::from([(
        "internal.example.com".to_owned(),
        vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))],
    )]);
    let app = app(false, dns).await;
    let key = api_key_for(&app.store, "acme").await;
    let stored = testkit::add_webhook(
        &app.store,
        "acme",
        "https://internal.example.com/hook",
        &[EventType::AsyncCompleted],
        shared::Status::Active,
    )
    .await;
    let id = stored.id.to_string();
    let reply = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "blocked");
    assert!(reply.body.get("status").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_test_requests_name_what_is_wrong_and_send_nothing() {
    let app = app(true, HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    let other = api_key_for(&app.store, "globex").await;
    let rx = Receiver::start(Behavior::status(200)).await;
    let id = created_webhook(&app, &key, &rx.url("/")).await;
    let path = format!("/webhooks/{id}/test");

    let unknown_type = Call::new("POST", &path, &key)
        .json(json!({"type": "async.done"}))
        .send(&app)
        .await;
    assert_eq!(unknown_type.status, 400);
    assert_eq!(unknown_type.error().1.as_deref(), Some("type"));

    let extra = Call::new("POST", &path, &key)
        .json(json!({"kind": "async.completed"}))
        .send(&app)
        .await;
    assert_eq!(
        extra.error(),
        ("unknown_field".to_owned(), Some("kind".to_owned()))
    );

    let not_json = Call::new("POST", &path, &key)
        .raw(Some("text/plain"), "type=async.completed")
        .send(&app)
        .await;
    assert_eq!(not_json.status, 415);

    let foreign = Call::new("POST", &path, &other).send(&app).await;
    assert_eq!(foreign.status, 404);
    let get = Call::new("GET", &path, &key).send(&app).await;
    assert_eq!(get.status, 405);
    let missing = Call::new("POST", "/webhooks/wh_01JDQ86G0Q3R8T5V9X2Z4B7D1F/test", &key)
        .send(&app)
        .await;
    assert_eq!(missing.error().0, "webhook_not_found");

    assert!(rx.requests().is_empty());
}

/// Each test event may hold an api function for the whole delivery
/// deadline, and the function's concurrency is shared by every tenant (one
/// tenant sending 4 a second to a hanging receiver could take all 20): a
/// tenant sends 3 per 10 s; the next is a 429 that sends nothing, and
/// another tenant's allowance is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sends_a_few_test_events_per_10_seconds_and_then_gets_a_429() {
    let app = app(true, HashMap::new()).await;
    let rx = Receiver::start(Behavior::status(200)).await;
    let mut paths = HashMap::new();
    for tenant in ["acme", "globex"] {
        let key = api_key_for(&app.store, tenant).await;
        let id = created_webhook(&app, &key, &rx.url("/")).await;
        let path = format!("/webhooks/{id}/test");
        paths.insert(tenant, (key, path));
    }
    // The allowance is per 10-second window: keep the calls inside one.
    testkit::start_of_window(10, 3).await;
    let (acme, acme_path) = &paths["acme"];
    for _ in 0..3 {
        let sent = Call::new("POST", acme_path, acme).send(&app).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let refused = Call::new("POST", acme_path, acme).send(&app).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.error().0, "test_event_limit_reached");
    let retry_after = refused.retry_after();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(rx.requests().len(), 3, "the refused one sent nothing");
    let (globex, globex_path) = &paths["globex"];
    let other = Call::new("POST", globex_path, globex).send(&app).await;
    assert_eq!(other.status, 200, "{}", other.body);
}

/// A receiver can tell a test from an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_event_says_it_is_a_test() {
    let app = app(true, HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    let rx = Receiver::start(Behavior::status(200)).await;
    let id = created_webhook(&app, &key, &rx.url("/")).await;
    let path = format!("/webhooks/{id}/test");
    let sent = Call::new("POST", &path, &key).send(&app).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let received = rx.requests();
    assert_eq!(received[0].header("webhook-test"), Some("true"));
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["test"], true);
}
