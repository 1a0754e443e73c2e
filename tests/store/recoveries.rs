//! Recoveries: an event's attempts to one webhook, the claim that numbers a
//! recovery's attempt once, and one recovery of a webhook at a time.

use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::webhook::now_utc;
use shared::{EventType, TenantId};
use testkit::fresh_store;

use super::{delivered, webhook};

/// What a recovery needs of the store, the same on both.
/// An event's attempts to one webhook only; a claim numbers a manual attempt
/// unless one numbered lately is unrecorded (pending), and again once it is
/// recorded or PENDING_SECS old; one recovery of a webhook at a time.
async fn contract(store: &(impl EventStore + DeliveryStore + RecoveryStore)) {
    use shared::recovery::state::{PENDING_SECS, RecoveryState, STALE_SECS, Window};
    use shared::store::RecoveryWrite;
    let w = webhook("acme");
    let other = webhook("acme");
    let raw = r#"{"id":"evt_r","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-28T09:00:00Z","data":{}}"#;
    let event = shared::event::Event::from_json(raw).unwrap();
    store
        .put_event(&shared::event_log::StoredEvent::new(
            &event,
            now_utc(),
            shared::event_log::Retention::WEEK,
        ))
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
        .number_manual_attempts(
            &w.tenant_id,
            &event.id,
            &[other.id],
            now,
            &shared::audit::operator::redelivered(&w.tenant_id, &event.id),
        )
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
    assert!(start(store, &first, now).await.applied());
    let second = RecoveryState::start(w.tenant_id.clone(), w.id, window, now_utc());
    assert!(!start(store, &second, now).await.applied());
    assert!(
        !store
            .save_recovery(&second, RecoveryWrite::Advance)
            .await
            .unwrap()
            .applied()
    );
    // Another webhook's recovery is its own.
    let beside = RecoveryState::start(w.tenant_id.clone(), other.id, window, now_utc());
    assert!(start(store, &beside, now).await.applied());
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
    // Stale (no progress for STALE_SECS since its last progress, which is
    // later than `now` when the steps above crossed a second): another may start.
    let later = done.updated_at + STALE_SECS + 1;
    assert!(start(store, &second, later).await.applied());
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
    assert!(start(store, &third, now).await.applied());
    assert_eq!(store.recovery(&globex, w.id).await.unwrap(), None);
}

/// Starts `state`'s recovery if none runs at `now`, with the operator's entry.
async fn start(
    store: &impl RecoveryStore,
    state: &shared::recovery::state::RecoveryState,
    now: i64,
) -> shared::store::Conditional {
    let entry = shared::audit::operator::recovery(&state.tenant_id, state.webhook_id);
    let write = shared::store::RecoveryWrite::Start { now, entry: &entry };
    store.save_recovery(state, write).await.unwrap()
}

#[tokio::test]
async fn recoveries_claim_each_attempt_once_and_run_one_at_a_time() {
    contract(&fresh_store().await).await;
    contract(&MemoryStore::default()).await;
}
