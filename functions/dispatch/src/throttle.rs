//! The throttle stage of an attempt at a throttled webhook: reserve its
//! slot (unless it holds one), then make it now or send it back to the
//! queue until its slot. Nothing is dropped or failed for waiting, and a
//! waiting attempt holds no batch: it is a delayed message, not a sleep.

use std::time::Duration;

use shared::Webhook;
use shared::event::Event;
use shared::slow_lane::Target;
use shared::store::WebhookStore;
use shared::throttle::{LATE_MS, MAX_WAIT_MS, ThrottleRate, Turn, turn, unix_ms};
use shared::webhook::now_utc;

use tokio::time::Instant;

use crate::Dispatcher;
use crate::deadline::RECORD_MARGIN;
use crate::lane::{Mark, Marks};
use crate::plan::Nth;
use crate::schedule::schedule;
use crate::unfinished::Unfinished;

/// What the throttle made of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Its slot has come: make it.
    Now,
    /// Sent back to the queue, to be made at its slot.
    SentBack,
    /// The webhook was deleted meanwhile: nothing to make.
    Gone,
}

/// Reserves the attempt's slot (one write; none when the message carries
/// its slot already) and makes it wait for it: in place while the
/// invocation has the time (up to [`shared::throttle::MAX_WAIT_MS`], with
/// the attempt's whole deadline and its record after it), otherwise on the
/// queue, due back a second before its slot. `Err` when the slot could
/// not be reserved or the message not sent back: the message comes back
/// and the attempt is tried again.
pub(crate) async fn admit<S: WebhookStore>(
    d: &Dispatcher<S>,
    (webhook, rate): (&Webhook, ThrottleRate),
    event: &Event,
    nth: Nth,
    marks: &Marks,
    cutoff: Option<Instant>,
) -> Result<Admitted, Unfinished> {
    let late = |slot| unix_ms(now_utc()) - slot > LATE_MS;
    let mut retaken = nth.retaken;
    let slot = match nth.slot {
        // Back on time for the slot it holds (or early: it waits below),
        // or late a second time: made at once rather than sent to the back
        // again (a slow store or queue must not keep it waiting forever).
        Some(slot) if !late(slot) || nth.retaken => Some(slot),
        // Back late (the queue or the store was slow): made now it would
        // crowd the deliveries of the slots after its own, so it takes a
        // new slot, once; its own stays unused.
        Some(_) => {
            retaken = true;
            reserve(d, webhook, rate, true).await?
        }
        None => {
            // Deliveries were waiting when the plan read the webhook (the
            // slot only moves forward), or another attempt of this batch
            // reserves beside this one: the reservation adds to the queue.
            let waiting = webhook
                .throttle_next
                .is_some_and(|next| next > unix_ms(now_utc()))
                || !marks.first(webhook.id, Mark::Slot);
            reserve(d, webhook, rate, waiting).await?
        }
    };
    let Some(slot) = slot else {
        return Ok(Admitted::Gone);
    };
    let may_wait = cutoff.map_or(MAX_WAIT_MS, |cutoff| {
        let left = cutoff.saturating_duration_since(Instant::now());
        let after = left.saturating_sub(RECORD_MARGIN + d.settings.delivery_timeout);
        i64::try_from(after.as_millis()).unwrap_or(MAX_WAIT_MS)
    });
    match turn(slot, unix_ms(now_utc()), may_wait) {
        Turn::Now { wait_ms } => {
            tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
            Ok(Admitted::Now)
        }
        Turn::Later {
            pause_ms,
            delay_secs,
        } => {
            tokio::time::sleep(Duration::from_millis(pause_ms.unsigned_abs())).await;
            let target = Target {
                slot: Some(slot),
                retaken,
                ..Target::now(webhook.id, nth.number, nth.manual)
            };
            schedule(d, event, target, Duration::from_secs(delay_secs))
                .await
                .map_err(|e| {
                    tracing::error!(webhook_id = %webhook.id, event_id = %event.id, error = %e, "sending a throttled attempt back to the queue failed");
                    Unfinished::NotForwarded
                })?;
            tracing::debug!(webhook_id = %webhook.id, event_id = %event.id, delay_secs, "throttled attempt waits for its slot");
            Ok(Admitted::SentBack)
        }
    }
}

