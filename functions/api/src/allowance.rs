//! Per-tenant allowances: what one tenant may ask of shared capacity per
//! window of time, so that no API call buys it more than its share.

use shared::TenantId;
use shared::store::{Allowance, AllowanceStore};
use time::OffsetDateTime;

use crate::{ApiError, App};

/// Takes `n` from the tenant's `allowance` for the current window, or says
/// (`429` with `Retry-After`) when the next window starts.
pub async fn take<S: AllowanceStore>(
    app: &App<S>,
    tenant: &TenantId,
    allowance: Allowance,
    n: usize,
) -> Result<(), ApiError> {
    let limit = match allowance {
        Allowance::Redeliveries => app.settings.redeliveries_per_minute,
        Allowance::TestEvents => app.settings.test_events_per_10_seconds,
        Allowance::RecoveryChecks => app.settings.recovery_checks_per_minute,
        Allowance::CostlyReads => app.settings.costly_reads_per_minute,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let window = allowance.window_of(now);
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    if n == 0
        || app
            .store
            .take_allowance(tenant, allowance, window, n, limit)
            .await?
            .applied()
    {
        return Ok(());
    }
    let next = (window + 1) * allowance.window_secs();
    let retry_after = u64::try_from(next - now).unwrap_or(1).max(1);
    Err(ApiError::LimitReached {
        allowance,
        limit,
        asked: n,
        retry_after,
    })
}
