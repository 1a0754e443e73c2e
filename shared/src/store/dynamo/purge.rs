//! Every item of one tenant deleted (`webhooks tenant purge`): the customer
//! has left and its data, identity data among it, must go.
//!
//! A Scan of the whole table, paged, whose filter keeps exactly the
//! tenant's items, projected to their keys, deleted with `BatchWriteItem`
//! (25 keys a request). A Scan rather than the tenant's partitions and
//! indexes because it is complete by construction: it finds items that no
//! listing of the tenant reaches, such as the delivery records of a deleted
//! webhook or of a test event (which has no event item). A run that stops half way leaves
//! only items a second run finds, so it may simply be run again.
//!
//! The tenant's items are those
//! - under `TENANT#<tenant>` (webhooks, counters, budgets, the key set,
//!   recoveries, settings),
//! - under `EVENT#<tenant>#…` (events, their payloads and delivery records:
//!   tenant ids hold no `#`, so the prefix is exactly one tenant's),
//! - under `APIKEY#…` whose `tenant_id` is the tenant (its API keys).
//!
//! Cost: the Scan reads the whole table once, whatever the filter keeps
//! (eventually consistent: half a read unit per 4 KB), and each item
//! deleted is written once: a write unit per KB of the item, and one per
//! KB of each index entry it had (API keys and events are in `GSI1`, events
//! with a subject in `GSI2` too, delivery records in both). The operator's
//! to run, never a function's (they may not Scan).

use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use futures_util::future::try_join_all;

use super::write::Rounds;
use super::{DynamoStore, Item, backend, key};
use crate::TenantId;
use crate::audit::Action;
use crate::store::StoreError;
use crate::store::keys::{self, PK, SK};

/// `BatchWriteItem` takes at most 25 items per request.
const PER_REQUEST: usize = 25;
/// Requests of one page's deletes in flight at once: a page may hold
/// thousands of the tenant's keys, and a burst of hundreds of requests
/// would only be throttled.
const REQUESTS_AT_ONCE: usize = 4;

/// The sort keys of a recovery's item start with it (`keys::recovery_sk`).
const RECOVERY_PREFIX: &str = "RECOVERY#";
/// The sort keys of a tenant's budgets ([`keys::Allowance::sk`]) start
/// with one of these; a test holds them to every allowance.
const BUDGET_PREFIXES: [&str; 4] = ["REDELIVERIES#", "TESTS#", "RECOVERY_CHECKS#", "READS#"];

/// What an item of a tenant is, from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Webhook,
    ApiKey,
    Settings,
    Event,
    Payload,
    Delivery,
    /// A counter of one window of a [`keys::Allowance`].
    Budget,
    Recovery,
    /// An entry of the tenant's audit log.
    Audit,
    /// The tenant's counters (`META`), its key set (`APIKEYS`), and any
    /// item of its partitions of no kind above.
    Other,
}

impl ItemKind {
    /// The kind of the item with this key: the one place that reads kinds
    /// from keys (see [`keys`]).
    pub fn of(pk: &str, sk: &str) -> Self {
        if pk.starts_with(&keys::api_key_pk("")) {
            return ItemKind::ApiKey;
        }
        if pk.starts_with("TENANT#") {
            return match sk {
                keys::SETTINGS_SK => ItemKind::Settings,
                s if s.starts_with(keys::WEBHOOK_PREFIX) => ItemKind::Webhook,
                s if s.starts_with(RECOVERY_PREFIX) => ItemKind::Recovery,
                s if s.starts_with(keys::AUDIT_PREFIX) => ItemKind::Audit,
                s if BUDGET_PREFIXES.iter().any(|p| s.starts_with(p)) => ItemKind::Budget,
                _ => ItemKind::Other,
            };
        }
        if pk.starts_with("EVENT#") {
            return match sk {
                keys::EVENT_SK => ItemKind::Event,
                keys::PAYLOAD_SK => ItemKind::Payload,
                s if s.starts_with(keys::DELIVERY_PREFIX) => ItemKind::Delivery,
                _ => ItemKind::Other,
            };
        }
        ItemKind::Other
    }
}

