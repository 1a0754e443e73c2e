//! What an upgrade does once to items written by an earlier version
//! (`webhooks upgrade`): Scans of the whole table, paged, that change only
//! the items that need it and may be run again. The operator's to run,
//! never a function's (they may not Scan).

use aws_sdk_dynamodb::types::AttributeValue;

use super::api_key_items::ApiKeyItem;
use super::write::applied;
use super::{DynamoStore, Item, backend, parse};
use crate::api_key::ApiKey;
use crate::store::{StoreError, keys};

/// What an upgrade changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// API keys stored before keys had ids, now listed under their tenant.
    pub api_keys_adopted: usize,
    /// Delivery records written before the stats' index, now in it.
    pub records_indexed: usize,
}

impl DynamoStore {
    /// Every step of an upgrade, in order.
    pub async fn upgrade(&self) -> Result<Upgraded, StoreError> {
        Ok(Upgraded {
            api_keys_adopted: self.adopt_legacy_api_keys().await?,
            records_indexed: self.index_legacy_records().await?,
        })
    }

    /// Gives every key stored before keys had ids its legacy id and puts it
    /// in its tenant's list (a key's first use does the same for that key).
    /// Returns how many keys it adopted.
    pub async fn adopt_legacy_api_keys(&self) -> Result<usize, StoreError> {
        let filter = "begins_with(PK, :p) AND attribute_not_exists(key_id)";
        let prefix = AttributeValue::S(keys::api_key_pk(""));
        self.each_found(filter, prefix, async |store, item| {
            let key = ApiKey::from(parse::<ApiKeyItem>(item)?);
            let result = store
                .client()
                .await?
                .update_item()
                .table_name(store.table())
                .key(keys::PK, AttributeValue::S(keys::api_key_pk(&key.hash)))
                .key(keys::SK, AttributeValue::S(keys::API_KEY_SK.into()))
                .update_expression("SET key_id = :id, GSI1PK = :gpk, GSI1SK = :id")
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(key_id)")
                .expression_attribute_values(":id", AttributeValue::S(key.id.to_string()))
                .expression_attribute_values(
                    ":gpk",
                    AttributeValue::S(keys::api_keys_gsi_pk(&key.tenant_id)),
                )
                .send()
                .await;
            // Refused: adopted meanwhile by its first use; nothing to do.
            Ok(applied(result)?.applied())
        })
        .await
    }

    /// Puts every delivery record written before the stats' narrow index
    /// (`GSI2`) in it, with the keys it has in the log's index. Returns how
    /// many records it indexed.
    pub async fn index_legacy_records(&self) -> Result<usize, StoreError> {
        let filter = "begins_with(SK, :p) AND attribute_not_exists(GSI2PK)";
        let prefix = AttributeValue::S(keys::DELIVERY_PREFIX.into());
        self.each_found(filter, prefix, async |store, item| {
            let (Some(pk), Some(sk)) = (item.get(keys::PK), item.get(keys::SK)) else {
                return Ok(false);
            };
            let result = store
                .client()
                .await?
                .update_item()
                .table_name(store.table())
                .key(keys::PK, pk.clone())
                .key(keys::SK, sk.clone())
                .update_expression("SET GSI2PK = GSI1PK, GSI2SK = GSI1SK")
                .condition_expression(
                    "attribute_exists(GSI1PK) AND attribute_exists(GSI1SK) AND attribute_not_exists(GSI2PK)",
                )
                .send()
                .await;
            // Refused: deleted by its TTL meanwhile, or indexed already.
            Ok(applied(result)?.applied())
        })
        .await
    }

    /// Calls `change` on each item of the table that `filter` finds (`:p`
    /// is `prefix`), page after page; returns how many it changed.
    async fn each_found(
        &self,
        filter: &str,
        prefix: AttributeValue,
        change: impl AsyncFn(&Self, Item) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let mut changed = 0;
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(self.table())
                .filter_expression(filter)
                .expression_attribute_values(":p", prefix.clone())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in page.items.unwrap_or_default() {
                if change(self, item).await? {
                    changed += 1;
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(changed);
            }
        }
    }
}
