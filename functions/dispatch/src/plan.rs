//! The batch's plan: each job with the copy kept of its event and the
//! attempts it makes, read and decided before any attempt is made.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use shared::delivery::Outcome;
use shared::event::{Event, EventId};
use shared::event_log::{Retention, StoredEvent};
use shared::slow_lane::Target;
use shared::store::{AttemptKey, DeliveryStore, EventStore, Kept, SettingsStore, StoreError};
use shared::webhook::now_utc;
use shared::{Status, TenantId, TenantSettings, Webhook, WebhookId};
use tokio::time::Instant;

use crate::Dispatcher;
use crate::batch::{Job, Kind};
use crate::deadline::within;
use crate::unfinished::Unfinished;

/// Which attempt this is.
#[derive(Clone, Copy)]
pub struct Nth {
    pub number: u32,
    pub manual: bool,
    /// The throttle slot (Unix ms) the attempt reserved before it waited.
    pub slot: Option<i64>,
    /// Whether it took a new slot once already, having come back late.
    pub retaken: bool,
}

/// Each tenant's webhooks, or why they could not be read.
pub(crate) type Webhooks = HashMap<TenantId, Result<Vec<Webhook>, StoreError>>;

/// Each tenant's settings, read with its webhooks (the defaults when that
/// read failed: its jobs are not planned then).
pub(crate) type Settings = HashMap<TenantId, TenantSettings>;

/// A job, and what became of the copy of its event.
pub(crate) struct KeptJob<'j> {
    pub job: &'j Job,
    /// A producer's event's copy: written now (`New`) or kept before.
    /// `None` for a targeted message, or a copy that could not be written.
    pub kept: Option<Kept>,
}

/// What planning needs, read at once.
pub(crate) struct Found<'j> {
    /// Each job, with its event's copy.
    pub copies: Vec<KeptJob<'j>>,
    /// The webhooks of each tenant in the batch.
    pub webhooks: Webhooks,
    /// The settings of each tenant in the batch.
    pub settings: Settings,
    /// Which of the attempts targeted messages name are recorded already.
    pub named: Result<HashSet<AttemptKey>, StoreError>,
    /// Which scheduled retries' events are delivered to their webhook already.
    pub delivered: Delivered,
}

/// (tenant, event, webhook) of each scheduled retry whose event has a
/// `delivered` record for that webhook (a redelivery or a recovery got it
/// there first), or why that could not be read.
pub(crate) type Delivered = Result<HashSet<(TenantId, EventId, WebhookId)>, StoreError>;

/// One job's plan.
pub(crate) struct Planned<'b> {
    pub job: &'b Job,
    pub kept: Option<Kept>,
    /// The tenant's settings: what its delivery records keep.
    pub settings: TenantSettings,
    /// The attempts to make; `Err` if the job cannot go on now (a read or a
    /// write failed) and its messages must come back.
    pub targets: Result<Vec<(&'b Webhook, Nth)>, Unfinished>,
}

impl Planned<'_> {
    /// A producer's event seen here for the first time (its copy was just
    /// written): none of its attempts can be recorded yet.
    pub(crate) fn is_new(&self) -> bool {
        self.kept == Some(Kept::New)
    }
}

/// Reads the tenants' webhooks and settings and then keeps the new events'
/// copies as those settings say; beside that, reads whether the attempts
/// that targeted messages name are recorded. A slow-lane attempt starts
/// after one DynamoDB round trip, a main-lane one after two: its event's
/// copy must be kept before a thin receiver fetches it, and what is kept
/// is the tenant's choice. A read or write that outlives the cutoff leaves
/// every job unplanned.
pub(crate) async fn read<'j, S>(
    d: &Dispatcher<S>,
    jobs: &'j [Job],
    cutoff: Option<Instant>,
) -> Found<'j>
where
    S: SettingsStore + EventStore + DeliveryStore,
{
    let named: Vec<AttemptKey> = jobs.iter().filter_map(named_attempt).collect();
    let tenants_then_copies = async {
        let (webhooks, settings) = tenants(d, jobs).await;
        let copies = keep_events(d, jobs, &webhooks, &settings).await;
        (webhooks, settings, copies)
    };
    let reads = within(
        cutoff,
        futures_util::future::join3(
            tenants_then_copies,
            d.store.recorded_deliveries(&named),
            delivered_already(d, jobs),
        ),
    )
    .await;
    match reads {
        Some(((webhooks, settings, copies), named, delivered)) => Found {
            copies,
            webhooks,
            settings,
            named,
            delivered,
        },
        // Nothing is planned, so nothing needs to be known recorded.
        None => Found {
            copies: jobs.iter().map(|job| KeptJob { job, kept: None }).collect(),
            webhooks: HashMap::new(),
            settings: HashMap::new(),
            named: Ok(HashSet::new()),
            delivered: Ok(HashSet::new()),
        },
    }
}

