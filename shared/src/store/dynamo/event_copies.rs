//! The copies of a batch's new events, kept in one request. Each copy is
//! written only if its event has none yet (the first copy stays, and a
//! redelivered message learns that its event was seen before), and
//! `BatchWriteItem` takes no condition, so the copies of a batch go in one
//! `TransactWriteItems`: one request signed, sent and read instead of one
//! `PutItem` per event. A copy whose payload is kept is two items, the
//! event's and its payload's, written together on the event's condition
//! (a payload deleted or expired never comes back with a repeated
//! message). DynamoDB bills each item of a transaction twice, so a single
//! item still goes alone as a `PutItem`.
//!
//! A transaction fails whole when one condition fails: the copies whose
//! event was kept before are named in the cancellation's reasons, and the
//! others are sent again without them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::events::{event_item, payload_item};
use super::{DynamoStore, Item};
use crate::event_log::StoredEvent;
use crate::store::{Kept, StoreError};

/// What one transaction did to each copy it carried.
enum Round {
    /// Every copy written.
    Written,
    /// Cancelled: for each copy, whether its event was kept before (`true`)
    /// or the copy was only cancelled with the others (`false`).
    Cancelled(Vec<bool>),
}

/// A transaction holds at most 100 items, two per event; a batch of the
/// main lane is 10 events.
const PER_TRANSACTION: usize = 50;

/// Transactions cancelled without naming a kept copy (a conflict with a
/// concurrent write, throttling) are sent again this many times at most.
const MAX_FRUITLESS: u32 = 4;

impl DynamoStore {
    /// Keeps each event (see [`EventStore::put_event`]), the batch's copies
    /// in one request; one result per event, in order. An event twice in
    /// `events` is written once: its later places are told `Before`, or the
    /// first place's error when that write failed.
    pub(super) async fn put_event_copies(
        &self,
        events: &[StoredEvent],
    ) -> Vec<Result<Kept, StoreError>> {
        let mut results: Vec<Option<Result<Kept, StoreError>>> = vec![None; events.len()];
        // Where each event is first in the batch; a later place waits for it.
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
        let mut again = Vec::new();
        let mut unique = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            match first.entry((event.tenant_id.as_str(), event.id.as_str())) {
                Entry::Vacant(place) => {
                    place.insert(i);
                    unique.push((i, event));
                }
                Entry::Occupied(place) => again.push((i, *place.get())),
            }
        }
        for chunk in unique.chunks(PER_TRANSACTION) {
            for (i, result) in self.put_chunk(chunk.to_vec()).await {
                results[i] = Some(result);
            }
        }
        // Written by its first place: `Before` here; not written: the same error.
        for (i, first) in again {
            results[i] = match &results[first] {
                Some(Ok(_)) => Some(Ok(Kept::Before)),
                other => other.clone(),
            };
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("a copy was not written".into()))))
            .collect()
    }

    /// One chunk's copies: a transaction, sent again without the copies
    /// whose event was kept before, until none is left.
    async fn put_chunk(
        &self,
        mut pending: Vec<(usize, &StoredEvent)>,
    ) -> Vec<(usize, Result<Kept, StoreError>)> {
        let mut done = Vec::with_capacity(pending.len());
        let mut fruitless = 0;
        while !pending.is_empty() {
            if let [(i, event)] = pending[..]
                && event.data.is_none()
            {
                let put = match event_item(event) {
                    Ok(item) => self.put_new(item).await,
                    Err(e) => Err(e),
                };
                done.push((i, put));
                break;
            }
            let round = self.transaction(&pending).await;
            match round {
                Ok(Round::Written) => {
                    done.extend(pending.drain(..).map(|(i, _)| (i, Ok(Kept::New))));
                }
                Ok(Round::Cancelled(before)) => {
                    if !before.contains(&true) {
                        fruitless += 1;
                        if fruitless > MAX_FRUITLESS {
                            let e = StoreError::Backend(
                                "TransactWriteItems was cancelled again and again".into(),
                            );
                            done.extend(pending.drain(..).map(|(i, _)| (i, Err(e.clone()))));
                            break;
                        }
                        crate::random::pause(10 * u64::from(fruitless), 20).await;
                    }
                    let mut again = Vec::with_capacity(pending.len());
                    for ((i, event), kept_before) in pending.drain(..).zip(before) {
                        if kept_before {
                            done.push((i, Ok(Kept::Before)));
                        } else {
                            again.push((i, event));
                        }
                    }
                    pending = again;
                }
                Err(e) => done.extend(pending.drain(..).map(|(i, _)| (i, Err(e.clone())))),
            }
        }
        done
    }

    /// One `TransactWriteItems` of `pending`'s copies, each on the
    /// condition that its event has none yet.
    async fn transaction(&self, pending: &[(usize, &StoredEvent)]) -> Result<Round, StoreError> {
        let client = self.client().await?;
        let mut writes = Vec::with_capacity(pending.len() * 2);
        // The place in `pending` of each event's own item.
        let mut event_items = Vec::with_capacity(pending.len());
        for (_, event) in pending {
            event_items.push(writes.len());
            writes.push(put(&self.table, event_item(event)?, true)?);
            if let Some(payload) = payload_item(event) {
                writes.push(put(&self.table, payload, false)?);
            }
        }
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        let Err(e) = sent else {
            return Ok(Round::Written);
        };
        match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c))
                if c.cancellation_reasons().len() > event_items.last().copied().unwrap_or(0) =>
            {
                let reasons = c.cancellation_reasons();
                Ok(Round::Cancelled(
                    event_items
                        .iter()
                        .map(|&i| reasons[i].code() == Some("ConditionalCheckFailed"))
                        .collect(),
                ))
            }
            _ => Err(StoreError::Backend(DisplayErrorContext(e).to_string())),
        }
    }
}

/// A transaction's put of `item`; `first` only if no item has its key.
fn put(table: &str, item: Item, first: bool) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(first.then(|| "attribute_not_exists(PK)".to_owned()))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}
