//! The DynamoDB store against moto, and the in-memory store held to the same behaviour.

use shared::store::{MemoryStore, Store, StoreError};
use shared::webhook::now_utc;
use shared::{EventSet, EventType, Status, TenantId, UrlPolicy, Webhook, WebhookUrl};
use testkit::fresh_store;

fn webhook(tenant: &str) -> Webhook {
    Webhook::new(
        TenantId::parse(tenant).unwrap(),
        WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).unwrap(),
        EventSet::new([EventType::AsyncCompleted]).unwrap(),
        now_utc(),
    )
}

async fn store_contract(store: &impl Store) {
    let w = webhook("acme");
    store.create_webhook(&w, 10).await.unwrap();
    assert_eq!(
        store.get_webhook(&w.tenant_id, w.id).await.unwrap(),
        Some(w.clone()),
        "round trip"
    );
    assert!(
        matches!(
            store.create_webhook(&w, 10).await,
            Err(StoreError::AlreadyExists)
        ),
        "create never overwrites"
    );

    let other = TenantId::parse("other").unwrap();
    assert_eq!(store.get_webhook(&other, w.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_webhook(&other, w.id).await,
        Err(StoreError::NotFound)
    ));

    let mut changed = w.clone();
    changed.status = Status::Inactive;
    changed.updated_at = w.updated_at + time::Duration::seconds(1);
    store.update_webhook(&changed, w.updated_at).await.unwrap();
    let mut stale = w.clone();
    stale.status = Status::Active;
    assert!(
        matches!(
            store.update_webhook(&stale, w.updated_at).await,
            Err(StoreError::Conflict)
        ),
        "a write based on an old read loses"
    );
    assert_eq!(
        store
            .get_webhook(&w.tenant_id, w.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Inactive
    );

    store.delete_webhook(&w.tenant_id, w.id).await.unwrap();
    assert!(
        matches!(
            store.update_webhook(&changed, changed.updated_at).await,
            Err(StoreError::NotFound)
        ),
        "no resurrection"
    );
    assert_eq!(store.get_webhook(&w.tenant_id, w.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_webhook(&w.tenant_id, w.id).await,
        Err(StoreError::NotFound)
    ));

    for _ in 0..2 {
        store.create_webhook(&webhook("acme"), 2).await.unwrap();
    }
    assert!(matches!(
        store.create_webhook(&webhook("acme"), 2).await,
        Err(StoreError::LimitReached { limit: 2 })
    ));

    store.put_api_key("abc123", &other).await.unwrap();
    assert_eq!(
        store.tenant_for_api_key("abc123").await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(store.tenant_for_api_key("abc124").await.unwrap(), None);

    // An event is read alone, whatever is recorded for it, and only by its tenant.
    let (event, _) = testkit::envelope(
        "acme",
        EventType::AsyncCompleted,
        serde_json::json!({"ok": true}),
    );
    let kept = shared::event_log::StoredEvent::new(&event, now_utc(), 7);
    assert_eq!(
        store.get_event(&event.tenant_id, &event.id).await.unwrap(),
        None
    );
    store.put_event(&kept).await.unwrap();
    let attempt = shared::delivery::Attempt {
        outcome: shared::delivery::Outcome::Delivered,
        status: Some(200),
        duration_ms: 3,
        response_excerpt: None,
        location: None,
        error: None,
        retry_after: None,
    };
    let record = shared::delivery_log::DeliveryRecord::new(
        event.tenant_id.clone(),
        w.id,
        event.id.clone(),
        event.event_type,
        now_utc(),
        attempt,
        30,
    );
    store.record_delivery(&record).await.unwrap();
    assert_eq!(
        store.get_event(&event.tenant_id, &event.id).await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(store.get_event(&other, &event.id).await.unwrap(), None);
    let (with, records) = store
        .event_with_deliveries(&event.tenant_id, &event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((with, records.len()), (kept, 1));
}

#[tokio::test]
async fn dynamo_store_keeps_the_contract() {
    store_contract(&fresh_store().await).await;
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    store_contract(&MemoryStore::default()).await;
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
    store.create_webhook(&w, 10).await.unwrap();
    assert_eq!(
        store.get_webhook(&w.tenant_id, w.id).await.unwrap(),
        Some(w)
    );
}
