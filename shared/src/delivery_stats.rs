//! A webhook's health over a window (`GET /webhooks/{id}/stats`): attempts
//! per outcome and their p50/p95 duration, per hour over 24 hours or per day
//! over 7 or 30 days. Derived from the delivery log as it is written, so a
//! delivery costs no extra write; the read is bounded ([`READ_LIMIT`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Time};

use crate::delivery::Outcome;
use crate::delivery_log::sortable_time;

/// The most delivery records one stats answer reads. A window holding more
/// is answered from its newest `READ_LIMIT` attempts, and says so
/// (`complete: false`, `counted_since`).
pub const READ_LIMIT: usize = 5_000;

/// What the stats need of one delivery record (the store reads only these).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliverySample {
    /// As the record holds it: RFC 3339, UTC, six fractional digits.
    pub attempted_at: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

/// The samples of a window, newest first, and whether the window holds more.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub items: Vec<DeliverySample>,
    pub more: bool,
}

/// The windows a customer may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 24 hourly buckets.
    Day,
    /// 7 daily buckets.
    Week,
    /// 30 daily buckets.
    Month,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Day, Window::Week, Window::Month];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    const fn buckets(self) -> i64 {
        match self {
            Window::Day => 24,
            Window::Week => 7,
            Window::Month => 30,
        }
    }

    const fn bucket(self) -> Duration {
        match self {
            Window::Day => Duration::HOUR,
            Window::Week | Window::Month => Duration::DAY,
        }
    }

    /// The start of the bucket that holds `at` (UTC hours or days).
    fn floor(self, at: OffsetDateTime) -> OffsetDateTime {
        let utc = at.to_offset(time::UtcOffset::UTC);
        let time = match self {
            Window::Day => Time::from_hms(utc.hour(), 0, 0).unwrap_or(Time::MIDNIGHT),
            Window::Week | Window::Month => Time::MIDNIGHT,
        };
        utc.replace_time(time)
    }

    /// Where the window starts: buckets are whole UTC hours (days), the
    /// last one the bucket that holds `now`.
    pub fn since(self, now: OffsetDateTime) -> OffsetDateTime {
        self.floor(now) - self.bucket() * (self.buckets() - 1) as i32
    }
}

/// One bucket of the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// When the bucket starts (RFC 3339, UTC); it lasts an hour or a day.
    pub start: String,
    pub delivered: u64,
    /// Attempts that did not end `delivered`.
    pub failed: u64,
    /// Attempts by outcome (outcomes with none are left out).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Nearest-rank percentiles of the attempts' durations; absent when the
    /// bucket holds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<u64>,
}

/// `GET /webhooks/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub window: &'static str,
    /// `hour` or `day`.
    pub bucket: &'static str,
    pub since: String,
    pub until: String,
    pub delivered: u64,
    pub failed: u64,
    /// Attempts counted (at most [`READ_LIMIT`]).
    pub counted: usize,
    /// False when the window held more attempts than one answer reads: the
    /// figures are those of the newest `counted`, back to `counted_since`.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted_since: Option<String>,
    pub buckets: Vec<Bucket>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| sortable_time(t))
}

/// The nearest-rank percentile `p` of sorted values.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get((rank - 1) as usize).copied()
}

