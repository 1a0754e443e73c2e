//! Authentication: the one place that turns a request into a tenant. An API
//! key is checked for existence, revocation, expiry and scope here; an API
//! Gateway JWT authorizer could replace this function without touching
//! handlers.

use lambda_http::Request;
use lambda_http::http::Method;
use lambda_http::http::header::AUTHORIZATION;
use shared::TenantId;
use shared::api_key::{self, ApiKey, KeyState, Scope};
use shared::store::ApiKeyStore;

use crate::{ApiError, App};

/// Who is calling: the tenant, and the key it called with.
pub struct Caller {
    pub tenant: TenantId,
    pub key: ApiKey,
}

/// The caller of `req`, or why it may not call: no key or an unknown one
/// (401), a revoked or expired one (401, saying which), a read-scope key on
/// a route that changes something (403).
///
/// A read may trust the container's cache of keys (a key revoked elsewhere
/// keeps reading for up to its TTL); a change never does: it is decided on
/// the key as the store holds it now, so that a key revoked a moment ago on
/// any container can neither make a key nor revoke another.
pub async fn caller<S: ApiKeyStore>(app: &App<S>, req: &Request) -> Result<Caller, ApiError> {
    let presented = bearer(req).ok_or(ApiError::Unauthorized)?;
    // Lookup is by the key's SHA-256, so timing reveals nothing about the key;
    // the store also compares the stored hash in constant time.
    let hash = api_key::hash(presented);
    let reads = reads_only(req.method());
    let cached = app.keys.get(&hash);
    if cached.is_none() {
        // A key this container has not seen costs a table read: bounded
        // per client address, so made-up keys cannot flood the table.
        app.limits.address(req)?;
    }
    let key = match cached.filter(|_| reads) {
        Some(key) => key,
        None => {
            let found = if reads {
                app.store.api_key(&hash).await?
            } else {
                app.store.current_api_key(&hash).await?
            };
            let key = found.ok_or(ApiError::Unauthorized)?;
            app.keys.put(&key);
            key
        }
    };
    let now = api_key::now();
    match key.state(now) {
        KeyState::Active => {}
        KeyState::Revoked => return Err(ApiError::KeyRevoked),
        KeyState::Expired => return Err(ApiError::KeyExpired),
    }
    if key.scope == Scope::Read && !reads {
        return Err(ApiError::InsufficientScope);
    }
    app.limits.tenant(key.tenant_id.as_str())?;
    if key.use_is_news(now) {
        // A failed write costs the key its last-use time, not the request.
        match app.store.touch_api_key(&key, now).await {
            Ok(()) => app.keys.used(&hash, now),
            Err(e) => {
                tracing::warn!(key_id = %key.id, error = %e, "recording a key's last use failed")
            }
        }
    }
    Ok(Caller {
        tenant: key.tenant_id.clone(),
        key,
    })
}

/// The methods a read-scope key may call.
fn reads_only(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}
