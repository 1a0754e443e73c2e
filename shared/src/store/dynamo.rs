use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck, Delete,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    Put, ReturnValue, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

use super::api_key_items::{self, ApiKeyItem};
use super::keys::{self, PK, SK};
use super::record_batch::RecordBatch;
use super::{Allowance, AttemptKey, Kept, Page, RecoveryWrite, Store, StoreError};
use crate::api_key::ApiKey;
use crate::delivery_log::{DeliveryCursor, DeliveryFilter, DeliveryRecord, sortable_time};
use crate::delivery_stats::{DeliverySample, Samples};
use crate::event::EventId;
use crate::event_log::{EventFilter, StoredEvent};
use crate::recovery::{PENDING_SECS, RecoveryState, STALE_SECS};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::{TenantId, Webhook, WebhookId};

/// The DynamoDB store: one table, keys as described in [`keys`]. Its client
/// is given ([`DynamoStore::new`]) or made by the first call
/// ([`DynamoStore::lazy`]); clones share it.
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
    async fn put_new(&self, item: HashMap<String, AttributeValue>) -> Result<Kept, StoreError> {
        let result = self
            .client()
            .await?
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Kept::New),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(Kept::Before)
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// A query of one GSI1 partition whose sort keys start with a time,
    /// between `since` and `until`. No bound is "0" or "~": DynamoDB refuses
    /// an empty string, "0" sorts before every year and "~" after every
    /// character of an id.
    async fn gsi1_between(
        &self,
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
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :pk AND GSI1SK BETWEEN :lower AND :upper")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":lower", AttributeValue::S(lower))
            .expression_attribute_values(":upper", AttributeValue::S(upper)))
    }

    /// One item by its key (`consistent`: a strongly consistent read).
    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
        consistent: bool,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
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

    fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(pk)),
            (SK.to_owned(), AttributeValue::S(sk)),
        ])
    }

    fn api_key_key(key_hash: &str) -> HashMap<String, AttributeValue> {
        Self::key(keys::api_key_pk(key_hash), keys::API_KEY_SK.into())
    }
}

/// The number of the manual attempt a counter update just made, from the
/// attributes it returned.
fn manual_attempt_number(
    updated: &HashMap<String, AttributeValue>,
    webhook: WebhookId,
) -> Result<u32, StoreError> {
    updated
        .get(&keys::manual_attempts(webhook))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u32>().ok())
        .map(|count| FIRST_MANUAL_ATTEMPT - 1 + count)
        .ok_or_else(|| {
            StoreError::Backend("the update did not return a manual attempt counter".into())
        })
}

/// A time as the number DynamoDB compares: Unix seconds.
fn unix(t: OffsetDateTime) -> AttributeValue {
    AttributeValue::N(t.unix_timestamp().to_string())
}

#[derive(Serialize, Deserialize)]
struct WebhookItem<W> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    webhook: W,
}

#[derive(Serialize, Deserialize)]
struct DeliveryItem<R> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    gsi1sk: String,
    #[serde(flatten)]
    record: R,
}

#[derive(Deserialize)]
struct SeenDelivery {
    tenant_id: TenantId,
    webhook_id: WebhookId,
    event_id: EventId,
    #[serde(default = "one")]
    attempt: u32,
}

fn one() -> u32 {
    1
}

/// An event and its deliveries share a partition; this tells them apart.
#[derive(Deserialize)]
struct ItemKind {
    #[serde(rename = "SK")]
    sk: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(DisplayErrorContext(e).to_string())
}

fn mapping(e: serde_dynamo::Error) -> StoreError {
    StoreError::Backend(format!("item mapping: {e}"))
}

fn webhook_item(webhook: &Webhook) -> Result<HashMap<String, AttributeValue>, StoreError> {
    to_item(WebhookItem {
        pk: keys::tenant_pk(&webhook.tenant_id),
        sk: keys::webhook_sk(webhook.id),
        webhook,
    })
    .map_err(mapping)
}

fn parse_webhook(item: HashMap<String, AttributeValue>) -> Result<Webhook, StoreError> {
    from_item::<WebhookItem<Webhook>>(item)
        .map(|i| i.webhook)
        .map_err(mapping)
}

