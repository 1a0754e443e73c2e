//! Handlers of the webhook routes. Each takes its dependencies as arguments.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::delivery::Outcome;
use shared::delivery_log::{DeliveryCursor, DeliveryFilter};
use shared::store::Store;
use shared::webhook::now_utc;
use shared::{Status, TenantId, Token, ValidationError, Webhook, WebhookId, WebhookUrl};

use crate::views::{
    CreateWebhook, DeliveryList, DeliveryView, EventTypeList, Secrets, UpdateWebhook, WebhookList,
    WebhookView,
};
use crate::{ApiError, App, body, events, pagination, response};

pub async fn create<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: CreateWebhook = body::json(req)?;
    let url = WebhookUrl::parse(&input.url, app.settings.url_policy)?;
    resolves_publicly(app, &url).await?;
    let webhook = Webhook {
        status: input.status.unwrap_or_default(),
        token: input.token.unwrap_or_else(Token::generate),
        description: input.description,
        retry_policy: input.retry_policy.unwrap_or_default(),
        // A new endpoint starts on the slow lane until it answers quickly
        // (see shared::lane): one that is dead from the start never holds
        // the main lane.
        slow_since: Some(now_utc()),
        ..Webhook::new(tenant, url, input.events, now_utc())
    };
    app.store
        .create_webhook(&webhook, app.settings.max_webhooks_per_tenant)
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &WebhookView::new(&webhook, Secrets::REVEAL),
    ))
}

/// How long registration waits for DNS; a slower name is checked at send time only.
const REGISTRATION_DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A name that resolves to a forbidden address (DNS rebinding set up in
/// advance) is refused at registration too, not only at send time.
async fn resolves_publicly<S: Store>(app: &App<S>, url: &WebhookUrl) -> Result<(), ApiError> {
    app.client()?
        .check_resolved(url, REGISTRATION_DNS_TIMEOUT)
        .await
        .map_err(|blocked| {
            ValidationError::new("url", format!("resolves to a forbidden target: {blocked}")).into()
        })
}

pub async fn list<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let page = pagination::parse(req, |s| s.parse::<WebhookId>().ok())?;
    let found = app
        .store
        .list_webhooks(&tenant, page.limit, page.after)
        .await?;
    let list = WebhookList {
        data: found
            .items
            .iter()
            .map(|w| WebhookView::new(w, Secrets::MASK))
            .collect(),
        next_cursor: found.next.map(pagination::encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

pub(crate) async fn load<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
    id: WebhookId,
) -> Result<Webhook, ApiError> {
    app.store
        .get_webhook(tenant, id)
        .await?
        .ok_or(ApiError::WebhookNotFound)
}

pub async fn get<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
) -> Result<Response<Body>, ApiError> {
    let webhook = load(app, &tenant, id).await?;
    Ok(response::json(
        StatusCode::OK,
        &WebhookView::new(&webhook, Secrets::MASK),
    ))
}

/// Read, change, write, retried when another write came first (see
/// [`shared::store::modify`]).
async fn modify<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
    id: WebhookId,
    change: impl Fn(&mut Webhook) -> bool,
) -> Result<Webhook, ApiError> {
    Ok(shared::store::modify(&app.store, tenant, id, change).await?)
}

