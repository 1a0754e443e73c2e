//! Events: items `EVENT#<tenant>#<event>` / `EVENT`, listed per tenant
//! through GSI1 (`EVENTS#<tenant>`, by timestamp) and per subject through
//! GSI2, with the counters that number each webhook's manual attempts; and
//! their payloads, items `EVENT#<tenant>#<event>` / `PAYLOAD` in no index.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use futures_util::future::join_all;
use serde::Deserialize;

use super::query::{self, MAX_FILTERED_PAGES, Reading, page};
use super::write::{applied, failed_condition, transact};
use super::{DynamoStore, Indexed, Item, backend, item, key, number, parse};
use crate::audit::{self, Actor, AuditEntry};
use crate::delivery_log::DeliveryRecord;
use crate::event::{EventId, Subject};
use crate::event_log::{EventFilter, PayloadState, StoredEvent};
use crate::retry::FIRST_MANUAL_ATTEMPT;
use crate::store::keys::{self, PK};
use crate::store::{EventStore, Kept, Page, StoreError};
use crate::{TenantId, WebhookId};

/// The payload's attribute, on its own item (and on events' items written
/// before payloads had one).
const DATA: &str = "data";

/// Erasures of one subject's payloads at once.
const ERASING_AT_ONCE: usize = 10;

/// Reads and writes of an event's manual attempt counters before two
/// concurrent redeliveries give up on each other.
const NUMBERING_ROUNDS: usize = 5;

/// An event and its deliveries share a partition; this tells them apart.
#[derive(Deserialize)]
struct ItemKind {
    #[serde(rename = "SK")]
    sk: String,
}

/// An event's payload item.
#[derive(Deserialize)]
struct PayloadItem {
    data: String,
}

/// One item of an event's partition.
enum InPartition {
    Event(StoredEvent),
    Payload(String),
    Delivery(DeliveryRecord),
}

/// An event's copy as the table holds it: without its payload, which is an
/// item of its own ([`payload_item`]), so that GSI1 holds no copy of it.
/// With a subject, also in GSI2.
pub(super) fn event_item(event: &StoredEvent) -> Result<Item, StoreError> {
    let mut item = item(Indexed {
        pk: keys::event_pk(&event.tenant_id, &event.id),
        sk: keys::EVENT_SK.to_owned(),
        gsi1pk: keys::events_gsi_pk(&event.tenant_id),
        gsi1sk: event.sort_key(),
        attributes: event,
    })?;
    item.remove(DATA);
    if let Some(subject) = &event.subject {
        let pk = keys::subject_gsi_pk(&event.tenant_id, subject);
        item.insert(keys::GSI2PK.into(), AttributeValue::S(pk));
        item.insert(keys::GSI2SK.into(), AttributeValue::S(event.sort_key()));
    }
    Ok(item)
}

/// The event's payload item, when it has one to keep: its data, expiring
/// (DynamoDB TTL) when the tenant's retention ends.
pub(super) fn payload_item(event: &StoredEvent) -> Option<Item> {
    let data = event.data.as_ref()?;
    let mut item = key(
        keys::event_pk(&event.tenant_id, &event.id),
        keys::PAYLOAD_SK.to_owned(),
    );
    item.insert(DATA.into(), AttributeValue::S(data.clone()));
    item.insert(keys::EXPIRES_AT.into(), number(event.payload_expires_at()));
    Some(item)
}

fn in_partition(item: Item) -> Result<InPartition, StoreError> {
    let kind: ItemKind = parse(item.clone())?;
    Ok(match kind.sk.as_str() {
        keys::EVENT_SK => InPartition::Event(parse::<Indexed<StoredEvent>>(item)?.attributes),
        keys::PAYLOAD_SK => InPartition::Payload(parse::<PayloadItem>(item)?.data),
        _ => InPartition::Delivery(parse::<Indexed<DeliveryRecord>>(item)?.attributes),
    })
}

