//! A recovery of a large window: every one of N events
//! failed its last attempt, and one `POST /webhooks/{id}/recover` brings
//! them all back. The figures: the time to the api's answer (what the
//! customer waits for), the peak memory of that call and of each background
//! page (what must fit in a function), the number of pages and their time,
//! and whether every event was queued exactly once.
//!
//!   webhooks-bench recover [--events N] [--store memory|moto] [--quick]
//!
//! The allowances are lifted here (they pace a recovery in time, which is
//! not what this measures): at the defaults, 600 attempts a minute, 100,000
//! events take about 2.8 hours to queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use shared::delivery::{Attempt, Outcome};
use shared::delivery_log::DeliveryRecord;
use shared::event::Event;
use shared::event_log::StoredEvent;
use shared::recovery::Recovery;
use shared::requeue::Requeue;
use shared::slow_lane::{RecoveryMessage, TargetedMessage};
use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::{EventSet, EventType, Settings, TenantId, UrlPolicy, Webhook, WebhookUrl};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::measure::{percentile, status_kib};

type Sent = Arc<Mutex<Vec<(String, Duration)>>>;

/// Peak memory growth of one step, from /proc/self/status: the peak is
/// reset first (`clear_refs` 5), so it is this step's own.
struct Peak {
    rss_before_kib: u64,
}

impl Peak {
    fn start() -> Self {
        // Resets VmHWM to the current RSS (Linux 4.0 and later).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self {
            rss_before_kib: status_kib("VmRSS"),
        }
    }

    fn growth_kib(&self) -> u64 {
        status_kib("VmHWM").saturating_sub(self.rss_before_kib)
    }
}

/// What the queue received since the last call: targeted messages' event
/// ids, and the one recovery message that carries the rest, if any.
fn drain(sent: &Sent, ids: &mut Vec<String>) -> Option<RecoveryMessage> {
    let mut rest = None;
    for (body, _) in sent
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default()
    {
        if let Ok(m) = TargetedMessage::from_json(&body) {
            ids.push(m.event.id.to_string());
        } else if let Ok(m) = RecoveryMessage::from_json(&body) {
            rest = Some(m);
        }
    }
    rest
}

