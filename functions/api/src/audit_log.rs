//! `GET /audit-log`: who changed what of the tenant's webhooks, keys,
//! settings and data, and when. Read-only: no route changes or deletes an
//! entry (they expire after [`shared::audit::RETENTION_DAYS`]).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;
use shared::TenantId;
use shared::audit::AuditId;
use shared::store::{AuditQuery, AuditStore};

use crate::pagination::encode_cursor;
use crate::query::{Query, in_window};
use crate::{ApiError, App, response};

#[derive(Serialize)]
struct AuditList {
    data: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `GET /audit-log?limit=&cursor=&action=&since=&until=`: the tenant's
/// entries, newest first; `since` inclusive, `until` exclusive.
pub async fn list<S: AuditStore>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let page = query.page(|s| s.parse::<AuditId>().ok())?;
    let filter = query.audit()?;
    let wanted = AuditQuery {
        limit: page.limit,
        after: page.after,
        action: filter.action,
        since: filter.since,
        until: filter.until,
    };
    // DynamoDB refuses a start key outside the range it reads.
    in_window(wanted.since, wanted.until, |since, until| {
        wanted.after.is_some_and(|after| {
            since.is_some_and(|s| after < AuditId::first_at(s))
                || until.is_some_and(|u| after >= AuditId::first_at(u))
        })
    })?;
    let found = app.store.audit_log(&tenant, &wanted).await?;
    let list = AuditList {
        data: found.items.iter().map(|e| e.view()).collect(),
        next_cursor: found.next.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::testing::{app, send};

    fn actions(body: &Value) -> Vec<&str> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn changes_read_back_newest_first_with_the_calling_key_and_no_secret() {
        let (app, key) = app(true).await;
        let made = send(
            &app,
            Some(&key),
            "POST",
            "/webhooks",
            Some(r#"{"url": "https://a.example.com/h", "events": ["async.completed"]}"#),
        )
        .await;
        assert_eq!(made.status, 201, "{:?}", made.body);
        let id = made.body["id"].as_str().unwrap().to_owned();
        let token = made.body["token"].as_str().unwrap().to_owned();
        let path = format!("/webhooks/{id}");
        let body = r#"{"url": "https://b.example.net/h"}"#;
        assert_eq!(
            send(&app, Some(&key), "PATCH", &path, Some(body))
                .await
                .status,
            200
        );
        let rotated = send(&app, Some(&key), "POST", &format!("{path}/token"), None).await;
        assert_eq!(rotated.status, 200);
        let new_token = rotated.body["token"].as_str().unwrap().to_owned();
        assert_eq!(
            send(&app, Some(&key), "DELETE", &path, None).await.status,
            204
        );

        let log = send(&app, Some(&key), "GET", "/audit-log", None).await;
        assert_eq!(log.status, 200, "{:?}", log.body);
        assert_eq!(
            actions(&log.body),
            [
                "webhook.deleted",
                "webhook.token_rotated",
                "webhook.updated",
                "webhook.created",
                // The key the test's app was given, by the operator.
                "api_key.created",
            ]
        );
        let updated = &log.body["data"][2];
        assert_eq!(
            updated["changes"],
            json!({
                "fields": ["url"],
                "url": {"old_host": "a.example.com", "new_host": "b.example.net"},
            })
        );
        assert_eq!(updated["target"], json!({"type": "webhook", "id": id}));
        assert_eq!(updated["actor"]["type"], "api_key");
        assert!(updated["actor"]["id"].as_str().unwrap().starts_with("key_"));
        assert!(updated.get("tenant_id").is_none());
        let text = log.body.to_string();
        for secret in [&token, &new_token, &key] {
            assert!(!text.contains(secret.as_str()), "a secret in the log");
        }
        // Negative control: the search finds what is there.
        assert!(text.contains(&id));
    }

    #[tokio::test]
    async fn action_filters_and_a_cursor_pages_on() {
        let (app, key) = app(true).await;
        for hours in [24, 48, 72] {
            let body = format!(r#"{{"payload_retention_hours": {hours}}}"#);
            let changed = send(&app, Some(&key), "PATCH", "/settings", Some(&body)).await;
            assert_eq!(changed.status, 200);
        }
        let first = send(
            &app,
            Some(&key),
            "GET",
            "/audit-log?limit=2&action=settings.updated",
            None,
        )
        .await;
        assert_eq!(first.status, 200);
        assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
        assert_eq!(
            first.body["data"][0]["changes"]["payload_retention_hours"],
            json!({"old": 48, "new": 72})
        );
        let cursor = first.body["next_cursor"].as_str().unwrap();
        let rest = send(
            &app,
            Some(&key),
            "GET",
            &format!("/audit-log?limit=2&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(actions(&rest.body), ["settings.updated", "api_key.created"]);
        assert!(rest.body.get("next_cursor").is_none());
        let other = send(
            &app,
            Some(&key),
            "GET",
            "/audit-log?action=webhook.created",
            None,
        )
        .await;
        assert_eq!(actions(&other.body), Vec::<&str>::new());
    }

    #[tokio::test]
    async fn a_bad_parameter_is_named() {
        let (app, key) = app(true).await;
        for (query, field) in [
            ("action=webhook.stolen", "action"),
            ("since=yesterday", "since"),
            ("cursor=x", "cursor"),
            ("limit=0", "limit"),
            (
                "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                "until",
            ),
        ] {
            let got = send(
                &app,
                Some(&key),
                "GET",
                &format!("/audit-log?{query}"),
                None,
            )
            .await;
            assert_eq!(got.status, 400, "{query}: {:?}", got.body);
            assert!(
                got.body.to_string().contains(field),
                "{query}: {:?}",
                got.body
            );
        }
    }

    #[tokio::test]
    async fn a_write_that_fails_leaves_no_entry() {
        let (app, key) = app(true).await;
        let body = r#"{"url": "https://a.example.com/h", "events": ["nope"]}"#;
        let refused = send(&app, Some(&key), "POST", "/webhooks", Some(body)).await;
        assert_eq!(refused.status, 400);
        let missing = send(
            &app,
            Some(&key),
            "DELETE",
            "/webhooks/wh_01J0000000000000000000000A",
            None,
        )
        .await;
        assert_eq!(missing.status, 404);
        let log = send(&app, Some(&key), "GET", "/audit-log", None).await;
        assert_eq!(actions(&log.body), ["api_key.created"]);
    }
}
