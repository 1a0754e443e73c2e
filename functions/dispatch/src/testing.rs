//! For the unit tests: a dispatcher on the in-memory store, tenant `acme`'s
//! webhooks and events, SQS batches run through the handler, and a receiver
//! on loopback, so `cargo test -p webhooks-dispatch` needs no moto.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::delivery::{ClientConfig, DeliveryClient};
use shared::delivery_log::DeliveryRecord;
use shared::event::Event;
use shared::requeue::Requeue;
use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::webhook::now_utc;
use shared::{EventSet, EventType, Settings, TenantId, UrlPolicy, Webhook, WebhookUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Dispatcher;
use crate::batch::{Job, Kind};
use crate::handle;
use crate::local::{invocation, sqs_event};

/// Every default setting.
pub(crate) fn settings() -> Settings {
    Settings::with_table("unused")
}

/// The tenant of the tests.
pub(crate) fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

/// A dispatcher on an empty memory store, its delivery client built by the
/// first batch.
pub(crate) fn dispatcher(settings: &Settings) -> Dispatcher<MemoryStore> {
    Dispatcher::with_deferred_client(MemoryStore::default(), settings)
}

/// A webhook of the tenant at `url`, subscribed to `async.completed`.
pub(crate) fn webhook(url: &str, policy: UrlPolicy) -> Webhook {
    Webhook::new(
        tenant(),
        WebhookUrl::parse(url, policy).expect("url"),
        EventSet::new([EventType::AsyncCompleted]).expect("events"),
        now_utc(),
    )
}

/// A new `async.completed` event of the tenant.
pub(crate) fn event() -> Event {
    shared::samples::event(tenant(), EventType::AsyncCompleted).expect("event")
}

/// A job of one message (`id`) carrying a new event of the tenant.
pub(crate) fn job(kind: Kind, id: &str) -> Job {
    Job {
        event: event(),
        kind,
        messages: vec![id.to_owned()],
    }
}

/// A receiver on loopback that either never answers or answers at once
/// (200 unless told otherwise).
pub(crate) struct Receiver {
    pub url: String,
    /// Whether it hangs (at first) or answers.
    pub hang: Arc<AtomicBool>,
    /// The status it answers with.
    pub status: Arc<AtomicU16>,
    /// The requests it has read.
    pub requests: Arc<AtomicUsize>,
}

pub(crate) async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let hang = Arc::new(AtomicBool::new(true));
    let requests = Arc::new(AtomicUsize::new(0));
    let status = Arc::new(AtomicU16::new(200));
    let (h, r, st) = (
        Arc::clone(&hang),
        Arc::clone(&requests),
        Arc::clone(&status),
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (h, r, st) = (Arc::clone(&h), Arc::clone(&r), Arc::clone(&st));
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                r.fetch_add(1, Ordering::SeqCst);
                if h.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                let head = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    st.load(Ordering::SeqCst)
                );
                let _ = socket.write_all(head.as_bytes()).await;
            });
        }
    });
    Receiver {
        url,
        hang,
        status,
        requests,
    }
}

/// What a memory queue holds: (message, delay).
pub(crate) type Queued = Arc<Mutex<Vec<(String, Duration)>>>;

/// A dispatcher whose delivery client may reach loopback (600 ms timeout,
/// 150 ms slow threshold), its tenant's webhook at a receiver that hangs,
/// and the memory queue retries and hand-overs go to
/// (`requeue_to_memory`; otherwise there is no slow lane).
pub(crate) async fn setup(
    requeue_to_memory: bool,
) -> (Dispatcher<MemoryStore>, Webhook, Receiver, Queued) {
    let receiver = receiver().await;
    let settings = Settings {
        delivery_timeout: Duration::from_millis(600),
        slow_threshold: Duration::from_millis(150),
        ..settings()
    };
    let store = MemoryStore::default();
    let webhook = webhook(
        &receiver.url,
        UrlPolicy {
            allow_private_targets: true,
        },
    );
    store
        .create_webhook(&webhook, 50, &shared::audit::operator::created(&webhook))
        .await
        .expect("webhook");
    let client = DeliveryClient::new(ClientConfig {
        allow_private_targets: true,
        ..ClientConfig::default()
    })
    .expect("client");
    let queued = Queued::default();
    let requeue = if requeue_to_memory {
        Requeue::Memory(Arc::clone(&queued))
    } else {
        Requeue::Disabled
    };
    let d = Dispatcher::new(store, client, &settings).with_requeue(requeue);
    (d, webhook, receiver, queued)
}

/// Runs one batch of these message bodies (ids `m0`, `m1`, …) with 6 s
/// left; the ids of the messages that come back.
pub(crate) async fn run(d: &Dispatcher<MemoryStore>, bodies: &[String]) -> Vec<String> {
    let batch = sqs_event(
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("m{i}"), b.clone())),
    );
    let response = handle(d, invocation(batch, 6000, "r"))
        .await
        .expect("never fails");
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// The delivery records of an event.
pub(crate) async fn records_of(
    d: &Dispatcher<MemoryStore>,
    w: &Webhook,
    event: &Event,
) -> Vec<DeliveryRecord> {
    let (_, records) = d
        .store()
        .event_with_deliveries(&w.tenant_id, &event.id)
        .await
        .expect("read")
        .expect("kept");
    records
}

/// When the webhook was marked slow, if it is.
pub(crate) async fn slow_since(
    d: &Dispatcher<MemoryStore>,
    w: &Webhook,
) -> Option<time::OffsetDateTime> {
    d.store()
        .get_webhook(&w.tenant_id, w.id)
        .await
        .expect("read")
        .expect("exists")
        .slow_since
}
