//! Purging a tenant (`webhooks tenant purge`): every item of the tenant,
//! found by a Scan of the whole table, counted by kind and deleted; every
//! item of another tenant left as it was, `acme2` (whose id starts with
//! `acme`) included; a second run, or one after an interrupted run, finds
//! what is left.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::audit::operator as audit;
use shared::delivery_log::DeliveryRecord;
use shared::event::{Event, EventId};
use shared::event_log::{Retention, StoredEvent};
use shared::recovery::state::{RecoveryState, Window};
use shared::store::prelude::*;
use shared::store::{Allowance, DynamoStore, PurgeCounts, PurgeOptions, RecoveryWrite, keys};
use shared::webhook::now_utc;
use shared::{EventType, TenantId, TenantSettings};
use testkit::fresh_store;

use super::{delivered, webhook};

type Item = std::collections::HashMap<String, AttributeValue>;
/// The whole table, by key.
type Table = BTreeMap<(String, String), Item>;

/// What [`populate`] writes for each tenant.
const EXPECTED: PurgeCounts = PurgeCounts {
    // Three created, one of them deleted.
    webhooks: 2,
    api_keys: 2,
    settings: 1,
    events: 2,
    // One per event kept with its data.
    payloads: 2,
    // Three of live webhooks, one of the deleted webhook, one of a test
    // event (which has no event item).
    deliveries: 5,
    budgets: 3,
    recoveries: 1,
    // Three webhooks created and one deleted, two keys made, the settings
    // changed and the recovery started: each change's entry.
    audit_entries: 8,
    // The webhook counter (`META`) and the key set (`APIKEYS`).
    other: 2,
};

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

fn record(w: &shared::Webhook, event: &str, attempt: u32) -> DeliveryRecord {
    DeliveryRecord::new(
        w.tenant_id.clone(),
        w.id,
        EventId::parse(event).unwrap(),
        EventType::AsyncCompleted,
        now_utc(),
        delivered(),
        30,
    )
    .with_attempt(attempt, false)
}

/// A tenant with one item of every kind or more, through the store's own
/// methods, as the functions write them.
async fn populate(store: &DynamoStore, t: &str) {
    let id = tenant(t);
    let (w1, w2, gone) = (webhook(t), webhook(t), webhook(t));
    for w in [&w1, &w2, &gone] {
        store
            .create_webhook(w, 10, &audit::created(w))
            .await
            .unwrap();
    }
    store
        .delete_webhook(&id, gone.id, &audit::deleted(&id, gone.id))
        .await
        .unwrap();
    for _ in 0..2 {
        testkit::api_key_for(store, t).await;
    }
    let settings = TenantSettings {
        payload_retention_hours: 24,
        keep_response_bodies: false,
    };
    store
        .put_settings(&id, &settings, &audit::settings(&id, &settings))
        .await
        .unwrap();
    let retention = Retention {
        event_days: 7,
        payload_hours: 24,
    };
    for evt in ["evt_1", "evt_2"] {
        let raw = format!(
            r#"{{"id":"{evt}","tenant_id":"{t}","type":"async.completed","timestamp":"2026-11-28T09:00:00Z","data":{{"name":"A. Person"}}}}"#
        );
        let event = Event::from_json(&raw).unwrap();
        store
            .put_event(&StoredEvent::new(&event, now_utc(), retention))
            .await
            .unwrap();
    }
    for r in [
        record(&w1, "evt_1", 1),
        record(&w1, "evt_1", 2),
        record(&w2, "evt_2", 1),
        record(&gone, "evt_1", 1),
        record(&w1, "evt_test", 1).as_test(),
    ] {
        store.record_delivery(&r).await.unwrap();
    }
    for allowance in [
        Allowance::Redeliveries,
        Allowance::TestEvents,
        Allowance::CostlyReads,
    ] {
        store
            .take_allowance(&id, allowance, 1_000, 1, 10)
            .await
            .unwrap();
    }
    let now = now_utc();
    let window = Window {
        since: now - time::Duration::hours(1),
        until: now,
    };
    let entry = audit::recovery(&id, w1.id);
    let recovery = RecoveryState::start(id, w1.id, window, now);
    let started = store
        .save_recovery(
            &recovery,
            RecoveryWrite::Start {
                now: now.unix_timestamp(),
                entry: &entry,
            },
        )
        .await
        .unwrap();
    assert!(started.applied());
}

/// Every item of the table, every attribute.
async fn scan(store: &DynamoStore) -> Table {
    let client = store.client().await.unwrap();
    let mut table = Table::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let s = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                other => panic!("{name}: {other:?}"),
            };
            table.insert((s(keys::PK), s(keys::SK)), item);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return table;
        }
    }
}