/// Up to `limit + 1` items, newest first: one item more than asked tells
/// whether another page exists, so the last page never hands out a cursor to
/// an empty page.
/// A filtered list (`GET /events?type=`) reads at most this many Query
/// pages per request (each evaluates at most `limit + 1` items and 1 MB):
/// a rare type on a large tenant then answers with a short page and a
/// cursor instead of reading until the function times out.
pub const MAX_FILTERED_PAGES: usize = 5;

/// What a newest-first read found, and where to resume when it stopped at
/// its page budget before it had `limit + 1` items.
struct Found {
    items: Vec<HashMap<String, AttributeValue>>,
    resume: Option<HashMap<String, AttributeValue>>,
}

/// Every item `query` finds, page after page, each mapped by `parse`.
async fn query_all<T>(
    query: QueryFluentBuilder,
    parse: impl Fn(HashMap<String, AttributeValue>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(backend)?;
        for item in out.items.unwrap_or_default() {
            found.push(parse(item)?);
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(found);
        }
    }
}

async fn query_newest_first(
    query: QueryFluentBuilder,
    limit: usize,
    start: Option<HashMap<String, AttributeValue>>,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    Ok(query_pages(query, limit, start, usize::MAX).await?.items)
}

async fn query_pages(
    query: QueryFluentBuilder,
    limit: usize,
    mut start: Option<HashMap<String, AttributeValue>>,
    max_pages: usize,
) -> Result<Found, StoreError> {
    let mut items = Vec::with_capacity(limit + 1);
    let mut pages = 0;
    loop {
        let want = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
        let out = query
            .clone()
            .scan_index_forward(false)
            .limit(want)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(backend)?;
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        pages += 1;
        if items.len() > limit || start.is_none() {
            return Ok(Found {
                items,
                resume: None,
            });
        }
        if pages >= max_pages {
            return Ok(Found {
                items,
                resume: start,
            });
        }
    }
}

/// A delivery cursor (`<sort key>#<tenant>`) where a log query stopped: the
/// index's sort key, and the tenant from the table key (`EVENT#<tenant>#<event>`).
fn delivery_cursor_of_key(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let sort_key = key.get(keys::GSI1SK)?.as_s().ok()?;
    let tenant = key.get(PK)?.as_s().ok()?.split('#').nth(1)?;
    Some(format!("{sort_key}#{tenant}"))
}

/// Cuts the extra item off and turns the last kept one into the cursor.
fn page<T, C>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> C) -> Page<T, C> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next }
}

/// Whether a cancelled transaction collided with another one on the same
/// item (the tenant's counter); the SDK does not retry these itself.
fn cancelled_by_conflict(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
}

/// Sends a transaction again (up to 5 times, with jittered backoff) while it
/// only collides with concurrent ones, e.g. two creates of one tenant.
async fn transact_with_retry(
    send: impl Fn() -> aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder,
) -> Result<(), SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>> {
    let mut attempt = 0u32;
    loop {
        match send().send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let conflict = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) if cancelled_by_conflict(c.cancellation_reasons())
                );
                attempt += 1;
                if !conflict || attempt >= 5 {
                    return Err(e);
                }
                let jitter = u64::from(crate::random::bytes32()[0]) % 20;
                tokio::time::sleep(std::time::Duration::from_millis(
                    10 * u64::from(attempt) + jitter,
                ))
                .await;
            }
        }
    }
}

