use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::client_tls::ClientTls;
use crate::custom_headers::CustomHeaders;
use crate::event::PayloadForm;
use crate::oauth2::OAuth2;
use crate::retry::RetryPolicy;
use crate::signing::{PreviousSecret, SigningSecret};
use crate::throttle::ThrottleRate;
use crate::{EventSet, TenantId, Token, ValidationError, WebhookId, WebhookUrl};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Active,
    Inactive,
}

/// A one-line free-text note of at most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let n = s.chars().count();
        if n > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {} characters (got {n})", Self::MAX_CHARS),
            ));
        }
        // One line of text: no control character can split a log line or a header.
        if s.chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        {
            return Err(ValidationError::new(
                "description",
                "must be one line of text, without control characters (no newline, tab, CR or NUL)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::validation::deserialize_via_parse!(Description);

/// A registered webhook, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: WebhookUrl,
    pub events: EventSet,
    pub status: Status,
    pub token: Token,
    pub signing_secret: SigningSecret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    /// Sent with every delivery and test event, after the platform's own.
    #[serde(default, skip_serializing_if = "CustomHeaders::is_empty")]
    pub headers: CustomHeaders,
    /// Client credentials: deliveries carry `Authorization: Bearer` with
    /// their access token instead of the Basic token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// The client identity presented to the receiver (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTls>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// What follows a failed attempt (absent in items written before it existed: `none`).
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// What its deliveries carry: the whole event, or its reference only.
    #[serde(default)]
    pub payload: PayloadForm,
    /// The secret a rotation replaced, still signing until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signing_secret: Option<PreviousSecret>,
    /// Why the platform set the webhook inactive (a `410 Gone`); cleared when it is activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when the webhook's attempts go through the slow lane (an
    /// attempt took longer than the slow threshold); absent while it is fast.
    /// Written only on a change of state, never by the customer.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub slow_since: Option<OffsetDateTime>,
    /// At most this many deliveries a second; `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<ThrottleRate>,
    /// The throttle's next free slot (Unix ms), moved on by each
    /// reservation ([`crate::store::WebhookStore::reserve_slots`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_next: Option<i64>,
    /// Since when deliveries wait for their slot (set by a reservation
    /// that finds one waiting, cleared by one that finds none); shown
    /// only while the last slot taken is ahead ([`Webhook::throttled`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub throttled_since: Option<OffsetDateTime>,
    /// The failing streak: since when every attempt has failed. Written at
    /// the streak's first failure and cleared by a success, never per
    /// attempt otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub failing_since: Option<OffsetDateTime>,
    /// When this streak's `webhook.failing` notice was sent (once a streak).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub failing_notice_at: Option<OffsetDateTime>,
    /// The error of the streak's latest failure the platform wrote down (its
    /// first, its notice's, or the one that disabled it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Webhook {
    /// A new active webhook with a generated token and signing secret and
    /// every other field at its default; callers override what they were given.
    pub fn new(
        tenant_id: TenantId,
        url: WebhookUrl,
        events: EventSet,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: WebhookId::generate(),
            tenant_id,
            url,
            events,
            status: Status::Active,
            token: Token::generate(),
            signing_secret: SigningSecret::generate(),
            description: None,
            headers: CustomHeaders::default(),
            oauth2: None,
            client_tls: None,
            created_at: now,
            updated_at: now,
            retry_policy: RetryPolicy::default(),
            payload: PayloadForm::default(),
            previous_signing_secret: None,
            disabled_reason: None,
            slow_since: None,
            throttle_rate: None,
            throttle_next: None,
            throttled_since: None,
            failing_since: None,
            failing_notice_at: None,
            last_error: None,
        }
    }

    /// Since when deliveries wait for their slot under the throttle, while
    /// the last slot taken is still ahead of `now`.
    pub fn throttled(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let rate = self.throttle_rate?;
        let last_slot = self.throttle_next? - rate.gap_ms();
        (last_slot > crate::throttle::unix_ms(now))
            .then_some(self.throttled_since)
            .flatten()
    }

    /// Replaces the signing secret; the old one keeps signing for `overlap`.
    pub fn rotate_signing_secret(&mut self, now: OffsetDateTime, overlap: std::time::Duration) {
        let old = std::mem::replace(&mut self.signing_secret, SigningSecret::generate());
        self.previous_signing_secret = (!overlap.is_zero()).then(|| PreviousSecret {
            secret: old,
            expires_at: now + overlap,
        });
    }
}

/// Now, in UTC, at whole-microsecond precision so that it survives RFC 3339.
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_microsecond(now.microsecond()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_bounds() {
        assert!(Description::parse("").is_ok());
        assert!(Description::parse(&"é".repeat(256)).is_ok());
        let err = Description::parse(&"é".repeat(257)).unwrap_err();
        assert_eq!(err.field, "description");
        assert!(err.message.contains("257"));
        assert!(Description::parse("line one\nline two").is_err());
        assert!(Description::parse("tab\there").is_err());
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn status_names() {
        assert_eq!(
            serde_json::to_string(&Status::Active).unwrap(),
            "\"active\""
        );
        assert_eq!(
            serde_json::from_str::<Status>("\"inactive\"").unwrap(),
            Status::Inactive
        );
        assert!(serde_json::from_str::<Status>("\"paused\"").is_err());
        assert_eq!(Status::default(), Status::Active);
    }
}
