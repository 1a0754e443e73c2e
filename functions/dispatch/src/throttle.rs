//! The throttle stage of a batch's attempts at throttled webhooks. The
//! batch's attempts at one webhook reserve their slots together (one write
//! for them all, by the first of them to get here); each is then made at
//! its slot, waiting in place while the invocation has the time, or goes
//! back to the queue until its slot, the webhook's send-backs together (ten
//! to a request). Nothing is dropped or failed for waiting, and a waiting
//! attempt holds no batch: it is a delayed message, not a sleep. Other
//! attempts of the batch never wait for this stage.

use std::collections::HashMap;
use std::time::Duration;

use shared::event::Event;
use shared::slow_lane::{Target, TargetedMessage};
use shared::store::WebhookStore;
use shared::throttle::{LATE_MS, MAX_WAIT_MS, SlotRequest, ThrottleRate, Turn, turn, unix_ms};
use shared::webhook::now_utc;
use shared::{Webhook, WebhookId};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::Dispatcher;
use crate::deadline::RECORD_MARGIN;
use crate::plan::Nth;
use crate::schedule::{Wait, after, send_back};
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

/// The batch's attempts at throttled webhooks, by webhook.
#[derive(Default)]
pub(crate) struct Throttle<'p> {
    groups: HashMap<WebhookId, Group<'p>>,
}

/// The batch's attempts at one throttled webhook.
struct Group<'p> {
    webhook: &'p Webhook,
    rate: ThrottleRate,
    attempts: Vec<(&'p Event, Nth)>,
    /// What each attempt does about its slot, decided once for them all.
    turns: OnceCell<Turns>,
    /// Whether each of [`Turns::later`] went back, sent once for them all.
    sent: OnceCell<Vec<Result<(), Unfinished>>>,
}

/// What the attempts at one webhook do about their slots.
struct Turns {
    /// Each attempt's, in the group's order.
    each: Vec<Fate>,
    /// The attempts that go back to the queue.
    later: Vec<(TargetedMessage, Wait)>,
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Made at this slot (Unix ms), once it comes.
    At(i64),
    /// Goes back to the queue: the place in [`Turns::later`].
    Later(usize),
    Gone,
    NotReserved,
}

impl<'p> Throttle<'p> {
    /// Notes an attempt the batch makes here; only those at a throttled
    /// webhook concern the throttle.
    pub(crate) fn add(&mut self, webhook: &'p Webhook, event: &'p Event, nth: Nth) {
        let Some(rate) = webhook.throttle_rate else {
            return;
        };
        self.groups
            .entry(webhook.id)
            .or_insert_with(|| Group {
                webhook,
                rate,
                attempts: Vec::new(),
                turns: OnceCell::new(),
                sent: OnceCell::new(),
            })
            .attempts
            .push((event, nth));
    }

    /// Waits for the attempt's slot: in place while the invocation has the
    /// time (up to [`MAX_WAIT_MS`], with the attempt's whole deadline and
    /// its record still after it), otherwise on the queue, due back a
    /// second before its slot. The first attempt at a webhook to get here
    /// reserves the slots of all the batch's attempts at it (one write;
    /// none for those whose message holds its slot already). `Err` when its
    /// slot could not be reserved or its message not sent back: the message
    /// comes back and the attempt is tried again.
    pub(crate) async fn admit<S: WebhookStore>(
        &self,
        d: &Dispatcher<S>,
        (webhook, event, nth): (&Webhook, &Event, Nth),
        cutoff: Option<Instant>,
    ) -> Result<Admitted, Unfinished> {
        let Some(group) = self.groups.get(&webhook.id) else {
            return Err(unnoted(webhook, event));
        };
        let turns = group.turns.get_or_init(|| group.reserve(d, cutoff)).await;
        let place = group.attempts.iter().position(|(e, n)| {
            e.id == event.id && n.number == nth.number && n.manual == nth.manual
        });
        match place.and_then(|i| turns.each.get(i)).copied() {
            None => Err(unnoted(webhook, event)),
            Some(Fate::At(slot)) => {
                let wait = slot - unix_ms(now_utc());
                tokio::time::sleep(Duration::from_millis(wait.max(0).unsigned_abs())).await;
                Ok(Admitted::Now)
            }
            Some(Fate::Later(i)) => {
                let sent = group.sent.get_or_init(|| group.send_back(d, turns)).await;
                sent.get(i).copied().unwrap_or(Ok(()))?;
                Ok(Admitted::SentBack)
            }
            Some(Fate::Gone) => Ok(Admitted::Gone),
            Some(Fate::NotReserved) => Err(Unfinished::NotReserved),
        }
    }
}

/// An attempt at a throttled webhook that the batch did not note: never
/// made without a slot (its message comes back).
fn unnoted(webhook: &Webhook, event: &Event) -> Unfinished {
    tracing::error!(webhook_id = %webhook.id, event_id = %event.id, "a throttled attempt had no place in its batch's reservation");
    Unfinished::NotReserved
}

