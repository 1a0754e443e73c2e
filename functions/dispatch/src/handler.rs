//! The SQS handler: events in, one signed POST per (event, subscribed webhook)
//! out, each attempt recorded; retries and redeliveries come back as
//! messages that target one webhook.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use futures_util::future::join_all;
use lambda_runtime::{Context, Error, LambdaEvent};
use shared::delivery::DeliveryClient;
use shared::event::Event;
use shared::event_log::StoredEvent;
use shared::recovery::Recovery;
use shared::slow_lane::Continuation;
use shared::slow_lane::{Target, TargetedMessage};
use shared::store::{AttemptKey, Kept, Store, StoreError};
use shared::webhook::now_utc;
use shared::{Lane, Status, TenantId, Webhook};
use tokio::time::Instant;

use crate::Dispatcher;
use crate::attempt::{Delivery, Nth, deliver_and_record, schedule};
use crate::batch::{self, Job, Kind};
use crate::lane::Marks;
use crate::metrics::Tally;

/// The handler returns this long before the invocation's deadline, so that
/// no invocation ever hits the Lambda timeout.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(300);

/// When the handler must have returned: the context's deadline less the margin.
/// A context without a deadline (unit tests) sets none.
fn cutoff(context: &Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let left = Duration::from_millis(
        u64::try_from(u128::from(context.deadline).saturating_sub(now_ms)).unwrap_or(0),
    );
    Some(Instant::now() + left.saturating_sub(SAFETY_MARGIN))
}

/// `work`, unless the cutoff comes first.
async fn within<F: Future>(cutoff: Option<Instant>, work: F) -> Option<F::Output> {
    match cutoff {
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        None => Some(work.await),
    }
}

/// What one job comes to once the tenant's webhooks are known.
struct Plan<'w> {
    job: Job,
    /// The attempts to make; `Err` if the job cannot go on now (a read or a
    /// write failed) and its messages must come back.
    targets: Result<Vec<(&'w Webhook, Nth)>, Unfinished>,
    /// A producer's event seen here for the first time (its copy was just
    /// written): none of its attempts can be recorded yet.
    new: bool,
}

/// Why a job's messages go back to the queue (SQS hands them over again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// The tenant's webhooks could not be read, or the event not kept.
    NotPlanned,
    /// Handing an attempt to the slow lane failed.
    NotForwarded,
    /// An attempt's outcome could not be recorded.
    Unrecorded,
    /// An attempt's retry could not be queued (so it is not recorded either).
    RetryNotQueued,
    /// The invocation's deadline came first.
    Deadline,
}

impl Unfinished {
    fn as_str(self) -> &'static str {
        match self {
            Unfinished::NotPlanned => "not_planned",
            Unfinished::NotForwarded => "not_forwarded",
            Unfinished::Unrecorded => "unrecorded",
            Unfinished::RetryNotQueued => "retry_not_queued",
            Unfinished::Deadline => "deadline",
        }
    }
}

