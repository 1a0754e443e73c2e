//! `/api-keys`: a tenant's own keys. It lists them (never a secret), makes
//! new ones (each shown once), and revokes them; it may not revoke its last
//! active full-scope key. A read-scope key gets none of the writes: the
//! scope check is in `auth`, before any handler.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::TenantId;
use shared::api_key::{self, ApiKey, KeyId, Scope};
use shared::audit::Author;
use shared::key_lifecycle::{self, Guard};
use shared::store::ApiKeyStore;
use time::OffsetDateTime;

use crate::query::Query;
use crate::{ApiError, App, body, response, rfc3339};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scope: Option<Scope>,
    /// RFC 3339, in the future.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A key as the API shows it: never the key, never its hash.
#[derive(Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub scope: Scope,
    /// `active`, `expired` or `revoked`, now.
    pub status: &'static str,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The key that made it through the API; null for the operator's.
    pub created_by: Option<String>,
}

impl KeyView {
    pub fn new(k: &ApiKey, now: OffsetDateTime) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.shown.clone(),
            scope: k.scope,
            status: k.state(now).as_str(),
            created_at: k.created_at.map(rfc3339::format),
            expires_at: k.expires_at.map(rfc3339::format),
            revoked_at: k.revoked_at.map(rfc3339::format),
            last_used_at: k.last_used_at.map(rfc3339::format),
            created_by: k.created_by.as_ref().map(ToString::to_string),
        }
    }
}

