//! Secrets stay secret: everything the functions log during a full run (API
//! calls, rotations, a test event, a dispatch with deliveries, errors), through
//! the functions' own log layer at the most verbose level an operator could
//! set, must hold no API key, token, signing secret or event payload.
//! Its own test binary: it installs the process-wide subscriber.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::{Behavior, Receiver};
use testkit::{Call, api_key_for, envelope, fresh_dispatcher, fresh_store, settings};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_payload_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry().with(shared::logging::layer(
        move || writer.clone(),
        Some("trace"),
    ));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let mut secrets: Vec<String> = Vec::new();
    let rx = Receiver::start(Behavior::Respond {
        status: 500,
        headers: vec![],
        body: b"receiver says no".to_vec(),
    })
    .await;

    // The API: create, rotate both secrets, set a token, a test event, errors.
    let store = fresh_store().await;
    let mut s = settings(store.table(), 50);
    s.url_policy.allow_private_targets = true;
    let app = api::App::new(store, s);
    let key = api_key_for(&app.store, "acme").await;
    secrets.push(key.clone());
    let chosen = "my-own-token-SECRET-4242";
    secrets.push(chosen.into());
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/hook"), "events": ["async.completed"], "token": chosen}))
        .send(&app)
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    secrets.push(created.body["signing_secret"].as_str().unwrap().into());
    for path in ["token", "signing-secret"] {
        let r = Call::new("POST", &format!("/webhooks/{id}/{path}"), &key)
            .send(&app)
            .await;
        secrets.push(r.body["token"].as_str().unwrap().into());
        secrets.push(r.body["signing_secret"].as_str().unwrap().into());
    }
    let patched_token = "patched-token-SECRET-8888";
    secrets.push(patched_token.into());
    Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"token": patched_token}))
        .send(&app)
        .await;
    let test = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    assert_eq!(test.body["outcome"], "http_error");
    // A client identity and client credentials: taken, refused, used.
    let identity = testkit::tls::TestCa::generate().client_identity("relay.acme.example");
    secrets.extend(
        identity
            .private_key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    let client_secret = "oauth-client-SECRET-31415926";
    secrets.push(client_secret.into());
    let refused = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"client_tls": {"certificate": identity.certificate_pem, "private_key": identity.private_key_pem}}))
        .send(&app)
        .await;
    assert_eq!(refused.status, 400, "an identity needs an https url");
    let header_secret = "gateway-header-SECRET-27182818";
    secrets.push(header_secret.into());
    let oauth2 = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({
            "oauth2": {"token_url": "https://127.0.0.1:9/token", "client_id": "relay", "client_secret": client_secret},
            "headers": [{"name": "X-Gateway-Key", "value": header_secret, "secret": true}],
        }))
        .send(&app)
        .await;
    assert_eq!(oauth2.status, 200, "{}", oauth2.body);
    let test = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
        .send(&app)
        .await;
    assert_eq!(test.body["outcome"], "token_error");
    let bad = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "https://x.example.com/", "events": ["async.completed"], "token": "short-SECRET"}))
        .send(&app)
        .await;
    assert_eq!(bad.status, 400);
    let wrong_key = "whk_wrong-key-SECRET-0000000000000000000000000";
    secrets.push(wrong_key.into());
    Call::new("GET", "/webhooks", wrong_key).send(&app).await;
    // API keys: a key made, listed, used with too little scope,
    // revoked and used again; none of them, nor their hashes, is logged.
    let made = Call::new("POST", "/api-keys", &key)
        .json(json!({"name": "SECRET-name-is-not-secret", "scope": "read"}))
        .send(&app)
        .await;
    assert_eq!(made.status, 201);
    let read_key = made.body["key"].as_str().unwrap().to_owned();
    secrets.push(read_key.clone());
    secrets.push(shared::api_key::hash(&read_key));
    secrets.push(shared::api_key::hash(&key));
    Call::new("GET", "/api-keys", &read_key).send(&app).await;
    Call::new("DELETE", "/webhooks/wh_1", &read_key)
        .send(&app)
        .await;
    let key_id = made.body["id"].as_str().unwrap().to_owned();
    Call::new("DELETE", &format!("/api-keys/{key_id}"), &key)
        .send(&app)
        .await;
    Call::new("GET", "/webhooks", &read_key).send(&app).await;

    // The dispatcher: an event with a recognizable payload to a failing receiver,
    // and a malformed message that carries a token-like value.
    let d = fresh_dispatcher(true, HashMap::new()).await;
    let wh = testkit::add_webhook(
        d.store(),
        "acme",
        &rx.url("/d"),
        &[shared::EventType::AsyncCompleted],
        shared::Status::Active,
    )
    .await;
    secrets.push(wh.token.expose().into());
    secrets.push(wh.signing_secret.expose().into());
    let payload_marker = "PAYLOAD-MARKER-passport-X1234567";
    secrets.push(payload_marker.into());
    let (_, body) = envelope(
        "acme",
        shared::EventType::AsyncCompleted,
        json!({"document_number": payload_marker}),
    );
    let malformed = format!(r#"{{"id": "evt_1", "data": {{"secret": "{payload_marker}"}}}}"#);
    let response = dispatch::handle(
        &d,
        invocation(
            sqs_event(&[("m1".into(), body), ("m2".into(), malformed)]),
            6000,
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "the malformed one");

    let logs = captured.text();
    assert!(
        logs.contains("delivery attempt"),
        "the capture works:\n{logs}"
    );
    assert!(logs.contains("test delivery attempt"));
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret} reached the logs:\n{logs}"
        );
    }
    // Nor any part of them long enough to matter (a masked form is fine: 4 characters).
    for secret in &secrets {
        let body = secret.trim_start_matches("whsec_");
        if body.len() >= 16 {
            assert!(
                !logs.contains(&body[..12]),
                "a piece of {secret} reached the logs"
            );
        }
    }
}
