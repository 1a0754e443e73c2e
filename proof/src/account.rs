//! The accounting: the delivery log (DynamoDB) and what the receivers saw,
//! against the expected (webhook, event) pairs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use shared::store::DynamoStore;
use shared::store::prelude::*;

use crate::fixture::Hook;
use crate::receivers::Recorder;

/// A batch in flight can last this long (the dispatch deadline and a margin).
const BATCH_SPAN: Duration = Duration::from_millis(6500);

#[derive(Default, Serialize)]
pub struct Faults {
    pub outage_requested: bool,
    pub outage_done: bool,
    pub outage_secs: u64,
    /// Seconds after the start of sending.
    pub outage_at_secs: Option<f64>,
    pub proxy_connections: u64,
    /// DynamoDB connections refused while cut.
    pub proxy_refused: u64,
    /// Open DynamoDB connections reset when the cut began.
    pub proxy_severed: u64,
    pub kill_requested: bool,
    pub kill_done: bool,
    pub kill_at_secs: Option<f64>,
    /// Requests the receivers were still serving when the dispatcher died.
    pub kill_in_flight_requests: u64,
    /// Times the flipping receivers changed pace (2: slowed, then recovered).
    pub flips: u32,
    #[serde(skip)]
    pub flip_slow_now: bool,
}

#[derive(Default, Serialize)]
pub struct Timing {
    /// UTC, as in the dispatcher's log lines.
    pub started_at: String,
    pub total_secs: f64,
    pub send_secs: f64,
    /// From the first send until the queue was empty.
    pub dispatch_secs: f64,
    /// Reading back every webhook's delivery log for the check (moto scans
    /// the whole table for each page of an index query).
    pub check_secs: f64,
}

/// When the faults happened, to tell what a resend followed.
pub struct Windows {
    /// When the run started: resend times are reported from here.
    pub started: Instant,
    pub kill: Option<Instant>,
    pub outage: Option<(Instant, Instant)>,
}

pub struct Input<'a> {
    pub store: &'a DynamoStore,
    pub hooks: &'a [Hook],
    pub events_requested: usize,
    pub accepted: &'a HashSet<String>,
    pub poison: &'a [String],
    pub poison_sent: usize,
    pub expected: &'a HashMap<(String, String), usize>,
    pub recorder: &'a Recorder,
    pub queue_left: u64,
    pub dlq: &'a [String],
    pub faults: Faults,
    pub windows: Windows,
    pub timing: Timing,
    pub timed_out: bool,
    pub concurrency: usize,
    pub visibility_timeout_secs: u64,
    pub max_receive_count: u32,
    pub table: &'a str,
}

/// For each of the first lost pairs: its receiver, when the receiver saw it
/// (seconds from the start), and whether the record is in the event's own
/// partition (then the delivery log's index missed it, not the dispatcher).
async fn explain_lost(
    input: &Input<'_>,
    lost: &[&(String, String)],
    seen: &HashMap<(String, String), Vec<Instant>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (webhook_id, event_id) in lost.iter().take(20).copied() {
        let Some(hook) = input
            .hooks
            .iter()
            .find(|h| h.webhook.id.to_string() == *webhook_id)
        else {
            continue;
        };
        let requests: Vec<f64> = seen
            .get(&(webhook_id.clone(), event_id.clone()))
            .map(|times| {
                times
                    .iter()
                    .map(|t| crate::secs(t.saturating_duration_since(input.windows.started)))
                    .collect()
            })
            .unwrap_or_default();
        let in_partition = match shared::event::EventId::parse(event_id) {
            Ok(event) => {
                let key = shared::store::AttemptKey {
                    tenant: hook.webhook.tenant_id.clone(),
                    webhook: hook.webhook.id,
                    event,
                    attempt: 1,
                };
                match input.store.recorded_deliveries(&[key]).await {
                    Ok(found) => (if found.is_empty() { "no" } else { "yes" }).to_owned(),
                    Err(e) => format!("unknown ({e})"),
                }
            }
            Err(e) => format!("unknown ({e})"),
        };
        lines.push(format!(
            "lost: {event_id} to {webhook_id} ({:?} receiver), requests at {requests:?} s, \
             record in the event's partition: {in_partition}",
            hook.kind
        ));
    }
    lines
}

