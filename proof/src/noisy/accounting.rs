//! The noisy tenant's accounting, from its delivery log (read through the
//! API with its own key) and from what its receiver saw: every event sent in
//! 2a/2b/2d must have exactly one record of attempt 1; every attempt queued by a
//! redelivery call in 2c must be recorded.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::api::{self, Api, Record};
use crate::hooks::Arrival;
use crate::load::{Call, Sent};
use crate::setup::Tenant;
use crate::stats::{Latency, round1};

/// Phases 2a, 2b and 2d: events to one webhook on `hang`, `slow3` or `breaks`.
#[derive(Clone, Debug, Serialize)]
pub struct EventsReport {
    pub tenant: String,
    pub receiver: &'static str,
    pub sent: usize,
    pub send_failed: usize,
    /// Records in the webhook's delivery log for the events sent.
    pub records: usize,
    pub events_recorded: usize,
    /// Events with exactly one record of attempt 1.
    pub attempt1_once: usize,
    /// Events sent with no record of attempt 1.
    pub lost: usize,
    /// (event, attempt) pairs with more than one record.
    pub doubled: usize,
    /// Records of attempts after the first (none expected: no retry policy).
    pub later_attempts: usize,
    /// Records of events the bench did not send.
    pub unknown_records: usize,
    pub outcomes: BTreeMap<String, usize>,
    /// Requests the receiver saw in the phase.
    pub receiver_requests: usize,
    pub receiver_events: usize,
    /// Events the receiver saw more than once.
    pub resent: usize,
}

/// Records by (event id, attempt).
type Pairs<'a> = HashMap<(&'a str, u64), usize>;

/// Counts records by (event, attempt) and by outcome.
fn tally(records: &[Record]) -> (Pairs<'_>, BTreeMap<String, usize>) {
    let mut pairs: HashMap<(&str, u64), usize> = HashMap::new();
    let mut outcomes = BTreeMap::new();
    for r in records {
        *pairs.entry((r.event_id.as_str(), r.attempt)).or_default() += 1;
        *outcomes.entry(r.outcome.clone()).or_default() += 1;
    }
    (pairs, outcomes)
}

/// Accounts for the events of phase 2a, 2b or 2d.
pub async fn events(
    api: &Api,
    tenant: &Tenant,
    sent: &[Sent],
    arrivals: &[Arrival],
) -> Result<EventsReport, String> {
    let hook = tenant
        .hooks
        .first()
        .ok_or("the noisy tenant has no webhook")?;
    let all = api::deliveries(api, &tenant.key, &hook.id).await?;
    let ids: HashSet<&str> = sent
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.event_id.as_str())
        .collect();
    let (mine, unknown): (Vec<Record>, Vec<Record>) = all
        .into_iter()
        .partition(|r| ids.contains(r.event_id.as_str()));
    let (pairs, outcomes) = tally(&mine);
    let first = |id: &str| pairs.get(&(id, 1)).copied().unwrap_or(0);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut requests = 0;
    for a in arrivals.iter().filter(|a| a.label == hook.label) {
        requests += 1;
        if let Some(id) = &a.event_id {
            *seen.entry(id.as_str()).or_default() += 1;
        }
    }
    Ok(EventsReport {
        tenant: tenant.id.clone(),
        receiver: tenant.behaviour.name(),
        sent: ids.len(),
        send_failed: sent.len() - ids.len(),
        records: mine.len(),
        events_recorded: mine
            .iter()
            .map(|r| r.event_id.as_str())
            .collect::<HashSet<_>>()
            .len(),
        attempt1_once: ids.iter().filter(|id| first(id) == 1).count(),
        lost: ids.iter().filter(|id| first(id) == 0).count(),
        doubled: pairs.values().filter(|n| **n > 1).count(),
        later_attempts: mine.iter().filter(|r| r.attempt > 1).count(),
        unknown_records: unknown.len(),
        outcomes,
        receiver_requests: requests,
        receiver_events: seen.len(),
        resent: seen.values().filter(|n| **n > 1).count(),
    })
}

/// Phase 2c: redelivery calls on one kept event, to 50 webhooks on `hang`.
#[derive(Clone, Debug, Serialize)]
pub struct RedeliverReport {
    pub tenant: String,
    pub webhooks: usize,
    pub calls: usize,
    pub accepted_202: usize,
    pub throttled_429: usize,
    /// Other statuses (and "none": no answer) → count.
    pub other: BTreeMap<String, usize>,
    /// The largest `Retry-After` seen on a 429, in seconds.
    pub max_retry_after_secs: Option<u64>,
    /// How long the calls took.
    pub call_latency: Latency,
    /// Entries in the 202s' `queued` arrays.
    pub attempts_queued: usize,
    /// Distinct (webhook, attempt) among them.
    pub distinct_queued: usize,
    /// (webhook, attempt) queued by more than one call.
    pub queued_twice: usize,
    /// Distinct queued (webhook, attempt) with a record.
    pub recorded: usize,
    /// Distinct queued (webhook, attempt) with none.
    pub missing: usize,
    /// (webhook, attempt) with more than one record.
    pub doubled: usize,
    pub records: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub receiver_requests: usize,
}

/// Accounts for the redelivery calls of phase 2c.
pub async fn redeliveries(
    api: &Api,
    tenant: &Tenant,
    event: &str,
    calls: &[Call],
    arrivals: &[Arrival],
) -> Result<RedeliverReport, String> {
    let mut queued: HashMap<(String, u64), usize> = HashMap::new();
    let mut other = BTreeMap::new();
    for c in calls {
        for q in &c.queued {
            *queued.entry(q.clone()).or_default() += 1;
        }
        match c.status {
            Some(202 | 429) => {}
            Some(s) => *other.entry(s.to_string()).or_default() += 1,
            None => *other.entry("none".to_owned()).or_default() += 1,
        }
    }
    let mut records: HashMap<(String, u64), usize> = HashMap::new();
    let mut outcomes = BTreeMap::new();
    let mut total = 0;
    for hook in &tenant.hooks {
        for r in api::deliveries(api, &tenant.key, &hook.id).await? {
            if r.event_id == event {
                total += 1;
                *records.entry((hook.id.clone(), r.attempt)).or_default() += 1;
                *outcomes.entry(r.outcome).or_default() += 1;
            }
        }
    }
    let labels: HashSet<&str> = tenant.hooks.iter().map(|h| h.label.as_str()).collect();
    let recorded = queued.keys().filter(|k| records.contains_key(*k)).count();
    let ms: Vec<f64> = calls.iter().map(|c| round1(c.ms)).collect();
    Ok(RedeliverReport {
        tenant: tenant.id.clone(),
        webhooks: tenant.hooks.len(),
        calls: calls.len(),
        accepted_202: calls.iter().filter(|c| c.status == Some(202)).count(),
        throttled_429: calls.iter().filter(|c| c.status == Some(429)).count(),
        other,
        max_retry_after_secs: calls
            .iter()
            .filter(|c| c.status == Some(429))
            .filter_map(|c| c.retry_after)
            .max(),
        call_latency: Latency::of(&ms),
        attempts_queued: queued.values().sum(),
        distinct_queued: queued.len(),
        queued_twice: queued.values().filter(|n| **n > 1).count(),
        recorded,
        missing: queued.len() - recorded,
        doubled: records.values().filter(|n| **n > 1).count(),
        records: total,
        outcomes,
        receiver_requests: arrivals
            .iter()
            .filter(|a| labels.contains(a.label.as_str()))
            .count(),
    })
}
