//! What the dispatcher writes on a webhook's item besides the customer's
//! fields: the throttle's slots and the failing streak. Each is one
//! UpdateItem that leaves the customer's fields and `updated_at` alone
//! (but the disable, which is the customer's status).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::write::{applied, conditional};
use super::{DynamoStore, backend, key, number};
use crate::audit::AuditEntry;
use crate::store::{Conditional, StoreError, StreakChange, keys};
use crate::throttle::{ThrottleRate, unix_ms};
use crate::{TenantId, WebhookId};

fn time(at: OffsetDateTime) -> Result<AttributeValue, StoreError> {
    at.format(&Rfc3339)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Backend(e.to_string()))
}

async fn update_of(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
) -> Result<UpdateItemFluentBuilder, StoreError> {
    Ok(store
        .client()
        .await?
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(keys::tenant_pk(tenant), keys::webhook_sk(id)))))
}

/// See [`crate::store::WebhookStore::reserve_slot`]. Nothing waiting: one
/// conditional `SET` of the next slot (refused when one waits); one
/// waiting: one `ADD` of the gap, which returns the slot taken. The first
/// is tried first unless the caller saw one waiting; a wrong guess costs
/// one refused write.
pub(super) async fn reserve_slot(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    rate: ThrottleRate,
    now: OffsetDateTime,
    waiting: bool,
) -> Result<Option<i64>, StoreError> {
    let (now_ms, gap) = (unix_ms(now), rate.gap_ms());
    let idle = || async {
        let sent = update_of(store, tenant, id)
            .await?
            .update_expression("SET #n = :next REMOVE #s")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(#n) OR #n <= :now)",
            )
            .expression_attribute_names("#n", keys::THROTTLE_NEXT)
            .expression_attribute_names("#s", keys::THROTTLED_SINCE)
            .expression_attribute_values(":next", number(now_ms + gap))
            .expression_attribute_values(":now", number(now_ms))
            .send()
            .await;
        applied(sent)
    };
    if !waiting && idle().await? == Conditional::Applied {
        return Ok(Some(now_ms));
    }
    // A few rounds at most: a round ends early only when another
    // reservation found nothing waiting at the same moment.
    for _ in 0..4 {
        let sent = update_of(store, tenant, id)
            .await?
            .update_expression("ADD #n :gap SET #s = if_not_exists(#s, :since)")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#n", keys::THROTTLE_NEXT)
            .expression_attribute_names("#s", keys::THROTTLED_SINCE)
            .expression_attribute_values(":gap", number(gap))
            .expression_attribute_values(":since", time(now)?)
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let Some(out) = conditional(sent)? else {
            return Ok(None);
        };
        let next = out
            .attributes()
            .and_then(|a| a.get(keys::THROTTLE_NEXT))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Backend("the reservation returned no slot".into()))?;
        let slot = next - gap;
        if slot >= now_ms {
            return Ok(Some(slot));
        }
        // The guess was stale (nothing waits): the slot is now, unless
        // another reservation took now first; then the next round adds
        // after it.
        if idle().await? == Conditional::Applied {
            return Ok(Some(now_ms));
        }
    }
    Err(StoreError::Conflict)
}

/// See [`crate::store::WebhookStore::change_streak`].
pub(super) async fn change_streak(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    change: &StreakChange,
) -> Result<Conditional, StoreError> {
    let update = update_of(store, tenant, id)
        .await?
        .expression_attribute_names("#f", keys::FAILING_SINCE);
    let update = match change {
        StreakChange::Began { at, error } => update
            .update_expression("SET #f = :at, #e = :error")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(#f)")
            .expression_attribute_names("#e", keys::LAST_ERROR)
            .expression_attribute_values(":at", time(*at)?)
            .expression_attribute_values(":error", AttributeValue::S(error.clone())),
        StreakChange::Noticed { since, at, error } => update
            .update_expression("SET #n = :at, #e = :error")
            .condition_expression("#f = :since AND attribute_not_exists(#n)")
            .expression_attribute_names("#n", keys::FAILING_NOTICE_AT)
            .expression_attribute_names("#e", keys::LAST_ERROR)
            .expression_attribute_values(":since", time(*since)?)
            .expression_attribute_values(":at", time(*at)?)
            .expression_attribute_values(":error", AttributeValue::S(error.clone())),
        StreakChange::Ended => update
            .update_expression("REMOVE #f, #n, #e")
            .condition_expression("attribute_exists(#f)")
            .expression_attribute_names("#n", keys::FAILING_NOTICE_AT)
            .expression_attribute_names("#e", keys::LAST_ERROR),
        StreakChange::Disabled {
            since,
            at,
            reason,
            error,
            entry,
        } => return disable(store, tenant, id, (*since, *at), (reason, error), entry).await,
    };
    applied(update.send().await)
}

/// The platform turns the webhook off, with its audit entry, in one
/// transaction: only if it is still active and still in the streak since
/// `since`.
async fn disable(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    (since, at): (OffsetDateTime, OffsetDateTime),
    (reason, error): (&str, &str),
    entry: &AuditEntry,
) -> Result<Conditional, StoreError> {
    let update = Update::builder()
        .table_name(&store.table)
        .set_key(Some(key(keys::tenant_pk(tenant), keys::webhook_sk(id))))
        .update_expression(
            "SET #status = :inactive, disabled_reason = :reason, #e = :error, updated_at = :at",
        )
        .condition_expression("#f = :since AND #status = :active")
        .expression_attribute_names("#f", keys::FAILING_SINCE)
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#e", keys::LAST_ERROR)
        .expression_attribute_values(":since", time(since)?)
        .expression_attribute_values(":at", time(at)?)
        .expression_attribute_values(":reason", AttributeValue::S(reason.to_owned()))
        .expression_attribute_values(":error", AttributeValue::S(error.to_owned()))
        .expression_attribute_values(":inactive", AttributeValue::S("inactive".into()))
        .expression_attribute_values(":active", AttributeValue::S("active".into()))
        .build()
        .map_err(backend)?;
    let update = TransactWriteItem::builder().update(update).build();
    store.audited(update, entry).await
}