/// Each job's attempts: a producer's event goes to every subscribed active
/// webhook of its tenant once its copy is kept; a targeted message to the
/// webhook it names, but a scheduled retry to none once its event is
/// delivered there.
pub(crate) fn plan<'b>(
    copies: Vec<KeptJob<'b>>,
    webhooks: &'b Webhooks,
    settings: &Settings,
    delivered: &Delivered,
) -> Vec<Planned<'b>> {
    copies
        .into_iter()
        .map(|KeptJob { job, kept }| {
            let targets = match (webhooks.get(&job.event.tenant_id), &job.kind) {
                (Some(Ok(all)), Kind::Fanout) if kept.is_some() => Ok(subscribed(all, &job.event)),
                (Some(Ok(all)), Kind::Targeted(target)) if target.manual => {
                    Ok(targeted(all, &job.event, target))
                }
                (Some(Ok(all)), Kind::Targeted(target)) => match delivered {
                    Ok(done) if done.contains(&retry_of(job, target)) => {
                        tracing::info!(webhook_id = %target.webhook_id, event_id = %job.event.id, attempt = target.attempt, "retry dropped: the event is delivered to this webhook already");
                        Ok(Vec::new())
                    }
                    Ok(_) => Ok(targeted(all, &job.event, target)),
                    Err(_) => Err(Unfinished::NotPlanned),
                },
                _ => Err(Unfinished::NotPlanned),
            };
            let settings = settings
                .get(&job.event.tenant_id)
                .copied()
                .unwrap_or_default();
            Planned {
                job,
                kept,
                settings,
                targets,
            }
        })
        .collect()
}

/// A scheduled attempt that has waited on the queue: a retry, or a
/// throttled attempt back for its slot (not a manual one, nor a hand-over).
fn has_waited(target: &Target) -> bool {
    !target.manual && (target.attempt > 1 || target.slot.is_some())
}

/// Who a scheduled retry is for.
fn retry_of(job: &Job, target: &Target) -> (TenantId, EventId, WebhookId) {
    (
        job.event.tenant_id.clone(),
        job.event.id.clone(),
        target.webhook_id,
    )
}

/// Which of the batch's scheduled attempts that have waited (retries, and
/// throttled attempts back for their slot) have their event delivered to
/// their webhook already: one query of the event's partition each. An
/// attempt handed over by the main lane, seconds after its event, is not
/// read for: nothing but that attempt could have delivered it yet.
async fn delivered_already<S: DeliveryStore>(d: &Dispatcher<S>, jobs: &[Job]) -> Delivered {
    let retries: Vec<(TenantId, EventId, WebhookId)> = jobs
        .iter()
        .filter_map(|job| match &job.kind {
            Kind::Targeted(target) if has_waited(target) => Some(retry_of(job, target)),
            _ => None,
        })
        .collect();
    let found = join_all(
        retries
            .iter()
            .map(|(tenant, event, webhook)| d.store.deliveries_to(tenant, event, *webhook)),
    )
    .await;
    let mut delivered = HashSet::new();
    for (retry, records) in retries.into_iter().zip(found) {
        let records = records.inspect_err(|e| {
            tracing::error!(event_id = %retry.1, error = %e, "reading a retry's earlier attempts failed");
        })?;
        if records.iter().any(|r| r.outcome == Outcome::Delivered) {
            delivered.insert(retry);
        }
    }
    Ok(delivered)
}

/// The one attempt a targeted message names.
fn named_attempt(job: &Job) -> Option<AttemptKey> {
    let Kind::Targeted(target) = &job.kind else {
        return None;
    };
    Some(AttemptKey::of(
        &job.event.tenant_id,
        &job.event.id,
        target.webhook_id,
        target.attempt,
    ))
}

