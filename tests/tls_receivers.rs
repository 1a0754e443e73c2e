//! HTTPS receivers on loopback, with a certificate authority made at run
//! time: the delivery client trusts it only when told to, and
//! never with production settings.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;
use shared::delivery::{ClientConfig, ClientError, DeliveryClient};
use shared::store::MemoryStore;
use shared::{EventType, Settings, Status};
use testkit::aws::{invocation, sqs_event};
use testkit::receiver::Receiver;
use testkit::tls::TestCa;

fn config(allow_private_targets: bool, ca: &TestCa, trust: bool) -> ClientConfig {
    ClientConfig {
        allow_private_targets,
        dns_overrides: HashMap::from([(
            "localhost".to_owned(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )]),
        extra_roots: if trust {
            vec![ca.root.clone()]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    }
}

/// One event through the real handler to one webhook at `url`; the outcome recorded.
async fn deliver(client: DeliveryClient, url: &str) -> String {
    let store = MemoryStore::default();
    let webhook = testkit::add_webhook(
        &store,
        "acme",
        url,
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    let settings = Settings::with_table("unused");
    let d = dispatch::Dispatcher::new(store, client, &settings);
    let (event, body) = testkit::envelope("acme", EventType::AsyncCompleted, json!({"ok": true}));
    let response = dispatch::handle(&d, invocation(sqs_event(&[("m".into(), body)]), 7000))
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let (_, records) =
        shared::store::EventStore::event_with_deliveries(d.store(), &webhook.tenant_id, &event.id)
            .await
            .expect("read")
            .expect("kept");
    records[0].outcome.as_str().to_owned()
}

#[tokio::test]
async fn an_https_receiver_with_a_test_ca_is_reached_only_when_the_ca_is_trusted() {
    let ca = TestCa::generate();
    let rx = Receiver::start_tls(&ca).await;
    let url = rx.https_url("/hook");

    let trusting = DeliveryClient::new(config(true, &ca, true)).expect("client");
    assert_eq!(deliver(trusting, &url).await, "delivered");
    assert_eq!(rx.requests().len(), 1, "one request over TLS");

    // The negative control: the same receiver, Mozilla's roots only.
    let strict = DeliveryClient::new(config(true, &ca, false)).expect("client");
    assert_ne!(deliver(strict, &url).await, "delivered");
    assert_eq!(rx.requests().len(), 1, "no request without the handshake");

    // Production settings (no private targets) refuse the extra CA outright.
    assert!(matches!(
        DeliveryClient::new(config(false, &ca, true)),
        Err(ClientError::TestRootsInProduction)
    ));
}

/// The local stack's way in: `EXTRA_CA_FILE` names the CA's PEM file, read
/// into the settings (with private targets allowed), and the client made
/// from them reaches the HTTPS receiver; without it, it does not.
#[tokio::test]
async fn extra_ca_file_lets_settings_trust_a_run_time_ca() {
    let ca = TestCa::generate();
    let rx = Receiver::start_tls(&ca).await;
    let url = rx.https_url("/hook");
    let file = std::env::temp_dir().join(testkit::unique("extra-ca") + ".pem");
    std::fs::write(&file, &ca.root_pem).expect("write the CA");
    let path = file.to_string_lossy().into_owned();
    let settings = |with_file: bool| {
        Settings::from_lookup(|name| match name {
            "TABLE_NAME" => Some("unused".into()),
            "ALLOW_PRIVATE_TARGETS" => Some("true".into()),
            "EXTRA_CA_FILE" if with_file => Some(path.clone()),
            _ => None,
        })
        .expect("settings")
    };
    let client = |s: Settings| {
        DeliveryClient::new(ClientConfig {
            dns_overrides: config(true, &ca, false).dns_overrides,
            ..s.client_config()
        })
        .expect("client")
    };
    assert_eq!(deliver(client(settings(true)), &url).await, "delivered");
    assert_ne!(deliver(client(settings(false)), &url).await, "delivered");
    assert_eq!(
        rx.requests().len(),
        1,
        "only the trusting client got through"
    );
    let _ = std::fs::remove_file(&file);
}
