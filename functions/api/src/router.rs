//! Routing: the route table, authentication and the webhook ownership
//! check before any handler, and the single place where errors become
//! responses.

use futures_util::future::BoxFuture;
use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use shared::api_key::ApiKey;
use shared::audit::{Actor, Author};
use shared::event::EventId;
use shared::store::Store;
use shared::{TenantId, Webhook, WebhookId};

use crate::dashboard::Asset;
use crate::edge;
use crate::webhooks::secrets::Rotate;
use crate::webhooks::{crud, deliveries, recover, secrets, stats, test_event};
use crate::{
    ApiError, App, api_keys, audit_log, auth, body, dashboard, event_types, events, openapi,
    settings, webhooks,
};

/// What a route's handler gets: the app, the caller's tenant, the request,
/// and the path's `{…}` segments in order, percent-decoded.
pub(crate) struct Call<'a, S> {
    app: &'a App<S>,
    tenant: TenantId,
    /// The key the request came with.
    key: ApiKey,
    /// Who makes a change, as the audit log names them: the tenant, and
    /// the key the request came with.
    author: Author,
    req: &'a Request,
    params: Vec<String>,
}

impl<S> Call<'_, S> {
    /// The path's first `{…}` as a webhook id: one that cannot exist is a
    /// webhook that does not exist (404, not 400).
    fn webhook_id(&self) -> Result<WebhookId, ApiError> {
        self.param(0)
            .parse::<WebhookId>()
            .map_err(|_| ApiError::WebhookNotFound)
    }

    /// The path's first `{…}` as an event id (404 when it cannot be one).
    fn event(&self) -> Result<EventId, ApiError> {
        EventId::parse(self.param(0)).map_err(|_| ApiError::EventNotFound)
    }

    fn param(&self, n: usize) -> &str {
        self.params.get(n).map_or("", String::as_str)
    }
}

type Answer<'a> = BoxFuture<'a, Result<Response<Body>, ApiError>>;

/// How a route is answered.
enum Handler<S> {
    /// Without a key: tools read the document, and the dashboard asks for
    /// the key, before they have one. Gets the request's raw path.
    Public(fn(&str) -> Response<Body>),
    /// For the tenant the request's API key names.
    Tenant(for<'a> fn(Call<'a, S>) -> Answer<'a>),
    /// Under `/webhooks/{id}`: for the tenant the key names, with its
    /// webhook `{id}`, which the router has loaded ([`webhooks::owned`]).
    Webhook(for<'a> fn(Call<'a, S>, Webhook) -> Answer<'a>),
}

/// One line of the route table.
struct Route<S> {
    method: Method,
    /// `/`-separated; a `{name}` segment matches any one segment.
    path: &'static str,
    handler: Handler<S>,
}

fn public<S>(method: Method, path: &'static str, f: fn(&str) -> Response<Body>) -> Route<S> {
    Route {
        method,
        path,
        handler: Handler::Public(f),
    }
}

fn tenant<S>(
    method: Method,
    path: &'static str,
    f: for<'a> fn(Call<'a, S>) -> Answer<'a>,
) -> Route<S> {
    Route {
        method,
        path,
        handler: Handler::Tenant(f),
    }
}

fn webhook<S>(
    method: Method,
    path: &'static str,
    f: for<'a> fn(Call<'a, S>, Webhook) -> Answer<'a>,
) -> Route<S> {
    Route {
        method,
        path,
        handler: Handler::Webhook(f),
    }
}

