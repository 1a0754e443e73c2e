//! A tenant's webhooks: register one, list them, show, change and delete one.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::audit::{self, Action, Author};
use shared::client_tls::ClientTls;
use shared::custom_headers::CustomHeaders;
use shared::oauth2::OAuth2;
use shared::store::WebhookStore;
use shared::webhook::now_utc;
use shared::{Status, TenantId, Token, ValidationError, Webhook, WebhookId, WebhookUrl};

use super::read_change_write;
use crate::error::IfMissing;
use crate::pagination::encode_cursor;
use crate::query::Query;
use crate::views::{CreateWebhook, Secrets, UpdateWebhook, WebhookList, WebhookView};
use crate::{ApiError, App, body, response};

/// `POST /webhooks`: registers a webhook and shows its secrets, this once.
pub async fn create<S: WebhookStore>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
    author: &Author,
) -> Result<Response<Body>, ApiError> {
    let input: CreateWebhook = body::json(req)?;
    let policy = app.settings.url_policy;
    let url = WebhookUrl::parse(&input.url, policy)?;
    resolves_publicly(app, &url, "url").await?;
    let oauth2 = input
        .oauth2
        .as_ref()
        .map(|o| OAuth2::resolve(o, None, policy))
        .transpose()?;
    if let Some(o) = &oauth2 {
        resolves_publicly(app, &o.token_url, "oauth2.token_url").await?;
    }
    let client_tls = input
        .client_tls
        .as_ref()
        .map(|c| ClientTls::parse(c, now_utc()))
        .transpose()?;
    let webhook = Webhook {
        status: input.status.unwrap_or_default(),
        token: input.token.unwrap_or_else(Token::generate),
        description: input.description,
        retry_policy: input.retry_policy.unwrap_or_default(),
        payload: input.payload.unwrap_or_default(),
        throttle_rate: input.throttle_rate,
        headers: input.headers.unwrap_or_default(),
        oauth2,
        client_tls,
        // A new endpoint starts on the slow lane until it answers quickly
        // (see shared::lane): one that is dead from the start never holds
        // the main lane.
        slow_since: Some(now_utc()),
        ..Webhook::new(tenant, url, input.events, now_utc())
    };
    identity_needs_https(&webhook)?;
    let entry = audit::webhook_created(&webhook, &author.actor);
    app.store
        .create_webhook(&webhook, app.settings.max_webhooks_per_tenant, &entry)
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &WebhookView::new(&webhook, Secrets::REVEAL),
    ))
}

