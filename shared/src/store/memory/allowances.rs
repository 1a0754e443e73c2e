//! Allowances: a counter per tenant, allowance and window.

use super::MemoryStore;
use crate::TenantId;
use crate::store::{Allowance, AllowanceStore, Conditional, StoreError};

impl AllowanceStore for MemoryStore {
    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<Conditional, StoreError> {
        let mut inner = self.lock();
        let taken = inner
            .allowances
            .entry((tenant.clone(), allowance, window))
            .or_default();
        if taken.saturating_add(n) > limit {
            return Ok(Conditional::Refused);
        }
        *taken += n;
        Ok(Conditional::Applied)
    }
}
