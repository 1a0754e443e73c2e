//! `/events`: the tenant's kept events with a summary of their deliveries
//! (all, or one job's by its subject), one event with every attempt, an
//! event sent again to every webhook that subscribes to it, and the
//! deletion of payloads: one event's, or every event's of a subject.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::audit::{self, Author};
use shared::delivery_log::DeliveryRecord;
use shared::event::{EventData, EventId, Subject};
use shared::event_log::{PayloadState, StoredEvent};
use shared::store::{Allowance, AllowanceStore, EventStore, Store};
use shared::{EventType, Status, TenantId, WebhookId};
use time::OffsetDateTime;

use crate::pagination::encode_cursor;
use crate::query::{Query, within_window};
use crate::views::DeliveryView;
use crate::{ApiError, App, allowance, body, redeliver, response, rfc3339};

/// Where one webhook stands with one event: its latest attempt.
#[derive(Serialize)]
struct DeliverySummary<'a> {
    webhook_id: String,
    attempts: u32,
    last_outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_status: Option<u16>,
    last_attempted_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<&'a str>,
    exhausted: bool,
}

#[derive(Serialize)]
struct EventView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: EventType,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    received_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<EventData>,
    /// Why there is `data`, or why not.
    payload: &'static str,
    /// Kept for clients that read it: `payload` is `too_large`.
    data_omitted: bool,
    deliveries: Vec<DeliverySummary<'a>>,
    /// Every attempt, on `GET /events/{id}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<Vec<DeliveryView<'a>>>,
}

#[derive(Serialize)]
struct EventList<'a> {
    data: Vec<EventView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn view<'a>(
    event: &'a StoredEvent,
    deliveries: &'a [DeliveryRecord],
    full: bool,
    now: i64,
) -> EventView<'a> {
    // Attempts come ordered by webhook, then attempt: the last of each run is the latest.
    let mut latest: BTreeMap<WebhookId, &DeliveryRecord> = BTreeMap::new();
    for record in deliveries {
        let newer = latest
            .get(&record.webhook_id)
            .is_none_or(|r| r.attempt < record.attempt);
        if newer {
            latest.insert(record.webhook_id, record);
        }
    }
    let summaries = latest
        .values()
        .map(|r| DeliverySummary {
            webhook_id: r.webhook_id.to_string(),
            attempts: u32::try_from(
                deliveries
                    .iter()
                    .filter(|d| d.webhook_id == r.webhook_id)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            last_outcome: r.outcome.as_str(),
            last_status: r.status,
            last_attempted_at: &r.attempted_at,
            next_attempt_at: r.next_attempt_at.as_deref(),
            exhausted: r.exhausted,
        })
        .collect();
    EventView {
        id: event.id.as_str(),
        event_type: event.event_type,
        timestamp: rfc3339::format(event.timestamp),
        subject: event.subject.as_ref().map(Subject::as_str),
        received_at: &event.received_at,
        data: event.payload(now),
        payload: event.payload_state(now).as_str(),
        data_omitted: event.payload_state(now) == PayloadState::TooLarge,
        deliveries: summaries,
        attempts: full.then(|| deliveries.iter().map(DeliveryView::new).collect()),
    }
}

/// An event cursor is `<timestamp>#<event id>`.
fn valid_event_position(position: &str) -> bool {
    position.split_once('#').is_some_and(|(time, event)| {
        time.len() == 27 && time.ends_with('Z') && EventId::parse(event).is_ok()
    })
}

/// The most a page of `GET /events` carries of event data: Lambda's
/// response limit is 6 MB, and 100 events of up to 350 KB each would be
/// 35 MB. A page that would be larger ends early, with a cursor.
pub const MAX_PAGE_DATA_BYTES: usize = 4 * 1024 * 1024;

/// Cuts the page after the last event that keeps its data within
/// [`MAX_PAGE_DATA_BYTES`] (always at least one: one event's data is at most
/// 350 KB); the cursor then points after it.
fn cut_to_size(found: &mut shared::store::Page<StoredEvent, String>) {
    let mut total = 0;
    let keep = found
        .items
        .iter()
        .take_while(|e| {
            total += e.data.as_ref().map_or(0, String::len);
            total <= MAX_PAGE_DATA_BYTES
        })
        .count()
        .max(1);
    if keep < found.items.len() {
        found.items.truncate(keep);
        found.next = found.items.last().map(StoredEvent::sort_key);
    }
}

