//! The audit log on DynamoDB (moto): each change the API, the operator and
//! the platform make leaves one entry, written in the change's own
//! transaction, naming who did what to which target and what changed; a
//! write that fails its condition leaves none; a tenant reads its own
//! entries only, newest first, filtered and paged; and no entry holds a
//! token, signing secret or API key (a scan of the raw table shows it).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use shared::api_key::{self, ApiKey, KeyId, Scope};
use shared::audit::{self, Action, Actor, AuditEntry};
use shared::event::EventId;
use shared::event_log::{Retention, StoredEvent};
use shared::infra::create_queues;
use shared::key_lifecycle::{self, KeyError};
use shared::recovery::state::{RecoveryState, Window};
use shared::requeue::Requeue;
use shared::store::prelude::*;
use shared::store::{
    AuditQuery, Conditional, DynamoStore, Keep, RecoveryWrite, StoreError, StreakChange, keys,
};
use shared::webhook::now_utc;
use shared::{EventSet, EventType, Status, TenantId, Webhook, WebhookUrl};
use testkit::aws::{receive, sqs_client};
use testkit::{Call, fresh_app, unique};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type App = api::App<DynamoStore>;
type Item = HashMap<String, AttributeValue>;

/// A key of `tenant`'s made by the operator: the key (to call with) and
/// what is stored of it (its id and prefix name it in the log).
async fn operator_key(store: &DynamoStore, tenant: &str) -> (String, ApiKey) {
    let tenant = TenantId::parse(tenant).unwrap();
    key_lifecycle::issue(store, tenant, "ops".into(), Scope::Full, None)
        .await
        .expect("the operator's key")
}

/// How the log names a request made with `key`.
fn by(key: &ApiKey) -> Value {
    json!({"type": "api_key", "id": key.id.to_string(), "prefix": key.shown})
}

fn target(kind: &str, id: impl std::fmt::Display) -> Value {
    json!({"type": kind, "id": id.to_string()})
}

/// `GET /audit-log?{query}`: its body.
async fn read_log(app: &App, key: &str, query: &str) -> Value {
    let path = format!("/audit-log?{query}");
    let got = Call::new("GET", &path, key).send(app).await;
    assert_eq!(got.status, 200, "{path}: {}", got.body);
    got.body
}

fn entries(body: &Value) -> Vec<Value> {
    body["data"].as_array().expect("a list").clone()
}

fn cursor(body: &Value) -> Option<String> {
    body.get("next_cursor")
        .map(|c| c.as_str().expect("a cursor").to_owned())
}

/// Every page of `GET /audit-log?{query}`, following each cursor; each
/// page holds at most `limit` entries, if the query gives one.
async fn pages(app: &App, key: &str, query: &str) -> Vec<Vec<Value>> {
    let limit = query
        .split('&')
        .find_map(|p| p.strip_prefix("limit="))
        .map(|l| l.parse::<usize>().unwrap());
    let mut found = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let query = match &next {
            Some(c) if query.is_empty() => format!("cursor={c}"),
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let body = read_log(app, key, &query).await;
        let page = entries(&body);
        if let Some(limit) = limit {
            assert!(page.len() <= limit, "{query}: {} entries", page.len());
        }
        found.push(page);
        next = cursor(&body);
        if next.is_none() {
            return found;
        }
        assert!(found.len() < 100, "{query}: a cursor that never ends");
    }
}

/// Every entry of `GET /audit-log?{query}`, newest first.
async fn whole_log(app: &App, key: &str, query: &str) -> Vec<Value> {
    pages(app, key, query).await.concat()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().expect("an action"))
        .collect()
}

fn ids(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect()
}

fn at(entry: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(entry["at"].as_str().expect("at"), &Rfc3339).expect("RFC 3339")
}

/// What the API answered, its status checked.
async fn call(app: &App, key: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut c = Call::new(method, path, key);
    if let Some(body) = body {
        c = c.json(body);
    }
    let got = c.send(app).await;
    assert!(
        (200..300).contains(&got.status),
        "{method} {path}: {} {}",
        got.status,
        got.body
    );
    got.body
}

/// The tenant's log as the API shows it, watched between changes: what
/// each change added, the entries before it untouched.
struct Watch<'a> {
    app: &'a App,
    key: String,
    seen: Vec<Value>,
}

impl<'a> Watch<'a> {
    async fn new(app: &'a App, key: &str) -> Self {
        let seen = whole_log(app, key, "").await;
        Self {
            app,
            key: key.to_owned(),
            seen,
        }
    }

    /// The entries added since the last look, newest first.
    async fn added(&mut self) -> Vec<Value> {
        let all = whole_log(self.app, &self.key, "").await;
        assert!(
            all.len() >= self.seen.len(),
            "entries went: {all:#?}\nwere {:#?}",
            self.seen
        );
        let (new, old) = all.split_at(all.len() - self.seen.len());
        assert_eq!(old, self.seen.as_slice(), "an older entry changed");
        let new = new.to_vec();
        self.seen = all;
        for e in &new {
            assert!(e["id"].as_str().unwrap().starts_with("aud_"), "{e}");
            assert!(e.get("tenant_id").is_none(), "the tenant is not shown: {e}");
            let age = now_utc() - at(e);
            assert!(age.whole_seconds().abs() < 60, "made now: {e}");
        }
        new
    }

