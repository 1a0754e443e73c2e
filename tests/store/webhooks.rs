//! Webhooks: create, read, list, change, delete, and the slow-lane mark.

use shared::Status;
use shared::store::prelude::*;
use shared::store::{Conditional, MemoryStore, StoreError};
use shared::webhook::now_utc;
use shared::{TenantId, WebhookId};
use testkit::fresh_store;

use super::webhook;

async fn contract(store: &impl WebhookStore) {
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    assert_eq!(
        store.get_webhook(&w.tenant_id, w.id).await.unwrap(),
        Some(w.clone()),
        "round trip"
    );
    assert!(
        matches!(
            store
                .create_webhook(&w, 10, &shared::audit::operator::created(&w))
                .await,
            Err(StoreError::AlreadyExists)
        ),
        "create never overwrites"
    );

    let other = TenantId::parse("other").unwrap();
    assert_eq!(store.get_webhook(&other, w.id).await.unwrap(), None);
    assert!(matches!(
        store
            .delete_webhook(
                &other,
                w.id,
                &shared::audit::operator::deleted(&other, w.id)
            )
            .await,
        Err(StoreError::NotFound)
    ));

    let mut changed = w.clone();
    changed.status = Status::Inactive;
    changed.updated_at = w.updated_at + time::Duration::seconds(1);
    store
        .update_webhook(
            &changed,
            w.updated_at,
            &shared::audit::operator::updated(&changed, &changed),
        )
        .await
        .unwrap();
    let mut stale = w.clone();
    stale.status = Status::Active;
    assert!(
        matches!(
            store
                .update_webhook(
                    &stale,
                    w.updated_at,
                    &shared::audit::operator::updated(&stale, &stale)
                )
                .await,
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

    store
        .delete_webhook(
            &w.tenant_id,
            w.id,
            &shared::audit::operator::deleted(&w.tenant_id, w.id),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .update_webhook(
                    &changed,
                    changed.updated_at,
                    &shared::audit::operator::updated(&changed, &changed)
                )
                .await,
            Err(StoreError::NotFound)
        ),
        "no resurrection"
    );
    assert_eq!(store.get_webhook(&w.tenant_id, w.id).await.unwrap(), None);
    assert!(matches!(
        store
            .delete_webhook(
                &w.tenant_id,
                w.id,
                &shared::audit::operator::deleted(&w.tenant_id, w.id)
            )
            .await,
        Err(StoreError::NotFound)
    ));

    let create = |w: shared::Webhook| async move {
        store
            .create_webhook(&w, 2, &shared::audit::operator::created(&w))
            .await
    };
    for _ in 0..2 {
        create(webhook("acme")).await.unwrap();
    }
    assert!(matches!(
        create(webhook("acme")).await,
        Err(StoreError::LimitReached { limit: 2 })
    ));
}

/// Listing: newest first in pages that follow the cursor, every webhook of a
/// tenant in one read, and nothing of another tenant's.
async fn listing(store: &impl WebhookStore) {
    let tenant = TenantId::parse("lister").unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        let w = webhook("lister");
        store
            .create_webhook(&w, 10, &shared::audit::operator::created(&w))
            .await
            .unwrap();
        made.push(w.id);
        // Ids sort by their millisecond.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let first = store.list_webhooks(&tenant, 2, None).await.unwrap();
    let ids: Vec<WebhookId> = first.items.iter().map(|w| w.id).collect();
    assert_eq!(ids, [made[2], made[1]], "newest first");
    assert_eq!(first.next, Some(made[1]));
    let rest = store.list_webhooks(&tenant, 2, first.next).await.unwrap();
    let ids: Vec<WebhookId> = rest.items.iter().map(|w| w.id).collect();
    assert_eq!((ids, rest.next), (vec![made[0]], None), "the last page");

    let mut all: Vec<WebhookId> = store
        .webhooks_of(&tenant)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    all.sort();
    assert_eq!(all, made);
    let stranger = TenantId::parse("stranger").unwrap();
    assert!(store.webhooks_of(&stranger).await.unwrap().is_empty());
    assert!(
        store
            .list_webhooks(&stranger, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// The slow-lane mark changes only on a change of state, leaves the
/// customer's version alone, and never makes a webhook that is gone.
async fn slow_mark(store: &impl WebhookStore) {
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let since = now_utc();
    let mark = |at| store.set_slow(&w.tenant_id, w.id, at);
    assert_eq!(mark(Some(since)).await.unwrap(), Conditional::Applied);
    assert_eq!(
        mark(Some(since)).await.unwrap(),
        Conditional::Refused,
        "marked already"
    );
    let read = store
        .get_webhook(&w.tenant_id, w.id)
        .await
        .unwrap()
        .unwrap();
    assert!(read.slow_since.is_some());
    assert_eq!(
        read.updated_at, w.updated_at,
        "the customer's version stays"
    );
    assert_eq!(mark(None).await.unwrap(), Conditional::Applied);
    assert_eq!(
        mark(None).await.unwrap(),
        Conditional::Refused,
        "clear already"
    );
    let read = store
        .get_webhook(&w.tenant_id, w.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.slow_since, None);

    let gone = webhook("acme");
    assert_eq!(
        store
            .set_slow(&gone.tenant_id, gone.id, Some(since))
            .await
            .unwrap(),
        Conditional::Refused
    );
    assert_eq!(
        store.get_webhook(&gone.tenant_id, gone.id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn dynamo_store_keeps_the_webhook_contract() {
    let store = fresh_store().await;
    contract(&store).await;
    listing(&store).await;
    slow_mark(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_the_webhook_contract() {
    let store = MemoryStore::default();
    contract(&store).await;
    listing(&store).await;
    slow_mark(&store).await;
}
