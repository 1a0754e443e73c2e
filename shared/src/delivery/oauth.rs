//! OAuth2 access tokens for the webhooks that use client credentials: one
//! fetch per webhook at a time in a container, reused until 75 % of its
//! lifetime, and a failing token endpoint asked at most once per
//! [`FAILURE_HOLD`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT as UA};
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use tokio::time::Instant;
use url::form_urlencoded;

use super::exchange::{Http, USER_AGENT, classify, read_head_of_body};
use crate::WebhookId;
use crate::oauth2::{AuthMethod, OAuth2};
use crate::webhook_url::check_target;

/// A failed fetch is answered from memory this long: a burst of deliveries
/// to a webhook whose token endpoint is down asks it once, not once each.
pub const FAILURE_HOLD: Duration = Duration::from_secs(10);
/// A token without `expires_in` is reused this long (RFC 6749 leaves the
/// lifetime to the server; five minutes keeps a token without one fresh).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The most of a token response read (a JWT with many claims fits).
const RESPONSE_LIMIT: usize = 16 * 1024;
/// Past this many webhooks, idle entries are dropped (their tokens are
/// fetched again when needed).
const MAX_ENTRIES: usize = 10_000;

/// What a webhook's entry holds: the credentials it was fetched with (a
/// change fetches again), and the header or the error.
struct Held {
    with: OAuth2,
    answer: Result<HeaderValue, String>,
    until: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// The container's tokens, by webhook.
#[derive(Default)]
pub(super) struct Tokens {
    slots: Mutex<HashMap<WebhookId, Slot>>,
}

impl Tokens {
    /// `Authorization: Bearer …` for the webhook, from memory or fetched
    /// now (waiting for a fetch already under way), by `deadline`.
    pub(super) async fn bearer(
        &self,
        http: &Http,
        allow_private_targets: bool,
        webhook: WebhookId,
        config: &OAuth2,
        deadline: Instant,
    ) -> Result<HeaderValue, String> {
        let slot = self.slot(webhook)?;
        let Ok(mut held) = tokio::time::timeout_at(deadline, slot.lock()).await else {
            return Err("no access token before the deadline (a fetch was under way)".into());
        };
        if let Some(h) = held.as_ref()
            && h.with == *config
            && h.until > Instant::now()
        {
            return h.answer.clone();
        }
        let fetched = fetch(http, allow_private_targets, config, deadline).await;
        let until = match &fetched {
            Ok((_, lifetime)) => Instant::now() + lifetime.mul_f64(0.75),
            Err(_) => Instant::now() + FAILURE_HOLD,
        };
        let answer = fetched.map(|(value, _)| value);
        *held = Some(Held {
            with: config.clone(),
            answer: answer.clone(),
            until,
        });
        answer
    }

    /// Forgets the webhook's token (the receiver answered 401 with it).
    pub(super) fn forget(&self, webhook: WebhookId) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&webhook);
        }
    }

    fn slot(&self, webhook: WebhookId) -> Result<Slot, String> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| "the token cache is unusable".to_owned())?;
        if slots.len() >= MAX_ENTRIES && !slots.contains_key(&webhook) {
            // Only entries nobody is waiting on.
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Ok(Arc::clone(slots.entry(webhook).or_default()))
    }
}

/// The token endpoint's answer (RFC 6749 §5.1; `expires_in` as a number or,
/// as some servers send it, a string of digits).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// An error answer (RFC 6749 §5.2): its code alone is shown.
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// One client-credentials grant. The error says why in a few words, never
/// with the secret, the token or the response body.
async fn fetch(
    http: &Http,
    allow_private_targets: bool,
    config: &OAuth2,
    deadline: Instant,
) -> Result<(HeaderValue, Duration), String> {
    if !allow_private_targets && let Err(blocked) = check_target(config.token_url.as_url()) {
        return Err(format!("the token endpoint is {blocked}"));
    }
    let uri: Uri = config
        .token_url
        .as_str()
        .parse()
        .map_err(|_| "the token URL is not a valid HTTP request target".to_owned())?;
    let request = token_request(uri, config)?;
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    let response = tokio::select! {
        biased;
        sent = http.request(request) => sent.map_err(|e| {
            let (outcome, why) = classify(&e);
            format!("the token endpoint: {} ({why})", outcome.as_str())
        })?,
        () = &mut timer => return Err("no answer from the token endpoint before the deadline".into()),
    };
    let status = response.status();
    let body = read_head_of_body(response, timer, RESPONSE_LIMIT).await;
    if !status.is_success() {
        let code = serde_json::from_slice::<ErrorResponse>(&body)
            .ok()
            .map(|e| e.error)
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        return Err(match code {
            Some(code) => format!("the token endpoint answered {} ({code})", status.as_u16()),
            None => format!("the token endpoint answered {}", status.as_u16()),
        });
    }
    let answer: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
        "the token endpoint's answer is not a token response (JSON with access_token)".to_owned()
    })?;
    if let Some(kind) = &answer.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err("the token endpoint's token_type is not Bearer".into());
    }
    let mut value = HeaderValue::try_from(format!("Bearer {}", answer.access_token))
        .ok()
        .filter(|_| !answer.access_token.is_empty() && !answer.access_token.contains(' '))
        .ok_or_else(|| "the access token is not a valid header value".to_owned())?;
    value.set_sensitive(true);
    let lifetime = match answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok((value, lifetime))
}

/// The grant's POST: form body, client authentication as configured.
fn token_request(uri: Uri, config: &OAuth2) -> Result<Request<Full<Bytes>>, String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &config.scope {
        form.append_pair("scope", scope);
    }
    let secret = config.client_secret.expose();
    if config.auth_method == AuthMethod::ClientSecretPost {
        form.append_pair("client_id", &config.client_id);
        form.append_pair("client_secret", secret);
    }
    let mut request = Request::new(Full::new(Bytes::from(form.finish())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(UA, HeaderValue::from_static(USER_AGENT));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if config.auth_method == AuthMethod::ClientSecretBasic {
        // RFC 6749 §2.3.1: each part form-encoded before Basic's base64.
        let pair = format!(
            "{}:{}",
            form_urlencoded::byte_serialize(config.client_id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
            .map_err(|_| "the client credentials are not a valid header value".to_owned())?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UrlPolicy;
    use crate::oauth2::OAuth2Input;
    use http_body_util::BodyExt;

    fn config(method: AuthMethod) -> OAuth2 {
        let input = OAuth2Input {
            token_url: "https://auth.example.com/token".into(),
            client_id: "relay id".into(),
            client_secret: Some("p@ss:word".into()),
            scope: Some("a b".into()),
            auth_method: Some(method),
        };
        OAuth2::resolve(&input, None, UrlPolicy::default()).unwrap()
    }

    #[tokio::test]
    async fn basic_authentication_form_encodes_id_and_secret() {
        let request = token_request(
            "https://auth.example.com/token".parse().unwrap(),
            &config(AuthMethod::ClientSecretBasic),
        )
        .unwrap();
        let auth = request.headers()[AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(decoded, b"relay+id:p%40ss%3Aword");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"grant_type=client_credentials&scope=a+b");
    }

    #[tokio::test]
    async fn post_authentication_puts_the_credentials_in_the_body() {
        let request = token_request(
            "https://auth.example.com/token".parse().unwrap(),
            &config(AuthMethod::ClientSecretPost),
        )
        .unwrap();
        assert!(request.headers().get(AUTHORIZATION).is_none());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"grant_type=client_credentials&scope=a+b&client_id=relay+id&client_secret=p%40ss%3Aword"
        );
    }
}