/// N events of the last hour, each with one failed attempt to `webhook`.
async fn fill(store: &impl Store, webhook: &Webhook, n: usize) {
    let now = OffsetDateTime::now_utc();
    let started = Instant::now();
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(64) {
        join_all(chunk.iter().map(|&i| async move {
            let at = now - time::Duration::milliseconds(1 + (i as i64 * 3_500_000) / n as i64);
            let raw = format!(
                r#"{{"id":"evt_{i:07}","tenant_id":"acme","type":"async.completed","timestamp":"{}","data":{{"result":"pass","n":{i}}}}}"#,
                at.format(&Rfc3339).unwrap_or_default()
            );
            let Ok(event) = Event::from_json(&raw) else {
                return;
            };
            let stored = StoredEvent::new(&event, at, shared::event_log::Retention::WEEK);
            let failed = Attempt {
                error: Some("connection refused".into()),
                ..Attempt::bare(Outcome::ConnectError, None, 3)
            };
            let record = DeliveryRecord::new(
                event.tenant_id.clone(),
                webhook.id,
                event.id.clone(),
                event.event_type,
                at,
                failed,
                30,
            );
            let (kept, recorded) =
                futures_util::future::join(store.put_event(&stored), store.record_delivery(&record))
                    .await;
            if kept.is_err() || recorded.is_err() {
                eprintln!("recover: writing event {i} failed");
            }
        }))
        .await;
    }
    eprintln!(
        "  {n} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn run<S: Store>(store: S, n: usize) {
    let settings = Settings {
        redeliveries_per_minute: u32::MAX / 2,
        recovery_checks_per_minute: u32::MAX / 2,
        ..Settings::with_table("bench")
    };
    let sent = Sent::default();
    let requeue = Requeue::Memory(sent.clone());
    let tenant = TenantId::parse("acme").expect("tenant");
    let webhook = Webhook::new(
        tenant.clone(),
        WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).expect("url"),
        EventSet::new([EventType::AsyncCompleted]).expect("events"),
        OffsetDateTime::now_utc(),
    );
    store
        .create_webhook(&webhook, 50, &shared::audit::operator::created(&webhook))
        .await
        .expect("webhook");
    fill(&store, &webhook, n).await;
    let (key, _) = shared::key_lifecycle::issue(
        &store,
        tenant.clone(),
        "bench".into(),
        shared::api_key::Scope::Full,
        None,
    )
    .await
    .expect("api key");
    let app = api::App::new(store, settings.clone()).with_requeue(requeue);
    let since = (OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&Rfc3339)
        .unwrap_or_default();
    let body = format!(r#"{{"since":"{since}"}}"#);
    let headers = [
        ("authorization".to_owned(), format!("Bearer {key}")),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let path = format!("/webhooks/{}/recover", webhook.id);
    let request = api::apigw::request("POST", &path, &headers, Some(body.as_bytes()), "bench")
        .expect("request");

    let mut ids = Vec::with_capacity(n);
    let peak = Peak::start();
    let asked = Instant::now();
    let answer = api::handle(&app, request).await.expect("never fails");
    let answered = asked.elapsed();
    let api_peak = peak.growth_kib();
    let status = answer.status().as_u16();
    let mut next = drain(&sent, &mut ids);
    let first = ids.len();

    let app_requeue = Requeue::Memory(sent.clone());
    let recovery = Recovery::new(&app.store, &app_requeue, &settings);
    let mut pages_ms = Vec::new();
    let mut page_peak = 0;
    let all = Instant::now();
    while let Some(message) = next.take() {
        let peak = Peak::start();
        let started = Instant::now();
        let deadline = Some(tokio::time::Instant::now() + Duration::from_secs(4));
        if let Err(e) = recovery.resume(&message.recover, deadline).await {
            eprintln!("recover: a page failed: {e}");
            break;
        }
        pages_ms.push(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        page_peak = page_peak.max(peak.growth_kib());
        next = drain(&sent, &mut ids);
    }
    let background = all.elapsed();
    let queued = ids.len();
    let distinct = ids.iter().collect::<HashSet<_>>().len();

    let rows = [
        ("events in the window, each failed", n.to_string()),
        ("POST /recover: status", status.to_string()),
        (
            "POST /recover: time to the answer",
            format!("{:.0} ms", answered.as_secs_f64() * 1e3),
        ),
        ("POST /recover: queued in the call", first.to_string()),
        (
            "POST /recover: peak memory growth",
            format!("{:.1} MiB", api_peak as f64 / 1024.0),
        ),
        ("background pages", pages_ms.len().to_string()),
        (
            "page time p50 / max",
            format!(
                "{} / {} ms",
                percentile(&mut pages_ms.clone(), 50.0),
                pages_ms.iter().max().copied().unwrap_or(0)
            ),
        ),
        (
            "page peak memory growth (max)",
            format!("{:.1} MiB", page_peak as f64 / 1024.0),
        ),
        (
            "all pages, one after the other",
            format!("{:.1} s", background.as_secs_f64()),
        ),
        (
            "queued in all / distinct events",
            format!("{queued} / {distinct}"),
        ),
    ];
    println!("| recovery of {n} failed events | |\n|---|---|");
    for (figure, value) in rows {
        println!("| {figure} | {value} |");
    }
    if status != 202 || queued != n || distinct != n {
        eprintln!("recover: not every event was queued exactly once");
        std::process::exit(1);
    }
}

pub async fn main(args: &[String]) {
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let n = value_of("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_500 } else { 100_000 });
    match value_of("--store").as_deref().unwrap_or("memory") {
        "memory" => run(MemoryStore::default(), n).await,
        "moto" => run(testkit::fresh_store().await, n).await,
        other => {
            eprintln!("recover: --store memory or moto, not {other:?}");
            std::process::exit(2);
        }
    }
}