/// Reserves the webhook's next slot (`None`: the webhook is gone).
async fn reserve<S: WebhookStore>(
    d: &Dispatcher<S>,
    webhook: &Webhook,
    rate: ThrottleRate,
    waiting: bool,
) -> Result<Option<i64>, Unfinished> {
    d.store
        .reserve_slot(&webhook.tenant_id, webhook.id, rate, now_utc(), waiting)
        .await
        .map_err(|e| {
            tracing::error!(webhook_id = %webhook.id, error = %e, "reserving a throttle slot failed");
            Unfinished::NotReserved
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use shared::store::WebhookStore;
    use shared::throttle::ThrottleRate;

    use super::*;
    use crate::testing::{event, records_of, run, setup};

    /// Six events at a webhook throttled to 2 a second: the main lane hands
    /// them all over; the slow lane makes each at its slot, at most 0.5 s
    /// apart, sending the later ones back to the queue (unrecorded, not
    /// failed) until their slot; each is delivered once.
    #[tokio::test]
    async fn a_throttled_webhook_takes_its_events_at_its_rate() {
        let (d, mut webhook, receiver, queued) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        webhook.slow_since = None;
        webhook.throttle_rate = Some(ThrottleRate::new(2).unwrap());
        d.store()
            .update_webhook(
                &webhook,
                webhook.updated_at,
                &shared::audit::operator::updated(&webhook, &webhook),
            )
            .await
            .unwrap();

        let events: Vec<_> = (0..6).map(|_| event()).collect();
        let bodies: Vec<String> = events.iter().map(|e| e.to_json()).collect();
        assert!(run(&d, &bodies).await.is_empty());
        assert_eq!(
            receiver.requests.load(Ordering::SeqCst),
            0,
            "all handed over"
        );

        let started = Instant::now();
        let mut sent_back = 0;
        while receiver.requests.load(Ordering::SeqCst) < 6
            && started.elapsed() < Duration::from_secs(10)
        {
            let messages: Vec<(String, Duration)> = std::mem::take(&mut *queued.lock().unwrap());
            if messages.iter().any(|(m, _)| m.contains("\"slot\"")) {
                sent_back += 1;
            }
            // The memory queue does not delay: wait for the soonest.
            if let Some(soonest) = messages.iter().map(|(_, delay)| *delay).min() {
                tokio::time::sleep(soonest).await;
            }
            let bodies: Vec<String> = messages.into_iter().map(|(m, _)| m).collect();
            assert!(
                run(&d, &bodies).await.is_empty(),
                "nothing fails for waiting"
            );
        }
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 6);
        assert!(sent_back > 0, "later slots waited on the queue");
        // Six slots 0.5 s apart: the last no sooner than 2.5 s after the first.
        assert!(
            started.elapsed() >= Duration::from_millis(2400),
            "{:?}",
            started.elapsed()
        );
        for e in &events {
            let records = records_of(&d, &webhook, e).await;
            assert_eq!(records.len(), 1, "each event delivered once");
            assert_eq!(records[0].outcome.as_str(), "delivered");
        }
    }

    /// The negative control: unthrottled, the same events go out at once,
    /// with no reservation written.
    #[tokio::test]
    async fn an_unthrottled_webhook_reserves_nothing() {
        let (d, mut webhook, receiver, queued) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        webhook.slow_since = None;
        d.store()
            .update_webhook(
                &webhook,
                webhook.updated_at,
                &shared::audit::operator::updated(&webhook, &webhook),
            )
            .await
            .unwrap();
        let bodies: Vec<String> = (0..6).map(|_| event().to_json()).collect();
        assert!(run(&d, &bodies).await.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 6);
        assert!(queued.lock().unwrap().is_empty());
        let after = d
            .store()
            .get_webhook(&webhook.tenant_id, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.throttle_next, None);
    }

    /// While attempts wait for their slot the webhook says since when; a
    /// reservation that finds none waiting clears it.
    #[tokio::test]
    async fn throttled_since_shows_while_attempts_wait() {
        let (d, mut webhook, _receiver, _) = setup(true).await;
        let rate = ThrottleRate::new(1).unwrap();
        let store = d.store();
        webhook.throttle_rate = Some(rate);
        store
            .update_webhook(
                &webhook,
                webhook.updated_at,
                &shared::audit::operator::updated(&webhook, &webhook),
            )
            .await
            .unwrap();
        let now = now_utc();
        let (t, id) = (&webhook.tenant_id, webhook.id);
        let first = store
            .reserve_slot(t, id, rate, now, false)
            .await
            .unwrap()
            .unwrap();
        let second = store
            .reserve_slot(t, id, rate, now, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second - first, 1000);
        let w = store.get_webhook(t, id).await.unwrap().unwrap();
        assert_eq!(w.throttled(now), Some(now));
        assert_eq!(
            w.throttled(now + time::Duration::seconds(2)),
            None,
            "the wait is over"
        );
        let later = now + time::Duration::seconds(5);
        store.reserve_slot(t, id, rate, later, false).await.unwrap();
        let w = store.get_webhook(t, id).await.unwrap().unwrap();
        assert_eq!(w.throttled_since, None);
    }

    /// An attempt that comes back more than LATE_MS after its slot takes a
    /// new one, once (here behind three waiting ones, so it goes back to
    /// the queue); one back on time, or late a second time, is made at once.
    #[tokio::test]
    async fn an_attempt_back_late_takes_a_new_slot() {
        let (d, mut webhook, receiver, queued) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        let rate = ThrottleRate::new(1).unwrap();
        webhook.throttle_rate = Some(rate);
        d.store()
            .update_webhook(
                &webhook,
                webhook.updated_at,
                &shared::audit::operator::updated(&webhook, &webhook),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            d.store()
                .reserve_slot(&webhook.tenant_id, webhook.id, rate, now_utc(), false)
                .await
                .unwrap();
        }
        let back = |slot_from_now: i64, retaken: bool| {
            let target = Target {
                slot: Some(unix_ms(now_utc()) + slot_from_now),
                retaken,
                ..Target::now(webhook.id, 1, false)
            };
            shared::slow_lane::TargetedMessage {
                target,
                event: event(),
            }
            .to_json()
        };
        assert!(run(&d, &[back(-5_000, false)]).await.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 0, "not made late");
        let requeued = std::mem::take(&mut *queued.lock().unwrap());
        assert_eq!(requeued.len(), 1, "back on the queue with a new slot");
        let again = shared::slow_lane::TargetedMessage::from_json(&requeued[0].0).unwrap();
        assert!(again.target.retaken, "marked: it took a new slot once");
        assert!(run(&d, &[back(-100, false)]).await.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1, "on time: made");
        // Late a second time: made at once, not sent to the back again.
        assert!(run(&d, &[back(-5_000, true)]).await.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 2);
        assert!(queued.lock().unwrap().is_empty());
    }
}
