//! The two dispatch lanes. The main lane makes the first attempt of every
//! event for webhooks that answer quickly; a webhook whose attempt takes
//! longer than the slow threshold is marked slow, and while it is, its
//! attempts travel through the slow lane (a queue and event source of their
//! own), so that a dead or sluggish endpoint only ever waits on itself.
//! Customers' redeliveries always take the slow lane: no API call can spend
//! the main lane's capacity. A new endpoint (a new webhook, or a new URL)
//! starts on the slow lane and earns the main lane with its first quick
//! answer: an endpoint that is dead from the start never holds the main lane.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::{Attempt, Outcome};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    #[default]
    Main,
    Slow,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Main => "main",
            Lane::Slow => "slow",
        }
    }
}

/// An attempt that ended within the slow threshold: an answer (any answer)
/// or a refusal, not a timeout. One on the slow lane moves its webhook back.
pub fn is_quick(attempt: &Attempt, threshold: Duration) -> bool {
    attempt.outcome != Outcome::Timeout && u128::from(attempt.duration_ms) < threshold.as_millis()
}
