//! A recovery's state and the rules of its lock, without I/O: what the
//! store keeps of a recovery and the times that decide whether it runs.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{TenantId, WebhookId};

/// A manual attempt numbered this recently (seconds) and not recorded yet is
/// pending: a recovery does not queue that event again, however long the
/// slow lane's backlog. It is the queues' `MessageRetentionPeriod` (4 days,
/// `template.yaml`): a queued message is delivered and recorded, goes to the
/// dead-letter queue, or is gone by then. A message that could not be sent
/// releases its claim at once ([`crate::store::EventStore::release_manual_attempt`]).
/// An automatic retry due this long ago and not recorded is lost the same way.
pub const PENDING_SECS: i64 = 4 * 86_400;

/// A running recovery whose state has not moved for this long (seconds) has
/// stopped (its message went to the dead-letter queue): another may start.
/// Pages waiting for the allowance move at least once a minute.
pub const STALE_SECS: i64 = 900;

/// How long a recovery's state is kept once written (seconds).
pub const STATE_TTL_SECS: i64 = 7 * 86_400;

/// `since ≤ event timestamp < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// A webhook's recovery, running or the last one: the lock that lets one
/// run at a time per webhook, and what `GET /webhooks/{id}/recovery` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryState {
    pub recovery_id: String,
    pub tenant_id: TenantId,
    pub webhook_id: WebhookId,
    #[serde(flatten)]
    pub window: Window,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    #[serde(flatten)]
    pub counts: Counts,
    /// No page is left (or the recovery stopped: see `stopped`).
    pub done: bool,
    /// Why it ended before the window did, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Unix seconds after which DynamoDB TTL may delete it.
    pub expires_at: i64,
}

impl RecoveryState {
    pub fn start(
        tenant: TenantId,
        webhook: WebhookId,
        window: Window,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            recovery_id: format!("rcv_{}", ulid::Ulid::generate()),
            tenant_id: tenant,
            webhook_id: webhook,
            window,
            started_at: now,
            updated_at: now.unix_timestamp(),
            counts: Counts::default(),
            done: false,
            stopped: None,
            expires_at: now.unix_timestamp() + STATE_TTL_SECS,
        }
    }

    /// Whether it still holds the webhook's lock at `now` (Unix seconds).
    pub fn running(&self, now: i64) -> bool {
        !self.done && self.updated_at >= now - STALE_SECS
    }

    /// Adds a run's counts; `done` when the window has no page left.
    pub fn advance(&mut self, counts: &Counts, done: bool, now: i64) {
        self.counts.add(counts);
        self.done = done;
        self.updated_at = now;
        self.expires_at = now + STATE_TTL_SECS;
    }

    /// One log line of where it stands (ids and counts only: never an
    /// event's data or a token).
    pub fn log(&self, what: &str) {
        tracing::info!(
            tenant_id = %self.tenant_id,
            webhook_id = %self.webhook_id,
            recovery_id = %self.recovery_id,
            events_checked = self.counts.events_checked,
            queued = self.counts.queued,
            done = self.done,
            "{what}"
        );
    }

    /// Ends it before the window does, saying why (no event or token in it).
    pub fn stop(&mut self, why: &str, now: i64) {
        self.done = true;
        self.stopped = Some(why.to_owned());
        self.updated_at = now;
    }
}

/// What pages of a window came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events of the window read.
    pub events_checked: u64,
    /// Events this webhook should get again (queued, or counted by a preview).
    pub selected: u64,
    /// Manual attempts queued.
    pub queued: u64,
    /// Selected, but a manual attempt queued lately is not made yet.
    pub already_pending: u64,
    /// Subscribed and not delivered, but their data is not kept: too large,
    /// past the tenant's retention, or a retention of 0.
    pub not_kept: u64,
    /// Subscribed and not delivered, but the tenant deleted their data.
    #[serde(default)]
    pub payload_deleted: u64,
    /// Not delivered, but an automatic retry of it is scheduled: that retry
    /// sends it, so a recovery does not (an event is never sent twice).
    #[serde(default)]
    pub retry_pending: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.events_checked += other.events_checked;
        self.selected += other.selected;
        self.queued += other.queued;
        self.already_pending += other.already_pending;
        self.not_kept += other.not_kept;
        self.payload_deleted += other.payload_deleted;
        self.retry_pending += other.retry_pending;
    }
}