/// A purge's items by kind: those deleted, or those found when it only
/// counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCounts {
    pub webhooks: u64,
    pub api_keys: u64,
    pub settings: u64,
    pub events: u64,
    pub payloads: u64,
    pub deliveries: u64,
    pub budgets: u64,
    pub recoveries: u64,
    pub audit_entries: u64,
    pub other: u64,
}

impl PurgeCounts {
    pub fn add(&mut self, kind: ItemKind) {
        let n = match kind {
            ItemKind::Webhook => &mut self.webhooks,
            ItemKind::ApiKey => &mut self.api_keys,
            ItemKind::Settings => &mut self.settings,
            ItemKind::Event => &mut self.events,
            ItemKind::Payload => &mut self.payloads,
            ItemKind::Delivery => &mut self.deliveries,
            ItemKind::Budget => &mut self.budgets,
            ItemKind::Recovery => &mut self.recoveries,
            ItemKind::Audit => &mut self.audit_entries,
            ItemKind::Other => &mut self.other,
        };
        *n += 1;
    }

    /// Each kind's name (as an operator reads it) and count, in order.
    pub fn by_kind(&self) -> [(&'static str, u64); 10] {
        [
            ("webhooks", self.webhooks),
            ("api keys", self.api_keys),
            ("settings", self.settings),
            ("events", self.events),
            ("payloads", self.payloads),
            ("deliveries", self.deliveries),
            ("budgets", self.budgets),
            ("recoveries", self.recoveries),
            ("audit log", self.audit_entries),
            ("other", self.other),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

/// Where a purge is, after each page of its Scan (of every segment).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeProgress {
    /// Pages read so far.
    pub pages: u64,
    /// Items of the table read so far, of every tenant.
    pub scanned: u64,
    /// The tenant's items found so far.
    pub found: u64,
    /// The tenant's items deleted so far (0 when it only counts).
    pub deleted: u64,
}

/// How a purge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Delete what the Scan finds; otherwise only count it.
    pub delete: bool,
    /// Segments of the Scan read at once (a parallel Scan), 1 to
    /// [`Self::MAX_SEGMENTS`]: more finish a large table sooner, for the same
    /// read units.
    pub segments: u32,
    /// At most this many items read per page (the Scan's `Limit`): smaller
    /// pages spread the reads thinner. `None`: pages of 1 MB.
    pub page_items: Option<i32>,
}

impl PurgeOptions {
    /// DynamoDB's most segments of a parallel Scan.
    pub const MAX_SEGMENTS: u32 = 1_000_000;

    /// Only counts, one segment, pages of 1 MB.
    pub fn count() -> Self {
        Self {
            delete: false,
            segments: 1,
            page_items: None,
        }
    }

    /// Deletes, one segment, pages of 1 MB.
    pub fn delete() -> Self {
        Self {
            delete: true,
            ..Self::count()
        }
    }
}

/// What the segments of one purge share.
struct Shared<F> {
    progress: PurgeProgress,
    counts: PurgeCounts,
    report: F,
}

/// The scan's filter: the tenant's partition (but the receipts of earlier
/// purges, `tenant.purged` entries of its audit log, which outlive it), its
/// events' partitions, and the API keys whose `tenant_id` is the tenant.
const FILTER: &str = "(PK = :tenant AND NOT (begins_with(SK, :audit) AND #action = :purged)) \
                      OR begins_with(PK, :events) \
                      OR (begins_with(PK, :keys) AND tenant_id = :tenant_id)";

/// The start of the partition key of each of the tenant's events: with the
/// `#` that ends the tenant id, so that `acme` does not take `acme2`'s.
fn events_prefix(tenant: &TenantId) -> String {
    format!("EVENT#{tenant}#")
}

impl DynamoStore {
    /// Deletes every item of `tenant` (with `options.delete`; otherwise only
    /// counts them), and returns them by kind. `progress` is told after each
    /// page of the Scan. Safe to run again: a run that stopped half way
    /// left only items the next one finds. Items the tenant's traffic
    /// writes meanwhile may be missed: the next run finds them.
    pub async fn purge_tenant(
        &self,
        tenant: &TenantId,
        options: PurgeOptions,
        progress: impl FnMut(&PurgeProgress),
    ) -> Result<PurgeCounts, StoreError> {
        if !(1..=PurgeOptions::MAX_SEGMENTS).contains(&options.segments) {
            return Err(StoreError::Backend(format!(
                "a Scan has 1 to {} segments, not {}",
                PurgeOptions::MAX_SEGMENTS,
                options.segments
            )));
        }
        let shared = Mutex::new(Shared {
            progress: PurgeProgress::default(),
            counts: PurgeCounts::default(),
            report: progress,
        });
        let segments = (0..options.segments)
            .map(|segment| self.purge_segment(tenant, options, segment, &shared));
        try_join_all(segments).await?;
        let shared = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(shared.counts)
    }

    /// One segment of a purge's Scan, page after page.
    async fn purge_segment<F: FnMut(&PurgeProgress)>(
        &self,
        tenant: &TenantId,
        options: PurgeOptions,
        segment: u32,
        shared: &Mutex<Shared<F>>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        // Segment numbers are at most MAX_SEGMENTS, well within an i32.
        let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let (segment, total) = if options.segments > 1 {
            (Some(as_i32(segment)), Some(as_i32(options.segments)))
        } else {
            (None, None)
        };
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(self.table())
                .filter_expression(FILTER)
                .projection_expression("PK, SK")
                .expression_attribute_values(":tenant", AttributeValue::S(keys::tenant_pk(tenant)))
                .expression_attribute_values(":events", AttributeValue::S(events_prefix(tenant)))
                .expression_attribute_values(":keys", AttributeValue::S(keys::api_key_pk("")))
                .expression_attribute_values(":tenant_id", AttributeValue::S(tenant.to_string()))
                .expression_attribute_values(":audit", AttributeValue::S(keys::AUDIT_PREFIX.into()))
                .expression_attribute_names("#action", "action")
                .expression_attribute_values(
                    ":purged",
                    AttributeValue::S(Action::TenantPurged.as_str().into()),
                )
                .set_limit(options.page_items)
                .set_segment(segment)
                .set_total_segments(total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            let found = page
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|item| key_of(&item))
                .collect::<Result<Vec<_>, _>>()?;
            if options.delete {
                self.delete_all(client, &found).await?;
            }
            {
                let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let Shared {
                    progress,
                    counts,
                    report,
                } = &mut *shared;
                for (pk, sk) in &found {
                    counts.add(ItemKind::of(pk, sk));
                }
                let n = found.len() as u64;
                progress.pages += 1;
                progress.scanned += u64::try_from(page.scanned_count).unwrap_or(0);
                progress.found += n;
                if options.delete {
                    progress.deleted += n;
                }
                report(progress);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(());
            }
        }
    }

    /// Deletes the items with these keys, 25 to a request, a few requests
    /// at once.
    async fn delete_all(
        &self,
        client: &Client,
        found: &[(String, String)],
    ) -> Result<(), StoreError> {
        let requests = found
            .iter()
            .map(|(pk, sk)| {
                DeleteRequest::builder()
                    .set_key(Some(key(pk.clone(), sk.clone())))
                    .build()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
                    .map_err(backend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batches: Vec<_> = requests.chunks(PER_REQUEST).collect();
        for at_once in batches.chunks(REQUESTS_AT_ONCE) {
            try_join_all(
                at_once
                    .iter()
                    .map(|batch| delete_batch(client, self.table(), batch.to_vec())),
            )
            .await?;
        }
        Ok(())
    }
}

/// One `BatchWriteItem` of deletes, sent again (after a growing pause) for
/// what DynamoDB leaves unprocessed. Deleting an item that is gone already
/// (its TTL, or a run before) is no error.
async fn delete_batch(
    client: &Client,
    table: &str,
    mut requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    let mut rounds = Rounds::new("BatchWriteItem");
    while !requests.is_empty() {
        rounds.next().await?;
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(backend)?;
        requests = out
            .unprocessed_items
            .and_then(|mut left| left.remove(table))
            .unwrap_or_default();
    }
    Ok(())
}

/// A scanned item's key (the Scan projects nothing else).
fn key_of(item: &Item) -> Result<(String, String), StoreError> {
    match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Ok((pk.clone(), sk.clone())),
        _ => Err(StoreError::Backend(
            "the Scan returned an item without a string PK and SK".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebhookId;
    use crate::event::EventId;
    use crate::store::Allowance;

    #[test]
    fn kinds_follow_the_key_design() {
        let t = TenantId::parse("acme").unwrap();
        let wh = WebhookId::generate();
        let evt = EventId::parse("evt_1").unwrap();
        let tenant = keys::tenant_pk(&t);
        let event = keys::event_pk(&t, &evt);
        let cases = [
            (tenant.clone(), keys::webhook_sk(wh), ItemKind::Webhook),
            (tenant.clone(), keys::SETTINGS_SK.into(), ItemKind::Settings),
            (tenant.clone(), keys::META_SK.into(), ItemKind::Other),
            (tenant.clone(), keys::API_KEY_SET_SK.into(), ItemKind::Other),
            (tenant.clone(), keys::recovery_sk(wh), ItemKind::Recovery),
            (
                tenant.clone(),
                keys::audit_sk(crate::audit::AuditId::first_at(
                    time::OffsetDateTime::UNIX_EPOCH,
                )),
                ItemKind::Audit,
            ),
            (
                keys::api_key_pk("ab12"),
                keys::API_KEY_SK.into(),
                ItemKind::ApiKey,
            ),
            (event.clone(), keys::EVENT_SK.into(), ItemKind::Event),
            (event.clone(), keys::PAYLOAD_SK.into(), ItemKind::Payload),
            (event.clone(), keys::delivery_sk(wh, 3), ItemKind::Delivery),
            (event, "SOMETHING".into(), ItemKind::Other),
        ];
        for (pk, sk, kind) in cases {
            assert_eq!(ItemKind::of(&pk, &sk), kind, "{pk} / {sk}");
        }
        for allowance in [
            Allowance::Redeliveries,
            Allowance::TestEvents,
            Allowance::RecoveryChecks,
            Allowance::CostlyReads,
        ] {
            // A new allowance fails to compile here until it is listed above.
            match allowance {
                Allowance::Redeliveries
                | Allowance::TestEvents
                | Allowance::RecoveryChecks
                | Allowance::CostlyReads => {}
            }
            let sk = allowance.sk(29_000_000);
            assert_eq!(ItemKind::of(&tenant, &sk), ItemKind::Budget, "{sk}");
        }
    }

    #[test]
    fn the_events_prefix_is_one_tenant_s() {
        let acme = TenantId::parse("acme").unwrap();
        let acme2 = TenantId::parse("acme2").unwrap();
        let evt = EventId::parse("evt_1").unwrap();
        assert!(keys::event_pk(&acme, &evt).starts_with(&events_prefix(&acme)));
        assert!(!keys::event_pk(&acme2, &evt).starts_with(&events_prefix(&acme)));
    }

    #[test]
    fn counts_add_up_by_kind() {
        let mut counts = PurgeCounts::default();
        for kind in [ItemKind::Delivery, ItemKind::Delivery, ItemKind::ApiKey] {
            counts.add(kind);
        }
        assert_eq!(counts.deliveries, 2);
        assert_eq!(counts.api_keys, 1);
        assert_eq!(counts.total(), 3);
    }
}