pub async fn update<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: UpdateWebhook = body::json(req)?;
    // Validate everything before touching the store, so a bad field changes nothing.
    let url = input
        .url
        .map(|u| WebhookUrl::parse(&u, app.settings.url_policy))
        .transpose()?;
    if let Some(url) = &url {
        resolves_publicly(app, url).await?;
    }
    let webhook = modify(app, &tenant, id, |webhook| {
        let before = webhook.clone();
        if let Some(url) = &url
            && *url != webhook.url
        {
            webhook.url = url.clone();
            // A new endpoint starts on the slow lane, like a new webhook.
            webhook.slow_since = Some(now_utc());
        }
        if let Some(events) = &input.events {
            webhook.events = events.clone();
        }
        if let Some(status) = input.status {
            webhook.status = status;
            if status == Status::Active {
                webhook.disabled_reason = None;
            }
        }
        if let Some(policy) = input.retry_policy {
            webhook.retry_policy = policy;
        }
        if let Some(token) = &input.token {
            webhook.token = token.clone();
        }
        if let Some(description) = &input.description {
            webhook.description = description.clone();
        }
        *webhook != before
    })
    .await?;
    let secrets = if input.token.is_some() {
        Secrets::TOKEN
    } else {
        Secrets::MASK
    };
    Ok(response::json(
        StatusCode::OK,
        &WebhookView::new(&webhook, secrets),
    ))
}

/// Which secret a rotation replaces.
#[derive(Clone, Copy)]
pub enum Rotate {
    Token,
    SigningSecret,
}

/// Replaces a secret with a fresh one and shows it, in full, this once.
pub async fn rotate<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
    which: Rotate,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    // When the previous signing secret still signs: a second rotation then
    // would drop it at once, and receivers still verifying with it would
    // start refusing deliveries.
    let overlapping = std::sync::Mutex::new(None);
    let webhook = modify(app, &tenant, id, |webhook| {
        match which {
            Rotate::Token => webhook.token = Token::generate(),
            Rotate::SigningSecret => {
                let now = now_utc();
                let until = webhook
                    .previous_signing_secret
                    .as_ref()
                    .map(|p| p.expires_at)
                    .filter(|until| *until > now);
                if let Ok(mut slot) = overlapping.lock() {
                    *slot = until;
                }
                if until.is_some() {
                    return false;
                }
                // The old secret keeps signing too until the overlap ends.
                webhook.rotate_signing_secret(now, app.settings.secret_overlap)
            }
        }
        true
    })
    .await?;
    if let Some(until) = overlapping.into_inner().ok().flatten() {
        return Err(ApiError::RotationInProgress {
            until: shared::delivery_log::sortable_time(until),
        });
    }
    let shown = match which {
        Rotate::Token => Secrets::TOKEN,
        Rotate::SigningSecret => Secrets::SIGNING_SECRET,
    };
    Ok(response::json(
        StatusCode::OK,
        &WebhookView::new(&webhook, shown),
    ))
}

pub async fn delete<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
) -> Result<Response<Body>, ApiError> {
    app.store.delete_webhook(&tenant, id).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub fn event_types() -> Response<Body> {
    response::json(StatusCode::OK, &EventTypeList::all())
}

/// The `outcome` query parameter of the delivery log.
fn outcome(req: &Request) -> Result<Option<Outcome>, ApiError> {
    let query = req.uri().query().unwrap_or("");
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "outcome" {
            let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            found = Some(Outcome::parse(&value).ok_or_else(|| ApiError::Invalid {
                code: "invalid_value",
                field: Some("outcome".into()),
                message: format!(
                    "outcome: must be one of {} (got {value:?})",
                    names.join(", ")
                ),
            })?);
        }
    }
    Ok(found)
}

pub async fn deliveries<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    // A cursor names its tenant: another tenant's cursor is not one.
    let page = pagination::parse(req, |s| {
        DeliveryCursor::parse(&s)
            .filter(|c| c.tenant_id == tenant)
            .map(|_| s)
    })?;
    let window = events::filter(req)?;
    events::within_window(&window, page.after.as_deref())?;
    let filter = DeliveryFilter {
        outcome: outcome(req)?,
        event_type: window.event_type,
        since: window.since,
        until: window.until,
    };
    // The webhook must be the tenant's: that is what isolates delivery logs.
    load(app, &tenant, id).await?;
    let found = app
        .store
        .list_deliveries(id, &filter, page.limit, page.after)
        .await?;
    let list = DeliveryList {
        data: found.items.iter().map(DeliveryView::new).collect(),
        next_cursor: found.next.map(pagination::encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}
