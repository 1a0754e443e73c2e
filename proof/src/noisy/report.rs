//! The report: per phase, the quiet tenants, the noisy tenant, the queues
//! and the cost (and phase 2t's throttled webhook); as JSON (`--out`) and
//! as Markdown tables (stdout).

use serde::Serialize;

use crate::accounting::{EventsReport, RedeliverReport};
use crate::analysis::{CostReport, QuietReport};
use crate::stack::{Backlog, Drain};
use crate::stats::{fmt_ms, thousands};
use crate::throttle::ThrottleReport;

/// One phase's figures.
/// How a goal (checked in `goals.rs`) counts for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Fails every run.
    Correctness,
    /// The loose quiet-p99 limit: fails every run.
    Limit,
    /// Fails the full run only.
    Target,
}

#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub text: String,
    pub passed: bool,
    pub kind: Kind,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub name: &'static str,
    /// The load's length.
    pub secs: u64,
    /// What the noisy tenant did.
    pub noise: String,
    pub quiet: QuietReport,
    pub noisy_events: Option<EventsReport>,
    pub redeliver: Option<RedeliverReport>,
    /// Phase 2t: the burst to the throttled webhook.
    pub throttle: Option<ThrottleReport>,
    /// The queues when the load stopped (slow lane: null when absent).
    pub backlog_at_end: Backlog,
    pub drain: Drain,
    /// The wait for empty queues before giving up.
    pub give_up_secs: u64,
    /// From the start of the load to its last send (or call) returning.
    pub load_secs: f64,
    /// From the start of the load to the end of the drain.
    pub window_secs: f64,
    pub cost: CostReport,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub mode: &'static str,
    /// Where the stack kept its data: `dynamodb` (moto) or `memory`.
    pub store: &'static str,
    pub started_at: String,
    pub poller: String,
    pub concurrency: usize,
    /// Producers' `MessageGroupId` = tenant was accepted on the events queue.
    pub message_group_id: bool,
    /// The slow lane `<queue>-slow` existed.
    pub slow_lane: bool,
    pub wrong_auth: u64,
    pub unknown_path: u64,
    /// Requests whose body `id` was not the `webhook-id` header.
    pub id_mismatch: u64,
    pub wall_secs: f64,
    pub phases: Vec<PhaseReport>,
    pub goals: Vec<Goal>,
    pub passed: bool,
}

fn n(x: usize) -> String {
    thousands(x as u64)
}

fn opt2(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.2}"))
}

fn outcomes(map: &std::collections::BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "–".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {}", n(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PhaseReport {
    fn quiet_row(&self) -> String {
        let q = &self.quiet;
        let backlog = format!(
            "{} / {}",
            self.backlog_at_end.events.map_or("?".into(), thousands),
            self.backlog_at_end.slow.map_or("–".into(), thousands),
        );
        let give_up = self.give_up_secs;
        let drain = match (self.drain.secs, self.drain.purged) {
            (Some(s), _) => format!("{s:.1} s"),
            (None, Some(p)) => format!("not empty after {give_up} s: {} purged", thousands(p)),
            (None, None) => format!("not empty after {give_up} s"),
        };
        format!(
            "| {} | {} | {} s | {} | {} | {} | {} | {} | {} of {} ({:.1} %) | {} | {backlog} | {drain} |",
            self.name,
            self.noise,
            self.load_secs,
            fmt_ms(q.latency.p50_ms),
            fmt_ms(q.latency.p99_ms),
            fmt_ms(q.latency.max_ms),
            fmt_ms(q.send_latency.p99_ms),
            fmt_ms(q.queued_latency.p99_ms),
            n(q.arrived),
            n(q.sent),
            q.arrived_pct,
            q.p99_vs_phase1.map_or("–".into(), |r| format!("{r:.2}×")),
        )
    }

    fn noisy_row(&self) -> String {
        let c = &self.cost;
        let (what, recorded, faults, outs) = if let Some(e) = &self.noisy_events {
            (
                format!("{} → {}: {} events", e.tenant, e.receiver, n(e.sent)),
                format!(
                    "{} once at attempt 1 ({} records, receiver saw {})",
                    n(e.attempt1_once),
                    n(e.records),
                    n(e.receiver_requests)
                ),
                format!("{} / {} / {}", e.lost, e.doubled, e.resent),
                outcomes(&e.outcomes),
            )
        } else if let Some(r) = &self.redeliver {
            (
                format!(
                    "{} → {} × hang: {} calls ({} × 202, {} × 429), {} attempts queued",
                    r.tenant,
                    r.webhooks,
                    r.calls,
                    r.accepted_202,
                    r.throttled_429,
                    n(r.attempts_queued)
                ),
                format!(
                    "{} of {} distinct queued ({} queued twice; {} records, receiver saw {})",
                    n(r.recorded),
                    n(r.distinct_queued),
                    n(r.queued_twice),
                    n(r.records),
                    n(r.receiver_requests)
                ),
                format!("{} missing / {} doubled / –", r.missing, r.doubled),
                outcomes(&r.outcomes),
            )
        } else {
            ("–".into(), "–".into(), "–".into(), "–".into())
        };
        format!(
            "| {} | {what} | {recorded} | {faults} | {outs} | {} / {} ({} deliveries) | {} / {} · {} / {} |",
            self.name,
            opt2(c.dynamodb_per_delivery),
            opt2(c.sqs_per_delivery),
            n(c.receiver_requests),
            fmt_ms(c.moto.dynamodb.p50_ms),
            fmt_ms(c.moto.dynamodb.p99_ms),
            fmt_ms(c.moto.sqs.p50_ms),
            fmt_ms(c.moto.sqs.p99_ms),
        )
    }
}

