//! The command line, and the phases it asks for.

use std::path::PathBuf;

use clap::Parser;

use crate::phase::{self, Noise, Spec};
use crate::setup;

#[derive(Parser)]
#[command(
    name = "webhooks-noisy",
    about = "The noisy-neighbour benchmark against the local stack on moto"
)]
pub struct Args {
    /// The short run (CI): phase 1 for 8 s, each phase 2 part for 15 s (2t:
    /// 150 events at 10/s); exits non-zero only on correctness failures and
    /// on the loose p99 limit.
    #[arg(long)]
    pub quick: bool,
    /// The `webhooks` binary to test (default: next to this one).
    #[arg(long)]
    pub poller: Option<PathBuf>,
    /// Where the figures go (JSON; the Markdown beside it as .md; the stack's
    /// log as .local.log). Default: target/noisy/full.json or quick.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run the stack with its store in memory (`webhooks local --store
    /// memory`): moto serves the queues alone, so the quiet tenants' latency
    /// shows what is the product's and what was the emulator's DynamoDB.
    #[arg(long)]
    pub memory: bool,
    /// The stack's receive loops (`webhooks local --concurrency`).
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// The noisy tenant's events a second in phases 2a and 2b (default 40,
    /// the rate; 10 with --quick).
    #[arg(long)]
    pub noisy_rate: Option<f64>,
    /// The loose limit on the quiet p99 of each phase 2 part, checked in
    /// every run (the goal is --quiet-p99-goal-ms).
    #[arg(long, default_value_t = 4000)]
    pub max_quiet_p99_ms: u64,
    /// The goal for the quiet p99 of each phase 2 part.
    #[arg(long, default_value_t = 1000)]
    pub quiet_p99_goal_ms: u64,
    /// The goal for the drain after each phase 2 part.
    #[arg(long, default_value_t = 30)]
    pub drain_goal_secs: u64,
    /// Stop waiting for the queues to empty after this long (a failure).
    #[arg(long, default_value_t = 120)]
    pub give_up_secs: u64,
    /// After a give-up, leave the backlog for the next phase (by default the
    /// queues are purged, so each phase measures its own load).
    #[arg(long)]
    pub keep_backlog: bool,
    /// Phase 1's length (default 20 s, 8 s with --quick).
    #[arg(long)]
    pub phase1_secs: Option<u64>,
    /// Each phase 2 part's length (default 60 s, 15 s with --quick).
    #[arg(long)]
    pub phase2_secs: Option<u64>,
    /// Phase 2t's burst: events sent at once to the throttled webhook
    /// (default 1,000; 150 with --quick).
    #[arg(long)]
    pub burst_events: Option<usize>,
    /// Phase 2t's webhook's `throttle_rate`, deliveries a second, 1 to
    /// 10,000 (default 5; 10 with --quick). Phase 2t lasts burst / rate
    /// seconds, until every event has arrived, or gives up 30 s and a
    /// quarter after that.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub throttle_rate: Option<u32>,
    /// The phase 2 parts to run, after phase 1.
    #[arg(long, value_delimiter = ',', default_value = "2a,2b,2c,2d,2t")]
    pub phases: Vec<String>,
}

impl Args {
    /// Phase 2t's burst and rate: (N, R).
    pub fn burst(&self) -> (usize, u32) {
        let (events, rate) = if self.quick {
            (phase::QUICK_BURST_EVENTS, phase::QUICK_THROTTLE_RATE)
        } else {
            (phase::BURST_EVENTS, phase::THROTTLE_RATE)
        };
        (
            self.burst_events.unwrap_or(events).max(1),
            self.throttle_rate.unwrap_or(rate),
        )
    }
}

/// The phases: phase 1 alone, then the requested phase 2 parts.
pub fn specs<'a>(
    args: &Args,
    pop: &'a setup::Population,
) -> Result<Vec<(Spec<'a>, String)>, String> {
    let p1 = args.phase1_secs.unwrap_or(if args.quick { 8 } else { 20 });
    let p2 = args.phase2_secs.unwrap_or(if args.quick { 15 } else { 60 });
    let rate = args.noisy_rate.unwrap_or(if args.quick {
        phase::QUICK_NOISY_RATE
    } else {
        phase::NOISY_RATE
    });
    let mut specs = vec![(
        Spec {
            name: "phase1",
            secs: p1,
            noise: Noise::None,
            tenant: None,
            rate,
        },
        "none".to_owned(),
    )];
    for part in &args.phases {
        specs.push(match part.as_str() {
            "2a" => (
                Spec {
                    name: "phase2a",
                    secs: p2,
                    noise: Noise::Events,
                    tenant: Some(&pop.hang),
                    rate,
                },
                format!("{rate:.0} events/s → hang"),
            ),
            "2b" => (
                Spec {
                    name: "phase2b",
                    secs: p2,
                    noise: Noise::Events,
                    tenant: Some(&pop.slow),
                    rate,
                },
                format!("{rate:.0} events/s → slow3"),
            ),
            "2c" => (
                Spec {
                    name: "phase2c",
                    secs: p2,
                    noise: Noise::Redeliver,
                    tenant: Some(&pop.redeliver),
                    rate,
                },
                format!(
                    "redeliver every {:.1} s → {} × hang",
                    phase::REDELIVER_EVERY.as_secs_f64(),
                    setup::REDELIVER_WEBHOOKS
                ),
            ),
            "2d" => (
                Spec {
                    name: "phase2d",
                    secs: p2,
                    noise: Noise::Events,
                    tenant: Some(&pop.breaks),
                    rate,
                },
                format!("{rate:.0} events/s → ok, hangs after a third"),
            ),
            "2t" => {
                let (events, throttle) = args.burst();
                (
                    Spec {
                        name: "phase2t",
                        secs: phase::burst_secs(events, throttle).ceil() as u64,
                        noise: Noise::Burst {
                            events,
                            rate: throttle,
                        },
                        tenant: Some(&pop.throttled),
                        rate: f64::from(throttle),
                    },
                    format!("{events} events at once → ok, throttle_rate {throttle}/s"),
                )
            }
            other => {
                return Err(format!("--phases: no phase {other:?} (2a, 2b, 2c, 2d, 2t)"));
            }
        });
    }
    Ok(specs)
}
