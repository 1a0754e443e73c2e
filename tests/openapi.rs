//! The OpenAPI document cannot drift from the code: every route the router
//! serves is in it and nothing else is, every operation reaches its handler,
//! and what the handlers answer (status, content type, body) is what the
//! document says, checked with a JSON Schema 2020-12 validator.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use shared::store::prelude::*;
use shared::{EventType, samples};
use testkit::receiver::{Behavior, Receiver};
use testkit::{Call, Reply, api_key_for, fresh_store, settings};

fn document() -> Value {
    serde_json::from_str(api::OPENAPI_JSON).expect("docs/openapi.json is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// (path template, method in upper case) of every operation in the document.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((path.clone(), m.to_uppercase()));
            }
        }
    }
    ops
}

fn routed_operations() -> BTreeSet<(String, String)> {
    api::routes()
        .into_iter()
        .map(|(path, method)| (path.to_owned(), method.to_string()))
        .collect()
}

#[test]
fn the_document_lists_exactly_the_routes_the_router_serves() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(documented_operations(&doc), routed_operations());
}

#[test]
fn the_delivery_examples_are_the_samples_test_events_send() {
    let doc = document();
    for t in EventType::ALL {
        let name = t.as_str().replace('.', "_");
        let example = &doc["components"]["schemas"][format!("Delivery_{name}")]["example"];
        assert_eq!(example["type"], t.as_str());
        let sample: Value = serde_json::from_str(samples::data(t)).unwrap();
        assert_eq!(example["data"], sample, "{t}");
        assert!(
            doc["webhooks"][t.as_str()]["post"]["requestBody"].is_object(),
            "{t} has no delivery in the webhooks section"
        );
    }
}

/// JSON Pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer to the response object for `status` of an operation, with
/// `$ref`s to shared responses followed.
fn response_pointer(doc: &Value, path: &str, method: &str, status: u16) -> Option<String> {
    let mut pointer = format!(
        "/paths/{}/{}/responses/{status}",
        escape(path),
        method.to_lowercase()
    );
    let response = doc.pointer(&pointer)?;
    if let Some(r) = response.get("$ref").and_then(Value::as_str) {
        pointer = r.trim_start_matches('#').to_owned();
    }
    Some(pointer)
}

