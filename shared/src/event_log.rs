//! Accepted events, kept for `EVENT_RETENTION_DAYS` so that a customer can
//! catch up after an outage (`GET /events`) and ask for a redelivery.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::delivery_log::sortable_time;
use crate::event::{Event, EventData, EventId};
use crate::{EventType, TenantId};

/// `data` larger than this is not kept (the event is still delivered): a
/// DynamoDB item holds at most 400 KB, keys and other attributes included.
pub const MAX_KEPT_DATA_BYTES: usize = 350 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The payload as the producer's JSON text (a string attribute: the
    /// store never re-parses it). Absent when it was too large to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_omitted: bool,
    /// When the dispatcher accepted it (RFC 3339, sortable).
    pub received_at: String,
    /// Unix seconds after which DynamoDB TTL may delete it.
    pub expires_at: i64,
}

impl StoredEvent {
    pub fn new(event: &Event, received_at: OffsetDateTime, retention_days: u32) -> Self {
        let keep = event.data.get().len() <= MAX_KEPT_DATA_BYTES;
        Self {
            id: event.id.clone(),
            tenant_id: event.tenant_id.clone(),
            event_type: event.event_type,
            timestamp: event.timestamp,
            data: keep.then(|| event.data.get().to_owned()),
            data_omitted: !keep,
            received_at: sortable_time(received_at),
            expires_at: received_at.unix_timestamp() + i64::from(retention_days) * 86_400,
        }
    }

    /// The payload, checked again on the way out of the store.
    pub fn payload(&self) -> Option<EventData> {
        EventData::from_json_text(self.data.as_deref()?).ok()
    }

    /// The event again, as producers sent it; `None` when its data was not kept.
    pub fn to_event(&self) -> Option<Event> {
        Some(Event {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            event_type: self.event_type,
            timestamp: self.timestamp,
            data: self.payload()?,
        })
    }

    /// Where this event sits in its tenant's newest-first list: the event's
    /// own timestamp (sortable), then its id.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", sortable_time(self.timestamp), self.id)
    }
}

/// The filters of `GET /events`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub event_type: Option<EventType>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl EventFilter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.event_type.is_none_or(|t| t == e.event_type)
            && self.since.is_none_or(|s| e.timestamp >= s)
            && self.until.is_none_or(|u| e.timestamp < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_data_is_not_kept_but_flagged() {
        let small = Event::from_json(
            r#"{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{"a":1}}"#,
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let kept = StoredEvent::new(&small, now, 7);
        assert!(!kept.data_omitted);
        assert_eq!(kept.to_event().unwrap(), small);
        assert_eq!(kept.expires_at, now.unix_timestamp() + 7 * 86_400);
        let big_data = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_KEPT_DATA_BYTES));
        let big = Event::from_json(&format!(
            r#"{{"id":"evt_2","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","data":{big_data}}}"#
        ))
        .unwrap();
        let stored = StoredEvent::new(&big, now, 7);
        assert!(stored.data_omitted && stored.data.is_none());
        assert!(stored.to_event().is_none());
    }
}