/// An event's partition read back: the event with its payload, and its
/// deliveries.
fn assemble(items: Vec<InPartition>) -> Option<(StoredEvent, Vec<DeliveryRecord>)> {
    let mut event = None;
    let mut payload = None;
    let mut deliveries = Vec::new();
    for item in items {
        match item {
            InPartition::Event(e) => event = Some(e),
            InPartition::Payload(p) => payload = Some(p),
            InPartition::Delivery(d) => deliveries.push(d),
        }
    }
    let mut event: StoredEvent = event?;
    // Copies written before payloads had an item hold theirs themselves.
    if event.data.is_none() {
        event.data = payload;
    }
    Some((event, deliveries))
}

/// Where a listing of `index` (GSI1 or GSI2) resumes: the entry of the
/// event whose sort key is the cursor.
fn index_start(
    tenant: &TenantId,
    index: &str,
    pk: String,
    sort_key: String,
) -> Result<Item, StoreError> {
    let event = sort_key
        .split_once('#')
        .and_then(|(_, e)| EventId::parse(e).ok())
        .ok_or_else(|| StoreError::Backend("not an event cursor".into()))?;
    let mut start = key(keys::event_pk(tenant, &event), keys::EVENT_SK.into());
    start.insert(format!("{index}PK"), AttributeValue::S(pk));
    start.insert(format!("{index}SK"), AttributeValue::S(sort_key));
    Ok(start)
}