/// A job's pending attempts, by where they are made.
struct Work<'p> {
    plan: &'p Plan<'p>,
    /// The lane this invocation runs the job's attempts in.
    lane: Lane,
    /// Made here and now.
    deliver: Vec<(&'p Webhook, Nth)>,
    /// Handed to the slow lane: their webhooks are marked slow.
    forward: Vec<(&'p Webhook, Nth)>,
}

fn fail(response: &mut SqsBatchResponse, messages: Vec<String>) {
    messages.into_iter().for_each(|m| response.add_failure(m));
}

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

/// The batch's work; which lane it ran in (for the metrics).
async fn handle_batch<S: Store>(
    d: &Dispatcher<S>,
    event: LambdaEvent<SqsEvent>,
    tally: &Tally,
) -> (SqsBatchResponse, Lane) {
    let cutoff = cutoff(&event.context);
    let received = event.payload.records.len();
    let batch = batch::parse(event.payload.records, |arn| d.requeue.trusts(arn));
    let repeated: usize = batch.jobs.iter().map(|j| j.messages.len() - 1).sum();
    tally.received(received, repeated);
    // Targeted messages come from the slow lane's queue when there is one.
    let lane = if d.requeue.has_slow_lane()
        && batch
            .jobs
            .iter()
            .any(|j| matches!(j.kind, Kind::Targeted(_)))
    {
        Lane::Slow
    } else {
        Lane::Main
    };
    let mut batch = batch;
    let pages = std::mem::take(&mut batch.recoveries);
    let lane = if pages.is_empty() { lane } else { Lane::Slow };
    let (mut response, unfinished) = futures_util::future::join(
        run_batch(d, batch, cutoff, tally),
        recover(d, pages, cutoff),
    )
    .await;
    fail(&mut response, unfinished);
    (response, lane)
}

/// The most a recovery page works before it saves and hands the rest on.
const RECOVERY_PAGE_TIME: Duration = Duration::from_secs(4);

/// Takes each recovery up where its message says (see
/// [`shared::recovery`]); the messages of those that could not go on come
/// back (a page done twice queues nothing twice).
async fn recover<S: Store>(
    d: &Dispatcher<S>,
    pages: Vec<(Continuation, String)>,
    cutoff: Option<Instant>,
) -> Vec<String> {
    if pages.is_empty() {
        return Vec::new();
    }
    let recovery = Recovery::new(&d.store, &d.requeue, &d.settings);
    // Paging stops a second before the cutoff: saving and handing on follow.
    let budget = Instant::now() + RECOVERY_PAGE_TIME;
    let deadline = Some(cutoff.map_or(budget, |c| budget.min(c - Duration::from_secs(1))));
    let done = join_all(pages.iter().map(|(next, message_id)| async {
        match within(cutoff, recovery.resume(next, deadline)).await {
            Some(Ok(())) => None,
            Some(Err(e)) => {
                tracing::error!(tenant_id = %next.tenant_id, webhook_id = %next.webhook_id, recovery_id = %next.recovery_id, error = %e, "a recovery page failed");
                Some(message_id.clone())
            }
            None => {
                tracing::warn!(recovery_id = %next.recovery_id, "invocation deadline reached during a recovery page");
                Some(message_id.clone())
            }
        }
    }))
    .await;
    done.into_iter().flatten().collect()
}

async fn run_batch<S: Store>(
    d: &Dispatcher<S>,
    batch: batch::Batch,
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
    let (jobs, waiting) = split_waiting(batch.jobs);
    for (job, wait) in waiting {
        if let Kind::Targeted(target) = &job.kind
            && let Err(e) = schedule(d, &job.event, target.clone(), wait).await
        {
            tracing::error!(event_id = %job.event.id, error = %e, "re-queueing a waiting retry failed");
            fail(&mut response, job.messages);
        }
    }

    // The tenants' webhooks, the new events' copies and whether the attempts
    // that targeted messages name are recorded, all at once: a slow-lane
    // attempt starts after one DynamoDB round trip, not two. A read or write
    // that outlives the cutoff leaves the jobs it concerns unfinished.
    let named: Vec<AttemptKey> = jobs.iter().filter_map(named_attempt).collect();
    let reads = within(
        cutoff,
        futures_util::future::join3(
            webhooks_by_tenant(d, &jobs),
            keep_events(d, &jobs),
            d.store.recorded_deliveries(&named),
        ),
    )
    .await;
    let (webhooks, kept, named_recorded) = match reads {
        Some((webhooks, kept, recorded)) => (webhooks, kept, recorded),
        // Nothing is planned, so nothing needs to be known recorded.
        None => (HashMap::new(), HashMap::new(), Ok(HashSet::new())),
    };
    let plans: Vec<Plan> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let copy = kept.get(&i).copied();
            let targets = match (webhooks.get(&job.event.tenant_id), &job.kind) {
                (Some(Ok(all)), Kind::Fanout) if copy.is_some() => Ok(subscribed(all, &job.event)),
                (Some(Ok(all)), Kind::Targeted(target)) => Ok(targeted(all, &job.event, target)),
                _ => Err(Unfinished::NotPlanned),
            };
            let new = copy == Some(Kept::New);
            Plan { job, targets, new }
        })
        .collect();

    // Attempts handed to the slow lane are checked there: only the ones
    // made here need to know what is already recorded. A new event has no
    // record yet, so a batch of new events (the usual case) reads nothing
    // here and its deliveries start one DynamoDB round trip sooner; the
    // targeted attempts were read above.
    let work: Vec<Result<Work, Unfinished>> = plans.iter().map(|p| split(d, p)).collect();
    let keys: Vec<AttemptKey> = work
        .iter()
        .flatten()
        .filter(|w| !w.plan.new && matches!(w.plan.job.kind, Kind::Fanout))
        .flat_map(|w| {
            let event = &w.plan.job.event;
            w.deliver.iter().map(|(webhook, nth)| AttemptKey {
                tenant: event.tenant_id.clone(),
                webhook: webhook.id,
                event: event.id.clone(),
                attempt: nth.number,
            })
        })
        .collect();
    let again_recorded = within(cutoff, d.store.recorded_deliveries(&keys)).await;
    let recorded = match (named_recorded, again_recorded) {
        (Ok(mut named), Some(Ok(again))) => {
            named.extend(again);
            named
        }
        (named, again) => {
            // Without knowing what was sent, sending could duplicate: retry the batch later.
            match (named, again) {
                (Err(e), _) | (_, Some(Err(e))) => {
                    tracing::error!(error = %e, "reading recorded deliveries failed")
                }
                _ => {
                    tracing::warn!("invocation deadline reached while reading recorded deliveries")
                }
            }
            for plan in plans {
                fail(&mut response, plan.job.messages);
            }
            return response;
        }
    };

    // The hand-over and this lane's own attempts at once: a quiet tenant's
    // delivery never waits for the SendMessageBatch of a noisy tenant's
    // hand-over in the same batch. A job is done when both are; if either
    // fails, its messages come back, and what was recorded is not made again.
    let (marks, recorded) = (&Marks::default(), &recorded);
    let handing_over = async {
        within(cutoff, forward(d, &work))
            .await
            .unwrap_or_else(|| vec![Err(Unfinished::Deadline); work.len()])
    };
    let delivering = join_all(work.iter().map(|w| async move {
        let w = w.as_ref().map_err(|why| *why)?;
        run_plan(d, client, w, recorded, (marks, tally), cutoff).await
    }));
    let (forwarded, delivered) = futures_util::future::join(handing_over, delivering).await;
    let outcomes = delivered
        .into_iter()
        .zip(forwarded)
        .map(|(made, sent)| made.and(sent));
    for (plan, outcome) in plans.into_iter().zip(outcomes) {
        if let Err(why) = outcome {
            tracing::debug!(event_id = %plan.job.event.id, reason = why.as_str(), "messages returned to the queue");
            fail(&mut response, plan.job.messages);
        }
    }
    response
}

