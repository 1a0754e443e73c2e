//! Attempts that go back on a queue: automatic retries (scheduled by the
//! dispatcher), attempts handed over by the main lane (for a webhook marked
//! slow) and redeliveries (asked for through the API). Each message targets
//! one webhook, so a retry never re-sends to the event's other webhooks.
//!
//! They all travel on the slow lane's queue, which only the functions may
//! write to: the producers' events queue carries producers' envelopes only,
//! so a targeted message (which can skip the status and subscription checks)
//! cannot be forged by whoever may send events. Without a slow lane (tests,
//! the bare `webhooks poll`), they go on the events queue. Every message
//! carries the tenant as its `MessageGroupId`: on SQS fair queues a noisy
//! tenant's backlog then does not delay other tenants' messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::OnceCell;

use crate::retry::MAX_SQS_DELAY;
use crate::slow_lane::{RecoveryMessage, TargetedMessage};
use crate::store::EventStore;

/// Where targeted messages go.
pub enum Requeue {
    /// The events queue and, when configured, the slow lane's queue, with the
    /// SQS client made on first use (not at cold start).
    Sqs {
        events_url: String,
        slow_url: Option<String>,
        client: OnceCell<aws_sdk_sqs::Client>,
    },
    /// Kept in memory (unit tests, benchmarks): (message, delay).
    Memory(Arc<Mutex<Vec<(String, Duration)>>>),
    /// No queue configured: nothing can be scheduled.
    Disabled,
}

/// SendMessageBatch takes at most ten entries.
const SQS_SEND_BATCH: usize = 10;

impl Requeue {
    /// The events queue only: no slow lane.
    pub fn sqs(events_url: impl Into<String>) -> Self {
        Requeue::Sqs {
            events_url: events_url.into(),
            slow_url: None,
            client: OnceCell::new(),
        }
    }

    /// The events queue and the slow lane's queue.
    pub fn lanes(events_url: impl Into<String>, slow_url: impl Into<String>) -> Self {
        Requeue::Sqs {
            events_url: events_url.into(),
            slow_url: Some(slow_url.into()),
            client: OnceCell::new(),
        }
    }

    /// From `EVENTS_QUEUE_URL` and `SLOW_QUEUE_URL` when they are set.
    pub fn from_settings(settings: &crate::Settings) -> Self {
        match (&settings.events_queue_url, &settings.slow_queue_url) {
            (None, _) => Requeue::Disabled,
            (Some(events), None) => Requeue::sqs(events),
            (Some(events), Some(slow)) => Requeue::lanes(events, slow),
        }
    }

    /// Whether attempts can be handed to a slow lane. Without one, every
    /// attempt is made on the main lane, as before lanes existed, and
    /// targeted messages travel on the events queue.
    pub fn has_slow_lane(&self) -> bool {
        match self {
            Requeue::Sqs { slow_url, .. } => slow_url.is_some(),
            Requeue::Memory(_) => true,
            Requeue::Disabled => false,
        }
    }

    async fn client(cell: &OnceCell<aws_sdk_sqs::Client>) -> &aws_sdk_sqs::Client {
        cell.get_or_init(|| async { aws_sdk_sqs::Client::new(&crate::aws::load_config().await) })
            .await
    }

    /// Where targeted messages go: the slow lane's queue, or the events
    /// queue when there is none.
    fn queue_of<'a>(events_url: &'a str, slow_url: Option<&'a str>) -> &'a str {
        slow_url.unwrap_or(events_url)
    }

    /// Sends `message` after `delay` (at most 15 minutes;
    /// longer waits are chained by the caller through `not_before`).
    pub async fn send(&self, message: &TargetedMessage, delay: Duration) -> Result<(), String> {
        self.send_body(message.to_json(), &message.event.tenant_id, delay)
            .await
    }

    /// Sends a platform notice (an event envelope) now, on the slow lane's
    /// queue like every message the platform makes: a notice on the
    /// producers' queue is refused.
    pub async fn send_notice(&self, notice: &crate::event::Event) -> Result<(), String> {
        self.send_body(notice.to_json(), &notice.tenant_id, Duration::ZERO)
            .await
    }

    /// Sends the rest of a recovery's window after `delay` (at most 15
    /// minutes), on the slow lane like the attempts it queues.
    pub async fn send_recovery(
        &self,
        message: &RecoveryMessage,
        delay: Duration,
    ) -> Result<(), String> {
        self.send_body(message.to_json(), &message.recover.tenant_id, delay)
            .await
    }