/// The event a GSI2 entry (a subject's) points at.
fn subject_entry(item: &Item) -> Option<(EventId, String)> {
    let sort_key = item.get(keys::GSI2SK)?.as_s().ok()?;
    let (_, id) = sort_key.split_once('#')?;
    Some((EventId::parse(id).ok()?, sort_key.clone()))
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
        self.put_event_copies(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("no copy was written".into())))
    }

    async fn put_events(&self, events: &[StoredEvent]) -> Vec<Result<Kept, StoreError>> {
        self.put_event_copies(events).await
    }

    async fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        // `EVENT` and `PAYLOAD`: every sort key from `EVENT` on (deliveries
        // sort before it).
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK >= :event")
            .expression_attribute_values(":pk", AttributeValue::S(keys::event_pk(tenant, id)))
            .expression_attribute_values(":event", AttributeValue::S(keys::EVENT_SK.into()));
        Ok(assemble(query::all(query, in_partition).await?).map(|(e, _)| e))
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
        Ok(assemble(query::all(query, in_partition).await?))
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        if let Some(subject) = &filter.subject {
            return self
                .subject_events(tenant, subject, filter, limit, after)
                .await;
        }
        let pk = keys::events_gsi_pk(tenant);
        let start = after
            .map(|sort_key| index_start(tenant, keys::GSI1, pk.clone(), sort_key))
            .transpose()?;
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

    async fn delete_payload(
        &self,
        tenant: &TenantId,
        id: &EventId,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let Some(event) = self.get_event(tenant, id).await? else {
            return Ok(false);
        };
        if !event.holds_payload() {
            // Never written: nothing to delete, and the reason stays.
            return Ok(true);
        }
        let pk = keys::event_pk(tenant, id);
        // The payload item goes, and the event says so; copies from before
        // payload items lose theirs (and GSI1 its copy) with the same write.
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), keys::EVENT_SK.into())))
            .update_expression("SET #state = :deleted REMOVE #data")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#state", "payload")
            .expression_attribute_names("#data", DATA)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":deleted", AttributeValue::S("deleted".into()))
            .build()
            .map_err(backend)?;
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, keys::PAYLOAD_SK.into())))
            .build()
            .map_err(backend)?;
        // Deleted again: the write cleans what copies may be left, and is
        // no change to record.
        let audit = (event.payload == PayloadState::Kept)
            .then(|| self.audit_put(entry))
            .transpose()?;
        let client = self.client().await?;
        let sent = transact(|| {
            let both = client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(mark.clone()).build())
                .transact_items(TransactWriteItem::builder().delete(delete.clone()).build());
            match &audit {
                Some(audit) => both.transact_items(audit.clone()),
                None => both,
            }
        })
        .await;
        // Its condition failed: the event expired meanwhile.
        Ok(failed_condition(sent)?.is_none())
    }

    async fn delete_subject_payloads(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        actor: &Actor,
    ) -> Result<u64, StoreError> {
        let query = self
            .subject_query(tenant, subject, &EventFilter::default())
            .await?;
        let entries = query::all(query.projection_expression("GSI2SK"), |item| {
            subject_entry(&item).ok_or_else(|| StoreError::Backend("not a subject entry".into()))
        })
        .await?;
        let mut found = 0;
        for chunk in entries.chunks(ERASING_AT_ONCE) {
            let erased = join_all(chunk.iter().map(|(id, _)| async move {
                let entry = audit::payload_deleted(tenant, id, Some(subject), actor);
                self.delete_payload(tenant, id, &entry).await
            }))
            .await;
            for e in erased {
                found += u64::from(e?);
            }
        }
        Ok(found)
    }

    async fn number_manual_attempts(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhooks: &[WebhookId],
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<Vec<u32>>, StoreError> {
        if webhooks.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let event_key = key(keys::event_pk(tenant, event), keys::EVENT_SK.to_owned());
        // One counter attribute per webhook on the event's item, all set in
        // one transaction with the entry (which returns no values): each
        // counter read, then written only if still as read; a race reads
        // again. At most 50 webhooks, a few hundred bytes.
        for _ in 0..NUMBERING_ROUNDS {
            let Some(item) = self.get(event_key.clone(), true).await? else {
                return Ok(None);
            };
            let counts: Vec<u32> = webhooks
                .iter()
                .map(|w| {
                    item.get(&keys::manual_attempts(*w))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u32>().ok())
                        .unwrap_or(0)
                })
                .collect();
            let mut sets = Vec::with_capacity(webhooks.len() * 2);
            let mut conditions = vec!["attribute_exists(#pk)".to_owned()];
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(event_key.clone()))
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":now", number(now));
            for (i, (w, count)) in webhooks.iter().zip(&counts).enumerate() {
                sets.push(format!("#m{i} = :n{i}"));
                sets.push(format!("#t{i} = :now"));
                conditions.push(if *count == 0 {
                    format!("attribute_not_exists(#m{i})")
                } else {
                    format!("#m{i} = :c{i}")
                });
                update = update
                    .expression_attribute_names(format!("#m{i}"), keys::manual_attempts(*w))
                    .expression_attribute_names(format!("#t{i}"), keys::manual_at(*w))
                    .expression_attribute_values(format!(":n{i}"), number(count + 1));
                if *count > 0 {
                    update = update.expression_attribute_values(format!(":c{i}"), number(*count));
                }
            }
            let update = update
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression(conditions.join(" AND "))
                .build()
                .map_err(backend)?;
            let update = TransactWriteItem::builder().update(update).build();
            if self.audited(update, entry).await?.applied() {
                return Ok(Some(
                    counts.iter().map(|c| FIRST_MANUAL_ATTEMPT + c).collect(),
                ));
            }
            crate::random::pause(2, 16).await;
        }
        Err(StoreError::Conflict)
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

impl DynamoStore {
    /// A query of one subject's entries in GSI2 within the filter's window.
    async fn subject_query(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        filter: &EventFilter,
    ) -> Result<aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder, StoreError> {
        let pk = keys::subject_gsi_pk(tenant, subject);
        self.index_between(keys::GSI2, pk, filter.since, filter.until)
            .await
    }

