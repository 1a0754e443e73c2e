//! The DynamoDB store: one table, keys as described in [`super::keys`]. One
//! file per aggregate, in the order the traits declare their methods; what
//! they share is here (the client, items and their keys), in `query.rs` (the
//! one pagination loop) and `write.rs` (conditional writes, transactions,
//! unprocessed items).

mod allowances;
mod api_key_items;
mod api_keys;
mod audit_log;
mod deliveries;
mod event_copies;
mod events;
mod purge;
mod query;
mod record_batch;
mod recoveries;
mod settings;
mod table;
mod upgrade;
mod webhook_state;
mod webhooks;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

pub use purge::{ItemKind, PurgeCounts, PurgeOptions, PurgeProgress};
pub use table::create_table;
pub use upgrade::Upgraded;

use super::keys::{self, PK, SK};
use super::{Kept, StoreError};
use crate::delivery_log::sortable_time;
use record_batch::RecordBatch;

/// An item's attributes.
type Item = HashMap<String, AttributeValue>;

/// The DynamoDB store. Its client is given ([`DynamoStore::new`]) or made by
/// the first call ([`DynamoStore::lazy`]); clones share it.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Arc<OnceCell<Client>>,
    table: String,
    /// Delivery records waiting to be written together.
    records: Arc<RecordBatch>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client: Arc::new(OnceCell::new_with(Some(client))),
            table: table.into(),
            records: Arc::default(),
        }
    }

    /// A store whose SDK configuration and client are made by its first call:
    /// loading them costs about 0.4 ms, a third of a cold start, and nothing
    /// needs them before the first invocation. Concurrent first calls wait
    /// for the same load; a failed load is that call's
    /// [`StoreError::Backend`], and the next call tries again.
    pub fn lazy(table: impl Into<String>) -> Self {
        Self {
            client: Arc::new(OnceCell::new()),
            table: table.into(),
            records: Arc::default(),
        }
    }

    /// Whether the client has been made (tests, benchmarks).
    pub fn is_initialized(&self) -> bool {
        self.client.initialized()
    }

    /// The client, made now if this store is lazy and it has not been yet.
    pub async fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .get_or_try_init(|| async {
                let config = crate::aws::load_config().await;
                if config.behavior_version().is_none() {
                    // `Client::new` would panic on it; `load_config` always sets it.
                    return Err(StoreError::Backend(
                        "AWS SDK configuration: no behavior version".into(),
                    ));
                }
                Ok(Client::new(&config))
            })
            .await
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes an item unless one with its key exists; an existing one is
    /// kept as it is, and that is not an error (first write wins).
    async fn put_new(&self, item: Item) -> Result<Kept, StoreError> {
        let result = self
            .client()
            .await?
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        Ok(match write::conditional(result)? {
            Some(_) => Kept::New,
            None => Kept::Before,
        })
    }

    /// A query of one GSI1 partition whose sort keys start with a time,
    /// between `since` and `until`.
    async fn gsi1_between(
        &self,
        pk: String,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<QueryFluentBuilder, StoreError> {
        self.index_between(keys::GSI1, pk, since, until).await
    }

    /// A query of one partition of `index` (GSI1 or GSI2) whose sort keys
    /// start with a time, between `since` and `until`. No bound is "0" or
    /// "~": DynamoDB refuses an empty string, "0" sorts before every year
    /// and "~" after every character of an id.
    async fn index_between(
        &self,
        index: &str,
        pk: String,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<QueryFluentBuilder, StoreError> {
        let lower = since.map(sortable_time).unwrap_or_else(|| "0".to_owned());
        let upper = until.map(sortable_time).unwrap_or_else(|| "~".to_owned());
        Ok(self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(format!(
                "{index}PK = :pk AND {index}SK BETWEEN :lower AND :upper"
            ))
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":lower", AttributeValue::S(lower))
            .expression_attribute_values(":upper", AttributeValue::S(upper)))
    }

    /// A query of one partition of the table, for the sort keys that start
    /// with `prefix`.
    async fn partition(
        &self,
        pk: String,
        prefix: String,
    ) -> Result<QueryFluentBuilder, StoreError> {
        Ok(self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix)))
    }

    /// The items of `keys` that exist, 100 keys to a `BatchGetItem`, sent
    /// again for the keys DynamoDB leaves unprocessed; `projection` names
    /// the attributes to read (all when `None`).
    async fn batch_get(
        &self,
        mut keys: Vec<Item>,
        projection: Option<&str>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(100));
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::replace(&mut keys, rest)))
                    .set_projection_expression(projection.map(str::to_owned))
                    .consistent_read(consistent)
                    .build()
                    .map_err(backend)?,
            );
            let mut rounds = write::Rounds::new("BatchGetItem");
            while let Some(pending) = request.take() {
                rounds.next().await?;
                let out = self
                    .client()
                    .await?
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(backend)?;
                let items = out.responses.and_then(|mut r| r.remove(&self.table));
                found.extend(items.unwrap_or_default());
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(found)
    }

    /// One item by its key (`consistent`: a strongly consistent read).
    async fn get(&self, key: Item, consistent: bool) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .await?
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }
}

/// A table key.
fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
}

/// A time as the number DynamoDB compares: Unix seconds.
fn unix(t: OffsetDateTime) -> AttributeValue {
    AttributeValue::N(t.unix_timestamp().to_string())
}

/// A number attribute.
fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// An item of the table: its key, and the attributes of `T` beside it
/// (webhooks, recoveries).
#[derive(Serialize, Deserialize)]
struct Keyed<T> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    attributes: T,
}

/// An item of the table that GSI1 lists too (events, delivery records).
#[derive(Serialize, Deserialize)]
struct Indexed<T> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    gsi1sk: String,
    #[serde(flatten)]
    attributes: T,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(DisplayErrorContext(e).to_string())
}

fn mapping(e: serde_dynamo::Error) -> StoreError {
    StoreError::Backend(format!("item mapping: {e}"))
}

/// An item from `T`'s attributes.
fn item<T: Serialize>(value: T) -> Result<Item, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(mapping)
}

/// The attributes of `T` in an item of either kind.
fn parse<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(mapping)
}
