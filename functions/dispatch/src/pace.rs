//! How fast each webhook has been answering, as this container saw it: what
//! lets the main lane notice at once that an endpoint which answers in
//! milliseconds has stopped answering.
//!
//! A main-lane attempt that outlasts its webhook's threshold marks the
//! webhook slow (see [`crate::lane`]), and every batch that made an attempt
//! at it before the mark was seen waits for that attempt, up to the 5 s
//! deadline. With one fixed threshold (1 s), an endpoint that hangs while
//! 40 of its events arrive a second catches every main-lane invocation in
//! that second, and everybody's events wait. So a webhook that has lately
//! answered within a few milliseconds gets a threshold of a few times that
//! (at least [`FLOOR`], at most the configured threshold): the mark comes
//! about ten times sooner, and catches about ten times fewer invocations.
//! Nothing is cut or sent twice: every attempt still has its whole 5 s.
//!
//! Per container, in memory, no I/O: a warm container learns a webhook's
//! pace from its first answers; a new one uses the configured threshold.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shared::WebhookId;
use shared::delivery::Attempt;

/// The lowest threshold: below it, ordinary jitter (a TLS resumption, a
/// garbage collection on the receiver) would mark healthy webhooks slow.
pub const FLOOR: Duration = Duration::from_millis(150);

/// A webhook's threshold is this many times its slowest recent answer.
const FACTOR: f64 = 4.0;

/// How fast the slowest recent answer is forgotten: halved every 10 min, so
/// that a webhook with an occasional slow answer keeps a threshold that
/// allows for it.
const HALF_LIFE_SECS: f64 = 600.0;

/// Webhooks remembered at most; past it, the least recently seen go.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Pace {
    seen: Mutex<HashMap<WebhookId, Slowest>>,
}

/// The slowest recent answer, decaying with time.
#[derive(Clone, Copy)]
struct Slowest {
    ms: f64,
    at: Instant,
}

impl Slowest {
    fn now(self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.ms * 0.5f64.powf(age / HALF_LIFE_SECS)
    }
}

impl Pace {
    /// The threshold of `webhook`'s next main-lane attempt: `ceiling` (the
    /// configured one) until this container has seen it answer.
    pub fn threshold(&self, webhook: WebhookId, ceiling: Duration, now: Instant) -> Duration {
        let Some(slowest) = self.lock().get(&webhook).copied() else {
            return ceiling;
        };
        let ms = (FACTOR * slowest.now(now)).max(FLOOR.as_secs_f64() * 1000.0);
        Duration::from_secs_f64(ms / 1000.0).min(ceiling)
    }

    /// Learns from an attempt that got an answer (any status); one that
    /// got none (a timeout, a refused connection) says nothing of its pace.
    pub fn record(&self, webhook: WebhookId, attempt: &Attempt, now: Instant) {
        if attempt.status.is_none() {
            return;
        }
        let ms = attempt.duration_ms as f64;
        let mut seen = self.lock();
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&webhook) {
            let oldest = seen.iter().min_by_key(|(_, s)| s.at).map(|(id, _)| *id);
            if let Some(id) = oldest {
                seen.remove(&id);
            }
        }
        let slowest = seen.entry(webhook).or_insert(Slowest { ms, at: now });
        let decayed = slowest.now(now);
        *slowest = Slowest {
            ms: decayed.max(ms),
            at: now,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Slowest>> {
        // A poisoned lock means another attempt panicked mid-update; the
        // figures are still usable.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use shared::delivery::Outcome;

    use super::*;

    fn answered(ms: u64) -> Attempt {
        Attempt::bare(Outcome::Delivered, Some(200), ms)
    }

    /// Unknown: the configured threshold. Answering in 5 ms: the floor.
    /// Answering in 100 ms: 400 ms. A slow answer raises it at once (up to
    /// the ceiling) and is forgotten by halves; a timeout teaches nothing.
    #[test]
    fn a_fast_webhook_gets_a_low_threshold_and_a_slow_answer_raises_it() {
        let pace = Pace::default();
        let (fast, steady) = (WebhookId::generate(), WebhookId::generate());
        let ceiling = Duration::from_secs(1);
        let t0 = Instant::now();
        assert_eq!(pace.threshold(fast, ceiling, t0), ceiling);
        pace.record(fast, &answered(5), t0);
        assert_eq!(pace.threshold(fast, ceiling, t0), FLOOR);
        pace.record(steady, &answered(100), t0);
        assert_eq!(
            pace.threshold(steady, ceiling, t0),
            Duration::from_millis(400)
        );

        pace.record(fast, &answered(800), t0);
        assert_eq!(pace.threshold(fast, ceiling, t0), ceiling, "capped");
        let later = t0 + Duration::from_secs(1200);
        let halved_twice = Duration::from_millis(800);
        assert_eq!(
            pace.threshold(fast, ceiling, later),
            halved_twice,
            "200 × 4"
        );
        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(pace.threshold(fast, ceiling, much_later), FLOOR);

        let timed_out = Attempt::bare(Outcome::Timeout, None, 5000);
        pace.record(steady, &timed_out, t0);
        assert_eq!(
            pace.threshold(steady, ceiling, t0),
            Duration::from_millis(400)
        );
    }

    /// It remembers at most `MAX_TRACKED` webhooks.
    #[test]
    fn it_forgets_the_least_recently_seen() {
        let pace = Pace::default();
        let t0 = Instant::now();
        let first = WebhookId::generate();
        pace.record(first, &answered(5), t0);
        for n in 1..=MAX_TRACKED as u64 {
            pace.record(
                WebhookId::generate(),
                &answered(5),
                t0 + Duration::from_millis(n),
            );
        }
        assert_eq!(pace.lock().len(), MAX_TRACKED);
        let ceiling = Duration::from_secs(1);
        assert_eq!(pace.threshold(first, ceiling, t0), ceiling, "forgotten");
    }
}
