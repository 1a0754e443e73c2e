//! Operator metrics in CloudWatch's Embedded Metric Format (EMF): JSON log
//! lines that CloudWatch Logs turns into metrics. No `PutMetricData` call, so
//! no request and no latency on the delivery path; the lines are written once
//! per invocation, after the batch.
//!
//! Dimensions stay few and bounded (`Function`, `Lane`, `Outcome`): the
//! metric bill does not grow with customers. Tenant ids ride along as a
//! property, searchable in Logs Insights, never as a dimension.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use shared::delivery::{Attempt, Outcome};
use shared::{Lane, TenantId};

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "EkycWebhooks";

/// EMF takes at most 100 values per metric in one line: a batch with more
/// durations of one outcome writes them over several lines.
const MAX_VALUES: usize = 100;

/// What one invocation did, counted while it runs (its attempts run at once).
#[derive(Default)]
pub struct Tally {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Messages in the batch.
    received: u64,
    /// Messages that repeated one already in the batch, and attempts not
    /// made because they were recorded already.
    duplicates: u64,
    retries: u64,
    /// Durations in milliseconds, by lane and outcome.
    deliveries: BTreeMap<(&'static str, &'static str), Vec<u64>>,
    tenants: BTreeSet<String>,
}

impl Tally {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A panic while counting leaves valid counts behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn received(&self, messages: usize, duplicates: usize) {
        let mut c = self.counts();
        c.received += messages as u64;
        c.duplicates += duplicates as u64;
    }

    pub fn skipped(&self, attempts: usize) {
        self.counts().duplicates += attempts as u64;
    }

    pub fn retry_scheduled(&self) {
        self.counts().retries += 1;
    }

    pub fn delivery(&self, tenant: &TenantId, lane: Lane, attempt: &Attempt) {
        let mut c = self.counts();
        c.deliveries
            .entry((lane.as_str(), attempt.outcome.as_str()))
            .or_default()
            .push(attempt.duration_ms);
        if !c.tenants.contains(tenant.as_str()) {
            c.tenants.insert(tenant.as_str().to_owned());
        }
    }

    /// The invocation's EMF lines: one with the batch's figures (`lane`: the
    /// queue the batch came from), then one per lane and outcome seen (more
    /// if one has over 100 durations). `failures` is the number of batch item
    /// failures returned to SQS.
    pub fn lines(&self, function: &str, lane: Lane, failures: usize, now_ms: i64) -> Vec<String> {
        let c = self.counts();
        let delivered: usize = c
            .deliveries
            .iter()
            .filter(|((_, outcome), _)| *outcome == Outcome::Delivered.as_str())
            .map(|(_, d)| d.len())
            .sum();
        let total: usize = c.deliveries.values().map(Vec::len).sum();
        let batch = json!({
            "_aws": {
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function", "Lane"], ["Function"]],
                    "Metrics": [
                        {"Name": "EventsReceived", "Unit": "Count"},
                        {"Name": "DuplicatesSkipped", "Unit": "Count"},
                        {"Name": "BatchItemFailures", "Unit": "Count"},
                        {"Name": "RetriesScheduled", "Unit": "Count"},
                        {"Name": "Deliveries", "Unit": "Count"},
                        {"Name": "DeliveriesFailed", "Unit": "Count"},
                    ],
                }],
            },
            "Function": function,
            "Lane": lane.as_str(),
            "EventsReceived": c.received,
            "DuplicatesSkipped": c.duplicates,
            "BatchItemFailures": failures,
            "RetriesScheduled": c.retries,
            "Deliveries": total,
            "DeliveriesFailed": total - delivered,
            "TenantIds": c.tenants,
        });
        let mut lines = vec![batch.to_string()];
        for ((attempt_lane, outcome), durations) in &c.deliveries {
            for chunk in durations.chunks(MAX_VALUES) {
                let line = json!({
                    "_aws": {
                        "Timestamp": now_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [["Function", "Lane", "Outcome"], ["Function", "Lane"]],
                            "Metrics": [
                                {"Name": "DeliveriesByOutcome", "Unit": "Count"},
                                {"Name": "DeliveryDuration", "Unit": "Milliseconds"},
                            ],
                        }],
                    },
                    "Function": function,
                    "Lane": attempt_lane,
                    "Outcome": outcome,
                    "DeliveriesByOutcome": chunk.len(),
                    "DeliveryDuration": Value::from(chunk.to_vec()),
                });
                lines.push(line.to_string());
            }
        }
        lines
    }
}

/// Where an invocation's EMF lines go.
#[derive(Default)]
pub enum MetricsOut {
    /// Nowhere (tests, benchmarks and the local stack, whose standard output
    /// is the commands' own).
    #[default]
    Off,
    /// Standard output, where Lambda sends them to CloudWatch Logs.
    Stdout,
    /// Kept, for tests to read ([`MetricsOut::lines`]).
    Memory(Mutex<Vec<String>>),
}

impl MetricsOut {
    pub fn memory() -> Self {
        MetricsOut::Memory(Mutex::default())
    }

