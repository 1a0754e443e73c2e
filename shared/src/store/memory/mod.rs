//! The in-memory store: the same semantics as the DynamoDB store, in maps
//! behind one lock. For unit tests of handler logic and the local stack without
//! moto. One file per aggregate, in the order the traits declare their methods.

mod allowances;
mod api_keys;
mod audit_log;
mod deliveries;
mod events;
mod recoveries;
mod settings;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Allowance, AttemptKey, Page};
use crate::api_key::ApiKey;
use crate::audit::{AuditEntry, AuditId};
use crate::delivery_log::DeliveryRecord;
use crate::event::EventId;
use crate::event_log::StoredEvent;
use crate::recovery::state::RecoveryState;
use crate::{TenantId, TenantSettings, Webhook, WebhookId};

/// The same semantics as the DynamoDB store, in a map: for unit tests and
/// `webhooks local --store memory`. Clones share one map, as clones of a
/// `DynamoStore` share one table.
#[derive(Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    webhooks: BTreeMap<(TenantId, WebhookId), Webhook>,
    /// By hash.
    api_keys: HashMap<String, ApiKey>,
    /// By webhook, then by sort key (newest last).
    deliveries: HashMap<WebhookId, BTreeMap<String, DeliveryRecord>>,
    /// The attempts that have a record: the key DynamoDB uses.
    recorded: HashSet<AttemptKey>,
    /// Each (tenant, event, webhook)'s records, by their log sort key: the
    /// event's partition in DynamoDB.
    by_event: HashMap<(TenantId, EventId, WebhookId), Vec<String>>,
    /// By tenant, then by sort key (newest last).
    events: HashMap<TenantId, BTreeMap<String, StoredEvent>>,
    /// The events kept, by key: the first copy stays.
    event_ids: HashSet<(TenantId, EventId)>,
    /// What each allowance's window has taken, by tenant.
    allowances: HashMap<(TenantId, Allowance, i64), u32>,
    /// Manual attempts numbered, and when the last was, by tenant, event
    /// and webhook.
    manual_attempts: HashMap<(TenantId, EventId, WebhookId), (u32, i64)>,
    /// Each webhook's recovery, the last one.
    recoveries: HashMap<(TenantId, WebhookId), RecoveryState>,
    /// The settings of each tenant that chose.
    settings: HashMap<TenantId, TenantSettings>,
    /// Each tenant's audit log, by id (oldest first).
    audit: HashMap<TenantId, BTreeMap<AuditId, AuditEntry>>,
}

impl Inner {
    /// Keeps an audit entry: called under the lock of the change it
    /// records, once that change is made.
    fn audit(&mut self, entry: &AuditEntry) {
        self.audit
            .entry(entry.tenant_id.clone())
            .or_default()
            .insert(entry.id, entry.clone());
    }

    fn event(&self, tenant: &TenantId, id: &EventId) -> Option<&StoredEvent> {
        self.events
            .get(tenant)
            .and_then(|events| events.values().find(|e| &e.id == id))
    }

    fn event_mut(&mut self, tenant: &TenantId, id: &EventId) -> Option<&mut StoredEvent> {
        self.events
            .get_mut(tenant)
            .and_then(|events| events.values_mut().find(|e| &e.id == id))
    }
}

/// The newest-first page after `after` from an ascending map.
fn page_desc<T: Clone>(
    map: &BTreeMap<String, T>,
    limit: usize,
    after: Option<&str>,
) -> Page<T, String> {
    let mut keys: Vec<(&String, &T)> = map
        .iter()
        .rev()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() < a))
        .take(limit + 1)
        .collect();
    let next = if keys.len() > limit {
        keys.truncate(limit);
        keys.last().map(|(k, _)| (*k).clone())
    } else {
        None
    };
    Page {
        items: keys.into_iter().map(|(_, v)| v.clone()).collect(),
        next,
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
