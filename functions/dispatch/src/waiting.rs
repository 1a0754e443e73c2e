//! Targeted attempts not due yet (a wait longer than one SQS delay, or a
//! throttle slot still ahead): they go back on the queue, untouched, for
//! what is left of their wait.

use std::time::Duration;

use shared::slow_lane::{Target, TargetedMessage};
use shared::throttle::{MAX_WAIT_MS, Turn, turn, unix_ms};
use shared::webhook::now_utc;
use time::OffsetDateTime;

use crate::Dispatcher;
use crate::batch::{Job, Kind};
use crate::schedule::{Wait, send_back};

/// A batch's jobs, by whether their attempts are due.
pub(crate) struct Due {
    /// To work on now.
    pub now: Vec<Job>,
    /// Targeted attempts whose `not_before` (or throttle slot) is still
    /// ahead, with what is left to wait.
    pub later: Vec<(Job, Wait)>,
}

/// Separates the targeted attempts whose `not_before` is still ahead from
/// the work to do now.
pub(crate) fn due(jobs: Vec<Job>) -> Due {
    let now = now_utc();
    let mut due = Due {
        now: Vec::with_capacity(jobs.len()),
        later: Vec::new(),
    };
    for job in jobs {
        match wait_of(&job.kind, now) {
            Some(wait) => due.later.push((job, wait)),
            None => due.now.push(job),
        }
    }
    due
}

/// What is left of a targeted attempt's wait, if it must go on waiting.
fn wait_of(kind: &Kind, now: OffsetDateTime) -> Option<Wait> {
    let Kind::Targeted(Target {
        not_before, slot, ..
    }) = kind
    else {
        return None;
    };
    // A second early is on time: SQS delays are whole seconds.
    let by_time = not_before
        .map(|at| at.saturating_sub(now.unix_timestamp()))
        .filter(|left| *left > 1)
        .map(|left| Duration::from_secs(left.unsigned_abs()));
    // A slot within what an attempt may wait for in place is made now
    // (the throttle stage waits for it, or sends it back if the invocation
    // has no time left); a later one goes back, due a second before it.
    let by_slot = slot.and_then(|slot| match turn(slot, unix_ms(now), MAX_WAIT_MS) {
        Turn::Later {
            pause_ms,
            delay_secs,
        } => Some(Wait {
            pause: Duration::from_millis(pause_ms.unsigned_abs()),
            delay: Duration::from_secs(delay_secs),
        }),
        Turn::Now { .. } => None,
    });
    by_time
        .map(|delay| Wait {
            pause: Duration::ZERO,
            delay,
        })
        .max(by_slot)
}

/// Queues each waiting attempt again for what is left of its wait (the
/// batch's together, see [`send_back`]); returns the messages of those
/// that could not be (they come back, and are put back again).
pub(crate) async fn put_back<S>(d: &Dispatcher<S>, later: Vec<(Job, Wait)>) -> Vec<String> {
    let (jobs, waiting): (Vec<Vec<String>>, Vec<(TargetedMessage, Wait)>) = later
        .into_iter()
        .filter_map(|(job, wait)| {
            let Kind::Targeted(target) = job.kind else {
                return None;
            };
            let message = TargetedMessage {
                target,
                event: job.event,
            };
            Some((job.messages, (message, wait)))
        })
        .unzip();
    let sent = send_back(d, &waiting).await;
    let unsent = jobs.into_iter().zip(&waiting).zip(sent);
    unsent
        .filter_map(|((messages, (message, _)), sent)| {
            let e = sent.err()?;
            tracing::error!(event_id = %message.event.id, error = %e, "re-queueing a waiting attempt failed");
            Some(messages)
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use shared::WebhookId;

    use super::*;
    use crate::testing::job;

    /// A retry due more than a second from now waits for what is left; one
    /// due within a second, or a producer's event, is made now.
    #[test]
    fn a_retry_not_due_yet_waits() {
        let now = now_utc().unix_timestamp();
        let at = |secs| Kind::Targeted(Target::retry(WebhookId::generate(), 2, Some(now + secs)));
        let due = due(vec![
            job(at(600), "m0"),
            job(at(1), "m1"),
            job(Kind::Fanout, "m2"),
        ]);
        let now: Vec<&str> = due.now.iter().map(|j| j.messages[0].as_str()).collect();
        assert_eq!(now, ["m1", "m2"]);
        assert_eq!(due.later.len(), 1);
        let (later, wait) = &due.later[0];
        assert_eq!(later.messages, ["m0"]);
        assert!(wait.delay > Duration::from_secs(590) && wait.delay <= Duration::from_secs(600));
        assert_eq!(wait.pause, Duration::ZERO);
    }

    /// A throttled attempt whose slot is ahead goes back due a second
    /// before it (a pause here, then a delay); one within what an attempt
    /// may wait for in place is made now.
    #[test]
    fn a_throttled_attempt_waits_for_its_slot() {
        let now = unix_ms(now_utc());
        let at = |ms| {
            Kind::Targeted(Target {
                slot: Some(now + ms),
                ..Target::now(WebhookId::generate(), 1, false)
            })
        };
        let due = due(vec![job(at(30_000), "m0"), job(at(800), "m1")]);
        assert_eq!(due.now.len(), 1);
        assert_eq!(due.now[0].messages, ["m1"]);
        let (_, wait) = &due.later[0];
        let back = wait.delay + wait.pause;
        assert!(
            back > Duration::from_millis(28_900) && back <= Duration::from_millis(29_000),
            "{back:?}"
        );
        assert!(wait.pause < Duration::from_secs(1));
    }
}
