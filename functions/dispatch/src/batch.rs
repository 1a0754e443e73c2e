//! Turning an SQS batch into work: each distinct event (or targeted attempt)
//! once, with the message ids that carry it; invalid messages set aside.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessage;
use shared::event::{Event, EventId, MAX_EVENT_BYTES};
use shared::json::JsonError;
use shared::slow_lane::{Continuation, RecoveryMessage};
use shared::slow_lane::{Target, TargetedMessage};
use shared::{TenantId, WebhookId};

/// What a message asks for.
pub enum Kind {
    /// A producer's event: every subscribed active webhook, first attempt.
    Fanout,
    /// One attempt at one webhook: a scheduled retry or a redelivery.
    Targeted(Target),
}

/// One distinct event, or one targeted attempt, and the messages that
/// carried it.
pub struct Job {
    pub event: Event,
    pub kind: Kind,
    /// Every message that carried this job.
    pub messages: Vec<String>,
}

/// A batch's messages, sorted: work, recovery pages, and what is invalid.
pub struct Batch {
    pub jobs: Vec<Job>,
    /// Recovery pages, with the id of the message that carried each.
    pub recoveries: Vec<(Continuation, String)>,
    /// Messages that are neither a valid envelope nor a targeted message.
    pub invalid: Vec<String>,
}

type JobKey = (TenantId, EventId, Option<(WebhookId, u32)>);

/// What one message is.
enum Parsed {
    Job(Event, Kind),
    /// The rest of a customer's recovery window.
    Recover(Continuation),
}

fn parse_one(body: Option<&str>, trusted: bool) -> Result<Parsed, JsonError> {
    let body = body.ok_or_else(|| JsonError::Malformed("the message has no body".into()))?;
    match Event::from_json(body) {
        // Its retries and hand-overs could not be queued (the wrapper would
        // pass the queue's message size): refused whole, never half-served.
        Ok(_) if body.len() > MAX_EVENT_BYTES => Err(JsonError::Field {
            code: "event_too_large",
            field: None,
            message: format!(
                "the envelope is {} bytes; at most {MAX_EVENT_BYTES} are accepted",
                body.len()
            ),
        }),
        // Notices come from the platform (the slow lane's queue) only: one
        // on the producers' queue is forged.
        Ok(event) if event.event_type.is_notice() && !trusted => Err(JsonError::Field {
            code: "notice_on_events_queue",
            field: Some("type".into()),
            message: format!("{} is sent by the platform only", event.event_type),
        }),
        Ok(event) => Ok(Parsed::Job(event, Kind::Fanout)),
        // Envelopes refuse unknown fields, so a targeted message fails as one.
        Err(envelope_error) => {
            let ours = match TargetedMessage::from_json(body) {
                Ok(m) => Parsed::Job(m.event, Kind::Targeted(m.target)),
                Err(_) => match RecoveryMessage::from_json(body) {
                    Ok(m) => Parsed::Recover(m.recover),
                    Err(_) => return Err(envelope_error),
                },
            };
            if trusted {
                return Ok(ours);
            }
            // A producer's queue carries producers' envelopes only: a
            // targeted message there is forged (it could skip the checks).
            Err(JsonError::Field {
                code: "targeted_message_on_events_queue",
                field: None,
                message: "retries, hand-overs, redeliveries and recoveries come from the slow lane's queue only".into(),
            })
        }
    }
}

