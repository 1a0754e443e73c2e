//! The messages of the slow lane's queue, apart from the code that sends
//! them ([`crate::requeue`]) and the code that acts on them: an attempt that
//! targets one webhook ([`TargetedMessage`]: a retry, a hand-over from the
//! main lane, a redelivery), and the rest of a recovery's window
//! ([`RecoveryMessage`]).

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::recovery::state::Window;
use crate::{TenantId, WebhookId};

/// `{"target": {...}, "event": <the envelope>}` on the events queue. The event
/// travels whole, so a retry needs no read and works for events whose data
/// was too large to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetedMessage {
    pub target: Target,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub webhook_id: WebhookId,
    /// The number of the attempt this message asks for (2 and up).
    pub attempt: u32,
    /// Asked for by the customer rather than scheduled.
    #[serde(default)]
    pub manual: bool,
    /// Unix seconds before which the attempt must not be made: a wait longer
    /// than SQS's 15-minute delay is a chain of delayed messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// The throttle slot (Unix ms) this attempt reserved before it was sent
    /// back to wait for it: made at that slot, without reserving again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
    /// The attempt came back late once and took a new slot: late again, it
    /// is made at once rather than wait at the back again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retaken: bool,
}

impl TargetedMessage {
    pub fn from_json(raw: &str) -> Result<Self, crate::json::JsonError> {
        crate::json::from_slice(raw.as_bytes())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Target {
    /// The next automatic attempt of a retry schedule, not before `not_before`
    /// (Unix seconds) when the wait is longer than one queue delay.
    pub fn retry(webhook_id: WebhookId, attempt: u32, not_before: Option<i64>) -> Self {
        Self {
            webhook_id,
            attempt,
            manual: false,
            not_before,
            slot: None,
            retaken: false,
        }
    }

    /// A manual attempt (a redelivery or a recovery's), numbered by the
    /// event's counter.
    pub fn manual(webhook_id: WebhookId, attempt: u32) -> Self {
        Self {
            webhook_id,
            attempt,
            manual: true,
            not_before: None,
            slot: None,
            retaken: false,
        }
    }

    /// An attempt as planned (`manual` or not), to be made at once: a
    /// hand-over from the main lane.
    pub fn now(webhook_id: WebhookId, attempt: u32, manual: bool) -> Self {
        Self {
            webhook_id,
            attempt,
            manual,
            not_before: None,
            slot: None,
            retaken: false,
        }
    }
}

/// The rest of a window, on the slow lane's queue: `{"recover": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryMessage {
    pub recover: Continuation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Continuation {
    pub tenant_id: TenantId,
    pub webhook_id: WebhookId,
    pub recovery_id: String,
    #[serde(flatten)]
    pub window: Window,
    /// Where the next page starts (a [`StoredEvent::sort_key`]); `None`:
    /// at the window's newest end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl RecoveryMessage {
    pub fn from_json(raw: &str) -> Result<Self, crate::json::JsonError> {
        crate::json::from_slice(raw.as_bytes())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
