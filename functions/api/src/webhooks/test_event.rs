//! "Send a test event": one sample event to one webhook, right away, through
//! the dispatcher's delivery client (same headers, signature, deadline and
//! SSRF guard), recorded in the delivery log as a test.

use bytes::Bytes;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::delivery::{Payload, Purpose};
use shared::delivery_log::DeliveryRecord;
use shared::store::{Allowance, Store};
use shared::webhook::now_utc;
use shared::{EventType, Webhook, samples};
use tokio::time::Instant;

use crate::views::DeliveryView;
use crate::{ApiError, App, allowance, body, response};

/// The optional body: which event type to send.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    #[serde(default, rename = "type")]
    event_type: Option<EventType>,
}

/// `POST /webhooks/{id}/test`: sends a sample event to the webhook now,
/// whatever its status (checking an endpoint before turning it on is the
/// point), and answers with the attempt as the delivery log holds it.
pub async fn send<S: Store>(
    app: &App<S>,
    webhook: Webhook,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: TestRequest = if body::is_empty(req) {
        TestRequest::default()
    } else {
        body::json(req)?
    };
    let tenant = webhook.tenant_id.clone();
    // Each test event may hold this function for the whole deadline: a
    // tenant's few per 10 s keep it from taking the API's concurrency.
    allowance::take(app, &tenant, Allowance::TestEvents, 1).await?;
    let client = app.client()?;
    let event_type = input.event_type.unwrap_or_else(|| webhook.events.first());
    let event = samples::event(tenant, event_type)
        .map_err(|e| ApiError::Internal(format!("sample event: {e}")))?;
    let started = now_utc();
    let attempt = client
        .deliver_to(
            &webhook,
            Payload {
                event_id: event.id.as_str(),
                body: Bytes::from(event.test_delivery_body(webhook.payload)),
                purpose: Purpose::Test,
            },
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
    let quick = shared::lane::is_quick(&attempt, app.settings.slow_threshold);
    let mut record = DeliveryRecord::new(
        webhook.tenant_id.clone(),
        webhook.id,
        event.id,
        event_type,
        started,
        attempt,
        app.settings.delivery_log_ttl_days,
    )
    .as_test();
    if !app
        .store
        .settings(&webhook.tenant_id)
        .await?
        .keep_response_bodies
    {
        record.response_body = None;
    }
    app.store.record_delivery(&record).await?;
    // A quick answer is the proof a new endpoint needs to leave the slow lane.
    if webhook.slow_since.is_some() && quick {
        app.store
            .set_slow(&webhook.tenant_id, webhook.id, None)
            .await?;
        tracing::info!(webhook_id = %webhook.id, "webhook no longer slow: a test event was answered quickly");
    }
    Ok(response::json(StatusCode::OK, &DeliveryView::new(&record)))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use shared::store::MemoryStore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::App;

    /// A receiver on loopback that answers 200 at once.
    async fn quick_receiver() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        url
    }

    async fn call(
        app: &App<MemoryStore>,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let body = body.map(|b| b.to_string());
        let reply = crate::testing::send(app, Some(key), method, path, body.as_deref()).await;
        assert!(
            (200..300).contains(&reply.status),
            "{method} {path}: {}",
            reply.status
        );
        reply.body
    }

    /// A new endpoint starts on the slow lane; a quick answer to a test
    /// event moves it to the main lane; a new URL starts over.
    #[tokio::test]
    async fn a_new_endpoint_earns_the_main_lane() {
        let (app, key) = crate::testing::app(true).await;
        let url = quick_receiver().await;

        let created = call(
            &app,
            &key,
            "POST",
            "/webhooks",
            Some(serde_json::json!({"url": url, "events": ["async.completed"]})),
        )
        .await;
        assert_eq!(created["lane"], "slow");
        assert!(created["slow_since"].is_string());
        let id = created["id"].as_str().unwrap().to_owned();

        let tested = call(&app, &key, "POST", &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(tested["outcome"], "delivered");
        let shown = call(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert_eq!(shown["lane"], "main");
        assert!(shown.get("slow_since").is_none());

        // The same URL is no news; a new one starts over.
        let same = call(
            &app,
            &key,
            "PATCH",
            &format!("/webhooks/{id}"),
            Some(serde_json::json!({"url": url})),
        )
        .await;
        assert_eq!(same["lane"], "main");
        let moved = call(
            &app,
            &key,
            "PATCH",
            &format!("/webhooks/{id}"),
            Some(serde_json::json!({"url": format!("{url}/v2")})),
        )
        .await;
        assert_eq!(moved["lane"], "slow");
    }
}
