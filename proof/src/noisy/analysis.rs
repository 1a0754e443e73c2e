//! A phase's quiet tenants (emit → receipt latency, arrivals) and its cost
//! (the child's AWS requests per delivery, moto's own latency), from what
//! the bench sent, what the receivers saw and what the proxy counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use crate::aws_proxy::{AwsProxy, Service};
use crate::hooks::Arrival;
use crate::load::Sent;
use crate::stats::{Latency, round1, round2};

/// The quiet tenants in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct QuietReport {
    pub sent: usize,
    /// Sends SQS refused (three tries each): not counted as sent.
    pub send_failed: usize,
    pub arrived: usize,
    pub arrived_pct: f64,
    /// Emit → receipt, of the events that arrived.
    pub latency: Latency,
    /// The SendMessage calls themselves (part of the latency above).
    pub send_latency: Latency,
    /// From SendMessage's answer (the event is on the queue) to receipt: the
    /// latency without the producer's call to moto.
    pub queued_latency: Latency,
    /// This phase's p99 over phase 1's.
    pub p99_vs_phase1: Option<f64>,
    /// Events a receiver saw more than once.
    pub resent: usize,
}

/// Arrivals by event id, in arrival order.
pub fn by_event(arrivals: &[Arrival], labels: &HashSet<&str>) -> HashMap<String, Vec<Instant>> {
    let mut seen: HashMap<String, Vec<Instant>> = HashMap::new();
    for a in arrivals {
        if let Some(id) = &a.event_id
            && labels.contains(a.label.as_str())
        {
            seen.entry(id.clone()).or_default().push(a.at);
        }
    }
    for times in seen.values_mut() {
        times.sort();
    }
    seen
}

/// Latency and arrivals of the quiet events.
pub fn quiet(sent: &[Sent], seen: &HashMap<String, Vec<Instant>>) -> QuietReport {
    let accepted: Vec<&Sent> = sent.iter().filter(|s| s.accepted).collect();
    let (ms, queued): (Vec<f64>, Vec<f64>) = accepted
        .iter()
        .filter_map(|s| {
            let first = seen.get(&s.event_id)?.first()?;
            let total = first.saturating_duration_since(s.at).as_secs_f64() * 1000.0;
            Some((total, (total - s.send_ms).max(0.0)))
        })
        .unzip();
    let resent = accepted
        .iter()
        .filter(|s| seen.get(&s.event_id).is_some_and(|t| t.len() > 1))
        .count();
    QuietReport {
        sent: accepted.len(),
        send_failed: sent.len() - accepted.len(),
        arrived: ms.len(),
        arrived_pct: if accepted.is_empty() {
            100.0
        } else {
            round2(100.0 * ms.len() as f64 / accepted.len() as f64)
        },
        latency: Latency::of(&ms),
        send_latency: Latency::of(&accepted.iter().map(|s| s.send_ms).collect::<Vec<_>>()),
        queued_latency: Latency::of(&queued),
        p99_vs_phase1: None,
        resent,
    }
}

/// moto's latency for the child's requests of one kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MotoLatency {
    pub dynamodb: Latency,
    /// SQS without ReceiveMessage (long polls that wait for messages).
    pub sqs: Latency,
    pub sqs_receive: Latency,
}

/// What the deliveries of one phase cost in AWS requests.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub dynamodb_requests: usize,
    pub sqs_requests: usize,
    pub other_requests: usize,
    /// Requests the proxy could not get an answer to.
    pub unanswered: usize,
    /// Requests all receivers saw in the phase (every delivery attempt).
    pub receiver_requests: usize,
    pub dynamodb_per_delivery: Option<f64>,
    pub sqs_per_delivery: Option<f64>,
    /// `DynamoDB.PutItem` → count.
    pub by_action: BTreeMap<String, usize>,
    /// `DynamoDB.Query` → how long moto took to answer it: which request
    /// waits when moto is busy.
    pub latency_by_action: BTreeMap<String, Latency>,
    pub moto: MotoLatency,
}

/// The child's AWS requests in `[from, to)` against the receivers' requests.
pub fn cost(proxy: &AwsProxy, from: Instant, to: Instant, receiver_requests: usize) -> CostReport {
    let samples = proxy.between(from, to);
    let mut by_action = BTreeMap::new();
    let mut ms_by_action: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut dynamo_ms, mut sqs_ms, mut receive_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts: HashMap<Service, usize> = HashMap::new();
    let mut unanswered = 0;
    for s in &samples {
        *counts.entry(s.service).or_default() += 1;
        let service = match s.service {
            Service::Dynamodb => "DynamoDB",
            Service::Sqs => "SQS",
            Service::Other => "other",
        };
        let action = format!("{service}.{}", s.action);
        *by_action.entry(action.clone()).or_default() += 1;
        if !s.answered {
            unanswered += 1;
            continue;
        }
        let ms = s.micros as f64 / 1000.0;
        ms_by_action.entry(action).or_default().push(ms);
        match (s.service, s.action.as_str()) {
            (Service::Dynamodb, _) => dynamo_ms.push(ms),
            (Service::Sqs, "ReceiveMessage") => receive_ms.push(ms),
            (Service::Sqs, _) => sqs_ms.push(ms),
            (Service::Other, _) => {}
        }
    }
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    let per =
        |n: usize| (receiver_requests > 0).then(|| round2(n as f64 / receiver_requests as f64));
    CostReport {
        dynamodb_requests: count(Service::Dynamodb),
        sqs_requests: count(Service::Sqs),
        other_requests: count(Service::Other),
        unanswered,
        receiver_requests,
        dynamodb_per_delivery: per(count(Service::Dynamodb)),
        sqs_per_delivery: per(count(Service::Sqs)),
        by_action,
        latency_by_action: ms_by_action
            .iter()
            .map(|(action, ms)| (action.clone(), Latency::of(ms)))
            .collect(),
        moto: MotoLatency {
            dynamodb: Latency::of(&dynamo_ms),
            sqs: Latency::of(&sqs_ms),
            sqs_receive: Latency::of(&receive_ms),
        },
    }
}

/// Seconds between two instants, rounded.
pub fn secs(from: Instant, to: Instant) -> f64 {
    round1(to.saturating_duration_since(from).as_secs_f64())
}
