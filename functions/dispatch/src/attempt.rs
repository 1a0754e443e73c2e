//! One attempt at one webhook, and what follows it: the record, a retry
//! scheduled on the queue (policy `exponential`), or the webhook turned off
//! (`410 Gone`).

use std::time::Duration;

use bytes::Bytes;
use shared::audit::{Action, Actor};
use shared::delivery::{DeliveryClient, Payload, Purpose};
use shared::delivery_log::{DeliveryRecord, sortable_time};
use shared::event::Event;
use shared::notice::Notice;
use shared::retry::{RetryPolicy, is_retryable, next_delay};
use shared::slow_lane::Target;
use shared::store::{DeliveryStore, WebhookStore};
use shared::webhook::now_utc;
use shared::{Lane, Status, Webhook};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::Dispatcher;
use crate::deadline::RECORD_MARGIN;
use crate::lane::Marks;
use crate::metrics::Tally;
use crate::plan::Nth;
use crate::schedule::schedule;
use crate::throttle::{Admitted, Throttle};
use crate::unfinished::Unfinished;

/// One attempt to make: at which webhook, of which event, in which lane.
pub struct Delivery<'a> {
    pub client: &'a DeliveryClient,
    pub webhook: &'a Webhook,
    pub event: &'a Event,
    pub body: Bytes,
    pub nth: Nth,
    pub lane: Lane,
    /// Whether the record keeps the receiver's answer (the tenant's
    /// `keep_response_bodies`).
    pub keep_body: bool,
    /// When the invocation must have returned (None: no deadline, tests).
    pub cutoff: Option<Instant>,
}

/// The attempt's deadline: the delivery timeout, but never so late that its
/// record could not be written before the invocation's cutoff. An attempt cut
/// by the invocation instead would go unrecorded and be sent again when its
/// message comes back; capped, it is recorded once (as a timeout) instead.
fn attempt_deadline(now: Instant, timeout: Duration, cutoff: Option<Instant>) -> Instant {
    let own = now + timeout;
    match cutoff {
        Some(cutoff) => own.min(cutoff.checked_sub(RECORD_MARGIN).unwrap_or(now)),
        None => own,
    }
}