/// Every route: adding one is one line here and its handler. A route under
/// `/webhooks/{id}` is a `webhook` line: its handler gets the caller's
/// webhook, never an id to check. The OpenAPI document is checked against
/// the table (tests/openapi.rs), and a 405's `Allow` comes from it.
fn table<S: Store>() -> [Route<S>; 30] {
    use Method as M;
    [
        tenant(M::GET, "/webhooks", |c| {
            Box::pin(crud::list(c.app, c.tenant, c.req))
        }),
        tenant(M::POST, "/webhooks", |c| {
            Box::pin(async move { crud::create(c.app, c.tenant, c.req, &c.author).await })
        }),
        webhook(M::GET, "/webhooks/{id}", |_, w| {
            Box::pin(async move { Ok(crud::show(&w)) })
        }),
        webhook(M::PATCH, "/webhooks/{id}", |c, w| {
            Box::pin(async move { crud::update(c.app, &c.author, w.id, c.req).await })
        }),
        webhook(M::DELETE, "/webhooks/{id}", |c, w| {
            Box::pin(async move { crud::delete(c.app, &c.author, w).await })
        }),
        webhook(M::POST, "/webhooks/{id}/token", |c, w| {
            Box::pin(
                async move { secrets::rotate(c.app, &c.author, w.id, c.req, Rotate::Token).await },
            )
        }),
        webhook(M::POST, "/webhooks/{id}/signing-secret", |c, w| {
            Box::pin(async move {
                secrets::rotate(c.app, &c.author, w.id, c.req, Rotate::SigningSecret).await
            })
        }),
        webhook(M::GET, "/webhooks/{id}/deliveries", |c, w| {
            Box::pin(deliveries::list(c.app, c.tenant, w.id, c.req))
        }),
        webhook(M::GET, "/webhooks/{id}/stats", |c, w| {
            Box::pin(stats::get(c.app, c.tenant, w.id, c.req))
        }),
        webhook(M::POST, "/webhooks/{id}/recover", |c, w| {
            Box::pin(async move { recover::start(c.app, w, c.req, &c.author).await })
        }),
        webhook(M::GET, "/webhooks/{id}/recovery", |c, w| {
            Box::pin(recover::status(c.app, c.tenant, w.id))
        }),
        webhook(M::POST, "/webhooks/{id}/test", |c, w| {
            Box::pin(test_event::send(c.app, w, c.req))
        }),
        webhook(
            M::POST,
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            |c, w| {
                Box::pin(async move {
                    let delivery = c.param(1);
                    deliveries::redeliver(c.app, &c.author, w.id, delivery, c.req).await
                })
            },
        ),
        tenant(M::GET, "/event-types", |_| {
            Box::pin(async { Ok(event_types::list()) })
        }),
        tenant(M::GET, "/egress-ips", |c| {
            Box::pin(async move { Ok(crate::egress::list(&c.app.settings)) })
        }),
        tenant(M::GET, "/events", |c| {
            Box::pin(events::list(c.app, c.tenant, c.req))
        }),
        tenant(M::GET, "/events/{id}", |c| {
            Box::pin(async move {
                let id = c.event()?;
                events::get(c.app, c.tenant, id).await
            })
        }),
        tenant(M::POST, "/events/{id}/redeliver", |c| {
            Box::pin(async move {
                let id = c.event()?;
                events::redeliver_event(c.app, &c.author, id, c.req).await
            })
        }),
        tenant(M::DELETE, "/events/{id}/payload", |c| {
            Box::pin(async move {
                let id = c.event()?;
                events::delete_payload(c.app, &c.author, id, c.req).await
            })
        }),
        tenant(M::DELETE, "/subjects/{subject}/payloads", |c| {
            Box::pin(
                async move { events::erase_subject(c.app, &c.author, c.param(0), c.req).await },
            )
        }),
        tenant(M::GET, "/settings", |c| {
            Box::pin(settings::get(c.app, c.tenant))
        }),
        tenant(M::PATCH, "/settings", |c| {
            Box::pin(async move { settings::update(c.app, &c.author, c.req).await })
        }),
        tenant(M::GET, "/audit-log", |c| {
            Box::pin(audit_log::list(c.app, c.tenant, c.req))
        }),
        tenant(M::GET, "/api-keys", |c| {
            Box::pin(api_keys::list(c.app, c.tenant))
        }),
        tenant(M::POST, "/api-keys", |c| {
            Box::pin(async move { api_keys::create(c.app, &c.key, c.req).await })
        }),
        tenant(M::DELETE, "/api-keys/{id}", |c| {
            Box::pin(async move {
                let id = c.param(0).to_owned();
                api_keys::revoke(c.app, &c.author, &id, c.req).await
            })
        }),
        public(M::GET, "/openapi.json", |_| openapi::document()),
        public(M::GET, "/dashboard", |path| {
            dashboard::serve(if path.ends_with('/') {
                Asset::PageWithSlash
            } else {
                Asset::Page
            })
        }),
        public(M::GET, "/dashboard/app.js", |_| {
            dashboard::serve(Asset::Script)
        }),
        public(M::GET, "/dashboard/app.css", |_| {
            dashboard::serve(Asset::Style)
        }),
    ]
}

