//! Benchmark 1, fan-out: 1,000 events x 10 webhooks through the real dispatch handler,
//! in batches of 10, beside a bare client sending the same requests.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::json;
use shared::EventType::AsyncCompleted;
use shared::Status::Active;
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::store::prelude::*;
use testkit::{add_webhook, envelope};

use crate::measure::{Helper, cpu_time, percentile};
use crate::timing_store::TimingStore;

pub const WEBHOOKS: usize = 10;
pub const BATCH: usize = 10;

pub struct Run {
    pub deliveries: u64,
    pub wall: Duration,
    pub cpu: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Mean wall time of one invocation (one SQS batch).
    pub per_batch: Duration,
    pub dynamodb_requests: u64,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.wall.as_secs_f64()
    }
    pub fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.deliveries as f64
    }
}

/// A realistic result payload (about 700 bytes of JSON).
fn data(i: usize) -> serde_json::Value {
    json!({
        "request_id": format!("req_{i:08}"),
        "operation": "face_match",
        "status": "completed",
        "result": {
            "match": true, "score": 0.9731, "liveness": {"passed": true, "score": 0.991},
            "document": {"type": "passport", "country": "SGP", "number_masked": "K****123A", "expiry": "2031-04-30"},
            "checks": [{"name": "mrz", "passed": true}, {"name": "hologram", "passed": true}, {"name": "tamper", "passed": true}]
        },
        "reference": format!("customer-ref-{i}"),
        "submitted_at": "2026-11-25T17:00:00Z",
        "completed_at": "2026-11-25T17:00:03Z"
    })
}

pub async fn dispatcher<S: Store>(store: S, events: usize) -> Run {
    let receiver = Helper::spawn(&["receiver", "ok"]);
    let port = receiver.first_line.clone();
    let (d, _) = dispatcher_with(TimingStore::new(store), &port, WEBHOOKS).await;
    let messages: Vec<(String, String)> = (0..events + BATCH)
        .map(|i| {
            (
                format!("m{i}"),
                envelope("bench", AsyncCompleted, data(i)).1,
            )
        })
        .collect();
    let (warmup, measured) = messages.split_at(BATCH);
    invoke(&d, warmup).await;
    d.store().reset();

    let cpu0 = cpu_time();
    let start = Instant::now();
    for batch in measured.chunks(BATCH) {
        invoke(&d, batch).await;
    }
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let mut latencies = d.store().take_latencies();
    let deliveries = latencies.len() as u64;
    assert_eq!(
        deliveries,
        (events * WEBHOOKS) as u64,
        "every delivery recorded"
    );
    Run {
        deliveries,
        wall,
        cpu,
        p50_us: percentile(&mut latencies, 50.0),
        p99_us: percentile(&mut latencies, 99.0),
        per_batch: wall / (events / BATCH) as u32,
        dynamodb_requests: d.store().dynamodb_requests(),
    }
}

/// A dispatcher on `store` with `webhooks` webhooks of the tenant `bench`,
/// all pointing at the receiver on `port`. Private targets allowed (loopback).
pub async fn dispatcher_with<S: Store>(
    store: S,
    port: &str,
    webhooks: usize,
) -> (dispatch::Dispatcher<S>, Vec<shared::WebhookId>) {
    let mut ids = Vec::with_capacity(webhooks);
    for i in 0..webhooks {
        let url = format!("http://127.0.0.1:{port}/wh{i}");
        ids.push(
            add_webhook(&store, "bench", &url, &[AsyncCompleted], Active)
                .await
                .id,
        );
    }
    let mut settings = testkit::settings("bench", 1000);
    settings.url_policy.allow_private_targets = true;
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    })
    .expect("client");
    (dispatch::Dispatcher::new(store, client, &settings), ids)
}

async fn invoke<S: Store>(d: &dispatch::Dispatcher<S>, batch: &[(String, String)]) {
    let event = dispatch::local::sqs_event(batch.iter().cloned());
    let response = dispatch::handle(
        d,
        dispatch::local::invocation(event, shared::infra::DISPATCH_TIMEOUT_SECS * 1000, "bench"),
    )
    .await
    .expect("handler");
    assert!(response.batch_item_failures.is_empty(), "no batch failure");
}

/// The limit: the same POSTs (same bodies and headers, built beforehand) from
/// a bare reqwest client, 100 at a time as the dispatcher sends them.
pub async fn bare_client(events: usize) -> Run {
    let receiver = Helper::spawn(&["receiver", "ok"]);
    let port = receiver.first_line.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let secret = shared::signing::SigningSecret::generate();
    let requests: Vec<(String, HeaderMap, bytes::Bytes)> = (0..events + BATCH)
        .flat_map(|i| {
            let (event, _) = envelope("bench", AsyncCompleted, data(i));
            let body = bytes::Bytes::from(event.delivery_body(shared::event::PayloadForm::Full));
            let (secret, port) = (&secret, &port);
            (0..WEBHOOKS).map(move |w| {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(
                    AUTHORIZATION,
                    HeaderValue::from_static("Basic bench-token-0123456789"),
                );
                headers.insert(
                    "webhook-id",
                    HeaderValue::from_str(event.id.as_str()).expect("id"),
                );
                headers.insert("webhook-timestamp", HeaderValue::from_static("1795539600"));
                let sig = secret.sign(event.id.as_str(), 1795539600, &body);
                headers.insert(
                    "webhook-signature",
                    HeaderValue::from_str(&sig).expect("sig"),
                );
                (
                    format!("http://127.0.0.1:{port}/wh{w}"),
                    headers,
                    body.clone(),
                )
            })
        })
        .collect();
    let round = BATCH * WEBHOOKS;
    let (warmup, measured) = requests.split_at(round);
    send_round(&client, warmup).await;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(measured.len());
    for chunk in measured.chunks(round) {
        latencies.extend(send_round(&client, chunk).await);
    }
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu0;
    Run {
        deliveries: latencies.len() as u64,
        wall,
        cpu,
        p50_us: percentile(&mut latencies, 50.0),
        p99_us: percentile(&mut latencies, 99.0),
        per_batch: wall / (events / BATCH) as u32,
        dynamodb_requests: 0,
    }
}

async fn send_round(
    client: &reqwest::Client,
    requests: &[(String, HeaderMap, bytes::Bytes)],
) -> Vec<u64> {
    join_all(requests.iter().map(|(url, headers, body)| async move {
        let start = Instant::now();
        let response = client
            .post(url)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        assert!(
            response.is_ok_and(|r| r.status().is_success()),
            "bare request failed"
        );
        start.elapsed().as_micros() as u64
    }))
    .await
}
