use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
    USER_AGENT as USER_AGENT_HEADER,
};
use http::{Method, Request, Uri};
use http_body_util::Full;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::exchange::{Http, USER_AGENT, classify, http_client, read_head_of_body};
use super::oauth::Tokens;
use super::outcome::{Attempt, Outcome, excerpt};
use super::resolver::lookup;
use crate::client_tls::ClientTls;
use crate::custom_headers::CustomHeaders;
use crate::oauth2::OAuth2;
use crate::signing::{SigningSecret, signature_header};
use crate::ssrf::Blocked;
use crate::webhook_url::check_target;
use crate::{Token, Webhook, WebhookId, WebhookUrl};

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// `true` on a test event (`POST /webhooks/{id}/test`), absent otherwise.
const WEBHOOK_TEST: HeaderName = HeaderName::from_static("webhook-test");

/// What a delivery carries: an event, or a test the customer asked for
/// (marked with `webhook-test: true`, and `"test": true` in its body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Event,
    Test,
}

/// What one delivery sends: the event's id (`webhook-id`), its body, and why.
pub struct Payload<'a> {
    pub event_id: &'a str,
    pub body: Bytes,
    pub purpose: Purpose,
}

/// How much of a response body is read at most; the rest is never read.
const READ_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub allow_private_targets: bool,
    /// Fixed DNS answers (tests only).
    pub dns_overrides: HashMap<String, Vec<IpAddr>>,
    /// Deliveries in flight at once in this container (one invocation);
    /// the others wait for a slot within their own deadline.
    pub max_in_flight: usize,
    /// Certificate authorities trusted beside Mozilla's roots. Tests and
    /// benchmarks only (HTTPS receivers on loopback with a CA made at run
    /// time): nothing in [`crate::Settings`] sets it, and
    /// [`DeliveryClient::new`] refuses it unless private targets are allowed,
    /// which production settings never are.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl ClientConfig {
    /// The fan-out of one main-lane batch at the limits: 10 events × 50
    /// webhooks, so a full batch never waits for a slot.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 500;
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            dns_overrides: HashMap::new(),
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            extra_roots: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error(
        "extra trusted certificate authorities are for tests only: they need allow_private_targets"
    )]
    TestRootsInProduction,
}

/// rustls with Mozilla's root certificates compiled in (webpki-roots): no
/// certificate store to find, read and parse at cold start, and the same
/// roots wherever the function runs. ALPN offers HTTP/2 and HTTP/1.1.
fn default_roots(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::RootCertStore, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    Ok(roots)
}

fn tls_config(roots: &rustls::RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    // hyper-rustls sets ALPN (h2, then http/1.1) from enable_http1/2.
    Ok(config)
}

/// The most client identities a container keeps a connection pool for;
/// past it the pools are dropped and built again as needed.
const MAX_IDENTITIES: usize = 1_000;

/// A webhook's pool for its client identity, and what identifies it (a
/// new certificate or CA builds a new one).
struct IdentityPool {
    fingerprint: String,
    ca_fingerprint: Option<String>,
    http: Http,
}

/// One HTTP client per container: rustls, pooled connections, HTTP/1.1 and
/// HTTP/2, no redirects (hyper follows none), no proxies, the guarded
/// resolver, a bounded response head and a bound on deliveries in flight.
///
/// A webhook with a client identity (mutual TLS) gets a pool of its own,
/// built once per container: a connection made with one tenant's
/// certificate is never reused for another webhook, nor one made without.
#[derive(Clone)]
pub struct DeliveryClient {
    http: Http,
    allow_private_targets: bool,
    overrides: Arc<HashMap<String, Vec<IpAddr>>>,
    in_flight: Arc<Semaphore>,
    roots: Arc<rustls::RootCertStore>,
    identities: Arc<Mutex<HashMap<WebhookId, IdentityPool>>>,
    tokens: Arc<Tokens>,
}