/// Delivers, then records the outcome. Ok when the attempt is done with:
/// recorded, and its retry (if any) queued. Otherwise why not: the message
/// is left for SQS to hand over again, which repeats an attempt that was not
/// recorded.
pub async fn deliver_and_record<S: WebhookStore + DeliveryStore>(
    d: &Dispatcher<S>,
    delivery: Delivery<'_>,
    (marks, throttle): (&Marks, &Throttle<'_>),
    tally: &Tally,
) -> Result<(), Unfinished> {
    let Delivery {
        client,
        webhook,
        event,
        body,
        nth,
        lane,
        keep_body,
        cutoff,
    } = delivery;
    if webhook.throttle_rate.is_some() {
        match throttle.admit(d, (webhook, event, nth), cutoff).await? {
            Admitted::Now => {}
            // Not attempted: nothing to record (yet).
            Admitted::SentBack | Admitted::Gone => return Ok(()),
        }
    }
    let started = now_utc();
    let deadline = attempt_deadline(Instant::now(), d.settings.delivery_timeout, cutoff);
    let payload = Payload {
        event_id: event.id.as_str(),
        body,
        purpose: Purpose::Event,
    };
    let sending = client.deliver_to(webhook, payload, deadline, started);
    let attempt = marks.watch(d, webhook, lane, sending).await;
    marks.after(d, webhook, &attempt).await;
    tally.delivery(&webhook.tenant_id, lane, &attempt);
    tracing::info!(
        tenant_id = %webhook.tenant_id,
        webhook_id = %webhook.id,
        event_id = %event.id,
        attempt = nth.number,
        manual = nth.manual,
        lane = lane.as_str(),
        outcome = attempt.outcome.as_str(),
        status = attempt.status,
        duration_ms = attempt.duration_ms,
        // Which client certificate the attempt presented (mutual TLS): its
        // fingerprint, never the key.
        client_certificate = webhook.client_tls.as_ref().map(|c| c.fingerprint.as_str()),
        "delivery attempt"
    );
    let gone = attempt.status == Some(410);
    let retry =
        webhook.retry_policy == RetryPolicy::Exponential && !nth.manual && is_retryable(&attempt);
    let retry_after = attempt.retry_after;
    let mut record = DeliveryRecord::new(
        webhook.tenant_id.clone(),
        webhook.id,
        event.id.clone(),
        event.event_type,
        started,
        attempt,
        d.settings.delivery_log_ttl_days,
    )
    .with_attempt(nth.number, nth.manual)
    .with_lane(lane);
    if !keep_body {
        record.response_body = None;
    }

    if gone {
        disable(d, webhook, started).await;
    } else if retry {
        match next_delay(
            &d.settings.retry_schedule,
            nth.number,
            retry_after,
            shared::random::fraction(),
        ) {
            Some(delay) => {
                let next = Target::retry(webhook.id, nth.number + 1, None);
                if let Err(e) = schedule(d, event, next, delay).await {
                    // Unrecorded, so the message comes back and this attempt is made again.
                    tracing::error!(tenant_id = %webhook.tenant_id, webhook_id = %webhook.id, event_id = %event.id, error = %e, "scheduling a retry failed");
                    return Err(Unfinished::RetryNotQueued);
                }
                tally.retry_scheduled();
                record.next_attempt_at = Some(sortable_time(started + delay));
            }
            None => record.exhausted = true,
        }
    }
    d.store.record_delivery(&record).await.map_err(|e| {
        tracing::error!(tenant_id = %webhook.tenant_id, webhook_id = %webhook.id, event_id = %event.id, error = %e, "recording a delivery failed");
        Unfinished::Unrecorded
    })?;
    crate::streak::follow(d, webhook, &record, started, marks).await;
    Ok(())
}

/// A receiver that answers `410 Gone` says the endpoint is no more: the
/// webhook is set inactive, with the reason, until the customer activates it.
async fn disable<S: WebhookStore>(d: &Dispatcher<S>, webhook: &Webhook, at: OffsetDateTime) {
    let reason = format!(
        "the endpoint answered 410 Gone at {}; set the status to active to resume deliveries",
        sortable_time(at)
    );
    let changed = std::sync::atomic::AtomicBool::new(false);
    let by = (Action::WebhookDisabled, &Actor::Platform);
    let result = shared::store::modify(&d.store, &webhook.tenant_id, webhook.id, by, |w| {
        if w.status == Status::Inactive {
            return false;
        }
        w.status = Status::Inactive;
        w.disabled_reason = Some(reason.clone());
        changed.store(true, std::sync::atomic::Ordering::Relaxed);
        true
    })
    .await;
    match result {
        Ok(_) if changed.load(std::sync::atomic::Ordering::Relaxed) => {
            tracing::warn!(webhook_id = %webhook.id, "webhook set inactive: the endpoint answered 410 Gone");
            let notice = Notice::Disabled {
                since: webhook.failing_since.unwrap_or(at),
                error: "status 410",
                reason: &reason,
            };
            crate::streak::send(d, webhook, &notice).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(webhook_id = %webhook.id, error = %e, "setting a gone webhook inactive failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::handle;
    use crate::local::{invocation, sqs_event};
    use crate::testing::{event, records_of, setup};

    #[test]
    fn an_attempt_ends_in_time_for_its_record() {
        let now = Instant::now();
        let five = Duration::from_secs(5);
        assert_eq!(attempt_deadline(now, five, None), now + five);
        let far = now + Duration::from_secs(30);
        assert_eq!(attempt_deadline(now, five, Some(far)), now + five);
        let near = now + Duration::from_secs(3);
        assert_eq!(
            attempt_deadline(now, five, Some(near)),
            near - RECORD_MARGIN
        );
    }

    /// An attempt that would outlive the invocation is not cut by it
    /// (unrecorded, and sent again when its message came back): its deadline
    /// ends in time for its record.
    #[tokio::test]
    async fn an_attempt_near_the_invocations_end_is_recorded_not_repeated() {
        let (mut d, webhook, receiver, _) = setup(false).await;
        d.settings.delivery_timeout = Duration::from_secs(5);
        let event = event();
        let started = std::time::Instant::now();
        let batch = sqs_event([("m0".to_owned(), event.to_json())]);
        let response = handle(&d, invocation(batch, 2000, "r")).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "the message is done with"
        );
        assert!(started.elapsed() < Duration::from_millis(2000));
        let records = records_of(&d, &webhook, &event).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "timeout");
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
    }
}