#[derive(Serialize)]
pub struct ResentAt {
    pub first_secs: f64,
    pub again_after_secs: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub passed: bool,
    pub failures: Vec<String>,
    pub events: usize,
    pub events_accepted: usize,
    pub poison_sent: usize,
    pub expected_pairs: usize,
    /// Expected pairs with exactly one recorded outcome.
    pub recorded: usize,
    /// Expected pairs with no recorded outcome.
    pub lost: usize,
    /// Expected pairs with more than one recorded outcome.
    pub duplicated: usize,
    /// Records of pairs that must not exist (unsubscribed, inactive, foreign).
    pub misdirected_records: usize,
    /// Requests a receiver got for a pair that must not exist.
    pub misdirected_requests: usize,
    /// Requests whose Authorization was not the webhook's own token.
    pub wrong_token: u64,
    /// Requests without a webhook-id, or on a path of no webhook.
    pub unidentified_requests: u64,
    pub requests: u64,
    /// Pairs a receiver saw more than once (same webhook-id): sent, not
    /// recorded, then sent again when the message came back.
    pub resent_pairs: usize,
    pub resent_extra_requests: usize,
    pub resent_after_kill: usize,
    pub resent_after_outage: usize,
    /// Resends with no fault nearby: a batch that overran its deadline (the
    /// second request some 8 s later, when the message came back), or one
    /// message handed to two receive loops at once (both within a second).
    pub resent_other: usize,
    /// Each of those: when it was first sent (seconds from the start, to
    /// match against the dispatcher's log) and how long after it came again.
    pub resent_other_at: Vec<ResentAt>,
    /// Pairs seen more often than their message may be received.
    pub sent_too_often: usize,
    /// The most requests any one pair got.
    pub most_sends_of_one_pair: usize,
    /// Recorded pairs the receiver never saw (reported, not a failure).
    pub recorded_without_request: usize,
    pub outcomes: BTreeMap<String, usize>,
    /// Records by the lane that made them, over all webhooks.
    pub records_by_lane: BTreeMap<String, usize>,
    /// The same for the webhooks whose receiver turned slow and recovered:
    /// both lanes must appear.
    pub flip_records_by_lane: BTreeMap<String, usize>,
    /// Of those webhooks, how many were still marked slow at the end.
    pub flip_still_slow: usize,
    /// Active webhooks by how their receiver answers.
    pub active_webhooks_by_kind: BTreeMap<String, usize>,
    pub queue_left: u64,
    pub poison_in_dlq: usize,
    pub other_in_dlq: usize,
    pub faults: Faults,
    pub timing: Timing,
    pub pairs_per_second: f64,
    pub concurrency: usize,
    pub visibility_timeout_secs: u64,
    pub max_receive_count: u32,
    pub table: String,
}

