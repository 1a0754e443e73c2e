//! The API key aggregate: each key's hash and lifecycle.

use std::future::Future;

use time::OffsetDateTime;

use super::{Conditional, StoreError};
use crate::TenantId;
use crate::api_key::ApiKey;
use crate::audit::AuditEntry;

/// A key that must stay usable through a revocation: not revoked, and not
/// expiring before `until`.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    pub key: &'a ApiKey,
    pub until: OffsetDateTime,
}

pub trait ApiKeyStore: Send + Sync {
    /// Stores a new API key (its hash and what is known of it), unless its
    /// tenant already has `limit` keys active when it is made: `Refused`
    /// then (`None`: no limit, the operator's). Concurrent calls of one
    /// tenant are serialized, so the limit holds exactly. With its audit
    /// `entry`.
    fn put_api_key(
        &self,
        key: &ApiKey,
        limit: Option<usize>,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send;

    /// The key with this hash, whatever its state; the caller checks it.
    fn api_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// The key with this hash as it is now (DynamoDB: a strongly consistent
    /// read): what a change is decided on, so that a key revoked a moment
    /// ago changes nothing.
    fn current_api_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// The tenant's keys, newest first, revoked and expired ones included.
    /// A key stored before keys had ids is listed once it has been used.
    fn api_keys_of(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Revokes `key` at `at`; with `keep`, only while that other key is
    /// neither revoked nor expiring before `keep.until` (both in one
    /// transaction, so two revocations at once cannot leave the tenant
    /// without a full key). `NotFound` if `key` is gone or already revoked,
    /// `Conflict` if `keep` no longer holds. With its audit `entry`.
    fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<Keep<'_>>,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes `key` expire at `at` unless it is revoked or expires sooner
    /// (a rotation's overlap). `NotFound` if it is gone or revoked. With
    /// its audit `entry`.
    fn expire_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `last_used_at` = `now` unless it is less than
    /// [`crate::api_key::LAST_USED_EVERY`] old (a conditional write: at most
    /// once an hour per key, whatever the number of containers). A key
    /// stored before keys had ids gets one, and joins its tenant's list.
    fn touch_api_key(
        &self,
        key: &ApiKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
