//! Routing and the single place where errors become responses.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::store::Store;
use shared::{Settings, WebhookId};

use crate::webhooks::Rotate;
use crate::{ApiError, auth, body, webhooks};

/// What the handlers need, built once per container.
pub struct App<S> {
    pub store: S,
    pub settings: Settings,
}

enum Route {
    Webhooks,
    Webhook(Option<WebhookId>),
    WebhookToken(Option<WebhookId>),
    WebhookSigningSecret(Option<WebhookId>),
    WebhookDeliveries(Option<WebhookId>),
    EventTypes,
}

fn route(path: &str) -> Option<Route> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // An id that cannot exist is a webhook that does not exist: 404, not 400.
    let id = |s: &str| s.parse::<WebhookId>().ok();
    match segments.as_slice() {
        ["webhooks"] => Some(Route::Webhooks),
        ["webhooks", wh] => Some(Route::Webhook(id(wh))),
        ["webhooks", wh, "token"] => Some(Route::WebhookToken(id(wh))),
        ["webhooks", wh, "signing-secret"] => Some(Route::WebhookSigningSecret(id(wh))),
        ["webhooks", wh, "deliveries"] => Some(Route::WebhookDeliveries(id(wh))),
        ["event-types"] => Some(Route::EventTypes),
        _ => None,
    }
}

/// The Lambda entry point: never fails; every error is a JSON response.
pub async fn handle<S: Store>(app: &App<S>, req: Request) -> Result<Response<Body>, Error> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    Ok(dispatch(app, &req)
        .await
        .unwrap_or_else(|e| e.into_response(&request_id)))
}

fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

async fn dispatch<S: Store>(app: &App<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let route = route(path(req)).ok_or_else(|| ApiError::RouteNotFound(path(req).to_owned()))?;
    let method = req.method();
    let allowed = match &route {
        Route::Webhooks => "GET, POST",
        Route::Webhook(_) => "GET, PATCH, DELETE",
        Route::WebhookToken(_) | Route::WebhookSigningSecret(_) => "POST",
        Route::EventTypes | Route::WebhookDeliveries(_) => "GET",
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::MethodNotAllowed(allowed));
    }
    let tenant = auth::tenant(&app.store, req).await?;
    if *method == Method::GET || *method == Method::DELETE {
        body::none(req)?;
    }
    match route {
        Route::EventTypes => Ok(webhooks::event_types()),
        Route::Webhooks if method == Method::POST => webhooks::create(app, tenant, req).await,
        Route::Webhooks => webhooks::list(app, tenant, req).await,
        Route::Webhook(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            match *method {
                Method::GET => webhooks::get(app, tenant, id).await,
                Method::PATCH => webhooks::update(app, tenant, id, req).await,
                _ => webhooks::delete(app, tenant, id).await,
            }
        }
        Route::WebhookToken(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            webhooks::rotate(app, tenant, id, req, Rotate::Token).await
        }
        Route::WebhookDeliveries(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            webhooks::deliveries(app, tenant, id, req).await
        }
        Route::WebhookSigningSecret(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            webhooks::rotate(app, tenant, id, req, Rotate::SigningSecret).await
        }
    }
}
