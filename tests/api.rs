//! The api handler, driven with API Gateway HTTP API requests, on DynamoDB served by moto.

use serde_json::{Value, json};
use testkit::{Call, api_key_for, fresh_app};

fn create_body() -> Value {
    json!({"url": "https://hooks.example.com/ekyc", "events": ["async.completed", "flowx.completed", "async.completed"]})
}

#[tokio::test]
async fn create_read_update_rotate_delete() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;

    let created = Call::new("POST", "/webhooks", &key)
        .json(create_body())
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let wh = &created.body;
    let id = wh["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_") && id.len() == 29, "{id}");
    assert_eq!(wh["url"], "https://hooks.example.com/ekyc");
    assert_eq!(wh["events"], json!(["async.completed", "flowx.completed"]));
    assert_eq!(wh["status"], "active");
    let token = wh["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 44, "generated token is base64 of 32 bytes");
    let secret = wh["signing_secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 50,
        "{secret}"
    );
    assert_eq!(wh["created_at"], wh["updated_at"]);
    assert!(wh["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(wh.get("warnings").is_none(), "https gives no warning");
    assert!(wh.get("description").is_none());

    let read = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["token"], format!("****{}", &token[40..]));
    assert_eq!(
        read.body["signing_secret"],
        format!("****{}", &secret[46..])
    );
    assert_eq!(read.body["id"], id.as_str());
    assert_eq!(read.body["created_at"], wh["created_at"]);

    let patched = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"url": "https://other.example.com/x", "events": ["factx.query"], "status": "inactive", "description": "KYC results"}))
        .send(&app)
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["url"], "https://other.example.com/x");
    assert_eq!(patched.body["events"], json!(["factx.query"]));
    assert_eq!(patched.body["status"], "inactive");
    assert_eq!(patched.body["description"], "KYC results");
    assert!(
        patched.body["token"].as_str().unwrap().starts_with("****"),
        "unchanged token stays masked"
    );
    assert_ne!(patched.body["updated_at"], wh["updated_at"]);
    assert_eq!(patched.body["created_at"], wh["created_at"]);

    let reread = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(reread.body["status"], "inactive");
    assert_eq!(reread.body["events"], json!(["factx.query"]));

    let cleared = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"description": null}))
        .send(&app)
        .await;
    assert_eq!(cleared.status, 200);
    assert!(cleared.body.get("description").is_none());

    let chosen = "customer-chosen-token-0123456789";
    let retoken = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"token": chosen}))
        .send(&app)
        .await;
    assert_eq!(retoken.status, 200);
    assert_eq!(
        retoken.body["token"], chosen,
        "a changed token is shown in full once"
    );
    let masked = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(masked.body["token"], "****6789");

    let rotated = Call::new("POST", &format!("/webhooks/{id}/token"), &key)
        .send(&app)
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let fresh = rotated.body["token"].as_str().unwrap();
    assert_eq!(fresh.len(), 44);
    assert_ne!(fresh, chosen);
    let after = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(after.body["token"], format!("****{}", &fresh[40..]));

    let resigned = Call::new("POST", &format!("/webhooks/{id}/signing-secret"), &key)
        .send(&app)
        .await;
    assert_eq!(resigned.status, 200, "{:?}", resigned.body);
    let new_secret = resigned.body["signing_secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(
        resigned.body["token"].as_str().unwrap().starts_with("****"),
        "rotation shows only the new secret"
    );
    let after = Call::new("GET", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(
        after.body["signing_secret"],
        format!("****{}", &new_secret[46..])
    );

    let deleted = Call::new("DELETE", &format!("/webhooks/{id}"), &key)
        .send(&app)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.body, Value::Null);
    for (method, path) in [
        ("GET", format!("/webhooks/{id}")),
        ("DELETE", format!("/webhooks/{id}")),
        ("POST", format!("/webhooks/{id}/token")),
    ] {
        let gone = Call::new(method, &path, &key).send(&app).await;
        assert_eq!(gone.status, 404, "{method} {path}");
        assert_eq!(gone.error().0, "webhook_not_found");
    }
    let gone = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"status": "active"}))
        .send(&app)
        .await;
    assert_eq!(
        gone.status, 404,
        "update never brings back a deleted webhook"
    );
    let list = Call::new("GET", "/webhooks", &key).send(&app).await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn http_urls_are_accepted_with_a_warning_and_status_can_start_inactive() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "http://hooks.example.com/", "events": ["flowx.skipped"], "status": "inactive", "token": "my-own-token-1234"}))
        .send(&app)
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["status"], "inactive");
    assert_eq!(created.body["token"], "my-own-token-1234");
    let warnings = created.body["warnings"].as_array().expect("warnings list");
    assert!(
        warnings[0].as_str().unwrap().contains("https"),
        "{warnings:?}"
    );
}

