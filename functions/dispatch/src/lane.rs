//! The two lanes: which one a job's attempts are made in ([`lane_of`]),
//! which of them a main-lane batch hands to the slow lane ([`split`], sent
//! by [`crate::handover`]), and the slow-lane mark ([`Marks`]) that moves a
//! webhook from one to the other.
//!
//! The mark is kept by the attempts themselves: a main-lane attempt
//! still going after the slow threshold marks its webhook slow at that
//! moment (not at the 5 s deadline), so that batches starting after it hand
//! the webhook's attempts to the slow lane; a slow-lane attempt that ends
//! within the threshold clears the mark. Each is one conditional write, on a
//! change of state only, and at most one per webhook per invocation.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use shared::delivery::Attempt;
use shared::requeue::Requeue;
use shared::store::{Conditional, WebhookStore};
use shared::webhook::now_utc;
use shared::{Lane, Webhook, WebhookId};

use crate::Dispatcher;
use crate::batch::{Batch, Kind};
use crate::plan::{Nth, Planned};
use crate::unfinished::Unfinished;

/// The lane this invocation makes a job's attempts in: targeted messages
/// come from the slow lane's queue when there is one, producers' events
/// from the events queue (the main lane).
pub(crate) fn lane_of(kind: &Kind, requeue: &Requeue) -> Lane {
    match kind {
        Kind::Targeted(_) if requeue.has_slow_lane() => Lane::Slow,
        _ => Lane::Main,
    }
}

/// The lane a batch runs in, for its metrics: the slow lane when it holds a
/// recovery page or a job made in the slow lane.
pub(crate) fn of_batch(batch: &Batch, requeue: &Requeue) -> Lane {
    let slow = !batch.recoveries.is_empty()
        || batch
            .jobs
            .iter()
            .any(|j| lane_of(&j.kind, requeue) == Lane::Slow);
    if slow { Lane::Slow } else { Lane::Main }
}

/// A planned job's attempts, by where they are made.
pub(crate) struct ByLane<'p> {
    pub plan: &'p Planned<'p>,
    /// The lane this invocation makes the job's attempts in.
    pub lane: Lane,
    /// `Err` if the job was not planned (its messages come back).
    pub attempts: Result<Split<'p>, Unfinished>,
}

/// A job's attempts: made here and now, or handed over.
pub(crate) struct Split<'p> {
    /// Made here and now.
    pub here: Vec<(&'p Webhook, Nth)>,
    /// Handed to the slow lane: their webhooks are marked slow.
    pub handed_over: Vec<(&'p Webhook, Nth)>,
}

/// Splits a plan's attempts between this lane and the slow lane. A
/// producer's event (the main lane) hands over the attempts of webhooks
/// marked slow or throttled, when a slow lane exists (a throttled
/// webhook's attempts may wait for their slot, and wait there); a targeted
/// message (the slow lane) makes its attempt itself.
pub(crate) fn split<'p>(plan: &'p Planned<'p>, requeue: &Requeue) -> ByLane<'p> {
    let lane = lane_of(&plan.job.kind, requeue);
    let handing_over = lane == Lane::Main && requeue.has_slow_lane();
    let attempts = plan.targets.as_ref().map_err(|why| *why).map(|targets| {
        let (handed_over, here) = targets.iter().copied().partition(|(w, _)| {
            handing_over && (w.slow_since.is_some() || w.throttle_rate.is_some())
        });
        Split { here, handed_over }
    });
    ByLane {
        plan,
        lane,
        attempts,
    }
}

/// What an invocation writes on a webhook at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mark {
    /// The slow-lane mark.
    Slow,
    /// The failing streak ([`crate::streak`]).
    Streak,
}

/// The marks this invocation has already written (or tried to).
#[derive(Default)]
pub struct Marks {
    written: Mutex<HashSet<(WebhookId, Mark)>>,
}

