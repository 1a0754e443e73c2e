//! Fixtures for the integration tests: a fresh DynamoDB table on moto per test,
//! and API Gateway HTTP API (payload 2.0) requests into the real handler.

use api::App;
use lambda_http::Body;
use serde_json::Value;
use shared::store::prelude::*;
use shared::store::{DynamoStore, create_table};
use shared::{Settings, TenantId, UrlPolicy, api_key};

/// The AWS SDK reads `AWS_ENDPOINT_URL` itself; the test script points it at moto.
fn require_moto() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!(
            "integration tests talk to moto: run them with scripts/test, \
             which starts moto and sets AWS_ENDPOINT_URL"
        );
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

/// A store on a table of its own, so tests run in parallel without sharing state.
pub async fn fresh_store() -> DynamoStore {
    require_moto();
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("test");
    create_table(&client, &table)
        .await
        .expect("create table on moto");
    DynamoStore::new(client, table)
}

/// Tests call routes faster than any client: the per-container request
/// rates are out of their way unless a test sets them.
pub fn settings(table: &str, max_webhooks: u32) -> Settings {
    Settings {
        max_webhooks_per_tenant: max_webhooks,
        tenant_requests_per_second: 1_000_000,
        unknown_key_requests_per_second: 1_000_000,
        ..Settings::with_table(table)
    }
}

/// The API wired to a fresh table.
pub async fn fresh_app(max_webhooks: u32) -> App<DynamoStore> {
    let store = fresh_store().await;
    let settings = settings(store.table(), max_webhooks);
    App::new(store, settings)
}

/// Creates an API key for `tenant` the way the operator CLI does, and returns it.
pub async fn api_key_for(store: &impl Store, tenant: &str) -> String {
    let tenant = TenantId::parse(tenant).expect("valid tenant");
    let (key, _) =
        shared::key_lifecycle::issue(store, tenant, "test".into(), api_key::Scope::Full, None)
            .await
            .expect("store api key");
    key
}

/// Registers a webhook to `url` for `async.completed` through the API and
/// returns its id.
pub async fn created_webhook<S: Store>(app: &App<S>, key: &str, url: &str) -> String {
    let created = Call::new("POST", "/webhooks", key)
        .json(serde_json::json!({"url": url, "events": ["async.completed"]}))
        .send(app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().expect("an id").to_owned()
}

/// One request as API Gateway HTTP API sends it.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub key: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<String>,
}

impl<'a> Call<'a> {
    pub fn new(method: &'a str, path: &'a str, key: &'a str) -> Self {
        Self {
            method,
            path,
            key: Some(key),
            content_type: None,
            body: None,
        }
    }

    pub fn json(mut self, body: Value) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.to_string());
        self
    }

    pub fn raw(mut self, content_type: Option<&'a str>, body: impl Into<String>) -> Self {
        self.content_type = content_type;
        self.body = Some(body.into());
        self
    }

    pub fn no_key(mut self) -> Self {
        self.key = None;
        self
    }

    pub async fn send<S: Store>(&self, app: &App<S>) -> Reply {
        let mut headers = Vec::new();
        if let Some(key) = self.key {
            headers.push(("authorization".to_owned(), format!("Bearer {key}")));
        }
        if let Some(ct) = self.content_type {
            headers.push(("content-type".to_owned(), ct.to_owned()));
        }
        let body = self.body.as_deref().map(str::as_bytes);
        let req = api::apigw::request(self.method, self.path, &headers, body, "test-request")
            .expect("valid event");
        let response = api::handle(app, req).await.expect("handler never fails");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // JSON bodies parsed; any other text (the dashboard) kept as a string.
        let body = match response.body() {
            Body::Empty => Value::Null,
            Body::Text(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone())),
            Body::Binary(b) => serde_json::from_slice(b).expect("JSON response body"),
            _ => Value::Null,
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the documented error shape and returns (code, field).
    pub fn error(&self) -> (String, Option<String>) {
        let err = &self.body["error"];
        let code = err["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body));
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        (code.to_owned(), err["field"].as_str().map(str::to_owned))
    }

    /// The `Retry-After` of a 429, in seconds.
    pub fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After in seconds: {:?}", self.headers))
    }
}