impl Group<'_> {
    /// Reserves the slots of the attempts that hold none (or came back late
    /// and take a new one, once), then decides each attempt's turn.
    async fn reserve<S: WebhookStore>(&self, d: &Dispatcher<S>, cutoff: Option<Instant>) -> Turns {
        let now = unix_ms(now_utc());
        let late = |slot| now - slot > LATE_MS;
        // Each attempt's slot, or `None` when it takes a new one (and
        // whether it has taken one before).
        let held: Vec<(Option<i64>, bool)> = self
            .attempts
            .iter()
            .map(|(_, nth)| match nth.slot {
                // Back on time for the slot it holds (or early: it waits
                // below), or late a second time: made at once rather than
                // sent to the back again (a slow store or queue must not
                // keep it waiting forever).
                Some(slot) if !late(slot) || nth.retaken => (Some(slot), nth.retaken),
                // Back late (the queue or the store was slow): made now it
                // would crowd the deliveries of the slots after its own, so
                // it takes a new slot, once; its own stays unused.
                Some(_) => (None, true),
                None => (None, false),
            })
            .collect();
        let count = held.iter().filter(|(slot, _)| slot.is_none()).count();
        // A batch holds at most a few hundred attempts.
        let first = match u32::try_from(count).unwrap_or(u32::MAX) {
            0 => Ok(None),
            count => self.reserve_slots(d, count).await,
        };
        let may_wait = cutoff.map_or(MAX_WAIT_MS, |cutoff| {
            let left = cutoff.saturating_duration_since(Instant::now());
            let after = left.saturating_sub(RECORD_MARGIN + d.settings.delivery_timeout);
            i64::try_from(after.as_millis()).unwrap_or(MAX_WAIT_MS)
        });
        let now = unix_ms(now_utc());
        let gap = self.rate.gap_ms();
        let mut next = 0i64;
        let mut turns = Turns {
            each: Vec::with_capacity(held.len()),
            later: Vec::new(),
        };
        for ((event, nth), (slot, retaken)) in self.attempts.iter().zip(held) {
            let slot = match (slot, first) {
                (Some(slot), _) => slot,
                (None, Ok(Some(first))) => {
                    next += 1;
                    first + (next - 1) * gap
                }
                (None, Ok(None)) => {
                    turns.each.push(Fate::Gone);
                    continue;
                }
                (None, Err(_)) => {
                    turns.each.push(Fate::NotReserved);
                    continue;
                }
            };
            match turn(slot, now, may_wait) {
                Turn::Now { .. } => turns.each.push(Fate::At(slot)),
                Turn::Later {
                    pause_ms,
                    delay_secs,
                } => {
                    let target = Target {
                        slot: Some(slot),
                        retaken,
                        ..Target::now(self.webhook.id, nth.number, nth.manual)
                    };
                    let (message, delay) = after(event, target, Duration::from_secs(delay_secs));
                    let pause = Duration::from_millis(pause_ms.unsigned_abs());
                    turns.each.push(Fate::Later(turns.later.len()));
                    turns.later.push((message, Wait { delay, pause }));
                }
            }
        }
        turns
    }

    /// Reserves `count` slots (one write): the first, or `None` when the
    /// webhook is gone.
    async fn reserve_slots<S: WebhookStore>(
        &self,
        d: &Dispatcher<S>,
        count: u32,
    ) -> Result<Option<i64>, Unfinished> {
        let now = now_utc();
        // Deliveries were waiting when the plan read the webhook (the slot
        // only moves forward): the reservation adds to the queue.
        let waiting = self
            .webhook
            .throttle_next
            .is_some_and(|next| next > unix_ms(now));
        let want = SlotRequest {
            rate: self.rate,
            count,
            now,
            waiting,
        };
        d.store
            .reserve_slots(&self.webhook.tenant_id, self.webhook.id, want)
            .await
            .map_err(|e| {
                tracing::error!(webhook_id = %self.webhook.id, error = %e, "reserving throttle slots failed");
                Unfinished::NotReserved
            })
    }

    /// Sends the attempts whose slots are too far back to the queue, together.
    async fn send_back<S>(&self, d: &Dispatcher<S>, turns: &Turns) -> Vec<Result<(), Unfinished>> {
        let sent = send_back(d, &turns.later).await;
        sent.into_iter()
            .zip(&turns.later)
            .map(|(sent, (message, wait))| match sent {
                Ok(()) => {
                    tracing::debug!(webhook_id = %self.webhook.id, event_id = %message.event.id, delay_secs = wait.delay.as_secs(), "throttled attempt waits for its slot");
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(webhook_id = %self.webhook.id, event_id = %message.event.id, error = %e, "sending a throttled attempt back to the queue failed");
                    Err(Unfinished::NotForwarded)
                }
            })
            .collect()
    }
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
        let want = |now, count| SlotRequest {
            rate,
            count,
            now,
            waiting: false,
        };
        let first = store
            .reserve_slots(t, id, want(now, 1))
            .await
            .unwrap()
            .unwrap();
        let second = store
            .reserve_slots(t, id, want(now, 1))
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
        store.reserve_slots(t, id, want(later, 1)).await.unwrap();
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
        let three = SlotRequest {
            rate,
            count: 3,
            now: now_utc(),
            waiting: false,
        };
        d.store()
            .reserve_slots(&webhook.tenant_id, webhook.id, three)
            .await
            .unwrap();
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