/// The one attempt a targeted message names.
fn named_attempt(job: &Job) -> Option<AttemptKey> {
    let Kind::Targeted(target) = &job.kind else {
        return None;
    };
    Some(AttemptKey {
        tenant: job.event.tenant_id.clone(),
        webhook: target.webhook_id,
        event: job.event.id.clone(),
        attempt: target.attempt,
    })
}

/// Separates the targeted attempts whose `not_before` is still ahead (with
/// what is left to wait) from the work to do now.
fn split_waiting(jobs: Vec<Job>) -> (Vec<Job>, Vec<(Job, Duration)>) {
    let now = now_utc().unix_timestamp();
    let mut ready = Vec::with_capacity(jobs.len());
    let mut waiting = Vec::new();
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
            waiting.push((job, Duration::from_secs(left.unsigned_abs())));
        } else {
            ready.push(job);
        }
    }
    (ready, waiting)
}

/// One store query per tenant in the batch, all at once.
async fn webhooks_by_tenant<S: Store>(
    d: &Dispatcher<S>,
    jobs: &[Job],
) -> HashMap<TenantId, Result<Vec<Webhook>, StoreError>> {
    let tenants: HashSet<&TenantId> = jobs.iter().map(|j| &j.event.tenant_id).collect();
    let found = join_all(tenants.iter().map(|t| d.store.webhooks_of(t))).await;
    tenants
        .into_iter()
        .zip(found)
        .map(|(tenant, result)| {
            if let Err(e) = &result {
                tracing::error!(tenant_id = %tenant, error = %e, "reading webhooks failed");
            }
            (tenant.clone(), result)
        })
        .collect()
}

/// Keeps a copy of each producer's event (for `GET /events` and redelivery):
/// one write per event. Returns, by job index, each copy that is kept and
/// whether it is new; an event not kept is not delivered yet (its message
/// comes back).
async fn keep_events<S: Store>(d: &Dispatcher<S>, jobs: &[Job]) -> HashMap<usize, Kept> {
    let now = now_utc();
    let writes = jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| matches!(j.kind, Kind::Fanout))
        .map(|(i, j)| async move {
            let stored = StoredEvent::new(&j.event, now, d.settings.event_retention_days);
            match d.store.put_event(&stored).await {
                Ok(kept) => Some((i, kept)),
                Err(e) => {
                    tracing::error!(event_id = %j.event.id, error = %e, "keeping the event failed");
                    None
                }
            }
        });
    join_all(writes).await.into_iter().flatten().collect()
}

