//! Delivery records written together (group commit). The attempts of a
//! fan-out end within milliseconds of each other, and one `BatchWriteItem` of
//! 25 records costs the function about what one `PutItem` does: a request
//! signed, sent and read. A record waits only while an earlier write is in
//! flight, so the first record of a batch is written at once, alone, and the
//! ones that end during that write go out together in the next.
//!
//! `BatchWriteItem` takes no condition: a record written twice (SQS handed
//! the same attempt to two invocations at once) keeps the later write instead
//! of the first. Both are records of the same attempt, made twice.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::future::join_all;
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::write::Rounds;
use crate::store::StoreError;
use crate::store::keys::{PK, SK};

type Item = HashMap<String, AttributeValue>;
/// A record's table key (PK, SK).
type Key = (String, String);
/// Who waits for a record's write.
type Done = oneshot::Sender<Result<(), StoreError>>;
/// The waiters of each record, by key.
type Waiters = HashMap<Key, Vec<Done>>;

/// `BatchWriteItem` takes at most 25 items per request.
const PER_REQUEST: usize = 25;

/// A record waiting to be written, and who waits for it.
struct Pending {
    item: Item,
    done: Done,
}

/// The records of one container waiting for the next write.
#[derive(Default)]
pub(super) struct RecordBatch {
    pending: Mutex<Vec<Pending>>,
    /// Held by the caller writing what is pending; one write at a time.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch").finish_non_exhaustive()
    }
}

fn cancelled() -> StoreError {
    StoreError::Backend("the write carrying this record was cancelled".into())
}

/// The result, if the record's write is over.
fn settled(
    written: &mut oneshot::Receiver<Result<(), StoreError>>,
) -> Option<Result<(), StoreError>> {
    match written.try_recv() {
        Ok(result) => Some(result),
        Err(TryRecvError::Closed) => Some(Err(cancelled())),
        Err(TryRecvError::Empty) => None,
    }
}

impl RecordBatch {
    fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        // A panic while pushing or taking leaves a valid Vec behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `item` (unconditionally) with the records pending beside it;
    /// returns when it is written or its write failed.
    pub async fn write(&self, client: &Client, table: &str, item: Item) -> Result<(), StoreError> {
        let (done, mut written) = oneshot::channel();
        self.pending().push(Pending { item, done });
        let _turn = tokio::select! {
            biased;
            // Another caller's write carried it.
            result = &mut written => return result.unwrap_or_else(|_| Err(cancelled())),
            turn = self.turn.lock() => turn,
        };
        if let Some(result) = settled(&mut written) {
            return result;
        }
        // This record is still pending: write it and everything beside it.
        let batch = std::mem::take(&mut *self.pending());
        write_all(client, table, batch).await;
        settled(&mut written).unwrap_or_else(|| Err(cancelled()))
    }
}

/// A record's table key, to find it again among the unprocessed.
fn key_of(item: &Item) -> Option<Key> {
    match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
            Some((pk.clone(), sk.clone()))
        }
        _ => None,
    }
}

/// Writes the batch in requests of 25, all at once, and tells each waiter
/// how its record fared. A key twice in the batch is written once (a request
/// may not name a key twice); both waiters get that write's result.
async fn write_all(client: &Client, table: &str, batch: Vec<Pending>) {
    let mut by_key: HashMap<Key, (Item, Vec<Done>)> = HashMap::with_capacity(batch.len());
    for Pending { item, done } in batch {
        let Some(key) = key_of(&item) else {
            let _ = done.send(Err(StoreError::Backend(
                "a delivery record without its key".into(),
            )));
            continue;
        };
        by_key
            .entry(key)
            .or_insert_with(|| (item, Vec::new()))
            .1
            .push(done);
    }
    let records: Vec<_> = by_key.into_iter().collect();
    let mut chunks = Vec::with_capacity(records.len().div_ceil(PER_REQUEST));
    let mut rest = records.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(PER_REQUEST).collect::<Vec<_>>());
    }
    join_all(
        chunks
            .into_iter()
            .map(|chunk| write_chunk(client, table, chunk)),
    )
    .await;
}

type Waiting = (Key, (Item, Vec<Done>));

/// One `BatchWriteItem`, sent again for what DynamoDB leaves unprocessed.
async fn write_chunk(client: &Client, table: &str, chunk: Vec<Waiting>) {
    let mut waiters: Waiters = HashMap::with_capacity(chunk.len());
    let mut requests = Vec::with_capacity(chunk.len());
    for (key, (item, done)) in chunk {
        match PutRequest::builder().set_item(Some(item)).build() {
            Ok(put) => {
                requests.push(WriteRequest::builder().put_request(put).build());
                waiters.insert(key, done);
            }
            Err(e) => {
                for d in done {
                    let _ = d.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
    let mut rounds = Rounds::new("BatchWriteItem");
    let failure = loop {
        if requests.is_empty() {
            break None;
        }
        if let Err(e) = rounds.next().await {
            break Some(e);
        }
        let sent = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => break Some(StoreError::Backend(DisplayErrorContext(e).to_string())),
        };
        requests = out
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        // Those written are done now; the unprocessed wait for the next round.
        let left: Vec<Key> = requests
            .iter()
            .filter_map(|r| r.put_request().and_then(|p| key_of(p.item())))
            .collect();
        let written: Vec<Key> = waiters
            .keys()
            .filter(|k| !left.contains(k))
            .cloned()
            .collect();
        for key in written {
            tell(&mut waiters, Some(&key), &Ok(()));
        }
    };
    let result = failure.map_or(Ok(()), Err);
    tell(&mut waiters, None, &result);
}

/// Sends `result` to the waiters of `key` (or of every key left).
fn tell(waiters: &mut Waiters, key: Option<&Key>, result: &Result<(), StoreError>) {
    let done: Vec<_> = match key {
        Some(key) => waiters.remove(key).into_iter().flatten().collect(),
        None => waiters.drain().flat_map(|(_, d)| d).collect(),
    };
    for d in done {
        let _ = d.send(result.clone());
    }
}
