//! The event envelope on the queue: the contract with every producer.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::json::{self, JsonError};
use crate::{EventType, TenantId, ValidationError};

/// Chosen by the producer, unique per event. Also the `webhook-id` header,
/// which receivers use to drop duplicates, and part of DynamoDB keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        Self(format!("evt_{}", ulid::Ulid::generate()))
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(ok) {
            return Err(ValidationError::new(
                "id",
                format!(
                    "must be 1 to {} characters of letters, digits, '_', '-', '.' or ':'",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

crate::validation::deserialize_via_parse!(EventId);

/// `data` is kept as the producer's raw JSON text: it is never re-parsed,
/// only checked to be an object and copied into the delivery body.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct EventData(Box<RawValue>);

impl EventData {
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new("data", "must be a JSON object"));
        }
        let raw = RawValue::from_string(value.to_string())
            .map_err(|e| ValidationError::new("data", e.to_string()))?;
        Ok(Self(raw))
    }

    /// From JSON text that must be an object.
    pub fn from_json_text(text: &str) -> Result<Self, ValidationError> {
        let raw = RawValue::from_string(text.to_owned())
            .map_err(|e| ValidationError::new("data", e.to_string()))?;
        if !raw.get().starts_with('{') {
            return Err(ValidationError::new("data", "must be a JSON object"));
        }
        Ok(Self(raw))
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<'de> Deserialize<'de> for EventData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom("must be a JSON object"));
        }
        Ok(Self(raw))
    }
}

/// `{"id", "tenant_id", "type", "timestamp", "data"}` as producers send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: EventData,
}

/// What a receiver gets: the envelope without `tenant_id`.
#[derive(Serialize)]
struct DeliveryBody<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    data: &'a EventData,
    /// Only on a test event (`"test": true`), so that a receiver can tell.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test: bool,
}

/// The largest envelope the platform takes: 255 KiB, 1 KiB under the
/// queues' message size, so that a retry, a hand-over or a redelivery (the
/// event wrapped in a targeted message, about 150 bytes more) can always be
/// queued. `emit` refuses a larger one; the dispatcher sets it aside as
/// invalid (dead-letter queue).
pub const MAX_EVENT_BYTES: usize = crate::infra::QUEUE_MAX_MESSAGE_BYTES - 1024;

impl Event {
    /// Parses and validates an envelope; the error names the field.
    pub fn from_json(raw: &str) -> Result<Self, JsonError> {
        json::from_slice(raw.as_bytes())
    }

    /// The body of every delivery of this event, serialized once per event.
    pub fn delivery_body(&self) -> Vec<u8> {
        self.body(false)
    }

    /// The body of a test event: the same, with `"test": true`.
    pub fn test_delivery_body(&self) -> Vec<u8> {
        self.body(true)
    }

    fn body(&self, test: bool) -> Vec<u8> {
        let body = DeliveryBody {
            id: &self.id,
            event_type: self.event_type,
            timestamp: self.timestamp,
            data: &self.data,
            test,
        };
        // Serializing strings, a timestamp and already-valid raw JSON cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"status":"ok","score":0.98}}"#;

    fn field_of(raw: &str) -> Option<String> {
        match Event::from_json(raw) {
            Err(JsonError::Field { field, .. }) => field,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn parses_and_builds_the_delivery_body() {
        let e = Event::from_json(GOOD).unwrap();
        assert_eq!(e.id.as_str(), "evt_1");
        assert_eq!(e.event_type, EventType::AsyncCompleted);
        let body = String::from_utf8(e.delivery_body()).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"status":"ok","score":0.98}}"#
        );
        let test = String::from_utf8(e.test_delivery_body()).unwrap();
        assert_eq!(
            test,
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"status":"ok","score":0.98},"test":true}"#
        );
        assert_eq!(Event::from_json(&e.to_json()).unwrap(), e);
    }

    #[test]
    fn each_field_is_validated() {
        let with = |field: &str, value: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v[field] = value;
            v.to_string()
        };
        let without = |field: &str| {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v.as_object_mut().unwrap().remove(field);
            v.to_string()
        };
        for f in ["id", "tenant_id", "type", "timestamp", "data"] {
            assert_eq!(field_of(&without(f)).as_deref(), Some(f));
        }
        assert_eq!(field_of(&with("id", "".into())).as_deref(), Some("id"));
        assert_eq!(field_of(&with("id", "a b".into())).as_deref(), Some("id"));
        assert_eq!(
            field_of(&with("id", "x".repeat(129).into())).as_deref(),
            Some("id")
        );
        assert!(Event::from_json(&with("id", "x".repeat(128).into())).is_ok());
        assert_eq!(
            field_of(&with("tenant_id", "a#b".into())).as_deref(),
            Some("tenant_id")
        );
        assert_eq!(
            field_of(&with("type", "async.done".into())).as_deref(),
            Some("type")
        );
        assert_eq!(
            field_of(&with("timestamp", "yesterday".into())).as_deref(),
            Some("timestamp")
        );
        assert_eq!(
            field_of(&with("data", serde_json::json!([1]))).as_deref(),
            Some("data")
        );
        assert_eq!(
            field_of(&with("data", "text".into())).as_deref(),
            Some("data")
        );
        assert_eq!(field_of(&with("extra", 1.into())).as_deref(), Some("extra"));
        assert!(matches!(
            Event::from_json("not json"),
            Err(JsonError::Malformed(_))
        ));
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = EventId::generate();
        assert!(id.as_str().starts_with("evt_"));
        assert_eq!(EventId::parse(id.as_str()).unwrap(), id);
    }
}
