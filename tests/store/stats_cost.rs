//! What a webhook's stats cost to read, from the items as DynamoDB holds
//! them: each index entry is sized by DynamoDB's documented rules (names
//! and values in bytes, numbers by their digits, 100 bytes per index
//! entry), and a Query's read units are its entries' total in 4 KB steps,
//! half a unit each (eventually consistent).
//!
//! `scripts/test -p webhooks-tests --test it stats_cost -- --nocapture`
//! prints the figures the docs quote.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::delivery::{Attempt, Outcome};
use shared::delivery_log::DeliveryRecord;
use shared::event::EventId;
use shared::store::DynamoStore;
use shared::store::keys;
use shared::store::prelude::*;
use shared::{EventType, TenantId};
use testkit::fresh_store;

use super::webhook;

/// DynamoDB's size of one attribute value.
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        // One byte per two significant digits, plus one.
        AttributeValue::N(n) => {
            let digits = n.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').trim_end_matches('0');
            significant.len().max(1).div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(map) => 3 + item_size(map) + map.len(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(n) => n.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

/// DynamoDB's size of an item: its attributes' names and values.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// An index entry's size: what it holds, and 100 bytes of overhead.
fn entry_size(entry: &HashMap<String, AttributeValue>) -> usize {
    item_size(entry) + 100
}

/// Read units of a Query that reads `n` entries of `size` bytes, eventually
/// consistent, in pages of 1 MB.
fn read_units(n: usize, size: usize) -> f64 {
    let per_page = 1_048_576 / size;
    let mut units = 0.0;
    let mut left = n;
    while left > 0 {
        let here = left.min(per_page);
        units += ((here * size).div_ceil(4096)) as f64 / 2.0;
        left -= here;
    }
    units
}

async fn entries(
    store: &DynamoStore,
    index: &str,
    pk: &str,
    partition: String,
) -> Vec<HashMap<String, AttributeValue>> {
    store
        .client()
        .await
        .unwrap()
        .query()
        .table_name(store.table())
        .index_name(index)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", pk)
        .expression_attribute_values(":pk", AttributeValue::S(partition))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

/// The records of the review: a 302 with a 2 KB `Location` and a 1 KB
/// body, and a plain 200. The stats' index holds each in about 0.3 KB,
/// whatever the record holds: 5,000 records cost at most 200 read units
/// where the log's index cost about 2,200.
#[tokio::test]
async fn the_stats_read_small_entries_whatever_the_records_hold() {
    let store = fresh_store().await;
    let w = webhook("acme");
    let tenant = TenantId::parse("acme").unwrap();
    let mut redirect = Attempt::bare(Outcome::Redirect, Some(302), 4_999);
    redirect.location = Some(format!(
        "https://elsewhere.example.com/{}",
        "a".repeat(2_000)
    ));
    redirect.response_excerpt = Some("b".repeat(Attempt::EXCERPT_BYTES));
    redirect.error = Some("redirect refused".into());
    let mut ok = Attempt::bare(Outcome::Delivered, Some(200), 87);
    ok.response_excerpt = Some("ok".into());
    let mut sizes = Vec::new();
    for (n, attempt) in [redirect, ok].into_iter().enumerate() {
        let record = DeliveryRecord::new(
            tenant.clone(),
            w.id,
            EventId::parse(&format!("evt_01KBSTATSCOST00000000000{n}")).unwrap(),
            EventType::AsyncCompleted,
            shared::webhook::now_utc(),
            attempt,
            30,
        );
        store.record_delivery(&record).await.unwrap();
        let pk = keys::webhook_pk(w.id);
        let log = entries(&store, keys::GSI1, keys::GSI1PK, pk.clone()).await;
        let stats = entries(&store, keys::GSI2, keys::GSI2PK, pk).await;
        // Each index's entry of this record (its table key names the event).
        let of_record = |all: &[HashMap<String, AttributeValue>]| {
            all.iter()
                .find(|e| {
                    e[keys::PK]
                        .as_s()
                        .is_ok_and(|pk| pk.ends_with(record.event_id.as_str()))
                })
                .cloned()
                .unwrap()
        };
        let (log, stats) = (of_record(&log), of_record(&stats));
        // The stats' index holds keys, outcome and duration: nothing else.
        let mut held: Vec<&str> = stats.keys().map(String::as_str).collect();
        held.sort_unstable();
        assert_eq!(
            held,
            ["GSI2PK", "GSI2SK", "PK", "SK", "duration_ms", "outcome"]
        );
        sizes.push((entry_size(&log), entry_size(&stats)));
    }
    for ((log, stats), what) in sizes.iter().zip(["302, 2 KB Location, 1 KB body", "200"]) {
        let (before, after) = (read_units(5_000, *log), read_units(5_000, *stats));
        println!(
            "{what}: log index entry {log} B, stats index entry {stats} B; \
             5,000 records: {before} read units before, {after} now"
        );
        assert!(*stats <= 400, "a stats entry of {stats} B");
        assert!(after <= 250.0, "{after} read units");
    }
    let (worst_log, worst_stats) = sizes[0];
    assert!(
        read_units(5_000, worst_log) >= 8.0 * read_units(5_000, worst_stats),
        "{sizes:?}"
    );
}

/// A record written before the stats' index (no `GSI2PK`) is not in the
/// stats until `webhooks upgrade` indexes it; a second upgrade changes
/// nothing.
#[tokio::test]
async fn the_upgrade_puts_older_records_in_the_stats() {
    let store = fresh_store().await;
    let w = webhook("acme");
    let now = shared::webhook::now_utc();
    let record = DeliveryRecord::new(
        TenantId::parse("acme").unwrap(),
        w.id,
        EventId::parse("evt_01KBSTATSLEGACY0000000000").unwrap(),
        EventType::AsyncCompleted,
        now,
        Attempt::bare(Outcome::Delivered, Some(200), 12),
        30,
    );
    store.record_delivery(&record).await.unwrap();
    store
        .client()
        .await
        .unwrap()
        .update_item()
        .table_name(store.table())
        .key(
            keys::PK,
            AttributeValue::S(keys::event_pk(&record.tenant_id, &record.event_id)),
        )
        .key(
            keys::SK,
            AttributeValue::S(keys::delivery_sk(w.id, record.attempt)),
        )
        .update_expression("REMOVE GSI2PK, GSI2SK")
        .send()
        .await
        .unwrap();
    let since = shared::delivery_log::sortable_time(now - time::Duration::hours(1));
    let samples = || store.delivery_samples(w.id, &since, 10);
    assert!(samples().await.unwrap().items.is_empty(), "not indexed yet");

    let done = store.upgrade().await.unwrap();
    assert_eq!(done.records_indexed, 1);
    let found = samples().await.unwrap().items;
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].attempted_at.as_str(), found[0].duration_ms),
        (record.attempted_at.as_str(), 12)
    );
    assert_eq!(store.upgrade().await.unwrap().records_indexed, 0);
}