/// The window's figures from its samples (any order). A sample whose time
/// does not parse, or falls outside the window, is not counted.
pub fn compute(window: Window, now: OffsetDateTime, samples: &Samples) -> Stats {
    let since = window.since(now);
    let mut durations: Vec<Vec<u64>> = vec![Vec::new(); window.buckets() as usize];
    let mut buckets: Vec<Bucket> = (0..window.buckets())
        .map(|i| Bucket {
            start: rfc3339(since + window.bucket() * i as i32),
            delivered: 0,
            failed: 0,
            outcomes: BTreeMap::new(),
            p50_ms: None,
            p95_ms: None,
        })
        .collect();
    let mut oldest: Option<OffsetDateTime> = None;
    let mut counted = 0;
    for sample in &samples.items {
        let Ok(at) = OffsetDateTime::parse(&sample.attempted_at, &Rfc3339) else {
            continue;
        };
        // Integer division rounds toward zero: a time just before the window
        // would land in its first bucket.
        if at < since {
            continue;
        }
        let index = (at - since).whole_seconds() / window.bucket().whole_seconds();
        let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) else {
            continue;
        };
        counted += 1;
        oldest = Some(oldest.map_or(at, |o| o.min(at)));
        if sample.outcome == Outcome::Delivered {
            bucket.delivered += 1;
        } else {
            bucket.failed += 1;
        }
        *bucket.outcomes.entry(sample.outcome.as_str()).or_default() += 1;
        durations[index as usize].push(sample.duration_ms);
    }
    for (bucket, mut values) in buckets.iter_mut().zip(durations) {
        values.sort_unstable();
        bucket.p50_ms = percentile(&values, 50);
        bucket.p95_ms = percentile(&values, 95);
    }
    Stats {
        window: window.as_str(),
        bucket: if window == Window::Day { "hour" } else { "day" },
        since: rfc3339(since),
        until: rfc3339(now),
        delivered: buckets.iter().map(|b| b.delivered).sum(),
        failed: buckets.iter().map(|b| b.failed).sum(),
        counted,
        complete: !samples.more,
        counted_since: if samples.more {
            oldest.map(rfc3339)
        } else {
            None
        },
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample(at: OffsetDateTime, outcome: Outcome, duration_ms: u64) -> DeliverySample {
        DeliverySample {
            attempted_at: sortable_time(at),
            outcome,
            duration_ms,
        }
    }

    #[test]
    fn windows_are_whole_utc_hours_or_days_ending_with_now() {
        let now = datetime!(2026-11-27 15:42:10 UTC);
        assert_eq!(Window::Day.since(now), datetime!(2026-11-26 16:00 UTC));
        assert_eq!(Window::Week.since(now), datetime!(2026-11-21 00:00 UTC));
        assert_eq!(Window::Month.since(now), datetime!(2026-10-29 00:00 UTC));
        assert_eq!(Window::parse("7d"), Some(Window::Week));
        assert_eq!(Window::parse("1y"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&values, 50), Some(10));
        assert_eq!(percentile(&values, 95), Some(19));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn samples_land_in_their_buckets_and_outside_ones_do_not_count() {
        let now = datetime!(2026-11-27 15:42:10 UTC);
        let samples = Samples {
            items: vec![
                sample(datetime!(2026-11-27 15:01 UTC), Outcome::Delivered, 100),
                sample(datetime!(2026-11-27 15:30 UTC), Outcome::Timeout, 5000),
                sample(datetime!(2026-11-26 16:00 UTC), Outcome::HttpError, 40),
                // Before the window.
                sample(datetime!(2026-11-26 15:59:59 UTC), Outcome::Delivered, 1),
            ],
            more: false,
        };
        let stats = compute(Window::Day, now, &samples);
        assert_eq!(stats.buckets.len(), 24);
        assert_eq!((stats.delivered, stats.failed, stats.counted), (1, 2, 3));
        assert!(stats.complete && stats.counted_since.is_none());
        let first = &stats.buckets[0];
        assert_eq!(first.start, "2026-11-26T16:00:00Z");
        assert_eq!((first.failed, first.p50_ms), (1, Some(40)));
        let last = &stats.buckets[23];
        assert_eq!(last.start, "2026-11-27T15:00:00Z");
        assert_eq!((last.delivered, last.failed), (1, 1));
        assert_eq!((last.p50_ms, last.p95_ms), (Some(100), Some(5000)));
        assert_eq!(
            last.outcomes,
            BTreeMap::from([("delivered", 1), ("timeout", 1)])
        );
        assert!(stats.buckets[5].p50_ms.is_none());
    }

    #[test]
    fn a_window_with_more_than_was_read_says_so() {
        let now = datetime!(2026-11-27 15:42:10 UTC);
        let samples = Samples {
            items: vec![sample(
                datetime!(2026-11-27 12:00 UTC),
                Outcome::Delivered,
                1,
            )],
            more: true,
        };
        let stats = compute(Window::Week, now, &samples);
        assert!(!stats.complete);
        assert_eq!(stats.counted_since.as_deref(), Some("2026-11-27T12:00:00Z"));
        assert_eq!(stats.bucket, "day");
    }
}