/// The batch's work. `trusts` says whether a message from a queue (its
/// event source ARN) may be a targeted message.
pub fn parse(records: Vec<SqsMessage>, trusts: impl Fn(Option<&str>) -> bool) -> Batch {
    let mut jobs: Vec<Job> = Vec::new();
    let mut index: HashMap<JobKey, usize> = HashMap::new();
    let mut invalid = Vec::new();
    let mut recoveries = Vec::new();
    for record in records {
        let message_id = record.message_id.unwrap_or_default();
        let trusted = trusts(record.event_source_arn.as_deref());
        match parse_one(record.body.as_deref(), trusted) {
            Ok(Parsed::Recover(next)) => recoveries.push((next, message_id)),
            Ok(Parsed::Job(event, kind)) => {
                let target = match &kind {
                    Kind::Fanout => None,
                    Kind::Targeted(t) => Some((t.webhook_id, t.attempt)),
                };
                // SQS may hand over the same message twice: do the work once.
                // Ids are unique per producer's event; two tenants' events never merge.
                let key = (event.tenant_id.clone(), event.id.clone(), target);
                match index.get(&key) {
                    Some(&i) => jobs[i].messages.push(message_id),
                    None => {
                        index.insert(key, jobs.len());
                        jobs.push(Job {
                            event,
                            kind,
                            messages: vec![message_id],
                        });
                    }
                }
            }
            Err(err) => {
                // The reason names a field and a code, never the payload.
                let (code, field) = match &err {
                    JsonError::Malformed(_) => ("malformed_json", None),
                    JsonError::Field { code, field, .. } => (*code, field.as_deref()),
                };
                tracing::warn!(message_id, reason = code, field, "invalid event envelope");
                invalid.push(message_id);
            }
        }
    }
    Batch {
        jobs,
        recoveries,
        invalid,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use shared::infra::QUEUE_MAX_MESSAGE_BYTES;
    use shared::requeue::Requeue;

    use super::*;
    use crate::handle;
    use crate::local::{invocation, sqs_event_from};
    use crate::testing::{event, setup};

    /// An envelope of exactly `len` bytes.
    fn envelope(len: usize) -> String {
        let head = r#"{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"b":""#;
        let tail = r#""}}"#;
        format!("{head}{}{tail}", "a".repeat(len - head.len() - tail.len()))
    }

    /// The largest envelope taken still fits, as the event of a targeted
    /// message (its retry), in a queue message: an event near the queue's
    /// limit would be delivered, but its retry could never be queued.
    #[test]
    fn the_largest_event_still_fits_in_a_targeted_message() {
        let largest = envelope(MAX_EVENT_BYTES);
        let Ok(Parsed::Job(event, _)) = parse_one(Some(&largest), false) else {
            panic!("the largest envelope is taken");
        };
        let retry = TargetedMessage {
            target: Target {
                webhook_id: WebhookId::generate(),
                attempt: u32::MAX,
                manual: true,
                not_before: Some(i64::MAX),
                slot: Some(i64::MAX),
                retaken: true,
            },
            event,
        };
        assert!(retry.to_json().len() <= QUEUE_MAX_MESSAGE_BYTES);

        let over = envelope(MAX_EVENT_BYTES + 1);
        match parse_one(Some(&over), false) {
            Err(JsonError::Field { code, message, .. }) => {
                assert_eq!(code, "event_too_large");
                assert!(message.contains(&MAX_EVENT_BYTES.to_string()));
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("taken"),
        }
    }

    /// A targeted message can skip the status and subscription checks, so
    /// one that comes from the producers' events queue is refused (a batch
    /// item failure, to the DLQ), and only the slow lane's queue is trusted
    /// with them.
    #[tokio::test]
    async fn a_targeted_message_on_the_events_queue_is_refused() {
        let (d, webhook, receiver, _) = setup(true).await;
        receiver.hang.store(false, Ordering::SeqCst);
        let events = "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events";
        let slow = "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks-events-slow";
        let d = d.with_requeue(Requeue::lanes(events, slow));
        let forged = TargetedMessage {
            target: Target::manual(webhook.id, 1),
            event: event(),
        }
        .to_json();
        let from = |queue: &str| sqs_event_from(Some(queue), [("m0".to_owned(), forged.clone())]);
        let refused = handle(&d, invocation(from(events), 6000, "r"))
            .await
            .unwrap();
        assert_eq!(refused.batch_item_failures.len(), 1);
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 0, "nothing sent");
        let made = handle(&d, invocation(from(slow), 6000, "r")).await.unwrap();
        assert!(made.batch_item_failures.is_empty());
        assert_eq!(receiver.requests.load(Ordering::SeqCst), 1);
    }
}
