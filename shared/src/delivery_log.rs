//! The delivery log: one record per attempt, kept for `DELIVERY_LOG_TTL_DAYS`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::delivery::{Attempt, Outcome};
use crate::event::EventId;
use crate::{EventType, TenantId, WebhookId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub tenant_id: TenantId,
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
    /// 1 for the first attempt of (event, webhook), then 2, 3, ...
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Asked for by the customer (a redelivery), not scheduled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// When the next automatic attempt is due, if one is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The last attempt the retry policy allows failed: no more will be made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exhausted: bool,
    /// The lane that made the attempt (records written before lanes: `main`).
    #[serde(default)]
    pub lane: crate::Lane,
}

fn first_attempt() -> u32 {
    1
}

/// A delivery-log cursor taken apart: `<attempted_at>#<event id>#<attempt>#<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCursor {
    pub sort_key: String,
    pub event_id: EventId,
    pub attempt: u32,
    pub tenant_id: TenantId,
}

impl DeliveryCursor {
    pub fn parse(cursor: &str) -> Option<Self> {
        let mut parts = cursor.split('#');
        let (time, event, attempt, tenant) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || time.len() != 27 || !time.ends_with('Z') {
            return None;
        }
        if attempt.len() < 3 || !attempt.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            sort_key: format!("{time}#{event}#{attempt}"),
            event_id: EventId::parse(event).ok()?,
            attempt: attempt.parse().ok()?,
            tenant_id: TenantId::parse(tenant).ok()?,
        })
    }
}

/// Which attempts a listing of the log keeps (`GET /webhooks/{id}/deliveries`
/// with `outcome`, `type`, `since`, `until`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub outcome: Option<Outcome>,
    pub event_type: Option<EventType>,
    /// Attempts that started at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Attempts that started before this time.
    pub until: Option<OffsetDateTime>,
}

impl DeliveryFilter {
    /// Whether a value (not the time window) must be checked record by record.
    pub fn has_values(&self) -> bool {
        self.outcome.is_some() || self.event_type.is_some()
    }

    pub fn matches(&self, r: &DeliveryRecord) -> bool {
        self.outcome.is_none_or(|o| o == r.outcome)
            && self.event_type.is_none_or(|t| t == r.event_type)
            && self
                .since
                .is_none_or(|s| r.attempted_at.as_str() >= sortable_time(s).as_str())
            && self
                .until
                .is_none_or(|u| r.attempted_at.as_str() < sortable_time(u).as_str())
    }
}

/// `<event id>~<attempt>`, as [`DeliveryRecord::delivery_id`] writes it.
pub fn parse_delivery_id(id: &str) -> Option<(EventId, u32)> {
    let (event, attempt) = id.rsplit_once('~')?;
    let attempt: u32 = attempt.parse().ok().filter(|n| *n >= 1)?;
    Some((EventId::parse(event).ok()?, attempt))
}

/// `t` in UTC as `2026-11-25T17:00:00.500000Z`. Written out by hand: once per
/// delivery, and `time`'s formatter (a format description walked item by
/// item) cost more than the rest of the record.
pub fn sortable_time(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u32::try_from(utc.year()) else {
        return sortable_time_described(utc);
    };
    if year > 9999 {
        return sortable_time_described(utc);
    }
    let mut out = String::with_capacity(27);
    let mut push = |value: u32, digits: u32, after: Option<char>| {
        for i in (0..digits).rev() {
            let digit = value / 10u32.pow(i) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        if let Some(c) = after {
            out.push(c);
        }
    };
    push(year, 4, Some('-'));
    push(u32::from(u8::from(utc.month())), 2, Some('-'));
    push(u32::from(utc.day()), 2, Some('T'));
    push(u32::from(utc.hour()), 2, Some(':'));
    push(u32::from(utc.minute()), 2, Some(':'));
    push(u32::from(utc.second()), 2, Some('.'));
    push(utc.microsecond(), 6, Some('Z'));
    out
}

/// The same through `time`'s formatter, for years outside 0..=9999.
fn sortable_time_described(utc: OffsetDateTime) -> String {
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

impl DeliveryRecord {
    /// The record of a first, automatic attempt; the builders below say otherwise.
    pub fn new(
        tenant_id: TenantId,
        webhook_id: WebhookId,
        event_id: EventId,
        event_type: EventType,
        started: OffsetDateTime,
        attempt: Attempt,
        ttl_days: u32,
    ) -> Self {
        Self {
            tenant_id,
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
            attempt: 1,
            manual: false,
            next_attempt_at: None,
            exhausted: false,
            lane: crate::Lane::Main,
        }
    }

    /// Marks the record as a test delivery.
    pub fn as_test(self) -> Self {
        Self { test: true, ..self }
    }

    pub fn with_attempt(self, attempt: u32, manual: bool) -> Self {
        Self {
            attempt,
            manual,
            ..self
        }
    }

    pub fn with_lane(self, lane: crate::Lane) -> Self {
        Self { lane, ..self }
    }

    /// Where this record sits in its webhook's newest-first log.
    pub fn sort_key(&self) -> String {
        format!(
            "{}#{}#{:03}",
            self.attempted_at, self.event_id, self.attempt
        )
    }

    /// Where a page of the delivery log that ends with this record resumes:
    /// the sort key and the tenant (the store needs both for the key).
    pub fn cursor(&self) -> String {
        format!("{}#{}", self.sort_key(), self.tenant_id)
    }

    /// The id the API shows and redelivery takes: `<event id>~<attempt>`
    /// (`~` is not in the event id alphabet).
    pub fn delivery_id(&self) -> String {
        format!("{}~{}", self.event_id, self.attempt)
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

    #[test]
    fn the_written_out_format_is_the_described_one() {
        let mut t = datetime!(1999-12-31 23:59:59.999999 UTC);
        for step in 0..2000i64 {
            // Steps of odd sizes through days, months, years and fractions.
            t += time::Duration::microseconds(step * 7_919_993_113 + 1);
            assert_eq!(sortable_time(t), sortable_time_described(t), "{t}");
        }
        let offset = datetime!(2026-01-01 00:30:00.000001 +01:00);
        assert_eq!(sortable_time(offset), "2025-12-31T23:30:00.000001Z");
        assert_eq!(
            sortable_time(datetime!(0000-01-01 00:00:00 UTC)),
            "0000-01-01T00:00:00.000000Z"
        );
    }
}
