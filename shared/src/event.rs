//! The event envelope on the queue: the contract with every producer.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::json::{self, JsonError};
use crate::{EventType, TenantId, ValidationError};

/// A reference a producer chooses (an event's id, a job's subject): 1 to
/// `max` letters, digits, '_', '-', '.' or ':', safe in keys, headers and
/// URLs.
fn reference(field: &'static str, s: &str, max: usize) -> Result<String, ValidationError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if s.is_empty() || s.len() > max || !s.chars().all(ok) {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters of letters, digits, '_', '-', '.' or ':'"),
        ));
    }
    Ok(s.to_owned())
}

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
        reference("id", s, Self::MAX_LEN).map(Self)
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

/// The job an event is about, as the platform's own APIs name it: the async
/// request id, the flow execution id or the background-check profile id.
/// Optional; delivered when present, and what `GET /events?subject=` and the
/// erasure of one person's payloads look events up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Subject(String);

impl Subject {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        reference("subject", s, Self::MAX_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

crate::validation::deserialize_via_parse!(Subject);

/// What a webhook's deliveries carry: the whole event (`full`), or its
/// reference only (`thin`: id, type, timestamp and subject), for receivers
/// that fetch the data with a read key and keep identity data out of their
/// gateways and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadForm {
    #[default]
    Full,
    Thin,
}

impl PayloadForm {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "full" => Ok(Self::Full),
            "thin" => Ok(Self::Thin),
            _ => Err(ValidationError::new(
                "payload",
                format!("must be \"full\" or \"thin\" (got {s:?})"),
            )),
        }
    }
}

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

/// `{"id", "tenant_id", "type", "timestamp", "subject", "data"}` as producers
/// send it (`subject` optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    pub data: EventData,
}

/// What a receiver gets: the envelope without `tenant_id`; a thin delivery
/// also without `data`.
#[derive(Serialize)]
struct DeliveryBody<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Subject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a EventData>,
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

    /// The body of every delivery of this event in one form, serialized
    /// once per event and form.
    pub fn delivery_body(&self, form: PayloadForm) -> Vec<u8> {
        self.body(form, false)
    }

    /// The body of a test event: the same, with `"test": true`.
    pub fn test_delivery_body(&self, form: PayloadForm) -> Vec<u8> {
        self.body(form, true)
    }

    fn body(&self, form: PayloadForm, test: bool) -> Vec<u8> {
        let body = DeliveryBody {
            id: &self.id,
            event_type: self.event_type,
            timestamp: self.timestamp,
            subject: self.subject.as_ref(),
            data: (form == PayloadForm::Full).then_some(&self.data),
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
        let body = String::from_utf8(e.delivery_body(PayloadForm::Full)).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"status":"ok","score":0.98}}"#
        );
        let test = String::from_utf8(e.test_delivery_body(PayloadForm::Full)).unwrap();
        assert_eq!(
            test,
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"status":"ok","score":0.98},"test":true}"#
        );
        assert_eq!(Event::from_json(&e.to_json()).unwrap(), e);
        assert!(!e.to_json().contains("subject"));
    }

    #[test]
    fn a_thin_body_has_the_reference_and_no_data() {
        let with_subject = GOOD.replace(r#""data""#, r#""subject":"req_42:a-b.c","data""#);
        let e = Event::from_json(&with_subject).unwrap();
        assert_eq!(
            e.subject.as_ref().map(Subject::as_str),
            Some("req_42:a-b.c")
        );
        let thin = String::from_utf8(e.delivery_body(PayloadForm::Thin)).unwrap();
        assert_eq!(
            thin,
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","subject":"req_42:a-b.c"}"#
        );
        let full = String::from_utf8(e.delivery_body(PayloadForm::Full)).unwrap();
        assert!(full.contains(r#""subject":"req_42:a-b.c","data":{"status":"ok""#));
        let test = String::from_utf8(e.test_delivery_body(PayloadForm::Thin)).unwrap();
        assert!(test.ends_with(r#""subject":"req_42:a-b.c","test":true}"#));
        assert_eq!(Event::from_json(&e.to_json()).unwrap(), e);
        // Without a subject, a thin body is the id, type and time alone.
        let plain = Event::from_json(GOOD).unwrap();
        assert_eq!(
            String::from_utf8(plain.delivery_body(PayloadForm::Thin)).unwrap(),
            r#"{"id":"evt_1","type":"async.completed","timestamp":"2026-11-25T17:00:00Z"}"#
        );
    }

    #[test]
    fn subjects_and_forms_are_validated() {
        for bad in ["", "a b", "a#b", "a/b", &"x".repeat(129)] {
            assert_eq!(Subject::parse(bad).unwrap_err().field, "subject", "{bad:?}");
            let raw = GOOD.replace(r#""data""#, &format!(r#""subject":{bad:?},"data""#));
            assert_eq!(field_of(&raw).as_deref(), Some("subject"), "{bad:?}");
        }
        assert!(Subject::parse(&"x".repeat(128)).is_ok());
        assert_eq!(PayloadForm::parse("thin").unwrap(), PayloadForm::Thin);
        assert_eq!(PayloadForm::parse("partial").unwrap_err().field, "payload");
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
