//! Targeted attempts not due yet (a wait longer than one SQS delay, or a
//! throttle slot still ahead): they go back on the queue, untouched, for
//! what is left of their wait.

use std::time::Duration;

use shared::slow_lane::Target;
use shared::throttle::{Turn, turn, unix_ms};
use shared::webhook::now_utc;
use time::OffsetDateTime;

use crate::Dispatcher;
use crate::batch::{Job, Kind};
use crate::schedule::schedule;

/// A batch's jobs, by whether their attempts are due.
pub(crate) struct Due {
    /// To work on now.
    pub now: Vec<Job>,
    /// Targeted attempts whose `not_before` (or throttle slot) is still
    /// ahead, with what is left to wait.
    pub later: Vec<(Job, Duration)>,
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
fn wait_of(kind: &Kind, now: OffsetDateTime) -> Option<Duration> {
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
    let by_slot = slot.and_then(|slot| match turn(slot, unix_ms(now)) {
        Turn::Later { delay_secs } => Some(Duration::from_secs(delay_secs)),
        Turn::Now { .. } => None,
    });
    by_time.max(by_slot)
}

/// Queues each waiting attempt again for what is left of its wait; returns
/// the messages of those that could not be (they come back, and are put
/// back again).
pub(crate) async fn put_back<S>(d: &Dispatcher<S>, later: Vec<(Job, Duration)>) -> Vec<String> {
    let mut returned = Vec::new();
    for (job, wait) in later {
        if let Kind::Targeted(target) = &job.kind
            && let Err(e) = schedule(d, &job.event, target.clone(), wait).await
        {
            tracing::error!(event_id = %job.event.id, error = %e, "re-queueing a waiting retry failed");
            returned.extend(job.messages);
        }
    }
    returned
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
        assert!(*wait > Duration::from_secs(590) && *wait <= Duration::from_secs(600));
    }
}
