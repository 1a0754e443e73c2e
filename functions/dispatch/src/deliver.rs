//! The attempts a batch makes in its own lane: first which of them are
//! recorded already, then each job's others, delivered and recorded (see
//! [`crate::attempt`]) before the cutoff.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::future::join_all;
use shared::Webhook;
use shared::delivery::DeliveryClient;
use shared::event::PayloadForm;
use shared::store::{AttemptKey, DeliveryStore, StoreError, WebhookStore};
use tokio::time::Instant;

use crate::Dispatcher;
use crate::attempt::{Delivery, deliver_and_record};
use crate::batch::Kind;
use crate::deadline::within;
use crate::lane::{ByLane, Marks};
use crate::metrics::Tally;
use crate::plan::Nth;
use crate::throttle::Throttle;
use crate::unfinished::Unfinished;

/// What a job's attempts here came to.
pub(crate) struct Delivered<'p> {
    pub job: &'p ByLane<'p>,
    /// Ok when each was recorded before the cutoff (or there were none);
    /// otherwise why the job's messages come back.
    pub result: Result<(), Unfinished>,
}

/// Which of the attempts to make here are recorded already: those targeted
/// messages name (`named`, read with the webhooks) and those of producers'
/// events seen before. `None` when that is not known (a read failed or the
/// cutoff came first): sending could then duplicate, so the batch is
/// retried later.
pub(crate) async fn recorded<S: DeliveryStore>(
    d: &Dispatcher<S>,
    jobs: &[ByLane<'_>],
    named: Result<HashSet<AttemptKey>, StoreError>,
    cutoff: Option<Instant>,
) -> Option<HashSet<AttemptKey>> {
    // Attempts handed to the slow lane are checked there: only the ones
    // made here need to know what is already recorded. A new event has no
    // record yet, so a batch of new events (the usual case) reads nothing
    // here and its deliveries start one DynamoDB round trip sooner; the
    // targeted attempts were read with the webhooks.
    let keys: Vec<AttemptKey> = jobs
        .iter()
        .filter(|job| !job.plan.is_new() && matches!(job.plan.job.kind, Kind::Fanout))
        .filter_map(|job| Some((&job.plan.job.event, job.attempts.as_ref().ok()?)))
        .flat_map(|(event, split)| {
            split.here.iter().map(|(webhook, nth)| {
                AttemptKey::of(&event.tenant_id, &event.id, webhook.id, nth.number)
            })
        })
        .collect();
    let again = within(cutoff, d.store.recorded_deliveries(&keys)).await;
    match (named, again) {
        (Ok(mut named), Some(Ok(again))) => {
            named.extend(again);
            Some(named)
        }
        (Err(e), _) | (_, Some(Err(e))) => {
            tracing::error!(error = %e, "reading recorded deliveries failed");
            None
        }
        (Ok(_), None) => {
            tracing::warn!("invocation deadline reached while reading recorded deliveries");
            None
        }
    }
}

/// Makes every job's attempts here, all at once; what each job's came to.
pub(crate) async fn deliver_here<'p, S: WebhookStore + DeliveryStore>(
    d: &Dispatcher<S>,
    client: &DeliveryClient,
    jobs: &'p [ByLane<'p>],
    recorded: &HashSet<AttemptKey>,
    tally: &Tally,
    cutoff: Option<Instant>,
) -> Vec<Delivered<'p>> {
    // At most one slow-lane mark per webhook per invocation.
    let marks = &Marks::default();
    let pending: Vec<_> = jobs
        .iter()
        .map(|job| pending(job, recorded, tally))
        .collect();
    // The attempts at each throttled webhook reserve their slots together.
    let mut throttle = Throttle::default();
    for (job, pending) in jobs.iter().zip(&pending) {
        for (webhook, nth) in pending.iter().flatten() {
            throttle.add(webhook, &job.plan.job.event, *nth);
        }
    }
    let throttle = &throttle;
    join_all(jobs.iter().zip(pending).map(|(job, pending)| async move {
        let result = match pending {
            Ok(pending) => {
                deliver_job(d, client, job, pending, (marks, throttle, tally), cutoff).await
            }
            Err(why) => Err(why),
        };
        Delivered { job, result }
    }))
    .await
}

/// The attempts of a job to make here that are not recorded yet, or why
/// the job cannot go on.
fn pending<'p>(
    job: &ByLane<'p>,
    recorded: &HashSet<AttemptKey>,
    tally: &Tally,
) -> Result<Vec<(&'p Webhook, Nth)>, Unfinished> {
    let split = job.attempts.as_ref().map_err(|why| *why)?;
    let event = &job.plan.job.event;
    // Nothing recorded yet is the normal case: no key to build per delivery.
    let pending: Vec<_> = split
        .here
        .iter()
        .copied()
        .filter(|(w, nth)| {
            recorded.is_empty()
                || !recorded.contains(&AttemptKey::of(
                    &event.tenant_id,
                    &event.id,
                    w.id,
                    nth.number,
                ))
        })
        .collect();
    tally.skipped(split.here.len() - pending.len());
    Ok(pending)
}

/// Makes each of a job's pending attempts here. Ok when every one is
/// recorded before the cutoff.
async fn deliver_job<S: WebhookStore + DeliveryStore>(
    d: &Dispatcher<S>,
    client: &DeliveryClient,
    job: &ByLane<'_>,
    pending: Vec<(&Webhook, Nth)>,
    (marks, throttle, tally): (&Marks, &Throttle<'_>, &Tally),
    cutoff: Option<Instant>,
) -> Result<(), Unfinished> {
    if pending.is_empty() {
        return Ok(());
    }
    let event = &job.plan.job.event;
    let body = Bytes::from(event.delivery_body(PayloadForm::Full));
    // Serialized only when one of its webhooks takes the thin form.
    let thin = pending
        .iter()
        .any(|(w, _)| w.payload == PayloadForm::Thin)
        .then(|| Bytes::from(event.delivery_body(PayloadForm::Thin)));
    let attempts = pending.into_iter().map(|(w, nth)| {
        let delivery = Delivery {
            client,
            webhook: w,
            event,
            body: match (&thin, w.payload) {
                (Some(thin), PayloadForm::Thin) => thin.clone(),
                _ => body.clone(),
            },
            keep_body: job.plan.settings.keep_response_bodies,
            nth,
            lane: job.lane,
            cutoff,
        };
        deliver_and_record(d, delivery, (marks, throttle), tally)
    });
    let Some(results) = within(cutoff, join_all(attempts)).await else {
        tracing::warn!(event_id = %event.id, "invocation deadline reached before every delivery was recorded");
        return Err(Unfinished::Deadline);
    };
    // Every attempt was made; the first that is not done with says why the
    // messages come back.
    results.into_iter().collect()
}
