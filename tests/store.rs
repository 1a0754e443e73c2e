//! The DynamoDB store against moto, and the in-memory store held to the same behaviour.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::api_key::{self, ApiKey, KeyId, KeyState, Scope};
use shared::store::prelude::*;
use shared::store::{MemoryStore, StoreError};
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

/// A 200 in 3 ms.
fn delivered() -> shared::delivery::Attempt {
    shared::delivery::Attempt::bare(shared::delivery::Outcome::Delivered, Some(200), 3)
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

    api_key_contract(store, &other).await;

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
    let attempt = delivered();
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

/// Issue 19: keys as objects, their list, revocation, expiry and last use.
async fn api_key_contract(store: &impl Store, tenant: &TenantId) {
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
        store.put_api_key(&stored).await,
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
    store.expire_api_key(&stored, soon).await.unwrap();
    store
        .expire_api_key(&stored, soon + time::Duration::hours(1))
        .await
        .unwrap();
    let read_back = store.api_key(&stored.hash).await.unwrap().unwrap();
    assert_eq!(read_back.expires_at, Some(soon));

    // Revocation: kept-key condition, then plain, then never twice.
    store.revoke_api_key(&full, now, None).await.unwrap();
    assert!(
        matches!(
            store.revoke_api_key(&stored, now, Some(&full)).await,
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
    store.revoke_api_key(&stored, now, None).await.unwrap();
    assert!(matches!(
        store.revoke_api_key(&stored, now, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.expire_api_key(&stored, now).await,
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

/// `count` attempts of one webhook at as many events, each recorded `times`
/// times, all at once (as a fan-out's attempts end together).
async fn record_at_once(
    store: &impl Store,
    w: &Webhook,
    count: usize,
    times: usize,
) -> (Vec<Result<(), StoreError>>, Vec<shared::store::AttemptKey>) {
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
    let keys = records
        .iter()
        .map(|r| shared::store::AttemptKey {
            tenant: r.tenant_id.clone(),
            webhook: r.webhook_id,
            event: r.event_id.clone(),
            attempt: r.attempt,
        })
        .collect();
    let writes = records
        .iter()
        .cycle()
        .take(count * times)
        .map(|r| store.record_delivery(r));
    (futures_util::future::join_all(writes).await, keys)
}

/// Issue 18: the DynamoDB store writes records that end together in
/// batches. Every record lands, once, whatever the batch sizes (over 25 per
/// request, a key twice in one batch); the in-memory store does the same.
async fn records_land_once(store: &impl Store) {
    let w = webhook("acme");
    let (results, keys) = record_at_once(store, &w, 60, 2).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let found = store.recorded_deliveries(&keys).await.unwrap();
    assert_eq!(found.len(), 60, "every attempt recorded");
    let listed = store
        .list_deliveries(w.id, &Default::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 60, "each once in the log");
}

#[tokio::test]
async fn records_written_together_each_land_once() {
    records_land_once(&fresh_store().await).await;
    records_land_once(&MemoryStore::default()).await;
}

/// The negative control: when the write fails, every record waiting on it
/// says so (none is reported written, none waits forever).
#[tokio::test]
async fn a_failed_batch_write_fails_every_record_in_it() {
    let client = fresh_store().await.client().await.unwrap().clone();
    let missing = shared::store::DynamoStore::new(client, testkit::unique("missing"));
    let (results, _) = record_at_once(&missing, &webhook("acme"), 40, 1).await;
    assert_eq!(results.len(), 40);
    for r in results {
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
    }
}

/// Issue 20: the stats' read is the window's key range, newest first, bounded,
/// and says when the window holds more.
async fn samples_are_bounded(store: &impl Store) {
    let w = webhook("acme");
    let before = shared::delivery_log::sortable_time(now_utc() - time::Duration::seconds(1));
    record_at_once(store, &w, 60, 1).await;
    let all = store.delivery_samples(w.id, &before, 100).await.unwrap();
    assert_eq!((all.items.len(), all.more), (60, false));
    assert!(
        all.items
            .windows(2)
            .all(|p| p[0].attempted_at >= p[1].attempted_at),
        "newest first"
    );
    assert_eq!(all.items[0].outcome, shared::delivery::Outcome::Delivered);
    let bounded = store.delivery_samples(w.id, &before, 50).await.unwrap();
    assert_eq!((bounded.items.len(), bounded.more), (50, true));
    let later = shared::delivery_log::sortable_time(now_utc() + time::Duration::minutes(1));
    let none = store.delivery_samples(w.id, &later, 100).await.unwrap();
    assert_eq!((none.items.len(), none.more), (0, false));
    let other = store
        .delivery_samples(webhook("acme").id, &before, 100)
        .await
        .unwrap();
    assert!(other.items.is_empty(), "another webhook's log is its own");
}

#[tokio::test]
async fn delivery_samples_read_the_window_and_say_when_there_are_more() {
    samples_are_bounded(&fresh_store().await).await;
    samples_are_bounded(&MemoryStore::default()).await;
}

/// Issue 20: the delivery log's filters (outcome, event type, time window).
/// A sparse filter ends a page early with a cursor, and following the
/// cursors finds every match once.
async fn log_filters(store: &impl Store) {
    use shared::delivery::Outcome;
    use shared::delivery_log::{DeliveryFilter, DeliveryRecord};
    let w = webhook("acme");
    let start = now_utc() - time::Duration::hours(1);
    // 20 attempts a minute apart; the oldest timed out; every 5th is flowx.
    for i in 0..20u32 {
        let attempt = shared::delivery::Attempt {
            outcome: if i == 0 {
                Outcome::Timeout
            } else {
                Outcome::Delivered
            },
            ..delivered()
        };
        let event_type = if i % 5 == 0 {
            EventType::FlowxCompleted
        } else {
            EventType::AsyncCompleted
        };
        let record = DeliveryRecord::new(
            w.tenant_id.clone(),
            w.id,
            shared::event::EventId::parse(&format!("evt_{i}")).unwrap(),
            event_type,
            start + time::Duration::minutes(i.into()),
            attempt,
            30,
        );
        store.record_delivery(&record).await.unwrap();
    }
    let all = |filter: DeliveryFilter| async move {
        let (mut found, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = store
                .list_deliveries(w.id, &filter, 2, after)
                .await
                .unwrap();
            pages += 1;
            found.extend(
                page.items
                    .into_iter()
                    .map(|r| r.event_id.as_str().to_owned()),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => return (found, pages),
            }
        }
    };
    let timeouts = DeliveryFilter {
        outcome: Some(Outcome::Timeout),
        ..Default::default()
    };
    let (found, _) = all(timeouts).await;
    assert_eq!(
        found,
        ["evt_0"],
        "the one timeout, once, however many pages it took"
    );
    let flowx = DeliveryFilter {
        event_type: Some(EventType::FlowxCompleted),
        ..Default::default()
    };
    assert_eq!(
        all(flowx).await.0,
        ["evt_15", "evt_10", "evt_5", "evt_0"],
        "newest first"
    );
    let window = DeliveryFilter {
        since: Some(start + time::Duration::minutes(3)),
        until: Some(start + time::Duration::minutes(6)),
        ..Default::default()
    };
    assert_eq!(
        all(window).await.0,
        ["evt_5", "evt_4", "evt_3"],
        "since ≤ time < until"
    );
    let both = DeliveryFilter {
        outcome: Some(Outcome::Delivered),
        event_type: Some(EventType::FlowxCompleted),
        ..Default::default()
    };
    assert_eq!(all(both).await.0, ["evt_15", "evt_10", "evt_5"]);
    let (everything, pages) = all(DeliveryFilter::default()).await;
    assert_eq!((everything.len(), pages), (20, 10));
}

#[tokio::test]
async fn the_delivery_log_filters_by_outcome_type_and_time() {
    log_filters(&fresh_store().await).await;
    log_filters(&MemoryStore::default()).await;
}

/// Issue 20, item 4: what a recovery needs of the store, the same on both.
/// An event's attempts to one webhook only; a claim numbers a manual attempt
/// unless one numbered lately is unrecorded (pending), and again once it is
/// recorded or PENDING_SECS old; one recovery of a webhook at a time.
async fn recovery_contract(store: &impl Store) {
    use shared::recovery::state::{PENDING_SECS, RecoveryState, STALE_SECS, Window};
    use shared::store::RecoveryWrite;
    let w = webhook("acme");
    let other = webhook("acme");
    let raw = r#"{"id":"evt_r","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-28T09:00:00Z","data":{}}"#;
    let event = shared::event::Event::from_json(raw).unwrap();
    store
        .put_event(&shared::event_log::StoredEvent::new(&event, now_utc(), 7))
        .await
        .unwrap();
    for (webhook, attempt) in [(w.id, 1), (w.id, 2), (other.id, 1)] {
        let record = shared::delivery_log::DeliveryRecord::new(
            w.tenant_id.clone(),
            webhook,
            event.id.clone(),
            EventType::AsyncCompleted,
            now_utc(),
            delivered(),
            30,
        )
        .with_attempt(attempt, false);
        store.record_delivery(&record).await.unwrap();
    }
    let mut mine: Vec<u32> = store
        .deliveries_to(&w.tenant_id, &event.id, w.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.attempt)
        .collect();
    mine.sort_unstable();
    assert_eq!(mine, [1, 2]);
    let globex = TenantId::parse("globex").unwrap();
    assert!(
        store
            .deliveries_to(&globex, &event.id, w.id)
            .await
            .unwrap()
            .is_empty()
    );

    let now = now_utc().unix_timestamp();
    let claim =
        |recorded, at| store.claim_recovery_attempt(&w.tenant_id, &event.id, w.id, recorded, at);
    assert_eq!(claim(0, now).await.unwrap(), Some(101));
    // 101 is not recorded yet: pending.
    assert_eq!(claim(0, now).await.unwrap(), None);
    // Recorded: the next one.
    assert_eq!(claim(1, now).await.unwrap(), Some(102));
    // Pending too long: taken as lost.
    assert_eq!(claim(1, now + PENDING_SECS + 1).await.unwrap(), Some(103));
    // A redelivery's number counts as pending as well.
    let numbered = store
        .number_manual_attempts(&w.tenant_id, &event.id, &[other.id], now)
        .await
        .unwrap();
    assert_eq!(numbered, Some(vec![101]));
    let theirs = store
        .claim_recovery_attempt(&w.tenant_id, &event.id, other.id, 0, now)
        .await;
    assert_eq!(theirs.unwrap(), None);
    // Not kept (or another tenant's): nothing.
    assert_eq!(
        store
            .claim_recovery_attempt(&globex, &event.id, w.id, 0, now)
            .await
            .unwrap(),
        None
    );

    let window = Window {
        since: now_utc() - time::Duration::hours(1),
        until: now_utc(),
    };
    let first = RecoveryState::start(w.tenant_id.clone(), w.id, window, now_utc());
    assert!(
        store
            .save_recovery(&first, RecoveryWrite::Start { now })
            .await
            .unwrap()
            .applied()
    );
    let second = RecoveryState::start(w.tenant_id.clone(), w.id, window, now_utc());
    assert!(
        !store
            .save_recovery(&second, RecoveryWrite::Start { now })
            .await
            .unwrap()
            .applied()
    );
    assert!(
        !store
            .save_recovery(&second, RecoveryWrite::Advance)
            .await
            .unwrap()
            .applied()
    );
    // Another webhook's recovery is its own.
    let beside = RecoveryState::start(w.tenant_id.clone(), other.id, window, now_utc());
    assert!(
        store
            .save_recovery(&beside, RecoveryWrite::Start { now })
            .await
            .unwrap()
            .applied()
    );
    let mut done = first.clone();
    done.counts.queued = 3;
    assert!(
        store
            .save_recovery(&done, RecoveryWrite::Advance)
            .await
            .unwrap()
            .applied()
    );
    assert_eq!(
        store.recovery(&w.tenant_id, w.id).await.unwrap(),
        Some(done.clone())
    );
    // Stale (no progress for STALE_SECS): another may start.
    let later = now + STALE_SECS + 1;
    assert!(
        store
            .save_recovery(&second, RecoveryWrite::Start { now: later })
            .await
            .unwrap()
            .applied()
    );
    // Ended: another may start at once.
    let mut ended = second.clone();
    ended.done = true;
    assert!(
        store
            .save_recovery(&ended, RecoveryWrite::Advance)
            .await
            .unwrap()
            .applied()
    );
    let third = RecoveryState::start(w.tenant_id.clone(), w.id, window, now_utc());
    assert!(
        store
            .save_recovery(&third, RecoveryWrite::Start { now })
            .await
            .unwrap()
            .applied()
    );
    assert_eq!(store.recovery(&globex, w.id).await.unwrap(), None);
}

#[tokio::test]
async fn recoveries_claim_each_attempt_once_and_run_one_at_a_time() {
    recovery_contract(&fresh_store().await).await;
    recovery_contract(&MemoryStore::default()).await;
}