async fn collect_pages(
    app: &api::App<shared::store::DynamoStore>,
    key: &str,
    limit: usize,
) -> (Vec<Vec<String>>, Vec<Value>) {
    let mut pages = Vec::new();
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/webhooks?limit={limit}&cursor={c}"),
            None => format!("/webhooks?limit={limit}"),
        };
        let page = Call::new("GET", &path, key).send(app).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let data = page.body["data"].as_array().unwrap().clone();
        pages.push(
            data.iter()
                .map(|w| w["id"].as_str().unwrap().to_owned())
                .collect(),
        );
        all.extend(data);
        match page.body.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
        assert!(pages.len() < 20, "pagination does not end");
    }
    (pages, all)
}

#[tokio::test]
async fn lists_newest_first_across_pages_with_masked_tokens() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        let created = Call::new("POST", "/webhooks", &key)
            .json(create_body())
            .send(&app)
            .await;
        assert_eq!(created.status, 201);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();

    let (pages, all) = collect_pages(&app, &key, 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), ids, "newest first, each exactly once");
    for w in &all {
        assert!(w["token"].as_str().unwrap().starts_with("****"), "{w}");
        assert_eq!(w["token"].as_str().unwrap().len(), 8);
    }

    // An exact multiple of the page size ends without a cursor to an empty page.
    let extra = ids[0].clone();
    let del = Call::new("DELETE", &format!("/webhooks/{extra}"), &key)
        .send(&app)
        .await;
    assert_eq!(del.status, 204);
    let (pages, _) = collect_pages(&app, &key, 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);

    let default = Call::new("GET", "/webhooks", &key).send(&app).await;
    assert_eq!(default.body["data"].as_array().unwrap().len(), 6);
    assert!(default.body.get("next_cursor").is_none());
}

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_other() {
    let app = fresh_app(50).await;
    let key_a = api_key_for(&app.store, "tenant-a").await;
    let key_b = api_key_for(&app.store, "tenant-b").await;
    let created = Call::new("POST", "/webhooks", &key_a)
        .json(create_body())
        .send(&app)
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let own_b = Call::new("POST", "/webhooks", &key_b)
        .json(create_body())
        .send(&app)
        .await;
    assert_eq!(own_b.status, 201);

    let path = format!("/webhooks/{id}");
    let token_path = format!("{path}/token");
    let secret_path = format!("{path}/signing-secret");
    let attempts = [
        Call::new("GET", &path, &key_b),
        Call::new("PATCH", &path, &key_b)
            .json(json!({"status": "inactive", "url": "https://evil.example.com/"})),
        Call::new("POST", &token_path, &key_b),
        Call::new("POST", &secret_path, &key_b),
        Call::new("DELETE", &path, &key_b),
    ];
    for attempt in attempts {
        let reply = attempt.send(&app).await;
        assert_eq!(
            reply.status, 404,
            "{} {}: {:?}",
            attempt.method, attempt.path, reply.body
        );
        assert_eq!(reply.error().0, "webhook_not_found");
    }
    let list_b = Call::new("GET", "/webhooks", &key_b).send(&app).await;
    let ids_b: Vec<&str> = list_b.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids_b, [own_b.body["id"].as_str().unwrap()]);

    let still = Call::new("GET", &path, &key_a).send(&app).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["status"], "active");
    assert_eq!(still.body["url"], "https://hooks.example.com/ekyc");
    assert_eq!(
        still.body["token"],
        format!("****{}", &created.body["token"].as_str().unwrap()[40..])
    );
}

