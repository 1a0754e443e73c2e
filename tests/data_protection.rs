//! Data protection on moto: what the table holds of a payload and of a
//! receiver's answer, found by scanning every item of the table and of its
//! indexes for marker values, under each tenant's settings; payload
//! deletion; thin deliveries and the fetch that completes them; a job's
//! events by subject.

use std::collections::HashMap;

use serde_json::{Value, json};
use shared::EventType::AsyncCompleted;
use shared::Status::Active;
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::event::{Event, PayloadForm};
use shared::requeue::Requeue;
use shared::store::DynamoStore;
use shared::store::prelude::*;
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{Call, add_webhook, api_key_for, fresh_app, standard_webhooks_signature, unique};

/// Every item of the table, of GSI1 and of GSI2, as text: a value anywhere
/// in any attribute of any item shows up in it.
async fn table_text(store: &DynamoStore) -> String {
    let client = store.client().await.expect("client");
    let mut text = String::new();
    for index in [None, Some("GSI1"), Some("GSI2")] {
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(store.table())
                .set_index_name(index.map(str::to_owned))
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in out.items.unwrap_or_default() {
                text.push_str(&format!("{item:?}\n"));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    text
}

/// An envelope of `tenant` with `data`, and `subject` if given.
fn event(tenant: &str, subject: Option<&str>, data: Value) -> (Event, String) {
    let event = shared::emit::NewEvent {
        id: None,
        tenant_id: tenant.to_owned(),
        event_type: "async.completed".into(),
        timestamp: None,
        subject: subject.map(str::to_owned),
        data,
    }
    .into_event()
    .expect("valid event");
    let json = event.to_json();
    (event, json)
}

/// A dispatcher on the app's table, delivering to loopback.
fn dispatcher(app: &api::App<DynamoStore>) -> dispatch::Dispatcher<DynamoStore> {
    let mut settings = testkit::settings(app.store.table(), 50);
    settings.url_policy.allow_private_targets = true;
    let client = DeliveryClient::new(ClientConfig {
        dns_overrides: HashMap::new(),
        ..settings.client_config()
    })
    .expect("delivery client");
    dispatch::Dispatcher::new(app.store.clone(), client, &settings)
}

async fn dispatch(d: &dispatch::Dispatcher<DynamoStore>, messages: Vec<String>) {
    let messages: Vec<(String, String)> = messages
        .into_iter()
        .enumerate()
        .map(|(i, body)| (format!("m{i}"), body))
        .collect();
    let response = dispatch::handle(d, invocation(sqs_event(&messages), 6000))
        .await
        .expect("handler never fails");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

/// A receiver that answers 200 with `answer` as its body.
async fn answering(answer: &str) -> Receiver {
    Receiver::start(Behavior::Respond {
        status: 200,
        headers: vec![],
        body: answer.as_bytes().to_vec(),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_holds_payloads_and_answers_only_as_each_tenant_chose() {
    let app = fresh_app(50)
        .await
        .with_requeue(Requeue::Memory(Default::default()));
    let d = dispatcher(&app);
    let mark = unique("mark");
    let marker = |what: &str| format!("{what}-{mark}");

    // `keeper` keeps the defaults: the negative control, whose payload and
    // answer the scan must find.
    let keeper = api_key_for(&app.store, "keeper").await;
    let minimal = api_key_for(&app.store, "minimal").await;
    let eraser = api_key_for(&app.store, "eraser").await;
    let changed = Call::new("PATCH", "/settings", &minimal)
        .json(json!({"payload_retention_hours": 0, "keep_response_bodies": false}))
        .send(&app)
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body,
        json!({"payload_retention_hours": 0, "keep_response_bodies": false})
    );

    let mut receivers = HashMap::new();
    for tenant in ["keeper", "minimal", "eraser"] {
        let rx = answering(&marker(&format!("answer-{tenant}"))).await;
        add_webhook(&app.store, tenant, &rx.url("/"), &[AsyncCompleted], Active).await;
        receivers.insert(tenant, rx);
    }
    let (kept, kept_json) = event(
        "keeper",
        Some("job-1"),
        json!({"name": marker("payload-keeper")}),
    );
    let (unkept, unkept_json) = event("minimal", None, json!({"name": marker("payload-minimal")}));
    let (first, first_json) = event("eraser", Some("job-1"), json!({"name": marker("erased-1")}));
    let (second, second_json) = event("eraser", Some("job-1"), json!({"name": marker("erased-2")}));
    let (alone, alone_json) = event("eraser", None, json!({"name": marker("erased-3")}));
    dispatch(
        &d,
        vec![kept_json, unkept_json, first_json, second_json, alone_json],
    )
    .await;
    // Deliveries carry the data whatever is kept of it.
    let received = receivers["minimal"].requests();
    assert_eq!(received.len(), 1);
    assert!(String::from_utf8_lossy(&received[0].body).contains(&marker("payload-minimal")));
    assert_eq!(receivers["eraser"].requests().len(), 3);

    let table = table_text(&app.store).await;
    assert!(
        table.contains(&marker("payload-keeper")),
        "the control's payload"
    );
    assert!(
        table.contains(&marker("answer-keeper")),
        "the control's answer"
    );
    assert!(
        !table.contains(&marker("payload-minimal")),
        "retention 0 wrote data"
    );
    assert!(
        !table.contains(&marker("answer-minimal")),
        "a response body was kept"
    );
    for n in 1..=3 {
        assert!(table.contains(&marker(&format!("erased-{n}"))));
    }
    // Held once: the payload's item is in no index. (A delivery record is
    // in GSI1, so its answer shows twice: the scan does read the index.)
    assert_eq!(table.matches(&marker("payload-keeper")).count(), 1);
    assert_eq!(table.matches(&marker("answer-keeper")).count(), 2);

    // Retention 0: the event is listed with its deliveries, and says why it
    // has no data.
    let shown = Call::new("GET", &format!("/events/{}", unkept.id), &minimal)
        .send(&app)
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["payload"], "not_kept");
    assert!(shown.body.get("data").is_none());
    assert_eq!(shown.body["attempts"].as_array().map(Vec::len), Some(1));
    assert!(shown.body["attempts"][0].get("response_body").is_none());
    let control = Call::new("GET", &format!("/events/{}", kept.id), &keeper)
        .send(&app)
        .await;
    assert_eq!(control.body["payload"], "kept");
    assert_eq!(control.body["data"]["name"], marker("payload-keeper"));

    // Another tenant's event is not found, and nothing of it goes.
    let elsewhere = Call::new("DELETE", &format!("/events/{}/payload", alone.id), &keeper)
        .send(&app)
        .await;
    assert_eq!(
        (elsewhere.status, elsewhere.error().0.as_str()),
        (404, "event_not_found")
    );
    let deleted = Call::new("DELETE", &format!("/events/{}/payload", alone.id), &eraser)
        .send(&app)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let erased = Call::new("DELETE", "/subjects/job-1/payloads", &eraser)
        .send(&app)
        .await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body, json!({"subject": "job-1", "events": 2}));

    let table = table_text(&app.store).await;
    for n in 1..=3 {
        let m = marker(&format!("erased-{n}"));
        assert!(!table.contains(&m), "{m} is still in the table");
    }
    assert!(
        table.contains(&marker("payload-keeper")),
        "another tenant lost data"
    );

    // The job's events stay listed with their deliveries, data deleted;
    // the same subject of another tenant is not among them.
    let job = Call::new("GET", "/events?subject=job-1", &eraser)
        .send(&app)
        .await;
    assert_eq!(job.status, 200, "{}", job.body);
    let listed = job.body["data"].as_array().expect("a list");
    let ids: Vec<&str> = listed.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 2);
    for e in [&first, &second] {
        assert!(ids.contains(&e.id.as_str()));
    }
    for e in listed {
        assert_eq!(e["payload"], "deleted");
        assert_eq!(e["subject"], "job-1");
        assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(1));
    }
    let theirs = Call::new("GET", "/events?subject=job-1", &keeper)
        .send(&app)
        .await;
    let theirs: Vec<&str> = theirs.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(theirs, vec![kept.id.as_str()]);

    // A deleted payload cannot be sent again.
    let again = Call::new("POST", &format!("/events/{}/redeliver", first.id), &eraser)
        .send(&app)
        .await;
    assert_eq!(
        (again.status, again.error().0.as_str()),
        (409, "payload_deleted")
    );
    let not_kept = Call::new(
        "POST",
        &format!("/events/{}/redeliver", unkept.id),
        &minimal,
    )
    .send(&app)
    .await;
    assert_eq!(
        (not_kept.status, not_kept.error().0.as_str()),
        (409, "payload_not_kept")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thin_delivery_carries_the_reference_and_the_receiver_fetches_the_rest() {
    let app = fresh_app(50).await;
    let d = dispatcher(&app);
    let rx = answering("ok").await;
    let thin = shared::Webhook {
        payload: PayloadForm::Thin,
        ..add_webhook(&app.store, "slim", &rx.url("/"), &[AsyncCompleted], Active).await
    };
    app.store
        .update_webhook(
            &thin,
            thin.updated_at,
            &shared::audit::operator::updated(&thin, &thin),
        )
        .await
        .expect("thin");
    let data = json!({"name": "A. Person", "id_number": "S1234567D"});
    let (sent, body) = event("slim", Some("req_7"), data.clone());
    // An envelope with a bad subject beside it goes to the dead-letter
    // queue alone (a batch item failure); the good one is delivered.
    let mut bad: Value = serde_json::from_str(&body).expect("JSON");
    bad["id"] = json!("evt_bad_subject");
    bad["subject"] = json!("two words");
    let messages = vec![
        ("good".to_owned(), body),
        ("bad".to_owned(), bad.to_string()),
    ];
    let response = dispatch::handle(&d, invocation(sqs_event(&messages), 6000))
        .await
        .expect("handler never fails");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["bad"]);

    let got = rx.requests();
    assert_eq!(got.len(), 1);
    let delivered: Value = serde_json::from_slice(&got[0].body).expect("JSON");
    assert_eq!(
        delivered,
        json!({"id": sent.id.as_str(), "type": "async.completed", "timestamp": delivered["timestamp"], "subject": "req_7"})
    );
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Basic {}", thin.token.expose()).as_str())
    );
    let id = got[0].header("webhook-id").expect("webhook-id");
    let timestamp = got[0].header("webhook-timestamp").expect("timestamp");
    let signature =
        standard_webhooks_signature(thin.signing_secret.expose(), id, timestamp, &got[0].body);
    assert_eq!(got[0].header("webhook-signature"), Some(signature.as_str()));

    // The receiver's fetch, with a read key.
    let (read, _) = shared::key_lifecycle::issue(
        &app.store,
        shared::TenantId::parse("slim").expect("tenant"),
        "receiver".into(),
        shared::api_key::Scope::Read,
        None,
    )
    .await
    .expect("read key");
    let fetched = Call::new("GET", &format!("/events/{}", sent.id), &read)
        .send(&app)
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.body["data"], data);
    assert_eq!(fetched.body["payload"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_purge_the_tenants_queued_events_deliver_and_keep_nothing() {
    let app = fresh_app(50).await;
    let d = dispatcher(&app);
    let rx = answering("ok").await;
    let gone = unique("gone");
    let stays = unique("stays");
    for tenant in [&gone, &stays] {
        add_webhook(&app.store, tenant, &rx.url("/"), &[AsyncCompleted], Active).await;
        api_key_for(&app.store, tenant).await;
    }
    let (_, before) = event(&gone, Some("job-1"), json!({"n": 1}));
    let (_, kept) = event(&stays, None, json!({"n": 2}));
    dispatch(&d, vec![before, kept]).await;
    assert_eq!(rx.requests().len(), 2);
    let tenant = shared::TenantId::parse(&gone).expect("tenant");
    let options = shared::store::PurgeOptions {
        delete: true,
        segments: 1,
        page_items: None,
    };
    let purged = app
        .store
        .purge_tenant(&tenant, options, |_| {})
        .await
        .expect("purge");
    assert!(purged.total() > 0, "{purged:?}");

    // A message still queued for the purged tenant: delivered nowhere, kept
    // nowhere; the other tenant's event still goes.
    let (_, queued) = event(&gone, Some("job-1"), json!({"n": 3}));
    let (_, other) = event(&stays, None, json!({"n": 4}));
    dispatch(&d, vec![queued, other]).await;
    assert_eq!(rx.requests().len(), 3);
    let table = table_text(&app.store).await;
    assert!(!table.contains(&gone), "an item of the purged tenant");
    assert!(table.contains(&stays), "the other tenant lost its items");
}
