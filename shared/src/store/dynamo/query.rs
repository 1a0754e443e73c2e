//! The one pagination loop: every query of the store reads through it.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::{Item, backend};
use crate::store::{Page, StoreError};

/// A filtered list (`GET /events?type=`, a filtered delivery log) reads at
/// most this many Query pages per request (each evaluates at most
/// `limit + 1` items and 1 MB): a rare type on a large tenant then answers
/// with a short page and a cursor instead of reading until the function
/// times out.
pub const MAX_FILTERED_PAGES: usize = 5;

/// What a read found, and where to resume when it stopped at its page
/// budget before it had all it wanted.
pub(super) struct Found {
    pub items: Vec<Item>,
    pub resume: Option<Item>,
}

/// How much a read takes.
#[derive(Clone, Copy)]
pub(super) enum Reading {
    /// Every item, in the query's own order.
    All,
    /// Newest first (the sort key descending), `limit + 1` items at most
    /// (one more than asked tells whether another page exists, so the last
    /// page never hands out a cursor to an empty page), from at most
    /// `max_pages` requests.
    NewestFirst { limit: usize, max_pages: usize },
}

/// Reads `query` from `start`, page after page, as `reading` says.
pub(super) async fn read(
    query: QueryFluentBuilder,
    mut start: Option<Item>,
    reading: Reading,
) -> Result<Found, StoreError> {
    let (want, max_pages, query) = match reading {
        Reading::All => (usize::MAX, usize::MAX, query),
        Reading::NewestFirst { limit, max_pages } => (
            limit.saturating_add(1),
            max_pages,
            query.scan_index_forward(false),
        ),
    };
    let mut items = Vec::with_capacity(want.min(1_000));
    let mut pages = 0;
    loop {
        let mut request = query.clone().set_exclusive_start_key(start.take());
        if want != usize::MAX {
            request = request.limit(i32::try_from(want - items.len()).unwrap_or(i32::MAX));
        }
        let out = request.send().await.map_err(backend)?;
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        pages += 1;
        if items.len() >= want || start.is_none() {
            return Ok(Found {
                items,
                resume: None,
            });
        }
        if pages >= max_pages {
            return Ok(Found {
                items,
                resume: start,
            });
        }
    }
}

/// Every item `query` finds, each mapped by `parse`.
pub(super) async fn all<T>(
    query: QueryFluentBuilder,
    parse: impl Fn(Item) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    read(query, None, Reading::All)
        .await?
        .items
        .into_iter()
        .map(parse)
        .collect()
}

/// Up to `limit + 1` items newest first, however many pages that takes.
pub(super) async fn newest_first(
    query: QueryFluentBuilder,
    limit: usize,
    start: Option<Item>,
) -> Result<Vec<Item>, StoreError> {
    let reading = Reading::NewestFirst {
        limit,
        max_pages: usize::MAX,
    };
    Ok(read(query, start, reading).await?.items)
}

/// Cuts the extra item off and turns the last kept one into the cursor.
pub(super) fn page<T, C>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> C) -> Page<T, C> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next }
}
