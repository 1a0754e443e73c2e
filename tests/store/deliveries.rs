//! Delivery records: written together and each once, the stats' samples,
//! the delivery log's filters and pages.

use shared::EventType;
use shared::store::prelude::*;
use shared::store::{MemoryStore, StoreError};
use shared::webhook::now_utc;
use testkit::fresh_store;

use super::{delivered, record_at_once, webhook};

/// The DynamoDB store writes records that end together in
/// batches. Every record lands, once, whatever the batch sizes (over 25 per
/// request, a key twice in one batch); the in-memory store does the same.
async fn records_land_once(store: &impl DeliveryStore) {
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

/// The stats' read is the window's key range, newest first, bounded,
/// and says when the window holds more.
async fn samples_are_bounded(store: &impl DeliveryStore) {
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

/// The delivery log's filters (outcome, event type, time window).
/// A sparse filter ends a page early with a cursor, and following the
/// cursors finds every match once.
async fn log_filters(store: &impl DeliveryStore) {
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
