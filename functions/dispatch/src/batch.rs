//! Turning an SQS batch into work: valid events grouped by id, with the
//! message ids that carry each; invalid messages set aside as failures.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessage;
use shared::TenantId;
use shared::event::{Event, EventId};
use shared::json::JsonError;

pub struct Batch {
    /// Each distinct event once, with every message that carried it.
    pub events: Vec<(Event, Vec<String>)>,
    /// Messages that are not a valid envelope.
    pub invalid: Vec<String>,
}

pub fn parse(records: Vec<SqsMessage>) -> Batch {
    let mut events: Vec<(Event, Vec<String>)> = Vec::new();
    // Ids are unique per producer's event; two tenants' events never merge.
    let mut index: HashMap<(TenantId, EventId), usize> = HashMap::new();
    let mut invalid = Vec::new();
    for record in records {
        let message_id = record.message_id.unwrap_or_default();
        let parsed = match record.body.as_deref() {
            Some(body) => Event::from_json(body),
            None => Err(JsonError::Malformed("the message has no body".into())),
        };
        match parsed {
            Ok(event) => match index.get(&(event.tenant_id.clone(), event.id.clone())) {
                // SQS may hand over the same event twice: deliver it once.
                Some(&i) => events[i].1.push(message_id),
                None => {
                    index.insert((event.tenant_id.clone(), event.id.clone()), events.len());
                    events.push((event, vec![message_id]));
                }
            },
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
    Batch { events, invalid }
}
