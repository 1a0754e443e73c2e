//! The slow-lane mark, kept by the attempts themselves: a main-lane attempt
//! still going after the slow threshold marks its webhook slow at that
//! moment (not at the 5 s deadline), so that batches starting after it hand
//! the webhook's attempts to the slow lane; a slow-lane attempt that ends
//! within the threshold clears the mark. Each is one conditional write, on a
//! change of state only, and at most one per webhook per invocation.

use std::collections::HashSet;
use std::sync::Mutex;

use shared::delivery::Attempt;
use shared::store::{Conditional, Store};
use shared::webhook::now_utc;
use shared::{Lane, Webhook, WebhookId};

use crate::Dispatcher;

/// The marks this invocation has already written (or tried to).
#[derive(Default)]
pub struct Marks {
    written: Mutex<HashSet<WebhookId>>,
}

impl Marks {
    /// True the first time this invocation asks for `id`.
    fn first(&self, id: WebhookId) -> bool {
        self.written
            .lock()
            .map(|mut w| w.insert(id))
            .unwrap_or(false)
    }

    /// Makes the attempt; on the main lane, marks the webhook slow as soon
    /// as the attempt outlasts the threshold, while it goes on.
    pub async fn watch<S: Store>(
        &self,
        d: &Dispatcher<S>,
        webhook: &Webhook,
        lane: Lane,
        attempt: impl Future<Output = Attempt>,
    ) -> Attempt {
        let watched =
            lane == Lane::Main && webhook.slow_since.is_none() && d.requeue.has_slow_lane();
        if !watched {
            return attempt.await;
        }
        let mut attempt = std::pin::pin!(attempt);
        match tokio::time::timeout(d.settings.slow_threshold, &mut attempt).await {
            Ok(done) => done,
            Err(_) => {
                let (done, ()) =
                    futures_util::future::join(attempt, self.set(d, webhook, true)).await;
                done
            }
        }
    }

    /// After an attempt at a webhook marked slow (on the slow lane, or on the
    /// main lane when there is no slow lane): an answer (any answer, or a
    /// refusal) within the threshold clears the mark.
    pub async fn after<S: Store>(&self, d: &Dispatcher<S>, webhook: &Webhook, attempt: &Attempt) {
        let quick = shared::lane::is_quick(attempt, d.settings.slow_threshold);
        if quick && webhook.slow_since.is_some() {
            self.set(d, webhook, false).await;
        }
    }

    async fn set<S: Store>(&self, d: &Dispatcher<S>, webhook: &Webhook, slow: bool) {
        if !self.first(webhook.id) {
            return;
        }
        let since = slow.then(now_utc);
        match d
            .store
            .set_slow(&webhook.tenant_id, webhook.id, since)
            .await
        {
            Ok(Conditional::Applied) if slow => tracing::warn!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                threshold_ms = d.settings.slow_threshold.as_millis() as u64,
                "webhook marked slow: its attempts go through the slow lane"
            ),
            Ok(Conditional::Applied) => tracing::info!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                "webhook no longer slow: its attempts go through the main lane"
            ),
            // Someone else changed it first, or the webhook is gone.
            Ok(Conditional::Refused) => {}
            Err(e) => tracing::error!(
                webhook_id = %webhook.id,
                error = %e,
                "writing the slow-lane mark failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use shared::delivery::{ClientConfig, DeliveryClient};
    use shared::event::Event;
    use shared::requeue::Requeue;
    use shared::slow_lane::TargetedMessage;
    use shared::store::MemoryStore;
    use shared::store::prelude::*;
    use shared::webhook::now_utc;
    use shared::{EventSet, EventType, Lane, Settings, TenantId, UrlPolicy, Webhook, WebhookUrl};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::Dispatcher;
    use crate::handle;
    use crate::local::{invocation, sqs_event};

    /// A receiver on loopback that either never answers or answers 200 at once.
    struct Receiver {
        url: String,
        hang: Arc<AtomicBool>,
        requests: Arc<AtomicUsize>,
    }

    async fn receiver() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hang = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicUsize::new(0));
        let (h, r) = (Arc::clone(&hang), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (h, r) = (Arc::clone(&h), Arc::clone(&r));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = socket.read(&mut buf).await;
                    r.fetch_add(1, Ordering::SeqCst);
                    if h.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Receiver {
            url,
            hang,
            requests,
        }
    }