/// `GET /events`: the tenant's kept events, newest first, a page at a time;
/// with `subject`, one job's, from an index of their own.
pub async fn list<S: EventStore + AllowanceStore>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let filter = query.events()?;
    let page = query.page(|s| valid_event_position(&s).then_some(s))?;
    within_window(&filter, page.after.as_deref())?;
    if filter.event_type.is_some() && filter.subject.is_none() {
        // Read event by event, up to several pages: a costly read.
        allowance::take(app, &tenant, Allowance::CostlyReads, 1).await?;
    }
    let listed = app
        .store
        .list_events(&tenant, &filter, page.limit, page.after)
        .await?;
    // Each event's partition: its payload and its deliveries, in one query.
    let read = join_all(
        listed
            .items
            .iter()
            .map(|e| app.store.event_with_deliveries(&tenant, &e.id)),
    )
    .await;
    let mut events = Vec::with_capacity(read.len());
    let mut attempts = Vec::with_capacity(read.len());
    for (listed, result) in listed.items.into_iter().zip(read) {
        // Gone since it was listed (TTL): listed as it was, without data.
        let (event, deliveries) = result?.unwrap_or((listed, Vec::new()));
        events.push(event);
        attempts.push(deliveries);
    }
    let mut found = shared::store::Page {
        items: events,
        next: listed.next,
    };
    cut_to_size(&mut found);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let list = EventList {
        data: found
            .items
            .iter()
            .zip(&attempts)
            .map(|(e, d)| view(e, d, false, now))
            .collect(),
        next_cursor: found.next.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

/// `GET /events/{id}`: one event, with every attempt of it.
pub async fn get<S: EventStore>(
    app: &App<S>,
    tenant: TenantId,
    id: EventId,
) -> Result<Response<Body>, ApiError> {
    let (event, deliveries) = app
        .store
        .event_with_deliveries(&tenant, &id)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Ok(response::json(
        StatusCode::OK,
        &view(&event, &deliveries, true, now),
    ))
}

/// `DELETE /events/{id}/payload`: the event's data goes from every item
/// and index that held it; the event stays listed with its deliveries,
/// `payload: deleted`. 204, also when it was gone already.
pub async fn delete_payload<S: EventStore>(
    app: &App<S>,
    author: &Author,
    id: EventId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    let tenant = &author.tenant;
    let entry = audit::payload_deleted(tenant, &id, None, &author.actor);
    if !app.store.delete_payload(tenant, &id, &entry).await? {
        return Err(ApiError::EventNotFound);
    }
    tracing::info!(tenant_id = %tenant, event_id = %id, "event payload deleted");
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// What erasing a subject's payloads found.
#[derive(Serialize)]
struct Erased<'a> {
    subject: &'a str,
    /// The tenant's events of this subject, each now without data.
    events: u64,
}

/// `DELETE /subjects/{subject}/payloads`: the payload of every event of one
/// job (one person's check produces several), as `DELETE
/// /events/{id}/payload` does for one, each with its audit entry. 200 with
/// how many events it found.
pub async fn erase_subject<S: EventStore>(
    app: &App<S>,
    author: &Author,
    subject: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    let tenant = &author.tenant;
    let subject =
        Subject::parse(subject).map_err(|e| ApiError::invalid("subject", e.to_string()))?;
    let events = app
        .store
        .delete_subject_payloads(tenant, &subject, &author.actor)
        .await?;
    tracing::info!(tenant_id = %tenant, events, "subject payloads deleted");
    Ok(response::json(
        StatusCode::OK,
        &Erased {
            subject: subject.as_str(),
            events,
        },
    ))
}

/// `POST /events/{id}/redeliver`: sends a kept event again to every active
/// webhook of the tenant that subscribes to its type, through the
/// dispatcher, as a manual attempt.
pub async fn redeliver_event<S: Store>(
    app: &App<S>,
    author: &Author,
    id: EventId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    let tenant = &author.tenant;
    // The event alone: its attempts (50 webhooks × every redelivery) would
    // make each call cost more than the last.
    let event = app
        .store
        .get_event(tenant, &id)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let targets: Vec<WebhookId> = app
        .store
        .webhooks_of(tenant)
        .await?
        .into_iter()
        .filter(|w| w.status == Status::Active && w.events.contains(event.event_type))
        .map(|w| w.id)
        .collect();
    redeliver::queue(app, author, &event, targets).await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn events(sizes: &[usize]) -> shared::store::Page<StoredEvent, String> {
        let items = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| StoredEvent {
                id: EventId::parse(&format!("evt_{i}")).unwrap(),
                tenant_id: TenantId::parse("acme").unwrap(),
                event_type: EventType::AsyncCompleted,
                timestamp: datetime!(2026-11-25 17:00 UTC) - time::Duration::minutes(i as i64),
                subject: None,
                data: Some("a".repeat(*size)),
                data_omitted: false,
                payload: PayloadState::Kept,
                payload_expires_at: None,
                received_at: "2026-11-25T17:00:00.000000Z".into(),
                expires_at: 0,
            })
            .collect();
        shared::store::Page {
            items,
            next: Some("the store's cursor".into()),
        }
    }

    #[test]
    fn a_page_is_cut_before_its_data_passes_the_bound() {
        const KIB: usize = 1024;
        // 26 events of 249 KB: 6.5 MB, over Lambda's 6 MB response limit.
        let mut page = events(&[249 * KIB; 26]);
        cut_to_size(&mut page);
        assert_eq!(page.items.len(), 16);
        assert_eq!(page.next, page.items.last().map(StoredEvent::sort_key));
        // Within the bound: untouched, the store's cursor kept.
        let mut small = events(&[KIB; 100]);
        cut_to_size(&mut small);
        assert_eq!(small.items.len(), 100);
        assert_eq!(small.next.as_deref(), Some("the store's cursor"));
        // Never empty: one event always goes out.
        let mut huge = events(&[5 * 1024 * KIB, KIB]);
        cut_to_size(&mut huge);
        assert_eq!(huge.items.len(), 1);
    }
}
