//! Attempts put back on the queue for later: a retry, a throttled attempt
//! waiting for its slot, an attempt not due yet.

use std::time::Duration;

use futures_util::future::join_all;
use shared::event::Event;
use shared::retry::MAX_SQS_DELAY;
use shared::slow_lane::{Target, TargetedMessage};
use shared::webhook::now_utc;
use tokio::time::Instant;

use crate::Dispatcher;

/// What is left of an attempt's wait: a pause here (under a second), then
/// a queue delay (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Wait {
    pub delay: Duration,
    pub pause: Duration,
}

/// Messages sent back together go out at the shortest pause among them:
/// each comes back at most this much before its time, never after it.
const PAUSE_WINDOW: Duration = Duration::from_millis(100);

/// SendMessageBatch takes at most ten entries.
const SEND_BATCH: usize = 10;

/// The message of an attempt `delay` from now, and the delay to send it
/// with. A wait longer than SQS allows goes out as the longest delay with
/// `not_before` set; the dispatcher sends it on again until that time.
pub(crate) fn after(
    event: &Event,
    mut target: Target,
    delay: Duration,
) -> (TargetedMessage, Duration) {
    if delay > MAX_SQS_DELAY {
        let due = now_utc() + delay;
        target.not_before = Some(due.unix_timestamp());
    }
    let message = TargetedMessage {
        target,
        event: event.clone(),
    };
    (message, delay.min(MAX_SQS_DELAY))
}

/// Queues an attempt `delay` from now (see [`after`]).
pub async fn schedule<S>(
    d: &Dispatcher<S>,
    event: &Event,
    target: Target,
    delay: Duration,
) -> Result<(), String> {
    let (message, delay) = after(event, target, delay);
    d.requeue.send(&message, delay).await
}

/// Sends waiting attempts back, each due after its pause and delay: in
/// order of their pauses, ten at most to a SendMessageBatch, each request
/// after the shortest pause among its messages (within [`PAUSE_WINDOW`]).
/// A batch's attempts at one throttled webhook mostly share a handful of
/// pauses, so a hundred of them go back in about ten requests. One result
/// per message, in order.
pub(crate) async fn send_back<S>(
    d: &Dispatcher<S>,
    waiting: &[(TargetedMessage, Wait)],
) -> Vec<Result<(), String>> {
    let start = Instant::now();
    let pauses: Vec<Duration> = waiting.iter().map(|(_, wait)| wait.pause).collect();
    let requests = requests(&pauses);
    let sent = join_all(requests.iter().map(|r| async move {
        tokio::time::sleep_until(start + waiting[r[0]].1.pause).await;
        let batch: Vec<(&TargetedMessage, Duration)> = r
            .iter()
            .map(|&i| (&waiting[i].0, waiting[i].1.delay))
            .collect();
        d.requeue.send_delayed(&batch).await
    }))
    .await;
    let mut results: Vec<Result<(), String>> = vec![Ok(()); waiting.len()];
    for (r, sent) in requests.iter().zip(sent) {
        for (&i, result) in r.iter().zip(sent) {
            results[i] = result;
        }
    }
    results
}

/// The requests that send messages with these pauses back: indexes into
/// `pauses`, ten at most to a request, each request's first the shortest
/// and the others within [`PAUSE_WINDOW`] of it.
fn requests(pauses: &[Duration]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..pauses.len()).collect();
    order.sort_by_key(|&i| pauses[i]);
    let mut requests: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match requests.last_mut() {
            Some(r) if r.len() < SEND_BATCH && pauses[i] < pauses[r[0]] + PAUSE_WINDOW => r.push(i),
            _ => requests.push(vec![i]),
        }
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dispatcher, event, settings};
    use shared::WebhookId;
    use shared::requeue::Requeue;

    /// A hundred attempts at 5 a second (pauses 200 ms apart, twenty
    /// each) go back in ten requests; pauses within the window share one.
    #[test]
    fn waiting_attempts_share_requests_by_pause() {
        let ms = |m: u64| Duration::from_millis(m);
        let pauses: Vec<Duration> = (0..100).map(|k| ms((k % 5) * 200)).collect();
        let grouped = requests(&pauses);
        assert_eq!(grouped.len(), 10);
        for r in &grouped {
            assert_eq!(r.len(), 10);
            assert!(r.iter().all(|&i| pauses[i] == pauses[r[0]]));
        }
        let near = requests(&[ms(0), ms(99), ms(100), ms(950)]);
        assert_eq!(near, [vec![0, 1], vec![2], vec![3]]);
        assert!(requests(&[]).is_empty());
    }

    /// Each waiting attempt goes back with its own delay, after its pause.
    #[tokio::test]
    async fn waiting_attempts_go_back_each_with_its_delay() {
        let queued = crate::testing::Queued::default();
        let d =
            dispatcher(&settings()).with_requeue(Requeue::Memory(std::sync::Arc::clone(&queued)));
        let webhook = WebhookId::generate();
        let waiting: Vec<(TargetedMessage, Wait)> = (0..25u64)
            .map(|k| {
                let wait = Wait {
                    pause: Duration::from_millis((k % 5) * 200),
                    delay: Duration::from_secs(k),
                };
                (
                    after(&event(), Target::now(webhook, 1, false), Duration::ZERO).0,
                    wait,
                )
            })
            .collect();
        let started = Instant::now();
        let results = send_back(&d, &waiting).await;
        assert!(results.iter().all(Result::is_ok));
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "the longest pause was waited"
        );
        let sent = queued.lock().unwrap();
        let mut delays: Vec<u64> = sent.iter().map(|(_, delay)| delay.as_secs()).collect();
        delays.sort_unstable();
        assert_eq!(
            delays,
            (0..25).collect::<Vec<_>>(),
            "each with its own delay"
        );
    }

    /// A wait past SQS's longest delay goes out as that delay, with
    /// `not_before` at the end of the whole wait.
    #[test]
    fn a_wait_past_fifteen_minutes_is_chained() {
        let (message, delay) = after(
            &event(),
            Target::now(WebhookId::generate(), 1, false),
            Duration::from_secs(2_000),
        );
        assert_eq!(delay, MAX_SQS_DELAY);
        let not_before = message.target.not_before.expect("chained");
        let expected = now_utc().unix_timestamp() + 2_000;
        assert!((not_before - expected).abs() <= 1);
    }
}