    type Queued = Arc<Mutex<Vec<(String, Duration)>>>;

    async fn setup(
        requeue_to_memory: bool,
    ) -> (Dispatcher<MemoryStore>, Webhook, Receiver, Queued) {
        let receiver = receiver().await;
        let settings = Settings {
            delivery_timeout: Duration::from_millis(600),
            slow_threshold: Duration::from_millis(150),
            ..Settings::with_table("unused")
        };
        let store = MemoryStore::default();
        let webhook = Webhook::new(
            TenantId::parse("acme").unwrap(),
            WebhookUrl::parse(
                &receiver.url,
                UrlPolicy {
                    allow_private_targets: true,
                },
            )
            .unwrap(),
            EventSet::new([EventType::AsyncCompleted]).unwrap(),
            now_utc(),
        );
        store.create_webhook(&webhook, 50).await.unwrap();
        let client = DeliveryClient::new(ClientConfig {
            allow_private_targets: true,
            ..ClientConfig::default()
        })
        .unwrap();
        let queued = Queued::default();
        let requeue = if requeue_to_memory {
            Requeue::Memory(Arc::clone(&queued))
        } else {
            Requeue::Disabled
        };
        let d = Dispatcher::new(store, client, &settings).with_requeue(requeue);
        (d, webhook, receiver, queued)
    }

    fn event() -> Event {
        shared::samples::event(TenantId::parse("acme").unwrap(), EventType::AsyncCompleted).unwrap()
    }

