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

/// A time as Unix milliseconds, the slots' unit.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// How far ahead of its slot an attempt is still made (it waits the rest
/// in the invocation): SQS delays are whole seconds, so an attempt sent
/// back comes back up to this much early, and a wait this short costs less
/// than a trip through the queue. With the 7 s invocation, a 5 s attempt
/// and its record still fit.
pub const EARLY_MS: i64 = 500;

/// What an attempt at a throttled webhook does about its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Made now, after waiting this many milliseconds (at most [`EARLY_MS`]).
    Now { wait_ms: i64 },
    /// Sent back to the queue to come back after this many whole seconds.
    Later { delay_secs: u64 },
}

/// Where an attempt with slot `slot` stands at `now` (both Unix ms).
pub fn turn(slot: i64, now: i64) -> Turn {
    let ahead = slot - now;
    if ahead <= EARLY_MS {
        return Turn::Now {
            wait_ms: ahead.max(0),
        };
    }
    // Back no earlier than EARLY_MS before the slot.
    let delay_ms = ahead - EARLY_MS;
    Turn::Later {
        delay_secs: delay_ms.div_euclid(1000).unsigned_abs() + u64::from(delay_ms % 1000 != 0),
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
    fn an_attempt_waits_in_place_only_briefly() {
        assert_eq!(turn(1_000, 2_000), Turn::Now { wait_ms: 0 });
        assert_eq!(turn(2_300, 2_000), Turn::Now { wait_ms: 300 });
        assert_eq!(turn(2_500, 2_000), Turn::Now { wait_ms: 500 });
        assert_eq!(turn(2_501, 2_000), Turn::Later { delay_secs: 1 });
        assert_eq!(turn(3_500, 2_000), Turn::Later { delay_secs: 1 });
        assert_eq!(turn(3_501, 2_000), Turn::Later { delay_secs: 2 });
        // Back no earlier than EARLY_MS before its slot.
        for ahead in [501, 999, 1500, 1501, 200_000] {
            let Turn::Later { delay_secs } = turn(ahead, 0) else {
                panic!()
            };
            let back = i64::try_from(delay_secs).unwrap() * 1000;
            assert!(back >= ahead - EARLY_MS && back < ahead - EARLY_MS + 1000);
        }
    }
}
