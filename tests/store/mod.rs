//! The store's contract, one file per aggregate: the DynamoDB store against
//! moto, and the in-memory store held to the same behaviour. Every method of
//! every store trait is called here on both stores.

mod allowances;
mod api_keys;
mod deliveries;
mod events;
mod purge;
mod recoveries;
mod settings;
mod stats_cost;
mod webhook_state;
mod webhooks;

use shared::store::prelude::*;
use shared::store::{AttemptKey, StoreError};
use shared::webhook::now_utc;
use shared::{EventSet, EventType, TenantId, UrlPolicy, Webhook, WebhookUrl};

fn webhook(tenant: &str) -> Webhook {
    Webhook::new(
        TenantId::parse(tenant).unwrap(),
        WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).unwrap(),
        EventSet::new([EventType::AsyncCompleted]).unwrap(),
        now_utc(),
    )
}

/// A 200 in 3 ms.
fn delivered() -> shared::delivery::Attempt {
    shared::delivery::Attempt::bare(shared::delivery::Outcome::Delivered, Some(200), 3)
}

/// `count` attempts of one webhook at as many events, each recorded `times`
/// times, all at once (as a fan-out's attempts end together).
async fn record_at_once(
    store: &impl DeliveryStore,
    w: &Webhook,
    count: usize,
    times: usize,
) -> (Vec<Result<(), StoreError>>, Vec<AttemptKey>) {
    let attempt = delivered();
    let records: Vec<_> = (0..count)
        .map(|i| {
            shared::delivery_log::DeliveryRecord::new(
                w.tenant_id.clone(),
                w.id,
                shared::event::EventId::parse(&format!("evt_{i}")).unwrap(),
                EventType::AsyncCompleted,
                now_utc(),
                attempt.clone(),
                30,
            )
        })
        .collect();
    let keys = records.iter().map(AttemptKey::of_record).collect();
    let writes = records
        .iter()
        .cycle()
        .take(count * times)
        .map(|r| store.record_delivery(r));
    (futures_util::future::join_all(writes).await, keys)
}

#[tokio::test]
async fn the_functions_sdk_configuration_reaches_dynamodb() {
    // What the Lambda mains use: the default chain with the Amazon-roots-only TLS client.
    let config = shared::aws::load_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = testkit::unique("config");
    shared::store::create_table(&client, &table)
        .await
        .expect("create table through load_config");
    let store = shared::store::DynamoStore::new(client, table);
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    assert_eq!(
        store.get_webhook(&w.tenant_id, w.id).await.unwrap(),
        Some(w)
    );
}
