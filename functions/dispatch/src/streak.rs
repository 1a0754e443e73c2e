//! A webhook's failing streak, followed after each recorded attempt: the
//! first failure after a success begins it, the 4th failure in a row sends
//! `webhook.failing` (once a streak), a success ends it, and a streak older
//! than `AUTO_DISABLE_AFTER_SECONDS` sets the webhook inactive with one
//! `webhook.disabled`. Each is a conditional write on a change of state
//! only: an attempt at a healthy webhook writes nothing for this.

use std::time::Duration;

use shared::Webhook;
use shared::audit;
use shared::delivery::Outcome;
use shared::delivery_log::{DeliveryRecord, sortable_time};
use shared::notice::Notice;
use shared::store::{Conditional, DeliveryStore, StreakChange, WebhookStore};
use shared::webhook::now_utc;
use time::OffsetDateTime;

use crate::Dispatcher;
use crate::lane::{Mark, Marks};

/// Failures in a row that make a webhook failing.
pub const FAILING_AFTER: usize = 4;

/// How a failed attempt is described in a notice and on the webhook:
/// the status, or what went wrong (never the receiver's body).
pub(crate) fn describe(record: &DeliveryRecord) -> String {
    match (record.status, &record.error) {
        (Some(status), _) => format!("status {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => record.outcome.as_str().to_owned(),
    }
}

/// What an attempt, once recorded, changes of its webhook's streak.
pub(crate) async fn follow<S: WebhookStore + DeliveryStore>(
    d: &Dispatcher<S>,
    webhook: &Webhook,
    record: &DeliveryRecord,
    started: OffsetDateTime,
    marks: &Marks,
) {
    let failed = record.outcome != Outcome::Delivered;
    let change = match (failed, webhook.failing_since) {
        // Healthy, and still: nothing to write.
        (false, None) => return,
        (false, Some(_)) => StreakChange::Ended,
        (true, None) => StreakChange::Began {
            at: started,
            error: describe(record),
        },
        (true, Some(since)) => {
            let now = now_utc();
            let error = describe(record);
            match d.settings.auto_disable_after {
                Some(after) if now - since >= after => {
                    let reason = format!(
                        "every attempt has failed since {}; set the status to active to resume deliveries",
                        shared::delivery_log::sortable_time(since)
                    );
                    StreakChange::Disabled {
                        since,
                        at: now,
                        entry: Box::new(audit::webhook_disabled(webhook, &reason)),
                        reason,
                        error,
                    }
                }
                _ if webhook.failing_notice_at.is_none() => StreakChange::Noticed {
                    since,
                    at: now,
                    error,
                },
                // Noticed already, not old enough to disable.
                _ => return,
            }
        }
    };
    // At most one streak write per webhook per invocation.
    if !marks.first(webhook.id, Mark::Streak) {
        return;
    }
    if let StreakChange::Noticed { since, error, .. } = &change {
        if !failing_in_a_row(d, webhook, *since).await {
            return;
        }
        // Sent before it is written down: a notice sent twice (two
        // containers) has one id and is delivered once; one written but
        // never sent would be lost.
        let notice = Notice::Failing {
            since: *since,
            error,
        };
        if !send(d, webhook, &notice).await {
            return;
        }
    }
    let written = d
        .store
        .change_streak(&webhook.tenant_id, webhook.id, &change)
        .await;
    match (written, &change) {
        (
            Ok(Conditional::Applied),
            StreakChange::Disabled {
                since,
                reason,
                error,
                ..
            },
        ) => {
            tracing::warn!(tenant_id = %webhook.tenant_id, webhook_id = %webhook.id, "webhook set inactive: every attempt failed for the auto-disable period");
            let notice = Notice::Disabled {
                since: *since,
                error,
                reason,
            };
            send(d, webhook, &notice).await;
        }
        (Ok(_), _) => {}
        (Err(e), _) => {
            tracing::error!(webhook_id = %webhook.id, error = %e, "writing the failing streak failed")
        }
    }
}

/// Whether the webhook's latest attempts since `since` are at least
/// [`FAILING_AFTER`] failures: one query of its delivery index (keys and
/// outcomes only).
async fn failing_in_a_row<S: DeliveryStore>(
    d: &Dispatcher<S>,
    webhook: &Webhook,
    since: OffsetDateTime,
) -> bool {
    match d
        .store
        .delivery_samples(webhook.id, &sortable_time(since), FAILING_AFTER)
        .await
    {
        Ok(samples) => {
            samples.items.len() >= FAILING_AFTER
                && samples
                    .items
                    .iter()
                    .all(|s| s.outcome != Outcome::Delivered)
        }
        Err(e) => {
            tracing::error!(webhook_id = %webhook.id, error = %e, "reading a failing webhook's attempts failed");
            false
        }
    }
}

/// Sends a notice about `webhook`, trying three times: a disable must not
/// go unannounced. Whether it was sent.
pub(crate) async fn send<S>(d: &Dispatcher<S>, webhook: &Webhook, notice: &Notice<'_>) -> bool {
    let event = match notice.event(webhook, now_utc()) {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(webhook_id = %webhook.id, error = %e, "making a notice failed");
            return false;
        }
    };
    for wait in [0, 100, 400] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match d.requeue.send_notice(&event).await {
            Ok(()) => {
                tracing::info!(tenant_id = %webhook.tenant_id, webhook_id = %webhook.id, event_type = %event.event_type, event_id = %event.id, "notice sent");
                return true;
            }
            Err(e) => {
                tracing::error!(webhook_id = %webhook.id, error = %e, "sending a notice failed")
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use shared::event::Event;
    use shared::store::WebhookStore;
    use shared::{EventSet, EventType, Status};

    use super::*;
    use crate::testing::{Queued, event, receiver, run, setup, webhook};

    /// The notices queued so far, by type (taken off the memory queue).
    fn notices(queued: &Queued) -> Vec<Event> {
        let messages: Vec<(String, std::time::Duration)> =
            std::mem::take(&mut *queued.lock().unwrap());
        messages
            .into_iter()
            .filter_map(|(m, _)| Event::from_json(&m).ok())
            .filter(|e| e.event_type.is_notice())
            .collect()
    }

    async fn read(d: &Dispatcher<shared::store::MemoryStore>, w: &Webhook) -> Webhook {
        d.store()
            .get_webhook(&w.tenant_id, w.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// A webhook that fails every attempt: one `webhook.failing` at the 4th
    /// failure, one `webhook.disabled` once the streak is older than the
    /// auto-disable period, the webhook inactive with its reason, and the
    /// notices delivered to the tenant's other webhook, never to it.
    #[tokio::test]
    async fn a_failing_streak_is_noticed_once_and_disables_once() {
        let (mut d, failing, receiver_a, queued) = setup(true).await;
        d.settings.auto_disable_after = Some(std::time::Duration::from_secs(2));
        receiver_a.hang.store(false, Ordering::SeqCst);
        receiver_a.status.store(503, Ordering::SeqCst);
        // The failing webhook takes notices too: they must never reach it.
        let mut subscribed = read(&d, &failing).await;
        subscribed.events = EventSet::new([
            EventType::AsyncCompleted,
            EventType::WebhookFailing,
            EventType::WebhookDisabled,
        ])
        .unwrap();
        d.store()
            .update_webhook(
                &subscribed,
                failing.updated_at,
                &shared::audit::operator::updated(&subscribed, &subscribed),
            )
            .await
            .unwrap();
        let receiver_b = receiver().await;
        receiver_b.hang.store(false, Ordering::SeqCst);
        let mut watcher = webhook(
            &receiver_b.url,
            shared::UrlPolicy {
                allow_private_targets: true,
            },
        );
        watcher.events = EventSet::new(EventType::NOTICES).unwrap();
        d.store()
            .create_webhook(&watcher, 50, &shared::audit::operator::created(&watcher))
            .await
            .unwrap();

        let mut sent_failing = Vec::new();
        for n in 1..=6 {
            assert!(run(&d, &[event().to_json()]).await.is_empty());
            let w = read(&d, &failing).await;
            assert!(w.failing_since.is_some(), "failing after attempt {n}");
            sent_failing.extend(notices(&queued));
            assert_eq!(sent_failing.len(), usize::from(n >= 4), "after attempt {n}");
        }
        let notice = &sent_failing[0];
        assert_eq!(notice.event_type, EventType::WebhookFailing);
        let data: serde_json::Value = serde_json::from_str(notice.data.get()).unwrap();
        assert_eq!(data["webhook_id"], failing.id.to_string());
        assert_eq!(data["last_error"], "status 503");
        assert_eq!(read(&d, &failing).await.status, Status::Active, "not yet");

        // The notice goes to the watcher only.
        let before = receiver_a.requests.load(Ordering::SeqCst);
        assert!(run(&d, &[notice.to_json()]).await.is_empty());
        assert_eq!(receiver_b.requests.load(Ordering::SeqCst), 1);
        assert_eq!(receiver_a.requests.load(Ordering::SeqCst), before);

        // Older than the period: disabled, once.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(run(&d, &[event().to_json()]).await.is_empty());
        let w = read(&d, &failing).await;
        assert_eq!(w.status, Status::Inactive);
        assert!(
            w.disabled_reason
                .as_deref()
                .unwrap()
                .contains("every attempt has failed since")
        );
        let disabled = notices(&queued);
        assert_eq!(disabled.len(), 1);
        assert_eq!(disabled[0].event_type, EventType::WebhookDisabled);
        assert!(run(&d, &[event().to_json()]).await.is_empty());
        assert!(notices(&queued).is_empty(), "one disable, one notice");
        assert!(run(&d, &[disabled[0].to_json()]).await.is_empty());
        assert_eq!(receiver_b.requests.load(Ordering::SeqCst), 2);
        assert_eq!(
            receiver_a.requests.load(Ordering::SeqCst),
            before + 1,
            "nothing more to it"
        );
    }

    /// The negative control: a webhook that fails three times in four
    /// never has 4 failures in a row, so it is never noticed; and each
    /// success ends the streak, so it is never disabled however long it
    /// goes on (here more than twice the period; a run of failures lasts
    /// about 0.5 s, under the period).
    #[tokio::test]
    async fn a_webhook_that_succeeds_sometimes_is_never_disabled() {
        let (mut d, w, receiver, queued) = setup(true).await;
        d.settings.auto_disable_after = Some(std::time::Duration::from_millis(800));
        receiver.hang.store(false, Ordering::SeqCst);
        for round in 0..3 {
            for status in [503, 500, 502, 200] {
                receiver.status.store(status, Ordering::SeqCst);
                assert!(run(&d, &[event().to_json()]).await.is_empty());
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
            let now = read(&d, &w).await;
            assert_eq!(now.status, Status::Active, "round {round}");
            assert_eq!(now.failing_since, None, "a success ended the streak");
        }
        assert!(notices(&queued).is_empty());
    }

    /// A healthy webhook's attempts write nothing of a streak.
    #[tokio::test]
    async fn a_healthy_webhook_writes_no_streak() {
        let (d, w, receiver, _) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        let before = read(&d, &w).await;
        assert!(
            run(&d, &[event().to_json(), event().to_json()])
                .await
                .is_empty()
        );
        assert_eq!(
            read(&d, &w).await,
            before,
            "the webhook's item is as it was"
        );
    }
}
