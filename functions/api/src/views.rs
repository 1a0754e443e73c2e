//! Request and response bodies of the webhook routes, and the delivery
//! records they and `/events` show.

use serde::{Deserialize, Deserializer, Serialize};
use shared::client_tls::{ClientTlsInput, ClientTlsView};
use shared::custom_headers::{CustomHeaders, HeaderChange};
use shared::delivery_log::DeliveryRecord;
use shared::event::PayloadForm;
use shared::oauth2::{OAuth2Input, OAuth2View};
use shared::retry::RetryPolicy;
use shared::throttle::ThrottleRate;
use shared::{Description, EventSet, EventType, Lane, Status, Token, Webhook};

use shared::webhook::now_utc;

use crate::rfc3339;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    pub events: EventSet,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub token: Option<Token>,
    #[serde(default)]
    pub description: Option<Description>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub payload: Option<PayloadForm>,
    #[serde(default)]
    pub throttle_rate: Option<ThrottleRate>,
    #[serde(default)]
    pub headers: Option<CustomHeaders>,
    #[serde(default)]
    pub oauth2: Option<OAuth2Input>,
    #[serde(default)]
    pub client_tls: Option<ClientTlsInput>,
}

/// Every field optional; `null` clears `description` and `throttle_rate`
/// and is refused elsewhere.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, deserialize_with = "present")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub events: Option<EventSet>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "present")]
    pub token: Option<Token>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<Description>>,
    #[serde(default, deserialize_with = "present")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<PayloadForm>,
    #[serde(default, deserialize_with = "nullable")]
    pub throttle_rate: Option<Option<ThrottleRate>>,
    /// The whole list; `[]` or `null` removes every header; a header given
    /// without a value keeps the value held under its name.
    #[serde(default, deserialize_with = "nullable")]
    pub headers: Option<Option<Vec<HeaderChange>>>,
    /// Client credentials; `null` removes them (back to the Basic token).
    #[serde(default, deserialize_with = "nullable")]
    pub oauth2: Option<Option<OAuth2Input>>,
    /// A new client identity; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub client_tls: Option<Option<ClientTlsInput>>,
}

/// A field that, when present, must not be null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field where present-and-null means "clear it".
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Which secrets a response shows in full: each is shown once, when it is
/// made or changed, and masked in every other response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    pub token: bool,
    pub signing_secret: bool,
}

impl Secrets {
    pub const MASK: Self = Self {
        token: false,
        signing_secret: false,
    };
    pub const REVEAL: Self = Self {
        token: true,
        signing_secret: true,
    };
    pub const TOKEN: Self = Self {
        token: true,
        signing_secret: false,
    };
    pub const SIGNING_SECRET: Self = Self {
        token: false,
        signing_secret: true,
    };
}

#[derive(Serialize)]
pub struct WebhookView<'a> {
    id: String,
    url: &'a str,
    events: &'a EventSet,
    status: Status,
    token: String,
    signing_secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    /// The webhook's own headers; a secret value masked, always.
    headers: Vec<HeaderView<'a>>,
    /// Client credentials, the secret masked; `null`: the Basic token.
    oauth2: Option<OAuth2View<'a>>,
    /// The client identity's certificate; never its key.
    client_tls: Option<ClientTlsView>,
    created_at: String,
    updated_at: String,
    retry_policy: RetryPolicy,
    payload: PayloadForm,
    /// Until when the previous signing secret still signs (after a rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_signing_secret_expires_at: Option<String>,
    /// Why the platform set the webhook inactive.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<&'a str>,
    /// Where the webhook's attempts are made now: `slow` while it is marked slow.
    lane: Lane,
    /// Since when it is marked slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    slow_since: Option<String>,
    /// At most this many deliveries a second; `null`: no cap.
    throttle_rate: Option<ThrottleRate>,
    /// Since when deliveries wait for their turn under the throttle.
    #[serde(skip_serializing_if = "Option::is_none")]
    throttled_since: Option<String>,
    /// Since when every attempt has failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<String>,
    /// The error of the failing streak's latest noted failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<&'static str>,
}

impl<'a> WebhookView<'a> {
    pub fn new(w: &'a Webhook, secrets: Secrets) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.as_str(),
            events: &w.events,
            status: w.status,
            token: if secrets.token {
                w.token.expose().to_owned()
            } else {
                w.token.masked()
            },
            signing_secret: if secrets.signing_secret {
                w.signing_secret.expose().to_owned()
            } else {
                w.signing_secret.masked()
            },
            description: w.description.as_ref().map(Description::as_str),
            headers: w
                .headers
                .iter()
                .map(|h| HeaderView {
                    name: &h.name,
                    value: h.shown_value(),
                    secret: h.secret,
                })
                .collect(),
            oauth2: w.oauth2.as_ref().map(|o| o.view()),
            client_tls: w.client_tls.as_ref().map(|c| c.view()),
            created_at: rfc3339::format(w.created_at),
            updated_at: rfc3339::format(w.updated_at),
            retry_policy: w.retry_policy,
            payload: w.payload,
            previous_signing_secret_expires_at: w
                .previous_signing_secret
                .as_ref()
                .filter(|p| p.expires_at > time::OffsetDateTime::now_utc())
                .map(|p| rfc3339::format(p.expires_at)),
            disabled_reason: w.disabled_reason.as_deref(),
            lane: if w.slow_since.is_some() {
                Lane::Slow
            } else {
                Lane::Main
            },
            slow_since: w.slow_since.map(rfc3339::format),
            throttle_rate: w.throttle_rate,
            throttled_since: w.throttled(now_utc()).map(rfc3339::format),
            failing_since: w.failing_since.map(rfc3339::format),
            last_error: w.failing_since.and(w.last_error.as_deref()),
            warnings: warnings(w),
        }
    }
}

/// The URL's warnings, then the client certificate's.
fn warnings(w: &Webhook) -> Vec<&'static str> {
    let mut all = w.url.warnings();
    all.extend(w.client_tls.as_ref().and_then(|c| c.warning(now_utc())));
    all
}

/// A custom header as a read shows it.
#[derive(Serialize)]
struct HeaderView<'a> {
    name: &'a str,
    value: String,
    secret: bool,
}

#[derive(Serialize)]
pub struct WebhookList<'a> {
    pub data: Vec<WebhookView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct DeliveryView<'a> {
    /// `<event id>~<attempt>`: what redelivery takes.
    id: String,
    webhook_id: String,
    event_id: &'a str,
    event_type: EventType,
    attempted_at: &'a str,
    duration_ms: u64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    test: bool,
    attempt: u32,
    manual: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<&'a str>,
    exhausted: bool,
    /// The lane that made the attempt.
    lane: Lane,
}

impl<'a> DeliveryView<'a> {
    pub fn new(r: &'a DeliveryRecord) -> Self {
        Self {
            id: r.delivery_id(),
            webhook_id: r.webhook_id.to_string(),
            event_id: r.event_id.as_str(),
            event_type: r.event_type,
            attempted_at: &r.attempted_at,
            duration_ms: r.duration_ms,
            outcome: r.outcome.as_str(),
            status: r.status,
            response_body: r.response_body.as_deref(),
            location: r.location.as_deref(),
            error: r.error.as_deref(),
            test: r.test,
            attempt: r.attempt,
            manual: r.manual,
            next_attempt_at: r.next_attempt_at.as_deref(),
            exhausted: r.exhausted,
            lane: r.lane,
        }
    }
}

#[derive(Serialize)]
pub struct DeliveryList<'a> {
    pub data: Vec<DeliveryView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