fn cancelled_by_condition(reasons: &[CancellationReason], index: usize) -> bool {
    reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

impl Store for DynamoStore {
    async fn create_webhook(&self, webhook: &Webhook, limit: u32) -> Result<(), StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::tenant_pk(&webhook.tenant_id),
                keys::META_SK.into(),
            )))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", keys::WEBHOOK_COUNT)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .build()
            .map_err(backend)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(backend)?;
        let client = self.client().await?;
        let result = transact_with_retry(|| {
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    if cancelled_by_condition(c.cancellation_reasons(), 0) {
                        Err(StoreError::LimitReached { limit })
                    } else if cancelled_by_condition(c.cancellation_reasons(), 1) {
                        Err(StoreError::AlreadyExists)
                    } else {
                        Err(backend(e))
                    }
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let key = Self::key(keys::tenant_pk(tenant), keys::webhook_sk(id));
        self.get(key, true).await?.map(parse_webhook).transpose()
    }

    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        let pk = keys::tenant_pk(tenant);
        let start = after.map(|id| Self::key(pk.clone(), keys::webhook_sk(id)));
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(keys::WEBHOOK_PREFIX.into()))
            .consistent_read(true);
        let items = query_newest_first(query, limit, start).await?;
        let items = items
            .into_iter()
            .map(parse_webhook)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, |w| w.id))
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let loaded_at = loaded_at
            .format(&Rfc3339)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let result = self
            .client()
            .await?
            .put_item()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_exists(PK) AND updated_at = :loaded")
            .expression_attribute_values(":loaded", AttributeValue::S(loaded_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                match self.get_webhook(&webhook.tenant_id, webhook.id).await? {
                    Some(_) => Err(StoreError::Conflict),
                    None => Err(StoreError::NotFound),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: WebhookId) -> Result<(), StoreError> {
        let pk = keys::tenant_pk(tenant);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk.clone(), keys::webhook_sk(id))))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(backend)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, keys::META_SK.into())))
            .update_expression("SET #n = #n - :one")
            .condition_expression("#n > :zero")
            .expression_attribute_names("#n", keys::WEBHOOK_COUNT)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(backend)?;
        let client = self.client().await?;
        let result = transact_with_retry(|| {
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if cancelled_by_condition(c.cancellation_reasons(), 0) =>
                {
                    Err(StoreError::NotFound)
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let item = to_item(ApiKeyItem::from(key)).map_err(mapping)?;
        match self.put_new(item).await? {
            Kept::New => Ok(()),
            Kept::Before => Err(StoreError::AlreadyExists),
        }
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(item) = self.get(Self::api_key_key(key_hash), false).await? else {
            return Ok(None);
        };
        let item: ApiKeyItem = from_item(item).map_err(mapping)?;
        Ok(crate::api_key::hashes_match(&item.key_hash, key_hash).then(|| item.into()))
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
        query_all(query, |item| {
            from_item::<ApiKeyItem>(item)
                .map(ApiKey::from)
                .map_err(mapping)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let not_revoked = "attribute_exists(PK) AND attribute_not_exists(#r)";
        let client = self.client().await?;
        let Some(keep) = keep else {
            let result = client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::api_key_key(&key.hash)))
                .update_expression("SET #r = :at")
                .condition_expression(not_revoked)
                .expression_attribute_names("#r", api_key_items::REVOKED)
                .expression_attribute_values(":at", unix(at))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(se))
                    if se.err().is_conditional_check_failed_exception() =>
                {
                    Err(StoreError::NotFound)
                }
                Err(e) => Err(backend(e)),
            };
        };
        let revoke = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::api_key_key(&key.hash)))
            .update_expression("SET #r = :at")
            .condition_expression(not_revoked)
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .expression_attribute_values(":at", unix(at))
            .build()
            .map_err(backend)?;
        let still = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::api_key_key(&keep.hash)))
            .condition_expression(not_revoked)
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .build()
            .map_err(backend)?;
        let result = transact_with_retry(|| {
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(revoke.clone()).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(still.clone())
                        .build(),
                )
        })
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if cancelled_by_condition(c.cancellation_reasons(), 0) =>
                {
                    Err(StoreError::NotFound)
                }
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if cancelled_by_condition(c.cancellation_reasons(), 1) =>
                {
                    Err(StoreError::Conflict)
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn expire_api_key(&self, key: &ApiKey, at: OffsetDateTime) -> Result<(), StoreError> {
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::api_key_key(&key.hash)))
            .update_expression("SET #e = :at")
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(#r) AND (attribute_not_exists(#e) OR #e > :at)",
            )
            .expression_attribute_names("#e", api_key_items::EXPIRES)
            .expression_attribute_names("#r", api_key_items::REVOKED)
            .expression_attribute_values(":at", unix(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                // Already expiring sooner is fine; gone or revoked is not.
                match self.api_key(&key.hash).await? {
                    Some(k) if k.revoked_at.is_none() => Ok(()),
                    _ => Err(StoreError::NotFound),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn touch_api_key(&self, key: &ApiKey, now: OffsetDateTime) -> Result<(), StoreError> {
        let stale = now - crate::api_key::LAST_USED_EVERY;
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::api_key_key(&key.hash)))
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
        match result {
            // Refused: another request wrote it within the hour. Nothing to do.
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::tenant_pk(tenant)))
            .expression_attribute_values(":prefix", AttributeValue::S(keys::WEBHOOK_PREFIX.into()));
        query_all(query, parse_webhook).await
    }

    async fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> Result<HashSet<AttemptKey>, StoreError> {
        let mut found = HashSet::new();
        // BatchGetItem takes at most 100 keys per request.
        for chunk in attempts.chunks(100) {
            let keys = chunk
                .iter()
                .map(|a| {
                    Self::key(
                        keys::event_pk(&a.tenant, &a.event),
                        keys::delivery_sk(a.webhook, a.attempt),
                    )
                })
                .collect::<Vec<_>>();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("tenant_id, webhook_id, event_id, attempt")
                    .consistent_read(true)
                    .build()
                    .map_err(backend)?,
            );
            for round in 0u32.. {
                let Some(pending) = request.take() else { break };
                if round == 8 {
                    return Err(StoreError::Backend(
                        "BatchGetItem left keys unprocessed 8 times".into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                let out = self
                    .client()
                    .await?
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(backend)?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in items {
                    let seen: SeenDelivery = from_item(item).map_err(mapping)?;
                    found.insert(AttemptKey {
                        tenant: seen.tenant_id,
                        webhook: seen.webhook_id,
                        event: seen.event_id,
                        attempt: seen.attempt,
                    });
                }
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(found)
    }

    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        let item = to_item(DeliveryItem {
            pk: keys::event_pk(&record.tenant_id, &record.event_id),
            sk: keys::delivery_sk(record.webhook_id, record.attempt),
            gsi1pk: keys::webhook_pk(record.webhook_id),
            gsi1sk: record.sort_key(),
            record,
        })
        .map_err(mapping)?;
        // With the records that end beside it, in one BatchWriteItem.
        self.records
            .write(self.client().await?, &self.table, item)
            .await
    }

    async fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> Result<Samples, StoreError> {
        // The log's index sorts by attempt time: the window is a key range,
        // and only the three attributes the stats need come back.
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :pk AND GSI1SK >= :since")
            .expression_attribute_values(":pk", AttributeValue::S(keys::webhook_pk(webhook)))
            .expression_attribute_values(":since", AttributeValue::S(since.to_owned()))
            .projection_expression("attempted_at, outcome, duration_ms");
        let items = query_newest_first(query, limit, None).await?;
        let more = items.len() > limit;
        let items = items
            .into_iter()
            .take(limit)
            .map(|item| from_item::<DeliverySample>(item).map_err(mapping))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Samples { items, more })
    }

    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        filter: &DeliveryFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<DeliveryRecord, String>, StoreError> {
        let pk = keys::webhook_pk(webhook);
        let start = match after {
            None => None,
            Some(cursor) => {
                let c = DeliveryCursor::parse(&cursor)
                    .ok_or_else(|| StoreError::Backend("not a delivery cursor".into()))?;
                let mut key = Self::key(
                    keys::event_pk(&c.tenant_id, &c.event_id),
                    keys::delivery_sk(webhook, c.attempt),
                );
                key.insert(keys::GSI1PK.into(), AttributeValue::S(pk.clone()));
                key.insert(keys::GSI1SK.into(), AttributeValue::S(c.sort_key));
                Some(key)
            }
        };
        // The time window on the sort key (attempt time first), as for events.
        let mut query = self.gsi1_between(pk, filter.since, filter.until).await?;
        let mut conditions = Vec::new();
        if let Some(o) = filter.outcome {
            conditions.push("#outcome = :outcome");
            query = query
                .expression_attribute_names("#outcome", "outcome")
                .expression_attribute_values(":outcome", AttributeValue::S(o.as_str().into()));
        }
        if let Some(t) = filter.event_type {
            conditions.push("#type = :type");
            query = query
                .expression_attribute_names("#type", "event_type")
                .expression_attribute_values(":type", AttributeValue::S(t.as_str().into()));
        }
        if !conditions.is_empty() {
            query = query.filter_expression(conditions.join(" AND "));
        }
        // A filter on values may leave pages empty: read a bounded number,
        // and resume where the reading stopped.
        let budget = if filter.has_values() {
            MAX_FILTERED_PAGES
        } else {
            usize::MAX
        };
        let found = query_pages(query, limit, start, budget).await?;
        let resume = found.resume.as_ref().and_then(delivery_cursor_of_key);
        let records = found
            .items
            .into_iter()
            .map(|item| {
                from_item::<DeliveryItem<DeliveryRecord>>(item)
                    .map(|i| i.record)
                    .map_err(mapping)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // `until` is exclusive; BETWEEN kept an attempt exactly at it.
        let records: Vec<DeliveryRecord> =
            records.into_iter().filter(|r| filter.matches(r)).collect();
        let mut listed = page(records, limit, DeliveryRecord::cursor);
        if listed.next.is_none() {
            listed.next = resume;
        }
        Ok(listed)
    }

    async fn put_event(&self, event: &StoredEvent) -> Result<Kept, StoreError> {
        let item = to_item(DeliveryItem {
            pk: keys::event_pk(&event.tenant_id, &event.id),
            sk: keys::EVENT_SK.to_owned(),
            gsi1pk: keys::events_gsi_pk(&event.tenant_id),
            gsi1sk: event.sort_key(),
            record: event,
        })
        .map_err(mapping)?;
        // Kept already (the message came again): the first copy stays.
        self.put_new(item).await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let key = Self::key(keys::event_pk(tenant, id), keys::EVENT_SK.to_owned());
        self.get(key, false)
            .await?
            .map(|item| from_item::<DeliveryItem<StoredEvent>>(item).map(|i| i.record))
            .transpose()
            .map_err(mapping)
    }

    async fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError> {
        let mut event = None;
        let mut deliveries = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .await?
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(keys::event_pk(tenant, id)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                let kind: ItemKind = from_item(item.clone()).map_err(mapping)?;
                if kind.sk == keys::EVENT_SK {
                    let found: DeliveryItem<StoredEvent> = from_item(item).map_err(mapping)?;
                    event = Some(found.record);
                } else {
                    let found: DeliveryItem<DeliveryRecord> = from_item(item).map_err(mapping)?;
                    deliveries.push(found.record);
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(event.map(|e| (e, deliveries)))
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        let pk = keys::events_gsi_pk(tenant);
        let start = match after {
            None => None,
            Some(sort_key) => {
                let event = sort_key
                    .split_once('#')
                    .and_then(|(_, e)| EventId::parse(e).ok())
                    .ok_or_else(|| StoreError::Backend("not an event cursor".into()))?;
                let mut key = Self::key(keys::event_pk(tenant, &event), keys::EVENT_SK.into());
                key.insert(keys::GSI1PK.into(), AttributeValue::S(pk.clone()));
                key.insert(keys::GSI1SK.into(), AttributeValue::S(sort_key));
                Some(key)
            }
        };
        let mut query = self.gsi1_between(pk, filter.since, filter.until).await?;
        if let Some(t) = filter.event_type {
            query = query
                .filter_expression("event_type = :type")
                .expression_attribute_values(":type", AttributeValue::S(t.as_str().into()));
        }
        let found = query_pages(query, limit, start, MAX_FILTERED_PAGES).await?;
        // Stopped at the page budget: the page ends where the reading did.
        let resume = found
            .resume
            .as_ref()
            .and_then(|key| key.get(keys::GSI1SK))
            .and_then(|v| v.as_s().ok())
            .cloned();
        let events = found
            .items
            .into_iter()
            .map(|item| {
                from_item::<DeliveryItem<StoredEvent>>(item)
                    .map(|i| i.record)
                    .map_err(mapping)
            })
            .collect::<Result<Vec<StoredEvent>, _>>()?;
        // `until` is exclusive; BETWEEN kept an event exactly at it.
        let events: Vec<StoredEvent> = events.into_iter().filter(|e| filter.matches(e)).collect();
        let mut listed = page(events, limit, StoredEvent::sort_key);
        if listed.next.is_none() {
            listed.next = resume;
        }
        Ok(listed)
    }

    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        // One conditional UpdateItem, only on a change of state; `updated_at`
        // (the customer's version) is left alone.
        let update = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::tenant_pk(tenant),
                keys::webhook_sk(id),
            )))
            .expression_attribute_names("#s", keys::SLOW_SINCE);
        let update = match since {
            Some(at) => update
                .update_expression("SET #s = :at")
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(#s)")
                .expression_attribute_values(
                    ":at",
                    AttributeValue::S(
                        at.format(&Rfc3339)
                            .map_err(|e| StoreError::Backend(e.to_string()))?,
                    ),
                ),
            None => update
                .update_expression("REMOVE #s")
                .condition_expression("attribute_exists(#s)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
    ) -> Result<Option<Vec<u32>>, StoreError> {
        if webhooks.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // One counter attribute per webhook on the event's item, all added
        // to in one atomic update: at most 50 webhooks, a few hundred bytes.
        let adds: Vec<String> = (0..webhooks.len()).map(|i| format!("#m{i} :one")).collect();
        let times: Vec<String> = (0..webhooks.len())
            .map(|i| format!("#t{i} = :now"))
            .collect();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut update = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::event_pk(tenant, event),
                keys::EVENT_SK.to_owned(),
            )))
            .update_expression(format!("ADD {} SET {}", adds.join(", "), times.join(", ")))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::UpdatedNew);
        for (i, w) in webhooks.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#m{i}"), keys::manual_attempts(*w))
                .expression_attribute_names(format!("#t{i}"), keys::manual_at(*w));
        }
        let updated = match update.send().await {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                return Ok(None);
            }
            Err(e) => return Err(backend(e)),
        };
        webhooks
            .iter()
            .map(|w| manual_attempt_number(&updated, *w))
            .collect::<Result<Vec<u32>, StoreError>>()
            .map(Some)
    }

    async fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::event_pk(tenant, event)))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(format!("{}{webhook}#", keys::DELIVERY_PREFIX)),
            );
        query_all(query, |item| {
            from_item::<DeliveryItem<DeliveryRecord>>(item)
                .map(|i| i.record)
                .map_err(mapping)
        })
        .await
    }

    async fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::event_pk(tenant, event),
                keys::EVENT_SK.to_owned(),
            )))
            .update_expression("ADD #m :one SET #at = :now")
            // Pending: numbered lately, and past what is recorded.
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#m) OR #m <= :recorded \
                 OR attribute_not_exists(#at) OR #at < :stale)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#m", keys::manual_attempts(webhook))
            .expression_attribute_names("#at", keys::manual_at(webhook))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":recorded",
                AttributeValue::N(manual_recorded.to_string()),
            )
            .expression_attribute_values(
                ":stale",
                AttributeValue::N((now - PENDING_SECS).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let updated = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                return Ok(None);
            }
            Err(e) => return Err(backend(e)),
        };
        manual_attempt_number(&updated, webhook).map(Some)
    }

    async fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> Result<Option<RecoveryState>, StoreError> {
        // Strongly consistent: the lock's state, just written by another call.
        let key = Self::key(keys::tenant_pk(tenant), keys::recovery_sk(webhook));
        self.get(key, true)
            .await?
            .map(|item| from_item::<WebhookItem<RecoveryState>>(item).map(|i| i.webhook))
            .transpose()
            .map_err(mapping)
    }

    async fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite,
    ) -> Result<bool, StoreError> {
        let item = to_item(WebhookItem {
            pk: keys::tenant_pk(&state.tenant_id),
            sk: keys::recovery_sk(state.webhook_id),
            webhook: state,
        })
        .map_err(mapping)?;
        let put = self
            .client()
            .await?
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match write {
            RecoveryWrite::Start { now } => put
                .condition_expression(
                    "attribute_not_exists(PK) OR done = :true OR updated_at < :stale",
                )
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(
                    ":stale",
                    AttributeValue::N((now - STALE_SECS).to_string()),
                ),
            RecoveryWrite::Advance => put
                .condition_expression("recovery_id = :id")
                .expression_attribute_values(":id", AttributeValue::S(state.recovery_id.clone())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let Some(room) = limit.checked_sub(n) else {
            return Ok(false);
        };
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::tenant_pk(tenant),
                allowance.sk(window),
            )))
            .update_expression("ADD #n :n SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n <= :room")
            .expression_attribute_names("#n", "taken")
            .expression_attribute_names("#ttl", keys::EXPIRES_AT)
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
            // Kept a day past its window; TTL removes it.
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((window * allowance.window_secs() + 86_400).to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }
}

/// Creates the table as template.yaml declares it: for local runs and tests.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(backend)
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(backend)
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(keys::GSI1PK)?)
        .attribute_definitions(attr(keys::GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(keys::GSI1)
                .key_schema(key(keys::GSI1PK, KeyType::Hash)?)
                .key_schema(key(keys::GSI1SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(backend)?,
        )
        .send()
        .await
        .map_err(backend)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(keys::EXPIRES_AT)
                .build()
                .map_err(backend)?,
        )
        .send()
        .await
        .map_err(backend)?;
    Ok(())
}
