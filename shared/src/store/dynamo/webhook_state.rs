//! What the dispatcher writes on a webhook's item besides the customer's
//! fields: the throttle's slots and the failing streak. Each is one
//! UpdateItem that leaves the customer's fields and `updated_at` alone
//! (but the disable, which is the customer's status).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::write::applied;
use super::{DynamoStore, backend, key, number};
use crate::audit::AuditEntry;
use crate::store::{Conditional, StoreError, StreakChange, keys};
use crate::throttle::{SlotRequest, unix_ms};
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

/// See [`crate::store::WebhookStore::reserve_slots`]. Attempts waiting:
/// one `ADD` of the slots' span, only while the next slot is ahead (it
/// returns the slots taken). Nothing waiting: one conditional `SET` of the
/// next slot after the span. The first is tried first when the caller saw
/// attempts waiting; a wrong guess costs one refused write, and takes no
/// slot (a refused `ADD` also tells whether the webhook is gone).
pub(super) async fn reserve_slots(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    want: SlotRequest,
) -> Result<Option<i64>, StoreError> {
    let now_ms = unix_ms(want.now);
    let mut waiting = want.waiting;
    // A few rounds at most: a round ends without slots only when another
    // reservation found nothing waiting at the same moment.
    for _ in 0..4 {
        if waiting {
            match add(store, tenant, id, want).await? {
                Added::From(first) => return Ok(Some(first)),
                Added::Gone => return Ok(None),
                Added::NothingWaits => {}
            }
        }
        if idle(store, tenant, id, want).await? == Conditional::Applied {
            return Ok(Some(now_ms));
        }
        // Another reservation took `now` first: add after it.
        waiting = true;
    }
    Err(StoreError::Conflict)
}

/// What adding slots after the waiting ones came to.
enum Added {
    /// The first of the slots taken.
    From(i64),
    /// Nothing waits (the next slot is not ahead): nothing taken.
    NothingWaits,
    Gone,
}

async fn add(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    want: SlotRequest,
) -> Result<Added, StoreError> {
    let span = want.span_ms();
    let sent = update_of(store, tenant, id)
        .await?
        .update_expression("ADD #n :span SET #s = if_not_exists(#s, :since)")
        .condition_expression("#n > :now")
        .expression_attribute_names("#n", keys::THROTTLE_NEXT)
        .expression_attribute_names("#s", keys::THROTTLED_SINCE)
        .expression_attribute_values(":span", number(span))
        .expression_attribute_values(":now", number(unix_ms(want.now)))
        .expression_attribute_values(":since", time(want.now)?)
        .return_values(ReturnValue::UpdatedNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    let out = match sent {
        Ok(out) => out,
        Err(e) => {
            return match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) if c.item().is_some() => {
                    Ok(Added::NothingWaits)
                }
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Added::Gone),
                _ => Err(backend(e)),
            };
        }
    };
    let next = out
        .attributes()
        .and_then(|a| a.get(keys::THROTTLE_NEXT))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| StoreError::Backend("the reservation returned no slot".into()))?;
    Ok(Added::From(next - span))
}

/// Takes the slots from `now`, only if nothing waits. More than one slot
/// means attempts wait from now on: `throttled_since` is set; one clears it.
async fn idle(
    store: &DynamoStore,
    tenant: &TenantId,
    id: WebhookId,
    want: SlotRequest,
) -> Result<Conditional, StoreError> {
    let now_ms = unix_ms(want.now);
    let update = update_of(store, tenant, id)
        .await?
        .condition_expression("attribute_exists(PK) AND (attribute_not_exists(#n) OR #n <= :now)")
        .expression_attribute_names("#n", keys::THROTTLE_NEXT)
        .expression_attribute_names("#s", keys::THROTTLED_SINCE)
        .expression_attribute_values(":next", number(now_ms + want.span_ms()))
        .expression_attribute_values(":now", number(now_ms));
    let update = if want.count > 1 {
        update
            .update_expression("SET #n = :next, #s = :since")
            .expression_attribute_values(":since", time(want.now)?)
    } else {
        update.update_expression("SET #n = :next REMOVE #s")
    };
    applied(update.send().await)
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
