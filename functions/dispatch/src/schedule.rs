//! Attempts put back on the queue for later: a retry, a throttled attempt
//! waiting for its slot, an attempt not due yet.

use std::time::Duration;

use shared::event::Event;
use shared::retry::MAX_SQS_DELAY;
use shared::slow_lane::{Target, TargetedMessage};
use shared::webhook::now_utc;

use crate::Dispatcher;

/// Queues an attempt `delay` from now. A wait longer than SQS allows goes
/// out as the longest delay with `not_before` set; the dispatcher sends it on
/// again until that time.
pub async fn schedule<S>(
    d: &Dispatcher<S>,
    event: &Event,
    mut target: Target,
    delay: Duration,
) -> Result<(), String> {
    if delay > MAX_SQS_DELAY {
        let due = now_utc() + delay;
        target.not_before = Some(due.unix_timestamp());
    }
    let message = TargetedMessage {
        target,
        event: event.clone(),
    };
    d.requeue.send(&message, delay).await
}
