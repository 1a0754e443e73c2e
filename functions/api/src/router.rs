//! Routing and the single place where errors become responses.

use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::delivery::{ClientConfig, DeliveryClient, LazyClient};
use shared::event::EventId;
use shared::requeue::Requeue;
use shared::retry::RecoveryConfig;
use shared::store::Store;
use shared::{Settings, WebhookId};

use crate::dashboard::Asset;
use crate::webhooks::Rotate;
use crate::{ApiError, auth, body, dashboard, events, openapi, test_event, webhooks};

/// What the handlers need, built once per container.
pub struct App<S> {
    pub store: S,
    pub settings: Settings,
    /// Built on first use (a test event, a registration's DNS check), not
    /// at cold start.
    client: LazyClient,
    pub(crate) recovery: RecoveryConfig,
    /// Where redeliveries are queued (the events queue).
    pub(crate) requeue: Requeue,
}

impl<S> App<S> {
    pub fn new(store: S, settings: Settings) -> Self {
        let client_config = settings.client_config();
        Self {
            store,
            settings,
            client: LazyClient::new(client_config),
            recovery: RecoveryConfig::default(),
            requeue: Requeue::Disabled,
        }
    }

    /// Event retention, the signing-secret overlap, and where redeliveries go.
    pub fn with_recovery(mut self, recovery: RecoveryConfig, requeue: Requeue) -> Self {
        self.recovery = recovery;
        self.requeue = requeue;
        self
    }

    /// Replaces the delivery client's configuration (tests: DNS overrides).
    pub fn with_client_config(mut self, config: ClientConfig) -> Self {
        self.client = LazyClient::new(config);
        self
    }

    pub(crate) fn client(&self) -> Result<&DeliveryClient, ApiError> {
        self.client
            .get()
            .map_err(|e| ApiError::Internal(format!("building the delivery client: {e}")))
    }
}

/// Every route the router serves, with its methods: the OpenAPI document is
/// checked against this list (tests/openapi.rs), and `Allow` comes from it.
pub const ROUTES: &[(&str, &str)] = &[
    ("/webhooks", "GET, POST"),
    ("/webhooks/{id}", "GET, PATCH, DELETE"),
    ("/webhooks/{id}/token", "POST"),
    ("/webhooks/{id}/signing-secret", "POST"),
    ("/webhooks/{id}/deliveries", "GET"),
    ("/webhooks/{id}/test", "POST"),
    ("/event-types", "GET"),
    ("/openapi.json", "GET"),
    ("/dashboard", "GET"),
    ("/dashboard/app.js", "GET"),
    ("/dashboard/app.css", "GET"),
    ("/events", "GET"),
    ("/events/{id}", "GET"),
    ("/events/{id}/redeliver", "POST"),
    ("/webhooks/{id}/deliveries/{delivery_id}/redeliver", "POST"),
];

#[derive(Debug, PartialEq)]
enum Route {
    Webhooks,
    Webhook(Option<WebhookId>),
    WebhookToken(Option<WebhookId>),
    WebhookSigningSecret(Option<WebhookId>),
    WebhookDeliveries(Option<WebhookId>),
    WebhookTest(Option<WebhookId>),
    EventTypes,
    OpenApi,
    Dashboard(Asset),
    Events,
    Event(Option<EventId>),
    EventRedeliver(Option<EventId>),
    DeliveryRedeliver(Option<WebhookId>, String),
}

impl Route {
    /// The route's line in [`ROUTES`].
    fn index(&self) -> usize {
        match self {
            Route::Webhooks => 0,
            Route::Webhook(_) => 1,
            Route::WebhookToken(_) => 2,
            Route::WebhookSigningSecret(_) => 3,
            Route::WebhookDeliveries(_) => 4,
            Route::WebhookTest(_) => 5,
            Route::EventTypes => 6,
            Route::OpenApi => 7,
            Route::Dashboard(Asset::Page | Asset::PageWithSlash) => 8,
            Route::Dashboard(Asset::Script) => 9,
            Route::Dashboard(Asset::Style) => 10,
            Route::Events => 11,
            Route::Event(_) => 12,
            Route::EventRedeliver(_) => 13,
            Route::DeliveryRedeliver(..) => 14,
        }
    }
}