impl PhaseReport {
    fn throttle_row(&self, t: &ThrottleReport) -> String {
        let q = &self.quiet;
        let rate = match (&t.api.refused, t.api.shown) {
            (Some(_), _) => format!("{} (refused by the API: none)", t.rate),
            (None, Some(shown)) if shown == u64::from(t.rate) => t.rate.to_string(),
            (None, Some(shown)) => format!("{} (the API shows {shown})", t.rate),
            (None, None) => format!("{} (the API shows none)", t.rate),
        };
        let secs = |s: Option<f64>| s.map_or("–".into(), |v| format!("{v:.1} s"));
        let slow = &t.quiet_slow;
        let slow = match (slow.first_emitted_secs, slow.last_emitted_secs) {
            (Some(a), Some(b)) => format!("{} (emitted {a:.1}–{b:.1} s)", n(slow.count)),
            _ => "0".into(),
        };
        format!(
            "| {} | {} | {rate} | {:.1} s | {}{} | {} | {} (≤ {}) | {} | {} | {} / {} ({}) | {} ({} events) | {slow} | {} of {} |",
            self.name,
            n(t.events),
            t.burst_secs,
            secs(t.last_delivery_secs),
            if t.all_arrived_in_time {
                ""
            } else {
                " (gave up)"
            },
            t.delivered_per_sec
                .map_or("–".into(), |r| format!("{r:.2}")),
            n(t.max_in_10s),
            n(t.limit_in_10s),
            n(t.lost),
            n(t.duplicated),
            fmt_ms(q.latency.p50_ms),
            fmt_ms(q.latency.p99_ms),
            q.p99_vs_phase1
                .map_or("–".into(), |r| format!("{r:.2}× phase 1")),
            fmt_ms(t.quiet_once_in.p99_ms),
            n(t.quiet_once_in.n),
            t.looks_throttled,
            t.looks,
        )
    }
}

impl RunReport {
    /// The Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| phase | noisy load | sending took | quiet p50 | quiet p99 | quiet max | of which SendMessage p99 | queued → receipt p99 | quiet arrived | p99 ÷ phase 1 | backlog at end (queue / slow lane) | drain |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for p in &self.phases {
            out.push_str(&p.quiet_row());
            out.push('\n');
        }
        out.push_str(
            "\n| phase | noisy tenant | recorded | lost / doubled / resent | outcomes | DynamoDB / SQS requests per delivery | moto p50 / p99: DynamoDB · SQS |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for p in &self.phases {
            out.push_str(&p.noisy_row());
            out.push('\n');
        }
        let throttled: Vec<_> = self
            .phases
            .iter()
            .filter_map(|p| p.throttle.as_ref().map(|t| (p, t)))
            .collect();
        if !throttled.is_empty() {
            out.push_str(
                "\n| phase | burst N | throttle_rate R | burst sent in | to last delivery | delivered/s | most in any 10 s | lost | duplicated | quiet p50 / p99 | quiet p99 from 10 s | quiet > 1 s | throttled_since shown (looks) |\n\
                 |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            );
            for (p, t) in throttled {
                out.push_str(&p.throttle_row(t));
                out.push('\n');
            }
        }
        out
    }

    /// One `PASS …` or `FAIL …` line per goal.
    pub fn goal_lines(&self) -> String {
        self.goals
            .iter()
            .map(|g| format!("{} {}\n", if g.passed { "PASS" } else { "FAIL" }, g.text))
            .collect()
    }
}
