//! Targeted attempts not due yet (a wait longer than one SQS delay): they go
//! back on the queue, untouched, for what is left of their wait.

use std::time::Duration;

use shared::slow_lane::Target;
use shared::webhook::now_utc;

use crate::Dispatcher;
use crate::attempt::schedule;
use crate::batch::{Job, Kind};

/// A batch's jobs, by whether their attempts are due.
pub(crate) struct Due {
    /// To work on now.
    pub now: Vec<Job>,
    /// Targeted attempts whose `not_before` is still ahead, with what is
    /// left to wait.
    pub later: Vec<(Job, Duration)>,
}

/// Separates the targeted attempts whose `not_before` is still ahead from
/// the work to do now.
pub(crate) fn due(jobs: Vec<Job>) -> Due {
    let now = now_utc().unix_timestamp();
    let mut due = Due {
        now: Vec::with_capacity(jobs.len()),
        later: Vec::new(),
    };
    for job in jobs {
        let left = match &job.kind {
            Kind::Targeted(Target {
                not_before: Some(at),
                ..
            }) => at.saturating_sub(now),
            _ => 0,
        };
        // A second early is on time: SQS delays are whole seconds.
        if left > 1 {
            due.later
                .push((job, Duration::from_secs(left.unsigned_abs())));
        } else {
            due.now.push(job);
        }
    }
    due
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
