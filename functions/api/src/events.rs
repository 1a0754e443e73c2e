//! Catching up and asking again: the tenant's kept events with a summary of
//! their deliveries, and redelivery of an event or of one delivery.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::delivery_log::{DeliveryRecord, parse_delivery_id, sortable_time};
use shared::event::{EventData, EventId};
use shared::event_log::{EventFilter, StoredEvent};
use shared::requeue::Requeue;
use shared::slow_lane::{Target, TargetedMessage};
use shared::store::{Allowance, Store};
use shared::{EventType, Status, TenantId, WebhookId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::views::DeliveryView;
use crate::{ApiError, App, body, pagination, response, webhooks};

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
    received_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<EventData>,
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

#[derive(Serialize)]
struct Queued {
    webhook_id: String,
    attempt: u32,
    delivery_id: String,
}

#[derive(Serialize)]
struct Redelivery<'a> {
    event_id: &'a str,
    queued: Vec<Queued>,
}

fn view<'a>(event: &'a StoredEvent, deliveries: &'a [DeliveryRecord], full: bool) -> EventView<'a> {
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
        timestamp: event.timestamp.format(&Rfc3339).unwrap_or_default(),
        received_at: &event.received_at,
        data: event.payload(),
        data_omitted: event.data_omitted,
        deliveries: summaries,
        attempts: full.then(|| deliveries.iter().map(DeliveryView::new).collect()),
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        code: "invalid_value",
        field: Some(field.to_owned()),
        message,
    }
}

/// `type`, `since` and `until` from the query string (the event list, and
/// the delivery log with its attempt times).
pub(crate) fn filter(req: &Request) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter::default();
    let query = req.uri().query().unwrap_or("");
    let time = |name: &str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
            invalid(
                name,
                format!(
                    "{name}: must be an RFC 3339 time, e.g. 2026-11-25T17:00:00Z (got {value:?})"
                ),
            )
        })
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "type" => {
                filter.event_type = Some(
                    value
                        .parse::<EventType>()
                        .map_err(|e| invalid("type", e.to_string()))?,
                );
            }
            "since" => filter.since = Some(time("since", &value)?),
            "until" => filter.until = Some(time("until", &value)?),
            _ => {}
        }
    }
    Ok(filter)
}

/// `since` before `until`, and a cursor inside that window: DynamoDB refuses
/// a reversed range or a start key outside it (a 500 otherwise).
pub(crate) fn within_window(filter: &EventFilter, cursor: Option<&str>) -> Result<(), ApiError> {
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        return Err(invalid(
            "until",
            "until: must be later than since (the window is since ≤ timestamp < until)".into(),
        ));
    }
    let Some(time) = cursor.and_then(|c| c.split_once('#')).map(|(time, _)| time) else {
        return Ok(());
    };
    let before = filter
        .since
        .is_some_and(|s| time < sortable_time(s).as_str());
    let after = filter
        .until
        .is_some_and(|u| time >= sortable_time(u).as_str());
    if before || after {
        return Err(invalid(
            "cursor",
            "cursor: comes from another since/until window; start again without it".into(),
        ));
    }
    Ok(())
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

pub async fn list<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let filter = filter(req)?;
    let page = pagination::parse(req, |s| valid_event_position(&s).then_some(s))?;
    within_window(&filter, page.after.as_deref())?;
    let mut found = app
        .store
        .list_events(&tenant, &filter, page.limit, page.after)
        .await?;
    cut_to_size(&mut found);
    let deliveries = join_all(
        found
            .items
            .iter()
            .map(|e| app.store.event_with_deliveries(&tenant, &e.id)),
    )
    .await;
    let mut attempts = Vec::with_capacity(deliveries.len());
    for result in deliveries {
        attempts.push(result?.map(|(_, d)| d).unwrap_or_default());
    }
    let list = EventList {
        data: found
            .items
            .iter()
            .zip(&attempts)
            .map(|(e, d)| view(e, d, false))
            .collect(),
        next_cursor: found.next.map(pagination::encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

pub async fn get<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: EventId,
) -> Result<Response<Body>, ApiError> {
    let (event, deliveries) = app
        .store
        .event_with_deliveries(&tenant, &id)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    Ok(response::json(
        StatusCode::OK,
        &view(&event, &deliveries, true),
    ))
}

/// Queues a manual attempt to each of `webhooks` on the slow lane (when
/// there is one): a customer's redeliveries never take the main lane's
/// capacity, and a tenant's budget per minute bounds what it can ask of the
/// slow lane. Each attempt gets a number of its own (101 and up), so it
/// neither cancels nor is cancelled by an automatic retry or another call.
async fn queue<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
    event: &StoredEvent,
    webhooks: Vec<WebhookId>,
) -> Result<Vec<Queued>, ApiError> {
    if matches!(app.requeue, Requeue::Disabled) {
        return Err(ApiError::QueueUnavailable);
    }
    let envelope = event.to_event().ok_or(ApiError::PayloadNotKept)?;
    crate::allowance::take(app, tenant, Allowance::Redeliveries, webhooks.len()).await?;
    let numbers = app
        .store
        .number_manual_attempts(
            tenant,
            &event.id,
            &webhooks,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let targets: Vec<(WebhookId, u32)> = webhooks.into_iter().zip(numbers).collect();
    let messages: Vec<TargetedMessage> = targets
        .iter()
        .map(|&(webhook, attempt)| TargetedMessage {
            target: Target::manual(webhook, attempt),
            event: envelope.clone(),
        })
        .collect();
    let sent = app.requeue.send_now(&messages).await;
    if let Some(Err(e)) = sent.iter().find(|r| r.is_err()) {
        // Some may have gone: they are attempts of their own, each recorded once.
        return Err(ApiError::Internal(format!("queueing a redelivery: {e}")));
    }
    Ok(targets
        .into_iter()
        .map(|(webhook, attempt)| Queued {
            webhook_id: webhook.to_string(),
            attempt,
            delivery_id: format!("{}~{attempt}", event.id),
        })
        .collect())
}

/// Sends a kept event again to every active webhook of the tenant that
/// subscribes to its type, through the dispatcher, as a manual attempt.
pub async fn redeliver_event<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: EventId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    // The event alone: its attempts (50 webhooks × every redelivery) would
    // make each call cost more than the last.
    let event = app
        .store
        .get_event(&tenant, &id)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    if event.data_omitted {
        return Err(ApiError::PayloadNotKept);
    }
    let targets: Vec<WebhookId> = app
        .store
        .webhooks_of(&tenant)
        .await?
        .into_iter()
        .filter(|w| w.status == Status::Active && w.events.contains(event.event_type))
        .map(|w| w.id)
        .collect();
    let queued = queue(app, &tenant, &event, targets).await?;
    let body = Redelivery {
        event_id: event.id.as_str(),
        queued,
    };
    Ok(response::json(StatusCode::ACCEPTED, &body))
}