pub async fn check(input: Input<'_>) -> Result<Report, String> {
    let reading = std::time::Instant::now();
    // The delivery log of every webhook, inactive ones included.
    let mut records: HashMap<(String, String), usize> = HashMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut records_by_lane: BTreeMap<String, usize> = BTreeMap::new();
    let mut flip_records_by_lane: BTreeMap<String, usize> = BTreeMap::new();
    let mut flip_still_slow = 0;
    for h in input.hooks {
        let flips = h.kind == crate::receivers::Kind::Flip;
        if flips
            && input
                .store
                .get_webhook(&h.webhook.tenant_id, h.webhook.id)
                .await
                .map_err(|e| format!("reading a webhook: {e}"))?
                .is_some_and(|w| w.slow_since.is_some())
        {
            flip_still_slow += 1;
        }
        let mut after = None;
        loop {
            let page = input
                .store
                .list_deliveries(h.webhook.id, &Default::default(), 100, after)
                .await
                .map_err(|e| format!("reading the delivery log: {e}"))?;
            for r in &page.items {
                if r.test {
                    continue;
                }
                *records
                    .entry((r.webhook_id.to_string(), r.event_id.to_string()))
                    .or_default() += 1;
                *outcomes.entry(r.outcome.as_str().to_owned()).or_default() += 1;
                *records_by_lane
                    .entry(r.lane.as_str().to_owned())
                    .or_default() += 1;
                if flips {
                    *flip_records_by_lane
                        .entry(r.lane.as_str().to_owned())
                        .or_default() += 1;
                }
            }
            match page.next {
                Some(next) if !page.items.is_empty() => after = Some(next),
                _ => break,
            }
        }
    }
    let check_secs = crate::secs(reading.elapsed());
    // Only events SQS accepted are owed a delivery.
    let expected: HashMap<&(String, String), usize> = input
        .expected
        .iter()
        .filter(|((_, event), _)| input.accepted.contains(event))
        .map(|(k, v)| (k, *v))
        .collect();
    let seen = input.recorder.seen();

    let mut recorded = 0;
    let mut lost = 0;
    let mut lost_pairs = Vec::new();
    let mut duplicated = 0;
    let mut recorded_without_request = 0;
    for pair in expected.keys() {
        match records.get(*pair).copied().unwrap_or(0) {
            0 => {
                lost += 1;
                lost_pairs.push(*pair);
            }
            1 => recorded += 1,
            _ => duplicated += 1,
        }
        if records.contains_key(*pair) && !seen.contains_key(*pair) {
            recorded_without_request += 1;
        }
    }
    let lost_details = explain_lost(&input, &lost_pairs, &seen).await;
    let misdirected_records = records.keys().filter(|p| !expected.contains_key(p)).count();
    let misdirected_requests = seen.keys().filter(|p| !expected.contains_key(p)).count();

    let mut resent = Resent::default();
    for (pair, times) in &seen {
        if times.len() < 2 || !expected.contains_key(pair) {
            continue;
        }
        resent.pairs += 1;
        resent.extra += times.len() - 1;
        // Each lane's queue may hand a pair's message over `max_receive_count`
        // times: the main lane (an attempt made before its webhook was marked
        // slow, then handed over on a later receive) and the slow lane.
        if times.len() > 2 * input.max_receive_count as usize {
            resent.too_often += 1;
        }
        resent.most_sends = resent.most_sends.max(times.len());
        let mut times = times.clone();
        times.sort();
        let first = times[0];
        let first_span = (first, first + BATCH_SPAN);
        let overlaps = |(a, b): (Instant, Instant)| a <= first_span.1 && first_span.0 <= b;
        if input
            .windows
            .kill
            .is_some_and(|k| first_span.0 <= k && k <= first_span.1)
        {
            resent.after_kill += 1;
        } else if input.windows.outage.is_some_and(overlaps) {
            resent.after_outage += 1;
        } else {
            resent.other += 1;
            resent.other_at.push(ResentAt {
                first_secs: crate::secs(first.saturating_duration_since(input.windows.started)),
                again_after_secs: crate::secs(times[1].saturating_duration_since(first)),
            });
        }
    }

    let mut poison_left: Vec<&String> = input.poison.iter().collect();
    let mut poison_in_dlq = 0;
    let mut other_in_dlq = 0;
    for body in input.dlq {
        if let Some(i) = poison_left.iter().position(|p| *p == body) {
            poison_left.swap_remove(i);
            poison_in_dlq += 1;
        } else {
            other_in_dlq += 1;
        }
    }

    let wrong_token = input
        .recorder
        .wrong_auth
        .load(std::sync::atomic::Ordering::SeqCst);
    let unidentified = input
        .recorder
        .no_event_id
        .load(std::sync::atomic::Ordering::SeqCst)
        + input
            .recorder
            .unknown_path
            .load(std::sync::atomic::Ordering::SeqCst);

    let mut failures = Vec::new();
    let mut fail = |bad: bool, what: String| {
        if bad {
            failures.push(what);
        }
    };
    fail(input.timed_out, "the run timed out".into());
    fail(
        input.accepted.len() != input.events_requested,
        format!(
            "SQS accepted {} of {} events",
            input.accepted.len(),
            input.events_requested
        ),
    );
    fail(lost > 0, format!("{lost} pair(s) have no recorded outcome"));
    fail(
        input.faults.flips >= 2
            && ["main", "slow"]
                .iter()
                .any(|lane| !flip_records_by_lane.contains_key(*lane)),
        format!(
            "the webhooks whose receiver slowed and recovered were not attempted on both lanes: {flip_records_by_lane:?}"
        ),
    );
    for line in lost_details {
        fail(true, line);
    }
    fail(
        duplicated > 0,
        format!("{duplicated} pair(s) have more than one recorded outcome"),
    );
    fail(
        misdirected_records > 0,
        format!("{misdirected_records} record(s) for unsubscribed, inactive or foreign webhooks"),
    );
    fail(
        misdirected_requests > 0,
        format!(
            "{misdirected_requests} pair(s) reached an unsubscribed, inactive or foreign webhook"
        ),
    );
    fail(
        wrong_token > 0,
        format!("{wrong_token} request(s) carried another webhook's token"),
    );
    fail(
        unidentified > 0,
        format!("{unidentified} request(s) without webhook-id or to no webhook"),
    );
    fail(
        resent.too_often > 0,
        format!(
            "{} pair(s) sent more often than their messages may be received (at most {} on each lane)",
            resent.too_often, input.max_receive_count
        ),
    );
    fail(
        input.queue_left != 0,
        format!("{} message(s) left in the events queue", input.queue_left),
    );
    fail(
        poison_in_dlq != input.poison_sent || input.poison_sent != input.poison.len(),
        format!(
            "{poison_in_dlq} of {} poison message(s) in the DLQ",
            input.poison.len()
        ),
    );
    fail(
        other_in_dlq > 0,
        format!("{other_in_dlq} event(s) in the DLQ"),
    );
    fail(
        input.faults.outage_requested && !input.faults.outage_done,
        "the DynamoDB outage was not injected".into(),
    );
    fail(
        input.faults.kill_requested && !input.faults.kill_done,
        "the dispatcher was not killed".into(),
    );
    fail(
        input.faults.proxy_connections == 0,
        "the dispatcher never reached DynamoDB through the proxy".into(),
    );

    let pairs_per_second = if input.timing.dispatch_secs > 0.0 {
        (expected.len() as f64 / input.timing.dispatch_secs).round()
    } else {
        0.0
    };
    Ok(Report {
        passed: failures.is_empty(),
        failures,
        events: input.events_requested,
        events_accepted: input.accepted.len(),
        poison_sent: input.poison_sent,
        expected_pairs: expected.len(),
        recorded,
        lost,
        duplicated,
        misdirected_records,
        misdirected_requests,
        wrong_token,
        unidentified_requests: unidentified,
        requests: input.recorder.total(),
        resent_pairs: resent.pairs,
        resent_extra_requests: resent.extra,
        resent_after_kill: resent.after_kill,
        resent_after_outage: resent.after_outage,
        resent_other: resent.other,
        resent_other_at: {
            let mut at = resent.other_at;
            at.sort_by(|a, b| a.first_secs.total_cmp(&b.first_secs));
            at
        },
        sent_too_often: resent.too_often,
        most_sends_of_one_pair: resent.most_sends,
        recorded_without_request,
        outcomes,
        records_by_lane,
        flip_records_by_lane,
        flip_still_slow,
        active_webhooks_by_kind: input
            .hooks
            .iter()
            .filter(|h| h.webhook.status == shared::Status::Active)
            .fold(BTreeMap::new(), |mut m, h| {
                *m.entry(format!("{:?}", h.kind).to_lowercase()).or_default() += 1;
                m
            }),
        queue_left: input.queue_left,
        poison_in_dlq,
        other_in_dlq,
        faults: input.faults,
        timing: Timing {
            check_secs,
            ..input.timing
        },
        pairs_per_second,
        concurrency: input.concurrency,
        visibility_timeout_secs: input.visibility_timeout_secs,
        max_receive_count: input.max_receive_count,
        table: input.table.to_owned(),
    })
}