/// One store query per tenant in the batch, all at once: its webhooks and
/// its settings.
async fn tenants<S: SettingsStore>(d: &Dispatcher<S>, jobs: &[Job]) -> (Webhooks, Settings) {
    let tenants: HashSet<&TenantId> = jobs.iter().map(|j| &j.event.tenant_id).collect();
    let found = join_all(tenants.iter().map(|t| d.store.webhooks_with_settings(t))).await;
    let mut webhooks = HashMap::with_capacity(found.len());
    let mut settings = HashMap::with_capacity(found.len());
    for (tenant, result) in tenants.into_iter().zip(found) {
        let read = match result {
            Ok((hooks, chosen)) => {
                settings.insert(tenant.clone(), chosen);
                Ok(hooks)
            }
            Err(e) => {
                tracing::error!(tenant_id = %tenant, error = %e, "reading webhooks failed");
                Err(e)
            }
        };
        webhooks.insert(tenant.clone(), read);
    }
    (webhooks, settings)
}

/// Keeps a copy of each producer's event (for `GET /events`, thin
/// receivers and redelivery) as its tenant's settings say, the batch's
/// copies in one store call. An event not kept is not delivered yet (its
/// message comes back). A tenant without any webhook keeps nothing: no
/// one subscribed, so there is nothing to catch up on (and a purged
/// tenant's queued events leave no data behind).
async fn keep_events<'j, S: EventStore>(
    d: &Dispatcher<S>,
    jobs: &'j [Job],
    webhooks: &Webhooks,
    settings: &Settings,
) -> Vec<KeptJob<'j>> {
    let now = now_utc();
    let keeps = |job: &&Job| {
        matches!(job.kind, Kind::Fanout)
            && matches!(webhooks.get(&job.event.tenant_id), Some(Ok(all)) if !all.is_empty())
    };
    let copies: Vec<StoredEvent> = jobs
        .iter()
        .filter(keeps)
        .map(|job| {
            let tenant = settings
                .get(&job.event.tenant_id)
                .copied()
                .unwrap_or_default();
            let retention = Retention {
                event_days: d.settings.event_retention_days,
                payload_hours: tenant.payload_retention_hours,
            };
            StoredEvent::new(&job.event, now, retention)
        })
        .collect();
    let mut kept = d.store.put_events(&copies).await.into_iter();
    jobs.iter()
        .map(|job| {
            let kept = match (&job.kind, webhooks.get(&job.event.tenant_id)) {
                (Kind::Fanout, _) if keeps(&job) => match kept.next() {
                    Some(Ok(kept)) => Some(kept),
                    Some(Err(e)) => {
                        tracing::error!(event_id = %job.event.id, error = %e, "keeping the event failed");
                        None
                    }
                    None => None,
                },
                // No webhook: nothing to keep or deliver, so nothing can be
                // recorded yet either.
                (Kind::Fanout, Some(Ok(_))) => Some(Kept::New),
                _ => None,
            };
            KeptJob { job, kept }
        })
        .collect()
}

/// Every active webhook subscribed to the event, first attempt; a notice
/// never goes to the webhook it is about.
fn subscribed<'w>(webhooks: &'w [Webhook], event: &Event) -> Vec<(&'w Webhook, Nth)> {
    let first = Nth {
        number: 1,
        manual: false,
        slot: None,
        retaken: false,
    };
    webhooks
        .iter()
        .filter(|w| w.status == Status::Active && w.events.contains(event.event_type))
        .filter(|w| !shared::notice::is_about(event, w.id))
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
            slot: target.slot,
            retaken: target.retaken,
        },
    )]
}

#[cfg(test)]
mod tests {
    use shared::UrlPolicy;
    use shared::slow_lane::Target;
    use shared::store::{Kept, StoreError};

    use super::*;
    use crate::testing::{job, tenant, webhook};

    fn webhooks(all: Vec<Webhook>) -> Webhooks {
        HashMap::from([(tenant(), Ok(all))])
    }

    fn numbers(plan: &Planned<'_>) -> Result<Vec<(u32, bool)>, Unfinished> {
        let targets = plan.targets.as_ref().map_err(|why| *why)?;
        Ok(targets.iter().map(|(_, n)| (n.number, n.manual)).collect())
    }

