//! Accepted events, kept for `EVENT_RETENTION_DAYS` so that a customer can
//! catch up after an outage (`GET /events`) and ask for a redelivery.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::delivery_log::sortable_time;
use crate::event::{Event, EventData, EventId, Subject};
use crate::{EventType, TenantId};

/// `data` larger than this is not kept (the event is still delivered): a
/// DynamoDB item holds at most 400 KB, keys and other attributes included.
pub const MAX_KEPT_DATA_BYTES: usize = 350 * 1024;

/// What became of an event's payload: why it has data, or why not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadState {
    /// Kept and readable.
    #[default]
    Kept,
    /// Never written: the tenant's `payload_retention_hours` is 0.
    NotKept,
    /// Never written: larger than [`MAX_KEPT_DATA_BYTES`].
    TooLarge,
    /// Past the tenant's retention (never stored: read against the clock).
    Expired,
    /// Deleted by the tenant.
    Deleted,
}

impl PayloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadState::Kept => "kept",
            PayloadState::NotKept => "not_kept",
            PayloadState::TooLarge => "too_large",
            PayloadState::Expired => "expired",
            PayloadState::Deleted => "deleted",
        }
    }
}

/// How long an event's copy and its payload are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The event's metadata (`EVENT_RETENTION_DAYS`): the log, catch-up.
    pub event_days: u32,
    /// Its `data` (the tenant's `payload_retention_hours`), at most as long.
    pub payload_hours: u16,
}

impl Retention {
    /// The defaults: a week of both.
    pub const WEEK: Self = Self {
        event_days: 7,
        payload_hours: 168,
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// The payload as the producer's JSON text (a string attribute: the
    /// store never re-parses it), while it is kept. DynamoDB holds it in an
    /// item of its own, beside the event's, in no index, with its own
    /// expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Too large to keep (also `payload: too_large`; copies written before
    /// `payload` existed have only this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_omitted: bool,
    /// What became of the payload, as written: never `expired`, which is
    /// read against the clock ([`StoredEvent::payload_state`]).
    #[serde(default)]
    pub payload: PayloadState,
    /// Unix seconds after which the payload is no longer read, and DynamoDB
    /// TTL may delete it (copies from before: `expires_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_expires_at: Option<i64>,
    /// When the dispatcher accepted it (RFC 3339, sortable).
    pub received_at: String,
    /// Unix seconds after which DynamoDB TTL may delete it.
    pub expires_at: i64,
}

impl StoredEvent {
    pub fn new(event: &Event, received_at: OffsetDateTime, retention: Retention) -> Self {
        let now = received_at.unix_timestamp();
        let expires_at = now + i64::from(retention.event_days) * 86_400;
        let payload = if retention.payload_hours == 0 {
            PayloadState::NotKept
        } else if event.data.get().len() > MAX_KEPT_DATA_BYTES {
            PayloadState::TooLarge
        } else {
            PayloadState::Kept
        };
        let kept = payload == PayloadState::Kept;
        Self {
            id: event.id.clone(),
            tenant_id: event.tenant_id.clone(),
            event_type: event.event_type,
            timestamp: event.timestamp,
            subject: event.subject.clone(),
            data: kept.then(|| event.data.get().to_owned()),
            data_omitted: payload == PayloadState::TooLarge,
            payload,
            payload_expires_at: kept
                .then(|| expires_at.min(now + i64::from(retention.payload_hours) * 3_600)),
            received_at: sortable_time(received_at),
            expires_at,
        }
    }

    /// Until when (Unix seconds) the payload may be read.
    pub fn payload_expires_at(&self) -> i64 {
        self.payload_expires_at.unwrap_or(self.expires_at)
    }

    /// What became of the payload at `now` (Unix seconds): a payload past
    /// its retention is `expired` even while DynamoDB's TTL, which lags by
    /// up to two days, has not deleted it yet.
    pub fn payload_state(&self, now: i64) -> PayloadState {
        match self.payload {
            _ if self.data_omitted => PayloadState::TooLarge,
            PayloadState::Kept if now >= self.payload_expires_at() => PayloadState::Expired,
            // Deleted by TTL before the event's copy was.
            PayloadState::Kept if self.data.is_none() => PayloadState::Expired,
            state => state,
        }
    }

