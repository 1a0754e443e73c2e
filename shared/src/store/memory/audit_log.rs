//! The audit log, by tenant and id.

use super::MemoryStore;
use crate::TenantId;
use crate::audit::{AuditEntry, AuditId};
use crate::store::{AuditQuery, AuditStore, Page, StoreError};

impl AuditStore for MemoryStore {
    async fn audit_log(
        &self,
        tenant: &TenantId,
        q: &AuditQuery,
    ) -> Result<Page<AuditEntry, AuditId>, StoreError> {
        let inner = self.lock();
        let Some(log) = inner.audit.get(tenant) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let mut items: Vec<AuditEntry> = log
            .values()
            .rev()
            .filter(|e| q.after.is_none_or(|a| e.id < a))
            .filter(|e| q.action.is_none_or(|a| e.action == a))
            .filter(|e| q.since.is_none_or(|s| e.at >= s))
            .filter(|e| q.until.is_none_or(|u| e.at < u))
            .take(q.limit + 1)
            .cloned()
            .collect();
        let next = (items.len() > q.limit).then(|| {
            items.truncate(q.limit);
            items.last().map(|e| e.id)
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.lock().audit(entry);
        Ok(())
    }
}
