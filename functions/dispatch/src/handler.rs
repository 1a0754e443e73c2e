//! The SQS handler: events in, one signed POST per (event, subscribed webhook)
//! out, each attempt recorded; retries and redeliveries come back as
//! messages that target one webhook. A batch goes through named stages, in
//! [`run_batch`]; recovery pages run beside them ([`crate::recover`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use shared::Lane;
use shared::store::Store;
use shared::webhook::now_utc;
use tokio::time::Instant;

use crate::Dispatcher;
use crate::batch::{self, Batch};
use crate::deadline::cutoff;
use crate::deliver::{self, Delivered};
use crate::handover::{self, HandedOver};
use crate::lane::{self, ByLane};
use crate::metrics::Tally;
use crate::plan::{self, Found};
use crate::recover::recover;
use crate::waiting::{self, Due};

/// Runs a batch, then writes its metrics (EMF lines) where `d.metrics` says.
pub async fn handle<S: Store>(
    d: &Dispatcher<S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let tally = Tally::default();
    let function = event.context.env_config.function_name.clone();
    let (response, lane) = handle_batch(d, event, &tally).await;
    let now_ms = (now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let failures = response.batch_item_failures.len();
    d.metrics
        .write(tally.lines(&function, lane, failures, now_ms));
    Ok(response)
}

/// The batch's work: its jobs and its recovery pages at once; which lane it
/// ran in (for the metrics).
async fn handle_batch<S: Store>(
    d: &Dispatcher<S>,
    event: LambdaEvent<SqsEvent>,
    tally: &Tally,
) -> (SqsBatchResponse, Lane) {
    let cutoff = cutoff(&event.context);
    let received = event.payload.records.len();
    let mut batch = batch::parse(event.payload.records, |arn| d.requeue.trusts(arn));
    let repeated: usize = batch.jobs.iter().map(|j| j.messages.len() - 1).sum();
    tally.received(received, repeated);
    let lane = lane::of_batch(&batch, &d.requeue);
    let pages = std::mem::take(&mut batch.recoveries);
    // Boxed: inline, the stages' futures nest the handler's future past the
    // compiler's query-depth limit (128) when a binary lays it out; boxed, it
    // stays under 96, for one allocation per batch.
    let (mut response, unfinished) = futures_util::future::join(
        Box::pin(run_batch(d, batch, cutoff, tally)),
        recover(d, pages, cutoff),
    )
    .await;
    fail(&mut response, unfinished);
    (response, lane)
}

/// The batch's jobs, stage by stage: those due now are planned, split by
/// lane, then delivered here or handed to the slow lane; the messages of
/// the jobs not done with come back (SQS hands them over again).
async fn run_batch<S: Store>(
    d: &Dispatcher<S>,
    batch: Batch,
    cutoff: Option<Instant>,
    tally: &Tally,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    fail(&mut response, batch.invalid);
    let client = match d.client() {
        Ok(client) => client,
        Err(e) => {
            // Nothing can be sent: every message is left for a later retry.
            tracing::error!(error = %e, "building the delivery client failed");
            for job in batch.jobs {
                fail(&mut response, job.messages);
            }
            return response;
        }
    };

    // Attempts that must wait longer go back on the queue untouched.
    let Due { now: jobs, later } = waiting::due(batch.jobs);
    fail(&mut response, waiting::put_back(d, later).await);

    let Found {
        copies,
        webhooks,
        settings,
        named,
        delivered,
    } = plan::read(d, &jobs, cutoff).await;
    let plans = plan::plan(copies, &webhooks, &settings, &delivered);
    let by_lane: Vec<ByLane> = plans.iter().map(|p| lane::split(p, &d.requeue)).collect();

    let Some(recorded) = deliver::recorded(d, &by_lane, named, cutoff).await else {
        // Without knowing what was sent, sending could duplicate: retry the batch later.
        for job in jobs {
            fail(&mut response, job.messages);
        }
        return response;
    };

    // The hand-over and this lane's own attempts at once: a quiet tenant's
    // delivery never waits for the SendMessageBatch of a noisy tenant's
    // hand-over in the same batch.
    let (handed, delivered) = futures_util::future::join(
        handover::hand_over(d, &by_lane, cutoff),
        deliver::deliver_here(d, client, &by_lane, &recorded, tally, cutoff),
    )
    .await;
    fail(&mut response, returned(delivered, &handed));
    response
}

/// The messages of the jobs not done with. A job is done when its attempts
/// here and its hand-overs are; if either is not, its messages come back,
/// and what was recorded is not made again.
fn returned(delivered: Vec<Delivered<'_>>, handed: &HandedOver) -> Vec<String> {
    let mut messages = Vec::new();
    for Delivered { job, result } in delivered {
        if let Err(why) = result.and_then(|()| handed.of(job)) {
            let job = job.plan.job;
            tracing::debug!(event_id = %job.event.id, reason = why.as_str(), "messages returned to the queue");
            messages.extend(job.messages.iter().cloned());
        }
    }
    messages
}

fn fail(response: &mut SqsBatchResponse, messages: Vec<String>) {
    messages.into_iter().for_each(|m| response.add_failure(m));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{invocation, sqs_event};
    use crate::testing::{dispatcher, settings};

    #[tokio::test]
    async fn a_deferred_client_is_built_by_the_first_batch() {
        let d = dispatcher(&settings());
        assert!(!d.client.is_built(), "nothing built at start");
        let event = r#"{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"ok":true}}"#;
        let batch = sqs_event([
            ("m1".to_owned(), event.to_owned()),
            ("m2".to_owned(), "not json".to_owned()),
        ]);
        let response = handle(&d, invocation(batch, 6000, "r1")).await.unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2"]);
        assert!(d.client.is_built(), "built by the first batch");
    }
}
