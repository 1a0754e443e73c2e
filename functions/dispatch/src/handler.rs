use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use futures_util::future::join_all;
use lambda_runtime::{Context, Error, LambdaEvent};
use shared::delivery::DeliveryClient;
use shared::delivery_log::DeliveryRecord;
use shared::event::{Event, EventId};
use shared::store::{Store, StoreError};
use shared::webhook::now_utc;
use shared::{Settings, Status, TenantId, Webhook, WebhookId};
use tokio::time::Instant;

use crate::batch;

/// The handler returns this long before the invocation's deadline, so that
/// no invocation ever hits the Lambda timeout.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(300);

/// What the handler needs, built once per container.
pub struct Dispatcher<S> {
    store: S,
    client: DeliveryClient,
    delivery_timeout: Duration,
    log_ttl_days: u32,
}

impl<S: Store> Dispatcher<S> {
    pub fn new(store: S, client: DeliveryClient, settings: &Settings) -> Self {
        Self {
            store,
            client,
            delivery_timeout: settings.delivery_timeout,
            log_ttl_days: settings.delivery_log_ttl_days,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}

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

pub async fn handle<S: Store>(
    d: &Dispatcher<S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let cutoff = cutoff(&event.context);
    let batch = batch::parse(event.payload.records);
    let mut response = SqsBatchResponse::default();
    for message_id in batch.invalid {
        response.add_failure(message_id);
    }

    // A read that outlives the cutoff leaves every message of the batch unfinished.
    let webhooks = within(cutoff, webhooks_by_tenant(d, &batch.events))
        .await
        .unwrap_or_default();
    let plans: Vec<Plan> = batch
        .events
        .into_iter()
        .map(|(event, messages)| {
            let targets = match webhooks.get(&event.tenant_id) {
                Some(Ok(all)) => Ok(subscribed(all, &event)),
                _ => Err(()),
            };
            Plan {
                event,
                messages,
                targets,
            }
        })
        .collect();

    let pairs: Vec<(WebhookId, EventId)> = plans
        .iter()
        .filter_map(|p| p.targets.as_ref().ok().map(|t| (p, t)))
        .flat_map(|(p, targets)| targets.iter().map(|w| (w.id, p.event.id.clone())))
        .collect();
    let recorded = match within(cutoff, d.store.recorded_deliveries(&pairs)).await {
        Some(Ok(recorded)) => {
            let mut by_event: HashMap<EventId, HashSet<WebhookId>> = HashMap::new();
            for (webhook, event) in recorded {
                by_event.entry(event).or_default().insert(webhook);
            }
            by_event
        }
        failed => {
            // Without knowing what was sent, sending could duplicate: retry the batch later.
            match failed {
                Some(Err(e)) => tracing::error!(error = %e, "reading recorded deliveries failed"),
                _ => {
                    tracing::warn!("invocation deadline reached while reading recorded deliveries")
                }
            }
            for plan in plans {
                plan.messages
                    .into_iter()
                    .for_each(|m| response.add_failure(m));
            }
            return Ok(response);
        }
    };

    let outcomes = join_all(
        plans
            .iter()
            .map(|plan| run_plan(d, plan, &recorded, cutoff)),
    )
    .await;
    for (plan, done) in plans.into_iter().zip(outcomes) {
        if !done {
            plan.messages
                .into_iter()
                .for_each(|m| response.add_failure(m));
        }
    }
    Ok(response)
}

/// `work`, unless the cutoff comes first.
async fn within<F: Future>(cutoff: Option<Instant>, work: F) -> Option<F::Output> {
    match cutoff {
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        None => Some(work.await),
    }
}

struct Plan<'w> {
    event: Event,
    messages: Vec<String>,
    /// The active webhooks subscribed to the event; `Err` if they could not be read.
    targets: Result<Vec<&'w Webhook>, ()>,
}

/// One store query per tenant in the batch, all at once.
async fn webhooks_by_tenant<S: Store>(
    d: &Dispatcher<S>,
    events: &[(Event, Vec<String>)],
) -> HashMap<TenantId, Result<Vec<Webhook>, StoreError>> {
    let tenants: HashSet<&TenantId> = events.iter().map(|(e, _)| &e.tenant_id).collect();
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

fn subscribed<'w>(webhooks: &'w [Webhook], event: &Event) -> Vec<&'w Webhook> {
    webhooks
        .iter()
        .filter(|w| w.status == Status::Active && w.events.contains(event.event_type))
        .collect()
}

/// Delivers one event to each target not yet recorded, and records each
/// outcome. True when every delivery of the event is recorded before the cutoff.
async fn run_plan<S: Store>(
    d: &Dispatcher<S>,
    plan: &Plan<'_>,
    recorded: &HashMap<EventId, HashSet<WebhookId>>,
    cutoff: Option<Instant>,
) -> bool {
    let Ok(targets) = &plan.targets else {
        return false;
    };
    let event = &plan.event;
    let body = Bytes::from(event.delivery_body());
    let pending = targets.iter().filter(|w| {
        recorded
            .get(&event.id)
            .is_none_or(|done| !done.contains(&w.id))
    });
    let work = join_all(pending.map(|w| deliver_and_record(d, w, event, body.clone())));
    let Some(results) = within(cutoff, work).await else {
        tracing::warn!(event_id = %event.id, "invocation deadline reached before every delivery was recorded");
        return false;
    };
    results.into_iter().all(|ok| ok)
}

async fn deliver_and_record<S: Store>(
    d: &Dispatcher<S>,
    webhook: &Webhook,
    event: &Event,
    body: Bytes,
) -> bool {
    let started = now_utc();
    let deadline = Instant::now() + d.delivery_timeout;
    let attempt = d
        .client
        .deliver(
            &webhook.url,
            &webhook.token,
            &webhook.signing_secret,
            event.id.as_str(),
            body,
            deadline,
        )
        .await;
    tracing::info!(
        webhook_id = %webhook.id,
        event_id = %event.id,
        outcome = attempt.outcome.as_str(),
        status = attempt.status,
        duration_ms = attempt.duration_ms,
        "delivery attempt"
    );
    let record = DeliveryRecord::new(
        webhook.id,
        event.id.clone(),
        event.event_type,
        started,
        attempt,
        d.log_ttl_days,
    );
    match d.store.record_delivery(&record).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(webhook_id = %webhook.id, event_id = %event.id, error = %e, "recording a delivery failed");
            false
        }
    }
}
