//! Persistence, one trait per aggregate: webhooks, API keys, events,
//! delivery records, recoveries, allowances, tenant settings and the audit
//! log. A change the audit log records takes its entry as an argument, and
//! writes both in one transaction. DynamoDB implements them in
//! production and integration tests ([`DynamoStore`], one file per aggregate
//! under `dynamo/`), an in-memory map for fast unit tests of handler logic
//! ([`MemoryStore`], `memory/`). Code that needs one aggregate asks for that
//! trait; [`Store`] is all of them. Time is always given to the store, never
//! read inside it.

mod allowances;
mod api_keys;
mod audit_log;
mod deliveries;
mod dynamo;
mod events;
pub mod keys;
mod memory;
mod modify;
mod recoveries;
mod settings;
mod webhooks;

pub use allowances::AllowanceStore;
pub use api_keys::{ApiKeyStore, Keep};
pub use audit_log::{AuditQuery, AuditStore};
pub use deliveries::{AttemptKey, DeliveryStore};
pub use dynamo::{DynamoStore, Upgraded, create_table};
pub use dynamo::{ItemKind, PurgeCounts, PurgeOptions, PurgeProgress};
pub use events::EventStore;
pub use keys::Allowance;
pub use memory::MemoryStore;
pub use modify::modify;
pub use recoveries::{RecoveryStore, RecoveryWrite};
pub use settings::SettingsStore;
pub use webhooks::{StreakChange, WebhookStore};

/// Every aggregate's trait, for code that calls a concrete store's methods:
/// `use shared::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AllowanceStore, ApiKeyStore, AuditStore, DeliveryStore, EventStore, RecoveryStore,
        SettingsStore, Store, WebhookStore,
    };
}

/// Every aggregate's store: what the functions' wiring holds.
pub trait Store:
    WebhookStore
    + ApiKeyStore
    + EventStore
    + DeliveryStore
    + RecoveryStore
    + AllowanceStore
    + SettingsStore
    + AuditStore
{
}

impl<S> Store for S where
    S: WebhookStore
        + ApiKeyStore
        + EventStore
        + DeliveryStore
        + RecoveryStore
        + AllowanceStore
        + SettingsStore
        + AuditStore
{
}

/// What a write that keeps the first copy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Written now: nothing was there before.
    New,
    /// A copy was there already, and stays.
    Before,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Its condition held: written.
    Applied,
    /// Its condition did not hold: nothing written.
    Refused,
}

impl Conditional {
    /// `Applied` when the condition `held`.
    pub fn of(held: bool) -> Self {
        if held {
            Conditional::Applied
        } else {
            Conditional::Refused
        }
    }

    pub fn applied(self) -> bool {
        self == Conditional::Applied
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// Changed by someone else since it was read.
    #[error("changed concurrently")]
    Conflict,
    #[error("the tenant already has the maximum of {limit} webhooks")]
    LimitReached { limit: u32 },
    /// DynamoDB failed, was throttled or returned an item that does not map.
    #[error("store backend: {0}")]
    Backend(String),
}

/// One page of a newest-first listing; `next` is where the following page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}