impl Marks {
    /// True the first time this invocation asks for `mark` of `id`.
    pub(crate) fn first(&self, id: WebhookId, mark: Mark) -> bool {
        self.written
            .lock()
            .map(|mut w| w.insert((id, mark)))
            .unwrap_or(false)
    }

    /// Makes the attempt; on the main lane, marks the webhook slow as soon
    /// as the attempt outlasts the webhook's threshold (the configured one,
    /// or less for a webhook that has been answering fast: [`crate::pace`]),
    /// while it goes on.
    pub async fn watch<S: WebhookStore>(
        &self,
        d: &Dispatcher<S>,
        webhook: &Webhook,
        lane: Lane,
        attempt: impl Future<Output = Attempt>,
    ) -> Attempt {
        let watched =
            lane == Lane::Main && webhook.slow_since.is_none() && d.requeue.has_slow_lane();
        let done = if watched {
            let threshold = d
                .pace
                .threshold(webhook.id, d.settings.slow_threshold, Instant::now());
            let mut attempt = std::pin::pin!(attempt);
            match tokio::time::timeout(threshold, &mut attempt).await {
                Ok(done) => done,
                Err(_) => {
                    let (done, ()) =
                        futures_util::future::join(attempt, self.set(d, webhook, true)).await;
                    done
                }
            }
        } else {
            attempt.await
        };
        d.pace.record(webhook.id, &done, Instant::now());
        done
    }

    /// After an attempt at a webhook marked slow (on the slow lane, or on the
    /// main lane when there is no slow lane): an answer (any answer, or a
    /// refusal) within the threshold clears the mark.
    pub async fn after<S: WebhookStore>(
        &self,
        d: &Dispatcher<S>,
        webhook: &Webhook,
        attempt: &Attempt,
    ) {
        let quick = shared::lane::is_quick(attempt, d.settings.slow_threshold);
        if quick && webhook.slow_since.is_some() {
            self.set(d, webhook, false).await;
        }
    }

    async fn set<S: WebhookStore>(&self, d: &Dispatcher<S>, webhook: &Webhook, slow: bool) {
        if !self.first(webhook.id, Mark::Slow) {
            return;
        }
        let since = slow.then(now_utc);
        match d
            .store
            .set_slow(&webhook.tenant_id, webhook.id, since)
            .await
        {
            Ok(Conditional::Applied) if slow => tracing::warn!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                threshold_ms = d.settings.slow_threshold.as_millis() as u64,
                "webhook marked slow: its attempts go through the slow lane"
            ),
            Ok(Conditional::Applied) => tracing::info!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                "webhook no longer slow: its attempts go through the main lane"
            ),
            // Someone else changed it first, or the webhook is gone.
            Ok(Conditional::Refused) => {}
            Err(e) => tracing::error!(
                webhook_id = %webhook.id,
                error = %e,
                "writing the slow-lane mark failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use shared::recovery::Window;
    use shared::requeue::Requeue;
    use shared::slow_lane::{Continuation, Target, TargetedMessage};
    use shared::webhook::now_utc;
    use shared::{Lane, WebhookId};

    use super::{lane_of, of_batch};
    use crate::batch::{Batch, Kind};
    use crate::testing::{event, job, records_of, run, setup, slow_since, tenant};

    /// Targeted messages are made in the slow lane when there is one;
    /// producers' events in the main lane; a batch with a recovery page is
    /// the slow lane's.
    #[test]
    fn the_lane_is_the_queues() {
        let lanes = Requeue::lanes("https://sqs.local/1/events", "https://sqs.local/1/slow");
        let retry = Kind::Targeted(Target::retry(WebhookId::generate(), 2, None));
        assert_eq!(lane_of(&retry, &lanes), Lane::Slow);
        assert_eq!(lane_of(&retry, &Requeue::Disabled), Lane::Main);
        assert_eq!(lane_of(&Kind::Fanout, &lanes), Lane::Main);

        let mut batch = Batch {
            jobs: vec![job(Kind::Fanout, "m0")],
            recoveries: Vec::new(),
            invalid: Vec::new(),
        };
        assert_eq!(of_batch(&batch, &lanes), Lane::Main);
        let page = Continuation {
            tenant_id: tenant(),
            webhook_id: WebhookId::generate(),
            recovery_id: "rcv_1".to_owned(),
            window: Window {
                since: now_utc(),
                until: now_utc(),
            },
            after: None,
        };
        batch.recoveries.push((page, "m1".to_owned()));
        assert_eq!(of_batch(&batch, &Requeue::Disabled), Lane::Slow);
    }

    #[tokio::test]
    async fn a_hanging_webhook_moves_to_the_slow_lane_and_back() {
        let (d, webhook, receiver, queued) = setup(true).await;

        // 1. Main lane, unmarked: the attempt hangs, is marked at the
        //    threshold and recorded as a timeout made by the main lane.
        let first = event();
        assert!(run(&d, &[first.to_json()]).await.is_empty());
        assert!(slow_since(&d, &webhook).await.is_some(), "marked slow");
        let records = records_of(&d, &webhook, &first).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "timeout");
        assert_eq!(records[0].lane, Lane::Main);

        // 2. Main lane, marked: nothing is sent; the attempt is handed over.
        let second = event();
        let started = std::time::Instant::now();
        assert!(run(&d, &[second.to_json()]).await.is_empty());
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "the main lane did not wait"
        );
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
        let handed: Vec<(String, Duration)> = std::mem::take(&mut *queued.lock().unwrap());
        assert_eq!(handed.len(), 1);
        let message = TargetedMessage::from_json(&handed[0].0).unwrap();
        assert_eq!(message.target.attempt, 1);
        assert_eq!(message.event.id, second.id);
        let records = records_of(&d, &webhook, &second).await;
        assert!(records.is_empty(), "handed over, not attempted");