fn route(path: &str) -> Option<Route> {
    if path == "/dashboard/" {
        return Some(Route::Dashboard(Asset::PageWithSlash));
    }
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    // Each segment percent-decoded: API Gateway hands over `rawPath` decoded,
    // the local server as the client sent it, and the dashboard encodes ids
    // (`evt%3A1` for `evt:1`). Decoding after the split keeps an encoded `/`
    // inside its segment. A segment that is not UTF-8 once decoded matches no route.
    let decoded: Vec<std::borrow::Cow<'_, str>> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8())
        .collect::<Result<_, _>>()
        .ok()?;
    let segments: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    // An id that cannot exist is a webhook that does not exist: 404, not 400.
    let id = |s: &str| s.parse::<WebhookId>().ok();
    match segments.as_slice() {
        ["webhooks"] => Some(Route::Webhooks),
        ["webhooks", wh] => Some(Route::Webhook(id(wh))),
        ["webhooks", wh, "token"] => Some(Route::WebhookToken(id(wh))),
        ["webhooks", wh, "signing-secret"] => Some(Route::WebhookSigningSecret(id(wh))),
        ["webhooks", wh, "deliveries"] => Some(Route::WebhookDeliveries(id(wh))),
        ["webhooks", wh, "test"] => Some(Route::WebhookTest(id(wh))),
        ["event-types"] => Some(Route::EventTypes),
        ["openapi.json"] => Some(Route::OpenApi),
        ["dashboard"] => Some(Route::Dashboard(Asset::Page)),
        ["dashboard", "app.js"] => Some(Route::Dashboard(Asset::Script)),
        ["dashboard", "app.css"] => Some(Route::Dashboard(Asset::Style)),
        ["events"] => Some(Route::Events),
        ["events", evt] => Some(Route::Event(EventId::parse(evt).ok())),
        ["events", evt, "redeliver"] => Some(Route::EventRedeliver(EventId::parse(evt).ok())),
        ["webhooks", wh, "deliveries", delivery, "redeliver"] => {
            Some(Route::DeliveryRedeliver(id(wh), (*delivery).to_owned()))
        }
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
    let allowed = ROUTES[route.index()].1;
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::MethodNotAllowed(allowed));
    }
    // Public: tools read the document, and the dashboard asks for the key, before they have one.
    match route {
        Route::OpenApi => return Ok(openapi::document()),
        Route::Dashboard(asset) => return Ok(dashboard::serve(asset)),
        _ => {}
    }
    let tenant = auth::tenant(&app.store, req).await?;
    if *method == Method::GET || *method == Method::DELETE {
        body::none(req)?;
    }
    match route {
        Route::EventTypes => Ok(webhooks::event_types()),
        Route::OpenApi | Route::Dashboard(_) => Err(ApiError::Internal(
            "public routes are answered before authentication".into(),
        )),
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
        Route::WebhookTest(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            test_event::send(app, tenant, id, req).await
        }
        Route::Events => events::list(app, tenant, req).await,
        Route::Event(id) => events::get(app, tenant, id.ok_or(ApiError::EventNotFound)?).await,
        Route::EventRedeliver(id) => {
            let id = id.ok_or(ApiError::EventNotFound)?;
            events::redeliver_event(app, tenant, id, req).await
        }
        Route::DeliveryRedeliver(id, delivery) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            events::redeliver_one(app, tenant, id, &delivery, req).await
        }
        Route::WebhookSigningSecret(id) => {
            let id = id.ok_or(ApiError::WebhookNotFound)?;
            webhooks::rotate(app, tenant, id, req, Rotate::SigningSecret).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, item 14c: `/events/evt%3A1` was a 404 locally and found
    /// behind API Gateway, which decodes `rawPath`. Both spellings are one
    /// route now, in both places.
    #[test]
    fn encoded_and_plain_segments_are_one_route() {
        let plain = route("/events/evt:1");
        assert_eq!(plain, Some(Route::Event(EventId::parse("evt:1").ok())));
        assert!(matches!(plain, Some(Route::Event(Some(_)))));
        assert_eq!(route("/events/evt%3A1"), plain);
        assert_eq!(
            route("/events/evt%3a1/redeliver"),
            Some(Route::EventRedeliver(EventId::parse("evt:1").ok()))
        );
        // An encoded slash stays in its segment: no such event id, no other route.
        assert_eq!(route("/events/a%2Fb"), Some(Route::Event(None)));
        assert_eq!(route("/events/%FF"), None);
        assert_eq!(route("/webhooks"), Some(Route::Webhooks));
    }
}
