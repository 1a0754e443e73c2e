//! Recovery pages on the slow lane: each message takes a customer's
//! recovery up where the previous page left it (see [`shared::recovery`]).

use std::time::Duration;

use futures_util::future::join_all;
use shared::recovery::Recovery;
use shared::slow_lane::Continuation;
use shared::store::Store;
use tokio::time::Instant;

use crate::Dispatcher;
use crate::deadline::within;

/// The most a recovery page works before it saves and hands the rest on.
const RECOVERY_PAGE_TIME: Duration = Duration::from_secs(4);

/// Takes each recovery up where its message says; the messages of those
/// that could not go on come back (a page done twice queues nothing twice).
pub(crate) async fn recover<S: Store>(
    d: &Dispatcher<S>,
    pages: Vec<(Continuation, String)>,
    cutoff: Option<Instant>,
) -> Vec<String> {
    if pages.is_empty() {
        return Vec::new();
    }
    let recovery = Recovery::new(&d.store, &d.requeue, &d.settings);
    // Paging stops a second before the cutoff: saving and handing on follow.
    let budget = Instant::now() + RECOVERY_PAGE_TIME;
    let deadline = Some(cutoff.map_or(budget, |c| budget.min(c - Duration::from_secs(1))));
    let done = join_all(pages.iter().map(|(next, message_id)| async {
        match within(cutoff, recovery.resume(next, deadline)).await {
            Some(Ok(())) => None,
            Some(Err(e)) => {
                tracing::error!(tenant_id = %next.tenant_id, webhook_id = %next.webhook_id, recovery_id = %next.recovery_id, error = %e, "a recovery page failed");
                Some(message_id.clone())
            }
            None => {
                tracing::warn!(recovery_id = %next.recovery_id, "invocation deadline reached during a recovery page");
                Some(message_id.clone())
            }
        }
    }))
    .await;
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use shared::Webhook;
    use shared::event::Event;
    use shared::event_log::StoredEvent;
    use shared::slow_lane::TargetedMessage;
    use shared::store::MemoryStore;
    use shared::store::prelude::*;
    use shared::webhook::now_utc;

    use crate::handle;
    use crate::local::{invocation, sqs_event};

    /// Keeps an event of the webhook's tenant at `at`, with one failed
    /// attempt to the webhook.
    async fn failed_event(
        store: &MemoryStore,
        webhook: &Webhook,
        id: &str,
        at: time::OffsetDateTime,
    ) {
        use shared::delivery::{Attempt, Outcome};
        use shared::delivery_log::DeliveryRecord;
        let raw = format!(
            r#"{{"id":"{id}","tenant_id":"{}","type":"async.completed","timestamp":"{}","data":{{}}}}"#,
            webhook.tenant_id,
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        );
        let event = Event::from_json(&raw).unwrap();
        store
            .put_event(&StoredEvent::new(
                &event,
                at,
                shared::event_log::Retention::WEEK,
            ))
            .await
            .unwrap();
        let failed = Attempt::bare(Outcome::ConnectError, None, 1);
        let record = DeliveryRecord::new(
            webhook.tenant_id.clone(),
            webhook.id,
            event.id.clone(),
            event.event_type,
            at,
            failed,
            7,
        );
        store.record_delivery(&record).await.unwrap();
    }

    /// The slow lane takes a recovery up where its message says, queues what is left within one call's budget, hands the
    /// rest on again, and marks the recovery done at the window's end. A
    /// message of a recovery replaced meanwhile does nothing; one from the
    /// producers' queue is refused.
    #[tokio::test]
    async fn a_recovery_message_queues_the_next_pages_and_hands_the_rest_on() {
        use shared::UrlPolicy;
        use shared::recovery::{EVENTS_PER_CALL, RecoveryState, Window};
        use shared::requeue::Requeue;
        use shared::slow_lane::{Continuation, RecoveryMessage};
        use shared::store::RecoveryWrite;

        use crate::testing::{Queued, dispatcher, settings, tenant, webhook};

        let sent = Queued::default();
        let mut settings = settings();
        settings.redeliveries_per_minute = 10_000;
        let d = dispatcher(&settings).with_requeue(Requeue::Memory(sent.clone()));
        let tenant = tenant();
        let now = now_utc();
        let webhook = webhook("https://hooks.example.com/x", UrlPolicy::default());
        d.store
            .create_webhook(&webhook, 50, &shared::audit::operator::created(&webhook))
            .await
            .unwrap();
        for i in 0..1_050 {
            let at = now - time::Duration::seconds(i + 10);
            failed_event(&d.store, &webhook, &format!("evt_{i:05}"), at).await;
        }
        let window = Window {
            since: now - time::Duration::hours(1),
            until: now,
        };
        let state = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        let unix = now.unix_timestamp();
        assert!(
            d.store
                .save_recovery(
                    &state,
                    RecoveryWrite::Start {
                        now: unix,
                        entry: &shared::audit::operator::recovery(
                            &state.tenant_id,
                            state.webhook_id
                        )
                    }
                )
                .await
                .unwrap()
                .applied()
        );
        let message = |after: Option<String>, id: &str| RecoveryMessage {
            recover: Continuation {
                tenant_id: tenant.clone(),
                webhook_id: webhook.id,
                recovery_id: id.to_owned(),
                window,
                after,
            },
        };
        let take = || -> (usize, Vec<RecoveryMessage>) {
            let drained: Vec<(String, std::time::Duration)> =
                sent.lock().unwrap().drain(..).collect();
            let targeted = drained
                .iter()
                .filter(|(b, _)| TargetedMessage::from_json(b).is_ok())
                .count();
            let rest = drained
                .iter()
                .filter_map(|(b, _)| RecoveryMessage::from_json(b).ok())
                .collect();
            (targeted, rest)
        };
        let run = |m: RecoveryMessage| {
            let batch = sqs_event([("r1".to_owned(), m.to_json())]);
            handle(&d, invocation(batch, 6000, "r"))
        };

        // A recovery replaced meanwhile: nothing.
        let stale = run(message(None, "rcv_other")).await.unwrap();
        assert!(stale.batch_item_failures.is_empty());
        assert_eq!(take().0, 0);

        let first = run(message(None, &state.recovery_id)).await.unwrap();
        assert!(first.batch_item_failures.is_empty());
        let (queued, rest) = take();
        assert_eq!((queued, rest.len()), (EVENTS_PER_CALL, 1));
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((saved.counts.queued, saved.done), (1_000, false));

        let second = run(rest.into_iter().next().unwrap()).await.unwrap();
        assert!(second.batch_item_failures.is_empty());
        let (queued, rest) = take();
        assert_eq!((queued, rest.len()), (50, 0));
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (saved.counts.queued, saved.counts.events_checked, saved.done),
            (1_050, 1_050, true)
        );

        // The tenant's checks for this minute (and the next) are spent: the
        // page waits for the next minute, with nothing queued or counted.
        let waiting = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        assert!(
            d.store
                .save_recovery(
                    &waiting,
                    RecoveryWrite::Start {
                        now: unix,
                        entry: &shared::audit::operator::recovery(
                            &waiting.tenant_id,
                            waiting.webhook_id
                        )
                    }
                )
                .await
                .unwrap()
                .applied()
        );
        let checks = shared::store::Allowance::RecoveryChecks;
        let limit = d.settings.recovery_checks_per_minute;
        let minute = checks.window_of(now_utc().unix_timestamp());
        for w in [minute, minute + 1] {
            // Whatever the pages above left of it.
            while d
                .store
                .take_allowance(&tenant, checks, w, 1_000, limit)
                .await
                .unwrap()
                .applied()
            {}
        }
        let paced = run(message(None, &waiting.recovery_id)).await.unwrap();
        assert!(paced.batch_item_failures.is_empty());
        let delays: Vec<std::time::Duration> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(b, _)| RecoveryMessage::from_json(b).is_ok())
            .map(|(_, delay)| *delay)
            .collect();
        assert_eq!(take().0, 0);
        assert_eq!(delays.len(), 1);
        assert!(
            delays[0] > std::time::Duration::ZERO
                && delays[0] <= std::time::Duration::from_secs(120)
        );
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((saved.counts.events_checked, saved.done), (0, false));

        // Nothing can be queued: the message comes back (SQS hands it over
        // again) and the recovery stays running.
        let mut down = dispatcher(&settings).with_requeue(Requeue::Disabled);
        down.settings.redeliveries_per_minute = 10_000;
        down.store
            .create_webhook(&webhook, 50, &shared::audit::operator::created(&webhook))
            .await
            .unwrap();
        let at = now - time::Duration::minutes(5);
        failed_event(&down.store, &webhook, "evt_x", at).await;
        let stuck = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        assert!(
            down.store
                .save_recovery(
                    &stuck,
                    RecoveryWrite::Start {
                        now: unix,
                        entry: &shared::audit::operator::recovery(
                            &stuck.tenant_id,
                            stuck.webhook_id
                        )
                    }
                )
                .await
                .unwrap()
                .applied()
        );
        let batch = sqs_event([("d1".to_owned(), message(None, &stuck.recovery_id).to_json())]);
        let back = handle(&down, invocation(batch, 6000, "d")).await.unwrap();
        assert_eq!(back.batch_item_failures.len(), 1);
        let saved = down
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!saved.done && saved.stopped.is_none());

        // From the producers' queue, it is forged.
        let lanes = dispatcher(&settings).with_requeue(Requeue::lanes(
            "https://sqs.local/000000000000/events",
            "https://sqs.local/000000000000/slow",
        ));
        let forged = crate::local::sqs_event_from(
            Some("https://sqs.local/000000000000/events"),
            [("f1".to_owned(), message(None, &state.recovery_id).to_json())],
        );
        let refused = handle(&lanes, invocation(forged, 6000, "f")).await.unwrap();
        assert_eq!(refused.batch_item_failures.len(), 1);
    }
}