/// How long registration waits for DNS; a slower name is checked at send time only.
const REGISTRATION_DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A name that resolves to a forbidden address (DNS rebinding set up in
/// advance) is refused at registration too, not only at send time.
async fn resolves_publicly<S>(
    app: &App<S>,
    url: &WebhookUrl,
    field: &'static str,
) -> Result<(), ApiError> {
    app.client()?
        .check_resolved(url, REGISTRATION_DNS_TIMEOUT)
        .await
        .map_err(|blocked| {
            ValidationError::new(field, format!("resolves to a forbidden target: {blocked}")).into()
        })
}

/// A client certificate is presented in a TLS handshake: over http there is none.
fn identity_needs_https(webhook: &Webhook) -> Result<(), ValidationError> {
    if webhook.client_tls.is_some() && webhook.url.as_url().scheme() != "https" {
        return Err(ValidationError::new(
            "client_tls",
            "needs an https url: the client certificate is presented in the TLS handshake",
        ));
    }
    Ok(())
}

/// `GET /webhooks`: the tenant's webhooks, a page at a time, secrets masked.
pub async fn list<S: WebhookStore>(
    app: &App<S>,
    tenant: TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let page = Query::of(req).page(|s| s.parse::<WebhookId>().ok())?;
    let found = app
        .store
        .list_webhooks(&tenant, page.limit, page.after)
        .await?;
    let list = WebhookList {
        data: found
            .items
            .iter()
            .map(|w| WebhookView::new(w, Secrets::MASK))
            .collect(),
        next_cursor: found.next.map(encode_cursor),
    };
    Ok(response::json(StatusCode::OK, &list))
}

/// `GET /webhooks/{id}`: the webhook, secrets masked.
pub fn show(webhook: &Webhook) -> Response<Body> {
    response::json(StatusCode::OK, &WebhookView::new(webhook, Secrets::MASK))
}

/// `PATCH /webhooks/{id}`: changes the fields given; a new token is shown
/// this once.
pub async fn update<S: WebhookStore>(
    app: &App<S>,
    author: &Author,
    id: WebhookId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: UpdateWebhook = body::json(req)?;
    // Validate everything before touching the store, so a bad field changes nothing.
    let url = input
        .url
        .map(|u| WebhookUrl::parse(&u, app.settings.url_policy))
        .transpose()?;
    if let Some(url) = &url {
        resolves_publicly(app, url, "url").await?;
    }
    let client_tls = input
        .client_tls
        .as_ref()
        .map(|c| {
            c.as_ref()
                .map(|c| ClientTls::parse(c, now_utc()))
                .transpose()
        })
        .transpose()?;
    if let Some(Some(o)) = &input.oauth2 {
        let url = WebhookUrl::parse(&o.token_url, app.settings.url_policy)
            .map_err(|e| ValidationError::new("oauth2.token_url", e.message))?;
        resolves_publicly(app, &url, "oauth2.token_url").await?;
    }
    // Headers and credentials are checked against what is held (one
    // without a value or secret keeps the held one): a bad one changes nothing.
    let refused = std::sync::Mutex::new(None);
    let refuse = |e: ValidationError| {
        if let Ok(mut slot) = refused.lock() {
            *slot = Some(e);
        }
        false
    };
    let by = (Action::WebhookUpdated, author);
    let webhook = read_change_write(app, by, id, |webhook| {
        let before = webhook.clone();
        if let Some(change) = &input.headers {
            let resolved = match change {
                Some(list) => CustomHeaders::resolve(list.clone(), &webhook.headers),
                None => Ok(CustomHeaders::default()),
            };
            match resolved {
                Ok(headers) => webhook.headers = headers,
                // Named as a body's error is: the field, then the header's place.
                Err(e) => {
                    let message = format!("headers: {}: {}", e.field, e.message);
                    return refuse(ValidationError::new("headers", message));
                }
            }
        }
        if let Some(change) = &input.oauth2 {
            let policy = app.settings.url_policy;
            let held = webhook.oauth2.as_ref();
            match change
                .as_ref()
                .map(|o| OAuth2::resolve(o, held, policy))
                .transpose()
            {
                Ok(oauth2) => webhook.oauth2 = oauth2,
                Err(e) => return refuse(e),
            }
        }
        if let Some(identity) = &client_tls {
            webhook.client_tls = identity.clone();
        }
        if let Some(url) = &url
            && *url != webhook.url
        {
            webhook.url = url.clone();
            // A new endpoint starts on the slow lane, like a new webhook,
            // and without the old one's failing streak.
            webhook.slow_since = Some(now_utc());
            end_streak(webhook);
        }
        if let Some(events) = &input.events {
            webhook.events = events.clone();
        }
        if let Some(status) = input.status {
            if status == Status::Active && webhook.status == Status::Inactive {
                // Turned back on: a fresh start, or the old streak's age
                // would disable it again at its first failure.
                webhook.disabled_reason = None;
                end_streak(webhook);
            }
            webhook.status = status;
        }
        if let Some(policy) = input.retry_policy {
            webhook.retry_policy = policy;
        }
        if let Some(form) = input.payload {
            webhook.payload = form;
        }
        if let Some(rate) = input.throttle_rate {
            webhook.throttle_rate = rate;
        }
        if let Some(token) = &input.token {
            webhook.token = token.clone();
        }
        if let Some(description) = &input.description {
            webhook.description = description.clone();
        }
        if let Err(e) = identity_needs_https(webhook) {
            return refuse(e);
        }
        *webhook != before
    })
    .await?;
    if let Some(e) = refused.into_inner().ok().flatten() {
        return Err(e.into());
    }
    let secrets = if input.token.is_some() {
        Secrets::TOKEN
    } else {
        Secrets::MASK
    };
    Ok(response::json(
        StatusCode::OK,
        &WebhookView::new(&webhook, secrets),
    ))
}

/// Forgets the webhook's failing streak.
fn end_streak(webhook: &mut Webhook) {
    webhook.failing_since = None;
    webhook.failing_notice_at = None;
    webhook.last_error = None;
}

/// `DELETE /webhooks/{id}`.
pub async fn delete<S: WebhookStore>(
    app: &App<S>,
    author: &Author,
    webhook: Webhook,
) -> Result<Response<Body>, ApiError> {
    let entry = audit::webhook_deleted(&webhook, &author.actor);
    app.store
        .delete_webhook(&author.tenant, webhook.id, &entry)
        .await
        .if_missing(ApiError::WebhookNotFound)?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use crate::testing::{app, send};

    #[tokio::test]
    async fn bad_bodies_are_named_and_store_nothing() {
        let (app, key) = app(false).await;
        // (body, code, the field it names)
        let cases = [
            (r#"{"url": "#, "malformed_json", None),
            (
                r#"{"url": "https://example.com/x"}"#,
                "missing_field",
                Some("events"),
            ),
            (
                r#"{"url": "https://10.0.0.1/x", "events": ["async.completed"]}"#,
                "invalid_value",
                Some("url"),
            ),
            (
                r#"{"url": "https://93.184.215.14/x", "events": ["no.such"]}"#,
                "invalid_value",
                Some("events"),
            ),
        ];
        for (body, code, field) in cases {
            let r = send(&app, Some(&key), "POST", "/webhooks", Some(body)).await;
            assert_eq!((r.status, r.code()), (400, code), "{body}: {}", r.body);
            assert_eq!(r.body["error"]["field"].as_str(), field, "{body}");
        }
        // `{}` is no body (clients send it); anything else on a GET is refused.
        let r = send(&app, Some(&key), "GET", "/webhooks", Some(r#"{"a": 1}"#)).await;
        assert_eq!((r.status, r.code()), (400, "unexpected_body"));
        let listed = send(&app, Some(&key), "GET", "/webhooks", None).await;
        assert_eq!(listed.body["data"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_and_refuse_a_forged_one() {
        let (app, key) = app(true).await;
        for n in 0..3 {
            let body =
                format!(r#"{{"url": "http://127.0.0.1:9/{n}", "events": ["async.completed"]}}"#);
            let r = send(&app, Some(&key), "POST", "/webhooks", Some(&body)).await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let first = send(&app, Some(&key), "GET", "/webhooks?limit=2", None).await;
        assert_eq!(first.body["data"].as_array().map(Vec::len), Some(2));
        let cursor = first.body["next_cursor"].as_str().expect("a next page");
        let next = format!("/webhooks?limit=2&cursor={cursor}");
        let second = send(&app, Some(&key), "GET", &next, None).await;
        assert_eq!(second.body["data"].as_array().map(Vec::len), Some(1));
        assert!(second.body.get("next_cursor").is_none());
        let r = send(&app, Some(&key), "GET", "/webhooks?cursor=forged", None).await;
        assert_eq!((r.status, r.code()), (400, "invalid_value"));
        let r = send(&app, Some(&key), "GET", "/webhooks?limit=0", None).await;
        assert_eq!(r.status, 400);
    }

    /// Client credentials: taken with the secret masked, a missing secret
    /// kept only for the same token endpoint, `null` back to the Basic token;
    /// a refusal names the field and changes nothing.
    #[tokio::test]
    async fn client_credentials_are_set_kept_refused_and_removed() {
        let (app, key) = app(false).await;
        let body = r#"{"url": "https://93.184.215.14/x", "events": ["async.completed"],
            "oauth2": {"token_url": "https://93.184.215.14/token", "client_id": "relay",
                       "client_secret": "client-secret-0042", "scope": "hooks"}}"#;
        let created = send(&app, Some(&key), "POST", "/webhooks", Some(body)).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["oauth2"]["client_secret"], "****0042");
        assert_eq!(created.body["client_tls"], serde_json::Value::Null);
        let path = format!(
            "/webhooks/{}",
            created.body["id"].as_str().unwrap_or_default()
        );
        let kept =
            r#"{"oauth2": {"token_url": "https://93.184.215.14/token", "client_id": "relay-2"}}"#;
        let r = send(&app, Some(&key), "PATCH", &path, Some(kept)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["oauth2"]["client_id"], "relay-2");
        assert_eq!(r.body["oauth2"]["client_secret"], "****0042");
        let refusals = [
            (
                r#"{"oauth2": {"token_url": "https://93.184.215.15/token", "client_id": "relay"}}"#,
                "oauth2.client_secret",
            ),
            (
                r#"{"oauth2": {"token_url": "http://93.184.215.14/token", "client_id": "r", "client_secret": "s"}}"#,
                "oauth2.token_url",
            ),
            (
                r#"{"oauth2": {"token_url": "https://10.0.0.1/token", "client_id": "r", "client_secret": "s"}}"#,
                "oauth2.token_url",
            ),
            (
                r#"{"client_tls": {"certificate": "not pem", "private_key": "not pem"}}"#,
                "client_tls.certificate",
            ),
        ];
        for (change, field) in refusals {
            let r = send(&app, Some(&key), "PATCH", &path, Some(change)).await;
            assert_eq!((r.status, r.code()), (400, "invalid_value"), "{change}");
            assert_eq!(r.body["error"]["field"], field, "{change}");
        }
        let unchanged = send(&app, Some(&key), "GET", &path, None).await;
        assert_eq!(unchanged.body["oauth2"]["client_id"], "relay-2");
        let r = send(
            &app,
            Some(&key),
            "PATCH",
            &path,
            Some(r#"{"oauth2": null}"#),
        )
        .await;
        assert_eq!(r.body["oauth2"], serde_json::Value::Null);
    }

    /// `throttle_rate` is an integer from 1 to 10,000 or null; anything
    /// else is refused naming the field, and changes nothing.
    #[tokio::test]
    async fn a_throttle_is_set_changed_and_removed() {
        let (app, key) = app(true).await;
        let created = send(
            &app,
            Some(&key),
            "POST",
            "/webhooks",
            Some(r#"{"url": "http://127.0.0.1:9/t", "events": ["async.completed"], "throttle_rate": 5}"#),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["throttle_rate"], 5);
        assert!(created.body.get("throttled_since").is_none());
        let path = format!("/webhooks/{}", created.body["id"].as_str().unwrap());
        let invalid = ["0", "-1", "10001", "2.5"].map(|v| (v, "invalid_value"));
        let mistyped = ["\"5\"", "true"].map(|v| (v, "invalid_type"));
        for (bad, code) in invalid.into_iter().chain(mistyped) {
            let body = format!(r#"{{"throttle_rate": {bad}}}"#);
            let r = send(&app, Some(&key), "PATCH", &path, Some(&body)).await;
            assert_eq!((r.status, r.code()), (400, code), "{bad}: {}", r.body);
            assert_eq!(r.body["error"]["field"], "throttle_rate", "{bad}");
        }
        let r = send(&app, Some(&key), "GET", &path, None).await;
        assert_eq!(r.body["throttle_rate"], 5, "unchanged by the refusals");
        let r = send(
            &app,
            Some(&key),
            "PATCH",
            &path,
            Some(r#"{"throttle_rate": 10000}"#),
        )
        .await;
        assert_eq!(r.body["throttle_rate"], 10000);
        let r = send(
            &app,
            Some(&key),
            "PATCH",
            &path,
            Some(r#"{"throttle_rate": null}"#),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.body["throttle_rate"].is_null());
        let listed = send(&app, Some(&key), "GET", "/webhooks", None).await;
        assert!(listed.body["data"][0]["throttle_rate"].is_null());
    }
}