/// `value` of `field` as a time after `now`.
fn in_the_future(
    field: &str,
    value: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, ApiError> {
    let t = rfc3339::parse(field, value)?;
    if t <= now {
        return Err(ApiError::invalid(
            field,
            format!("{field}: must be in the future (got {value:?})"),
        ));
    }
    Ok(t)
}

#[derive(Serialize)]
struct KeyList {
    data: Vec<KeyView>,
}

/// A new key: shown this once.
#[derive(Serialize)]
struct NewKey {
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

/// `GET /api-keys`: the tenant's keys, never a secret.
pub async fn list<S: ApiKeyStore>(
    app: &App<S>,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let now = api_key::now();
    let keys = app.store.api_keys_of(&tenant).await?;
    let data = keys.iter().map(|k| KeyView::new(k, now)).collect();
    Ok(response::json(StatusCode::OK, &KeyList { data }))
}

/// `POST /api-keys`: a new key, shown this once, of at most the caller's scope.
pub async fn create<S: ApiKeyStore>(
    app: &App<S>,
    caller: &ApiKey,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let asked: CreateKey = body::json(req)?;
    let name = api_key::parse_name(asked.name.as_deref().unwrap_or(""))?;
    let scope = asked.scope.unwrap_or(caller.scope);
    if scope > caller.scope {
        return Err(ApiError::InsufficientScope);
    }
    let now = api_key::now();
    let expires_at = asked
        .expires_at
        .map(|s| in_the_future("expires_at", &s, now))
        .transpose()?;
    // Made by the caller's key: it records who made it, and expires with
    // its maker at the latest; counted against the limit in the same write.
    let (key, stored) =
        key_lifecycle::issue_by(&app.store, caller, name, scope, expires_at).await?;
    let body = NewKey {
        key,
        view: KeyView::new(&stored, now),
    };
    Ok(response::json(StatusCode::CREATED, &body))
}

/// `DELETE /api-keys/{id}`: revokes one of the tenant's keys, but not its
/// last active full-scope key; with `with_descendants=true`, the key and
/// every key made from it, answered as a list (the key first).
pub async fn revoke<S: ApiKeyStore>(
    app: &App<S>,
    author: &Author,
    id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let (tenant, actor) = (&author.tenant, &author.actor);
    let tree = Query::of(req).flag("with_descendants")?;
    let id = KeyId::parse(id).map_err(|_| ApiError::ApiKeyNotFound)?;
    let revoked = if tree {
        key_lifecycle::revoke_with_descendants(
            &app.store,
            tenant,
            &id,
            Guard::KeepOneFullKey,
            actor,
        )
        .await?
    } else {
        vec![key_lifecycle::revoke(&app.store, tenant, &id, Guard::KeepOneFullKey, actor).await?]
    };
    // This container stops trusting them at once; the others read the
    // store for every change, and forget them within the cache's TTL.
    for key in &revoked {
        app.keys.forget(&key.hash);
    }
    let now = api_key::now();
    let mut views = revoked.iter().map(|k| KeyView::new(k, now));
    if tree {
        let data = views.collect();
        return Ok(response::json(StatusCode::OK, &KeyList { data }));
    }
    let view = views.next().ok_or(ApiError::ApiKeyNotFound)?;
    Ok(response::json(StatusCode::OK, &view))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::Settings;
    use shared::store::MemoryStore;

    use super::*;
    use crate::testing::{Reply, app, app_with, send};

    /// An app whose containers read the key on every request.
    async fn uncached() -> (App<MemoryStore>, String) {
        app_with(Settings {
            api_key_cache_ttl: Duration::ZERO,
            ..crate::testing::settings()
        })
        .await
    }

    async fn create(app: &App<MemoryStore>, key: &str, body: &str) -> Reply {
        send(app, Some(key), "POST", "/api-keys", Some(body)).await
    }

    fn id_of(r: &Reply) -> String {
        r.body["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Every route of the table that changes something, with its `{…}`
    /// filled in: a read key gets 403 on each, before any handler runs.
    #[tokio::test]
    async fn a_read_key_may_call_every_get_and_nothing_else() {
        let (app, full) = uncached().await;
        let read = create(&app, &full, r#"{"name":"ro","scope":"read"}"#).await;
        assert_eq!(read.status, 201, "{}", read.body);
        let read = read.body["key"].as_str().unwrap().to_owned();
        let mut mutating = 0;
        for (path, method) in crate::routes() {
            let path = path
                .replace("{id}", "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{delivery_id}", "evt_1~1");
            let get = method == lambda_http::http::Method::GET;
            let body = (!get).then_some("{}");
            let as_read = send(&app, Some(&read), method.as_str(), &path, body).await;
            if get {
                assert!(
                    ![401, 403].contains(&as_read.status),
                    "GET {path}: {}",
                    as_read.body
                );
                continue;
            }
            mutating += 1;
            assert_eq!(
                (as_read.status, as_read.code()),
                (403, "insufficient_scope"),
                "{method} {path}"
            );
            // The negative control: the same call with the full key passes the check.
            let as_full = send(&app, Some(&full), method.as_str(), &path, body).await;
            assert_ne!(as_full.status, 403, "{method} {path}: {}", as_full.body);
        }
        assert!(mutating >= 10, "only {mutating} mutating routes found");
        // A read key cannot make a full key either (it cannot POST at all).
        let r = create(&app, &read, r#"{"scope":"full"}"#).await;
        assert_eq!(r.code(), "insufficient_scope");
    }

    #[tokio::test]
    async fn revoked_and_expired_keys_are_refused_saying_why() {
        let (app, full) = uncached().await;
        let second = create(&app, &full, r#"{"name":"second"}"#).await;
        let second_key = second.body["key"].as_str().unwrap().to_owned();
        assert_eq!(
            send(&app, Some(&second_key), "GET", "/webhooks", None)
                .await
                .status,
            200
        );
        let revoked = send(
            &app,
            Some(&full),
            "DELETE",
            &format!("/api-keys/{}", id_of(&second)),
            None,
        )
        .await;
        assert_eq!(
            (revoked.status, revoked.body["status"].as_str()),
            (200, Some("revoked"))
        );
        let r = send(&app, Some(&second_key), "GET", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (401, "api_key_revoked"));

        let tenant = TenantId::parse("acme").unwrap();
        let past = api_key::now() - time::Duration::SECOND;
        let (old_key, old) = ApiKey::issue(tenant, "old".into(), Scope::Full, Some(past), past);
        let entry = shared::audit::operator::key(&old, shared::audit::Action::ApiKeyCreated);
        app.store.put_api_key(&old, None, &entry).await.unwrap();
        let r = send(&app, Some(&old_key), "GET", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (401, "api_key_expired"));
        let r = send(&app, Some("whk_nothing"), "GET", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));

        let future = create(&app, &full, r#"{"expires_at":"2999-01-01T00:00:00Z"}"#).await;
        assert_eq!(future.body["expires_at"], "2999-01-01T00:00:00Z");
        for bad in [
            r#"{"expires_at":"2001-01-01T00:00:00Z"}"#,
            r#"{"expires_at":"tomorrow"}"#,
        ] {
            let r = create(&app, &full, bad).await;
            assert_eq!(
                (r.status, r.body["error"]["field"].as_str()),
                (400, Some("expires_at"))
            );
        }
        let r = create(&app, &full, r#"{"scope":"admin"}"#).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some("scope"))
        );
    }

    #[tokio::test]
    async fn a_tenant_cannot_revoke_its_last_full_key() {
        let (app, first) = uncached().await;
        let list = send(&app, Some(&first), "GET", "/api-keys", None).await;
        let first_id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            Some(&first),
            "DELETE",
            &format!("/api-keys/{first_id}"),
            None,
        )
        .await;
        assert_eq!((r.status, r.code()), (409, "last_full_key"));
        // A read key does not count as the one kept.
        create(&app, &first, r#"{"scope":"read"}"#).await;
        let r = send(
            &app,
            Some(&first),
            "DELETE",
            &format!("/api-keys/{first_id}"),
            None,
        )
        .await;
        assert_eq!(r.status, 409);
        let second = create(&app, &first, r#"{"scope":"full"}"#).await;
        let second_key = second.body["key"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            Some(&first),
            "DELETE",
            &format!("/api-keys/{first_id}"),
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        // It revoked itself: refused from now on (no cache here).
        assert_eq!(
            send(&app, Some(&first), "GET", "/webhooks", None)
                .await
                .status,
            401
        );
        let r = send(
            &app,
            Some(&second_key),
            "DELETE",
            &format!("/api-keys/{}", id_of(&second)),
            None,
        )
        .await;
        assert_eq!(r.code(), "last_full_key");
    }

    #[tokio::test]
    async fn a_cached_key_works_until_its_ttl_and_an_unknown_one_never() {
        let (app, key) = app(false).await;
        assert_eq!(
            send(&app, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            200
        );
        // Revoked in the table behind this container's back.
        let stored = app
            .store
            .api_key(&api_key::hash(&key))
            .await
            .unwrap()
            .unwrap();
        app.store
            .revoke_api_key(
                &stored,
                api_key::now(),
                None,
                &shared::audit::operator::key(&stored, shared::audit::Action::ApiKeyRevoked),
            )
            .await
            .unwrap();
        assert_eq!(
            send(&app, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            200,
            "the documented trade-off: cached for API_KEY_CACHE_TTL_SECONDS"
        );
        // After the TTL the container reads the key again, and refuses it.
        let (short, key) = app_with(Settings {
            api_key_cache_ttl: Duration::from_millis(300),
            ..crate::testing::settings()
        })
        .await;
        assert_eq!(
            send(&short, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            200
        );
        let stored = short
            .store
            .api_key(&api_key::hash(&key))
            .await
            .unwrap()
            .unwrap();
        short
            .store
            .revoke_api_key(
                &stored,
                api_key::now(),
                None,
                &shared::audit::operator::key(&stored, shared::audit::Action::ApiKeyRevoked),
            )
            .await
            .unwrap();
        assert_eq!(
            send(&short, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        let r = send(&short, Some(&key), "GET", "/webhooks", None).await;
        assert_eq!((r.status, r.code()), (401, "api_key_revoked"));
        // Without the cache: refused at once.
        let (uncached, key) = uncached().await;
        let stored = uncached
            .store
            .api_key(&api_key::hash(&key))
            .await
            .unwrap()
            .unwrap();
        uncached
            .store
            .revoke_api_key(
                &stored,
                api_key::now(),
                None,
                &shared::audit::operator::key(&stored, shared::audit::Action::ApiKeyRevoked),
            )
            .await
            .unwrap();
        assert_eq!(
            send(&uncached, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            401
        );
    }

    #[tokio::test]
    async fn keys_are_the_tenants_own() {
        let (app, a) = uncached().await;
        let b_tenant = TenantId::parse("bravo").unwrap();
        let (b, _) = key_lifecycle::issue(&app.store, b_tenant, "b".into(), Scope::Full, None)
            .await
            .unwrap();
        let a_list = send(&app, Some(&a), "GET", "/api-keys", None).await;
        let a_id = a_list.body["data"][0]["id"].as_str().unwrap().to_owned();
        let b_list = send(&app, Some(&b), "GET", "/api-keys", None).await;
        assert_eq!(b_list.body["data"].as_array().unwrap().len(), 1);
        assert_ne!(b_list.body["data"][0]["id"], a_id.as_str());
        let r = send(&app, Some(&b), "DELETE", &format!("/api-keys/{a_id}"), None).await;
        assert_eq!((r.status, r.code()), (404, "api_key_not_found"));
        let r = send(&app, Some(&b), "DELETE", "/api-keys/not-an-id", None).await;
        assert_eq!((r.status, r.code()), (404, "api_key_not_found"));
        assert_eq!(
            send(&app, Some(&a), "GET", "/webhooks", None).await.status,
            200
        );
        // Nothing of a key but its first characters is ever listed.
        let (key, _) = shared::key_lifecycle::issue(
            &app.store,
            TenantId::parse("acme").unwrap(),
            "x".into(),
            Scope::Full,
            None,
        )
        .await
        .unwrap();
        let listed = send(&app, Some(&a), "GET", "/api-keys", None)
            .await
            .body
            .to_string();
        assert!(!listed.contains(&key[8..]) && !listed.contains(&api_key::hash(&key)));
    }

    #[tokio::test]
    async fn last_use_is_written_at_most_once_an_hour() {
        let (app, key) = uncached().await;
        let hash = api_key::hash(&key);
        let stored = app.store.api_key(&hash).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, None);
        let earlier = api_key::now() - time::Duration::minutes(59);
        app.store.touch_api_key(&stored, earlier).await.unwrap();
        for _ in 0..100 {
            assert_eq!(
                send(&app, Some(&key), "GET", "/webhooks", None)
                    .await
                    .status,
                200
            );
        }
        let after = app.store.api_key(&hash).await.unwrap().unwrap();
        assert_eq!(
            after.last_used_at,
            Some(earlier),
            "59 minutes ago: not written again"
        );
        // An hour ago: the next request writes it.
        let (app, key) = uncached().await;
        let hash = api_key::hash(&key);
        let stored = app.store.api_key(&hash).await.unwrap().unwrap();
        app.store
            .touch_api_key(&stored, api_key::now() - time::Duration::minutes(61))
            .await
            .unwrap();
        let before = api_key::now();
        send(&app, Some(&key), "GET", "/webhooks", None).await;
        let used = app
            .store
            .api_key(&hash)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .unwrap();
        assert!(used >= before, "written now");
    }
}
