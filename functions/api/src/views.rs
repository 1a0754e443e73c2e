//! Request and response bodies of the webhook routes.

use serde::{Deserialize, Deserializer, Serialize};
use shared::{Description, EventSet, EventType, Status, Token, Webhook};
use time::format_description::well_known::Rfc3339;

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
}

/// Every field optional; `null` clears `description` and is refused elsewhere.
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

/// Whether a response shows the token in full (create, change, rotation) or masked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Reveal,
    Mask,
}

#[derive(Serialize)]
pub struct WebhookView<'a> {
    id: String,
    url: &'a str,
    events: &'a EventSet,
    status: Status,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<&'static str>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl<'a> WebhookView<'a> {
    pub fn new(w: &'a Webhook, secrets: Secrets) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.as_str(),
            events: &w.events,
            status: w.status,
            token: match secrets {
                Secrets::Reveal => w.token.expose().to_owned(),
                Secrets::Mask => w.token.masked(),
            },
            description: w.description.as_ref().map(Description::as_str),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            warnings: w.url.warnings(),
        }
    }
}

#[derive(Serialize)]
pub struct WebhookList<'a> {
    pub data: Vec<WebhookView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct EventTypeView {
    name: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
pub struct EventTypeList {
    data: Vec<EventTypeView>,
}

impl EventTypeList {
    pub fn all() -> Self {
        Self {
            data: EventType::ALL
                .iter()
                .map(|t| EventTypeView {
                    name: t.as_str(),
                    description: t.description(),
                })
                .collect(),
        }
    }
}
