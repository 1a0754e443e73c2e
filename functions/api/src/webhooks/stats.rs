//! `GET /webhooks/{id}/stats?window=24h|7d|30d`: a webhook's health from its
//! delivery log (shared::delivery_stats), at most `READ_LIMIT` records read
//! from the narrow index, within the tenant's costly reads per minute.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::delivery_log::sortable_time;
use shared::delivery_stats::{self, READ_LIMIT};
use shared::store::{Allowance, AllowanceStore, DeliveryStore};
use shared::webhook::now_utc;
use shared::{TenantId, WebhookId};

use crate::query::Query;
use crate::{ApiError, App, allowance, response};

/// The webhook's outcomes and latencies over the `window` asked for.
pub async fn get<S: DeliveryStore + AllowanceStore>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let window = Query::of(req).window()?;
    allowance::take(app, &tenant, Allowance::CostlyReads, 1).await?;
    let now = now_utc();
    let since = sortable_time(window.since(now));
    let samples = app.store.delivery_samples(id, &since, READ_LIMIT).await?;
    let stats = delivery_stats::compute(window, now, &samples);
    Ok(response::json(StatusCode::OK, &stats))
}

#[cfg(test)]
mod tests {
    use shared::delivery::{Attempt, Outcome};
    use shared::delivery_log::DeliveryRecord;
    use shared::delivery_stats::Window;
    use shared::event::EventId;
    use shared::store::Store;
    use shared::{EventType, TenantId, WebhookId};
    use time::{Duration, OffsetDateTime};

    use crate::testing::{app, send};

    async fn record(
        store: &impl Store,
        webhook: WebhookId,
        n: u32,
        at: OffsetDateTime,
        outcome: Outcome,
        duration_ms: u64,
    ) {
        let attempt = Attempt::bare(
            outcome,
            (outcome != Outcome::Timeout).then_some(if outcome == Outcome::Delivered {
                200
            } else {
                500
            }),
            duration_ms,
        );
        let record = DeliveryRecord::new(
            TenantId::parse("acme").unwrap(),
            webhook,
            EventId::parse(&format!("evt_{n}")).unwrap(),
            EventType::AsyncCompleted,
            at,
            attempt,
            30,
        );
        store.record_delivery(&record).await.unwrap();
    }

    /// Known deliveries at known times give exact buckets and percentiles;
    /// the delivery log filters by outcome; a bad window or outcome names
    /// the parameter; an unknown webhook is not found.
    #[tokio::test]
    async fn stats_count_known_deliveries_exactly() {
        let (app, key) = app(true).await;
        let created = send(
            &app,
            Some(&key),
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://hooks.example.com/x","events":["async.completed"]}"#),
        )
        .await;
        let id: WebhookId = created.body["id"].as_str().unwrap().parse().unwrap();
        let now = shared::webhook::now_utc();
        let this_hour = Window::Day.since(now) + Duration::hours(23);
        let two_hours_ago = this_hour - Duration::hours(2);
        // This hour: delivered in 100, 200 and 300 ms, one timeout of 5 s.
        for (n, ms) in [(1, 100), (2, 200), (3, 300)] {
            record(
                &app.store,
                id,
                n,
                this_hour + Duration::seconds(n.into()),
                Outcome::Delivered,
                ms,
            )
            .await;
        }
        record(&app.store, id, 4, this_hour, Outcome::Timeout, 5000).await;
        // Two hours before: one http_error; and one before the window.
        record(&app.store, id, 5, two_hours_ago, Outcome::HttpError, 40).await;
        record(
            &app.store,
            id,
            6,
            Window::Day.since(now) - Duration::seconds(1),
            Outcome::Delivered,
            1,
        )
        .await;

        let path = format!("/webhooks/{id}/stats");
        let stats = send(&app, Some(&key), "GET", &path, None).await;
        assert_eq!(stats.status, 200, "{}", stats.body);
        let b = &stats.body;
        assert_eq!(
            (b["window"].as_str(), b["bucket"].as_str()),
            (Some("24h"), Some("hour"))
        );
        assert_eq!(
            (b["delivered"].as_u64(), b["failed"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(
            (b["counted"].as_u64(), b["complete"].as_bool()),
            (Some(5), Some(true))
        );
        let buckets = b["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 24);
        let last = &buckets[23];
        assert_eq!(last["delivered"], 3);
        assert_eq!(last["failed"], 1);
        assert_eq!(
            last["outcomes"],
            serde_json::json!({"delivered": 3, "timeout": 1})
        );
        // Nearest rank over 100, 200, 300, 5000: p50 the 2nd, p95 the 4th.
        assert_eq!(
            (last["p50_ms"].as_u64(), last["p95_ms"].as_u64()),
            (Some(200), Some(5000))
        );
        let earlier = &buckets[21];
        assert_eq!(earlier["outcomes"], serde_json::json!({"http_error": 1}));
        assert_eq!(earlier["p95_ms"], 40);
        assert!(
            buckets[22].get("p50_ms").is_none(),
            "an empty bucket has no percentile"
        );

        let week = send(&app, Some(&key), "GET", &format!("{path}?window=7d"), None).await;
        assert_eq!(week.body["buckets"].as_array().unwrap().len(), 7);
        assert_eq!(
            week.body["delivered"], 4,
            "the 7 days hold the earlier one too"
        );

        let bad = send(&app, Some(&key), "GET", &format!("{path}?window=1y"), None).await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_value"));
        assert_eq!(bad.body["error"]["field"], "window");

        // The log filters by outcome, and names a bad one.
        let log = format!("/webhooks/{id}/deliveries");
        let timeouts = send(
            &app,
            Some(&key),
            "GET",
            &format!("{log}?outcome=timeout"),
            None,
        )
        .await;
        let events: Vec<&str> = timeouts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["evt_4"]);
        let bad = send(
            &app,
            Some(&key),
            "GET",
            &format!("{log}?outcome=lost"),
            None,
        )
        .await;
        assert_eq!(
            (bad.status, bad.body["error"]["field"].as_str()),
            (400, Some("outcome"))
        );
        assert!(
            bad.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("http_error")
        );

        let unknown = format!("/webhooks/{}/stats", WebhookId::generate());
        let missing = send(&app, Some(&key), "GET", &unknown, None).await;
        assert_eq!((missing.status, missing.code()), (404, "webhook_not_found"));
    }
}