#[tokio::test]
async fn authentication_errors_are_401() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let wrong = format!("{key}x");
    let cases = [
        Call::new("GET", "/webhooks", &key).no_key(),
        Call::new("GET", "/webhooks", &wrong),
        Call::new("GET", "/webhooks", "whk_not-a-key"),
        Call::new("POST", "/webhooks", &wrong).json(create_body()),
        Call::new("GET", "/event-types", &wrong),
    ];
    for call in cases {
        let reply = call.send(&app).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(reply.error().0, "unauthorized");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn routing_errors() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let reply = Call::new("GET", "/nope", &key).send(&app).await;
    assert_eq!(
        (reply.status, reply.error().0.as_str()),
        (404, "route_not_found")
    );
    let reply = Call::new("GET", "/webhooks/not-an-id", &key)
        .send(&app)
        .await;
    assert_eq!(
        (reply.status, reply.error().0.as_str()),
        (404, "webhook_not_found")
    );
    for (method, path, allow) in [
        ("PUT", "/webhooks", "GET, POST"),
        ("DELETE", "/webhooks", "GET, POST"),
        (
            "POST",
            "/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "GET, PATCH, DELETE",
        ),
        (
            "GET",
            "/webhooks/wh_01ARZ3NDEKTSV4RRFFQ69G5FAV/token",
            "POST",
        ),
        ("POST", "/event-types", "GET"),
    ] {
        let reply = Call::new(method, path, &key).send(&app).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.error().0, "method_not_allowed");
        assert_eq!(reply.headers["allow"], allow);
    }
}

#[tokio::test]
async fn event_types_lists_the_six() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let reply = Call::new("GET", "/event-types", &key).send(&app).await;
    assert_eq!(reply.status, 200);
    let names: Vec<&str> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "async.completed",
            "async.errored",
            "flowx.completed",
            "flowx.errored",
            "flowx.skipped",
            "factx.query"
        ]
    );
    for t in reply.body["data"].as_array().unwrap() {
        assert!(t["description"].as_str().unwrap().len() > 10);
    }
}