/// Waits, if needed, so that the next `room` seconds fall inside one fixed
/// window of `window` seconds (per-tenant allowances count per window).
pub async fn start_of_window(window: i64, room: i64) {
    let into = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .rem_euclid(window);
    if into > window - room {
        let left = u64::try_from(window - into + 1).unwrap_or(1);
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
    }
}

pub mod aws;
pub mod receiver;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;

use dispatch::Dispatcher;
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::event::Event;
use shared::webhook::now_utc;
use shared::{EventSet, EventType, Status, Webhook, WebhookUrl};

/// A dispatcher on a fresh table. `dns` holds fixed answers for names; with
/// `allow_private` false the SSRF rule applies as in production.
pub async fn fresh_dispatcher(
    allow_private: bool,
    dns: HashMap<String, Vec<IpAddr>>,
) -> Dispatcher<DynamoStore> {
    let store = fresh_store().await;
    let mut settings = settings(store.table(), 50);
    settings.url_policy.allow_private_targets = allow_private;
    let client = DeliveryClient::new(ClientConfig {
        dns_overrides: dns,
        ..settings.client_config()
    })
    .expect("delivery client");
    Dispatcher::new(store, client, &settings)
}

/// Stores a webhook directly (no API), e.g. one whose URL the API would now refuse.
pub async fn add_webhook(
    store: &impl Store,
    tenant: &str,
    url: &str,
    events: &[EventType],
    status: Status,
) -> Webhook {
    let webhook = Webhook {
        status,
        ..Webhook::new(
            TenantId::parse(tenant).expect("tenant"),
            WebhookUrl::parse(
                url,
                UrlPolicy {
                    allow_private_targets: true,
                },
            )
            .expect("url"),
            EventSet::new(events.iter().copied()).expect("events"),
            now_utc(),
        )
    };
    store
        .create_webhook(&webhook, 1000, &shared::audit::operator::created(&webhook))
        .await
        .expect("store webhook");
    webhook
}

/// A valid envelope as JSON text.
pub fn envelope(tenant: &str, event_type: EventType, data: Value) -> (Event, String) {
    let event = shared::emit::NewEvent {
        id: None,
        tenant_id: tenant.to_owned(),
        event_type: event_type.as_str().to_owned(),
        timestamp: None,
        subject: None,
        data,
    }
    .into_event()
    .expect("valid event");
    let json = event.to_json();
    (event, json)
}

/// A Standard Webhooks signature, with HMAC-SHA256 written out here, apart
/// from the code under test.
pub fn standard_webhooks_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, KeyInit, Mac};
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// An item of the table, as the SDK gives it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Every item of the table (a Scan, every page): its keys and the item.
pub async fn raw_items(store: &DynamoStore) -> Vec<(String, String, Item)> {
    let client = store.client().await.expect("client");
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in out.items.unwrap_or_default() {
            let key = |k: &str| item[k].as_s().expect("a string key").clone();
            items.push((key("PK"), key("SK"), item));
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// An item's attribute names and values, nested ones included, as text.
pub fn item_text(item: &Item) -> String {
    use aws_sdk_dynamodb::types::AttributeValue;
    fn value(v: &AttributeValue) -> String {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
            AttributeValue::Bool(b) => b.to_string(),
            AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.join(" "),
            AttributeValue::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
            AttributeValue::M(m) => item_text(m),
            AttributeValue::L(l) => l.iter().map(value).collect::<Vec<_>>().join(" "),
            other => format!("{other:?}"),
        }
    }
    item.iter()
        .map(|(name, v)| format!("{name}={}\n", value(v)))
        .collect()
}

/// Every audit item's and every webhook item's attribute names and values, as text.
pub async fn audit_and_webhook_text(store: &DynamoStore) -> (String, String) {
    let (mut audit, mut webhooks) = (String::new(), String::new());
    for (_, sk, item) in raw_items(store).await {
        if sk.starts_with("AUDIT#") {
            audit.push_str(&item_text(&item));
        } else if sk.starts_with("WEBHOOK#") {
            webhooks.push_str(&item_text(&item));
        }
    }
    (audit, webhooks)
}
