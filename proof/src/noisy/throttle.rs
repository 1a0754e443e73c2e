//! Phase 2t's accounting: a burst of N events to one webhook with
//! `throttle_rate` R, from what its receiver saw (every request, with its
//! arrival time and event id). The rate goal is on the receiver's own
//! clock: in every 10-second window, at most 1.1 × R × 10 requests.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hooks::Arrival;
use crate::load::Sent;
use crate::phase::Burst;
use crate::setup::{Tenant, Throttle};
use crate::stats::{Latency, round1, round2};

/// The sliding window of the rate goal.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The most requests the receiver may see in any [`WINDOW`] at `rate` a
/// second: 1.1 × rate × 10 (10 % over, for the slots' rounding and an
/// attempt made up to 0.5 s before its slot), rounded down.
pub fn window_limit(rate: u32) -> usize {
    (u64::from(rate) * WINDOW.as_secs() * 11 / 10) as usize
}

/// The most instants of `times` (sorted) in any half-open window
/// `[t, t + width)`.
pub fn max_in_window(times: &[Instant], width: Duration) -> usize {
    let mut best = 0;
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while times[first] + width <= *t {
            first += 1;
        }
        best = best.max(last + 1 - first);
    }
    best
}

/// Phase 2t's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ThrottleReport {
    pub tenant: String,
    /// N: the burst's events.
    pub events: usize,
    /// R: the `throttle_rate` asked for.
    pub rate: u32,
    /// The webhook as the API took it: the rate it shows, or why it
    /// refused the field.
    pub api: Throttle,
    /// Events SQS accepted (the rest, refused three times, are not counted).
    pub sent: usize,
    pub send_failed: usize,
    /// From the phase's start to the burst's last send returning.
    pub burst_secs: f64,
    /// Distinct events sent that arrived.
    pub arrived: usize,
    /// Events sent that never arrived.
    pub lost: usize,
    /// Events that arrived more than once.
    pub duplicated: usize,
    /// Requests the receiver saw in the phase, and those for events the
    /// bench did not send in it.
    pub receiver_requests: usize,
    pub unknown_requests: usize,
    /// From the phase's start to the first and the last request.
    pub first_delivery_secs: Option<f64>,
    pub last_delivery_secs: Option<f64>,
    /// Requests a second between the first and the last.
    pub delivered_per_sec: Option<f64>,
    /// Requests in each second from the phase's start (the shape of the
    /// deliveries: a burst, a steady rate, a catch-up after a stall).
    pub per_second: Vec<usize>,
    /// The most requests in any 10 s window, and the goal's bound.
    pub max_in_10s: usize,
    pub limit_in_10s: usize,
    /// Every event arrived before the phase's give-up time.
    pub all_arrived_in_time: bool,
    /// `GET /webhooks/{id}` during the phase, and how many showed
    /// `throttled_since`.
    pub looks: usize,
    pub looks_throttled: usize,
    /// The quiet events that took longer than [`SLOW_QUIET`] to arrive (or
    /// never did), and when the first and the last of them were emitted,
    /// from the phase's start: where in the phase the quiet tenants felt
    /// the burst.
    pub quiet_slow: SlowQuiet,
    /// The quiet events emitted from [`BURST_IN`] after the phase's start
    /// on: the paced part of the phase, once the burst is emitted and
    /// handed over. What the throttle's own work (reservations, waits,
    /// send-backs) costs the other tenants, apart from the burst's
    /// ingestion, which any burst costs the shared queue and store.
    pub quiet_once_in: Latency,
}

/// When the burst is in: emitted (1,000 events take about 3 s to send) and
/// handed over to the slow lane.
pub const BURST_IN: Duration = Duration::from_secs(10);

/// The latency of the quiet events emitted from `from` after `start` on.
pub fn quiet_from(
    sent: &[Sent],
    seen: &HashMap<String, Vec<Instant>>,
    start: Instant,
    from: Duration,
) -> Latency {
    let ms: Vec<f64> = sent
        .iter()
        .filter(|s| s.accepted && s.at >= start + from)
        .filter_map(|s| {
            let first = seen.get(&s.event_id)?.first()?;
            Some(first.saturating_duration_since(s.at).as_secs_f64() * 1000.0)
        })
        .collect();
    Latency::of(&ms)
}

/// A quiet event slower than this counts in [`SlowQuiet`].
pub const SLOW_QUIET: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default, Serialize)]
pub struct SlowQuiet {
    pub count: usize,
    pub first_emitted_secs: Option<f64>,
    pub last_emitted_secs: Option<f64>,
}

/// The quiet events slower than [`SLOW_QUIET`] (or lost), and when they
/// were emitted.
pub fn slow_quiet(
    sent: &[Sent],
    seen: &HashMap<String, Vec<Instant>>,
    start: Instant,
) -> SlowQuiet {
    let mut at: Vec<Instant> = sent
        .iter()
        .filter(|s| s.accepted)
        .filter(|s| {
            seen.get(&s.event_id)
                .and_then(|t| t.first())
                .is_none_or(|first| first.saturating_duration_since(s.at) > SLOW_QUIET)
        })
        .map(|s| s.at)
        .collect();
    at.sort();
    let since = |t: &Instant| round1(t.saturating_duration_since(start).as_secs_f64());
    SlowQuiet {
        count: at.len(),
        first_emitted_secs: at.first().map(since),
        last_emitted_secs: at.last().map(since),
    }
}

