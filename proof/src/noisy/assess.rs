//! Turns one phase as it ran into its report: the quiet tenants, the noisy
//! tenant's accounting (phase 2t: the throttled webhook's too), the queues
//! and the cost.

use std::collections::HashSet;
use std::time::Instant;

use crate::accounting;
use crate::analysis::{self, by_event};
use crate::api::Api;
use crate::aws_proxy::AwsProxy;
use crate::hooks::Hooks;
use crate::phase::{NoisyData, PhaseData, Spec};
use crate::report::PhaseReport;
use crate::setup::Population;
use crate::stats::round2;
use crate::throttle;

/// What the assessment reads.
pub struct Sources<'a> {
    pub api: &'a Api,
    pub hooks: &'a Hooks,
    pub proxy: &'a AwsProxy,
    pub pop: &'a Population,
    pub give_up_secs: u64,
}

/// The report of one phase; `phase1_p99` is the reference for the ratio.
pub async fn phase(
    src: &Sources<'_>,
    spec: &Spec<'_>,
    noise: String,
    data: &PhaseData,
    phase1_p99: Option<f64>,
) -> Result<PhaseReport, String> {
    // Quiet arrivals up to now (a late one still counts as arrived).
    let arrivals = src.hooks.between(data.start, Instant::now());
    let quiet_labels: HashSet<&str> = src
        .pop
        .quiet
        .iter()
        .flat_map(|t| t.hooks.iter().map(|h| h.label.as_str()))
        .collect();
    let quiet_seen = by_event(&arrivals, &quiet_labels);
    let mut quiet = analysis::quiet(&data.quiet, &quiet_seen);
    quiet.p99_vs_phase1 = match (quiet.latency.p99_ms, phase1_p99) {
        (Some(p), Some(base)) if base > 0.0 => Some(round2(p / base)),
        _ => None,
    };
    let in_window: Vec<_> = arrivals
        .iter()
        .filter(|a| a.at < data.window_end)
        .cloned()
        .collect();
    let (noisy_events, redeliver, throttle) = match (&data.noisy, spec.tenant) {
        (NoisyData::Events(sent), Some(t)) => (
            Some(accounting::events(src.api, t, sent, &in_window).await?),
            None,
            None,
        ),
        (NoisyData::Redeliver(calls), Some(t)) => (
            None,
            Some(
                accounting::redeliveries(src.api, t, &src.pop.seed_event, calls, &in_window)
                    .await?,
            ),
            None,
        ),
        (NoisyData::Burst(burst), Some(t)) => (
            Some(accounting::events(src.api, t, &burst.sent, &in_window).await?),
            None,
            // Every request since the start: a late one still counts.
            Some(throttle::assess(
                t,
                &src.pop.throttle,
                burst.sent.len(),
                data.start,
                burst,
                &arrivals,
                (
                    throttle::slow_quiet(&data.quiet, &quiet_seen, data.start),
                    throttle::quiet_from(&data.quiet, &quiet_seen, data.start, throttle::BURST_IN),
                ),
            )),
        ),
        _ => (None, None, None),
    };
    Ok(PhaseReport {
        name: spec.name,
        secs: spec.secs,
        noise,
        quiet,
        noisy_events,
        redeliver,
        throttle,
        backlog_at_end: data.backlog,
        drain: data.drain,
        give_up_secs: src.give_up_secs,
        load_secs: analysis::secs(data.start, data.sent_end),
        window_secs: analysis::secs(data.start, data.window_end),
        cost: analysis::cost(src.proxy, data.start, data.window_end, in_window.len()),
    })
}