    /// Writes the lines: to standard output one `write` per line, so that
    /// no other log line lands inside one.
    pub fn write(&self, lines: Vec<String>) {
        match self {
            MetricsOut::Off => {}
            MetricsOut::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
            }
            MetricsOut::Memory(kept) => kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(lines),
        }
    }

    /// The lines kept so far (`Memory` only).
    pub fn lines(&self) -> Vec<String> {
        match self {
            MetricsOut::Memory(kept) => kept.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome, duration_ms: u64) -> Attempt {
        Attempt::bare(outcome, None, duration_ms)
    }

    /// The EMF specification's rules a line must keep, checked on the parsed
    /// JSON: `_aws` with an integer `Timestamp` and a `CloudWatchMetrics`
    /// array; each directive a `Namespace`, `Dimensions` (arrays of at most
    /// 30 names, each a string member of the root) and `Metrics` (at most
    /// 100, each with a `Name` that is a root member holding a number or an
    /// array of at most 100 numbers, and a valid `Unit`).
    fn check_emf(line: &str) -> Value {
        let doc: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert!(!line.contains('\n'));
        let root = doc.as_object().expect("an object");
        let aws = root["_aws"].as_object().expect("_aws");
        assert!(
            aws["Timestamp"].is_i64(),
            "Timestamp: milliseconds since the epoch"
        );
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty());
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("a dimension set");
                assert!(!set.is_empty() && set.len() <= 30);
                for name in set {
                    let name = name.as_str().expect("a dimension name");
                    assert!(
                        root.get(name).is_some_and(Value::is_string),
                        "dimension {name} is a string member"
                    );
                }
            }
            let metrics = d["Metrics"].as_array().expect("Metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().expect("Name");
                let unit = m["Unit"].as_str().expect("Unit");
                assert!(["Count", "Milliseconds"].contains(&unit), "{unit}");
                match root.get(name) {
                    Some(Value::Number(_)) => {}
                    Some(Value::Array(values)) => {
                        assert!(!values.is_empty() && values.len() <= MAX_VALUES);
                        assert!(values.iter().all(Value::is_number));
                    }
                    other => panic!("metric {name} is {other:?}"),
                }
            }
        }
        doc
    }

    #[test]
    fn a_batch_makes_valid_emf_lines_with_its_figures() {
        let tally = Tally::default();
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        tally.received(10, 1);
        tally.skipped(2);
        tally.retry_scheduled();
        for ms in 0..150 {
            tally.delivery(&acme, Lane::Main, &attempt(Outcome::Delivered, ms));
        }
        tally.delivery(&other, Lane::Main, &attempt(Outcome::Timeout, 5000));
        let lines = tally.lines("dispatch-fn", Lane::Main, 3, 1_764_000_000_000);
        let docs: Vec<Value> = lines.iter().map(|l| check_emf(l)).collect();

        // The batch line, then delivered (150 durations over two lines), then timeout.
        assert_eq!(docs.len(), 4);
        let batch = &docs[0];
        assert_eq!(batch["EventsReceived"], 10);
        assert_eq!(batch["DuplicatesSkipped"], 3);
        assert_eq!(batch["BatchItemFailures"], 3);
        assert_eq!(batch["RetriesScheduled"], 1);
        assert_eq!(batch["Deliveries"], 151);
        assert_eq!(batch["DeliveriesFailed"], 1);
        assert_eq!(batch["Lane"], "main");
        assert_eq!(batch["TenantIds"], json!(["acme", "other"]));
        let by_outcome: Vec<(&str, u64, usize)> = docs[1..]
            .iter()
            .map(|d| {
                (
                    d["Outcome"].as_str().unwrap(),
                    d["DeliveriesByOutcome"].as_u64().unwrap(),
                    d["DeliveryDuration"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            by_outcome,
            [
                ("delivered", 100, 100),
                ("delivered", 50, 50),
                ("timeout", 1, 1)
            ]
        );
        // Tenants and webhooks are never dimensions.
        for d in &docs {
            let dims = d["_aws"]["CloudWatchMetrics"][0]["Dimensions"].to_string();
            assert!(
                !dims.contains("Tenant") && !dims.contains("Webhook"),
                "{dims}"
            );
        }
    }

    /// The negative control: the checker refuses what the spec refuses.
    #[test]
    #[should_panic(expected = "is a string member")]
    fn the_emf_check_refuses_a_dimension_missing_from_the_root() {
        check_emf(
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["Lane"]],"Metrics":[{"Name":"x","Unit":"Count"}]}]},"x":1}"#,
        );
    }

    #[test]
    #[should_panic]
    fn the_emf_check_refuses_more_than_100_values() {
        let values: Vec<u64> = (0..101).collect();
        check_emf(
            &json!({"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x","Unit":"Count"}]}]},"x":values})
                .to_string(),
        );
    }

    #[test]
    fn an_empty_batch_still_says_what_it_received() {
        let tally = Tally::default();
        tally.received(1, 0);
        let lines = tally.lines("f", Lane::Slow, 1, 0);
        assert_eq!(lines.len(), 1);
        let doc = check_emf(&lines[0]);
        assert_eq!(
            (doc["Deliveries"].as_u64(), doc["Lane"].as_str()),
            (Some(0), Some("slow"))
        );
    }
}