impl DeliveryClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if !config.extra_roots.is_empty() && !config.allow_private_targets {
            return Err(ClientError::TestRootsInProduction);
        }
        let overrides = Arc::new(config.dns_overrides);
        let roots = default_roots(&config.extra_roots)?;
        let http = http_client(
            config.allow_private_targets,
            &overrides,
            tls_config(&roots)?,
        );
        Ok(Self {
            http,
            allow_private_targets: config.allow_private_targets,
            overrides,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            roots: Arc::new(roots),
            identities: Arc::new(Mutex::new(HashMap::new())),
            tokens: Arc::new(Tokens::default()),
        })
    }

    /// The webhook's pool for its client identity, built on its first delivery.
    fn identity_http(&self, webhook: WebhookId, identity: &ClientTls) -> Result<Http, String> {
        let mut pools = self
            .identities
            .lock()
            .map_err(|_| "the client identity cache is unusable".to_owned())?;
        if let Some(pool) = pools.get(&webhook)
            && pool.fingerprint == identity.fingerprint
            && pool.ca_fingerprint == identity.ca_fingerprint
        {
            return Ok(pool.http.clone());
        }
        let tls = identity
            .rustls_config(&self.roots)
            .map_err(|e| format!("the client identity cannot be used: {e}"))?;
        let http = http_client(self.allow_private_targets, &self.overrides, tls);
        if pools.len() >= MAX_IDENTITIES {
            pools.clear();
        }
        pools.insert(
            webhook,
            IdentityPool {
                fingerprint: identity.fingerprint.clone(),
                ca_fingerprint: identity.ca_fingerprint.clone(),
                http: http.clone(),
            },
        );
        Ok(http)
    }

    /// [`DeliveryClient::deliver`] to a webhook: its URL, its token, and the
    /// signing secrets valid at `now` (the current one, and the previous one
    /// during the overlap after a rotation).
    pub async fn deliver_to(
        &self,
        webhook: &Webhook,
        payload: Payload<'_>,
        deadline: Instant,
        now: time::OffsetDateTime,
    ) -> Attempt {
        // No vector per delivery: one secret, or two during a rotation's overlap.
        let current = &webhook.signing_secret;
        let previous = webhook
            .previous_signing_secret
            .as_ref()
            .filter(|p| p.expires_at > now);
        let to = To {
            webhook_id: webhook.id,
            url: &webhook.url,
            token: &webhook.token,
            headers: &webhook.headers,
            oauth2: webhook.oauth2.as_ref(),
            client_tls: webhook.client_tls.as_ref(),
        };
        match previous {
            Some(p) => {
                let secrets = [current, &p.secret];
                self.deliver(to, &secrets, payload, deadline).await
            }
            None => self.deliver(to, &[current], payload, deadline).await,
        }
    }

    /// At registration: refuses a URL whose host name resolves, now, to a
    /// forbidden address. A name that does not resolve (yet) within
    /// `timeout` passes; the check at send time is the one that holds.
    pub async fn check_resolved(&self, url: &WebhookUrl, timeout: Duration) -> Result<(), Blocked> {
        if self.allow_private_targets {
            return Ok(());
        }
        let Some(url::Host::Domain(name)) = url.as_url().host() else {
            return Ok(()); // IP literals were checked when the URL was parsed.
        };
        let name = name.trim_end_matches('.');
        let found = tokio::time::timeout(timeout, lookup(&self.overrides, name)).await;
        match found {
            Ok(Ok(addresses)) => addresses
                .iter()
                .try_for_each(|a| crate::ssrf::check_ip(a.ip())),
            _ => Ok(()),
        }
    }

    /// Sends `body` to the webhook, signed with each of `secrets` (two during
    /// a rotation's overlap), and waits for the response head
    /// until `deadline` at the latest. Never fails: every ending is an [`Attempt`].
    pub async fn deliver(
        &self,
        to: To<'_>,
        secrets: &[&SigningSecret],
        payload: Payload<'_>,
        deadline: Instant,
    ) -> Attempt {
        let To {
            webhook_id,
            url,
            token,
            headers,
            oauth2,
            client_tls,
        } = to;
        let Payload {
            event_id,
            body,
            purpose,
        } = payload;
        let started = Instant::now();
        let finish = |outcome, status, excerpt, location, error| Attempt {
            outcome,
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            response_excerpt: excerpt,
            location,
            error,
            retry_after: None,
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
        let Ok(uri) = url.as_url().as_str().parse::<Uri>() else {
            let why = "the URL is not a valid HTTP request target".to_owned();
            return finish(Outcome::ConnectError, None, None, None, Some(why));
        };
        let own_pool;
        let http = match client_tls {
            None => &self.http,
            Some(identity) => match self.identity_http(webhook_id, identity) {
                Ok(pool) => {
                    own_pool = pool;
                    &own_pool
                }
                Err(why) => return finish(Outcome::TlsError, None, None, None, Some(why)),
            },
        };
        let auth = match oauth2 {
            None => basic(token),
            Some(config) => {
                let allow = self.allow_private_targets;
                let bearer = self
                    .tokens
                    .bearer(&self.http, allow, webhook_id, config, deadline);
                match bearer.await {
                    Ok(value) => Ok(value),
                    Err(why) => return finish(Outcome::TokenError, None, None, None, Some(why)),
                }
            }
        };
        // The request is built in place: no header map merged into another,
        // and one timer for the slot, the response head and the body alike.
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        if let Err(e) = auth
            .and_then(|auth| sign_into(request.headers_mut(), auth, secrets, event_id, &body))
            .and_then(|()| add_custom(request.headers_mut(), headers))
        {
            return finish(Outcome::ConnectError, None, None, None, Some(e));
        }
        if purpose == Purpose::Test {
            request
                .headers_mut()
                .insert(WEBHOOK_TEST, HeaderValue::from_static("true"));
        }
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        // Held until the body is read: it bounds the connections and buffers alive at once.
        let _slot = tokio::select! {
            biased;
            slot = self.in_flight.acquire() => slot.ok(),
            () = &mut timer => {
                let why = "no delivery slot free before the deadline (MAX_DELIVERIES_IN_FLIGHT)";
                return finish(Outcome::Timeout, None, None, None, Some(why.into()));
            }
        };
        let response = tokio::select! {
            biased;
            sent = http.request(request) => match sent {
                Ok(r) => r,
                Err(e) => {
                    let (outcome, why) = classify(&e);
                    return finish(outcome, None, None, None, Some(why));
                }
            },
            () = &mut timer => {
                return finish(
                    Outcome::Timeout,
                    None,
                    None,
                    None,
                    Some("no response before the deadline".into()),
                );
            }
        };
        let status = response.status();
        if status == http::StatusCode::UNAUTHORIZED && oauth2.is_some() {
            // The token may have been revoked: the next attempt fetches one.
            self.tokens.forget(webhook_id);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| excerpt(v.as_bytes(), 2048));
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let head = read_head_of_body(response, timer, READ_LIMIT).await;
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
        Attempt {
            retry_after,
            ..finish(outcome, Some(status.as_u16()), shown, location, None)
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, as a wait from now.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Where a delivery goes, and what it carries besides the signature.
#[derive(Clone, Copy)]
pub struct To<'a> {
    /// Keys the webhook's access token and client identity pool.
    pub webhook_id: WebhookId,
    pub url: &'a WebhookUrl,
    /// Sent as `Authorization: Basic`, unless `oauth2` is set.
    pub token: &'a Token,
    /// The webhook's own headers (none for most).
    pub headers: &'a CustomHeaders,
    /// Client credentials: `Authorization: Bearer` with their access token.
    pub oauth2: Option<&'a OAuth2>,
    /// The certificate presented in the TLS handshake.
    pub client_tls: Option<&'a ClientTls>,
}

/// `Authorization: Basic <token>`, as the platform's contract sends it.
fn basic(token: &Token) -> Result<HeaderValue, String> {
    let mut auth = Vec::with_capacity(6 + token.expose().len());
    auth.extend_from_slice(b"Basic ");
    auth.extend_from_slice(token.expose().as_bytes());
    let mut auth = HeaderValue::from_maybe_shared(Bytes::from(auth))
        .map_err(|_| "the token is not a valid header value".to_owned())?;
    auth.set_sensitive(true);
    Ok(auth)
}

/// The webhook's own headers, after the platform's (whose names they
/// cannot take: checked when the webhook was written). A secret value is
/// marked sensitive, as the token is.
fn add_custom(headers: &mut HeaderMap, custom: &CustomHeaders) -> Result<(), String> {
    for h in custom.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("the custom header name {:?} is not valid", h.name))?;
        let mut value = HeaderValue::from_str(&h.value)
            .map_err(|_| format!("the value of the custom header {:?} is not valid", h.name))?;
        value.set_sensitive(h.secret);
        headers.insert(name, value);
    }
    Ok(())
}

/// The headers of a signed delivery (Standard Webhooks), added to `headers`.
fn sign_into(
    headers: &mut HeaderMap,
    auth: HeaderValue,
    secrets: &[&SigningSecret],
    event_id: &str,
    body: &[u8],
) -> Result<(), String> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let invalid = |_| "a header value is not valid".to_owned();
    headers.reserve(6);
    headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(AUTHORIZATION, auth);
    headers.insert(
        WEBHOOK_ID,
        HeaderValue::from_str(event_id).map_err(invalid)?,
    );
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(
        WEBHOOK_SIGNATURE,
        HeaderValue::try_from(signature_header(secrets, event_id, timestamp, body))
            .map_err(invalid)?,
    );
    Ok(())
}
