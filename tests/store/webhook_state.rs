//! What the dispatcher writes on a webhook: the throttle's slots and the
//! failing streak, each conditional, on both stores.

use shared::Status;
use shared::store::prelude::*;
use shared::store::{Conditional, MemoryStore, StreakChange};
use shared::throttle::{SlotRequest, ThrottleRate};
use shared::webhook::now_utc;
use testkit::fresh_store;
use time::Duration;

use super::webhook;

/// The webhook as stored now.
async fn current(store: &impl WebhookStore, w: &shared::Webhook) -> shared::Webhook {
    store
        .get_webhook(&w.tenant_id, w.id)
        .await
        .unwrap()
        .unwrap()
}

/// Slots a gap apart while attempts wait, with whatever guess the caller
/// makes; `now` again once the wait is over; none for a webhook that is gone.
async fn slots(store: &impl WebhookStore) {
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let rate = ThrottleRate::new(4).unwrap();
    let now = now_utc();
    let now_ms = shared::throttle::unix_ms(now);
    let reserve = |now, waiting| {
        let want = SlotRequest {
            rate,
            count: 1,
            now,
            waiting,
        };
        store.reserve_slots(&w.tenant_id, w.id, want)
    };
    let mut taken = Vec::new();
    for waiting in [false, false, true, false, true] {
        taken.push(reserve(now, waiting).await.unwrap().unwrap() - now_ms);
    }
    assert_eq!(taken, [0, 250, 500, 750, 1000]);
    let read = current(store, &w).await;
    assert_eq!(
        read.throttled_since.map(|t| t.unix_timestamp()),
        Some(now.unix_timestamp())
    );
    assert_eq!(
        read.updated_at, w.updated_at,
        "the customer's version stays"
    );

    // Long after: nothing waits, whatever the stale guess says.
    let later = now + Duration::minutes(1);
    let later_ms = shared::throttle::unix_ms(later);
    assert_eq!(reserve(later, true).await.unwrap(), Some(later_ms));
    assert_eq!(reserve(later, false).await.unwrap(), Some(later_ms + 250));
    let read = current(store, &w).await;
    assert_eq!(read.throttle_next, Some(later_ms + 500));

    // Ten at once: one reservation, the first after the last one taken.
    let ten = SlotRequest {
        rate,
        count: 10,
        now: later,
        waiting: true,
    };
    assert_eq!(
        store.reserve_slots(&w.tenant_id, w.id, ten).await.unwrap(),
        Some(later_ms + 500)
    );
    assert_eq!(
        current(store, &w).await.throttle_next,
        Some(later_ms + 3000)
    );
    // Ten again long after, with the stale guess: from now, and the wait
    // shows (nine of them wait); no slot of the stale guess is lost.
    let much_later = now + Duration::minutes(2);
    let much_later_ms = shared::throttle::unix_ms(much_later);
    let ten_then = SlotRequest {
        now: much_later,
        ..ten
    };
    assert_eq!(
        store
            .reserve_slots(&w.tenant_id, w.id, ten_then)
            .await
            .unwrap(),
        Some(much_later_ms)
    );
    let read = current(store, &w).await;
    assert_eq!(read.throttle_next, Some(much_later_ms + 2500));
    assert_eq!(
        read.throttled_since.map(|t| t.unix_timestamp()),
        Some(much_later.unix_timestamp()),
        "a new wait begins"
    );

    let gone = webhook("acme");
    for waiting in [false, true] {
        let want = SlotRequest {
            rate,
            count: 3,
            now,
            waiting,
        };
        assert_eq!(
            store
                .reserve_slots(&gone.tenant_id, gone.id, want)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store.get_webhook(&gone.tenant_id, gone.id).await.unwrap(),
        None,
        "nothing made"
    );
}

/// Reservations at the same moment, each guessing that attempts wait
/// (the plan's read was stale: nothing waits), still take distinct runs of
/// slots, the first of them from now, none lost between them.
async fn concurrent_slots(store: &impl WebhookStore) {
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let rate = ThrottleRate::new(10).unwrap();
    let now = now_utc();
    let now_ms = shared::throttle::unix_ms(now);
    // Eight batches of two each.
    let want = SlotRequest {
        rate,
        count: 2,
        now,
        waiting: true,
    };
    let taken = futures_util::future::join_all(
        (0..8).map(|_| store.reserve_slots(&w.tenant_id, w.id, want)),
    )
    .await;
    let mut slots: Vec<i64> = taken
        .into_iter()
        .map(|s| s.unwrap().unwrap() - now_ms)
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..8).map(|k| k * 200).collect::<Vec<_>>());
}

/// A streak begins once, is noticed once, ends on a success, and disables
/// only the streak it was asked about.
async fn streak(store: &impl WebhookStore) {
    let w = webhook("acme");
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let (tenant, id) = (&w.tenant_id, w.id);
    let change =
        |c: StreakChange| async move { store.change_streak(tenant, id, &c).await.unwrap() };
    let since = now_utc();
    let began = |at| StreakChange::Began {
        at,
        error: "timeout".into(),
    };
    assert_eq!(change(began(since)).await, Conditional::Applied);
    assert_eq!(
        change(began(since + Duration::seconds(1))).await,
        Conditional::Refused,
        "one streak at a time"
    );
    let noticed = |since| StreakChange::Noticed {
        since,
        at: now_utc(),
        error: "status 503".into(),
    };
    assert_eq!(
        change(noticed(since - Duration::seconds(1))).await,
        Conditional::Refused,
        "another streak"
    );
    assert_eq!(change(noticed(since)).await, Conditional::Applied);
    assert_eq!(
        change(noticed(since)).await,
        Conditional::Refused,
        "once a streak"
    );
    let read = current(store, &w).await;
    assert_eq!(read.failing_since, Some(since));
    assert!(read.failing_notice_at.is_some());
    assert_eq!(read.last_error.as_deref(), Some("status 503"));

    let disabled = |since| StreakChange::Disabled {
        since,
        at: now_utc(),
        reason: "every attempt failed".into(),
        error: "timeout".into(),
        entry: Box::new(shared::audit::webhook_disabled(&w, "every attempt failed")),
    };
    assert_eq!(
        change(disabled(since + Duration::seconds(1))).await,
        Conditional::Refused
    );
    assert_eq!(change(disabled(since)).await, Conditional::Applied);
    assert_eq!(
        change(disabled(since)).await,
        Conditional::Refused,
        "inactive already"
    );
    let read = current(store, &w).await;
    assert_eq!(read.status, Status::Inactive);
    assert_eq!(
        read.disabled_reason.as_deref(),
        Some("every attempt failed")
    );
    assert!(
        read.updated_at > w.updated_at,
        "a change of the customer's status"
    );

    assert_eq!(change(StreakChange::Ended).await, Conditional::Applied);
    assert_eq!(change(StreakChange::Ended).await, Conditional::Refused);
    let read = current(store, &w).await;
    assert_eq!(
        (read.failing_since, read.failing_notice_at, read.last_error),
        (None, None, None)
    );

    let gone = webhook("acme");
    let refused = store
        .change_streak(&gone.tenant_id, gone.id, &began(since))
        .await
        .unwrap();
    assert_eq!(refused, Conditional::Refused);
    assert_eq!(
        store.get_webhook(&gone.tenant_id, gone.id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn dynamo_store_keeps_slots_and_streaks() {
    let store = fresh_store().await;
    slots(&store).await;
    concurrent_slots(&store).await;
    streak(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_slots_and_streaks() {
    let store = MemoryStore::default();
    slots(&store).await;
    concurrent_slots(&store).await;
    streak(&store).await;
}