/// (body, expected status, expected code, expected field)
fn invalid_creates() -> Vec<(Value, &'static str, Option<&'static str>)> {
    let ok = create_body();
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    vec![
        (
            json!({"events": ["async.completed"]}),
            "missing_field",
            Some("url"),
        ),
        (
            json!({"url": "https://a.example.com/"}),
            "missing_field",
            Some("events"),
        ),
        (with("extra", json!(1)), "unknown_field", Some("extra")),
        (with("url", json!(42)), "invalid_type", Some("url")),
        (
            with("url", json!("not a url")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("ftp://a.example.com/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("https://u:p@a.example.com/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("https://a.example.com/#x")),
            "invalid_value",
            Some("url"),
        ),
        (
            with(
                "url",
                json!(format!("https://a.example.com/{}", "a".repeat(2030))),
            ),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://127.0.0.1/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://2130706433/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://0x7f.1/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://169.254.169.254/latest/meta-data/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://localhost:8080/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://[::1]/")),
            "invalid_value",
            Some("url"),
        ),
        (
            with("url", json!("http://[::ffff:10.0.0.1]/")),
            "invalid_value",
            Some("url"),
        ),
        (with("events", json!([])), "invalid_value", Some("events")),
        (
            with("events", json!(["async.done"])),
            "invalid_value",
            Some("events"),
        ),
        (
            with("events", json!("async.completed")),
            "invalid_type",
            Some("events"),
        ),
        (
            with("status", json!("paused")),
            "invalid_value",
            Some("status"),
        ),
        (
            with("token", json!("short")),
            "invalid_value",
            Some("token"),
        ),
        (
            with("token", json!("a".repeat(257))),
            "invalid_value",
            Some("token"),
        ),
        (
            with("token", json!("abcdefghijklmnop\r\nX-Injected: 1")),
            "invalid_value",
            Some("token"),
        ),
        (
            with("token", json!("abcdefgh ijklmnop")),
            "invalid_value",
            Some("token"),
        ),
        (
            with("token", json!(12345678901234567u64)),
            "invalid_type",
            Some("token"),
        ),
        (
            with("description", json!("x".repeat(257))),
            "invalid_value",
            Some("description"),
        ),
        (json!([]), "invalid_type", None),
        (json!("hello"), "invalid_type", None),
    ]
}

#[tokio::test]
async fn invalid_creates_name_the_field_and_store_nothing() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    for (body, code, field) in invalid_creates() {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(body.clone())
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        let (got_code, got_field) = reply.error();
        assert_eq!(got_code, code, "{body}: {:?}", reply.body);
        assert_eq!(got_field.as_deref(), field, "{body}: {:?}", reply.body);
        if let Some(f) = field {
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(f), "message should name {f}: {message}");
        }
    }
    // The boundary values on the valid side are accepted.
    let mut ok = create_body();
    ok["token"] = json!("a".repeat(16));
    ok["description"] = json!("é".repeat(256));
    ok["url"] = json!(format!("https://a.example.com/{}", "a".repeat(2048 - 22)));
    let reply = Call::new("POST", "/webhooks", &key)
        .json(ok)
        .send(&app)
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let list = Call::new("GET", "/webhooks", &key).send(&app).await;
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "only the valid create stored anything"
    );
}

#[tokio::test]
async fn body_level_errors() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let cases: Vec<(Call, u16, &str)> = vec![
        (
            Call::new("POST", "/webhooks", &key).raw(Some("application/json"), "{\"url\": "),
            400,
            "malformed_json",
        ),
        (
            Call::new("POST", "/webhooks", &key).raw(Some("application/json"), "{} trailing"),
            400,
            "malformed_json",
        ),
        (
            Call::new("POST", "/webhooks", &key).raw(Some("application/json"), ""),
            400,
            "malformed_json",
        ),
        (
            Call::new("POST", "/webhooks", &key).raw(Some("text/plain"), create_body().to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            Call::new("POST", "/webhooks", &key).raw(None, create_body().to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            Call::new("POST", "/webhooks", &key).raw(
                Some("application/json"),
                format!("{{\"description\": \"{}\"}}", "x".repeat(64 * 1024)),
            ),
            413,
            "payload_too_large",
        ),
    ];
    for (call, status, code) in cases {
        let reply = call.send(&app).await;
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert_eq!(reply.error().0, code);
    }
    let charset = Call::new("POST", "/webhooks", &key)
        .raw(
            Some("Application/JSON; charset=utf-8"),
            create_body().to_string(),
        )
        .send(&app)
        .await;
    assert_eq!(charset.status, 201, "{:?}", charset.body);
}

#[tokio::test]
async fn invalid_updates_change_nothing() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(create_body())
        .send(&app)
        .await;
    let path = format!("/webhooks/{}", created.body["id"].as_str().unwrap());
    let before = Call::new("GET", &path, &key).send(&app).await.body;
    let cases = [
        (json!({"url": null}), "invalid_type", "url"),
        (json!({"events": null}), "invalid_type", "events"),
        (json!({"events": []}), "invalid_value", "events"),
        (json!({"status": "deleted"}), "invalid_value", "status"),
        (
            json!({"token": "bad token with spaces"}),
            "invalid_value",
            "token",
        ),
        (
            json!({"url": "https://fine.example.com/", "token": "x"}),
            "invalid_value",
            "token",
        ),
        (
            json!({"status": "inactive", "url": "http://10.0.0.1/"}),
            "invalid_value",
            "url",
        ),
        (
            json!({"id": "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            "unknown_field",
            "id",
        ),
    ];
    for (body, code, field) in cases {
        let reply = Call::new("PATCH", &path, &key)
            .json(body.clone())
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(
            reply.error(),
            (code.to_owned(), Some(field.to_owned())),
            "{body}"
        );
    }
    let after = Call::new("GET", &path, &key).send(&app).await.body;
    assert_eq!(before, after);
}

#[tokio::test]
async fn list_query_errors() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=d2hfMTIz", "cursor"),
    ] {
        let reply = Call::new("GET", &format!("/webhooks?{query}"), &key)
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(
            reply.error(),
            ("invalid_value".to_owned(), Some(field.to_owned())),
            "{query}"
        );
    }
    for query in ["limit=1", "limit=100"] {
        let reply = Call::new("GET", &format!("/webhooks?{query}"), &key)
            .send(&app)
            .await;
        assert_eq!(reply.status, 200, "{query}");
    }
}

