use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete, KeySchemaElement,
    KeyType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::keys::{self, PK, SK};
use super::{Page, Store, StoreError};
use crate::{TenantId, Webhook, WebhookId};

/// The DynamoDB store: one table, keys as described in [`keys`].
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(pk)),
            (SK.to_owned(), AttributeValue::S(sk)),
        ])
    }
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
struct ApiKeyItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    key_hash: String,
    tenant_id: TenantId,
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
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(count).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
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
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::tenant_pk(tenant),
                keys::webhook_sk(id),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.map(parse_webhook).transpose()
    }

    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        let pk = keys::tenant_pk(tenant);
        let mut start = after.map(|id| Self::key(pk.clone(), keys::webhook_sk(id)));
        let mut items = Vec::with_capacity(limit + 1);
        // One item more than asked tells whether another page exists, so the
        // last page never hands out a cursor to an empty page.
        loop {
            let want = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(keys::WEBHOOK_PREFIX.into()),
                )
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(want)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                items.push(parse_webhook(item)?);
            }
            start = out.last_evaluated_key;
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|w| w.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Err(StoreError::NotFound)
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
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c))
                    if cancelled_by_condition(c.cancellation_reasons(), 0) =>
                {
                    Err(StoreError::NotFound)
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn put_api_key(&self, key_hash: &str, tenant: &TenantId) -> Result<(), StoreError> {
        let item = to_item(ApiKeyItem {
            pk: keys::api_key_pk(key_hash),
            sk: keys::API_KEY_SK.into(),
            key_hash: key_hash.into(),
            tenant_id: tenant.clone(),
        })
        .map_err(mapping)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn tenant_for_api_key(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::api_key_pk(key_hash),
                keys::API_KEY_SK.into(),
            )))
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: ApiKeyItem = from_item(item).map_err(mapping)?;
        Ok(crate::api_key::hashes_match(&item.key_hash, key_hash).then_some(item.tenant_id))
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
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .send()
        .await
        .map_err(backend)?;
    Ok(())
}
