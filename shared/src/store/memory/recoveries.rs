//! Recoveries, and the claim on an event's manual attempt counter.

use super::MemoryStore;
use crate::event::EventId;
use crate::recovery::state::{PENDING_SECS, RecoveryState};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::store::{Conditional, RecoveryStore, RecoveryWrite, StoreError};
use crate::{TenantId, WebhookId};

impl RecoveryStore for MemoryStore {
    async fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.contains(&(tenant.clone(), event.clone())) {
            return Ok(None);
        }
        let (n, at) = inner
            .manual_attempts
            .entry((tenant.clone(), event.clone(), webhook))
            .or_default();
        if *n > manual_recorded && *at >= now - PENDING_SECS {
            return Ok(None);
        }
        *n += 1;
        *at = now;
        Ok(Some(FIRST_MANUAL_ATTEMPT - 1 + *n))
    }

    async fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> Result<Option<RecoveryState>, StoreError> {
        Ok(self
            .lock()
            .recoveries
            .get(&(tenant.clone(), webhook))
            .cloned())
    }

    async fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite<'_>,
    ) -> Result<Conditional, StoreError> {
        let mut inner = self.lock();
        let key = (state.tenant_id.clone(), state.webhook_id);
        let allowed = match (write, inner.recoveries.get(&key)) {
            (RecoveryWrite::Start { .. }, None) => true,
            (RecoveryWrite::Start { now, .. }, Some(last)) => !last.running(now),
            (RecoveryWrite::Advance, Some(last)) => last.recovery_id == state.recovery_id,
            (RecoveryWrite::Advance, None) => false,
        };
        if allowed {
            inner.recoveries.insert(key, state.clone());
            if let RecoveryWrite::Start { entry, .. } = write {
                inner.audit(entry);
            }
        }
        Ok(Conditional::of(allowed))
    }
}