/// Every (path, method) the router serves, in the table's order.
pub fn routes() -> Vec<(&'static str, Method)> {
    table::<shared::store::MemoryStore>()
        .into_iter()
        .map(|r| (r.path, r.method))
        .collect()
}

/// The path's segments, each percent-decoded: API Gateway hands over
/// `rawPath` decoded, the local server as the client sent it, and the
/// dashboard encodes ids (`evt%3A1` for `evt:1`). Decoding after the split
/// keeps an encoded `/` inside its segment. A trailing `/` is ignored; a
/// segment that is not UTF-8 once decoded matches no route.
fn segments(path: &str) -> Option<Vec<String>> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

/// The `{…}` segments of `segments` if they fit `pattern`.
fn fit(pattern: &str, segments: &[String]) -> Option<Vec<String>> {
    let wanted: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if wanted.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (w, s) in wanted.iter().zip(segments) {
        if w.starts_with('{') {
            params.push(s.clone());
        } else if w != s {
            return None;
        }
    }
    Some(params)
}

/// The Lambda entry point: never fails; every error is a JSON response.
pub async fn handle<S: Store>(app: &App<S>, req: Request) -> Result<Response<Body>, Error> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    Ok(answer(app, &req)
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

/// Finds the route, checks the method, authenticates, loads the caller's
/// webhook for a route under `/webhooks/{id}`, and runs the handler.
async fn answer<S: Store>(app: &App<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    edge::came_through(app, req)?;
    let raw = path(req);
    let not_found = || ApiError::RouteNotFound(raw.to_owned());
    let segments = segments(raw).ok_or_else(not_found)?;
    let mut allowed = Vec::new();
    let mut found = None;
    for route in table::<S>() {
        let Some(params) = fit(route.path, &segments) else {
            continue;
        };
        if route.method == *req.method() {
            found = Some((route.handler, params));
            break;
        }
        allowed.push(route.method.to_string());
    }
    let Some((handler, params)) = found else {
        return Err(if allowed.is_empty() {
            not_found()
        } else {
            ApiError::MethodNotAllowed(allowed.join(", "))
        });
    };
    match handler {
        Handler::Public(f) => Ok(f(raw)),
        Handler::Tenant(run) => run(authenticated(app, req, params).await?).await,
        Handler::Webhook(run) => {
            let call = authenticated(app, req, params).await?;
            // The one ownership check of every route under `/webhooks/{id}`.
            let webhook = webhooks::owned(app, &call.tenant, call.webhook_id()?).await?;
            run(call, webhook).await
        }
    }
}

/// The call of a route for a tenant: the caller's key checked, and no body
/// on a GET or DELETE.
async fn authenticated<'a, S: Store>(
    app: &'a App<S>,
    req: &'a Request,
    params: Vec<String>,
) -> Result<Call<'a, S>, ApiError> {
    let caller = auth::caller(app, req).await?;
    if *req.method() == Method::GET || *req.method() == Method::DELETE {
        body::none(req)?;
    }
    Ok(Call {
        app,
        author: Author::new(&caller.tenant, Actor::api_key(&caller.key)),
        tenant: caller.tenant,
        key: caller.key,
        req,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(path: &str) -> Option<(&'static str, Vec<String>)> {
        let segments = segments(path)?;
        table::<shared::store::MemoryStore>()
            .into_iter()
            .find_map(|r| fit(r.path, &segments).map(|p| (r.path, p)))
    }

    /// A percent-encoded segment and its plain spelling find the same
    /// route: API Gateway decodes `rawPath` and the local server does not,
    /// so `/events/evt%3A1` must be `/events/evt:1` in both places.
    #[test]
    fn encoded_and_plain_segments_are_one_route() {
        let plain = find("/events/evt:1");
        assert_eq!(plain, Some(("/events/{id}", vec!["evt:1".to_owned()])));
        assert_eq!(find("/events/evt%3A1"), plain);
        assert_eq!(
            find("/events/evt%3a1/redeliver"),
            Some(("/events/{id}/redeliver", vec!["evt:1".to_owned()]))
        );
        // An encoded slash stays in its segment: one segment, no other route.
        assert_eq!(
            find("/events/a%2Fb"),
            Some(("/events/{id}", vec!["a/b".to_owned()]))
        );
        assert_eq!(find("/events/%FF"), None);
        assert_eq!(find("/webhooks/"), Some(("/webhooks", vec![])));
        assert_eq!(find("/nowhere"), None);
    }

    /// A route under `/webhooks/{id}` whose handler checked ownership
    /// itself could forget to: every one of them gets the webhook from the
    /// router instead, and no other route does.
    #[test]
    fn the_router_checks_the_webhook_of_every_route_under_webhooks_id() {
        for route in table::<shared::store::MemoryStore>() {
            let under = route.path.starts_with("/webhooks/{id}");
            let checked = matches!(route.handler, Handler::Webhook(_));
            assert_eq!(under, checked, "{} {}", route.method, route.path);
        }
    }

    #[test]
    fn each_path_and_method_is_in_the_table_once() {
        let all = routes();
        let distinct: std::collections::BTreeSet<_> =
            all.iter().map(|(p, m)| (*p, m.as_str())).collect();
        assert_eq!(distinct.len(), all.len());
    }

    use crate::testing::{app, send};

    #[tokio::test]
    async fn unknown_paths_wrong_methods_and_missing_keys() {
        let (app, key) = app(true).await;
        let r = send(&app, Some(&key), "GET", "/nowhere", None).await;
        assert_eq!((r.status, r.code()), (404, "route_not_found"));
        let r = send(&app, Some(&key), "PUT", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
        assert_eq!(r.headers["allow"], "GET, POST");
        let r = send(&app, Some(&key), "POST", "/webhooks/wh_x", None).await;
        assert_eq!(r.headers["allow"], "GET, PATCH, DELETE");
        // The method is checked before the key: a 405 tells no secret.
        let r = send(&app, None, "GET", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
        let r = send(&app, Some("whk_not-a-key"), "GET", "/webhooks", None).await;
        assert_eq!(r.status, 401);
        // Public routes need no key.
        assert_eq!(
            send(&app, None, "GET", "/openapi.json", None).await.status,
            200
        );
        assert_eq!(
            send(&app, None, "GET", "/dashboard", None).await.status,
            200
        );
        // `/dashboard/` sends the browser to `/dashboard` (relative assets).
        assert_eq!(
            send(&app, None, "GET", "/dashboard/", None).await.status,
            308
        );
        // An id that cannot exist is a webhook that does not exist.
        let r = send(&app, Some(&key), "GET", "/webhooks/not-an-id", None).await;
        assert_eq!((r.status, r.code()), (404, "webhook_not_found"));
        let r = send(&app, Some(&key), "GET", "/events/%FF", None).await;
        assert_eq!(r.status, 404);
    }
}