    /// A subject's events, newest first: one query of the subject's GSI2
    /// entries (keys only), then the events' items in one `BatchGetItem`.
    async fn subject_events(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        filter: &EventFilter,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<StoredEvent, String>, StoreError> {
        let pk = keys::subject_gsi_pk(tenant, subject);
        let start = after
            .map(|sort_key| index_start(tenant, keys::GSI2, pk, sort_key))
            .transpose()?;
        let query = self.subject_query(tenant, subject, filter).await?;
        let entries = query::newest_first(query, limit, start).await?;
        let ids: Vec<EventId> = entries
            .iter()
            .filter_map(subject_entry)
            .map(|(id, _)| id)
            .collect();
        let mut events = self.events_by_id(tenant, &ids).await?;
        events.retain(|e| filter.matches(e));
        events.sort_by_key(|e| std::cmp::Reverse(e.sort_key()));
        Ok(page(events, limit, StoredEvent::sort_key))
    }

    /// The tenant's events of `ids` (those still kept), without payloads:
    /// one `BatchGetItem` per 100.
    async fn events_by_id(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| key(keys::event_pk(tenant, id), keys::EVENT_SK.into()))
            .collect();
        self.batch_get(keys, None, false)
            .await?
            .into_iter()
            .map(|item| {
                let mut event = parse::<Indexed<StoredEvent>>(item)?.attributes;
                // A listing carries no payload, whatever the item held.
                event.data = None;
                Ok(event)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::event_log::Retention;

    /// An item's size as DynamoDB bills it: each attribute's name and
    /// value (a number about half its digits).
    fn billed_bytes(item: &Item) -> usize {
        fn value(v: &AttributeValue) -> usize {
            match v {
                AttributeValue::S(s) => s.len(),
                AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                AttributeValue::M(m) => {
                    3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>()
                }
                AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
                _ => 1,
            }
        }
        item.iter().map(|(k, v)| k.len() + value(v)).sum()
    }

    /// An event with these ids and subject.
    fn event_of(id: &str, tenant: &str, subject: &str, data: &str) -> StoredEvent {
        let raw = format!(
            r#"{{"id":"{id}","tenant_id":"{tenant}","type":"flowx.completed","timestamp":"2026-11-25T17:00:00.123456Z","subject":"{subject}","data":{data}}}"#
        );
        let event = Event::from_json(&raw).unwrap();
        StoredEvent::new(&event, crate::webhook::now_utc(), Retention::WEEK)
    }

    #[test]
    fn an_events_item_holds_no_payload_and_stays_within_one_write_unit() {
        let payload = format!(r#"{{"name":"{}"}}"#, "x".repeat(8_000));
        let e = event_of(
            "evt_01JDQ87H1R4S9V6X0Z3B5D8F2G",
            "acme-bank-in",
            "req_01JDQ7Z3M6X9V2K8T4N5B1C0RE",
            &payload,
        );
        let item = event_item(&e).unwrap();
        assert!(!item.contains_key(DATA));
        assert!(item.contains_key(keys::GSI2PK));
        // Generated ids and a request id as subject: one write unit,
        // whatever the payload's size.
        let size = billed_bytes(&item);
        eprintln!("an event's item: {size} bytes");
        assert!(size <= 1024, "{size} bytes");
        // Ids, tenant and subject at their longest: two.
        let longest = event_of(&"e".repeat(128), &"t".repeat(64), &"s".repeat(128), "{}");
        let size = billed_bytes(&event_item(&longest).unwrap());
        assert!((1025..=2048).contains(&size), "{size} bytes");
        let held = payload_item(&e).unwrap();
        assert_eq!(held.get(DATA).and_then(|v| v.as_s().ok()), Some(&payload));
        let beside = billed_bytes(&held) - payload.len();
        eprintln!("a payload's item: {beside} bytes besides the payload");
        assert!(beside < 300);
        // Nothing to hold: no payload item.
        let none = StoredEvent::new(
            &e.to_event(i64::MIN).unwrap(),
            crate::webhook::now_utc(),
            Retention {
                event_days: 7,
                payload_hours: 0,
            },
        );
        assert!(payload_item(&none).is_none());
    }
}