fn subscribed<'w>(webhooks: &'w [Webhook], event: &Event) -> Vec<(&'w Webhook, Nth)> {
    let first = Nth {
        number: 1,
        manual: false,
    };
    webhooks
        .iter()
        .filter(|w| w.status == Status::Active && w.events.contains(event.event_type))
        .map(|w| (w, first))
        .collect()
}

/// The webhook a targeted message names, if it still exists. A scheduled
/// retry also needs it to be active and still subscribed; a redelivery the
/// customer asked for goes out whatever its status.
fn targeted<'w>(
    webhooks: &'w [Webhook],
    event: &Event,
    target: &Target,
) -> Vec<(&'w Webhook, Nth)> {
    let Some(webhook) = webhooks.iter().find(|w| w.id == target.webhook_id) else {
        tracing::info!(webhook_id = %target.webhook_id, event_id = %event.id, "the webhook of a retry no longer exists");
        return Vec::new();
    };
    let wanted = target.manual
        || (webhook.status == Status::Active && webhook.events.contains(event.event_type));
    if !wanted {
        tracing::info!(webhook_id = %webhook.id, event_id = %event.id, "retry dropped: the webhook is inactive or unsubscribed");
        return Vec::new();
    }
    vec![(
        webhook,
        Nth {
            number: target.attempt,
            manual: target.manual,
        },
    )]
}

/// The attempts of a plan, split between this lane and the slow lane. A
/// producer's event (the main lane) hands over the attempts of webhooks
/// marked slow, when a slow lane exists; a targeted message (the slow lane)
/// makes its attempt itself.
fn split<'p>(d: &Dispatcher<impl Store>, plan: &'p Plan<'p>) -> Result<Work<'p>, Unfinished> {
    let targets = plan.targets.as_ref().map_err(|why| *why)?;
    // Targeted messages come from the slow lane's queue when there is one.
    let slow_lane = d.requeue.has_slow_lane();
    let lane = match &plan.job.kind {
        Kind::Targeted(_) if slow_lane => Lane::Slow,
        _ => Lane::Main,
    };
    let handing_over = lane == Lane::Main && slow_lane;
    let (forward, deliver) = targets
        .iter()
        .copied()
        .partition(|(w, _)| handing_over && w.slow_since.is_some());
    Ok(Work {
        plan,
        lane,
        deliver,
        forward,
    })
}

/// Sends every attempt to hand over, ten to a request; per job, whether all
/// of its attempts reached the slow lane's queue.
async fn forward(
    d: &Dispatcher<impl Store>,
    work: &[Result<Work<'_>, Unfinished>],
) -> Vec<Result<(), Unfinished>> {
    let mut owners = Vec::new();
    let mut messages = Vec::new();
    for (i, w) in work.iter().enumerate() {
        let Ok(w) = w else { continue };
        for (webhook, nth) in &w.forward {
            owners.push(i);
            messages.push(TargetedMessage {
                target: Target {
                    webhook_id: webhook.id,
                    attempt: nth.number,
                    manual: nth.manual,
                    not_before: None,
                },
                event: w.plan.job.event.clone(),
            });
        }
    }
    let mut sent = vec![Ok(()); work.len()];
    if messages.is_empty() {
        return sent;
    }
    for ((owner, message), result) in owners
        .into_iter()
        .zip(&messages)
        .zip(d.requeue.send_now(&messages).await)
    {
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
                sent[owner] = Err(Unfinished::NotForwarded);
            }
        }
    }
    sent
}

