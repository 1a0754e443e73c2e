//! A webhook's delivery log: its attempts, filtered and a page at a time,
//! and one attempt's event sent again to the webhook.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::audit::Author;
use shared::delivery_log::{DeliveryCursor, DeliveryFilter, parse_delivery_id};
use shared::store::{Allowance, AllowanceStore, DeliveryStore, EventStore};
use shared::{TenantId, WebhookId};

use crate::pagination::encode_cursor;
use crate::query::{Query, within_window};
use crate::views::{DeliveryList, DeliveryView};
use crate::{ApiError, App, allowance, body, redeliver, response};

/// `GET /webhooks/{id}/deliveries`: the attempts to the webhook, newest
/// first; `type`, `since`, `until` and `outcome` filter them.
pub async fn list<S: DeliveryStore + AllowanceStore>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    // A cursor names its tenant: another tenant's cursor is not one.
    let page = query.page(|s| {
        DeliveryCursor::parse(&s)
            .filter(|c| c.tenant_id == tenant)
            .map(|_| s)
    })?;
    let window = query.events()?;
    within_window(&window, page.after.as_deref())?;
    let filter = DeliveryFilter {
        outcome: query.outcome()?,
        event_type: window.event_type,
        since: window.since,
        until: window.until,
    };
    if filter.has_values() {
        // Read record by record, up to several pages: a costly read.
        allowance::take(app, &tenant, Allowance::CostlyReads, 1).await?;
    }
    let found = app
        .store
        .list_deliveries(id, &filter, page.limit, page.after)
        .await?;
    let list = DeliveryList {
        data: found.items.iter().map(DeliveryView::new).collect(),
        next_cursor: found.next.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

/// `POST /webhooks/{id}/deliveries/{delivery_id}/redeliver`: sends the
/// event of one recorded attempt again, to this webhook only.
pub async fn redeliver<S: EventStore + AllowanceStore>(
    app: &App<S>,
    author: &Author,
    webhook: WebhookId,
    delivery_id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    let (event_id, attempt) = parse_delivery_id(delivery_id).ok_or(ApiError::DeliveryNotFound)?;
    let (event, deliveries) = app
        .store
        .event_with_deliveries(&author.tenant, &event_id)
        .await?
        .ok_or(ApiError::DeliveryNotFound)?;
    if !deliveries
        .iter()
        .any(|d| d.webhook_id == webhook && d.attempt == attempt)
    {
        return Err(ApiError::DeliveryNotFound);
    }
    redeliver::queue(app, author, &event, vec![webhook]).await
}