    /// Whether a payload was written for this event (it may have expired or
    /// been deleted since): what a deletion must reach.
    pub fn holds_payload(&self) -> bool {
        !self.data_omitted && matches!(self.payload, PayloadState::Kept | PayloadState::Deleted)
    }

    /// The payload, checked again on the way out of the store; `None`
    /// unless it is kept at `now`.
    pub fn payload(&self, now: i64) -> Option<EventData> {
        if self.payload_state(now) != PayloadState::Kept {
            return None;
        }
        EventData::from_json_text(self.data.as_deref()?).ok()
    }

    /// The event again, as producers sent it; `None` when its payload is
    /// not kept at `now`.
    pub fn to_event(&self, now: i64) -> Option<Event> {
        Some(Event {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            event_type: self.event_type,
            timestamp: self.timestamp,
            subject: self.subject.clone(),
            data: self.payload(now)?,
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
    /// The job's events only: read from an index of their own.
    pub subject: Option<Subject>,
    pub event_type: Option<EventType>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl EventFilter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.subject
            .as_ref()
            .is_none_or(|s| e.subject.as_ref() == Some(s))
            && self.event_type.is_none_or(|t| t == e.event_type)
            && self.since.is_none_or(|s| e.timestamp >= s)
            && self.until.is_none_or(|u| e.timestamp < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Retention = Retention::WEEK;

    fn event(data: &str) -> Event {
        Event::from_json(&format!(
            r#"{{"id":"evt_1","tenant_id":"acme","type":"async.completed","timestamp":"2026-11-25T17:00:00Z","subject":"req_1","data":{data}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn large_data_is_not_kept_but_flagged() {
        let small = event(r#"{"a":1}"#);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let kept = StoredEvent::new(&small, now, WEEK);
        assert!(!kept.data_omitted);
        assert_eq!(kept.payload_state(t), PayloadState::Kept);
        assert_eq!(kept.to_event(t).unwrap(), small);
        assert_eq!(kept.expires_at, t + 7 * 86_400);
        let big_data = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_KEPT_DATA_BYTES));
        let stored = StoredEvent::new(&event(&big_data), now, WEEK);
        assert!(stored.data_omitted && stored.data.is_none());
        assert_eq!(stored.payload_state(t), PayloadState::TooLarge);
        assert!(stored.to_event(t).is_none());
    }

    #[test]
    fn a_payload_is_read_only_within_its_retention() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let day = Retention {
            event_days: 7,
            payload_hours: 24,
        };
        let e = StoredEvent::new(&event(r#"{"a":1}"#), now, day);
        assert_eq!(e.payload_expires_at(), t + 86_400);
        assert!(e.payload(t + 86_399).is_some());
        // Past it, still in the item (TTL lags): not read, and it says why.
        assert!(e.data.is_some());
        assert_eq!(e.payload(t + 86_400), None);
        assert_eq!(e.payload_state(t + 86_400), PayloadState::Expired);
        assert!(e.to_event(t + 86_400).is_none());
        // Retention 0: never held, and said so.
        let none = StoredEvent::new(
            &event(r#"{"a":1}"#),
            now,
            Retention {
                event_days: 7,
                payload_hours: 0,
            },
        );
        assert_eq!(none.data, None);
        assert_eq!(none.payload_state(t), PayloadState::NotKept);
        assert_eq!(none.subject.as_ref().map(Subject::as_str), Some("req_1"));
        // The payload never outlives the event's copy.
        let short = Retention {
            event_days: 1,
            payload_hours: 168,
        };
        let e = StoredEvent::new(&event(r#"{"a":1}"#), now, short);
        assert_eq!(e.payload_expires_at(), e.expires_at);
    }
}
