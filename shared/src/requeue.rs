//! Attempts that go back on the events queue: automatic retries (scheduled by
//! the dispatcher) and redeliveries (asked for through the API). Each message
//! targets one webhook, so a retry never re-sends to the event's other webhooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::WebhookId;
use crate::event::Event;
use crate::retry::MAX_SQS_DELAY;

/// `{"target": {...}, "event": <the envelope>}` on the events queue. The event
/// travels whole, so a retry needs no read and works for events whose data
/// was too large to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetedMessage {
    pub target: Target,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub webhook_id: WebhookId,
    /// The number of the attempt this message asks for (2 and up).
    pub attempt: u32,
    /// Asked for by the customer rather than scheduled.
    #[serde(default)]
    pub manual: bool,
    /// Unix seconds before which the attempt must not be made: a wait longer
    /// than SQS's 15-minute delay is a chain of delayed messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

impl TargetedMessage {
    pub fn from_json(raw: &str) -> Result<Self, crate::json::JsonError> {
        crate::json::from_slice(raw.as_bytes())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where targeted messages go.
pub enum Requeue {
    /// The events queue, with the SQS client made on first use (not at cold start).
    Sqs {
        queue_url: String,
        client: OnceCell<aws_sdk_sqs::Client>,
    },
    /// Kept in memory (unit tests, benchmarks).
    Memory(Arc<Mutex<Vec<(String, Duration)>>>),
    /// No queue configured: nothing can be scheduled.
    Disabled,
}

impl Requeue {
    pub fn sqs(queue_url: impl Into<String>) -> Self {
        Requeue::Sqs {
            queue_url: queue_url.into(),
            client: OnceCell::new(),
        }
    }

    /// From `EVENTS_QUEUE_URL` when it is set.
    pub fn from_queue_url(queue_url: Option<&str>) -> Self {
        queue_url.map_or(Requeue::Disabled, Requeue::sqs)
    }

    /// Sends `message` after `delay` (at most 15 minutes; longer waits are
    /// chained by the caller through `not_before`).
    pub async fn send(&self, message: &TargetedMessage, delay: Duration) -> Result<(), String> {
        let delay = delay.min(MAX_SQS_DELAY);
        match self {
            Requeue::Sqs { queue_url, client } => {
                let client = client
                    .get_or_init(|| async {
                        aws_sdk_sqs::Client::new(&crate::aws::load_config().await)
                    })
                    .await;
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(message.to_json())
                    // Whole seconds, rounded up: a wait is never cut short.
                    .delay_seconds(i32::try_from(whole_seconds(delay)).unwrap_or(900))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            }
            Requeue::Memory(sent) => {
                sent.lock()
                    .map_err(|_| "the in-memory queue is poisoned".to_owned())?
                    .push((message.to_json(), delay));
                Ok(())
            }
            Requeue::Disabled => Err("no events queue is configured (EVENTS_QUEUE_URL)".into()),
        }
    }
}

fn whole_seconds(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
