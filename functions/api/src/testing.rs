//! For the unit tests: an app on the in-memory store with one tenant's API
//! key, and requests built as API Gateway sends them (`apigw::request`), so
//! `cargo test -p webhooks-api` needs no moto.

use lambda_http::Body;
use lambda_http::http::HeaderMap;
use serde_json::Value;
use shared::store::MemoryStore;
use shared::{Settings, TenantId, UrlPolicy, api_key};

use crate::App;

/// An answer: status, headers, and the body as JSON (`Null` if it is not).
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error body's `code`.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// The settings of unit tests: the defaults, except that tests call routes
/// faster than any client, so the per-container request rates are out of
/// their way (`rate.rs` tests those).
pub(crate) fn settings() -> Settings {
    Settings {
        tenant_requests_per_second: 1_000_000,
        unknown_key_requests_per_second: 1_000_000,
        ..Settings::with_table("unused")
    }
}

/// An app for tenant `acme`, and its API key. `allow_private` lets webhooks
/// point at loopback (receivers in the tests).
pub(crate) async fn app(allow_private: bool) -> (App<MemoryStore>, String) {
    app_with(Settings {
        url_policy: UrlPolicy {
            allow_private_targets: allow_private,
        },
        ..settings()
    })
    .await
}

/// The same with these settings.
pub(crate) async fn app_with(settings: Settings) -> (App<MemoryStore>, String) {
    let app = App::new(MemoryStore::default(), settings);
    let key = key_for(&app, api_key::Scope::Full).await;
    (app, key)
}

/// Another API key of tenant `acme`, with `scope`.
pub(crate) async fn key_for(app: &App<MemoryStore>, scope: api_key::Scope) -> String {
    let tenant = TenantId::parse("acme").expect("tenant");
    let (key, _) = shared::key_lifecycle::issue(&app.store, tenant, "test".into(), scope, None)
        .await
        .expect("api key");
    key
}

/// One request through the router, with `key` as the bearer token.
pub(crate) async fn send(
    app: &App<MemoryStore>,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Reply {
    send_with(app, key, method, path, body, &[]).await
}

/// The same with more headers.
pub(crate) async fn send_with(
    app: &App<MemoryStore>,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut headers: Vec<(String, String)> = extra
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(key) = key {
        headers.push(("authorization".to_owned(), format!("Bearer {key}")));
    }
    if body.is_some() {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    let req = crate::apigw::request(method, path, &headers, body.map(str::as_bytes), "r")
        .expect("request");
    let response = crate::handle(app, req).await.expect("never fails");
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}