    async fn send_body(
        &self,
        body: String,
        tenant: &crate::TenantId,
        delay: Duration,
    ) -> Result<(), String> {
        let delay = delay.min(MAX_SQS_DELAY);
        match self {
            Requeue::Sqs {
                events_url,
                slow_url,
                client,
            } => Self::client(client)
                .await
                .send_message()
                .queue_url(Self::queue_of(events_url, slow_url.as_deref()))
                .message_body(body)
                .message_group_id(tenant.as_str())
                .delay_seconds(delay_seconds(delay))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string()),
            Requeue::Memory(sent) => {
                sent.lock()
                    .map_err(|_| "the in-memory queue is poisoned".to_owned())?
                    .push((body, delay));
                Ok(())
            }
            Requeue::Disabled => Err("no events queue is configured (EVENTS_QUEUE_URL)".into()),
        }
    }

    /// Sends manual attempts numbered by the store: as [`Self::send_now`],
    /// and each message that could not be sent gives up its attempt's claim
    /// (a failure to do so is logged: the claim then lapses with
    /// [`crate::recovery::PENDING_SECS`]).
    pub async fn send_claimed(
        &self,
        store: &impl EventStore,
        messages: &[TargetedMessage],
    ) -> Vec<Result<(), String>> {
        let sent = self.send_now(messages).await;
        let unsent = messages.iter().zip(&sent).filter(|(_, r)| r.is_err());
        let released = join_all(unsent.map(|(m, _)| {
            store.release_manual_attempt(
                &m.event.tenant_id,
                &m.event.id,
                m.target.webhook_id,
                m.target.attempt,
            )
        }))
        .await;
        for e in released.into_iter().filter_map(Result::err) {
            tracing::error!(error = %e, "releasing the claim of an attempt not queued failed");
        }
        sent
    }

    /// Sends messages now, ten to a SendMessageBatch call, the calls at
    /// once; one result per message, in order.
    pub async fn send_now(&self, messages: &[TargetedMessage]) -> Vec<Result<(), String>> {
        let now: Vec<_> = messages.iter().map(|m| (m, Duration::ZERO)).collect();
        self.send_delayed(&now).await
    }

    /// Sends messages, each after its own delay (at most 15 minutes), ten
    /// to a SendMessageBatch call, the calls at once; one result per
    /// message, in order.
    pub async fn send_delayed(
        &self,
        messages: &[(&TargetedMessage, Duration)],
    ) -> Vec<Result<(), String>> {
        let Requeue::Sqs {
            events_url,
            slow_url,
            client,
        } = self
        else {
            let mut results = Vec::with_capacity(messages.len());
            for (m, delay) in messages {
                results.push(self.send(m, *delay).await);
            }
            return results;
        };
        let client = Self::client(client).await;
        let queue = Self::queue_of(events_url, slow_url.as_deref());
        let outgoing: Vec<Outgoing> = messages
            .iter()
            .map(|(m, delay)| Outgoing {
                body: m.to_json(),
                group: m.event.tenant_id.as_str(),
                delay: *delay,
            })
            .collect();
        let sizes: Vec<usize> = outgoing.iter().map(|o| o.body.len()).collect();
        let mut rest = outgoing.into_iter();
        let requests: Vec<Vec<Outgoing>> = request_lengths(&sizes)
            .into_iter()
            .map(|n| rest.by_ref().take(n).collect())
            .collect();
        // The requests at once: a recovery's page of 100 is one round trip.
        let sent = futures_util::future::join_all(
            requests
                .into_iter()
                .map(|request| send_batch(client, queue, request)),
        )
        .await;
        sent.into_iter().flatten().collect()
    }

    /// Whether a message that arrived from `source_arn` may be a targeted
    /// message: with a slow lane, only one from the slow lane's queue (the
    /// last part of the ARN is the queue's name, as the URL's last segment).
    /// A record without a source (unit tests) passes.
    pub fn trusts(&self, source_arn: Option<&str>) -> bool {
        let (
            Requeue::Sqs {
                slow_url: Some(slow),
                ..
            },
            Some(arn),
        ) = (self, source_arn)
        else {
            return true;
        };
        let name = |s: &str, sep: char| s.rsplit(sep).next().map(str::to_owned);
        name(arn, ':') == name(slow.trim_end_matches('/'), '/')
    }
}

/// A message on its way: its body, its tenant (the `MessageGroupId`) and
/// its delay.
struct Outgoing<'a> {
    body: String,
    group: &'a str,
    delay: Duration,
}

/// What one SendMessageBatch carries at most in all. AWS allows 1 MiB today
/// (256 KiB before); a batch within the queue's largest message passes
/// either, and ten messages of a usual size (a few KB) still go together.
const SQS_SEND_BATCH_BYTES: usize = crate::infra::QUEUE_MAX_MESSAGE_BYTES;