/// Sends the event of one recorded delivery again, to that webhook only.
pub async fn redeliver_one<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    webhook: WebhookId,
    delivery_id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    // The webhook must be the tenant's: that is what isolates delivery logs.
    webhooks::load(app, &tenant, webhook).await?;
    let (event_id, attempt) = parse_delivery_id(delivery_id).ok_or(ApiError::DeliveryNotFound)?;
    let (event, deliveries) = app
        .store
        .event_with_deliveries(&tenant, &event_id)
        .await?
        .ok_or(ApiError::DeliveryNotFound)?;
    if !deliveries
        .iter()
        .any(|d| d.webhook_id == webhook && d.attempt == attempt)
    {
        return Err(ApiError::DeliveryNotFound);
    }
    if event.data_omitted {
        return Err(ApiError::PayloadNotKept);
    }
    let queued = queue(app, &tenant, &event, vec![webhook]).await?;
    let body = Redelivery {
        event_id: event.id.as_str(),
        queued,
    };
    Ok(response::json(StatusCode::ACCEPTED, &body))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn window(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> EventFilter {
        EventFilter {
            since,
            until,
            ..EventFilter::default()
        }
    }

    fn field(result: Result<(), ApiError>) -> Option<String> {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            _ => None,
        }
    }

    /// Issue 15, item 7: these reached DynamoDB as a reversed BETWEEN or a
    /// start key outside it, which DynamoDB refuses (moto does not).
    #[test]
    fn a_reversed_window_or_a_foreign_cursor_is_a_400() {
        let (t1, t2) = (
            datetime!(2026-11-25 17:00 UTC),
            datetime!(2026-11-26 17:00 UTC),
        );
        assert!(within_window(&window(Some(t1), Some(t2)), None).is_ok());
        assert_eq!(
            field(within_window(&window(Some(t2), Some(t1)), None)).as_deref(),
            Some("until")
        );
        assert_eq!(
            field(within_window(&window(Some(t1), Some(t1)), None)).as_deref(),
            Some("until")
        );
        let inside = format!("{}#evt_1", sortable_time(t1 + time::Duration::hours(1)));
        let early = format!("{}#evt_1", sortable_time(t1 - time::Duration::hours(1)));
        let late = format!("{}#evt_1", sortable_time(t2));
        let both = window(Some(t1), Some(t2));
        assert!(within_window(&both, Some(&inside)).is_ok());
        assert_eq!(
            field(within_window(&both, Some(&early))).as_deref(),
            Some("cursor")
        );
        assert_eq!(
            field(within_window(&both, Some(&late))).as_deref(),
            Some("cursor")
        );
        assert!(within_window(&window(None, None), Some(&early)).is_ok());
    }

    fn events(sizes: &[usize]) -> shared::store::Page<StoredEvent, String> {
        let items = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| StoredEvent {
                id: EventId::parse(&format!("evt_{i}")).unwrap(),
                tenant_id: TenantId::parse("acme").unwrap(),
                event_type: EventType::AsyncCompleted,
                timestamp: datetime!(2026-11-25 17:00 UTC) - time::Duration::minutes(i as i64),
                data: Some("a".repeat(*size)),
                data_omitted: false,
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
        // 26 events of 249 KB: 6.5 MB, over Lambda's 6 MB (issue 15, item 6).
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
