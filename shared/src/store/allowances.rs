//! The allowance aggregate: what a tenant may do only so many times per
//! window of time (redeliveries, test events, recovery checks).

use std::future::Future;

use super::{Allowance, Conditional, StoreError};
use crate::TenantId;

pub trait AllowanceStore: Send + Sync {
    /// Takes `n` from the tenant's `allowance` of `limit` for one window of
    /// time (see [`Allowance::window_of`]): `Refused` (nothing taken) when
    /// fewer than `n` are left. One conditional write; the counter expires
    /// a day after its window.
    fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send;
}