#[tokio::test]
async fn the_webhook_limit_is_409_and_frees_up_on_delete() {
    let app = fresh_app(3).await;
    let key = api_key_for(&app.store, "acme").await;
    let other = api_key_for(&app.store, "other").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(create_body())
            .send(&app)
            .await;
        assert_eq!(reply.status, 201);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let refused = Call::new("POST", "/webhooks", &key)
        .json(create_body())
        .send(&app)
        .await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.error().0, "webhook_limit_reached");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains('3')
    );
    let list = Call::new("GET", "/webhooks", &key).send(&app).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 3);

    let elsewhere = Call::new("POST", "/webhooks", &other)
        .json(create_body())
        .send(&app)
        .await;
    assert_eq!(elsewhere.status, 201, "the limit is per tenant");

    let del = Call::new("DELETE", &format!("/webhooks/{}", ids[0]), &key)
        .send(&app)
        .await;
    assert_eq!(del.status, 204);
    let again = Call::new("POST", "/webhooks", &key)
        .json(create_body())
        .send(&app)
        .await;
    assert_eq!(again.status, 201);
}

#[tokio::test]
async fn concurrent_creates_never_exceed_the_limit() {
    let app = fresh_app(5).await;
    let key = api_key_for(&app.store, "acme").await;
    let body = create_body();
    let calls: Vec<_> = (0..12)
        .map(|_| Call::new("POST", "/webhooks", &key).json(body.clone()))
        .collect();
    let replies = futures_util::future::join_all(calls.iter().map(|c| c.send(&app))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        created,
        5,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused, 7);
}

