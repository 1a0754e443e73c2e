//! API keys: stored by hash, listed per tenant, revoked, expired, touched.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::TenantId;
use shared::api_key::{self, ApiKey, KeyId, KeyState, Scope};
use shared::audit::Action;
use shared::audit::operator as audit;
use shared::store::prelude::*;
use shared::store::{Conditional, Keep, MemoryStore, StoreError};
use testkit::fresh_store;

/// Keys as objects: their list, revocation, expiry and last use.
async fn contract(store: &impl ApiKeyStore, tenant: &TenantId) {
    let now = api_key::now();
    let (key, stored) =
        shared::key_lifecycle::issue(store, tenant.clone(), "ci".into(), Scope::Read, None)
            .await
            .unwrap();
    assert_eq!(
        store.api_key(&api_key::hash(&key)).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store.api_key(&api_key::hash("whk_other")).await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .put_api_key(&stored, None, &audit::key(&stored, Action::ApiKeyCreated))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    // Ids sort by their millisecond: the second key is made in a later one.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let (_, full) =
        shared::key_lifecycle::issue(store, tenant.clone(), "dashboard".into(), Scope::Full, None)
            .await
            .unwrap();
    let listed: Vec<_> = store
        .api_keys_of(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, [full.id.clone(), stored.id.clone()], "newest first");
    let stranger = TenantId::parse("stranger").unwrap();
    assert!(store.api_keys_of(&stranger).await.unwrap().is_empty());

    // The limit counts the tenant's active keys, those just made too, and
    // no other tenant's.
    let limited = TenantId::parse("limited").unwrap();
    let make = |name: &str| ApiKey::issue(limited.clone(), name.into(), Scope::Read, None, now).1;
    for (name, limit, put) in [
        ("first", Some(1), Conditional::Applied),
        ("second", None, Conditional::Applied),
        ("third", Some(2), Conditional::Refused),
        ("third", Some(3), Conditional::Applied),
    ] {
        assert_eq!(
            {
                let key = make(name);
                let entry = audit::key(&key, Action::ApiKeyCreated);
                store.put_api_key(&key, limit, &entry).await.unwrap()
            },
            put,
            "{name}"
        );
    }

    // Last use: written once, not again within the hour, again after it.
    store.touch_api_key(&stored, now).await.unwrap();
    store
        .touch_api_key(&stored, now + time::Duration::minutes(59))
        .await
        .unwrap();
    let used = |k: &ApiKey| {
        let k = k.clone();
        async move { store.api_key(&k.hash).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(used(&stored).await, Some(now));
    store
        .touch_api_key(&stored, now + time::Duration::minutes(60))
        .await
        .unwrap();
    assert_eq!(used(&stored).await, Some(now + time::Duration::minutes(60)));

    // Expiry only shortens a key's life, and not a revoked key's.
    let soon = now + time::Duration::hours(1);
    let rotated = || audit::key(&stored, Action::ApiKeyRotated);
    store
        .expire_api_key(&stored, soon, &rotated())
        .await
        .unwrap();
    store
        .expire_api_key(&stored, soon + time::Duration::hours(1), &rotated())
        .await
        .unwrap();
    let read_back = store.api_key(&stored.hash).await.unwrap().unwrap();
    assert_eq!(read_back.expires_at, Some(soon));

    // The key to keep expires (at `soon`) before it must: nothing changes.
    let keep_past = Keep {
        key: &stored,
        until: soon + time::Duration::minutes(1),
    };
    assert!(matches!(
        store
            .revoke_api_key(
                &full,
                now,
                Some(keep_past),
                &audit::key(&full, Action::ApiKeyRevoked)
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.api_key(&full.hash).await.unwrap().unwrap().revoked_at,
        None
    );

    // Revocation: kept-key condition, then plain, then never twice.
    store
        .revoke_api_key(&full, now, None, &audit::key(&full, Action::ApiKeyRevoked))
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .revoke_api_key(
                    &stored,
                    now,
                    Some(Keep {
                        key: &full,
                        until: now
                    }),
                    &audit::key(&stored, Action::ApiKeyRevoked)
                )
                .await,
            Err(StoreError::Conflict)
        ),
        "the key to keep is revoked: nothing changes"
    );
    assert_eq!(
        store
            .api_key(&stored.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    store
        .revoke_api_key(
            &stored,
            now,
            None,
            &audit::key(&stored, Action::ApiKeyRevoked),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_api_key(
                &stored,
                now,
                None,
                &audit::key(&stored, Action::ApiKeyRevoked)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .expire_api_key(&stored, now, &audit::key(&stored, Action::ApiKeyRotated))
            .await,
        Err(StoreError::NotFound)
    ));
    let states: Vec<_> = store
        .api_keys_of(tenant)
        .await
        .unwrap()
        .iter()
        .map(|k| k.state(now))
        .collect();
    assert_eq!(states, [KeyState::Revoked, KeyState::Revoked]);
    // What a change is decided on: the key as it is now, revoked.
    let current = store.current_api_key(&stored.hash).await.unwrap().unwrap();
    assert_eq!(current.state(now), KeyState::Revoked);
    assert_eq!(
        store
            .current_api_key(&api_key::hash("whk_other"))
            .await
            .unwrap(),
        None
    );
}

/// A key stored before keys were objects (only its hash and tenant) still
/// authenticates as a full key, and joins its tenant's list on first use.
#[tokio::test]
async fn a_key_from_before_ids_works_and_is_listed_once_used() {
    let store = fresh_store().await;
    let key = api_key::generate();
    let hash = api_key::hash(&key);
    let client = store.client().await.unwrap();
    client
        .put_item()
        .table_name(store.table())
        .item("PK", AttributeValue::S(format!("APIKEY#{hash}")))
        .item("SK", AttributeValue::S("APIKEY".into()))
        .item("key_hash", AttributeValue::S(hash.clone()))
        .item("tenant_id", AttributeValue::S("acme".into()))
        .send()
        .await
        .unwrap();
    let old = store.api_key(&hash).await.unwrap().unwrap();
    // A second one, never used: the operator's `api-key adopt` lists it.
    let unused = api_key::hash(&api_key::generate());
    client
        .put_item()
        .table_name(store.table())
        .item("PK", AttributeValue::S(format!("APIKEY#{unused}")))
        .item("SK", AttributeValue::S("APIKEY".into()))
        .item("key_hash", AttributeValue::S(unused.clone()))
        .item("tenant_id", AttributeValue::S("bravo".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (old.scope, old.state(api_key::now())),
        (Scope::Full, KeyState::Active)
    );
    assert_eq!(old.id, KeyId::legacy(&hash));
    let acme = TenantId::parse("acme").unwrap();
    assert!(
        store.api_keys_of(&acme).await.unwrap().is_empty(),
        "not in the index yet"
    );
    store.touch_api_key(&old, api_key::now()).await.unwrap();
    let listed = store.api_keys_of(&acme).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, old.id);
    assert!(listed[0].last_used_at.is_some());

    let bravo = TenantId::parse("bravo").unwrap();
    assert!(store.api_keys_of(&bravo).await.unwrap().is_empty());
    assert_eq!(
        store.adopt_legacy_api_keys().await.unwrap(),
        1,
        "the used one is adopted already"
    );
    let listed = store.api_keys_of(&bravo).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.clone(), listed[0].last_used_at),
        (KeyId::legacy(&unused), None)
    );
    assert_eq!(
        store.adopt_legacy_api_keys().await.unwrap(),
        0,
        "once is enough"
    );
    assert_eq!(store.api_keys_of(&acme).await.unwrap().len(), 1);
}

#[tokio::test]
async fn dynamo_store_keeps_the_api_key_contract() {
    contract(&fresh_store().await, &TenantId::parse("other").unwrap()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_api_key_contract() {
    contract(&MemoryStore::default(), &TenantId::parse("other").unwrap()).await;
}
