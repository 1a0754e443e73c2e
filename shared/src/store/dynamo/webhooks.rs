//! Webhooks: items `TENANT#<tenant>` / `WEBHOOK#<id>`, and the tenant's
//! webhook count on `META`, kept in the same transaction as every create
//! and delete.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::query::{self, page};
use super::webhook_state;
use super::write::{applied, failed_condition, transact};
use super::{DynamoStore, Item, Keyed, backend, item, key, number, parse};
use crate::audit::AuditEntry;
use crate::store::{Conditional, Page, StoreError, StreakChange, WebhookStore, keys};
use crate::throttle::SlotRequest;
use crate::{TenantId, Webhook, WebhookId};

fn webhook_item(webhook: &Webhook) -> Result<Item, StoreError> {
    item(Keyed {
        pk: keys::tenant_pk(&webhook.tenant_id),
        sk: keys::webhook_sk(webhook.id),
        attributes: webhook,
    })
}

fn parse_webhook(item: Item) -> Result<Webhook, StoreError> {
    parse::<Keyed<Webhook>>(item).map(|k| k.attributes)
}

impl WebhookStore for DynamoStore {
    async fn create_webhook(
        &self,
        webhook: &Webhook,
        limit: u32,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::tenant_pk(&webhook.tenant_id),
                keys::META_SK.into(),
            )))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", keys::WEBHOOK_COUNT)
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":limit", number(limit))
            .build()
            .map_err(backend)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(backend)?;
        let audit = self.audit_put(entry)?;
        let client = self.client().await?;
        let sent = transact(|| {
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                .transact_items(audit.clone())
        })
        .await;
        match failed_condition(sent)? {
            None => Ok(()),
            Some(0) => Err(StoreError::LimitReached { limit }),
            Some(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let key = key(keys::tenant_pk(tenant), keys::webhook_sk(id));
        self.get(key, true).await?.map(parse_webhook).transpose()
    }

    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        let pk = keys::tenant_pk(tenant);
        let start = after.map(|id| key(pk.clone(), keys::webhook_sk(id)));
        let query = self
            .partition(pk, keys::WEBHOOK_PREFIX.into())
            .await?
            .consistent_read(true);
        let items = query::newest_first(query, limit, start).await?;
        let items = items
            .into_iter()
            .map(parse_webhook)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, |w| w.id))
    }

    async fn webhooks_of(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        let query = self
            .partition(keys::tenant_pk(tenant), keys::WEBHOOK_PREFIX.into())
            .await?;
        query::all(query, parse_webhook).await
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        loaded_at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let loaded_at = loaded_at
            .format(&Rfc3339)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_exists(PK) AND updated_at = :loaded")
            .expression_attribute_values(":loaded", AttributeValue::S(loaded_at))
            .build()
            .map_err(backend)?;
        let put = TransactWriteItem::builder().put(put).build();
        if self.audited(put, entry).await?.applied() {
            return Ok(());
        }
        match self.get_webhook(&webhook.tenant_id, webhook.id).await? {
            Some(_) => Err(StoreError::Conflict),
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let pk = keys::tenant_pk(tenant);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), keys::webhook_sk(id))))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(backend)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, keys::META_SK.into())))
            .update_expression("SET #n = #n - :one")
            .condition_expression("#n > :zero")
            .expression_attribute_names("#n", keys::WEBHOOK_COUNT)
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .build()
            .map_err(backend)?;
        let audit = self.audit_put(entry)?;
        let client = self.client().await?;
        let sent = transact(|| {
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
                .transact_items(audit.clone())
        })
        .await;
        match failed_condition(sent)? {
            None => Ok(()),
            Some(0) => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Backend(
                "the tenant's webhook count was already zero".into(),
            )),
        }
    }

    async fn set_slow(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        since: Option<OffsetDateTime>,
    ) -> Result<Conditional, StoreError> {
        // One conditional UpdateItem, only on a change of state; `updated_at`
        // (the customer's version) is left alone.
        let update = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant_pk(tenant), keys::webhook_sk(id))))
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
        applied(update.send().await)
    }

    async fn reserve_slots(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        want: SlotRequest,
    ) -> Result<Option<i64>, StoreError> {
        webhook_state::reserve_slots(self, tenant, id, want).await
    }

    async fn change_streak(
        &self,
        tenant: &TenantId,
        id: WebhookId,
        change: &StreakChange,
    ) -> Result<Conditional, StoreError> {
        webhook_state::change_streak(self, tenant, id, change).await
    }
}
