//! Bulk recovery (`POST /webhooks/{id}/recover`): every kept event of a
//! window that a webhook subscribes to and whose last attempt to it did not
//! end `delivered`, sent again as a manual attempt (same `webhook-id`: the
//! event's id).
//!
//! A window is worked through in pages of the tenant's events, newest
//! first, in named stages: [`scan`](Recovery::run) a page, [`verdict`] per
//! event from its attempts to the webhook, take the tenant's redelivery
//! allowance, claim a manual attempt number per event
//! ([`RecoveryStore::claim_recovery_attempt`]: none while one queued lately is not
//! recorded yet, which is what makes a repeated call queue nothing new), and
//! queue the attempts on the slow lane. One call checks at most
//! [`EVENTS_PER_CALL`] events; the rest of a window travels as a
//! [`RecoveryMessage`] on the slow lane's queue, which the dispatcher takes
//! up where the call stopped, so a window of any size neither outlives a
//! function's timeout nor fills its memory.

pub mod state;

use std::time::Duration;

use futures_util::future::join_all;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::delivery::Outcome;
use crate::delivery_log::{DeliveryRecord, sortable_time};
use crate::event_log::{EventFilter, PayloadState, StoredEvent};
use crate::requeue::Requeue;
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::slow_lane::{Continuation, RecoveryMessage, Target, TargetedMessage};
use crate::store::{
    Allowance, AllowanceStore, Conditional, DeliveryStore, EventStore, RecoveryStore,
    RecoveryWrite, StoreError, WebhookStore,
};
use crate::{Status, TenantId, Webhook};
pub use state::{Counts, PENDING_SECS, RecoveryState, Window};

/// Events read per store query. At most this many events' data (350 KB
/// each at most) are in memory at once.
pub const PAGE_EVENTS: usize = 100;

/// Events one call checks at most before it hands the rest of the window on
/// (the api's answer, then each recovery message): about 10 queries of the
/// tenant's events and 1,000 small ones of their attempts.
pub const EVENTS_PER_CALL: usize = 1_000;

/// Where one event stands with the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its last attempt did not end `delivered`: send it again. The number
    /// of manual attempts recorded (for the claim's pending check).
    Resend { manual_recorded: u32 },
    /// Its last attempt was delivered.
    Delivered,
    /// Its last attempt failed and scheduled an automatic retry, due after
    /// the cutoff: that retry sends it.
    RetryPending,
    /// Never attempted to this webhook: it was inactive, not subscribed or
    /// not registered yet when the event came, or the first attempt is
    /// still on its way. A recovery resends; it does not send for the first
    /// time.
    NeverAttempted,
}

/// The verdict from an event's attempts to one webhook (any order): the
/// last one is the latest started, the higher number on a tie. A retry it
/// scheduled for `retry_cutoff` (a [`crate::delivery_log::sortable_time`])
/// or later is pending; one due before it is taken as lost.
pub fn verdict(attempts: &[DeliveryRecord], retry_cutoff: &str) -> Verdict {
    let Some(last) = attempts
        .iter()
        .max_by(|a, b| (&a.attempted_at, a.attempt).cmp(&(&b.attempted_at, b.attempt)))
    else {
        return Verdict::NeverAttempted;
    };
    if last.outcome == Outcome::Delivered {
        return Verdict::Delivered;
    }
    if last
        .next_attempt_at
        .as_deref()
        .is_some_and(|due| due >= retry_cutoff)
    {
        return Verdict::RetryPending;
    }
    let manual_recorded = attempts
        .iter()
        .map(|a| a.attempt)
        .filter(|&n| n >= FIRST_MANUAL_ATTEMPT)
        .max()
        .map_or(0, |n| n - (FIRST_MANUAL_ATTEMPT - 1));
    Verdict::Resend { manual_recorded }
}

/// What to do with the events selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Count them only (the dashboard's confirmation).
    Preview,
    /// Queue a manual attempt of each.
    Queue,
}

/// Where a window stands after a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Next {
    /// No page is left.
    #[default]
    Done,
    /// The next page starts after this sort key (a
    /// [`StoredEvent::sort_key`]); `None`: at the window's newest end.
    Page(Option<String>),
}

/// What one run of pages did, and where the window stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    pub counts: Counts,
    pub next: Next,
    /// The run stopped because one of the tenant's allowances (manual
    /// attempts, events checked) is spent until this Unix time: the next
    /// page waits until then.
    pub allowance_until: Option<i64>,
}

/// Why a run could not go on (its pages so far stand).
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("queueing recovered attempts: {0}")]
    Queue(String),
}

