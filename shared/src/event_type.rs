use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// The platform's event types: the six its jobs produce, then the notices
/// the webhook platform sends about a tenant's own webhooks. The order of
/// declaration is the canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    AsyncCompleted,
    AsyncErrored,
    FlowxCompleted,
    FlowxErrored,
    FlowxSkipped,
    FactxQuery,
    WebhookFailing,
    WebhookDisabled,
}

impl EventType {
    /// Every type: the job events, then the notices.
    pub const ALL: [EventType; 8] = {
        let mut all = [EventType::AsyncCompleted; 8];
        let mut i = 0;
        while i < Self::JOBS.len() {
            all[i] = Self::JOBS[i];
            i += 1;
        }
        while i < all.len() {
            all[i] = Self::NOTICES[i - Self::JOBS.len()];
            i += 1;
        }
        all
    };

    /// The events the platform's jobs produce (producers emit these).
    pub const JOBS: [EventType; 6] = [
        EventType::AsyncCompleted,
        EventType::AsyncErrored,
        EventType::FlowxCompleted,
        EventType::FlowxErrored,
        EventType::FlowxSkipped,
        EventType::FactxQuery,
    ];

    /// The notices about a tenant's webhooks: sent by the dispatcher only,
    /// never taken from a producer.
    pub const NOTICES: [EventType; 2] = [EventType::WebhookFailing, EventType::WebhookDisabled];

    pub const fn is_notice(self) -> bool {
        matches!(self, EventType::WebhookFailing | EventType::WebhookDisabled)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::AsyncCompleted => "async.completed",
            EventType::AsyncErrored => "async.errored",
            EventType::FlowxCompleted => "flowx.completed",
            EventType::FlowxErrored => "flowx.errored",
            EventType::FlowxSkipped => "flowx.skipped",
            EventType::FactxQuery => "factx.query",
            EventType::WebhookFailing => "webhook.failing",
            EventType::WebhookDisabled => "webhook.disabled",
        }
    }

    /// The one-line description from the platform's documentation.
    pub const fn description(self) -> &'static str {
        match self {
            EventType::AsyncCompleted => "An asynchronous eKYC API operation finished.",
            EventType::AsyncErrored => "An asynchronous eKYC API operation ran into errors.",
            EventType::FlowxCompleted => "A user finished every stage of a hosted onboarding flow.",
            EventType::FlowxErrored => {
                "A hosted onboarding flow hit an unrecoverable system or user-data error."
            }
            EventType::FlowxSkipped => "The user skipped the hosted onboarding flow.",
            EventType::FactxQuery => "A follow-up query was posted on a background-check profile.",
            EventType::WebhookFailing => {
                "One of the tenant's webhooks has failed 4 attempts in a row (sent once per failing streak)."
            }
            EventType::WebhookDisabled => {
                "The platform set one of the tenant's webhooks inactive: every attempt failed for days, or the endpoint answered 410 Gone."
            }
        }
    }

    fn valid_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown event type name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {name:?}; valid types are: {valid}", valid = EventType::valid_names())]
pub struct UnknownEventType {
    pub name: String,
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType { name: s.to_owned() })
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A non-empty set of event types, duplicates folded, kept in canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSet(BTreeSet<EventType>);

impl EventSet {
    pub fn new(types: impl IntoIterator<Item = EventType>) -> Result<Self, ValidationError> {
        let set: BTreeSet<EventType> = types.into_iter().collect();
        if set.is_empty() {
            return Err(ValidationError::new(
                "events",
                format!(
                    "must name at least one event type; valid types are: {}",
                    EventType::valid_names()
                ),
            ));
        }
        Ok(Self(set))
    }

    pub fn contains(&self, t: EventType) -> bool {
        self.0.contains(&t)
    }

    pub fn iter(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }

    pub fn first(&self) -> EventType {
        // Never empty by construction.
        self.0.first().copied().unwrap_or(EventType::AsyncCompleted)
    }
}

impl<'de> Deserialize<'de> for EventSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<EventType>::deserialize(d)?;
        EventSet::new(list).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert!(!t.description().is_empty());
        }
        let names: Vec<_> = EventType::ALL.map(EventType::as_str).into();
        assert_eq!(
            names,
            [
                "async.completed",
                "async.errored",
                "flowx.completed",
                "flowx.errored",
                "flowx.skipped",
                "factx.query",
                "webhook.failing",
                "webhook.disabled"
            ]
        );
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "async.done".parse::<EventType>().unwrap_err().to_string();
        assert!(err.contains("\"async.done\""), "{err}");
        for t in EventType::ALL {
            assert!(err.contains(t.as_str()), "{err}");
        }
        assert!("ASYNC.COMPLETED".parse::<EventType>().is_err());
        assert!("".parse::<EventType>().is_err());
    }

    #[test]
    fn set_folds_duplicates_and_rejects_empty() {
        let set: EventSet =
            serde_json::from_str(r#"["factx.query","async.completed","factx.query"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["async.completed","factx.query"]"#
        );
        assert_eq!(set.first(), EventType::AsyncCompleted);
        assert!(serde_json::from_str::<EventSet>("[]").is_err());
        let one: EventSet = serde_json::from_str(r#"["flowx.skipped"]"#).unwrap();
        assert!(one.contains(EventType::FlowxSkipped));
        assert!(EventType::NOTICES.iter().all(|t| t.is_notice()));
        assert!(EventType::JOBS.iter().all(|t| !t.is_notice()));
        assert!(!one.contains(EventType::FlowxErrored));
    }
}
