//! Delivery records: items `EVENT#<tenant>#<event>` /
//! `DELIVERY#<webhook>#<attempt>` in their event's partition, listed per
//! webhook through GSI1 (`WEBHOOK#<webhook>`, by attempt time): the
//! delivery log; and through GSI2, the same order in small entries: the
//! stats.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::query::{self, MAX_FILTERED_PAGES, Reading, page};
use super::{DynamoStore, Indexed, Item, item, key, parse};
use crate::delivery::Outcome;
use crate::delivery_log::{DeliveryCursor, DeliveryFilter, DeliveryRecord};
use crate::delivery_stats::{DeliverySample, Samples};
use crate::event::EventId;
use crate::store::keys::{self, PK};
use crate::store::{AttemptKey, DeliveryStore, Page, StoreError};
use crate::{TenantId, WebhookId};

/// The key attributes of a recorded attempt.
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

/// A delivery cursor (`<sort key>#<tenant>`) where a log query stopped: the
/// index's sort key, and the tenant from the table key (`EVENT#<tenant>#<event>`).
fn delivery_cursor_of_key(key: &Item) -> Option<String> {
    let sort_key = key.get(keys::GSI1SK)?.as_s().ok()?;
    let tenant = key.get(PK)?.as_s().ok()?.split('#').nth(1)?;
    Some(format!("{sort_key}#{tenant}"))
}

fn parse_record(item: Item) -> Result<DeliveryRecord, StoreError> {
    parse::<Indexed<DeliveryRecord>>(item).map(|i| i.attributes)
}

/// A delivery record as written: in both indexes.
#[derive(Serialize)]
struct RecordItem<'r> {
    #[serde(rename = "GSI2PK")]
    gsi2pk: String,
    #[serde(rename = "GSI2SK")]
    gsi2sk: String,
    #[serde(flatten)]
    indexed: Indexed<&'r DeliveryRecord>,
}

/// A delivery's entry in the narrow index.
#[derive(Deserialize)]
struct SampleEntry {
    #[serde(rename = "GSI2SK")]
    sk: String,
    outcome: Outcome,
    duration_ms: u64,
}

impl From<SampleEntry> for DeliverySample {
    fn from(e: SampleEntry) -> Self {
        let attempted_at = match e.sk.split_once('#') {
            Some((at, _)) => at.to_owned(),
            None => e.sk,
        };
        Self {
            attempted_at,
            outcome: e.outcome,
            duration_ms: e.duration_ms,
        }
    }
}

impl DeliveryStore for DynamoStore {
    async fn recorded_deliveries(
        &self,
        attempts: &[AttemptKey],
    ) -> Result<HashSet<AttemptKey>, StoreError> {
        let keys = attempts
            .iter()
            .map(|a| {
                key(
                    keys::event_pk(&a.tenant, &a.event),
                    keys::delivery_sk(a.webhook, a.attempt),
                )
            })
            .collect();
        let projection = "tenant_id, webhook_id, event_id, attempt";
        let mut found = HashSet::new();
        for item in self.batch_get(keys, Some(projection), true).await? {
            let seen: SeenDelivery = parse(item)?;
            found.insert(AttemptKey {
                tenant: seen.tenant_id,
                webhook: seen.webhook_id,
                event: seen.event_id,
                attempt: seen.attempt,
            });
        }
        Ok(found)
    }

    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<(), StoreError> {
        let item = item(RecordItem {
            gsi2pk: keys::webhook_pk(record.webhook_id),
            gsi2sk: record.sort_key(),
            indexed: Indexed {
                pk: keys::event_pk(&record.tenant_id, &record.event_id),
                sk: keys::delivery_sk(record.webhook_id, record.attempt),
                gsi1pk: keys::webhook_pk(record.webhook_id),
                gsi1sk: record.sort_key(),
                attributes: record,
            },
        })?;
        // With the records that end beside it, in one BatchWriteItem.
        self.records
            .write(self.client().await?, &self.table, item)
            .await
    }

    async fn deliveries_to(
        &self,
        tenant: &TenantId,
        event: &EventId,
        webhook: WebhookId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let prefix = format!("{}{webhook}#", keys::DELIVERY_PREFIX);
        let query = self
            .partition(keys::event_pk(tenant, event), prefix)
            .await?;
        query::all(query, parse_record).await
    }

    async fn delivery_samples(
        &self,
        webhook: WebhookId,
        since: &str,
        limit: usize,
    ) -> Result<Samples, StoreError> {
        // The narrow index sorts by attempt time: the window is a key range
        // of small entries (the attempt time is its sort key's first part).
        let query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI2)
            .key_condition_expression("GSI2PK = :pk AND GSI2SK >= :since")
            .expression_attribute_values(":pk", AttributeValue::S(keys::webhook_pk(webhook)))
            .expression_attribute_values(":since", AttributeValue::S(since.to_owned()))
            .projection_expression("GSI2SK, outcome, duration_ms");
        let items = query::newest_first(query, limit, None).await?;
        let more = items.len() > limit;
        let items = items
            .into_iter()
            .take(limit)
            .map(|item| parse::<SampleEntry>(item).map(DeliverySample::from))
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
                let mut key = key(
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
        let reading = Reading::NewestFirst {
            limit,
            max_pages: budget,
        };
        let found = query::read(query, start, reading).await?;
        let resume = found.resume.as_ref().and_then(delivery_cursor_of_key);
        let records = found
            .items
            .into_iter()
            .map(parse_record)
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
}
