//! `/settings`: the tenant's data-protection settings (how long event
//! payloads are kept, whether receivers' response bodies are).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{self, Author};
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
    author: &Author,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let change: SettingsChange = body::json(req)?;
    let tenant = &author.tenant;
    let old = app.store.settings(tenant).await?;
    let mut settings = old;
    if let Some(hours) = change.payload_retention_hours {
        settings.payload_retention_hours = TenantSettings::retention_hours(hours)?;
    }
    if let Some(keep) = change.keep_response_bodies {
        settings.keep_response_bodies = keep;
    }
    if settings == old {
        return Ok(response::json(StatusCode::OK, &settings));
    }
    let entry = audit::settings_changed(tenant, &old, &settings, &author.actor);
    app.store.put_settings(tenant, &settings, &entry).await?;
    tracing::info!(
        tenant_id = %tenant,
        payload_retention_hours = settings.payload_retention_hours,
        keep_response_bodies = settings.keep_response_bodies,
        "settings changed"
    );
    Ok(response::json(StatusCode::OK, &settings))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use shared::api_key::Scope;

    use crate::testing::{app, key_for, send};

    #[tokio::test]
    async fn settings_start_at_the_defaults_and_change_field_by_field() {
        let (app, key) = app(false).await;
        let got = send(&app, Some(&key), "GET", "/settings", None).await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.body,
            json!({"payload_retention_hours": 168, "keep_response_bodies": true})
        );
        let changed = send(
            &app,
            Some(&key),
            "PATCH",
            "/settings",
            Some(r#"{"payload_retention_hours": 24}"#),
        )
        .await;
        assert_eq!(changed.status, 200);
        assert_eq!(
            changed.body,
            json!({"payload_retention_hours": 24, "keep_response_bodies": true})
        );
        let again = send(
            &app,
            Some(&key),
            "PATCH",
            "/settings",
            Some(r#"{"keep_response_bodies": false}"#),
        )
        .await;
        assert_eq!(
            again.body,
            json!({"payload_retention_hours": 24, "keep_response_bodies": false})
        );
    }

    #[tokio::test]
    async fn a_bad_value_is_refused_by_name_and_changes_nothing() {
        let (app, key) = app(false).await;
        for (body, field) in [
            (
                r#"{"payload_retention_hours": 169}"#,
                "payload_retention_hours",
            ),
            (
                r#"{"payload_retention_hours": -1}"#,
                "payload_retention_hours",
            ),
            (
                r#"{"payload_retention_hours": 1.5}"#,
                "payload_retention_hours",
            ),
            (
                r#"{"payload_retention_hours": "24"}"#,
                "payload_retention_hours",
            ),
            (r#"{"keep_response_bodies": "no"}"#, "keep_response_bodies"),
            (r#"{"retention": 1}"#, "retention"),
        ] {
            let got = send(&app, Some(&key), "PATCH", "/settings", Some(body)).await;
            assert_eq!(got.status, 400, "{body}");
            assert_eq!(got.body["error"]["field"], field, "{body}: {}", got.body);
        }
        let got = send(&app, Some(&key), "GET", "/settings", None).await;
        assert_eq!(got.body["payload_retention_hours"], 168);
    }

    #[tokio::test]
    async fn a_read_key_reads_settings_but_cannot_change_them() {
        let (app, _) = app(false).await;
        let read = key_for(&app, Scope::Read).await;
        let got = send(&app, Some(&read), "GET", "/settings", None).await;
        assert_eq!(got.status, 200);
        let refused = send(
            &app,
            Some(&read),
            "PATCH",
            "/settings",
            Some(r#"{"payload_retention_hours": 0}"#),
        )
        .await;
        // The same change with a full key goes through (the test above).
        assert_eq!(
            (refused.status, refused.code()),
            (403, "insufficient_scope")
        );
    }
}
