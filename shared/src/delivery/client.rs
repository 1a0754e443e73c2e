use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use tokio::time::Instant;

use super::outcome::{Attempt, Outcome, excerpt};
use super::resolver::{BlockedByPolicy, GuardedResolver};
use crate::signing::SigningSecret;
use crate::webhook_url::check_target;
use crate::{Token, WebhookUrl};

pub const USER_AGENT: &str = concat!("ekyc-webhooks/", env!("CARGO_PKG_VERSION"));

/// How much of a response body is read at most; the rest is never read.
const READ_LIMIT: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    pub allow_private_targets: bool,
    /// Fixed DNS answers (tests only).
    pub dns_overrides: HashMap<String, Vec<IpAddr>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// rustls with Mozilla's root certificates compiled in (webpki-roots): no
/// certificate store to find, read and parse at cold start, and the same
/// roots wherever the function runs. ALPN offers HTTP/2 and HTTP/1.1.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// One HTTP client per container: rustls, pooled connections, HTTP/1.1 and
/// HTTP/2, no redirects, no proxies, and the guarded resolver.
#[derive(Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    allow_private_targets: bool,
}

impl DeliveryClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let resolver = GuardedResolver {
            allow_private_targets: config.allow_private_targets,
            overrides: Arc::new(config.dns_overrides),
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            allow_private_targets: config.allow_private_targets,
        })
    }

    /// Sends `body` to the webhook, signed, and waits for the response head
    /// until `deadline` at the latest. Never fails: every ending is an [`Attempt`].
    pub async fn deliver(
        &self,
        url: &WebhookUrl,
        token: &Token,
        secret: &SigningSecret,
        event_id: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Attempt {
        let started = Instant::now();
        let finish = |outcome, status, excerpt, location, error| Attempt {
            outcome,
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            response_excerpt: excerpt,
            location,
            error,
        };
        // IP literals and `localhost` never reach the resolver: check them here.
        if !self.allow_private_targets
            && let Err(blocked) = check_target(url.as_url())
        {
            return finish(
                Outcome::Blocked,
                None,
                None,
                None,
                Some(blocked.to_string()),
            );
        }
        let headers = match signed_headers(token, secret, event_id, &body) {
            Ok(h) => h,
            Err(e) => return finish(Outcome::ConnectError, None, None, None, Some(e)),
        };
        let request = self
            .http
            .post(url.as_url().clone())
            .headers(headers)
            .body(body)
            .send();
        let response = match tokio::time::timeout_at(deadline, request).await {
            Err(_) => {
                return finish(
                    Outcome::Timeout,
                    None,
                    None,
                    None,
                    Some("no response before the deadline".into()),
                );
            }
            Ok(Err(e)) => {
                let (outcome, why) = classify(&e);
                return finish(outcome, None, None, None, Some(why));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| excerpt(v.as_bytes(), 2048));
        let head = read_head_of_body(response, deadline).await;
        let outcome = if status.is_success() {
            Outcome::Delivered
        } else if status.is_redirection() {
            Outcome::Redirect
        } else {
            Outcome::HttpError
        };
        let shown = (!head.is_empty()).then(|| excerpt(&head, Attempt::EXCERPT_BYTES));
        let location = if outcome == Outcome::Redirect {
            location
        } else {
            None
        };
        finish(outcome, Some(status.as_u16()), shown, location, None)
    }
}

fn signed_headers(
    token: &Token,
    secret: &SigningSecret,
    event_id: &str,
    body: &[u8],
) -> Result<HeaderMap, String> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let value =
        |s: String| HeaderValue::try_from(s).map_err(|_| "a header value is not valid".to_owned());
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut auth = value(format!("Basic {}", token.expose()))?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert("webhook-id", value(event_id.to_owned())?);
    headers.insert("webhook-timestamp", value(timestamp.to_string())?);
    headers.insert(
        "webhook-signature",
        value(secret.sign(event_id, timestamp, body))?,
    );
    Ok(headers)
}

/// At most [`READ_LIMIT`] bytes of the body, within what is left of the deadline.
async fn read_head_of_body(mut response: reqwest::Response, deadline: Instant) -> Vec<u8> {
    let mut head = Vec::new();
    let read = async {
        while head.len() < READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = READ_LIMIT - head.len();
                    head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, read).await;
    head
}

/// Maps a client error to an outcome and a few words, from its source chain.
fn classify(e: &reqwest::Error) -> (Outcome, String) {
    if e.is_timeout() {
        return (Outcome::Timeout, "timed out".into());
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut innermost = String::from("request failed");
    while let Some(err) = source {
        if find_in_io::<BlockedByPolicy>(err).is_some() {
            return (Outcome::Blocked, err.to_string());
        }
        if let Some(tls) = find_in_io::<rustls::Error>(err) {
            return (Outcome::TlsError, format!("TLS: {tls}"));
        }
        if err.source().is_none() {
            innermost = err.to_string();
        }
        source = err.source();
    }
    (Outcome::ConnectError, innermost)
}

/// `err` itself, or what it wraps when it is an `io::Error` (at any depth):
/// `io::Error::source()` skips the error it wraps, so the chain alone misses it.
fn find_in_io<'a, T: StdError + 'static>(mut err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    loop {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
        err = inner;
    }
}
