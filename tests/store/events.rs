//! Events: kept once, read alone or with their attempts, listed newest
//! first, and their manual attempts numbered.

use shared::audit::operator::{payload_deleted, redelivered};
use shared::event::{Event, EventId};
use shared::event_log::{EventFilter, StoredEvent};
use shared::store::prelude::*;
use shared::store::{Kept, MemoryStore};
use shared::webhook::now_utc;
use shared::{EventType, TenantId};
use testkit::fresh_store;

use super::{delivered, webhook};

/// An event is read alone, whatever is recorded for it, and only by its tenant.
async fn contract(store: &(impl EventStore + DeliveryStore)) {
    let w = webhook("acme");
    let other = TenantId::parse("other").unwrap();

    let (event, _) = testkit::envelope(
        "acme",
        EventType::AsyncCompleted,
        serde_json::json!({"ok": true}),
    );
    let kept =
        shared::event_log::StoredEvent::new(&event, now_utc(), shared::event_log::Retention::WEEK);
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

/// An event at `minute` past 09:00 on a fixed day.
fn event_at(tenant: &str, id: &str, event_type: EventType, minute: u32) -> Event {
    let raw = format!(
        r#"{{"id":"{id}","tenant_id":"{tenant}","type":"{}","timestamp":"2026-11-28T09:{minute:02}:00Z","data":{{}}}}"#,
        event_type.as_str()
    );
    Event::from_json(&raw).unwrap()
}

/// Kept once (a second put keeps the first copy); listed newest first in
/// pages that follow the cursor, by type and by time (`since` ≤ t < `until`).
async fn listing(store: &impl EventStore) {
    let tenant = TenantId::parse("lister").unwrap();
    for minute in 0..5 {
        let event_type = if minute % 2 == 0 {
            EventType::AsyncCompleted
        } else {
            EventType::FlowxCompleted
        };
        let event = event_at("lister", &format!("evt_{minute}"), event_type, minute);
        let kept = StoredEvent::new(&event, now_utc(), shared::event_log::Retention::WEEK);
        assert_eq!(store.put_event(&kept).await.unwrap(), Kept::New);
        assert_eq!(store.put_event(&kept).await.unwrap(), Kept::Before);
    }
    let tenant = &tenant;
    let all = |filter: EventFilter| async move {
        let (mut found, mut after) = (Vec::new(), None);
        loop {
            let page = store.list_events(tenant, &filter, 2, after).await.unwrap();
            found.extend(page.items.iter().map(|e| e.id.as_str().to_owned()));
            match page.next {
                Some(next) => after = Some(next),
                None => return found,
            }
        }
    };
    assert_eq!(
        all(EventFilter::default()).await,
        ["evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]
    );
    let flowx = EventFilter {
        event_type: Some(EventType::FlowxCompleted),
        ..EventFilter::default()
    };
    assert_eq!(all(flowx).await, ["evt_3", "evt_1"]);
    let day = time::macros::datetime!(2026-11-28 09:00 UTC);
    let window = EventFilter {
        since: Some(day + time::Duration::minutes(1)),
        until: Some(day + time::Duration::minutes(3)),
        ..EventFilter::default()
    };
    assert_eq!(all(window).await, ["evt_2", "evt_1"]);
    let stranger = TenantId::parse("stranger").unwrap();
    let theirs = store
        .list_events(&stranger, &EventFilter::default(), 10, None)
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
}

/// Manual attempts are numbered from 101, one counter per webhook; an
/// event that is not kept (or another tenant's) gets no number.
async fn manual_numbers(store: &impl EventStore) {
    let event = event_at("acme", "evt_manual", EventType::AsyncCompleted, 0);
    store
        .put_event(&StoredEvent::new(
            &event,
            now_utc(),
            shared::event_log::Retention::WEEK,
        ))
        .await
        .unwrap();
    let (a, b) = (webhook("acme").id, webhook("acme").id);
    let now = now_utc().unix_timestamp();
    let number = |hooks: Vec<shared::WebhookId>| {
        let event = event.clone();
        async move {
            store
                .number_manual_attempts(
                    &event.tenant_id,
                    &event.id,
                    &hooks,
                    now,
                    &redelivered(&event.tenant_id, &event.id),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(number(vec![a, b]).await, Some(vec![101, 101]));
    assert_eq!(number(vec![a]).await, Some(vec![102]));
    assert_eq!(number(vec![b, a]).await, Some(vec![102, 103]));
    assert_eq!(number(vec![]).await, Some(vec![]));
    let stranger = TenantId::parse("stranger").unwrap();
    let missing = EventId::parse("evt_missing").unwrap();
    for (tenant, id) in [(&event.tenant_id, &missing), (&stranger, &event.id)] {
        assert_eq!(
            store
                .number_manual_attempts(tenant, id, &[a], now, &redelivered(tenant, id))
                .await
                .unwrap(),
            None
        );
    }
}

/// A batch's copies kept at once: each new event is `New`, each event kept
/// before is `Before` and keeps its first copy (with its manual attempt
/// counter), an event twice in the batch is written once; a batch of one
/// and an empty batch work too.
async fn batch(store: &impl EventStore) {
    let tenant = TenantId::parse("batcher").unwrap();
    let copy = |id: &str, minute: u32| {
        StoredEvent::new(
            &event_at("batcher", id, EventType::AsyncCompleted, minute),
            now_utc(),
            shared::event_log::Retention::WEEK,
        )
    };
    let before = copy("evt_b", 1);
    assert_eq!(store.put_event(&before).await.unwrap(), Kept::New);
    let w = webhook("batcher").id;
    let now = now_utc().unix_timestamp();
    let number = || async {
        store
            .number_manual_attempts(
                &tenant,
                &before.id,
                &[w],
                now,
                &redelivered(&tenant, &before.id),
            )
            .await
            .unwrap()
    };
    assert_eq!(number().await, Some(vec![101]));

    // The same id with other content: the first copy must stay.
    let mut changed = copy("evt_b", 2);
    changed.data = Some(r#"{"second":true}"#.to_owned());
    let kept: Vec<Kept> = store
        .put_events(&[
            copy("evt_a", 3),
            changed,
            copy("evt_c", 4),
            copy("evt_a", 3),
        ])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept, [Kept::New, Kept::Before, Kept::New, Kept::Before]);
    assert_eq!(
        store.get_event(&tenant, &before.id).await.unwrap(),
        Some(before.clone())
    );
    assert_eq!(
        number().await,
        Some(vec![102]),
        "the kept event's manual counter survives the batch"
    );
    let listed = store
        .list_events(&tenant, &EventFilter::default(), 10, None)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_c", "evt_a", "evt_b"]);

    // Every copy of a batch kept before: all `Before`, nothing changes.
    let again: Vec<Kept> = store
        .put_events(&[copy("evt_a", 3), copy("evt_c", 4)])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(again, [Kept::Before, Kept::Before]);
    let one: Vec<Kept> = store
        .put_events(&[copy("evt_d", 5)])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(one, [Kept::New]);
    assert!(store.put_events(&[]).await.is_empty());
}

/// A job's events by subject, newest first and only the tenant's; a payload
/// deleted alone or with its job's, the event staying; a payload never kept
/// stays so.
async fn payloads(store: &impl EventStore) {
    let holder = TenantId::parse("holder").unwrap();
    let other = TenantId::parse("other").unwrap();
    let job = shared::event::Subject::parse("job-9").unwrap();
    let copy = |tenant: &str, id: &str, minute: u32, subject: Option<&str>, hours: u16| {
        let mut event = event_at(tenant, id, EventType::AsyncCompleted, minute);
        event.subject = subject.map(|s| shared::event::Subject::parse(s).unwrap());
        let retention = shared::event_log::Retention {
            event_days: 7,
            payload_hours: hours,
        };
        StoredEvent::new(&event, now_utc(), retention)
    };
    let kept = [
        copy("holder", "evt_j1", 1, Some("job-9"), 168),
        copy("holder", "evt_j2", 2, Some("job-9"), 168),
        copy("holder", "evt_j3", 3, Some("job-9"), 0),
        copy("holder", "evt_alone", 4, None, 168),
        copy("other", "evt_theirs", 5, Some("job-9"), 168),
    ];
    for k in &kept {
        assert_eq!(store.put_event(k).await.unwrap(), Kept::New);
    }
    let by_subject = EventFilter {
        subject: Some(job.clone()),
        ..EventFilter::default()
    };
    let first = store
        .list_events(&holder, &by_subject, 2, None)
        .await
        .unwrap();
    let ids: Vec<&str> = first.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_j3", "evt_j2"]);
    let rest = store
        .list_events(&holder, &by_subject, 2, first.next)
        .await
        .unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!((ids, rest.next), (vec!["evt_j1"], None));

    let now = now_utc().unix_timestamp();
    let state = |tenant: TenantId, id: &'static str| async move {
        let e = store
            .get_event(&tenant, &EventId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        (e.payload_state(now), e.data.is_some())
    };
    use shared::event_log::PayloadState::{Deleted, Kept as Held, NotKept};
    assert_eq!(state(holder.clone(), "evt_j1").await, (Held, true));
    assert_eq!(state(holder.clone(), "evt_j3").await, (NotKept, false));
    // Another tenant's event, or none: not found, nothing deleted.
    let theirs = EventId::parse("evt_theirs").unwrap();
    let delete = |id: EventId| {
        let holder = holder.clone();
        async move {
            let entry = payload_deleted(&holder, &id);
            store.delete_payload(&holder, &id, &entry).await.unwrap()
        }
    };
    assert!(!delete(theirs).await);
    let missing = EventId::parse("evt_missing").unwrap();
    assert!(!delete(missing).await);
    let alone = EventId::parse("evt_alone").unwrap();
    assert!(delete(alone.clone()).await);
    assert!(delete(alone).await);
    assert_eq!(state(holder.clone(), "evt_alone").await, (Deleted, false));
    assert_eq!(
        store
            .delete_subject_payloads(&holder, &job, &shared::audit::Actor::Operator)
            .await
            .unwrap(),
        3
    );
    assert_eq!(state(holder.clone(), "evt_j1").await, (Deleted, false));
    assert_eq!(state(holder.clone(), "evt_j2").await, (Deleted, false));
    assert_eq!(state(holder.clone(), "evt_j3").await, (NotKept, false));
    assert_eq!(state(other.clone(), "evt_theirs").await, (Held, true));
    // Still listed, with their deliveries' partition intact.
    let listed = store
        .list_events(&holder, &EventFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4);
}

#[tokio::test]
async fn dynamo_store_keeps_the_event_contract() {
    let store = fresh_store().await;
    contract(&store).await;
    listing(&store).await;
    manual_numbers(&store).await;
    batch(&store).await;
    payloads(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_the_event_contract() {
    let store = MemoryStore::default();
    contract(&store).await;
    listing(&store).await;
    manual_numbers(&store).await;
    batch(&store).await;
    payloads(&store).await;
}
