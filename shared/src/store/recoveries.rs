//! The recovery aggregate: each webhook's last recovery (its lock), and the
//! claim that queues an event once per recovery.

use std::future::Future;

use super::{Conditional, StoreError};
use crate::audit::AuditEntry;
use crate::event::EventId;
use crate::recovery::state::RecoveryState;
use crate::{TenantId, WebhookId};

/// The condition of a recovery's state write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryWrite<'a> {
    /// A new recovery: only if the webhook's last one is not running at
    /// `now` (Unix seconds; see [`RecoveryState::running`]), with its audit
    /// `entry`.
    Start { now: i64, entry: &'a AuditEntry },
    /// Progress: only while the webhook's recovery is still this one.
    Advance,
}

pub trait RecoveryStore: Send + Sync {
    /// Numbers a manual attempt of `webhook` for the event, as
    /// [`super::EventStore::number_manual_attempts`] does, for a recovery:
    /// only when no manual attempt numbered in the last
    /// [`crate::recovery::state::PENDING_SECS`] before `now` (Unix seconds)
    /// is still unrecorded, i.e. the counter is at most `manual_recorded`.
    /// `None` when one is pending or the event is gone. One conditional
    /// write: two recoveries at once never both queue the same event.
    fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// The webhook's recovery: the one running, or the last one.
    fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> impl Future<Output = Result<Option<RecoveryState>, StoreError>> + Send;

    /// Writes a recovery's state if `write`'s condition holds: `Refused`
    /// when it does not (another recovery runs, or replaced this one).
    fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite<'_>,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send;
}
