//! A webhook's own headers, on moto, to real receivers on 127.0.0.1: taken
//! through the API, shown with a secret masked, sent verbatim with a test
//! event and with a delivery, and never in a read or the audit log.

use std::collections::HashMap;

use serde_json::json;
use shared::EventType::AsyncCompleted;
use shared::delivery::ClientConfig;
use shared::store::prelude::*;
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{Call, api_key_for, envelope, fresh_dispatcher, fresh_store, settings};

const SECRET: &str = "gw-secret-value-7f3a9c1e";

fn ok() -> Behavior {
    Behavior::Respond {
        status: 200,
        headers: vec![],
        body: b"ok".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_sent_verbatim_and_a_secret_is_never_read_back() {
    let store = fresh_store().await;
    let mut s = settings(store.table(), 50);
    s.url_policy.allow_private_targets = true;
    let app = api::App::new(store, s).with_client_config(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    });
    let key = api_key_for(&app.store, "acme").await;
    let rx = Receiver::start(ok()).await;
    let headers = json!([
        {"name": "X-Gateway-Key", "value": SECRET, "secret": true},
        {"name": "X-Route", "value": "ekyc / eu-1"},
    ]);
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/hook"), "events": ["async.completed"], "headers": headers}))
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let shown = json!([
        {"name": "X-Gateway-Key", "value": "****9c1e", "secret": true},
        {"name": "X-Route", "value": "ekyc / eu-1", "secret": false},
    ]);
    assert_eq!(created.body["headers"], shown);
    let read = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(read.body["headers"], shown);

    // A test event carries them, after the platform's own headers.
    let test = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    assert_eq!(test.body["outcome"], "delivered", "{}", test.body);
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-gateway-key"), Some(SECRET));
    assert_eq!(got[0].header("x-route"), Some("ekyc / eu-1"));
    assert!(
        got[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(got[0].header("webhook-signature").is_some());

    // A reserved or malformed header is refused by name, and nothing changes.
    for (bad, named) in [
        (
            json!([{"name": "Authorization", "value": "Bearer x"}]),
            "Authorization",
        ),
        (json!([{"name": "Webhook-Id", "value": "x"}]), "Webhook-Id"),
        (json!([{"name": "X-A", "value": "a\r\nInjected: 1"}]), "X-A"),
    ] {
        let refused = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
            .json(json!({"headers": bad}))
            .send(&app)
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.error().1.as_deref(), Some("headers"));
        assert!(refused.body.to_string().contains(named), "{}", refused.body);
    }
    let still = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(still.body["headers"], shown);
    let refusals = Call::new("GET", "/audit-log?action=webhook.updated", &key)
        .send(&app)
        .await;
    assert_eq!(
        refusals.body["data"],
        json!([]),
        "a refusal records nothing"
    );

    // A header given without its value keeps the one held; one not held
    // cannot be kept.
    let kept = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"headers": [{"name": "X-Gateway-Key", "secret": true}, {"name": "X-Route", "value": "eu-2"}]}))
        .send(&app)
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    let got = rx.requests();
    assert_eq!(got[1].header("x-gateway-key"), Some(SECRET));
    assert_eq!(got[1].header("x-route"), Some("eu-2"));
    let unknown = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"headers": [{"name": "X-Unknown"}]}))
        .send(&app)
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(
        unknown.body.to_string().contains("X-Unknown"),
        "{}",
        unknown.body
    );

    // A change names the headers, never their values.
    let changed = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"headers": [{"name": "X-Gateway-Key", "value": "another-secret-4242", "secret": true}]}))
        .send(&app)
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let log = Call::new("GET", "/audit-log?action=webhook.updated", &key)
        .send(&app)
        .await;
    assert_eq!(
        log.body["data"][0]["changes"]["headers"],
        json!({"old": ["X-Gateway-Key", "X-Route"], "new": ["X-Gateway-Key"]})
    );
    assert_eq!(log.body["data"][1]["changes"]["fields"], json!(["headers"]));

    // No read, and no audit item, holds a secret value; the webhook's own
    // item does (the control that the search can find it).
    let everything = [
        read.body.to_string(),
        changed.body.to_string(),
        Call::new("GET", "/webhooks", &key)
            .send(&app)
            .await
            .body
            .to_string(),
        Call::new("GET", "/audit-log", &key)
            .send(&app)
            .await
            .body
            .to_string(),
    ]
    .join("\n");
    for secret in [SECRET, "another-secret-4242"] {
        assert!(!everything.contains(secret), "{secret} in a read");
    }
    let (audit_items, webhook_items) = testkit::audit_and_webhook_text(&app.store).await;
    for secret in [SECRET, "another-secret-4242"] {
        assert!(!audit_items.contains(secret), "{secret} in the audit log");
    }
    assert!(webhook_items.contains("another-secret-4242"), "the control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_carries_the_webhooks_headers_and_one_without_carries_none() {
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let rx = Receiver::start(ok()).await;
    let mut with = testkit::add_webhook(
        d.store(),
        "acme",
        &rx.url("/with"),
        &[AsyncCompleted],
        shared::Status::Active,
    )
    .await;
    let before = with.clone();
    with.headers =
        serde_json::from_value(json!([{"name": "X-Tenant-Route", "value": "bank-7"}])).unwrap();
    with.updated_at += time::Duration::milliseconds(1);
    let entry = shared::audit::operator::updated(&before, &with);
    d.store()
        .update_webhook(&with, before.updated_at, &entry)
        .await
        .unwrap();
    testkit::add_webhook(
        d.store(),
        "acme",
        &rx.url("/without"),
        &[AsyncCompleted],
        shared::Status::Active,
    )
    .await;
    let (_, body) = envelope("acme", AsyncCompleted, json!({"request_id": "r-9"}));
    let response = dispatch::handle(&d, invocation(sqs_event(&[("m1".into(), body)]), 6000))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let got = rx.requests();
    assert_eq!(got.len(), 2);
    for req in &got {
        let header = req.header("x-tenant-route");
        match req.path.as_str() {
            "/with" => assert_eq!(header, Some("bank-7")),
            _ => assert_eq!(header, None, "a webhook without headers gets none"),
        }
    }
}
