//! `/settings`: the tenant's data-protection settings (how long event
//! payloads are kept, whether receivers' response bodies are).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::store::SettingsStore;
use shared::{TenantId, TenantSettings};

use crate::{ApiError, App, body, response};

/// Every field optional: what is absent stays as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    /// Read as any integer, so that one out of range is refused by name.
    #[serde(default)]
    payload_retention_hours: Option<i64>,
    #[serde(default)]
    keep_response_bodies: Option<bool>,
}

/// `GET /settings`: the tenant's settings (the defaults until it changes one).
pub async fn get<S: SettingsStore>(
    app: &App<S>,
    tenant: TenantId,
) -> Result<Response<Body>, ApiError> {
    let settings = app.store.settings(&tenant).await?;
    Ok(response::json(StatusCode::OK, &settings))
}

/// `PATCH /settings`: changes the fields given and answers with all of
/// them. Applies to events accepted from then on: a payload already kept
/// keeps the retention it was kept with (delete it to erase it sooner).
pub async fn update<S: SettingsStore>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let change: SettingsChange = body::json(req)?;
    let mut settings = app.store.settings(&tenant).await?;
    if let Some(hours) = change.payload_retention_hours {
        settings.payload_retention_hours = TenantSettings::retention_hours(hours)?;
    }
    if let Some(keep) = change.keep_response_bodies {
        settings.keep_response_bodies = keep;
    }
    app.store.put_settings(&tenant, &settings).await?;
    tracing::info!(
        tenant_id = %tenant,
        payload_retention_hours = settings.payload_retention_hours,
        keep_response_bodies = settings.keep_response_bodies,
        "settings changed"
    );
    Ok(response::json(StatusCode::OK, &settings))
}