/// Makes each attempt of a job that stays in this lane and is not recorded
/// yet. Ok when every one is recorded before the cutoff.
async fn run_plan<S: Store>(
    d: &Dispatcher<S>,
    client: &DeliveryClient,
    work: &Work<'_>,
    recorded: &HashSet<AttemptKey>,
    (marks, tally): (&Marks, &Tally),
    cutoff: Option<Instant>,
) -> Result<(), Unfinished> {
    if work.deliver.is_empty() {
        return Ok(());
    }
    let event = &work.plan.job.event;
    let body = Bytes::from(event.delivery_body());
    // Nothing recorded yet is the normal case: no key to build per delivery.
    let pending: Vec<_> = work
        .deliver
        .iter()
        .filter(|(w, nth)| {
            recorded.is_empty()
                || !recorded.contains(&AttemptKey {
                    tenant: event.tenant_id.clone(),
                    webhook: w.id,
                    event: event.id.clone(),
                    attempt: nth.number,
                })
        })
        .collect();
    tally.skipped(work.deliver.len() - pending.len());
    let attempts = pending.into_iter().map(|(w, nth)| {
        let delivery = Delivery {
            client,
            webhook: w,
            event,
            body: body.clone(),
            nth: *nth,
            lane: work.lane,
            cutoff,
        };
        deliver_and_record(d, delivery, marks, tally)
    });
    let Some(results) = within(cutoff, join_all(attempts)).await else {
        tracing::warn!(event_id = %event.id, "invocation deadline reached before every delivery was recorded");
        return Err(Unfinished::Deadline);
    };
    // Every attempt was made; the first that is not done with says why the
    // messages come back.
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use shared::store::MemoryStore;

    use super::*;
    use crate::local::{invocation, sqs_event};
    use shared::Settings;
    use shared::store::prelude::*;

    fn settings() -> Settings {
        Settings::from_lookup(|name| (name == "TABLE_NAME").then(|| "unused".to_owned()))
            .expect("settings")
    }

    #[tokio::test]
    async fn a_deferred_client_is_built_by_the_first_batch() {
        let d = Dispatcher::with_deferred_client(MemoryStore::default(), &settings());
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

    /// Keeps an event of the webhook's tenant at `at`, with one failed
    /// attempt to the webhook.
    async fn failed_event(
        store: &MemoryStore,
        webhook: &Webhook,
        id: &str,
        at: time::OffsetDateTime,
    ) {
        use shared::delivery::{Attempt, Outcome};
        use shared::delivery_log::DeliveryRecord;
        let raw = format!(
            r#"{{"id":"{id}","tenant_id":"{}","type":"async.completed","timestamp":"{}","data":{{}}}}"#,
            webhook.tenant_id,
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        );
        let event = Event::from_json(&raw).unwrap();
        store
            .put_event(&StoredEvent::new(&event, at, 7))
            .await
            .unwrap();
        let failed = Attempt::bare(Outcome::ConnectError, None, 1);
        let record = DeliveryRecord::new(
            webhook.tenant_id.clone(),
            webhook.id,
            event.id.clone(),
            event.event_type,
            at,
            failed,
            7,
        );
        store.record_delivery(&record).await.unwrap();
    }

    /// Issue 20, item 4: the slow lane takes a recovery up where its
    /// message says, queues what is left within one call's budget, hands the
    /// rest on again, and marks the recovery done at the window's end. A
    /// message of a recovery replaced meanwhile does nothing; one from the
    /// producers' queue is refused.
    #[tokio::test]
    async fn a_recovery_message_queues_the_next_pages_and_hands_the_rest_on() {
        use shared::recovery::{EVENTS_PER_CALL, RecoveryState, Window};
        use shared::requeue::Requeue;
        use shared::slow_lane::{Continuation, RecoveryMessage};
        use shared::store::RecoveryWrite;
        use shared::{EventSet, EventType, UrlPolicy, WebhookUrl};

        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut settings = settings();
        settings.redeliveries_per_minute = 10_000;
        let d = Dispatcher::with_deferred_client(MemoryStore::default(), &settings)
            .with_requeue(Requeue::Memory(sent.clone()));
        let tenant = TenantId::parse("acme").unwrap();
        let now = now_utc();
        let webhook = Webhook::new(
            tenant.clone(),
            WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).unwrap(),
            EventSet::new([EventType::AsyncCompleted]).unwrap(),
            now,
        );
        d.store.create_webhook(&webhook, 50).await.unwrap();
        for i in 0..1_050 {
            let at = now - time::Duration::seconds(i + 10);
            failed_event(&d.store, &webhook, &format!("evt_{i:05}"), at).await;
        }
        let window = Window {
            since: now - time::Duration::hours(1),
            until: now,
        };
        let state = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        let unix = now.unix_timestamp();
        assert!(
            d.store
                .save_recovery(&state, RecoveryWrite::Start { now: unix })
                .await
                .unwrap()
                .applied()
        );
        let message = |after: Option<String>, id: &str| RecoveryMessage {
            recover: Continuation {
                tenant_id: tenant.clone(),
                webhook_id: webhook.id,
                recovery_id: id.to_owned(),
                window,
                after,
            },
        };
        let take = || -> (usize, Vec<RecoveryMessage>) {
            let drained: Vec<(String, std::time::Duration)> =
                sent.lock().unwrap().drain(..).collect();
            let targeted = drained
                .iter()
                .filter(|(b, _)| TargetedMessage::from_json(b).is_ok())
                .count();
            let rest = drained
                .iter()
                .filter_map(|(b, _)| RecoveryMessage::from_json(b).ok())
                .collect();
            (targeted, rest)
        };
        let run = |m: RecoveryMessage| {
            let batch = sqs_event([("r1".to_owned(), m.to_json())]);
            handle(&d, invocation(batch, 6000, "r"))
        };

        // A recovery replaced meanwhile: nothing.
        let stale = run(message(None, "rcv_other")).await.unwrap();
        assert!(stale.batch_item_failures.is_empty());
        assert_eq!(take().0, 0);

        let first = run(message(None, &state.recovery_id)).await.unwrap();
        assert!(first.batch_item_failures.is_empty());
        let (queued, rest) = take();
        assert_eq!((queued, rest.len()), (EVENTS_PER_CALL, 1));
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((saved.counts.queued, saved.done), (1_000, false));

        let second = run(rest.into_iter().next().unwrap()).await.unwrap();
        assert!(second.batch_item_failures.is_empty());
        let (queued, rest) = take();
        assert_eq!((queued, rest.len()), (50, 0));
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (saved.counts.queued, saved.counts.events_checked, saved.done),
            (1_050, 1_050, true)
        );

        // The tenant's checks for this minute (and the next) are spent: the
        // page waits for the next minute, with nothing queued or counted.
        let waiting = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        assert!(
            d.store
                .save_recovery(&waiting, RecoveryWrite::Start { now: unix })
                .await
                .unwrap()
                .applied()
        );
        let checks = shared::store::Allowance::RecoveryChecks;
        let limit = d.settings.recovery_checks_per_minute;
        let minute = checks.window_of(now_utc().unix_timestamp());
        for w in [minute, minute + 1] {
            // Whatever the pages above left of it.
            while d
                .store
                .take_allowance(&tenant, checks, w, 1_000, limit)
                .await
                .unwrap()
                .applied()
            {}
        }
        let paced = run(message(None, &waiting.recovery_id)).await.unwrap();
        assert!(paced.batch_item_failures.is_empty());
        let delays: Vec<std::time::Duration> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(b, _)| RecoveryMessage::from_json(b).is_ok())
            .map(|(_, delay)| *delay)
            .collect();
        assert_eq!(take().0, 0);
        assert_eq!(delays.len(), 1);
        assert!(
            delays[0] > std::time::Duration::ZERO
                && delays[0] <= std::time::Duration::from_secs(120)
        );
        let saved = d
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((saved.counts.events_checked, saved.done), (0, false));

        // Nothing can be queued: the message comes back (SQS hands it over
        // again) and the recovery stays running.
        let mut down = Dispatcher::with_deferred_client(MemoryStore::default(), &settings)
            .with_requeue(Requeue::Disabled);
        down.settings.redeliveries_per_minute = 10_000;
        down.store.create_webhook(&webhook, 50).await.unwrap();
        let at = now - time::Duration::minutes(5);
        failed_event(&down.store, &webhook, "evt_x", at).await;
        let stuck = RecoveryState::start(tenant.clone(), webhook.id, window, now);
        assert!(
            down.store
                .save_recovery(&stuck, RecoveryWrite::Start { now: unix })
                .await
                .unwrap()
                .applied()
        );
        let batch = sqs_event([("d1".to_owned(), message(None, &stuck.recovery_id).to_json())]);
        let back = handle(&down, invocation(batch, 6000, "d")).await.unwrap();
        assert_eq!(back.batch_item_failures.len(), 1);
        let saved = down
            .store
            .recovery(&tenant, webhook.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!saved.done && saved.stopped.is_none());

        // From the producers' queue, it is forged.
        let lanes = Dispatcher::with_deferred_client(MemoryStore::default(), &settings)
            .with_requeue(Requeue::lanes(
                "https://sqs.local/000000000000/events",
                "https://sqs.local/000000000000/slow",
            ));
        let forged = crate::local::sqs_event_from(
            Some("https://sqs.local/000000000000/events"),
            [("f1".to_owned(), message(None, &state.recovery_id).to_json())],
        );
        let refused = handle(&lanes, invocation(forged, 6000, "f")).await.unwrap();
        assert_eq!(refused.batch_item_failures.len(), 1);
    }
}
