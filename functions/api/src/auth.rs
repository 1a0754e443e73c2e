//! Tenant resolution: the one place that turns a request into a tenant. An API
//! Gateway JWT authorizer can replace this function without touching handlers.

use lambda_http::Request;
use lambda_http::http::header::AUTHORIZATION;
use shared::store::Store;
use shared::{TenantId, api_key};

use crate::ApiError;

pub async fn tenant<S: Store>(store: &S, req: &Request) -> Result<TenantId, ApiError> {
    let key = bearer(req).ok_or(ApiError::Unauthorized)?;
    // Lookup is by the key's SHA-256, so timing reveals nothing about the key;
    // the store also compares the stored hash in constant time.
    store
        .tenant_for_api_key(&api_key::hash(key))
        .await?
        .ok_or(ApiError::Unauthorized)
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}