    /// A producer's event goes to each active subscribed webhook, first
    /// attempt, once its copy is kept; without its copy, or its tenant's
    /// webhooks, it waits (its messages come back).
    #[test]
    fn a_producers_event_is_planned_once_kept() {
        let url = "https://hooks.example.com/x";
        let active = webhook(url, UrlPolicy::default());
        let mut inactive = webhook(url, UrlPolicy::default());
        inactive.status = Status::Inactive;
        let all = webhooks(vec![active, inactive]);
        let (kept, lost) = (job(Kind::Fanout, "m0"), job(Kind::Fanout, "m1"));
        let copies = vec![
            KeptJob {
                job: &kept,
                kept: Some(Kept::New),
            },
            KeptJob {
                job: &lost,
                kept: None,
            },
        ];
        let plans = plan(copies, &all, &Settings::new(), &Ok(HashSet::new()));
        assert_eq!(numbers(&plans[0]), Ok(vec![(1, false)]));
        assert!(plans[0].is_new());
        assert_eq!(numbers(&plans[1]), Err(Unfinished::NotPlanned));

        let unread: Webhooks = HashMap::from([(tenant(), Err(StoreError::NotFound))]);
        let copies = vec![KeptJob {
            job: &kept,
            kept: Some(Kept::Before),
        }];
        assert_eq!(
            numbers(&plan(copies, &unread, &Settings::new(), &Ok(HashSet::new()))[0]),
            Err(Unfinished::NotPlanned)
        );
    }

    /// A scheduled retry needs its webhook active; a redelivery the customer
    /// asked for goes out whatever its status; a webhook gone takes none.
    #[test]
    fn a_targeted_message_is_planned_at_the_webhook_it_names() {
        let mut inactive = webhook("https://hooks.example.com/x", UrlPolicy::default());
        inactive.status = Status::Inactive;
        let id = inactive.id;
        let all = webhooks(vec![inactive]);
        let retry = job(Kind::Targeted(Target::retry(id, 3, None)), "m0");
        let manual = job(Kind::Targeted(Target::manual(id, 2)), "m1");
        let gone = job(
            Kind::Targeted(Target::manual(shared::WebhookId::generate(), 2)),
            "m2",
        );
        let copies = [&retry, &manual, &gone]
            .into_iter()
            .map(|job| KeptJob { job, kept: None })
            .collect();
        let plans = plan(copies, &all, &Settings::new(), &Ok(HashSet::new()));
        assert_eq!(numbers(&plans[0]), Ok(vec![]));
        assert_eq!(numbers(&plans[1]), Ok(vec![(2, true)]));
        assert_eq!(numbers(&plans[2]), Ok(vec![]));
        assert_eq!(
            named_attempt(&manual),
            Some(AttemptKey::of(
                &manual.event.tenant_id,
                &manual.event.id,
                id,
                2
            ))
        );
    }

    /// A scheduled retry whose event is delivered to its webhook already
    /// (a redelivery got there first) makes no attempt; a manual one still
    /// does; when that cannot be read, the retry waits (its message comes
    /// back).
    #[test]
    fn a_retry_of_an_event_delivered_since_is_dropped() {
        let active = webhook("https://hooks.example.com/x", UrlPolicy::default());
        let id = active.id;
        let all = webhooks(vec![active]);
        let retry = job(Kind::Targeted(Target::retry(id, 2, None)), "m0");
        let manual = job(Kind::Targeted(Target::manual(id, 101)), "m1");
        let copies = || {
            [&retry, &manual]
                .into_iter()
                .map(|job| KeptJob { job, kept: None })
                .collect::<Vec<_>>()
        };
        let delivered: Delivered = Ok(HashSet::from([(
            retry.event.tenant_id.clone(),
            retry.event.id.clone(),
            id,
        )]));
        let plans = plan(copies(), &all, &Settings::new(), &delivered);
        assert_eq!(numbers(&plans[0]), Ok(vec![]));
        assert_eq!(numbers(&plans[1]), Ok(vec![(101, true)]));
        // Not delivered yet: the retry goes out.
        let plans = plan(copies(), &all, &Settings::new(), &Ok(HashSet::new()));
        assert_eq!(numbers(&plans[0]), Ok(vec![(2, false)]));
        let unread: Delivered = Err(StoreError::Backend("down".into()));
        let plans = plan(copies(), &all, &Settings::new(), &unread);
        assert_eq!(numbers(&plans[0]), Err(Unfinished::NotPlanned));
        assert_eq!(numbers(&plans[1]), Ok(vec![(101, true)]));
    }

    /// Only attempts that have waited on the queue are read for a delivery
    /// made meanwhile: retries and throttled attempts back for their slot,
    /// not hand-overs nor manual attempts.
    #[test]
    fn only_attempts_that_waited_are_checked_for_a_delivery_since() {
        let id = shared::WebhookId::generate();
        assert!(has_waited(&Target::retry(id, 2, None)));
        let back = Target {
            slot: Some(1),
            ..Target::now(id, 1, false)
        };
        assert!(has_waited(&back));
        assert!(!has_waited(&Target::now(id, 1, false)), "a hand-over");
        assert!(!has_waited(&Target::manual(id, 101)));
    }
}
