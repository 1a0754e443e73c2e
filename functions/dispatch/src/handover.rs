//! Hand-overs: the attempts a main-lane batch gives to the slow lane (their
//! webhooks are marked slow), sent to the slow lane's queue ten to a
//! request.

use std::collections::HashSet;

use shared::slow_lane::{Target, TargetedMessage};
use shared::store::AttemptKey;
use tokio::time::Instant;

use crate::Dispatcher;
use crate::deadline::within;
use crate::lane::ByLane;
use crate::unfinished::Unfinished;

/// What became of a batch's hand-overs.
pub(crate) enum HandedOver {
    /// Sent before the cutoff; these attempts (usually none) did not reach
    /// the slow lane's queue.
    Sent { failed: HashSet<AttemptKey> },
    /// The cutoff came first: no job is done with.
    Cut,
}

impl HandedOver {
    /// Whether every attempt this job hands over reached the slow lane's
    /// queue.
    pub(crate) fn of(&self, job: &ByLane<'_>) -> Result<(), Unfinished> {
        let failed = match self {
            HandedOver::Cut => return Err(Unfinished::Deadline),
            HandedOver::Sent { failed } => failed,
        };
        // Nothing failed is the normal case: no key to build per attempt.
        if failed.is_empty() {
            return Ok(());
        }
        let Ok(split) = &job.attempts else {
            return Ok(());
        };
        let event = &job.plan.job.event;
        let lost = split.handed_over.iter().any(|(webhook, nth)| {
            failed.contains(&AttemptKey::of(
                &event.tenant_id,
                &event.id,
                webhook.id,
                nth.number,
            ))
        });
        if lost {
            Err(Unfinished::NotForwarded)
        } else {
            Ok(())
        }
    }
}

/// Sends every attempt the jobs hand over, ten to a request, unless the
/// cutoff comes first.
pub(crate) async fn hand_over<S>(
    d: &Dispatcher<S>,
    jobs: &[ByLane<'_>],
    cutoff: Option<Instant>,
) -> HandedOver {
    let messages: Vec<TargetedMessage> = jobs
        .iter()
        .filter_map(|job| Some((&job.plan.job.event, job.attempts.as_ref().ok()?)))
        .flat_map(|(event, split)| {
            split
                .handed_over
                .iter()
                .map(|(webhook, nth)| TargetedMessage {
                    target: Target::now(webhook.id, nth.number, nth.manual),
                    event: event.clone(),
                })
        })
        .collect();
    if messages.is_empty() {
        return HandedOver::Sent {
            failed: HashSet::new(),
        };
    }
    let Some(results) = within(cutoff, d.requeue.send_now(&messages)).await else {
        return HandedOver::Cut;
    };
    let mut failed = HashSet::new();
    for (message, result) in messages.iter().zip(results) {
        match result {
            Ok(()) => tracing::info!(
                tenant_id = %message.event.tenant_id,
                webhook_id = %message.target.webhook_id,
                event_id = %message.event.id,
                attempt = message.target.attempt,
                "attempt handed to the slow lane"
            ),
            Err(e) => {
                tracing::error!(tenant_id = %message.event.tenant_id, webhook_id = %message.target.webhook_id, event_id = %message.event.id, error = %e, "handing an attempt to the slow lane failed");
                failed.insert(AttemptKey::of(
                    &message.event.tenant_id,
                    &message.event.id,
                    message.target.webhook_id,
                    message.target.attempt,
                ));
            }
        }
    }
    HandedOver::Sent { failed }
}

#[cfg(test)]
mod tests {
    use shared::requeue::Requeue;
    use shared::webhook::now_utc;
    use shared::{UrlPolicy, Webhook};

    use super::*;
    use crate::batch::Kind;
    use crate::lane::split;
    use crate::plan::{Nth, Planned};
    use crate::testing::{job, webhook};

    fn slow_webhook() -> Webhook {
        let mut w = webhook("https://hooks.example.com/x", UrlPolicy::default());
        w.slow_since = Some(now_utc());
        w
    }

    /// A hand-over that fails returns the messages of its own job only; a
    /// cutoff that comes first returns every job's.
    #[test]
    fn a_failed_hand_over_is_its_jobs_alone() {
        let (slow, other) = (slow_webhook(), slow_webhook());
        let first = Nth {
            number: 1,
            manual: false,
            slot: None,
            retaken: false,
        };
        let (a, b) = (job(Kind::Fanout, "m0"), job(Kind::Fanout, "m1"));
        let plan = |job, webhook| Planned {
            job,
            kept: None,
            settings: Default::default(),
            targets: Ok(vec![(webhook, first)]),
        };
        let plans = [plan(&a, &slow), plan(&b, &other)];
        let requeue = Requeue::Memory(Default::default());
        let jobs: Vec<ByLane> = plans.iter().map(|p| split(p, &requeue)).collect();
        assert!(
            jobs.iter()
                .all(|j| j.attempts.as_ref().is_ok_and(|s| s.handed_over.len() == 1))
        );

        let failed = HashSet::from([AttemptKey::of(&a.event.tenant_id, &a.event.id, slow.id, 1)]);
        let sent = HandedOver::Sent { failed };
        assert_eq!(sent.of(&jobs[0]), Err(Unfinished::NotForwarded));
        assert_eq!(sent.of(&jobs[1]), Ok(()));
        let cut = HandedOver::Cut;
        assert!(jobs.iter().all(|j| cut.of(j) == Err(Unfinished::Deadline)));
    }
}
