//! One phase: the quiet load (5 tenants × 2 events/s) and, in phase 2, one
//! noisy tenant, for a set time; then the queues' backlog, and the wait until
//! they are empty (the drain). What was sent is kept for the analysis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::load::{self, Call, Emitter, Sent};
use crate::setup::{Population, Tenant};
use crate::stack::{self, Backlog, Drain, Queues};

/// Events a second from each quiet tenant.
pub const QUIET_RATE: f64 = 2.0;
/// Events a second from the noisy tenant of phases 2a and 2b (`--noisy-rate`):
/// the 40, which the test moto serves since its SQS fix
/// (scripts/moto_server.py).
pub const NOISY_RATE: f64 = 40.0;
/// The same in the short run (CI, a debug build of the stack, on a machine
/// busy with the rest of the tests).
pub const QUICK_NOISY_RATE: f64 = 10.0;
/// Between two redelivery calls in phase 2c.
pub const REDELIVER_EVERY: Duration = Duration::from_millis(2500);

/// What the noisy tenant does.
#[derive(Clone, Copy)]
pub enum Noise {
    None,
    /// Events at [`NOISY_RATE`] to its one webhook.
    Events,
    /// `POST /events/{seed}/redeliver` every [`REDELIVER_EVERY`].
    Redeliver,
}

/// A phase to run.
pub struct Spec<'a> {
    pub name: &'static str,
    pub secs: u64,
    pub noise: Noise,
    /// The noisy tenant (None with [`Noise::None`]).
    pub tenant: Option<&'a Tenant>,
    /// The noisy tenant's events a second ([`Noise::Events`]).
    pub rate: f64,
}

/// What the noisy tenant did.
pub enum NoisyData {
    None,
    Events(Vec<Sent>),
    Redeliver(Vec<Call>),
}

/// One phase as it ran.
pub struct PhaseData {
    pub start: Instant,
    /// When the last send (or call) returned.
    pub sent_end: Instant,
    /// After the drain: the end of the phase's accounting window.
    pub window_end: Instant,
    pub quiet: Vec<Sent>,
    pub noisy: NoisyData,
    /// The queues when the load stopped.
    pub backlog: Backlog,
    pub drain: Drain,
}

/// What a phase uses.
pub struct Ctx {
    pub sqs: aws_sdk_sqs::Client,
    pub queues: Queues,
    pub emitter: Emitter,
    pub api: Api,
    pub give_up: Duration,
    /// Purge the queues when they do not empty in time, so the next phase
    /// measures its own load rather than the last one's backlog.
    pub purge: bool,
    /// The noisy tenant's sends in flight at once: its own, so that the
    /// bench never holds a quiet tenant's send behind a noisy one.
    pub noisy_slots: Arc<Semaphore>,
}

/// Runs `spec`; returns what was sent and how the queues drained.
pub async fn run(ctx: &mut Ctx, pop: &Population, spec: &Spec<'_>) -> Result<PhaseData, String> {
    ctx.queues.refresh(&ctx.sqs).await;
    let start = Instant::now();
    let end = start + Duration::from_secs(spec.secs);
    eprintln!("noisy: phase {} for {} s", spec.name, spec.secs);
    let mut quiet = JoinSet::new();
    for (k, t) in pop.quiet.iter().enumerate() {
        // Staggered, so the quiet tenants' sends do not come in bursts.
        let first = start + Duration::from_millis(100 * k as u64);
        quiet.spawn(load::stream(
            ctx.emitter.clone(),
            t.id.clone(),
            QUIET_RATE,
            first,
            end,
        ));
    }
    let noisy = match (spec.noise, spec.tenant) {
        (Noise::Events, Some(t)) => {
            let emitter = Emitter {
                slots: Arc::clone(&ctx.noisy_slots),
                ..ctx.emitter.clone()
            };
            let task = load::stream(emitter, t.id.clone(), spec.rate, start, end);
            NoisyData::Events(task.await?)
        }
        (Noise::Redeliver, Some(t)) => NoisyData::Redeliver(
            load::redeliver(
                ctx.api,
                t.key.clone(),
                pop.seed_event.clone(),
                start,
                end,
                REDELIVER_EVERY,
            )
            .await,
        ),
        _ => {
            tokio::time::sleep_until(end.into()).await;
            NoisyData::None
        }
    };
    let mut quiet_sent = Vec::new();
    while let Some(r) = quiet.join_next().await {
        quiet_sent.extend(r.map_err(|e| e.to_string())??);
    }
    let sent_end = Instant::now();
    ctx.queues.refresh(&ctx.sqs).await;
    let backlog = ctx.queues.backlog(&ctx.sqs).await;
    eprintln!(
        "noisy: phase {}: load stopped; backlog {} (slow lane {})",
        spec.name,
        backlog.events.map_or("?".into(), |n| n.to_string()),
        backlog.slow.map_or("absent".into(), |n| n.to_string()),
    );
    let mut drain = stack::drain(&ctx.sqs, &ctx.queues, sent_end, ctx.give_up).await;
    let window_end = Instant::now();
    match drain.secs {
        Some(s) => eprintln!("noisy: phase {}: drained in {s:.1} s", spec.name),
        None => eprintln!(
            "noisy: phase {}: queues not empty after {} s{}",
            spec.name,
            ctx.give_up.as_secs(),
            if ctx.purge {
                "; purging them"
            } else {
                "; going on"
            }
        ),
    }
    if !drain.drained && ctx.purge {
        drain.purged = Some(stack::purge(&ctx.sqs, &ctx.queues).await?);
        // Batches in the dispatcher's hands end within its deadline.
        tokio::time::sleep(Duration::from_secs(
            shared::infra::DISPATCH_TIMEOUT_SECS + 1,
        ))
        .await;
    }
    Ok(PhaseData {
        start,
        sent_end,
        window_end,
        quiet: quiet_sent,
        noisy,
        backlog,
        drain,
    })
}
