//! Asking again: manual attempts of a kept event, queued for the dispatcher.
//! Shared by `POST /events/{id}/redeliver` (every subscribed webhook) and
//! `POST /webhooks/{id}/deliveries/{delivery_id}/redeliver` (one webhook).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::json;
use shared::WebhookId;
use shared::audit::{self, Action, Author, TargetKind};
use shared::event::Event;
use shared::event_log::{PayloadState, StoredEvent};
use shared::requeue::Requeue;
use shared::slow_lane::{Target, TargetedMessage};
use shared::store::{Allowance, AllowanceStore, EventStore};
use time::OffsetDateTime;

use crate::{ApiError, App, allowance, response};

/// One attempt queued.
#[derive(Serialize)]
struct Queued {
    webhook_id: String,
    attempt: u32,
    delivery_id: String,
}

/// The answer to a redelivery (202).
#[derive(Serialize)]
struct Redelivery<'a> {
    event_id: &'a str,
    queued: Vec<Queued>,
}

/// The event to send again, or why it cannot be: its payload is no longer
/// kept at `now`.
fn envelope(event: &StoredEvent, now: i64) -> Result<Event, ApiError> {
    let why = match event.payload_state(now) {
        PayloadState::Kept => {
            return event
                .to_event(now)
                .ok_or(ApiError::PayloadNotKept("is not kept"));
        }
        PayloadState::Deleted => return Err(ApiError::PayloadDeleted),
        PayloadState::TooLarge => "was too large to keep",
        PayloadState::NotKept => "is not kept (the tenant's payload_retention_hours is 0)",
        PayloadState::Expired => "is past the tenant's payload_retention_hours",
    };
    Err(ApiError::PayloadNotKept(why))
}

/// Queues a manual attempt of `event` to each of `webhooks` on the slow
/// lane (when there is one), and answers 202 with what was queued: a
/// customer's redeliveries never take the main lane's capacity, and a
/// tenant's budget per minute bounds what it can ask of the slow lane. Each
/// attempt gets a number of its own (101 and up), so it neither cancels nor
/// is cancelled by an automatic retry or another call.
pub async fn queue<S: EventStore + AllowanceStore>(
    app: &App<S>,
    author: &Author,
    event: &StoredEvent,
    webhooks: Vec<WebhookId>,
) -> Result<Response<Body>, ApiError> {
    let tenant = &author.tenant;
    if matches!(app.requeue, Requeue::Disabled) {
        return Err(ApiError::QueueUnavailable);
    }
    let envelope = envelope(event, OffsetDateTime::now_utc().unix_timestamp())?;
    allowance::take(app, tenant, Allowance::Redeliveries, webhooks.len()).await?;
    let entry = author.entry(
        Action::EventRedelivered,
        audit::Target::new(TargetKind::Event, &event.id),
        json!({ "event_type": event.event_type, "webhooks": webhooks }),
    );
    let numbers = app
        .store
        .number_manual_attempts(
            tenant,
            &event.id,
            &webhooks,
            OffsetDateTime::now_utc().unix_timestamp(),
            &entry,
        )
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let targets: Vec<(WebhookId, u32)> = webhooks.into_iter().zip(numbers).collect();
    let messages: Vec<TargetedMessage> = targets
        .iter()
        .map(|&(webhook, attempt)| TargetedMessage {
            target: Target::manual(webhook, attempt),
            event: envelope.clone(),
        })
        .collect();
    let sent = app.requeue.send_claimed(&app.store, &messages).await;
    if let Some(Err(e)) = sent.iter().find(|r| r.is_err()) {
        // Some may have gone: they are attempts of their own, each recorded
        // once; those not sent gave up their claims.
        return Err(ApiError::Internal(format!("queueing a redelivery: {e}")));
    }
    let queued = targets
        .into_iter()
        .map(|(webhook, attempt)| Queued {
            webhook_id: webhook.to_string(),
            attempt,
            delivery_id: format!("{}~{attempt}", event.id),
        })
        .collect();
    let body = Redelivery {
        event_id: event.id.as_str(),
        queued,
    };
    Ok(response::json(StatusCode::ACCEPTED, &body))
}
