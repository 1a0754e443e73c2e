//! Receivers behind a bank's gateway, on loopback with certificate
//! authorities made at run time: mutual TLS (the receiver requires a client
//! certificate) and OAuth2 client credentials (a token endpoint, a Bearer
//! token), through the real dispatch handler.

use std::time::Duration;

use serde_json::json;
use shared::client_tls::{ClientTls, ClientTlsInput};
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::delivery_log::DeliveryRecord;
use shared::oauth2::{OAuth2, OAuth2Input};
use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::webhook::now_utc;
use shared::{EventType, Settings, Status, UrlPolicy, Webhook};
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::{Receiver, TlsAnswer};
use testkit::tls::{ClientIdentity, TestCa};

const CLIENT_SECRET: &str = "oauth-client-secret-5b8e21d4";

/// A dispatcher in one container that trusts `server`'s CA.
fn dispatcher(server: &TestCa) -> dispatch::Dispatcher<MemoryStore> {
    testkit::tls::dispatcher_trusting(server, MemoryStore::default())
}

/// A webhook for `async.completed` at `url`, changed by `change` (as a PATCH would).
async fn webhook(
    d: &dispatch::Dispatcher<MemoryStore>,
    url: &str,
    change: impl FnOnce(&mut Webhook),
) -> Webhook {
    let before = testkit::add_webhook(
        d.store(),
        "acme",
        url,
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    let mut after = before.clone();
    change(&mut after);
    after.updated_at += time::Duration::milliseconds(1);
    let entry = shared::audit::operator::updated(&before, &after);
    d.store()
        .update_webhook(&after, before.updated_at, &entry)
        .await
        .expect("update");
    after
}

fn identity(id: &ClientIdentity, ca: Option<&TestCa>) -> ClientTls {
    let input = ClientTlsInput {
        certificate: id.certificate_pem.clone(),
        private_key: id.private_key_pem.clone(),
        ca: ca.map(|c| c.root_pem.clone()),
    };
    ClientTls::parse(&input, now_utc()).expect("a valid identity")
}

fn credentials(token_url: &str) -> OAuth2 {
    let input = OAuth2Input {
        token_url: token_url.to_owned(),
        client_id: "bank-relay".into(),
        client_secret: Some(CLIENT_SECRET.into()),
        scope: Some("webhooks".into()),
        auth_method: None,
    };
    let policy = UrlPolicy {
        allow_private_targets: true,
    };
    OAuth2::resolve(&input, None, policy).expect("valid credentials")
}

/// `n` events in one batch through the handler; every attempt's record, by webhook.
async fn dispatch_events(
    d: &dispatch::Dispatcher<MemoryStore>,
    n: usize,
) -> Vec<(shared::WebhookId, DeliveryRecord)> {
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for i in 0..n {
        let (event, body) = testkit::envelope("acme", EventType::AsyncCompleted, json!({"n": i}));
        messages.push((format!("m{i}"), body));
        events.push(event);
    }
    let response = dispatch::handle(d, invocation(sqs_event(&messages), 7000))
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let mut records = Vec::new();
    for event in events {
        let (_, found) = d
            .store()
            .event_with_deliveries(&event.tenant_id, &event.id)
            .await
            .expect("read")
            .expect("kept");
        records.extend(found.into_iter().map(|r| (r.webhook_id, r)));
    }
    records
}

/// The error of the webhook's first attempt in `records`.
fn error_of(records: &[(shared::WebhookId, DeliveryRecord)], of: &Webhook) -> String {
    records
        .iter()
        .find(|(id, _)| *id == of.id)
        .and_then(|(_, r)| r.error.clone())
        .unwrap_or_default()
}

/// A bank's gateway: a TLS receiver (its certificate from `server`) that
/// requires a client certificate from `clients`, and the identity the bank
/// issued to the platform.
struct Gateway {
    server: TestCa,
    rx: Receiver,
    bank: ClientIdentity,
}

async fn gateway() -> Gateway {
    let (server, clients) = (TestCa::generate(), TestCa::generate());
    let rx = Receiver::start_tls_with(
        server.acceptor_requiring_clients_of(&clients),
        TlsAnswer::Ok,
    )
    .await;
    let bank = clients.client_identity("relay.acme.example");
    Gateway { server, rx, bank }
}

fn outcomes(records: &[(shared::WebhookId, DeliveryRecord)], of: &Webhook) -> Vec<String> {
    records
        .iter()
        .filter(|(id, _)| *id == of.id)
        .map(|(_, r)| r.outcome.as_str().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_requiring_a_client_certificate_gets_the_identity_and_refuses_a_delivery_without()
 {
    let Gateway { server, rx, bank } = gateway().await;
    let d = dispatcher(&server);
    let with = webhook(&d, &rx.https_url("/with"), |w| {
        w.client_tls = Some(identity(&bank, None));
    })
    .await;
    // The same receiver, pinned to the server's CA for this endpoint.
    let pinned = webhook(&d, &rx.https_url("/pinned"), |w| {
        w.client_tls = Some(identity(&bank, Some(&server)));
    })
    .await;
    // The negative controls: no identity, and one another CA issued.
    let without = webhook(&d, &rx.https_url("/without"), |_| {}).await;
    let stranger = TestCa::generate().client_identity("intruder.example");
    let foreign = webhook(&d, &rx.https_url("/foreign"), |w| {
        w.client_tls = Some(identity(&stranger, None));
    })
    .await;

    let records = dispatch_events(&d, 3).await;
    assert_eq!(outcomes(&records, &with), ["delivered"; 3]);
    assert_eq!(outcomes(&records, &pinned), ["delivered"; 3]);
    for refused in [&without, &foreign] {
        // TLS 1.3: the receiver refuses after the client's half of the
        // handshake, so the client reads either its alert (`tls_error`) or
        // the reset that follows it (`connect_error`); never a delivery.
        for outcome in outcomes(&records, refused) {
            assert!(
                ["tls_error", "connect_error"].contains(&outcome.as_str()),
                "{outcome}: {}",
                refused.url.as_str()
            );
        }
    }
    let got = rx.requests();
    assert_eq!(
        got.len(),
        6,
        "only the deliveries with the identity arrived"
    );
    for request in &got {
        assert!(["/with", "/pinned"].contains(&request.path.as_str()));
        assert_eq!(
            request.client_certificate.as_deref(),
            Some(bank.fingerprint.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_certificate_from_another_ca_than_the_pinned_one_fails_closed() {
    let Gateway { server, rx, bank } = gateway().await;
    let other = TestCa::generate();
    let d = dispatcher(&server);
    // The receiver's CA is trusted container-wide (the test roots), but
    // this endpoint trusts only `other`: the pin replaces the roots.
    let pinned_elsewhere = webhook(&d, &rx.https_url("/hook"), |w| {
        w.client_tls = Some(identity(&bank, Some(&other)));
    })
    .await;
    let records = dispatch_events(&d, 2).await;
    assert_eq!(outcomes(&records, &pinned_elsewhere), ["tls_error"; 2]);
    let error = error_of(&records, &pinned_elsewhere);
    assert!(error.contains("certificate"), "{error}");
    assert!(rx.requests().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_fetch_serves_many_deliveries_as_a_bearer_token() {
    let server = TestCa::generate();
    let token_endpoint = Receiver::start_tls_answering(
        &server,
        TlsAnswer::Json {
            status: 200,
            body: r#"{"access_token":"at-7f2c91","token_type":"bearer","expires_in":3600}"#.into(),
            // Slow enough that the batch's concurrent attempts all ask while it runs.
            delay: Duration::from_millis(300),
        },
    )
    .await;
    let rx = Receiver::start_tls(&server).await;
    let d = dispatcher(&server);
    let hook = webhook(&d, &rx.https_url("/hook"), |w| {
        w.oauth2 = Some(credentials(&token_endpoint.https_url("/oauth/token")));
        w.headers = serde_json::from_value(json!([
            {"name": "X-Gateway-Key", "value": "gw key / 7", "secret": true},
        ]))
        .expect("headers");
    })
    .await;
    let basic = webhook(&d, &rx.https_url("/basic"), |_| {}).await;

    let mut records = dispatch_events(&d, 10).await;
    records.extend(dispatch_events(&d, 10).await);
    assert_eq!(outcomes(&records, &hook), ["delivered"; 20]);
    assert_eq!(
        token_endpoint.requests().len(),
        1,
        "one fetch for 20 deliveries"
    );

    let fetch = &token_endpoint.requests()[0];
    assert_eq!(fetch.method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&fetch.body),
        "grant_type=client_credentials&scope=webhooks"
    );
    use base64::Engine;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("bank-relay:{CLIENT_SECRET}"));
    assert_eq!(
        fetch.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    for request in rx.requests() {
        let auth = request.header("authorization").unwrap_or_default();
        match request.path.as_str() {
            "/hook" => {
                assert_eq!(auth, "Bearer at-7f2c91");
                // Custom headers arrive verbatim over TLS too.
                assert_eq!(request.header("x-gateway-key"), Some("gw key / 7"));
            }
            // The control: a webhook without credentials keeps the Basic token.
            _ => assert_eq!(auth, format!("Basic {}", basic.token.expose())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_its_own_outcome_and_is_not_asked_per_delivery() {
    let server = TestCa::generate();
    let token_endpoint = Receiver::start_tls_answering(
        &server,
        TlsAnswer::Json {
            status: 401,
            body: r#"{"error":"invalid_client","error_description":"bad secret"}"#.into(),
            delay: Duration::ZERO,
        },
    )
    .await;
    let rx = Receiver::start_tls(&server).await;
    let d = dispatcher(&server);
    let hook = webhook(&d, &rx.https_url("/hook"), |w| {
        w.oauth2 = Some(credentials(&token_endpoint.https_url("/oauth/token")));
    })
    .await;
    let mut records = dispatch_events(&d, 5).await;
    records.extend(dispatch_events(&d, 5).await);
    assert_eq!(outcomes(&records, &hook), ["token_error"; 10]);
    assert_eq!(
        error_of(&records, &hook),
        "the token endpoint answered 401 (invalid_client)"
    );
    assert!(rx.requests().is_empty(), "nothing reaches the receiver");
    assert_eq!(
        token_endpoint.requests().len(),
        1,
        "a failure is held for a while, not fetched again per delivery"
    );
}

/// The base64 lines of a PEM private key: what a leak would show.
fn key_lines(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_an_identity_and_credentials_and_never_reads_back_a_key_or_secret() {
    let store = testkit::fresh_store().await;
    let mut s = testkit::settings(store.table(), 50);
    s.url_policy.allow_private_targets = true;
    let app = api::App::new(store, s).with_client_config(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    });
    let key = testkit::api_key_for(&app.store, "acme").await;
    let (server, clients) = (TestCa::generate(), TestCa::generate());
    let bank = clients.client_identity("relay.acme.example");
    let call = |method, path| testkit::Call::new(method, path, &key);
    let created = call("POST", "/webhooks")
        .json(json!({
            "url": "https://localhost:8443/hook",
            "events": ["async.completed"],
            "client_tls": {"certificate": bank.certificate_pem, "private_key": bank.private_key_pem, "ca": server.root_pem},
            "oauth2": {"token_url": "https://localhost:8443/token", "client_id": "bank-relay", "client_secret": CLIENT_SECRET, "scope": "webhooks"},
        }))
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let one = format!("/webhooks/{id}");
    assert_eq!(created.body["client_tls"]["fingerprint"], bank.fingerprint);
    assert_eq!(
        created.body["client_tls"]["subject"],
        "CN=relay.acme.example"
    );
    assert!(created.body["client_tls"].get("private_key").is_none());
    assert!(
        created.body.get("warnings").is_none(),
        "far from its expiry"
    );
    assert_eq!(
        created.body["oauth2"],
        json!({"token_url": "https://localhost:8443/token", "client_id": "bank-relay",
               "client_secret": "****21d4", "scope": "webhooks", "auth_method": "client_secret_basic"})
    );

    // Refusals name the part and change nothing.
    let before = call("GET", &one).send(&app).await;
    let other = clients.client_identity("other.acme.example");
    let refusals = [
        (
            json!({"client_tls": {"certificate": bank.certificate_pem, "private_key": other.private_key_pem}}),
            "client_tls.private_key",
        ),
        (json!({"url": "http://localhost:8080/hook"}), "client_tls"),
        (
            json!({"oauth2": {"token_url": "https://elsewhere.example.net/token", "client_id": "bank-relay"}}),
            "oauth2.client_secret",
        ),
        (
            json!({"oauth2": {"token_url": "http://localhost:8443/token", "client_id": "x", "client_secret": "y"}}),
            "oauth2.token_url",
        ),
    ];
    for (body, field) in refusals {
        let refused = call("PATCH", &one).json(body).send(&app).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.body["error"]["field"], field, "{}", refused.body);
        for line in key_lines(&other.private_key_pem) {
            assert!(
                !refused.body.to_string().contains(line),
                "an error quotes the key"
            );
        }
    }
    let after = call("GET", &one).send(&app).await;
    assert_eq!(before.body, after.body, "a refusal changed nothing");

    // A change without the secret keeps it; removing the identity is recorded.
    let kept = call("PATCH", &one)
        .json(json!({"oauth2": {"token_url": "https://localhost:8443/token", "client_id": "bank-relay-2"}, "client_tls": null}))
        .send(&app)
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.body["oauth2"]["client_secret"], "****21d4");
    assert_eq!(kept.body["client_tls"], serde_json::Value::Null);
    let log = call("GET", "/audit-log?action=webhook.updated")
        .send(&app)
        .await;
    assert_eq!(
        log.body["data"][0]["changes"]["client_tls"],
        json!({"old": {"fingerprint": bank.fingerprint, "not_after": created.body["client_tls"]["not_after"]}, "new": null})
    );
    assert_eq!(
        log.body["data"][0]["changes"]["oauth2"]["new"],
        json!({"token_host": "localhost", "client_id": "bank-relay-2"})
    );
    let created_entry = call("GET", "/audit-log?action=webhook.created")
        .send(&app)
        .await;
    assert_eq!(
        created_entry.body["data"][0]["changes"]["client_tls"]["fingerprint"],
        bank.fingerprint
    );

    // No read, no audit item holds the key or the secret; the webhook's own
    // item held them until the change (the control that the search finds them).
    let reads = [
        created.body.to_string(),
        after.body.to_string(),
        kept.body.to_string(),
        call("GET", "/webhooks").send(&app).await.body.to_string(),
        call("GET", "/audit-log").send(&app).await.body.to_string(),
    ]
    .join("\n");
    let (audit_items, webhook_items) = testkit::audit_and_webhook_text(&app.store).await;
    for line in key_lines(&bank.private_key_pem) {
        assert!(!reads.contains(line), "a key line in a read");
        assert!(!audit_items.contains(line), "a key line in the audit log");
    }
    for text in [&reads, &audit_items] {
        assert!(!text.contains(CLIENT_SECRET), "the client secret was shown");
    }
    assert!(webhook_items.contains(CLIENT_SECRET), "the control");
    let again = call("PATCH", &one)
        .json(json!({"client_tls": {"certificate": bank.certificate_pem, "private_key": bank.private_key_pem}}))
        .send(&app)
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let (_, webhook_items) = testkit::audit_and_webhook_text(&app.store).await;
    assert!(
        key_lines(&bank.private_key_pem)
            .iter()
            .all(|l| webhook_items.contains(l)),
        "the control: the search finds the key where it is kept"
    );
}

/// The address rule holds for a webhook with an identity and for a token
/// endpoint: with production settings (no private targets), loopback is
/// never contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_rule_holds_for_identities_and_token_endpoints() {
    let Gateway { server, rx, bank } = gateway().await;
    let token_endpoint = Receiver::start_tls(&server).await;
    let client = DeliveryClient::new(ClientConfig::default()).expect("client");
    let d = dispatch::Dispatcher::new(
        MemoryStore::default(),
        client,
        &Settings::with_table("unused"),
    );
    let with_identity = webhook(&d, &rx.https_url("/hook"), |w| {
        w.client_tls = Some(identity(&bank, None));
    })
    .await;
    // A public receiver: the token comes first, so it is never contacted either.
    let with_token = webhook(&d, "https://93.184.215.14/hook", |w| {
        w.oauth2 = Some(credentials(&token_endpoint.https_url("/token")));
    })
    .await;
    let records = dispatch_events(&d, 1).await;
    assert_eq!(outcomes(&records, &with_identity), ["blocked"]);
    assert_eq!(outcomes(&records, &with_token), ["token_error"]);
    let why = error_of(&records, &with_token);
    assert!(why.starts_with("the token endpoint is"), "{why}");
    assert_eq!(rx.connections() + token_endpoint.connections(), 0);
}
