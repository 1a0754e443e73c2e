//! "Send a test event": one sample event to one webhook, right away, through
//! the dispatcher's delivery client (same headers, signature, deadline and
//! SSRF guard), recorded in the delivery log as a test.

use bytes::Bytes;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::delivery_log::DeliveryRecord;
use shared::store::Store;
use shared::webhook::now_utc;
use shared::{EventType, TenantId, WebhookId, samples};
use tokio::time::Instant;

use crate::views::DeliveryView;
use crate::{ApiError, App, body, response, webhooks};

/// The optional body: which event type to send.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    #[serde(default, rename = "type")]
    event_type: Option<EventType>,
}

pub async fn send<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: TestRequest = if body::is_empty(req) {
        TestRequest::default()
    } else {
        body::json(req)?
    };
    // Any status: checking an endpoint before turning it on is the point.
    let webhook = webhooks::load(app, &tenant, id).await?;
    let client = app.client()?;
    let event_type = input.event_type.unwrap_or_else(|| webhook.events.first());
    let event = samples::event(tenant, event_type)
        .map_err(|e| ApiError::Internal(format!("sample event: {e}")))?;
    let started = now_utc();
    let attempt = client
        .deliver_to(
            &webhook,
            event.id.as_str(),
            Bytes::from(event.delivery_body()),
            Instant::now() + app.settings.delivery_timeout,
            started,
        )
        .await;
    tracing::info!(
        webhook_id = %webhook.id,
        event_id = %event.id,
        outcome = attempt.outcome.as_str(),
        status = attempt.status,
        duration_ms = attempt.duration_ms,
        "test delivery attempt"
    );
    let record = DeliveryRecord::new(
        webhook.tenant_id.clone(),
        webhook.id,
        event.id,
        event_type,
        started,
        attempt,
        app.settings.delivery_log_ttl_days,
    )
    .as_test();
    app.store.record_delivery(&record).await?;
    Ok(response::json(StatusCode::OK, &DeliveryView::new(&record)))
}