    /// The one entry the last change added.
    async fn one(&mut self, what: &str) -> Value {
        let new = self.added().await;
        assert_eq!(new.len(), 1, "{what}: {new:#?}");
        new.into_iter().next().unwrap()
    }

    /// Nothing added since the last look.
    async fn none(&mut self, what: &str) {
        let new = self.added().await;
        assert!(new.is_empty(), "{what} left entries: {new:#?}");
    }
}

/// Asserts an entry's action, actor, target and changes.
fn assert_entry(entry: &Value, action: &str, actor: &Value, target: &Value, changes: &Value) {
    assert_eq!(entry["action"], action, "{entry:#}");
    assert_eq!(&entry["actor"], actor, "{action}: {entry:#}");
    assert_eq!(&entry["target"], target, "{action}: {entry:#}");
    assert_eq!(&entry["changes"], changes, "{action}: {entry:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_of_a_webhook_through_the_api_leaves_one_entry() {
    let app = fresh_app(50).await;
    let (key, me) = operator_key(&app.store, "acme").await;
    let mut log = Watch::new(&app, &key).await;
    assert_eq!(log.seen.len(), 1);
    assert_entry(
        &log.seen[0],
        "api_key.created",
        &json!({"type": "operator"}),
        &target("api_key", &me.id),
        &json!({"name": "ops", "scope": "full", "prefix": me.shown, "expires_at": null}),
    );

    let made = call(
        &app,
        &key,
        "POST",
        "/webhooks",
        Some(json!({
            "url": "https://a.example.com/hook?sig=in-the-query",
            "events": ["async.completed", "async.errored"],
            "description": "first",
        })),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let created = log.one("create").await;
    assert_entry(
        &created,
        "webhook.created",
        &by(&me),
        &target("webhook", &id),
        &json!({
            "host": "a.example.com",
            "events": ["async.completed", "async.errored"],
            "status": "active",
        }),
    );

    let path = format!("/webhooks/{id}");
    let moved = json!({"url": "https://b.example.net:8443/h", "description": "second"});
    call(&app, &key, "PATCH", &path, Some(moved.clone())).await;
    assert_entry(
        &log.one("update").await,
        "webhook.updated",
        &by(&me),
        &target("webhook", &id),
        &json!({
            "fields": ["url", "description"],
            "url": {"old_host": "a.example.com", "new_host": "b.example.net:8443"},
        }),
    );
    // The same values again: nothing changes, nothing is written.
    call(&app, &key, "PATCH", &path, Some(moved)).await;
    log.none("a PATCH that changes nothing").await;

    let off = json!({"status": "inactive", "events": ["async.completed"]});
    call(&app, &key, "PATCH", &path, Some(off)).await;
    assert_entry(
        &log.one("status").await,
        "webhook.updated",
        &by(&me),
        &target("webhook", &id),
        &json!({
            "fields": ["events", "status"],
            "status": {"old": "active", "new": "inactive"},
        }),
    );

    call(&app, &key, "POST", &format!("{path}/token"), None).await;
    assert_entry(
        &log.one("token").await,
        "webhook.token_rotated",
        &by(&me),
        &target("webhook", &id),
        &json!({"fields": ["token"]}),
    );
    call(&app, &key, "POST", &format!("{path}/signing-secret"), None).await;
    assert_entry(
        &log.one("signing secret").await,
        "webhook.signing_secret_rotated",
        &by(&me),
        &target("webhook", &id),
        &json!({"fields": ["signing_secret"]}),
    );
    // A second rotation during the overlap is refused: no entry.
    let again = Call::new("POST", &format!("{path}/signing-secret"), &key)
        .send(&app)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    log.none("a refused rotation").await;

    call(&app, &key, "DELETE", &path, None).await;
    assert_entry(
        &log.one("delete").await,
        "webhook.deleted",
        &by(&me),
        &target("webhook", &id),
        &json!({"host": "b.example.net:8443"}),
    );
    let gone = Call::new("DELETE", &path, &key).send(&app).await;
    assert_eq!(gone.status, 404);
    let missing = Call::new("PATCH", &path, &key)
        .json(json!({"description": "x"}))
        .send(&app)
        .await;
    assert_eq!(missing.status, 404);
    log.none("changes of a deleted webhook").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_revoked_and_rotated_each_leave_an_entry() {
    let app = fresh_app(50).await;
    let (key, me) = operator_key(&app.store, "acme").await;
    let tenant = me.tenant_id.clone();
    let mut log = Watch::new(&app, &key).await;

    let ci = call(
        &app,
        &key,
        "POST",
        "/api-keys",
        Some(json!({"name": "ci", "scope": "read"})),
    )
    .await;
    let ci_id = ci["id"].as_str().unwrap().to_owned();
    let ci_shown =
        json!({"name": "ci", "scope": "read", "prefix": ci["prefix"], "expires_at": null});
    assert_eq!(ci["prefix"].as_str().map(str::len), Some(8));
    assert_entry(
        &log.one("POST /api-keys").await,
        "api_key.created",
        &by(&me),
        &target("api_key", &ci_id),
        &ci_shown,
    );
    call(&app, &key, "DELETE", &format!("/api-keys/{ci_id}"), None).await;
    assert_entry(
        &log.one("DELETE /api-keys").await,
        "api_key.revoked",
        &by(&me),
        &target("api_key", &ci_id),
        &ci_shown,
    );
    // Revoking it again is no error, and changes nothing.
    call(&app, &key, "DELETE", &format!("/api-keys/{ci_id}"), None).await;
    log.none("a second revocation").await;

    // A key made by another key names its maker; a revocation of a key
    // with what it made names each key, the made ones "with" their maker.
    let parent = call(
        &app,
        &key,
        "POST",
        "/api-keys",
        Some(json!({"name": "parent", "scope": "full"})),
    )
    .await;
    let parent_id = parent["id"].as_str().unwrap().to_owned();
    let parent_key = parent["key"].as_str().unwrap().to_owned();
    log.one("the parent").await;
    let child = call(
        &app,
        &parent_key,
        "POST",
        "/api-keys",
        Some(json!({"name": "child"})),
    )
    .await;
    let child_id = child["id"].as_str().unwrap().to_owned();
    let stored_parent =
        key_lifecycle::find(&app.store, &tenant, &KeyId::parse(&parent_id).unwrap())
            .await
            .unwrap();
    assert_entry(
        &log.one("a key's key").await,
        "api_key.created",
        &by(&stored_parent),
        &target("api_key", &child_id),
        &json!({"name": "child", "scope": "full", "prefix": child["prefix"], "expires_at": null}),
    );
    call(
        &app,
        &key,
        "DELETE",
        &format!("/api-keys/{parent_id}?with_descendants=true"),
        None,
    )
    .await;
    let tree = log.added().await;
    assert_eq!(tree.len(), 2, "{tree:#?}");
    assert_entry(
        &tree[0],
        "api_key.revoked",
        &by(&me),
        &target("api_key", &child_id),
        &json!({
            "name": "child", "scope": "full", "prefix": child["prefix"], "expires_at": null,
            "with": parent_id,
        }),
    );
    assert_entry(
        &tree[1],
        "api_key.revoked",
        &by(&me),
        &target("api_key", &parent_id),
        &json!({
            "name": "parent", "scope": "full", "prefix": parent["prefix"], "expires_at": null,
            "with": null,
        }),
    );

    // The operator rotates the caller's key: a new key, and the old one's
    // end, each the operator's.
    let overlap = time::Duration::hours(2);
    let (_, new, old) = key_lifecycle::rotate(&app.store, &tenant, &me.id, overlap)
        .await
        .unwrap();
    let rotation = log.added().await;
    assert_eq!(actions(&rotation), ["api_key.rotated", "api_key.created"]);
    let operator = json!({"type": "operator"});
    let expires_at = old.expires_at.unwrap().format(&Rfc3339).unwrap();
    assert_entry(
        &rotation[0],
        "api_key.rotated",
        &operator,
        &target("api_key", &me.id),
        &json!({
            "name": "ops", "scope": "full", "prefix": me.shown,
            "successor": new.id.to_string(), "expires_at": expires_at,
        }),
    );
    let ends = OffsetDateTime::parse(&expires_at, &Rfc3339).unwrap() - api_key::now();
    assert!(
        (ends - overlap).abs() < time::Duration::minutes(1),
        "{ends}"
    );
    assert_entry(
        &rotation[1],
        "api_key.created",
        &operator,
        &target("api_key", &new.id),
        &json!({
            "name": "ops", "scope": "full", "prefix": new.shown, "expires_at": null,
            "rotated_from": me.id.to_string(),
        }),
    );
    // A revoked key is not rotated: nothing is made, nothing written.
    let refused =
        key_lifecycle::rotate(&app.store, &tenant, &KeyId::parse(&ci_id).unwrap(), overlap).await;
    assert!(
        matches!(refused, Err(KeyError::NotActive(_))),
        "{refused:?}"
    );
    log.none("a refused rotation").await;
}

/// A kept event of `tenant`'s, with `subject` if given.
async fn kept_event(store: &DynamoStore, tenant: &str, subject: Option<&str>) -> EventId {
    let event = shared::emit::NewEvent {
        id: None,
        tenant_id: tenant.to_owned(),
        event_type: "async.completed".into(),
        timestamp: None,
        subject: subject.map(str::to_owned),
        data: json!({"name": "A. Person"}),
    }
    .into_event()
    .expect("valid event");
    let retention = Retention {
        event_days: 7,
        payload_hours: 24,
    };
    store
        .put_event(&StoredEvent::new(&event, now_utc(), retention))
        .await
        .unwrap();
    event.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_payloads_redeliveries_and_recoveries_each_leave_an_entry() {
    let sqs = sqs_client().await;
    let queues = create_queues(&sqs, &unique("audit"), 5).await.unwrap();
    let app = fresh_app(50)
        .await
        .with_requeue(Requeue::lanes(&queues.events, &queues.slow));
    let (key, me) = operator_key(&app.store, "acme").await;
    let mut log = Watch::new(&app, &key).await;

    let hours = json!({"payload_retention_hours": 24});
    call(&app, &key, "PATCH", "/settings", Some(hours.clone())).await;
    assert_entry(
        &log.one("PATCH /settings").await,
        "settings.updated",
        &by(&me),
        &target("settings", "acme"),
        &json!({
            "fields": ["payload_retention_hours"],
            "payload_retention_hours": {"old": 168, "new": 24},
        }),
    );
    call(&app, &key, "PATCH", "/settings", Some(hours)).await;
    log.none("the same settings again").await;
    let both = json!({"payload_retention_hours": 48, "keep_response_bodies": false});
    call(&app, &key, "PATCH", "/settings", Some(both)).await;
    let entry = log.one("two settings").await;
    let mut fields: Vec<&str> = entry["changes"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["keep_response_bodies", "payload_retention_hours"]);
    assert_eq!(
        entry["changes"]["keep_response_bodies"],
        json!({"old": true, "new": false})
    );
    assert_eq!(
        entry["changes"]["payload_retention_hours"],
        json!({"old": 24, "new": 48})
    );

    let wh = testkit::created_webhook(&app, &key, "https://hooks.example.com/x").await;
    log.one("the webhook").await;
    let alone = kept_event(&app.store, "acme", None).await;
    let jobs = [
        kept_event(&app.store, "acme", Some("job-7")).await,
        kept_event(&app.store, "acme", Some("job-7")).await,
    ];
    log.none("events kept by the dispatcher").await;

    let queued = call(
        &app,
        &key,
        "POST",
        &format!("/events/{alone}/redeliver"),
        None,
    )
    .await;
    assert_eq!(queued["queued"].as_array().map(Vec::len), Some(1));
    assert_entry(
        &log.one("a redelivery").await,
        "event.redelivered",
        &by(&me),
        &target("event", &alone),
        &json!({"event_type": "async.completed", "webhooks": [wh]}),
    );
    let sent = receive(&sqs, &queues.slow, 1).await;
    assert_eq!(sent.len(), 1, "the attempt is on the slow lane");

    call(
        &app,
        &key,
        "DELETE",
        &format!("/events/{alone}/payload"),
        None,
    )
    .await;
    assert_entry(
        &log.one("a payload").await,
        "event.payload_deleted",
        &by(&me),
        &target("event", &alone),
        &json!({}),
    );
    // Deleted already: still 204, and no change to record.
    call(
        &app,
        &key,
        "DELETE",
        &format!("/events/{alone}/payload"),
        None,
    )
    .await;
    assert_eq!(log.added().await, Vec::<Value>::new());
    let refused = Call::new("POST", &format!("/events/{alone}/redeliver"), &key)
        .send(&app)
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let missing = Call::new("DELETE", "/events/evt_missing/payload", &key)
        .send(&app)
        .await;
    assert_eq!(missing.status, 404);
    log.none("deletions and redeliveries that did nothing")
        .await;

    let erased = call(&app, &key, "DELETE", "/subjects/job-7/payloads", None).await;
    assert_eq!(erased, json!({"subject": "job-7", "events": 2}));
    // One entry per event, each written with its deletion.
    let mut each = log.added().await;
    each.sort_by_key(|e| e["target"]["id"].as_str().map(str::to_owned));
    let mut ids: Vec<String> = jobs.iter().map(|id| id.to_string()).collect();
    ids.sort();
    assert_eq!(each.len(), ids.len(), "{each:?}");
    for (entry, id) in each.iter().zip(&ids) {
        assert_entry(
            entry,
            "event.payload_deleted",
            &by(&me),
            &target("event", id),
            &json!({"subject": "job-7"}),
        );
    }
    for id in &jobs {
        let shown = call(&app, &key, "GET", &format!("/events/{id}"), None).await;
        assert_eq!(shown["payload"], "deleted");
    }

    let since = (now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let recovery = call(
        &app,
        &key,
        "POST",
        &format!("/webhooks/{wh}/recover"),
        Some(json!({"since": since})),
    )
    .await;
    assert_entry(
        &log.one("a recovery").await,
        "recovery.started",
        &by(&me),
        &target("webhook", &wh),
        &json!({
            "recovery_id": recovery["recovery_id"],
            "since": recovery["since"],
            "until": recovery["until"],
        }),
    );
    // A dry run starts nothing.
    call(
        &app,
        &key,
        "POST",
        &format!("/webhooks/{wh}/recover"),
        Some(json!({"since": since, "dry_run": true})),
    )
    .await;
    log.none("a dry run").await;
}

/// The tenant's entries, newest first, as the store reads them.
async fn stored_log(store: &DynamoStore, tenant: &TenantId) -> Vec<AuditEntry> {
    let query = AuditQuery {
        limit: 1000,
        ..Default::default()
    };
    let page = store.audit_log(tenant, &query).await.unwrap();
    assert_eq!(page.next, None);
    page.items
}

fn webhook(tenant: &str, url: &str) -> Webhook {
    Webhook::new(
        TenantId::parse(tenant).unwrap(),
        WebhookUrl::parse(url, Default::default()).unwrap(),
        EventSet::new([EventType::AsyncCompleted]).unwrap(),
        now_utc(),
    )
}

#[tokio::test]
async fn the_platform_turns_a_webhook_off_with_an_entry_of_its_own() {
    let store = testkit::fresh_store().await;
    let w = webhook("acme", "https://hooks.example.com/in?k=1");
    let tenant = w.tenant_id.clone();
    store
        .create_webhook(&w, 10, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let mut seen = stored_log(&store, &tenant).await;
    assert_eq!(seen.len(), 1);

    // A failing streak begins: the platform's own bookkeeping, no entry.
    let since = now_utc();
    let began = StreakChange::Began {
        at: since,
        error: "status 503".into(),
    };
    assert_eq!(
        store.change_streak(&tenant, w.id, &began).await.unwrap(),
        Conditional::Applied
    );
    assert_eq!(stored_log(&store, &tenant).await, seen);

    let reason = "every attempt failed for 3 days";
    let disable = |since| StreakChange::Disabled {
        since,
        at: now_utc(),
        reason: reason.into(),
        error: "status 503".into(),
        entry: Box::new(audit::webhook_disabled(&w, reason)),
    };
    // Another streak's: refused, and no entry.
    let other = disable(since - time::Duration::seconds(1));
    assert_eq!(
        store.change_streak(&tenant, w.id, &other).await.unwrap(),
        Conditional::Refused
    );
    assert_eq!(stored_log(&store, &tenant).await, seen);
    let change = disable(since);
    let StreakChange::Disabled { entry, .. } = &change else {
        unreachable!()
    };
    let entry = (**entry).clone();
    assert_eq!(
        store.change_streak(&tenant, w.id, &change).await.unwrap(),
        Conditional::Applied
    );
    let log = stored_log(&store, &tenant).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0], entry, "the entry as given, in the change's write");
    assert_eq!(log[0].action, Action::WebhookDisabled);
    assert_eq!(log[0].actor, Actor::Platform);
    assert_eq!(
        serde_json::to_value(&log[0].target).unwrap(),
        target("webhook", w.id)
    );
    assert_eq!(
        log[0].changes,
        json!({
            "fields": ["status"],
            "status": {"old": "active", "new": "inactive"},
            "disabled_reason": reason,
        })
    );
    assert_eq!(&log[1..], seen.as_slice());
    seen = log;
    // Inactive already: refused, no entry.
    assert_eq!(
        store
            .change_streak(&tenant, w.id, &disable(since))
            .await
            .unwrap(),
        Conditional::Refused
    );
    assert_eq!(stored_log(&store, &tenant).await, seen);

    // Turned on again by the operator, then off by the platform through
    // `modify` (a receiver's 410 Gone).
    let on = (Action::WebhookUpdated, &Actor::Operator);
    shared::store::modify(&store, &tenant, w.id, on, |w| {
        w.status = Status::Active;
        w.disabled_reason = None;
        true
    })
    .await
    .unwrap();
    let gone = "the receiver answered 410 Gone";
    let off = (Action::WebhookDisabled, &Actor::Platform);
    shared::store::modify(&store, &tenant, w.id, off, |w| {
        w.status = Status::Inactive;
        w.disabled_reason = Some(gone.into());
        true
    })
    .await
    .unwrap();
    let log = stored_log(&store, &tenant).await;
    assert_eq!(log.len(), 4);
    assert_eq!(&log[2..], seen.as_slice());
    let (disabled, enabled) = (&log[0], &log[1]);
    assert_eq!(
        (enabled.action, &enabled.actor),
        (Action::WebhookUpdated, &Actor::Operator)
    );
    assert_eq!(
        enabled.changes,
        json!({"fields": ["status"], "status": {"old": "inactive", "new": "active"}})
    );
    assert_eq!(
        (disabled.action, &disabled.actor),
        (Action::WebhookDisabled, &Actor::Platform)
    );
    assert_eq!(disabled.target.id, w.id.to_string());
    assert_eq!(
        disabled.changes,
        json!({
            "fields": ["status"],
            "status": {"old": "active", "new": "inactive"},
            "disabled_reason": gone,
        })
    );
    let read = store.get_webhook(&tenant, w.id).await.unwrap().unwrap();
    assert_eq!(read.disabled_reason.as_deref(), Some(gone));
}

#[tokio::test]
async fn a_write_that_fails_its_condition_leaves_no_entry() {
    let store = testkit::fresh_store().await;
    let tenant = TenantId::parse("acme").unwrap();
    let w = webhook("acme", "https://hooks.example.com/a");
    store
        .create_webhook(&w, 2, &shared::audit::operator::created(&w))
        .await
        .unwrap();
    let (_, full) = operator_key(&store, "acme").await;
    let (_, other) = operator_key(&store, "acme").await;
    let before = stored_log(&store, &tenant).await;
    assert_eq!(before.len(), 3);

    // A webhook changed since it was read: Conflict.
    let mut newer = w.clone();
    newer.description = Some(shared::webhook::Description::parse("newer").unwrap());
    newer.updated_at = w.updated_at + time::Duration::seconds(1);
    let mut stale = w.clone();
    stale.status = Status::Inactive;
    stale.updated_at = w.updated_at + time::Duration::seconds(2);
    let entry = shared::audit::operator::updated(&w, &newer);
    store
        .update_webhook(&newer, w.updated_at, &entry)
        .await
        .unwrap();
    let before = stored_log(&store, &tenant).await;
    assert_eq!(before[0], entry);
    let refused = store
        .update_webhook(
            &stale,
            w.updated_at,
            &shared::audit::operator::updated(&w, &stale),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    unchanged(&store, &before, "a stale update").await;
    let current = store.get_webhook(&tenant, w.id).await.unwrap().unwrap();
    assert_eq!(current, newer, "the stale write changed nothing");

    // Over the tenant's limit of webhooks, or one that exists: refused.
    let second = webhook("acme", "https://hooks.example.com/b");
    store
        .create_webhook(&second, 2, &shared::audit::operator::created(&second))
        .await
        .unwrap();
    let before = stored_log(&store, &tenant).await;
    let third = webhook("acme", "https://hooks.example.com/c");
    let over = store
        .create_webhook(&third, 2, &shared::audit::operator::created(&third))
        .await;
    assert!(
        matches!(over, Err(StoreError::LimitReached { limit: 2 })),
        "{over:?}"
    );
    unchanged(&store, &before, "a create over the limit").await;
    let twice = store
        .create_webhook(&second, 10, &shared::audit::operator::created(&second))
        .await;
    assert!(matches!(twice, Err(StoreError::AlreadyExists)), "{twice:?}");
    unchanged(&store, &before, "a create of an existing webhook").await;
    // Deleted or changed when it does not exist: NotFound.
    let missing = store
        .delete_webhook(
            &tenant,
            third.id,
            &shared::audit::operator::deleted(&tenant, third.id),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    let never = store
        .update_webhook(
            &third,
            third.updated_at,
            &shared::audit::operator::updated(&third, &third),
        )
        .await;
    assert!(matches!(never, Err(StoreError::NotFound)), "{never:?}");
    unchanged(&store, &before, "writes of a missing webhook").await;

    // Keys: over the limit; revoking a revoked key; a kept key that no
    // longer holds; expiring a revoked key.
    let (_, extra) = ApiKey::issue(
        tenant.clone(),
        "extra".into(),
        Scope::Read,
        None,
        api_key::now(),
    );
    let limited = store
        .put_api_key(
            &extra,
            Some(2),
            &shared::audit::operator::key(&extra, Action::ApiKeyCreated),
        )
        .await
        .unwrap();
    assert_eq!(limited, Conditional::Refused);
    unchanged(&store, &before, "a key over the limit").await;
    let now = api_key::now();
    store
        .revoke_api_key(
            &other,
            now,
            None,
            &shared::audit::operator::key(&other, Action::ApiKeyRevoked),
        )
        .await
        .unwrap();
    let before = stored_log(&store, &tenant).await;
    assert_eq!(before[0].action, Action::ApiKeyRevoked);
    let again = store
        .revoke_api_key(
            &other,
            now,
            None,
            &shared::audit::operator::key(&other, Action::ApiKeyRevoked),
        )
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    unchanged(&store, &before, "revoking a revoked key").await;
    let keep = Keep {
        key: &other,
        until: now,
    };
    let kept = store
        .revoke_api_key(
            &full,
            now,
            Some(keep),
            &shared::audit::operator::key(&full, Action::ApiKeyRevoked),
        )
        .await;
    assert!(matches!(kept, Err(StoreError::Conflict)), "{kept:?}");
    unchanged(&store, &before, "a revocation whose kept key is revoked").await;
    let expired = store
        .expire_api_key(
            &other,
            now + time::Duration::hours(1),
            &shared::audit::operator::key(&other, Action::ApiKeyRotated),
        )
        .await;
    assert!(matches!(expired, Err(StoreError::NotFound)), "{expired:?}");
    unchanged(&store, &before, "expiring a revoked key").await;

    // A recovery while one runs: refused.
    let window = Window {
        since: now_utc() - time::Duration::hours(1),
        until: now_utc(),
    };
    let first = RecoveryState::start(tenant.clone(), w.id, window, now_utc());
    let unix = now_utc().unix_timestamp();
    let entry = shared::audit::operator::recovery(&tenant, w.id);
    let write = RecoveryWrite::Start {
        now: unix,
        entry: &entry,
    };
    assert!(store.save_recovery(&first, write).await.unwrap().applied());
    let before = stored_log(&store, &tenant).await;
    assert_eq!(before[0], entry);
    let running = RecoveryState::start(tenant.clone(), w.id, window, now_utc());
    let entry = shared::audit::operator::recovery(&tenant, w.id);
    let write = RecoveryWrite::Start {
        now: unix,
        entry: &entry,
    };
    assert_eq!(
        store.save_recovery(&running, write).await.unwrap(),
        Conditional::Refused
    );
    assert_eq!(stored_log(&store, &tenant).await, before, "a refused start");
    let kept = store.recovery(&tenant, w.id).await.unwrap().unwrap();
    assert_eq!(kept.recovery_id, first.recovery_id);

    // An event that is not kept: no attempts numbered, no payload deleted.
    let missing = EventId::parse("evt_missing").unwrap();
    let numbered = store
        .number_manual_attempts(
            &tenant,
            &missing,
            &[w.id],
            unix,
            &shared::audit::operator::redelivered(&tenant, &missing),
        )
        .await
        .unwrap();
    assert_eq!(numbered, None);
    let deleted = store
        .delete_payload(
            &tenant,
            &missing,
            &shared::audit::operator::payload_deleted(&tenant, &missing),
        )
        .await
        .unwrap();
    assert!(!deleted);
    assert_eq!(stored_log(&store, &tenant).await, before, "a missing event");
}

/// Asserts the tenant's log is still `before`: `what` left no entry.
async fn unchanged(store: &DynamoStore, before: &[AuditEntry], what: &str) {
    let tenant = &before[0].tenant_id;
    assert_eq!(
        stored_log(store, tenant).await,
        before,
        "{what} left an entry"
    );
}

fn shown(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_changes_read_back_newest_first_by_its_key_and_the_table_holds_no_secret() {
    let app = fresh_app(50).await;
    let started = now_utc();
    let (key, me) = operator_key(&app.store, "acme").await;
    let (theirs, stranger) = operator_key(&app.store, "globex").await;
    let mark = unique("mark");
    // What the sequence shows, once each: none of it may be in an entry.
    let mut secrets = vec![key.clone(), theirs.clone()];

    let chosen = format!("customer-token-{mark}");
    let made = call(
        &app,
        &key,
        "POST",
        "/webhooks",
        Some(json!({
            "url": format!("https://a.example.com/h?sig=query-{mark}"),
            "events": ["async.completed"],
            "token": chosen,
        })),
    )
    .await;
    let id = shown(&made, "id");
    secrets.extend([
        chosen,
        shown(&made, "signing_secret"),
        format!("query-{mark}"),
    ]);
    let path = format!("/webhooks/{id}");
    let url = json!({"url": format!("https://b.example.net/h?sig=other-{mark}")});
    call(&app, &key, "PATCH", &path, Some(url)).await;
    secrets.push(format!("other-{mark}"));
    let token = call(&app, &key, "POST", &format!("{path}/token"), None).await;
    secrets.push(shown(&token, "token"));
    let secret = call(&app, &key, "POST", &format!("{path}/signing-secret"), None).await;
    let signing_secret = shown(&secret, "signing_secret");
    secrets.push(signing_secret.clone());
    let last_token = format!("customer-token-2-{mark}");
    let patched = call(
        &app,
        &key,
        "PATCH",
        &path,
        Some(json!({"token": last_token})),
    )
    .await;
    assert_eq!(shown(&patched, "token"), last_token);
    secrets.push(last_token.clone());
    let made_key = call(
        &app,
        &key,
        "POST",
        "/api-keys",
        Some(json!({"name": format!("name-{mark}")})),
    )
    .await;
    secrets.push(shown(&made_key, "key"));
    let made_id = shown(&made_key, "id");
    call(
        &app,
        &key,
        "PATCH",
        "/settings",
        Some(json!({"keep_response_bodies": false})),
    )
    .await;
    call(&app, &key, "DELETE", &format!("/api-keys/{made_id}"), None).await;
    let other = testkit::created_webhook(&app, &key, "https://c.example.org/h").await;
    call(&app, &key, "DELETE", &format!("/webhooks/{other}"), None).await;

    // Newest first, each the calling key's; the operator's key first of all.
    let log = whole_log(&app, &key, "").await;
    assert_eq!(
        actions(&log),
        [
            "webhook.deleted",
            "webhook.created",
            "api_key.revoked",
            "settings.updated",
            "api_key.created",
            "webhook.updated",
            "webhook.signing_secret_rotated",
            "webhook.token_rotated",
            "webhook.updated",
            "webhook.created",
            "api_key.created",
        ]
    );
    let (operator, calls) = log.split_last().unwrap();
    for e in calls {
        assert_eq!(e["actor"]["type"], "api_key", "{e}");
        assert_eq!(e["actor"]["id"], me.id.to_string(), "{e}");
        assert_eq!(e["actor"], by(&me), "{e}");
    }
    assert_eq!(operator["actor"], json!({"type": "operator"}));
    assert_eq!(operator["target"], target("api_key", &me.id));
    let listed = ids(&log);
    let mut sorted = listed.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(listed, sorted, "ids newest first, each once");
    assert!(log.windows(2).all(|w| at(&w[0]) >= at(&w[1])));
    assert_eq!(log[6]["changes"], json!({"fields": ["signing_secret"]}));
    assert_eq!(log[5]["changes"], json!({"fields": ["token"]}));
    assert_eq!(
        log[8]["changes"],
        json!({
            "fields": ["url"],
            "url": {"old_host": "a.example.com", "new_host": "b.example.net"},
        })
    );

    // Another tenant reads its own entry only.
    let elsewhere = whole_log(&app, &theirs, "").await;
    assert_eq!(actions(&elsewhere), ["api_key.created"]);
    assert_eq!(elsewhere[0]["target"], target("api_key", &stranger.id));
    let text = serde_json::to_string(&elsewhere).unwrap();
    for id in listed.iter().chain([&id.as_str(), &made_id.as_str()]) {
        assert!(!text.contains(id), "globex sees {id}");
    }
    let filtered = whole_log(&app, &theirs, "action=webhook.created").await;
    assert!(filtered.is_empty(), "{filtered:#?}");

    // The raw table: the entries are the tenant's items, each with its TTL.
    let items = testkit::raw_items(&app.store).await;
    let acme = keys::tenant_pk(&me.tenant_id);
    let audit: Vec<&(String, String, Item)> = items
        .iter()
        .filter(|(_, sk, _)| sk.starts_with(keys::AUDIT_PREFIX))
        .collect();
    assert_eq!(audit.len(), log.len() + elsewhere.len());
    let mut in_acme: Vec<&str> = audit
        .iter()
        .filter(|(pk, _, _)| *pk == acme)
        .map(|(_, sk, _)| &sk[keys::AUDIT_PREFIX.len()..])
        .collect();
    in_acme.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(in_acme, listed, "every entry shown, none other stored");
    let ended = now_utc();
    for (_, sk, item) in &audit {
        let made = OffsetDateTime::parse(item["at"].as_s().unwrap(), &Rfc3339).unwrap();
        assert!(
            started - time::Duration::SECOND <= made && made <= ended,
            "{sk}"
        );
        let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        let retention = time::Duration::days(audit::RETENTION_DAYS);
        assert_eq!(retention, time::Duration::days(400));
        assert_eq!(expires, (made + retention).unix_timestamp(), "{sk}");
        let from_now = expires - (now_utc() + retention).unix_timestamp();
        assert!((-120..=1).contains(&from_now), "{sk}: {from_now} s");
    }
    // No token, signing secret, key or URL query in any entry.
    for (_, sk, item) in &audit {
        let text = testkit::item_text(item);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{sk} holds {secret}");
        }
    }
    // Negative control: the same search finds the webhook's own secrets
    // in its item, and the key's name in its entry.
    let (_, _, hook) = items
        .iter()
        .find(|(pk, sk, _)| *pk == acme && *sk == keys::webhook_sk(id.parse().unwrap()))
        .expect("the webhook's item");
    let hook = testkit::item_text(hook);
    for secret in [&signing_secret, &last_token, &format!("other-{mark}")] {
        assert!(hook.contains(secret.as_str()), "the search misses {secret}");
    }
    let texts: Vec<String> = audit
        .iter()
        .map(|(_, _, item)| testkit::item_text(item))
        .collect();
    assert!(texts.iter().any(|t| t.contains(&format!("name-{mark}"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filters_by_action_and_time_and_pages_on_with_a_cursor() {
    let app = fresh_app(50).await;
    let (key, _) = operator_key(&app.store, "acme").await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(3));
    for hours in [24, 48, 72, 96, 120] {
        pause().await;
        let body = json!({"payload_retention_hours": hours});
        call(&app, &key, "PATCH", "/settings", Some(body)).await;
    }
    pause().await;
    let between = now_utc();
    pause().await;
    for n in 0..3 {
        testkit::created_webhook(&app, &key, &format!("https://h{n}.example.com/")).await;
    }
    let all = whole_log(&app, &key, "").await;
    assert_eq!(all.len(), 9, "{all:#?}");
    let of = |action: &str| -> Vec<Value> {
        all.iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    };
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();

    // One entry a page: every entry once, newest first.
    let one_by_one = pages(&app, &key, "limit=1").await;
    assert_eq!(one_by_one.len(), 9);
    assert_eq!(one_by_one.concat(), all);

    // By action, two a page.
    let settings = pages(&app, &key, "action=settings.updated&limit=2").await;
    assert_eq!(settings.concat(), of("settings.updated"));
    assert_eq!(settings[0].len(), 2, "a full first page");
    assert_eq!(
        settings.concat()[0]["changes"]["payload_retention_hours"],
        json!({"old": 96, "new": 120})
    );
    assert_eq!(
        whole_log(&app, &key, "action=webhook.created").await,
        of("webhook.created")
    );
    let nothing = read_log(&app, &key, "action=api_key.rotated").await;
    assert_eq!(nothing, json!({"data": []}), "no entry and no cursor");

    // By time: since is inclusive, until exclusive.
    let since = whole_log(&app, &key, &format!("since={}", time(between))).await;
    assert_eq!(since, of("webhook.created"));
    let until = whole_log(&app, &key, &format!("until={}", time(between))).await;
    assert_eq!(until, all[3..].to_vec());
    let middle = &all[5];
    assert_eq!(middle["action"], "settings.updated");
    let from_it = whole_log(
        &app,
        &key,
        &format!("since={}", middle["at"].as_str().unwrap()),
    )
    .await;
    let want: Vec<Value> = all
        .iter()
        .filter(|e| at(e) >= at(middle))
        .cloned()
        .collect();
    assert_eq!(from_it, want);
    assert!(from_it.contains(middle));
    let before_it = whole_log(
        &app,
        &key,
        &format!("until={}", middle["at"].as_str().unwrap()),
    )
    .await;
    let want: Vec<Value> = all.iter().filter(|e| at(e) < at(middle)).cloned().collect();
    assert_eq!(before_it, want);
    assert!(!before_it.contains(middle));

    // All of them at once: a window, an action, a page size, a cursor.
    let start = at(all.last().unwrap());
    let window = format!(
        "since={}&until={}&action=settings.updated&limit=2",
        time(start),
        time(between)
    );
    let windowed = pages(&app, &key, &window).await;
    assert_eq!(windowed.concat(), of("settings.updated"));
    assert!(windowed.len() >= 3, "five entries, two a page");

    // A cursor of one window is refused in another.
    let later = read_log(&app, &key, &format!("since={}&limit=1", time(between))).await;
    let c = cursor(&later).expect("a cursor");
    let elsewhere = Call::new(
        "GET",
        &format!("/audit-log?until={}&cursor={c}", time(between)),
        &key,
    )
    .send(&app)
    .await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert_eq!(elsewhere.error().1.as_deref(), Some("cursor"));
    // The same cursor, in its own window, pages on.
    let on = whole_log(
        &app,
        &key,
        &format!("since={}&limit=1&cursor={c}", time(between)),
    )
    .await;
    assert_eq!(on, of("webhook.created")[1..].to_vec());
}

/// `since` and `until` finer than a millisecond bound the window as given:
/// an entry made at `x` ms is before `x.5` ms, so `since=x.5` leaves it
/// out and `until=x.5` takes it in (as the in-memory store does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_finer_than_a_millisecond_bounds_it_as_given() {
    let app = fresh_app(50).await;
    let (key, _) = operator_key(&app.store, "acme").await;
    let all = whole_log(&app, &key, "").await;
    assert_eq!(all.len(), 1);
    let half = (at(&all[0]) + time::Duration::microseconds(500))
        .format(&Rfc3339)
        .unwrap();
    let since = whole_log(&app, &key, &format!("since={half}")).await;
    assert_eq!(since, Vec::<Value>::new(), "made before since={half}");
    let until = whole_log(&app, &key, &format!("until={half}")).await;
    assert_eq!(until, all, "made before until={half}");
}