/// What a recovery needs: the store, the slow lane, and the tenant's
/// allowances per minute: manual attempts queued, events checked.
pub struct Recovery<'a, S> {
    pub store: &'a S,
    pub requeue: &'a Requeue,
    pub per_minute: u32,
    pub checks_per_minute: u32,
}

impl<'a, S> Recovery<'a, S> {
    /// With the allowances `settings` give.
    pub fn new(store: &'a S, requeue: &'a Requeue, settings: &crate::Settings) -> Self {
        Self {
            store,
            requeue,
            per_minute: settings.redeliveries_per_minute,
            checks_per_minute: settings.recovery_checks_per_minute,
        }
    }
}

impl<S> Recovery<'_, S>
where
    S: WebhookStore + EventStore + DeliveryStore + RecoveryStore + AllowanceStore,
{
    /// Works through the window from `after` (its start when `None`) until
    /// it is done, `budget` events are checked, the allowance is spent, or
    /// the next page would end after `deadline` (judged by the longest page
    /// so far), whichever comes first. The first page always runs.
    pub async fn run(
        &self,
        webhook: &Webhook,
        window: &Window,
        mut after: Option<String>,
        mode: Mode,
        budget: usize,
        deadline: Option<Instant>,
    ) -> Result<Run, RecoveryError> {
        let filter = EventFilter {
            subject: None,
            event_type: None,
            since: Some(window.since),
            until: Some(window.until),
        };
        // A page never asks for more than one minute's allowance.
        let page_size = PAGE_EVENTS.min(usize::try_from(self.per_minute).unwrap_or(PAGE_EVENTS));
        let mut run = Run::default();
        // The longest page so far: one starts only if it would end in time.
        let mut longest = Duration::ZERO;
        loop {
            let started = Instant::now();
            let page = self
                .store
                .list_events(&webhook.tenant_id, &filter, page_size, after.clone())
                .await?;
            // A page counts once it is done: one that waits for the
            // allowance is read again.
            let mut counts = Counts {
                events_checked: u64::try_from(page.items.len()).unwrap_or(u64::MAX),
                ..Counts::default()
            };
            let chosen = self.select(webhook, page.items, &mut counts).await?;
            if mode == Mode::Queue && !chosen.is_empty() {
                let n = u32::try_from(chosen.len()).unwrap_or(u32::MAX);
                let redeliveries = (Allowance::Redeliveries, self.per_minute);
                if let Some(until) = self.take(&webhook.tenant_id, redeliveries, n).await? {
                    // This page again, once the allowance is back.
                    run.allowance_until = Some(until);
                    run.next = Next::Page(after);
                    return Ok(run);
                }
                self.queue(webhook, chosen, &mut counts).await?;
            }
            run.counts.add(&counts);
            let Some(next) = page.next else {
                run.next = Next::Done;
                return Ok(run);
            };
            after = Some(next);
            run.next = Next::Page(after.clone());
            longest = longest.max(started.elapsed());
            let spent = run.counts.events_checked >= u64::try_from(budget).unwrap_or(u64::MAX);
            let late = deadline.is_some_and(|d| Instant::now() + longest >= d);
            if spent || late {
                return Ok(run);
            }
        }
    }

    /// Adds a run to the state, saves it, and hands the rest of the window
    /// on: a message on the slow lane, delayed until the allowance is back
    /// when the run stopped for it. `Refused` (nothing handed on) when the
    /// webhook's recovery is no longer this one. An error leaves the
    /// recovery running: the caller retries the page or stops it.
    pub async fn hand_on(
        &self,
        state: &mut RecoveryState,
        run: &Run,
    ) -> Result<Conditional, RecoveryError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        state.advance(&run.counts, run.next == Next::Done, now);
        let saved = self
            .store
            .save_recovery(state, RecoveryWrite::Advance)
            .await?;
        let (Conditional::Applied, Next::Page(after)) = (saved, &run.next) else {
            return Ok(saved);
        };
        let wait = run
            .allowance_until
            .map_or(0, |t| t.saturating_sub(now).max(0));
        let message = RecoveryMessage {
            recover: Continuation {
                tenant_id: state.tenant_id.clone(),
                webhook_id: state.webhook_id,
                recovery_id: state.recovery_id.clone(),
                window: state.window,
                after: after.clone(),
            },
        };
        let delay = Duration::from_secs(u64::try_from(wait).unwrap_or(0));
        // On the slow lane, the message that carried this page then comes
        // back and the page is done again (its claims queue nothing twice;
        // its counts are added twice); the api stops the recovery instead.
        self.requeue
            .send_recovery(&message, delay)
            .await
            .map_err(RecoveryError::Queue)?;
        Ok(Conditional::Applied)
    }

    /// Takes a recovery up where its message says (the dispatcher, on the
    /// slow lane). A recovery replaced or ended meanwhile is dropped; one
    /// whose webhook was deleted or set inactive stops.
    pub async fn resume(
        &self,
        next: &Continuation,
        deadline: Option<Instant>,
    ) -> Result<(), RecoveryError> {
        let Some(mut state) = self
            .store
            .recovery(&next.tenant_id, next.webhook_id)
            .await?
        else {
            return Ok(());
        };
        if state.recovery_id != next.recovery_id || state.done {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let webhook = self
            .store
            .get_webhook(&next.tenant_id, next.webhook_id)
            .await?;
        let webhook = match webhook {
            Some(w) if w.status == Status::Active => w,
            found => {
                let why = if found.is_some() {
                    "the webhook was set inactive"
                } else {
                    "the webhook was deleted"
                };
                state.stop(why, now);
                self.store
                    .save_recovery(&state, RecoveryWrite::Advance)
                    .await?;
                return Ok(());
            }
        };
        // A call's worth of checks, or the page waits for the next minute.
        let checks = (Allowance::RecoveryChecks, self.checks_per_minute);
        let budget = u32::try_from(EVENTS_PER_CALL).unwrap_or(u32::MAX);
        if let Some(until) = self.take(&next.tenant_id, checks, budget).await? {
            let wait = Run {
                next: Next::Page(next.after.clone()),
                allowance_until: Some(until),
                ..Run::default()
            };
            self.hand_on(&mut state, &wait).await?;
            return Ok(());
        }
        let run = self
            .run(
                &webhook,
                &state.window,
                next.after.clone(),
                Mode::Queue,
                EVENTS_PER_CALL,
                deadline,
            )
            .await?;
        self.hand_on(&mut state, &run).await?;
        state.log("recovery page");
        Ok(())
    }

    /// The page's events the webhook should get again, with their verdicts.
    async fn select(
        &self,
        webhook: &Webhook,
        events: Vec<StoredEvent>,
        counts: &mut Counts,
    ) -> Result<Vec<(StoredEvent, u32)>, RecoveryError> {
        let subscribed: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| webhook.events.contains(e.event_type))
            .collect();
        let attempts = join_all(subscribed.iter().map(|e| {
            self.store
                .deliveries_to(&webhook.tenant_id, &e.id, webhook.id)
        }))
        .await;
        // A retry due more than PENDING_SECS ago and not recorded is lost
        // (its message could not be sent): the recovery sends the event.
        let retry_cutoff =
            sortable_time(OffsetDateTime::now_utc() - Duration::from_secs(PENDING_SECS as u64));
        let mut candidates = Vec::new();
        for (event, attempts) in subscribed.into_iter().zip(attempts) {
            match verdict(&attempts?, &retry_cutoff) {
                Verdict::Resend { manual_recorded } => candidates.push((event, manual_recorded)),
                Verdict::RetryPending => counts.retry_pending += 1,
                Verdict::Delivered | Verdict::NeverAttempted => {}
            }
        }
        // A listing holds no payload: each event to send again is read with
        // its own, and one no longer kept is counted, not sent.
        let read = join_all(
            candidates
                .iter()
                .map(|(e, _)| self.store.get_event(&webhook.tenant_id, &e.id)),
        )
        .await;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut chosen = Vec::new();
        for ((_, manual_recorded), event) in candidates.into_iter().zip(read) {
            let Some(event) = event? else { continue };
            match event.payload_state(now) {
                PayloadState::Kept => {
                    counts.selected += 1;
                    chosen.push((event, manual_recorded));
                }
                PayloadState::Deleted => counts.payload_deleted += 1,
                PayloadState::NotKept | PayloadState::TooLarge | PayloadState::Expired => {
                    counts.not_kept += 1
                }
            }
        }
        Ok(chosen)
    }

    /// Takes `n` from the tenant's `allowance` of `limit`; when it is spent,
    /// the Unix time its next window starts.
    async fn take(
        &self,
        tenant: &TenantId,
        (allowance, limit): (Allowance, u32),
        n: u32,
    ) -> Result<Option<i64>, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let window = allowance.window_of(now);
        let taken = self
            .store
            .take_allowance(tenant, allowance, window, n, limit)
            .await?;
        Ok((taken == Conditional::Refused).then_some((window + 1) * allowance.window_secs()))
    }

    /// Claims an attempt number per event and queues the attempts.
    async fn queue(
        &self,
        webhook: &Webhook,
        chosen: Vec<(StoredEvent, u32)>,
        counts: &mut Counts,
    ) -> Result<(), RecoveryError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = join_all(chosen.iter().map(|(event, manual_recorded)| {
            self.store.claim_recovery_attempt(
                &webhook.tenant_id,
                &event.id,
                webhook.id,
                *manual_recorded,
                now,
            )
        }))
        .await;
        let mut messages = Vec::with_capacity(chosen.len());
        for ((event, _), claim) in chosen.iter().zip(claims) {
            let (Some(attempt), Some(event)) = (claim?, event.to_event(now)) else {
                counts.already_pending += 1;
                continue;
            };
            messages.push(TargetedMessage {
                target: Target::manual(webhook.id, attempt),
                event,
            });
        }
        // Those sent are attempts of their own, each recorded once; those
        // not sent give up their claim, so that the next recovery sends them.
        let sent = self.requeue.send_claimed(self.store, &messages).await;
        counts.queued += u64::try_from(sent.iter().filter(|r| r.is_ok()).count()).unwrap_or(0);
        match sent.into_iter().find_map(Result::err) {
            Some(e) => Err(RecoveryError::Queue(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use crate::WebhookId;
    use crate::event::EventId;

    fn attempt(n: u32, at: &str, outcome: Outcome) -> DeliveryRecord {
        let mut r = DeliveryRecord::new(
            TenantId::parse("acme").unwrap(),
            WebhookId::generate(),
            EventId::parse("evt_1").unwrap(),
            EventType::AsyncCompleted,
            time::macros::datetime!(2026-11-28 10:00 UTC),
            crate::delivery::Attempt::bare(outcome, None, 1),
            7,
        )
        .with_attempt(n, n >= FIRST_MANUAL_ATTEMPT);
        r.attempted_at = at.to_owned();
        r
    }

    #[test]
    fn the_latest_attempt_decides() {
        use Outcome::*;
        let t = |s: u32| format!("2026-11-28T10:00:{s:02}.000000Z");
        assert_eq!(verdict(&[], "0"), Verdict::NeverAttempted);
        assert_eq!(
            verdict(&[attempt(1, &t(1), ConnectError)], "0"),
            Verdict::Resend { manual_recorded: 0 }
        );
        // A manual attempt delivered after the automatic ones failed.
        assert_eq!(
            verdict(
                &[
                    attempt(101, &t(9), Delivered),
                    attempt(1, &t(1), Timeout),
                    attempt(2, &t(5), HttpError),
                ],
                "0"
            ),
            Verdict::Delivered
        );
        // Delivered first, failed on a later redelivery: the last one counts.
        assert_eq!(
            verdict(
                &[attempt(1, &t(1), Delivered), attempt(102, &t(7), HttpError)],
                "0"
            ),
            Verdict::Resend { manual_recorded: 2 }
        );
        // Same start: the higher number is the later one.
        assert_eq!(
            verdict(
                &[
                    attempt(1, &t(3), ConnectError),
                    attempt(101, &t(3), Delivered)
                ],
                "0"
            ),
            Verdict::Delivered
        );
    }

    /// A failed attempt that scheduled a retry leaves the event to that
    /// retry while it is due after the cutoff; one due before is lost.
    #[test]
    fn a_scheduled_retry_is_pending_until_the_cutoff() {
        let t = |s: u32| format!("2026-11-28T10:00:{s:02}.000000Z");
        let mut failed = attempt(1, &t(1), Outcome::Timeout);
        failed.next_attempt_at = Some(t(31));
        let attempts = [failed];
        assert_eq!(verdict(&attempts, &t(20)), Verdict::RetryPending);
        assert_eq!(verdict(&attempts, &t(31)), Verdict::RetryPending);
        assert_eq!(
            verdict(&attempts, &t(40)),
            Verdict::Resend { manual_recorded: 0 }
        );
        // A later attempt recorded decides instead.
        let later = attempt(2, &t(31), Outcome::Delivered);
        assert_eq!(
            verdict(&[attempts[0].clone(), later], &t(20)),
            Verdict::Delivered
        );
    }

    #[test]
    fn a_message_round_trips_and_is_neither_an_envelope_nor_a_retry() {
        let message = RecoveryMessage {
            recover: Continuation {
                tenant_id: TenantId::parse("acme").unwrap(),
                webhook_id: WebhookId::generate(),
                recovery_id: "rcv_1".into(),
                window: Window {
                    since: time::macros::datetime!(2026-11-28 09:00 UTC),
                    until: time::macros::datetime!(2026-11-28 10:00 UTC),
                },
                after: Some("2026-11-28T09:30:00.000000Z#evt_1".into()),
            },
        };
        let json = message.to_json();
        assert_eq!(RecoveryMessage::from_json(&json).unwrap(), message);
        assert!(crate::event::Event::from_json(&json).is_err());
        assert!(TargetedMessage::from_json(&json).is_err());
    }
}