/// How many messages each request carries, in order, for messages of these
/// sizes: at most ten, and at most [`SQS_SEND_BATCH_BYTES`] in all (a
/// message that large goes alone).
fn request_lengths(sizes: &[usize]) -> Vec<usize> {
    let mut lengths: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &size in sizes {
        match lengths.last_mut() {
            Some(n) if *n < SQS_SEND_BATCH && bytes + size <= SQS_SEND_BATCH_BYTES => {
                *n += 1;
                bytes += size;
            }
            _ => {
                lengths.push(1);
                bytes = size;
            }
        }
    }
    lengths
}

/// One SendMessageBatch; entries are numbered by their place in `messages`.
async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue: &str,
    messages: Vec<Outgoing<'_>>,
) -> Vec<Result<(), String>> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let count = messages.len();
    let entries: Result<Vec<_>, _> = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body)
                .message_group_id(m.group)
                .delay_seconds(delay_seconds(m.delay))
                .build()
        })
        .collect();
    let sent = match entries {
        Ok(entries) => {
            client
                .send_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
                .await
        }
        Err(e) => return (0..count).map(|_| Err(e.to_string())).collect(),
    };
    match sent {
        Ok(out) => {
            let mut results: Vec<Result<(), String>> = (0..count).map(|_| Ok(())).collect();
            for failed in out.failed {
                if let Some(slot) = failed
                    .id
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| results.get_mut(i))
                {
                    *slot = Err(format!(
                        "{}: {}",
                        failed.code,
                        failed.message.unwrap_or_default()
                    ));
                }
            }
            results
        }
        Err(e) => {
            let e = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
            (0..count).map(|_| Err(e.clone())).collect()
        }
    }
}

/// An SQS delay: whole seconds, rounded up (a wait is never cut short),
/// at most 15 minutes.
fn delay_seconds(delay: Duration) -> i32 {
    i32::try_from(whole_seconds(delay.min(MAX_SQS_DELAY))).unwrap_or(900)
}

fn whole_seconds(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebhookId;
    use crate::event::Event;
    use crate::slow_lane::Target;

    /// Ten usual messages share a request; large ones share one only while
    /// the request stays within the queue's largest message.
    #[test]
    fn a_request_carries_ten_messages_within_the_size_limit() {
        assert_eq!(request_lengths(&[2_000; 25]), [10, 10, 5]);
        let large = 200 * 1024;
        assert_eq!(request_lengths(&[large; 3]), [1, 1, 1]);
        assert_eq!(
            request_lengths(&[large, 40 * 1024, 10, large]),
            [3, 1],
            "the second request starts where the first would pass the limit"
        );
        assert_eq!(request_lengths(&[SQS_SEND_BATCH_BYTES + 1, 1]), [1, 1]);
        assert!(request_lengths(&[]).is_empty());
    }

    #[test]
    fn only_the_slow_lanes_queue_is_trusted_with_targeted_messages() {
        let lanes = Requeue::lanes(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/webhooks-events",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/webhooks-slow",
        );
        assert!(lanes.trusts(Some("arn:aws:sqs:eu-west-1:123456789012:webhooks-slow")));
        assert!(!lanes.trusts(Some("arn:aws:sqs:eu-west-1:123456789012:webhooks-events")));
        assert!(!lanes.trusts(Some("arn:aws:sqs:eu-west-1:123456789012:webhooks-slow-x")));
        assert!(lanes.trusts(None));
        // Without a slow lane, the events queue carries them.
        let plain =
            Requeue::sqs("https://sqs.eu-west-1.amazonaws.com/123456789012/webhooks-events");
        assert!(plain.trusts(Some("arn:aws:sqs:eu-west-1:123456789012:webhooks-events")));
    }

    #[test]
    fn delays_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(800)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds(Duration::from_millis(5001)), 6);
    }

    #[test]
    fn a_targeted_message_round_trips_and_is_not_an_envelope() {
        let event = Event::from_json(
            r#"{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"a":1}}"#,
        )
        .unwrap();
        let message = TargetedMessage {
            target: Target {
                webhook_id: WebhookId::generate(),
                attempt: 2,
                manual: false,
                not_before: Some(1_764_000_000),
                slot: None,
                retaken: false,
            },
            event: event.clone(),
        };
        let json = message.to_json();
        assert_eq!(
            serde_json::from_str::<TargetedMessage>(&json).unwrap(),
            message
        );
        // Producers' envelopes refuse unknown fields: the two never mix up.
        assert!(Event::from_json(&json).is_err());
        assert!(serde_json::from_str::<TargetedMessage>(&event.to_json()).is_err());
    }
}
