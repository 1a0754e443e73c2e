//! Handlers of the webhook routes. Each takes its dependencies as arguments.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::event::EventId;
use shared::signing::SigningSecret;
use shared::store::{Store, StoreError};
use shared::webhook::now_utc;
use shared::{TenantId, Token, Webhook, WebhookId, WebhookUrl};

use crate::views::{
    CreateWebhook, DeliveryList, DeliveryView, EventTypeList, Secrets, UpdateWebhook, WebhookList,
    WebhookView,
};
use crate::{ApiError, App, body, pagination, response};

pub async fn create<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: CreateWebhook = body::json(req)?;
    let url = WebhookUrl::parse(&input.url, app.settings.url_policy)?;
    let now = now_utc();
    let webhook = Webhook {
        id: WebhookId::generate(),
        tenant_id: tenant,
        url,
        events: input.events,
        status: input.status.unwrap_or_default(),
        token: input.token.unwrap_or_else(Token::generate),
        signing_secret: SigningSecret::generate(),
        description: input.description,
        created_at: now,
        updated_at: now,
    };
    app.store
        .create_webhook(&webhook, app.settings.max_webhooks_per_tenant)
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &WebhookView::new(&webhook, Secrets::REVEAL),
    ))
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

/// Read, change, write: the write only lands if nobody wrote in between,
/// otherwise it starts over (a concurrent PATCH must not bring back a token
/// that a rotation replaced). `change` returns false when it changed nothing.
async fn modify<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
    id: WebhookId,
    change: impl Fn(&mut Webhook) -> bool,
) -> Result<Webhook, ApiError> {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let mut webhook = load(app, tenant, id).await?;
        let loaded_at = webhook.updated_at;
        if !change(&mut webhook) {
            return Ok(webhook);
        }
        // Strictly later than the version it replaces, which the next write checks.
        webhook.updated_at = now_utc().max(loaded_at + time::Duration::microseconds(1));
        match app.store.update_webhook(&webhook, loaded_at).await {
            Ok(()) => return Ok(webhook),
            Err(StoreError::Conflict) => {
                // Back off a little, by a random amount, so that racing writers spread out.
                let jitter = u64::from(shared::random::bytes32()[0] % 16);
                tokio::time::sleep(std::time::Duration::from_millis(2 + jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict)
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
    let webhook = modify(app, &tenant, id, |webhook| {
        let before = webhook.clone();
        if let Some(url) = &url {
            webhook.url = url.clone();
        }
        if let Some(events) = &input.events {
            webhook.events = events.clone();
        }
        if let Some(status) = input.status {
            webhook.status = status;
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
    let webhook = modify(app, &tenant, id, |webhook| {
        match which {
            Rotate::Token => webhook.token = Token::generate(),
            Rotate::SigningSecret => webhook.signing_secret = SigningSecret::generate(),
        }
        true
    })
    .await?;
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

pub async fn deliveries<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let page = pagination::parse(req, |s| valid_delivery_position(&s).then_some(s))?;
    // The webhook must be the tenant's: that is what isolates delivery logs.
    load(app, &tenant, id).await?;
    let found = app
        .store
        .list_deliveries(id, page.limit, page.after)
        .await?;
    let list = DeliveryList {
        data: found.items.iter().map(DeliveryView::new).collect(),
        next_cursor: found.next.map(pagination::encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

/// A delivery cursor is `<attempted_at>#<event id>`.
fn valid_delivery_position(position: &str) -> bool {
    position.split_once('#').is_some_and(|(time, event)| {
        time.len() == 27 && time.ends_with('Z') && EventId::parse(event).is_ok()
    })
}
