//! Events: items `EVENT#<tenant>#<event>` / `EVENT`, listed per tenant
//! through GSI1 (`EVENTS#<tenant>`, by timestamp), with the counters that
//! number each webhook's manual attempts.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Deserialize;

use super::query::{self, MAX_FILTERED_PAGES, Reading, page};
use super::write::{applied, conditional};
use super::{DynamoStore, Indexed, Item, item, key, number, parse};
use crate::delivery_log::DeliveryRecord;
use crate::event::EventId;
use crate::event_log::{EventFilter, StoredEvent};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::store::keys::{self, PK};
use crate::store::{EventStore, Kept, Page, StoreError};
use crate::{TenantId, WebhookId};

/// An event and its deliveries share a partition; this tells them apart.
#[derive(Deserialize)]
struct ItemKind {
    #[serde(rename = "SK")]
    sk: String,
}

/// One item of an event's partition.
enum InPartition {
    Event(StoredEvent),
    Delivery(DeliveryRecord),
}

/// An event's copy as the table holds it.
pub(super) fn event_item(event: &StoredEvent) -> Result<Item, StoreError> {
    item(Indexed {
        pk: keys::event_pk(&event.tenant_id, &event.id),
        sk: keys::EVENT_SK.to_owned(),
        gsi1pk: keys::events_gsi_pk(&event.tenant_id),
        gsi1sk: event.sort_key(),
        attributes: event,
    })
}

fn in_partition(item: Item) -> Result<InPartition, StoreError> {
    let kind: ItemKind = parse(item.clone())?;
    Ok(if kind.sk == keys::EVENT_SK {
        InPartition::Event(parse::<Indexed<StoredEvent>>(item)?.attributes)
    } else {
        InPartition::Delivery(parse::<Indexed<DeliveryRecord>>(item)?.attributes)
    })
}

/// The number of the manual attempt a counter update just made, from the
/// attributes it returned.
pub(super) fn manual_attempt_number(updated: &Item, webhook: WebhookId) -> Result<u32, StoreError> {
    updated
        .get(&keys::manual_attempts(webhook))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u32>().ok())
        .map(|count| FIRST_MANUAL_ATTEMPT - 1 + count)
        .ok_or_else(|| {
            StoreError::Backend("the update did not return a manual attempt counter".into())
        })
}

impl DynamoStore {
    /// An update of the event's item (its manual attempt counters).
    pub(super) async fn update_event(
        &self,
        tenant: &TenantId,
        event: &EventId,
    ) -> Result<UpdateItemFluentBuilder, StoreError> {
        Ok(self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::event_pk(tenant, event),
                keys::EVENT_SK.to_owned(),
            ))))
    }
}

impl EventStore for DynamoStore {
    async fn put_event(&self, event: &StoredEvent) -> Result<Kept, StoreError> {
        // Kept already (the message came again): the first copy stays.
        self.put_new(event_item(event)?).await
    }

    async fn put_events(&self, events: &[StoredEvent]) -> Vec<Result<Kept, StoreError>> {
        self.put_event_copies(events).await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let key = key(keys::event_pk(tenant, id), keys::EVENT_SK.to_owned());
        self.get(key, false)
            .await?
            .map(|item| parse::<Indexed<StoredEvent>>(item).map(|i| i.attributes))
            .transpose()
    }

    async fn event_with_deliveries(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRecord>)>, StoreError> {
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::event_pk(tenant, id)));
        let mut event = None;
        let mut deliveries = Vec::new();
        for item in query::all(query, in_partition).await? {
            match item {
                InPartition::Event(e) => event = Some(e),
                InPartition::Delivery(d) => deliveries.push(d),
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
                let mut key = key(keys::event_pk(tenant, &event), keys::EVENT_SK.into());
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
        let reading = Reading::NewestFirst {
            limit,
            max_pages: MAX_FILTERED_PAGES,
        };
        let found = query::read(query, start, reading).await?;
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
            .map(|item| parse::<Indexed<StoredEvent>>(item).map(|i| i.attributes))
            .collect::<Result<Vec<StoredEvent>, _>>()?;
        // `until` is exclusive; BETWEEN kept an event exactly at it.
        let events: Vec<StoredEvent> = events.into_iter().filter(|e| filter.matches(e)).collect();
        let mut listed = page(events, limit, StoredEvent::sort_key);
        if listed.next.is_none() {
            listed.next = resume;
        }
        Ok(listed)
    }

    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
        now: i64,
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
        let mut update = self
            .update_event(tenant, event)
            .await?
            .update_expression(format!("ADD {} SET {}", adds.join(", "), times.join(", ")))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":now", number(now))
            .return_values(ReturnValue::UpdatedNew);
        for (i, w) in webhooks.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#m{i}"), keys::manual_attempts(*w))
                .expression_attribute_names(format!("#t{i}"), keys::manual_at(*w));
        }
        let Some(out) = conditional(update.send().await)? else {
            return Ok(None);
        };
        let updated = out.attributes.unwrap_or_default();
        webhooks
            .iter()
            .map(|w| manual_attempt_number(&updated, *w))
            .collect::<Result<Vec<u32>, StoreError>>()
            .map(Some)
    }

    async fn release_manual_attempt(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
        attempt: u32,
    ) -> Result<(), StoreError> {
        let counted = attempt.saturating_sub(FIRST_MANUAL_ATTEMPT - 1);
        let result = self
            .update_event(tenant, event)
            .await?
            .update_expression("SET #at = :zero")
            .condition_expression("#m = :counted")
            .expression_attribute_names("#m", keys::manual_attempts(webhook))
            .expression_attribute_names("#at", keys::manual_at(webhook))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":counted", number(counted))
            .send()
            .await;
        // Refused: a later attempt was numbered, and keeps its claim.
        applied(result).map(|_| ())
    }
}
