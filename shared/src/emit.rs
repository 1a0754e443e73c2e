//! Producing events: validate, then send the envelope to the events queue.

use aws_sdk_sqs::error::DisplayErrorContext;
use serde_json::Value;
use time::OffsetDateTime;

use crate::event::{Event, EventData, EventId, Subject};
use crate::{EventType, TenantId, ValidationError};

/// What a producer supplies; the id and timestamp are made when absent.
pub struct NewEvent {
    pub id: Option<String>,
    pub tenant_id: String,
    pub event_type: String,
    pub timestamp: Option<OffsetDateTime>,
    /// The job's reference (see [`Subject`]).
    pub subject: Option<String>,
    pub data: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("sending to the events queue failed: {0}")]
    Queue(String),
    #[error("the event is {0} bytes as JSON; at most {max} are accepted", max = crate::event::MAX_EVENT_BYTES)]
    TooLarge(usize),
}

impl NewEvent {
    pub fn into_event(self) -> Result<Event, ValidationError> {
        let id = match self.id {
            Some(id) => EventId::parse(&id)?,
            None => EventId::generate(),
        };
        let event_type = self
            .event_type
            .parse::<EventType>()
            .map_err(|e| ValidationError::new("type", e.to_string()))?;
        if event_type.is_notice() {
            return Err(ValidationError::new(
                "type",
                format!(
                    "{event_type} is a notice the platform sends about webhooks; producers emit job events only"
                ),
            ));
        }
        Ok(Event {
            id,
            tenant_id: TenantId::parse(&self.tenant_id)?,
            event_type,
            timestamp: self.timestamp.unwrap_or_else(crate::webhook::now_utc),
            subject: self.subject.as_deref().map(Subject::parse).transpose()?,
            data: EventData::from_value(&self.data)?,
        })
    }
}

/// Validates the event and sends it to the queue, with the tenant as its
/// message group (SQS fair queues); returns its id.
pub async fn emit(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: NewEvent,
) -> Result<EventId, EmitError> {
    let event = event.into_event()?;
    let body = event.to_json();
    if body.len() > crate::event::MAX_EVENT_BYTES {
        return Err(EmitError::TooLarge(body.len()));
    }
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(body)
        // SQS fair queues: a tenant's backlog does not hold up other tenants.
        .message_group_id(event.tenant_id.as_str())
        .send()
        .await
        .map_err(|e| EmitError::Queue(DisplayErrorContext(e).to_string()))?;
    Ok(event.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(event_type: &str, data: Value) -> NewEvent {
        NewEvent {
            id: None,
            tenant_id: "acme".into(),
            event_type: event_type.into(),
            timestamp: None,
            subject: None,
            data,
        }
    }

    #[test]
    fn fills_in_id_and_timestamp_and_validates() {
        let e = new("flowx.completed", json!({"flow": "f1"}))
            .into_event()
            .unwrap();
        assert!(e.id.as_str().starts_with("evt_"));
        assert_eq!(e.event_type, EventType::FlowxCompleted);
        assert_eq!(Event::from_json(&e.to_json()).unwrap(), e);
        assert_eq!(
            new("flowx.done", json!({})).into_event().unwrap_err().field,
            "type"
        );
        assert_eq!(
            new("flowx.completed", json!([1]))
                .into_event()
                .unwrap_err()
                .field,
            "data"
        );
        let mut bad_id = new("flowx.completed", json!({}));
        bad_id.id = Some("has space".into());
        assert_eq!(bad_id.into_event().unwrap_err().field, "id");
        let mut bad_tenant = new("flowx.completed", json!({}));
        bad_tenant.tenant_id = String::new();
        assert_eq!(bad_tenant.into_event().unwrap_err().field, "tenant_id");
        let mut bad_subject = new("flowx.completed", json!({}));
        bad_subject.subject = Some("two words".into());
        assert_eq!(bad_subject.into_event().unwrap_err().field, "subject");
        let mut with_subject = new("flowx.completed", json!({}));
        with_subject.subject = Some("flow_exec_7".into());
        let e = with_subject.into_event().unwrap();
        assert_eq!(e.subject.as_ref().map(Subject::as_str), Some("flow_exec_7"));
        for notice in ["webhook.failing", "webhook.disabled"] {
            let err = new(notice, json!({})).into_event().unwrap_err();
            assert_eq!(err.field, "type");
            assert!(
                err.message.contains("producers emit job events only"),
                "{err}"
            );
        }
    }
}
