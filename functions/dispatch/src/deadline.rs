//! The invocation's deadline: when the handler must have returned, and work
//! that stops there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;
use tokio::time::Instant;

/// The handler returns this long before the invocation's deadline, so that
/// no invocation ever hits the Lambda timeout.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(300);

/// Kept between an attempt's own deadline and the invocation's cutoff, to
/// write its record.
pub const RECORD_MARGIN: Duration = Duration::from_millis(500);

/// When the handler must have returned: the context's deadline less the margin.
/// A context without a deadline (unit tests) sets none.
pub(crate) fn cutoff(context: &Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let left = Duration::from_millis(
        u64::try_from(u128::from(context.deadline).saturating_sub(now_ms)).unwrap_or(0),
    );
    Some(Instant::now() + left.saturating_sub(SAFETY_MARGIN))
}

/// `work`, unless the cutoff comes first.
pub(crate) async fn within<F: Future>(cutoff: Option<Instant>, work: F) -> Option<F::Output> {
    match cutoff {
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        None => Some(work.await),
    }
}