/// Whether an item is `t`'s by anything it holds: its key, its index keys,
/// or a `tenant_id` attribute (wider than the purge's filter, on purpose).
fn of_tenant(item: &Item, t: &str) -> bool {
    let is = |name: &str, check: &dyn Fn(&str) -> bool| matches!(item.get(name), Some(AttributeValue::S(s)) if check(s));
    is(keys::PK, &|pk| {
        pk == format!("TENANT#{t}") || pk.starts_with(&format!("EVENT#{t}#"))
    }) || is("tenant_id", &|id| id == t)
        || is(keys::GSI1PK, &|pk| {
            pk == format!("APIKEYS#{t}") || pk == format!("EVENTS#{t}")
        })
        || is(keys::GSI2PK, &|pk| pk.starts_with(&format!("SUBJECT#{t}#")))
}

fn items_of(table: &Table, t: &str) -> Table {
    table
        .iter()
        .filter(|(_, item)| of_tenant(item, t))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Three tenants, `acme` among them; the table before any purge.
async fn three_tenants() -> (DynamoStore, Table) {
    let store = fresh_store().await;
    for t in ["acme", "acme2", "beta"] {
        populate(&store, t).await;
    }
    let before = scan(&store).await;
    for t in ["acme", "acme2", "beta"] {
        assert_eq!(
            items_of(&before, t).len() as u64,
            EXPECTED.total(),
            "{t}: {:#?}",
            items_of(&before, t).keys()
        );
    }
    (store, before)
}

#[tokio::test]
async fn a_purge_counts_then_deletes_exactly_one_tenant_s_items() {
    let (store, before) = three_tenants().await;
    let acme = tenant("acme");

    // Counting deletes nothing, in one segment or several, in pages of any size.
    let mut reports = Vec::new();
    let counted = store
        .purge_tenant(&acme, PurgeOptions::count(), |p| reports.push(*p))
        .await
        .unwrap();
    assert_eq!(counted, EXPECTED);
    let last = reports.last().copied().unwrap();
    assert_eq!((last.found, last.deleted), (EXPECTED.total(), 0));
    assert_eq!(last.scanned, before.len() as u64);
    let paged = PurgeOptions {
        segments: 3,
        page_items: Some(4),
        ..PurgeOptions::count()
    };
    let mut pages = 0;
    let counted = store
        .purge_tenant(&acme, paged, |p| pages = p.pages)
        .await
        .unwrap();
    assert_eq!(counted, EXPECTED);
    assert!(pages >= (before.len() / 4) as u64, "{pages} pages");
    assert_eq!(scan(&store).await, before, "a count changed the table");

    // Deleting: the same counts, and nothing of acme left by any measure.
    let mut last = None;
    let deleted = store
        .purge_tenant(&acme, PurgeOptions::delete(), |p| last = Some(*p))
        .await
        .unwrap();
    assert_eq!(deleted, EXPECTED);
    assert_eq!(last.map(|p| p.deleted), Some(EXPECTED.total()));
    let after = scan(&store).await;
    assert!(
        items_of(&after, "acme").is_empty(),
        "{:#?}",
        items_of(&after, "acme").keys()
    );
    // Every other item as it was, attribute for attribute.
    let others: Table = before
        .iter()
        .filter(|(_, item)| !of_tenant(item, "acme"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(after, others);
    assert_eq!(items_of(&after, "acme2").len() as u64, EXPECTED.total());
    assert_eq!(items_of(&after, "beta").len() as u64, EXPECTED.total());

    // The indexes followed: nothing of acme listed, acme2 as before.
    assert!(store.api_keys_of(&acme).await.unwrap().is_empty());
    assert!(store.webhooks_of(&acme).await.unwrap().is_empty());
    let acme2 = tenant("acme2");
    assert_eq!(store.api_keys_of(&acme2).await.unwrap().len(), 2);
    assert_eq!(store.webhooks_of(&acme2).await.unwrap().len(), 2);

    // Again: nothing to do.
    let again = store
        .purge_tenant(&acme, PurgeOptions::delete(), |_| {})
        .await
        .unwrap();
    assert_eq!(again, PurgeCounts::default());
}

#[tokio::test]
async fn a_purge_stopped_half_way_is_finished_by_the_next_run() {
    let (store, before) = three_tenants().await;
    let beta = tenant("beta");
    let small_pages = PurgeOptions {
        page_items: Some(3),
        ..PurgeOptions::delete()
    };
    // Stopped (the future dropped, as Ctrl-C would) once a page deleted something.
    let stop = tokio::sync::Notify::new();
    let mut first = 0;
    tokio::select! {
        biased;
        () = stop.notified() => {}
        done = store.purge_tenant(&beta, small_pages, |p| {
            first = p.deleted;
            if p.deleted > 0 {
                stop.notify_one();
            }
        }) => panic!("not stopped: {done:?}"),
    }
    assert!(first > 0 && first < EXPECTED.total(), "{first}");
    let left = items_of(&scan(&store).await, "beta").len() as u64;
    assert_eq!(left, EXPECTED.total() - first);

    let rest = PurgeOptions {
        segments: 2,
        ..PurgeOptions::delete()
    };
    let second = store.purge_tenant(&beta, rest, |_| {}).await.unwrap();
    assert_eq!(second.total(), left);
    let after = scan(&store).await;
    assert!(items_of(&after, "beta").is_empty());
    assert_eq!(after.len() as u64, before.len() as u64 - EXPECTED.total());
}
