//! The notices the platform sends a tenant about its own webhooks
//! (`webhook.failing`, `webhook.disabled`): ordinary events, delivered to
//! the tenant's webhooks subscribed to them like any other, but never to
//! the webhook they are about. Their `subject` is that webhook's id, which
//! is how the fan-out leaves it out, and how `GET /events?subject=` finds
//! a webhook's notices.

use serde::Serialize;
use time::OffsetDateTime;

use crate::event::{Event, EventData, EventId, Subject};
use crate::{EventType, ValidationError, Webhook, WebhookId};

#[derive(Serialize)]
struct NoticeData<'a> {
    webhook_id: WebhookId,
    url: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    failing_since: OffsetDateTime,
    last_error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// What a notice says.
pub enum Notice<'a> {
    /// The streak since `since` reached 4 failures in a row.
    Failing {
        since: OffsetDateTime,
        error: &'a str,
    },
    /// The platform set the webhook inactive, for `reason`.
    Disabled {
        since: OffsetDateTime,
        error: &'a str,
        reason: &'a str,
    },
}

impl Notice<'_> {
    /// The notice about `webhook`, as an event of its tenant. Its id is
    /// made of the webhook and the streak, so that one sent twice is kept
    /// and delivered once.
    pub fn event(&self, webhook: &Webhook, now: OffsetDateTime) -> Result<Event, ValidationError> {
        let (event_type, since, error, reason, tag) = match *self {
            Notice::Failing { since, error } => {
                (EventType::WebhookFailing, since, error, None, "failing")
            }
            Notice::Disabled {
                since,
                error,
                reason,
            } => (
                EventType::WebhookDisabled,
                since,
                error,
                Some(reason),
                "disabled",
            ),
        };
        let data = NoticeData {
            webhook_id: webhook.id,
            url: webhook.url.as_str(),
            failing_since: since,
            last_error: error,
            reason,
        };
        let data = serde_json::to_string(&data)
            .map_err(|e| ValidationError::new("data", e.to_string()))?;
        Ok(Event {
            id: EventId::parse(&format!(
                "ntc_{}_{}_{tag}",
                webhook.id,
                since.unix_timestamp_nanos() / 1_000
            ))?,
            tenant_id: webhook.tenant_id.clone(),
            event_type,
            timestamp: now,
            subject: Some(Subject::parse(&webhook.id.to_string())?),
            data: EventData::from_json_text(&data)?,
        })
    }
}

/// Whether `event` is a notice about `webhook` (which it is never sent to).
pub fn is_about(event: &Event, webhook: WebhookId) -> bool {
    event.event_type.is_notice()
        && event
            .subject
            .as_ref()
            .is_some_and(|s| s.as_str() == webhook.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::now_utc;
    use crate::{EventSet, TenantId, UrlPolicy, WebhookUrl};

    #[test]
    fn a_notice_names_its_webhook_and_is_about_it_alone() {
        let webhook = Webhook::new(
            TenantId::parse("acme").unwrap(),
            WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).unwrap(),
            EventSet::new([EventType::AsyncCompleted]).unwrap(),
            now_utc(),
        );
        let since = now_utc();
        let notice = Notice::Disabled {
            since,
            error: "timeout",
            reason: "every attempt has failed",
        };
        let event = notice.event(&webhook, now_utc()).unwrap();
        assert_eq!(event.event_type, EventType::WebhookDisabled);
        let data: serde_json::Value = serde_json::from_str(event.data.get()).unwrap();
        assert_eq!(data["webhook_id"], webhook.id.to_string());
        assert_eq!(data["url"], "https://hooks.example.com/x");
        assert_eq!(data["last_error"], "timeout");
        assert_eq!(data["reason"], "every attempt has failed");
        assert!(is_about(&event, webhook.id));
        assert!(!is_about(&event, WebhookId::generate()));
        // The same streak's notice has the same id (kept and sent once).
        assert_eq!(notice.event(&webhook, now_utc()).unwrap().id, event.id);
        let failing = Notice::Failing {
            since,
            error: "timeout",
        };
        assert_ne!(failing.event(&webhook, now_utc()).unwrap().id, event.id);
        assert!(
            Event::from_json(&event.to_json()).is_ok(),
            "a valid envelope"
        );
    }
}
