//! The delivery log: one record per attempt, kept for `DELIVERY_LOG_TTL_DAYS`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::delivery::{Attempt, Outcome};
use crate::event::EventId;
use crate::{EventType, WebhookId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: EventType,
    /// When the attempt started: RFC 3339, UTC, always six fractional digits,
    /// so that the text sorts like the time.
    pub attempted_at: String,
    pub duration_ms: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix seconds after which DynamoDB TTL may delete the record.
    pub expires_at: i64,
    /// Sent by "send a test event", not by the dispatcher.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

pub fn sortable_time(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

impl DeliveryRecord {
    pub fn new(
        webhook_id: WebhookId,
        event_id: EventId,
        event_type: EventType,
        started: OffsetDateTime,
        attempt: Attempt,
        ttl_days: u32,
    ) -> Self {
        Self {
            webhook_id,
            event_id,
            event_type,
            attempted_at: sortable_time(started),
            duration_ms: attempt.duration_ms,
            outcome: attempt.outcome,
            status: attempt.status,
            response_body: attempt.response_excerpt,
            location: attempt.location,
            error: attempt.error,
            expires_at: started.unix_timestamp() + i64::from(ttl_days) * 86_400,
            test: false,
        }
    }

    /// Marks the record as a test delivery.
    pub fn as_test(self) -> Self {
        Self { test: true, ..self }
    }

    /// Where this record sits in its webhook's newest-first log.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.attempted_at, self.event_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_sort_as_text() {
        let a = sortable_time(datetime!(2026-11-25 17:00:00.5 UTC));
        let b = sortable_time(datetime!(2026-11-25 17:00:00.25 UTC));
        let c = sortable_time(datetime!(2026-11-25 17:00:01 UTC));
        assert_eq!(a, "2026-11-25T17:00:00.500000Z");
        assert!(b < a && a < c);
    }
}