        // 3. Slow lane, the endpoint has recovered: delivered, recorded as the
        //    slow lane's, and the mark is cleared.
        receiver.hang.store(false, Ordering::SeqCst);
        assert!(run(&d, &[handed[0].0.clone()]).await.is_empty());
        let records = records_of(&d, &webhook, &second).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "delivered");
        assert_eq!(records[0].lane, Lane::Slow);
        assert!(slow_since(&d, &webhook).await.is_none(), "mark cleared");

        // 4. Back on the main lane: delivered there, nothing handed over.
        let third = event();
        assert!(run(&d, &[third.to_json()]).await.is_empty());
        assert!(queued.lock().unwrap().is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
    }

    /// The negative control: without a slow lane nothing is marked or handed
    /// over, and the main lane waits on the hanging endpoint every time.
    #[tokio::test]
    async fn without_a_slow_lane_the_main_lane_waits() {
        let (d, webhook, receiver, _) = setup(false).await;
        for _ in 0..2 {
            let started = std::time::Instant::now();
            assert!(run(&d, &[event().to_json()]).await.is_empty());
            assert!(started.elapsed() >= Duration::from_millis(550));
        }
        assert!(slow_since(&d, &webhook).await.is_none());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 2);
    }

    /// A slow-lane attempt that is itself slow keeps the mark, and a second
    /// slow-lane message for the same webhook in one batch writes nothing more.
    #[tokio::test]
    async fn a_slow_attempt_on_the_slow_lane_keeps_the_mark() {
        let (d, webhook, _receiver, queued) = setup(true).await;
        assert!(run(&d, &[event().to_json()]).await.is_empty());
        let since = slow_since(&d, &webhook).await.expect("marked");
        assert!(
            run(&d, &[event().to_json(), event().to_json()])
                .await
                .is_empty()
        );
        let handed: Vec<String> = queued.lock().unwrap().drain(..).map(|(m, _)| m).collect();
        assert_eq!(handed.len(), 2);
        assert!(run(&d, &handed).await.is_empty());
        assert_eq!(slow_since(&d, &webhook).await, Some(since), "unchanged");
    }
}