    async fn run(d: &Dispatcher<MemoryStore>, bodies: &[String]) -> Vec<String> {
        let batch = sqs_event(
            bodies
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("m{i}"), b.clone())),
        );
        let response = handle(d, invocation(batch, 6000, "r")).await.unwrap();
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    /// The delivery records of an event.
    async fn records_of(
        d: &Dispatcher<MemoryStore>,
        w: &Webhook,
        event: &Event,
    ) -> Vec<shared::delivery_log::DeliveryRecord> {
        let (_, records) = d
            .store()
            .event_with_deliveries(&w.tenant_id, &event.id)
            .await
            .unwrap()
            .unwrap();
        records
    }

    async fn lane_of(d: &Dispatcher<MemoryStore>, w: &Webhook) -> Option<time::OffsetDateTime> {
        d.store()
            .get_webhook(&w.tenant_id, w.id)
            .await
            .unwrap()
            .unwrap()
            .slow_since
    }

    #[tokio::test]
    async fn a_hanging_webhook_moves_to_the_slow_lane_and_back() {
        let (d, webhook, receiver, queued) = setup(true).await;

        // 1. Main lane, unmarked: the attempt hangs, is marked at the
        //    threshold and recorded as a timeout made by the main lane.
        let first = event();
        assert!(run(&d, &[first.to_json()]).await.is_empty());
        assert!(lane_of(&d, &webhook).await.is_some(), "marked slow");
        let records = records_of(&d, &webhook, &first).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "timeout");
        assert_eq!(records[0].lane, Lane::Main);

        // 2. Main lane, marked: nothing is sent; the attempt is handed over.
        let second = event();
        let started = std::time::Instant::now();
        assert!(run(&d, &[second.to_json()]).await.is_empty());
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "the main lane did not wait"
        );
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
        let handed: Vec<(String, Duration)> = std::mem::take(&mut *queued.lock().unwrap());
        assert_eq!(handed.len(), 1);
        let message = TargetedMessage::from_json(&handed[0].0).unwrap();
        assert_eq!(message.target.attempt, 1);
        assert_eq!(message.event.id, second.id);
        let records = records_of(&d, &webhook, &second).await;
        assert!(records.is_empty(), "handed over, not attempted");

        // 3. Slow lane, the endpoint has recovered: delivered, recorded as the
        //    slow lane's, and the mark is cleared.
        receiver.hang.store(false, Ordering::SeqCst);
        assert!(run(&d, &[handed[0].0.clone()]).await.is_empty());
        let records = records_of(&d, &webhook, &second).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "delivered");
        assert_eq!(records[0].lane, Lane::Slow);
        assert!(lane_of(&d, &webhook).await.is_none(), "mark cleared");

        // 4. Back on the main lane: delivered there, nothing handed over.
        let third = event();
        assert!(run(&d, &[third.to_json()]).await.is_empty());
        assert!(queued.lock().unwrap().is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
    }

    /// The negative control: without a slow lane nothing is marked or handed
    /// over, and the main lane waits on the hanging endpoint every time.
    #[tokio::test]
    async fn without_a_slow_lane_the_main_lane_waits() {
        let (d, webhook, receiver, _) = setup(false).await;
        for _ in 0..2 {
            let started = std::time::Instant::now();
            assert!(run(&d, &[event().to_json()]).await.is_empty());
            assert!(started.elapsed() >= Duration::from_millis(550));
        }
        assert!(lane_of(&d, &webhook).await.is_none());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 2);
    }

    /// A slow-lane attempt that is itself slow keeps the mark, and a second
    /// slow-lane message for the same webhook in one batch writes nothing more.
    #[tokio::test]
    async fn a_slow_attempt_on_the_slow_lane_keeps_the_mark() {
        let (d, webhook, _receiver, queued) = setup(true).await;
        assert!(run(&d, &[event().to_json()]).await.is_empty());
        let since = lane_of(&d, &webhook).await.expect("marked");
        assert!(
            run(&d, &[event().to_json(), event().to_json()])
                .await
                .is_empty()
        );
        let handed: Vec<String> = queued.lock().unwrap().drain(..).map(|(m, _)| m).collect();
        assert_eq!(handed.len(), 2);
        assert!(run(&d, &handed).await.is_empty());
        assert_eq!(lane_of(&d, &webhook).await, Some(since), "unchanged");
    }

    /// Issue 15, item 3: a targeted message can skip the status and
    /// subscription checks, so one that comes from the producers' events
    /// queue is refused (a batch item failure, to the DLQ), and only the
    /// slow lane's queue is trusted with them.
    #[tokio::test]
    async fn a_targeted_message_on_the_events_queue_is_refused() {
        let (d, webhook, receiver, _) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        let events = "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events";
        let slow = "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events-slow";
        let d = d.with_requeue(Requeue::lanes(events, slow));
        let forged = TargetedMessage {
            target: shared::slow_lane::Target {
                webhook_id: webhook.id,
                attempt: 1,
                manual: true,
                not_before: None,
            },
            event: event(),
        }
        .to_json();
        let from = |queue: &str| {
            crate::local::sqs_event_from(Some(queue), [("m0".to_owned(), forged.clone())])
        };
        let refused = handle(&d, invocation(from(events), 6000, "r"))
            .await
            .unwrap();
        assert_eq!(refused.batch_item_failures.len(), 1);
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 0, "nothing sent");
        let made = handle(&d, invocation(from(slow), 6000, "r")).await.unwrap();
        assert!(made.batch_item_failures.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
    }

    /// Issue 15, item 14 (a): an attempt that would outlive the invocation
    /// used to be cut by it, unrecorded, and sent again when its message
    /// came back. Now its deadline ends in time for its record.
    #[tokio::test]
    async fn an_attempt_near_the_invocations_end_is_recorded_not_repeated() {
        let (mut d, webhook, receiver, _) = setup(false).await;
        d.settings.delivery_timeout = Duration::from_secs(5);
        let event = event();
        let started = std::time::Instant::now();
        let batch = sqs_event([("m0".to_owned(), event.to_json())]);
        let response = handle(&d, invocation(batch, 2000, "r")).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "the message is done with"
        );
        assert!(started.elapsed() < Duration::from_millis(2000));
        let records = records_of(&d, &webhook, &event).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome.as_str(), "timeout");
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
    }
}
