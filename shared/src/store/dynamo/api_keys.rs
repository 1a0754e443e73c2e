//! API keys: items `APIKEY#<sha256 hex>` / `APIKEY`, listed per tenant
//! through GSI1 (`APIKEYS#<tenant>`).

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::api_key_items::{self, ApiKeyItem, KeySetItem};
use super::query;
use super::write::{applied, failed_condition, transact};
use super::{DynamoStore, Item, backend, item, key, number, parse, unix};
use crate::TenantId;
use crate::api_key::ApiKey;
use crate::audit::AuditEntry;
use crate::store::{ApiKeyStore, Conditional, Keep, StoreError, keys};

fn api_key_key(key_hash: &str) -> Item {
    key(keys::api_key_pk(key_hash), keys::API_KEY_SK.into())
}

/// How many times a create counts again after losing a race to another
/// create of the same tenant: each round one of them wins.
const SET_ROUNDS: usize = 60;

impl DynamoStore {
    /// The tenant's key set, as it is now (a strongly consistent read).
    async fn api_key_set(&self, tenant: &TenantId) -> Result<KeySetItem, StoreError> {
        let key = key(keys::tenant_pk(tenant), keys::API_KEY_SET_SK.into());
        Ok(match self.get(key, true).await? {
            Some(item) => parse(item)?,
            None => KeySetItem::empty(tenant),
        })
    }

    /// The key with this hash (`consistent`: a strongly consistent read).
    async fn read_api_key(
        &self,
        key_hash: &str,
        consistent: bool,
    ) -> Result<Option<ApiKey>, StoreError> {
        let Some(item) = self.get(api_key_key(key_hash), consistent).await? else {
            return Ok(None);
        };
        let item: ApiKeyItem = parse(item)?;
        Ok(crate::api_key::hashes_match(&item.key_hash, key_hash).then(|| item.into()))
    }
}

impl ApiKeyStore for DynamoStore {
    async fn put_api_key(
        &self,
        key: &ApiKey,
        limit: Option<usize>,
        entry: &AuditEntry,
    ) -> Result<Conditional, StoreError> {
        let audit = self.audit_put(entry)?;
        let now = key.created_at.unwrap_or_else(crate::api_key::now);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(ApiKeyItem::from(key))?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(backend)?;
        let client = self.client().await?;
        for _ in 0..SET_ROUNDS {
            let set = self.api_key_set(&key.tenant_id).await?;
            let listed = self.api_keys_of(&key.tenant_id).await?;
            if limit.is_some_and(|limit| set.active(&listed, now) >= limit) {
                return Ok(Conditional::Refused);
            }
            let (next, condition) = set.with(key, now);
            let write_set = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item(next)?))
                .condition_expression(condition)
                .expression_attribute_values(":v", number(set.set_version))
                .build()
                .map_err(backend)?;
            let sent = transact(|| {
                client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                    .transact_items(TransactWriteItem::builder().put(write_set.clone()).build())
                    .transact_items(audit.clone())
            })
            .await;
            match failed_condition(sent)? {
                None => return Ok(Conditional::Applied),
                Some(0) => return Err(StoreError::AlreadyExists),
                // Another key of the tenant was made meanwhile: count again.
                Some(_) => crate::random::pause(5, 20).await,
            }
        }
        Err(StoreError::Conflict)
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.read_api_key(key_hash, false).await
    }

    async fn current_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.read_api_key(key_hash, true).await
    }

    async fn api_keys_of(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::api_keys_gsi_pk(tenant)))
            .scan_index_forward(false);
        query::all(query, |item| parse::<ApiKeyItem>(item).map(ApiKey::from)).await
    }

    async fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<Keep<'_>>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let not_revoked = "attribute_exists(PK) AND attribute_not_exists(#r)";
        let client = self.client().await?;
        let revoke = Update::builder()
            .table_name(&self.table)
            .set_key(Some(api_key_key(&key.hash)))
            .update_expression("SET #r = :at")
            .condition_expression(not_revoked)
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .expression_attribute_values(":at", unix(at))
            .build()
            .map_err(backend)?;
        let revoke = TransactWriteItem::builder().update(revoke).build();
        let Some(keep) = keep else {
            return match self.audited(revoke, entry).await? {
                Conditional::Applied => Ok(()),
                Conditional::Refused => Err(StoreError::NotFound),
            };
        };
        let still = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(api_key_key(&keep.key.hash)))
            .condition_expression(format!(
                "{not_revoked} AND (attribute_not_exists(#e) OR #e > :until)"
            ))
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .expression_attribute_names("#e", api_key_items::EXPIRES)
            .expression_attribute_values(":until", unix(keep.until))
            .build()
            .map_err(backend)?;
        let audit = self.audit_put(entry)?;
        let sent = transact(|| {
            client
                .transact_write_items()
                .transact_items(revoke.clone())
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(still.clone())
                        .build(),
                )
                .transact_items(audit.clone())
        })
        .await;
        match failed_condition(sent)? {
            None => Ok(()),
            Some(0) => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Conflict),
        }
    }

    async fn expire_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let expire = Update::builder()
            .table_name(&self.table)
            .set_key(Some(api_key_key(&key.hash)))
            .update_expression("SET #e = :at")
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(#r) AND (attribute_not_exists(#e) OR #e > :at)",
            )
            .expression_attribute_names("#e", api_key_items::EXPIRES)
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .expression_attribute_values(":at", unix(at))
            .build()
            .map_err(backend)?;
        let expire = TransactWriteItem::builder().update(expire).build();
        if self.audited(expire, entry).await?.applied() {
            return Ok(());
        }
        // Already expiring sooner is fine; gone or revoked is not.
        match self.api_key(&key.hash).await? {
            Some(k) if k.revoked_at.is_none() => Ok(()),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn touch_api_key(&self, key: &ApiKey, now: OffsetDateTime) -> Result<(), StoreError> {
        let stale = now - crate::api_key::LAST_USED_EVERY;
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(api_key_key(&key.hash)))
            .update_expression(
                "SET #u = :now, #kid = if_not_exists(#kid, :id), #gpk = if_not_exists(#gpk, :gpk), #gsk = if_not_exists(#gsk, :id)",
            )
            .expression_attribute_names("#kid", "key_id")
            .expression_attribute_names("#gpk", keys::GSI1PK)
            .expression_attribute_names("#gsk", keys::GSI1SK)
            .condition_expression("attribute_exists(PK) AND (attribute_not_exists(#u) OR #u <= :stale)")
            .expression_attribute_names("#u", api_key_items::LAST_USED)
            .expression_attribute_values(":now", unix(now))
            .expression_attribute_values(":stale", unix(stale))
            .expression_attribute_values(":id", AttributeValue::S(key.id.to_string()))
            .expression_attribute_values(
                ":gpk",
                AttributeValue::S(keys::api_keys_gsi_pk(&key.tenant_id)),
            )
            .send()
            .await;
        // Refused: another request wrote it within the hour. Nothing to do.
        applied(result).map(|_| ())
    }
}
