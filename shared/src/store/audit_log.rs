//! The audit log aggregate: a tenant's entries, newest first. Entries of a
//! single change are written by that change's own store method, in its
//! transaction; [`AuditStore::record`] is for changes of many items (a
//! subject's payloads), recorded once they are done.

use std::future::Future;

use time::OffsetDateTime;

use super::{Page, StoreError};
use crate::TenantId;
use crate::audit::{Action, AuditEntry, AuditId};

/// Which entries a read wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub limit: usize,
    /// The last entry of the previous page.
    pub after: Option<AuditId>,
    pub action: Option<Action>,
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries before this time.
    pub until: Option<OffsetDateTime>,
}

pub trait AuditStore: Send + Sync {
    /// The tenant's entries, newest first, as `query` asks. A page filtered
    /// by action may hold fewer than `limit` entries and still have a next.
    fn audit_log(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Page<AuditEntry, AuditId>, StoreError>> + Send;

    /// Writes an entry on its own: only for a change of more items than one
    /// transaction holds, once the change is done.
    fn record(&self, entry: &AuditEntry) -> impl Future<Output = Result<(), StoreError>> + Send;
}