#[derive(Default)]
struct Resent {
    pairs: usize,
    extra: usize,
    after_kill: usize,
    after_outage: usize,
    other: usize,
    other_at: Vec<ResentAt>,
    too_often: usize,
    most_sends: usize,
}

impl Report {
    pub fn print(&self) {
        let f = &self.faults;
        println!(
            "\nproof: {verdict}\n\
             events        {events} sent ({accepted} accepted), {poison} poison\n\
             pairs         {pairs} expected, {recorded} recorded once\n\
             lost          {lost}\n\
             duplicated    {dup} (pairs with more than one recorded outcome)\n\
             misdirected   {mr} records, {mq} requests; {wt} wrong tokens\n\
             resent        {rp} pairs ({rk} after the kill, {ro} after the outage, {rx} other: \
             {rx_twice} sent twice within a second, {rx_later} later); at most {most} requests for one pair\n\
             requests      {req} seen by the receivers\n\
             outcomes      {outcomes}\n\
             lanes         {lanes}; the flipping webhooks: {flip_lanes} ({flips} changes of pace, {still} still slow at the end)\n\
             queue         {left} left; DLQ: {pd} poison, {od} other\n\
             faults        DynamoDB cut {outage} ({refused} connections refused, {severed} reset); \
             dispatcher SIGKILLed {kill} ({inflight} requests in flight)\n\
             time          {total:.1} s ({dispatch:.1} s until the queue was empty, sending {send:.1} s; {pps} pairs/s); \
             then {check:.1} s reading the delivery logs back",
            verdict = if self.passed { "PASSED" } else { "FAILED" },
            events = self.events,
            accepted = self.events_accepted,
            poison = self.poison_sent,
            pairs = self.expected_pairs,
            recorded = self.recorded,
            lost = self.lost,
            dup = self.duplicated,
            mr = self.misdirected_records,
            mq = self.misdirected_requests,
            wt = self.wrong_token,
            rp = self.resent_pairs,
            most = self.most_sends_of_one_pair,
            rk = self.resent_after_kill,
            ro = self.resent_after_outage,
            rx = self.resent_other,
            rx_twice = self
                .resent_other_at
                .iter()
                .filter(|r| r.again_after_secs < 1.0)
                .count(),
            rx_later = self
                .resent_other_at
                .iter()
                .filter(|r| r.again_after_secs >= 1.0)
                .count(),
            req = self.requests,
            lanes = format_counts(&self.records_by_lane),
            flip_lanes = format_counts(&self.flip_records_by_lane),
            flips = f.flips,
            still = self.flip_still_slow,
            outcomes = self
                .outcomes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            left = self.queue_left,
            pd = self.poison_in_dlq,
            od = self.other_in_dlq,
            outage = match (f.outage_requested, f.outage_at_secs) {
                (false, _) => "off".to_owned(),
                (true, Some(at)) => format!("{} s at {at:.1} s", f.outage_secs),
                (true, None) => "NOT DONE".to_owned(),
            },
            refused = f.proxy_refused,
            severed = f.proxy_severed,
            kill = match (f.kill_requested, f.kill_at_secs) {
                (false, _) => "off".to_owned(),
                (true, Some(at)) => format!("at {at:.1} s"),
                (true, None) => "NOT DONE".to_owned(),
            },
            inflight = f.kill_in_flight_requests,
            total = self.timing.total_secs,
            dispatch = self.timing.dispatch_secs,
            send = self.timing.send_secs,
            check = self.timing.check_secs,
            pps = self.pairs_per_second,
        );
        for failure in &self.failures {
            println!("  FAILED: {failure}");
        }
    }
}

/// `main 12, slow 3`.
fn format_counts(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