#[tokio::test]
async fn the_delivery_log_is_paginated_newest_first_and_tenant_isolated() {
    use shared::delivery::{Attempt, Outcome};
    use shared::delivery_log::DeliveryRecord;
    use shared::store::prelude::*;

    let app = fresh_app(50).await;
    let key_a = api_key_for(&app.store, "tenant-a").await;
    let key_b = api_key_for(&app.store, "tenant-b").await;
    let created = Call::new("POST", "/webhooks", &key_a)
        .json(create_body())
        .send(&app)
        .await;
    let id: shared::WebhookId = created.body["id"].as_str().unwrap().parse().unwrap();
    let base = time::OffsetDateTime::now_utc();
    let mut event_ids = Vec::new();
    for i in 0..5 {
        let event_id = shared::event::EventId::parse(&format!("evt_{i}")).unwrap();
        let attempt = Attempt {
            outcome: if i % 2 == 0 {
                Outcome::Delivered
            } else {
                Outcome::HttpError
            },
            status: Some(if i % 2 == 0 { 200 } else { 503 }),
            duration_ms: 10 + i,
            response_excerpt: Some(format!("reply {i}")),
            location: None,
            error: None,
            retry_after: None,
        };
        let started = base + time::Duration::seconds(i as i64);
        let record = DeliveryRecord::new(
            shared::TenantId::parse("tenant-a").unwrap(),
            id,
            event_id.clone(),
            shared::EventType::AsyncCompleted,
            started,
            attempt,
            30,
        );
        app.store.record_delivery(&record).await.unwrap();
        event_ids.push(event_id.to_string());
    }
    event_ids.reverse();

    let path = format!("/webhooks/{id}/deliveries");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for expected_len in [2, 2, 1] {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let page = Call::new("GET", &url, &key_a).send(&app).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert_eq!(data.len(), expected_len);
        seen.extend(
            data.iter()
                .map(|r| r["event_id"].as_str().unwrap().to_owned()),
        );
        cursor = page
            .body
            .get("next_cursor")
            .map(|c| c.as_str().unwrap().to_owned());
    }
    assert!(cursor.is_none());
    assert_eq!(seen, event_ids, "newest first");
    let first = Call::new("GET", &format!("{path}?limit=1"), &key_a)
        .send(&app)
        .await
        .body;
    let newest = &first["data"][0];
    assert_eq!(newest["outcome"], "delivered");
    assert_eq!(newest["status"], 200);
    assert_eq!(newest["event_type"], "async.completed");
    assert_eq!(newest["response_body"], "reply 4");
    assert_eq!(newest["webhook_id"], id.to_string());

    let other = Call::new("GET", &path, &key_b).send(&app).await;
    assert_eq!(other.status, 404, "another tenant's delivery log");
    let bad = Call::new("GET", &format!("{path}?cursor=bm9wZQ"), &key_a)
        .send(&app)
        .await;
    assert_eq!(
        bad.error(),
        ("invalid_value".to_owned(), Some("cursor".to_owned()))
    );
}

#[tokio::test]
async fn a_concurrent_update_never_undoes_a_token_rotation() {
    let app = fresh_app(50).await;
    let key = api_key_for(&app.store, "acme").await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(create_body())
        .send(&app)
        .await;
    let path = format!("/webhooks/{}", created.body["id"].as_str().unwrap());
    let token_path = format!("{path}/token");
    let mut calls = vec![Call::new("POST", &token_path, &key)];
    for i in 0..8 {
        calls.push(
            Call::new("PATCH", &path, &key).json(json!({"description": format!("edit {i}")})),
        );
    }
    let replies = futures_util::future::join_all(calls.iter().map(|c| c.send(&app))).await;
    for reply in &replies {
        assert!(
            reply.status == 200 || reply.error().0 == "concurrent_update",
            "{:?}",
            reply.body
        );
    }
    let now = Call::new("GET", &path, &key).send(&app).await.body;
    let last4 = |t: &str| format!("****{}", &t[t.len() - 4..]);
    if replies[0].status == 200 {
        let rotated = replies[0].body["token"].as_str().unwrap();
        assert_eq!(now["token"], last4(rotated), "the rotated token stays");
    } else {
        // Out-raced five times: then nothing changed the token at all.
        let original = created.body["token"].as_str().unwrap();
        assert_eq!(now["token"], last4(original));
    }
    assert!(now["description"].as_str().unwrap().starts_with("edit "));
}

#[tokio::test]
async fn the_dashboard_is_served_without_a_key_with_a_strict_policy() {
    let app = fresh_app(50).await;
    for (path, media) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let reply = Call::new("GET", path, "").no_key().send(&app).await;
        assert_eq!(reply.status, 200, "{path}");
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(media), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
    }
    // The page has no inline script and loads nothing from another origin.
    let page = Call::new("GET", "/dashboard", "").no_key().send(&app).await;
    let html = page.body.as_str().unwrap();
    assert!(html.contains(r#"<script src="dashboard/app.js" defer></script>"#));
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("http://") && !html.contains("https://"));
    // The API itself still needs a key.
    let api = Call::new("GET", "/webhooks", "").no_key().send(&app).await;
    assert_eq!(api.status, 401);
}
