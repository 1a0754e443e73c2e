//! A webhook's throttle: at most `throttle_rate` deliveries a second,
//! across every lane and container. Each attempt at a throttled webhook
//! reserves the next free slot on the webhook's item (one conditional
//! write); an attempt whose slot is ahead waits on the queue, never
//! dropped or failed for it.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::ValidationError;

/// Deliveries a second a receiver takes: an integer from 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ThrottleRate(u32);

impl ThrottleRate {
    pub const MAX: u32 = 10_000;

    pub fn new(rate: i64) -> Result<Self, ValidationError> {
        match u32::try_from(rate) {
            Ok(r) if (1..=Self::MAX).contains(&r) => Ok(Self(r)),
            _ => Err(ValidationError::new(
                "throttle_rate",
                format!(
                    "must be an integer from 1 to {} deliveries a second, or null for no cap (got {rate})",
                    Self::MAX
                ),
            )),
        }
    }

    pub fn per_second(self) -> u32 {
        self.0
    }

    /// Milliseconds between two slots, at least 1 (the slots' resolution:
    /// rates above 1,000 a second reserve slots in groups within a millisecond).
    pub fn gap_ms(self) -> i64 {
        (1000 / i64::from(self.0)).max(1)
    }
}

struct RateVisitor;

impl Visitor<'_> for RateVisitor {
    type Value = ThrottleRate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from 1 to {}", ThrottleRate::MAX)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ThrottleRate, E> {
        ThrottleRate::new(v).map_err(|e| E::custom(e.message))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ThrottleRate, E> {
        ThrottleRate::new(i64::try_from(v).unwrap_or(i64::MAX)).map_err(|e| E::custom(e.message))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ThrottleRate, E> {
        Err(E::custom(format!(
            "must be an integer from 1 to {} deliveries a second (got {v})",
            ThrottleRate::MAX
        )))
    }
}

impl<'de> Deserialize<'de> for ThrottleRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RateVisitor)
    }
}

/// A reservation of `count` consecutive slots, a gap apart, for the
/// attempts of one batch at one webhook: one write for them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRequest {
    pub rate: ThrottleRate,
    /// How many slots, at least 1.
    pub count: u32,
    pub now: time::OffsetDateTime,
    /// Whether the caller last saw attempts waiting (the webhook's
    /// `throttle_next` ahead): it picks which write is tried first.
    pub waiting: bool,
}

impl SlotRequest {
    /// The time the slots take: `count` gaps, in ms.
    pub fn span_ms(self) -> i64 {
        self.rate.gap_ms() * i64::from(self.count.max(1))
    }
}

/// A time as Unix milliseconds, the slots' unit.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// How far ahead of its slot an attempt sent back to the queue is due back:
/// it then waits the rest in the invocation. SQS hands a message over up
/// to the batching window (1 s) after it is due, so an attempt due back
/// this early is made at its slot, not after it, unless it comes back more
/// than this late; a later one is made at once, which is what bounds the
/// rate's excess at the second's scale.
pub const DUE_EARLY_MS: i64 = 1000;

/// The latest after its slot an attempt that comes back for it is still
/// made at it; a later one takes a new slot. Every delivery is made within
/// this of its slot, so a throttled receiver sees at most
/// `rate × (window + LATE_MS) + 1` deliveries in any window, whatever the
/// queue's or the store's delays.
pub const LATE_MS: i64 = 250;

/// The longest an attempt waits for its slot in the invocation (when the
/// invocation has the time: each attempt still gets its whole deadline).
pub const MAX_WAIT_MS: i64 = 1500;

/// What an attempt at a throttled webhook does about its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Made now, after waiting this many milliseconds.
    Now { wait_ms: i64 },
    /// Sent back to the queue after `pause_ms` (under a second), with a
    /// delay of `delay_secs`: due back [`DUE_EARLY_MS`] before its slot.
    /// SQS delays are whole seconds; the pause makes up the fraction, so
    /// that the whole second's rounding does not add to the lateness.
    Later { pause_ms: i64, delay_secs: u64 },
}

/// Where an attempt with slot `slot` stands at `now` (both Unix ms), when
/// it may wait in place at most `may_wait` ms.
pub fn turn(slot: i64, now: i64, may_wait: i64) -> Turn {
    let ahead = slot - now;
    if ahead <= may_wait.clamp(0, MAX_WAIT_MS) {
        return Turn::Now {
            wait_ms: ahead.max(0),
        };
    }
    let due_in = (ahead - DUE_EARLY_MS).max(0);
    Turn::Later {
        pause_ms: due_in % 1000,
        delay_secs: (due_in / 1000).unsigned_abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_integers_from_1_to_10000() {
        for ok in ["1", "5", "10000"] {
            assert!(serde_json::from_str::<ThrottleRate>(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("0", "got 0"),
            ("-3", "got -3"),
            ("10001", "got 10001"),
            ("1.5", "integer"),
            ("5.0", "integer"),
            ("\"5\"", "integer"),
            ("18446744073709551615", "got"),
        ] {
            let err = serde_json::from_str::<ThrottleRate>(bad).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        assert_eq!(ThrottleRate::new(5).unwrap().gap_ms(), 200);
        assert_eq!(ThrottleRate::new(3).unwrap().gap_ms(), 333);
        assert_eq!(ThrottleRate::new(10_000).unwrap().gap_ms(), 1);
    }

    #[test]
    fn an_attempt_waits_in_place_or_is_due_back_early_by_a_second() {
        // Within what it may wait: made after the wait.
        assert_eq!(turn(1_000, 2_000, 1_200), Turn::Now { wait_ms: 0 });
        assert_eq!(turn(3_100, 2_000, 1_200), Turn::Now { wait_ms: 1_100 });
        // Never longer than MAX_WAIT_MS, whatever the invocation has.
        assert!(matches!(turn(3_600, 2_000, 60_000), Turn::Later { .. }));
        // No time left to wait: back on the queue.
        assert!(matches!(turn(2_100, 2_000, -5), Turn::Later { .. }));
        // Due back exactly DUE_EARLY_MS before the slot: pause + delay.
        for ahead in [1_600, 2_000, 2_001, 2_999, 3_000, 10_500, 200_000] {
            let Turn::Later {
                pause_ms,
                delay_secs,
            } = turn(ahead, 0, 1_200)
            else {
                panic!("{ahead}")
            };
            assert!((0..1000).contains(&pause_ms));
            let back = pause_ms + i64::try_from(delay_secs).unwrap() * 1000;
            assert_eq!(back, ahead - DUE_EARLY_MS, "{ahead}");
        }
        // Under a second to go: the pause alone (no delay).
        assert_eq!(
            turn(1_800, 0, 1_200),
            Turn::Later {
                pause_ms: 800,
                delay_secs: 0
            }
        );
        assert_eq!(
            turn(900, 0, 500),
            Turn::Later {
                pause_ms: 0,
                delay_secs: 0
            }
        );
    }
}