/// Accounts for phase 2t from the receiver's requests since its start.
pub fn assess(
    tenant: &Tenant,
    throttle: &Throttle,
    events: usize,
    start: Instant,
    burst: &Burst,
    arrivals: &[Arrival],
    (quiet_slow, quiet_once_in): (SlowQuiet, Latency),
) -> ThrottleReport {
    let label = tenant.hooks.first().map_or("", |h| h.label.as_str());
    let ids: HashSet<&str> = burst
        .sent
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.event_id.as_str())
        .collect();
    let mut times = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut unknown = 0;
    for a in arrivals.iter().filter(|a| a.label == label) {
        times.push(a.at);
        match a.event_id.as_deref().filter(|id| ids.contains(id)) {
            Some(id) => *seen.entry(id).or_default() += 1,
            None => unknown += 1,
        }
    }
    times.sort();
    let since = |t: &Instant| round1(t.saturating_duration_since(start).as_secs_f64());
    let delivered_per_sec = match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 && b > a => Some(round2(
            (times.len() - 1) as f64 / b.duration_since(*a).as_secs_f64(),
        )),
        _ => None,
    };
    ThrottleReport {
        tenant: tenant.id.clone(),
        events,
        rate: throttle.rate,
        api: throttle.clone(),
        sent: ids.len(),
        send_failed: burst.sent.len() - ids.len(),
        burst_secs: since(&burst.sent_end),
        arrived: seen.len(),
        lost: ids.len() - seen.len(),
        duplicated: seen.values().filter(|n| **n > 1).count(),
        receiver_requests: times.len(),
        unknown_requests: unknown,
        first_delivery_secs: times.first().map(since),
        last_delivery_secs: times.last().map(since),
        delivered_per_sec,
        per_second: per_second(&times, start),
        max_in_10s: max_in_window(&times, WINDOW),
        limit_in_10s: window_limit(throttle.rate),
        all_arrived_in_time: burst.all_arrived,
        looks: burst.looks,
        looks_throttled: burst.looks_throttled,
        quiet_slow,
        quiet_once_in,
    }
}

/// How many of `times` fall in each whole second from `start`.
fn per_second(times: &[Instant], start: Instant) -> Vec<usize> {
    let mut counts = Vec::new();
    for t in times {
        let s = t.saturating_duration_since(start).as_secs() as usize;
        if counts.len() <= s {
            counts.resize(s + 1, 0);
        }
        counts[s] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_eleven_tenths_of_ten_seconds_at_the_rate() {
        assert_eq!(window_limit(5), 55);
        assert_eq!(window_limit(10), 110);
        assert_eq!(window_limit(1), 11);
        assert_eq!(window_limit(3), 33);
    }

    #[test]
    fn windows_slide_over_every_arrival() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(max_in_window(&[], WINDOW), 0);
        assert_eq!(max_in_window(&[at(0)], WINDOW), 1);
        // 5 a second for 30 s: 50 in any 10 s.
        let steady: Vec<Instant> = (0..150).map(|i| at(i * 200)).collect();
        assert_eq!(max_in_window(&steady, WINDOW), 50);
        // Half-open: one exactly 10 s after another is in the next window.
        assert_eq!(max_in_window(&[at(0), at(10_000)], WINDOW), 1);
        assert_eq!(max_in_window(&[at(0), at(9_999)], WINDOW), 2);
        // A burst in the middle counts with its neighbours.
        let mut bursty = steady.clone();
        bursty.extend((0..20).map(|i| at(15_000 + i)));
        bursty.sort();
        assert_eq!(max_in_window(&bursty, WINDOW), 70);
        // Everything at once.
        let all: Vec<Instant> = (0..1000).map(at).collect();
        assert_eq!(max_in_window(&all, WINDOW), 1000);
    }

    /// Only the quiet events emitted from the given time on count, each
    /// from its emission to its first arrival; refused sends and lost ones
    /// do not.
    #[test]
    fn the_paced_part_counts_events_emitted_after_the_burst_is_in() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sent = |id: &str, ms, accepted| Sent {
            event_id: id.into(),
            at: at(ms),
            accepted,
            send_ms: 1.0,
        };
        let sent = [
            sent("early", 1_000, true),
            sent("a", 10_000, true),
            sent("b", 12_000, true),
            sent("refused", 13_000, false),
            sent("lost", 14_000, true),
        ];
        let seen = HashMap::from([
            ("early".to_owned(), vec![at(3_000)]),
            ("a".to_owned(), vec![at(10_020), at(10_500)]),
            ("b".to_owned(), vec![at(12_040)]),
            ("refused".to_owned(), vec![at(13_001)]),
        ]);
        let paced = quiet_from(&sent, &seen, t0, BURST_IN);
        assert_eq!(paced.n, 2);
        assert_eq!(paced.max_ms, Some(40.0));
        assert_eq!(
            quiet_from(&sent, &seen, t0, Duration::ZERO).max_ms,
            Some(2_000.0)
        );
    }
}
