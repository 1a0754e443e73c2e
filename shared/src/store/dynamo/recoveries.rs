//! Recoveries: items `TENANT#<tenant>` / `RECOVERY#<webhook>` (each
//! webhook's last one, its lock), and the claim on an event's manual
//! attempt counter.

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};

use super::events::manual_attempt_number;
use super::write::{applied, conditional};
use super::{DynamoStore, Keyed, backend, item, key, number, parse};
use crate::event::EventId;
use crate::recovery::state::{PENDING_SECS, RecoveryState, STALE_SECS};
use crate::store::keys::{self, PK};
use crate::store::{Conditional, RecoveryStore, RecoveryWrite, StoreError};
use crate::{TenantId, WebhookId};

impl RecoveryStore for DynamoStore {
    async fn claim_recovery_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        manual_recorded: u32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        let result = self
            .update_event(tenant, event)
            .await?
            .update_expression("ADD #m :one SET #at = :now")
            // Pending: numbered lately, and past what is recorded.
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#m) OR #m <= :recorded \
                 OR attribute_not_exists(#at) OR #at < :stale)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#m", keys::manual_attempts(webhook))
            .expression_attribute_names("#at", keys::manual_at(webhook))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":recorded", number(manual_recorded))
            .expression_attribute_values(":stale", number(now - PENDING_SECS))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let Some(out) = conditional(result)? else {
            return Ok(None);
        };
        manual_attempt_number(&out.attributes.unwrap_or_default(), webhook).map(Some)
    }

    async fn recovery(
        &self,
        tenant: &TenantId,
        webhook: WebhookId,
    ) -> Result<Option<RecoveryState>, StoreError> {
        // Strongly consistent: the lock's state, just written by another call.
        let key = key(keys::tenant_pk(tenant), keys::recovery_sk(webhook));
        self.get(key, true)
            .await?
            .map(|item| parse::<Keyed<RecoveryState>>(item).map(|i| i.attributes))
            .transpose()
    }

    async fn save_recovery(
        &self,
        state: &RecoveryState,
        write: RecoveryWrite<'_>,
    ) -> Result<Conditional, StoreError> {
        let item = item(Keyed {
            pk: keys::tenant_pk(&state.tenant_id),
            sk: keys::recovery_sk(state.webhook_id),
            attributes: state,
        })?;
        match write {
            RecoveryWrite::Start { now, entry } => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(
                        "attribute_not_exists(PK) OR done = :true OR updated_at < :stale",
                    )
                    .expression_attribute_values(":true", AttributeValue::Bool(true))
                    .expression_attribute_values(":stale", number(now - STALE_SECS))
                    .build()
                    .map_err(backend)?;
                self.audited(TransactWriteItem::builder().put(put).build(), entry)
                    .await
            }
            RecoveryWrite::Advance => {
                let put = self
                    .client()
                    .await?
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("recovery_id = :id")
                    .expression_attribute_values(
                        ":id",
                        AttributeValue::S(state.recovery_id.clone()),
                    );
                applied(put.send().await)
            }
        }
    }
}
