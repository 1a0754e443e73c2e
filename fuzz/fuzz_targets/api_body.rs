//! The API's request bodies, through the real handler (`api::handle`) on an
//! in-memory store, as API Gateway would deliver them: the fuzzed bytes are
//! the JSON body of `POST /webhooks` and of `PATCH /webhooks/{id}` (a webhook
//! created for each input), with a valid API key.
//! Properties: the handler never returns an error, never answers 5xx, always
//! answers with JSON, and whatever it accepts passes the production rules
//! (a strict-policy URL, a valid token).
#![no_main]

use std::sync::OnceLock;

use lambda_http::{Body, Response};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::store::{ApiKeyStore, MemoryStore};
use shared::{Settings, TenantId, Token, UrlPolicy, WebhookUrl, api_key};

const STRICT: UrlPolicy = UrlPolicy {
    allow_private_targets: false,
};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    key: String,
    stored: api_key::ApiKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tenant = TenantId::parse("fuzz-tenant").expect("tenant id");
        let (key, stored) = api_key::ApiKey::issue(
            tenant,
            "fuzz".into(),
            api_key::Scope::Full,
            None,
            api_key::now(),
        );
        Fixture {
            key,
            stored,
            runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        }
    })
}

/// Production settings (the strict URL policy), as the tests build them.
fn settings() -> Settings {
    Settings {
        url_policy: STRICT,
        ..Settings::with_table("fuzz")
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    fx.runtime.block_on(run(fx, data));
});

async fn run(fx: &Fixture, body: &[u8]) {
    // A fresh store per input: each run is independent of the ones before.
    let store = MemoryStore::default();
    store
        .put_api_key(&fx.stored, None, &shared::audit::operator::key(&fx.stored, shared::audit::Action::ApiKeyCreated))
        .await
        .expect("store api key");
    let app = api::App::new(store, settings());
    // The webhook to PATCH is created through the API itself, so the fixture
    // does not depend on how the store lays a webhook out.
    let setup = br#"{"url":"https://hooks.example.com/ekyc","events":["async.completed"]}"#;
    let created = call(fx, &app, "POST", "/webhooks", setup).await;
    let id = match (created.status().as_u16(), response_json(&created)) {
        (201, Some(json)) => json["id"].as_str().unwrap_or_default().to_owned(),
        (status, json) => panic!("setup POST /webhooks answered {status}: {json:?}"),
    };

    let patch_path = format!("/webhooks/{id}");
    for (method, path) in [("POST", "/webhooks"), ("PATCH", patch_path.as_str())] {
        let response = call(fx, &app, method, path, body).await;
        check(method, &response, body);
    }
}

/// One request as API Gateway delivers it, with the tenant's API key.
async fn call(
    fx: &Fixture,
    app: &api::App<MemoryStore>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Response<Body> {
    let headers = [
        ("authorization".to_owned(), format!("Bearer {}", fx.key)),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let request = match api::apigw::request(method, path, &headers, Some(body), "fuzz") {
        Ok(r) => r,
        Err(e) => panic!("building the API Gateway event failed: {e}"),
    };
    match api::handle(app, request).await {
        Ok(r) => r,
        Err(e) => panic!("{method} {path}: handler error {e} for {body:?}"),
    }
}

fn body_bytes(response: &Response<Body>) -> &[u8] {
    match response.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b.as_slice(),
        _ => &[],
    }
}

fn response_json(response: &Response<Body>) -> Option<Value> {
    serde_json::from_slice(body_bytes(response)).ok()
}

fn check(method: &str, response: &Response<Body>, input: &[u8]) {
    let status = response.status();
    let text = body_bytes(response);
    let shown = String::from_utf8_lossy(text);
    assert!(
        !status.is_server_error(),
        "{method}: {status} {shown} for {:?}",
        String::from_utf8_lossy(input)
    );
    let json: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => panic!("{method}: {status} body is not JSON ({e}): {shown}"),
    };
    if status.is_success() {
        let url = json["url"].as_str().unwrap_or_default();
        assert!(
            WebhookUrl::parse(url, STRICT).is_ok(),
            "{method}: accepted URL {url:?} fails the strict policy"
        );
        // A token is shown in full on creation and when it was set.
        if let Some(token) = json["token"].as_str().filter(|t| !t.starts_with("****")) {
            assert!(
                Token::parse(token).is_ok(),
                "{method}: accepted token {token:?}"
            );
        }
    } else {
        assert!(
            json["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{method}: {status} without an error code: {shown}"
        );
    }
}
