//! The load: events sent to the events queue at a steady rate per tenant, as
//! a producer does (the envelope of `shared::emit`, `MessageGroupId` = the
//! tenant when the queue takes it), the redelivery calls of phase 2c and
//! the burst of phase 2t.
//! Each event's send time is kept: latency is measured from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use shared::emit::NewEvent;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::Api;

/// The event type every tenant emits (the quiet webhooks subscribe to it).
pub const EVENT_TYPE: &str = "async.completed";

/// One event the bench sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub event_id: String,
    /// Just before SendMessage.
    pub at: Instant,
    /// SQS accepted it.
    pub accepted: bool,
    /// How long SendMessage took (moto's share of the latency at the start).
    pub send_ms: f64,
}

/// Sends events to the events queue.
#[derive(Clone)]
pub struct Emitter {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Set `MessageGroupId` to the tenant (moto took it on a standard queue).
    pub group_ids: bool,
    /// Sends in flight at once.
    pub slots: Arc<Semaphore>,
}

impl Emitter {
    /// Sends one event now; retries a refused send twice.
    pub async fn send(&self, tenant: &str, seq: usize) -> Result<Sent, String> {
        let event = NewEvent {
            id: None,
            tenant_id: tenant.to_owned(),
            event_type: EVENT_TYPE.to_owned(),
            timestamp: None,
            subject: None,
            data: serde_json::json!({"bench": "noisy", "seq": seq}),
        }
        .into_event()
        .map_err(|e| format!("building an event: {e}"))?;
        let body = event.to_json();
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let at = Instant::now();
        let mut accepted = false;
        for _ in 0..3 {
            let mut req = self
                .sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&body);
            if self.group_ids {
                req = req.message_group_id(tenant);
            }
            match req.send().await {
                Ok(_) => {
                    accepted = true;
                    break;
                }
                Err(e) => {
                    eprintln!("noisy: SendMessage failed: {}", DisplayErrorContext(e));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(Sent {
            event_id: event.id.to_string(),
            at,
            accepted,
            send_ms: at.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// `rate` events a second for `tenant` from `start` until `end`, each sent
/// on its own slot of the schedule (a slow send does not delay the next).
pub async fn stream(
    emitter: Emitter,
    tenant: String,
    rate: f64,
    start: Instant,
    end: Instant,
) -> Result<Vec<Sent>, String> {
    stream_until(emitter, tenant, rate, start, end, Arc::default()).await
}

/// As [`stream`], and no send is started once `stop` is set (a phase that
/// ends when something else is done: 2t).
pub async fn stream_until(
    emitter: Emitter,
    tenant: String,
    rate: f64,
    start: Instant,
    end: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Sent>, String> {
    let step = Duration::from_secs_f64(1.0 / rate);
    let mut sends = JoinSet::new();
    let mut at = start;
    let mut seq = 0;
    while at < end && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep_until(at.into()).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (emitter, tenant) = (emitter.clone(), tenant.clone());
        sends.spawn(async move { emitter.send(&tenant, seq).await });
        seq += 1;
        at += step;
    }
    let mut sent = Vec::with_capacity(seq);
    while let Some(r) = sends.join_next().await {
        sent.push(r.map_err(|e| e.to_string())??);
    }
    Ok(sent)
}

/// `n` events for `tenant` at once, as fast as the emitter's slots allow
/// (phase 2t's burst).
pub async fn burst(emitter: Emitter, tenant: String, n: usize) -> Result<Vec<Sent>, String> {
    let mut sends = JoinSet::new();
    for seq in 0..n {
        let (emitter, tenant) = (emitter.clone(), tenant.clone());
        sends.spawn(async move { emitter.send(&tenant, seq).await });
    }
    let mut sent = Vec::with_capacity(n);
    while let Some(r) = sends.join_next().await {
        sent.push(r.map_err(|e| e.to_string())??);
    }
    Ok(sent)
}

/// One `POST /events/{id}/redeliver`.
#[derive(Clone, Debug)]
pub struct Call {
    pub ms: f64,
    /// None when the call failed without an answer.
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    /// (webhook id, attempt) of each attempt queued (a 202's `queued`).
    pub queued: Vec<(String, u64)>,
}

/// Calls redeliver for `event` every `every` from `start` until `end`; after
/// a 429 the next call waits for the first tick past its `Retry-After`.
pub async fn redeliver(
    api: Api,
    key: String,
    event: String,
    start: Instant,
    end: Instant,
    every: Duration,
) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut next = start;
    let path = format!("/events/{event}/redeliver");
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let began = Instant::now();
        let answer = api.call(http::Method::POST, &path, Some(&key), None).await;
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        let call = match answer {
            Ok(a) => Call {
                ms,
                status: Some(a.status),
                retry_after: a.retry_after,
                queued: queued(&a.body),
            },
            Err(e) => {
                eprintln!("noisy: {e}");
                Call {
                    ms,
                    status: None,
                    retry_after: None,
                    queued: Vec::new(),
                }
            }
        };
        let resume = began + Duration::from_secs(call.retry_after.unwrap_or(0));
        calls.push(call);
        next += every;
        while next < Instant::now() || next < resume {
            next += every;
        }
    }
    calls
}

fn queued(body: &serde_json::Value) -> Vec<(String, u64)> {
    body.get("queued")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|q| {
            Some((
                q.get("webhook_id")?.as_str()?.to_owned(),
                q.get("attempt")?.as_u64()?,
            ))
        })
        .collect()
}