/// Checks one reply against the document: documented status, content type, body schema.
fn conforms(doc: &Value, path: &str, method: &str, reply: &Reply) -> Result<(), String> {
    let pointer = response_pointer(doc, path, method, reply.status)
        .ok_or_else(|| format!("status {} is not documented", reply.status))?;
    let response = doc.pointer(&pointer).expect("resolved response");
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let Some(content) = response.get("content") else {
        return match (content_type, &reply.body) {
            (None, Value::Null) => Ok(()),
            _ => Err("a body where the document has none".into()),
        };
    };
    let media_type = content_type.and_then(|c| c.split(';').next()).unwrap_or("");
    if content.get(media_type).is_none() {
        return Err(format!("content type {content_type:?}"));
    }
    if media_type != "application/json" {
        return Ok(());
    }
    let mut schema = doc.clone();
    // A URI fragment: the braces of path templates are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    schema["$ref"] = json!(format!("#{fragment}/content/application~1json/schema"));
    let validator = jsonschema::draft202012::new(&schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(&reply.body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Calls every operation (success and failure cases) through the real handler
/// on moto, and checks every answer against the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_what_the_document_says() {
    let doc = document();
    let store = fresh_store().await;
    let mut settings = settings(store.table(), 2);
    settings.url_policy.allow_private_targets = true;
    let queued = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = api::App::new(store, settings)
        .with_requeue(shared::requeue::Requeue::Memory(queued.clone()));
    let key = api_key_for(&app.store, "acme").await;
    let (event, _) = testkit::envelope("acme", EventType::AsyncCompleted, json!({"ok": true}));
    let kept = shared::event_log::StoredEvent::new(
        &event,
        time::OffsetDateTime::now_utc(),
        shared::event_log::Retention::WEEK,
    );
    app.store.put_event(&kept).await.unwrap();
    let evt = event.id.to_string();
    let rx = Receiver::start(Behavior::Respond {
        status: 200,
        headers: vec![],
        body: b"ok".to_vec(),
    })
    .await;

    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut replies: Vec<(&str, &str, Reply)> = Vec::new();
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": rx.url("/hook"), "events": ["async.completed", "flowx.completed"], "description": "main"}))
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    replies.push(("/webhooks", "POST", created));
    let second = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "http://example.com/x", "events": ["factx.query"], "token": "a-token-of-my-own-choosing"}))
        .send(&app)
        .await;
    replies.push(("/webhooks", "POST", second));
    let over_limit = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "https://example.com/y", "events": ["factx.query"]}))
        .send(&app)
        .await;
    assert_eq!(over_limit.status, 409);
    replies.push(("/webhooks", "POST", over_limit));

    // A delivery of the kept event to the first webhook, as the dispatcher would record it.
    let attempt =
        shared::delivery::Attempt::bare(shared::delivery::Outcome::HttpError, Some(503), 12);
    let record = shared::delivery_log::DeliveryRecord::new(
        event.tenant_id.clone(),
        id.parse().unwrap(),
        event.id.clone(),
        event.event_type,
        time::OffsetDateTime::now_utc(),
        attempt,
        30,
    );
    app.store.record_delivery(&record).await.unwrap();
    // API keys: list, create (a read key, then refused writes
    // with it), the last-full-key rule, a revocation and an unknown id.
    replies.push((
        "/api-keys",
        "GET",
        Call::new("GET", "/api-keys", &key).send(&app).await,
    ));
    let read = Call::new("POST", "/api-keys", &key)
        .json(json!({"name": "reporting", "scope": "read", "expires_at": "2999-01-01T00:00:00Z"}))
        .send(&app)
        .await;
    assert_eq!(read.status, 201, "{}", read.body);
    let read_key = read.body["key"].as_str().unwrap().to_owned();
    let read_id = read.body["id"].as_str().unwrap().to_owned();
    replies.push(("/api-keys", "POST", read));
    replies.push((
        "/api-keys",
        "POST",
        Call::new("POST", "/api-keys", &key)
            .json(json!({"scope": "admin"}))
            .send(&app)
            .await,
    ));
    let refused = Call::new("POST", "/api-keys", &read_key)
        .json(json!({}))
        .send(&app)
        .await;
    assert_eq!(refused.status, 403);
    replies.push(("/api-keys", "POST", refused));
    let own_id = Call::new("GET", "/api-keys", &key).send(&app).await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scope"] == "full")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/api-keys/{own_id}"),
        format!("/api-keys/{read_id}"),
        "/api-keys/key_0000".to_owned(),
    ] {
        let reply = Call::new("DELETE", &path, &key).send(&app).await;
        replies.push(("/api-keys/{id}", "DELETE", reply));
    }
    let statuses: Vec<u16> = replies[replies.len() - 3..]
        .iter()
        .map(|r| r.2.status)
        .collect();
    assert_eq!(statuses, [409, 200, 404]);
    let one = |p: &str| p.replace("{id}", &id).replace("{evt}", &evt);
    let calls: Vec<(&str, &str, Call)> = vec![
        (
            "/webhooks",
            "POST",
            Call::new("POST", "/webhooks", &key).json(json!({"url": "ftp://x", "events": []})),
        ),
        (
            "/webhooks",
            "POST",
            Call::new("POST", "/webhooks", &key).raw(Some("application/json"), "{"),
        ),
        (
            "/webhooks",
            "POST",
            Call::new("POST", "/webhooks", &key).raw(Some("text/plain"), "x"),
        ),
        (
            "/webhooks",
            "POST",
            Call::new("POST", "/webhooks", &key).raw(Some("application/json"), "x".repeat(70_000)),
        ),
        (
            "/webhooks",
            "GET",
            Call::new("GET", "/webhooks?limit=1", &key),
        ),
        (
            "/webhooks",
            "GET",
            Call::new("GET", "/webhooks?limit=0", &key),
        ),
        (
            "/webhooks",
            "GET",
            Call::new("GET", "/webhooks", &key).no_key(),
        ),
        (
            "/webhooks/{id}",
            "GET",
            Call::new("GET", "/webhooks/{id}", &key),
        ),
        (
            "/webhooks/{id}",
            "GET",
            Call::new("GET", "/webhooks/wh_nope", &key),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key)
                .json(json!({"status": "inactive", "description": null})),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key)
                .json(json!({"token": "a-new-token-chosen-by-me"})),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key).json(json!({"events": ["nope"]})),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key).json(json!({
                "throttle_rate": 5,
                "events": ["async.completed", "webhook.failing", "webhook.disabled"]
            })),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key).json(json!({"throttle_rate": 0})),
        ),
        (
            "/webhooks/{id}",
            "PATCH",
            Call::new("PATCH", "/webhooks/{id}", &key).json(json!({"throttle_rate": null})),
        ),
        (
            "/webhooks/{id}/token",
            "POST",
            Call::new("POST", "/webhooks/{id}/token", &key),
        ),
        (
            "/webhooks/{id}/token",
            "POST",
            Call::new("POST", "/webhooks/{id}/token", &key).json(json!({"x": 1})),
        ),
        (
            "/webhooks/{id}/signing-secret",
            "POST",
            Call::new("POST", "/webhooks/{id}/signing-secret", &key),
        ),
        (
            "/webhooks/{id}/test",
            "POST",
            Call::new("POST", "/webhooks/{id}/test", &key).json(json!({"type": "flowx.errored"})),
        ),
        (
            "/webhooks/{id}/test",
            "POST",
            Call::new("POST", "/webhooks/{id}/test", &key),
        ),
        (
            "/webhooks/{id}/test",
            "POST",
            Call::new("POST", "/webhooks/{id}/test", &key).json(json!({"type": 1})),
        ),
        (
            "/webhooks/{id}/deliveries",
            "GET",
            Call::new("GET", "/webhooks/{id}/deliveries?limit=1", &key),
        ),
        (
            "/webhooks/{id}/deliveries",
            "GET",
            Call::new("GET", "/webhooks/{id}/deliveries?cursor=bogus", &key),
        ),
        (
            "/webhooks/{id}/deliveries",
            "GET",
            Call::new(
                "GET",
                "/webhooks/{id}/deliveries?outcome=delivered&type=async.completed&since=2026-01-01T00:00:00Z",
                &key,
            ),
        ),
        (
            "/webhooks/{id}/deliveries",
            "GET",
            Call::new("GET", "/webhooks/{id}/deliveries?outcome=lost", &key),
        ),
        (
            "/webhooks/{id}/stats",
            "GET",
            Call::new("GET", "/webhooks/{id}/stats?window=7d", &key),
        ),
        (
            "/webhooks/{id}/stats",
            "GET",
            Call::new("GET", "/webhooks/{id}/stats", &key),
        ),
        (
            "/webhooks/{id}/stats",
            "GET",
            Call::new("GET", "/webhooks/{id}/stats?window=1y", &key),
        ),
        // Recovery: none yet, a dry run, a recovery, a bad window, the state.
        (
            "/webhooks/{id}/recovery",
            "GET",
            Call::new("GET", "/webhooks/{id}/recovery", &key),
        ),
        (
            "/webhooks/{id}/recover",
            "POST",
            Call::new("POST", "/webhooks/{id}/recover", &key)
                .json(json!({"since": since, "dry_run": true})),
        ),
        (
            "/webhooks/{id}/recover",
            "POST",
            Call::new("POST", "/webhooks/{id}/recover", &key).json(json!({"since": since})),
        ),
        (
            "/webhooks/{id}/recover",
            "POST",
            Call::new("POST", "/webhooks/{id}/recover", &key)
                .json(json!({"since": since, "until": "2000-01-01T00:00:00Z"})),
        ),
        (
            "/webhooks/{id}/recovery",
            "GET",
            Call::new("GET", "/webhooks/{id}/recovery", &key),
        ),
        ("/events", "GET", Call::new("GET", "/events?limit=5", &key)),
        (
            "/events",
            "GET",
            Call::new("GET", "/events?subject=job-1", &key),
        ),
        (
            "/events",
            "GET",
            Call::new("GET", "/events?subject=two%20words", &key),
        ),
        ("/settings", "GET", Call::new("GET", "/settings", &key)),
        (
            "/settings",
            "PATCH",
            Call::new("PATCH", "/settings", &key)
                .json(json!({"payload_retention_hours": 24, "keep_response_bodies": false})),
        ),
        (
            "/settings",
            "PATCH",
            Call::new("PATCH", "/settings", &key).json(json!({"payload_retention_hours": 169})),
        ),
        (
            "/events",
            "GET",
            Call::new("GET", "/events?type=async.done", &key),
        ),
        (
            "/events",
            "GET",
            Call::new("GET", "/events?since=yesterday", &key),
        ),
        (
            "/events/{id}",
            "GET",
            Call::new("GET", "/events/{evt}", &key),
        ),
        (
            "/events/{id}",
            "GET",
            Call::new("GET", "/events/evt_missing", &key),
        ),
        (
            "/events/{id}/redeliver",
            "POST",
            Call::new("POST", "/events/{evt}/redeliver", &key),
        ),
        (
            "/events/{id}/redeliver",
            "POST",
            Call::new("POST", "/events/evt_missing/redeliver", &key),
        ),
        (
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            "POST",
            Call::new("POST", "/webhooks/{id}/deliveries/{evt}~1/redeliver", &key),
        ),
        (
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            "POST",
            Call::new("POST", "/webhooks/{id}/deliveries/{evt}~7/redeliver", &key),
        ),
        (
            "/event-types",
            "GET",
            Call::new("GET", "/event-types", &key),
        ),
        // No static egress here: an empty list.
        ("/egress-ips", "GET", Call::new("GET", "/egress-ips", &key)),
        (
            "/events/{id}/payload",
            "DELETE",
            Call::new("DELETE", "/events/{evt}/payload", &key),
        ),
        (
            "/events/{id}/payload",
            "DELETE",
            Call::new("DELETE", "/events/evt_missing/payload", &key),
        ),
        (
            "/events/{id}/redeliver",
            "POST",
            Call::new("POST", "/events/{evt}/redeliver", &key),
        ),
        (
            "/subjects/{subject}/payloads",
            "DELETE",
            Call::new("DELETE", "/subjects/job-1/payloads", &key),
        ),
        (
            "/subjects/{subject}/payloads",
            "DELETE",
            Call::new("DELETE", "/subjects/two%20words/payloads", &key),
        ),
        // The changes above, read back: a page with a cursor, a filter, a
        // bad filter.
        (
            "/audit-log",
            "GET",
            Call::new("GET", "/audit-log?limit=2", &key),
        ),
        (
            "/audit-log",
            "GET",
            Call::new(
                "GET",
                "/audit-log?action=settings.updated&since=2026-01-01T00:00:00Z",
                &key,
            ),
        ),
        (
            "/audit-log",
            "GET",
            Call::new("GET", "/audit-log?action=webhook.stolen", &key),
        ),
        (
            "/openapi.json",
            "GET",
            Call::new("GET", "/openapi.json", &key).no_key(),
        ),
        (
            "/dashboard",
            "GET",
            Call::new("GET", "/dashboard", &key).no_key(),
        ),
        (
            "/dashboard/app.js",
            "GET",
            Call::new("GET", "/dashboard/app.js", &key).no_key(),
        ),
        (
            "/dashboard/app.css",
            "GET",
            Call::new("GET", "/dashboard/app.css", &key).no_key(),
        ),
        (
            "/webhooks/{id}",
            "DELETE",
            Call::new("DELETE", "/webhooks/{id}", &key),
        ),
        (
            "/webhooks/{id}",
            "DELETE",
            Call::new("DELETE", "/webhooks/{id}", &key),
        ),
        (
            "/webhooks/{id}/token",
            "POST",
            Call::new("POST", "/webhooks/{id}/token", &key),
        ),
    ];
    for (template, method, call) in calls {
        let path = one(call.path);
        let call = Call {
            path: &path,
            ..call
        };
        let reply = call.send(&app).await;
        replies.push((template, method, reply));
    }

    replies.extend(secured_webhook_replies(&app).await);

    // A stack with static egress: its two addresses.
    let fixed = api::App::new(
        shared::store::MemoryStore::default(),
        shared::Settings {
            egress_ips: vec![
                "203.0.113.7".parse().unwrap(),
                "2001:db8::7".parse().unwrap(),
            ],
            ..testkit::settings("unused", 2)
        },
    );
    let fixed_key = api_key_for(&fixed.store, "acme").await;
    let addresses = Call::new("GET", "/egress-ips", &fixed_key)
        .send(&fixed)
        .await;
    assert_eq!(addresses.body["static"], true, "{}", addresses.body);
    replies.push(("/egress-ips", "GET", addresses));

    let mut seen: HashMap<(String, String), BTreeSet<u16>> = HashMap::new();
    let mut failures = Vec::new();
    for (template, method, reply) in &replies {
        seen.entry(((*template).to_owned(), (*method).to_owned()))
            .or_default()
            .insert(reply.status);
        if let Err(why) = conforms(&doc, template, method, reply) {
            failures.push(format!(
                "{method} {template} -> {}: {why}\n  {}",
                reply.status, reply.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every operation was called and reached its handler (never route_not_found or 405).
    for op in documented_operations(&doc) {
        let statuses = seen
            .get(&op)
            .unwrap_or_else(|| panic!("{op:?} was not called"));
        assert!(!statuses.contains(&405), "{op:?}");
    }
    // The document served is the one in the repository.
    let served = Call::new("GET", "/openapi.json", &key)
        .no_key()
        .send(&app)
        .await;
    assert_eq!(served.body, doc);
}

/// The checker itself: a reply that breaks the document is caught.
#[test]
fn the_checker_refuses_what_the_document_does_not_allow() {
    let doc = document();
    let reply = |status: u16, body: Value| Reply {
        status,
        headers: {
            let mut h = lambda_http::http::HeaderMap::new();
            h.insert("content-type", "application/json".parse().unwrap());
            h
        },
        body,
    };
    let good = json!({"data": [{"name": "async.completed", "description": "x"}], "notices": []});
    assert!(conforms(&doc, "/event-types", "GET", &reply(200, good)).is_ok());
    let missing = json!({"data": [{"name": "async.completed", "description": "x"}]});
    assert!(conforms(&doc, "/event-types", "GET", &reply(200, missing)).is_err());
    let extra = json!({"data": [], "notices": [], "more": 1});
    assert!(conforms(&doc, "/event-types", "GET", &reply(200, extra)).is_err());
    let bad_type = json!({"data": [{"name": "async.done", "description": "x"}], "notices": []});
    assert!(conforms(&doc, "/event-types", "GET", &reply(200, bad_type)).is_err());
    let err = json!({"error": {"code": "webhook_not_found", "message": "no"}});
    assert!(conforms(&doc, "/event-types", "GET", &reply(404, err.clone())).is_err());
    assert!(conforms(&doc, "/webhooks/{id}", "GET", &reply(404, err)).is_ok());
    // A webhook's credentials and identity: masked, and never the key.
    let webhook = |oauth2: Value, client_tls: Value| {
        json!({
            "id": "wh_01JDQ86G0Q3R8T5V9X2Z4B7D1F",
            "url": "https://receiver.example.com/hook",
            "events": ["async.completed"],
            "status": "active",
            "token": "****abcd",
            "signing_secret": "****efgh",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "lane": "main",
            "throttle_rate": null,
            "headers": [],
            "oauth2": oauth2,
            "client_tls": client_tls,
        })
    };
    let oauth2 = json!({
        "token_url": "https://auth.example.com/token",
        "client_id": "relay",
        "client_secret": "****0123",
        "auth_method": "client_secret_basic",
    });
    let identity = json!({
        "fingerprint": "ab".repeat(32),
        "subject": "CN=relay.acme.example",
        "not_after": "2027-01-01T00:00:00Z",
    });
    let check = |body: Value| conforms(&doc, "/webhooks/{id}", "GET", &reply(200, body));
    assert!(check(webhook(oauth2.clone(), identity.clone())).is_ok());
    assert!(check(webhook(Value::Null, Value::Null)).is_ok());
    let mut shown = oauth2.clone();
    shown["client_secret"] = json!("oauth-client-secret-0123");
    assert!(check(webhook(shown, Value::Null)).is_err());
    let mut with_key = identity.clone();
    with_key["private_key"] = json!("-----BEGIN PRIVATE KEY-----");
    assert!(check(webhook(Value::Null, with_key)).is_err());
    let mut missing = webhook(Value::Null, Value::Null);
    missing.as_object_mut().unwrap().remove("client_tls");
    assert!(check(missing).is_err());
}

/// Mutual TLS (`client_tls`) and OAuth2 client credentials (`oauth2`):
/// created, read, changed, refused and removed, on a tenant of its own
/// (acme's webhook limit is 2). The token endpoint answers nothing, so a test
/// event ends `token_error`.
async fn secured_webhook_replies<S: Store>(
    app: &api::App<S>,
) -> Vec<(&'static str, &'static str, Reply)> {
    let key = api_key_for(&app.store, "bank").await;
    let issuer = testkit::tls::TestCa::generate();
    let identity = issuer.client_identity("relay.acme.example");
    let renewed = issuer.client_identity("relay.acme.example");
    let server_ca = testkit::tls::TestCa::generate();
    let token_url = "https://127.0.0.1:9/oauth2/token";
    let oauth2 = json!({
        "token_url": token_url,
        "client_id": "ekyc relay",
        "client_secret": "oauth-client-secret-0123",
        "scope": "webhooks:write events",
        "auth_method": "client_secret_post",
    });
    let client_tls = json!({
        "certificate": identity.certificate_pem,
        "private_key": identity.private_key_pem,
        "ca": server_ca.root_pem,
    });
    let mut replies = Vec::new();
    let mut expect = |template: &'static str,
                      method: &'static str,
                      reply: Reply,
                      status: u16,
                      field: Option<&str>| {
        assert_eq!(reply.status, status, "{method} {template}: {}", reply.body);
        if let Some(field) = field {
            assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
        }
        let body = reply.body.clone();
        replies.push((template, method, reply));
        body
    };

    // Refused on create: a certificate that is no PEM, an identity for an
    // http url, credentials without a secret.
    let bad_certificate = json!({
        "url": "https://localhost:8443/hook",
        "events": ["async.completed"],
        "client_tls": {"certificate": "not a certificate", "private_key": identity.private_key_pem},
    });
    let over_http = json!({
        "url": "http://localhost:8443/hook",
        "events": ["async.completed"],
        "client_tls": client_tls,
    });
    let no_secret = json!({
        "url": "https://localhost:8443/hook",
        "events": ["async.completed"],
        "oauth2": {"token_url": token_url, "client_id": "ekyc relay"},
    });
    for (body, field) in [
        (bad_certificate, "client_tls.certificate"),
        (over_http, "client_tls"),
        (no_secret, "oauth2.client_secret"),
    ] {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(body)
            .send(app)
            .await;
        expect("/webhooks", "POST", reply, 400, Some(field));
    }

    // Created with both: the secret masked, the key never shown.
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({
            "url": "https://localhost:8443/hook",
            "events": ["async.completed"],
            "oauth2": oauth2,
            "client_tls": client_tls,
        }))
        .send(app)
        .await;
    let created = expect("/webhooks", "POST", created, 201, None);
    assert_eq!(created["client_tls"]["fingerprint"], identity.fingerprint);
    assert_eq!(
        created["client_tls"]["ca_fingerprint"],
        testkit::tls::sha256_hex(&server_ca.root)
    );
    assert_eq!(
        created["oauth2"],
        json!({
            "token_url": token_url,
            "client_id": "ekyc relay",
            "client_secret": "****0123",
            "scope": "webhooks:write events",
            "auth_method": "client_secret_post",
        })
    );
    assert!(!created.to_string().contains("PRIVATE KEY"));
    let path = format!("/webhooks/{}", created["id"].as_str().unwrap());
    let reply = Call::new("GET", "/webhooks", &key).send(app).await;
    expect("/webhooks", "GET", reply, 200, None);
    let reply = Call::new("GET", &path, &key).send(app).await;
    let shown = expect("/webhooks/{id}", "GET", reply, 200, None);
    assert_eq!(shown["client_tls"], created["client_tls"]);

    // A test event: the token cannot be fetched, nothing is sent.
    let test_path = format!("{path}/test");
    let reply = Call::new("POST", &test_path, &key).send(app).await;
    let tested = expect("/webhooks/{id}/test", "POST", reply, 200, None);
    assert_eq!(tested["outcome"], "token_error", "{tested}");

    // Changed: the secret kept for the same token endpoint (scope and method
    // as given now), a new identity without a CA.
    let reply = Call::new("PATCH", &path, &key)
        .json(json!({
            "oauth2": {"token_url": token_url, "client_id": "ekyc-relay-2"},
            "client_tls": {"certificate": renewed.certificate_pem, "private_key": renewed.private_key_pem},
        }))
        .send(app)
        .await;
    let changed = expect("/webhooks/{id}", "PATCH", reply, 200, None);
    assert_eq!(
        changed["oauth2"],
        json!({
            "token_url": token_url,
            "client_id": "ekyc-relay-2",
            "client_secret": "****0123",
            "auth_method": "client_secret_basic",
        })
    );
    assert_eq!(changed["client_tls"]["fingerprint"], renewed.fingerprint);
    assert!(changed["client_tls"].get("ca_fingerprint").is_none());

    // Refused on change, changing nothing: a secret kept for another token
    // endpoint, a key that is not the certificate's, an http url while an
    // identity is held, an unknown field, a short secret's mask.
    let refusals = [
        (
            json!({"oauth2": {"token_url": "https://127.0.0.2:9/token", "client_id": "x"}}),
            "oauth2.client_secret",
        ),
        (
            json!({"client_tls": {"certificate": identity.certificate_pem, "private_key": renewed.private_key_pem}}),
            "client_tls.private_key",
        ),
        (json!({"url": "http://localhost:8443/hook"}), "client_tls"),
        (
            json!({"oauth2": {"token_url": token_url, "client_id": "x", "scope": "a  b"}}),
            "oauth2.scope",
        ),
    ];
    for (body, field) in refusals {
        let reply = Call::new("PATCH", &path, &key).json(body).send(app).await;
        expect("/webhooks/{id}", "PATCH", reply, 400, Some(field));
    }
    let reply = Call::new("PATCH", &path, &key)
        .json(json!({"client_tls": {"certificate": renewed.certificate_pem, "private_key": renewed.private_key_pem, "password": "x"}}))
        .send(app)
        .await;
    let unknown = expect("/webhooks/{id}", "PATCH", reply, 400, None);
    assert_eq!(unknown["error"]["code"], "unknown_field", "{unknown}");
    let reply = Call::new("PATCH", &path, &key)
        .json(
            json!({"oauth2": {"token_url": token_url, "client_id": "x", "client_secret": "short"}}),
        )
        .send(app)
        .await;
    let short = expect("/webhooks/{id}", "PATCH", reply, 200, None);
    assert_eq!(short["oauth2"]["client_secret"], "****");

    // Removed: back to the Basic token and no identity.
    let reply = Call::new("PATCH", &path, &key)
        .json(json!({"oauth2": null, "client_tls": null}))
        .send(app)
        .await;
    let removed = expect("/webhooks/{id}", "PATCH", reply, 200, None);
    assert!(removed["oauth2"].is_null() && removed["client_tls"].is_null());
    let reply = Call::new("GET", &path, &key).send(app).await;
    let shown = expect("/webhooks/{id}", "GET", reply, 200, None);
    assert!(shown["oauth2"].is_null() && shown["client_tls"].is_null());

    // The audit log names the identities and token hosts, never a secret.
    let reply = Call::new("GET", "/audit-log?action=webhook.updated", &key)
        .send(app)
        .await;
    let log = expect("/audit-log", "GET", reply, 200, None);
    let text = log.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("oauth-client-secret"));
    let changes: Vec<&Value> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["changes"])
        .collect();
    assert!(
        changes.iter().any(
            |c| c["client_tls"]["old"]["fingerprint"] == identity.fingerprint
                && c["client_tls"]["new"]["fingerprint"] == renewed.fingerprint
        ),
        "{log}"
    );
    assert!(
        changes.iter().any(
            |c| c["oauth2"]["old"]["token_host"] == "127.0.0.1" && c["oauth2"]["new"].is_null()
        ),
        "{log}"
    );
    replies
}
