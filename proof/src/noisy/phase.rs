//! One phase: the quiet load (5 tenants × 2 events/s) and, in phase 2, one
//! noisy tenant, for a set time (phase 2t: until its burst has arrived);
//! then the queues' backlog, and the wait until they are empty (the drain).
//! What was sent is kept for the analysis.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::hooks::Hooks;
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
/// Phase 2t: the burst's events and the webhook's `throttle_rate` (N, R):
/// 200 s at the rate.
pub const BURST_EVENTS: usize = 1000;
pub const THROTTLE_RATE: u32 = 5;
/// The same in the short run: 15 s at the rate. N must be well above the
/// rate goal's 1.1 × R × 10 (110 here), or a webhook without the throttle
/// would pass it with the whole burst inside one 10 s window.
pub const QUICK_BURST_EVENTS: usize = 150;
pub const QUICK_THROTTLE_RATE: u32 = 10;
/// Between two looks at the throttled webhook (`GET /webhooks/{id}`,
/// whether it shows `throttled_since`) in phase 2t.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Phase 2t's planned length: N / R seconds, the time the burst takes at
/// the rate.
pub fn burst_secs(events: usize, rate: u32) -> f64 {
    events as f64 / f64::from(rate.max(1))
}

/// When phase 2t stops waiting for its burst, from its start: the planned
/// length and a quarter more, and 30 s.
pub fn burst_give_up(events: usize, rate: u32) -> Duration {
    Duration::from_secs_f64(burst_secs(events, rate) * 1.25 + 30.0)
}

/// What the noisy tenant does.
#[derive(Clone, Copy)]
pub enum Noise {
    None,
    /// Events at [`NOISY_RATE`] to its one webhook.
    Events,
    /// `POST /events/{seed}/redeliver` every [`REDELIVER_EVERY`].
    Redeliver,
    /// Phase 2t: `events` at once to one webhook with `throttle_rate` =
    /// `rate`; the phase lasts until they have all arrived (and at least
    /// events / rate seconds), or [`burst_give_up`].
    Burst {
        events: usize,
        rate: u32,
    },
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
    Burst(Burst),
}

/// Phase 2t's burst as it ran.
pub struct Burst {
    pub sent: Vec<Sent>,
    /// When the burst's last send returned.
    pub sent_end: Instant,
    /// Every event accepted arrived before the give-up time.
    pub all_arrived: bool,
    /// Looks at the webhook (`GET /webhooks/{id}`) while the phase ran, and
    /// how many of them showed `throttled_since`.
    pub looks: usize,
    pub looks_throttled: usize,
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
    /// What the receivers saw (phase 2t waits for its burst's arrivals).
    pub hooks: Arc<Hooks>,
}

/// Runs `spec`; returns what was sent and how the queues drained.
pub async fn run(ctx: &mut Ctx, pop: &Population, spec: &Spec<'_>) -> Result<PhaseData, String> {
    ctx.queues.refresh(&ctx.sqs).await;
    let start = Instant::now();
    let end = match spec.noise {
        Noise::Burst { events, rate } => {
            eprintln!(
                "noisy: phase {}: {events} events at once to a webhook throttled to {rate}/s; until they arrive ({:.0} s at the rate, giving up after {:.0} s)",
                spec.name,
                burst_secs(events, rate),
                burst_give_up(events, rate).as_secs_f64()
            );
            start + burst_give_up(events, rate)
        }
        _ => {
            eprintln!("noisy: phase {} for {} s", spec.name, spec.secs);
            start + Duration::from_secs(spec.secs)
        }
    };
    // Set when phase 2t's burst has arrived: the quiet load stops with it.
    let stop = Arc::new(AtomicBool::new(false));
    let mut quiet = JoinSet::new();
    for (k, t) in pop.quiet.iter().enumerate() {
        // Staggered, so the quiet tenants' sends do not come in bursts.
        let first = start + Duration::from_millis(100 * k as u64);
        quiet.spawn(load::stream_until(
            ctx.emitter.clone(),
            t.id.clone(),
            QUIET_RATE,
            first,
            end,
            Arc::clone(&stop),
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
        (Noise::Burst { events, rate }, Some(t)) => {
            let burst = burst(ctx, t, spec.name, start, events, rate).await;
            stop.store(true, Ordering::SeqCst);
            NoisyData::Burst(burst?)
        }
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

/// Phase 2t's burst: `events` sent at once for `t`, then the wait until
/// each has arrived at its receiver (and the phase's planned length has
/// passed), or the give-up time; meanwhile a look at the webhook every
/// [`LOOK_EVERY`].
async fn burst(
    ctx: &Ctx,
    t: &Tenant,
    name: &str,
    start: Instant,
    events: usize,
    rate: u32,
) -> Result<Burst, String> {
    let hook = t
        .hooks
        .first()
        .ok_or("the throttled tenant has no webhook")?;
    let emitter = Emitter {
        slots: Arc::clone(&ctx.noisy_slots),
        ..ctx.emitter.clone()
    };
    let sent = load::burst(emitter, t.id.clone(), events).await?;
    let sent_end = Instant::now();
    let ids: HashSet<&str> = sent
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.event_id.as_str())
        .collect();
    eprintln!(
        "noisy: phase {name}: {} of {events} events sent in {:.1} s",
        ids.len(),
        sent_end.duration_since(start).as_secs_f64()
    );
    let planned = start + Duration::from_secs_f64(burst_secs(events, rate));
    let give_up = start + burst_give_up(events, rate);
    let path = format!("/webhooks/{}", hook.id);
    let (mut looks, mut looks_throttled) = (0, 0);
    let mut next_look = Instant::now();
    let all_arrived = loop {
        let now = Instant::now();
        let seen: HashSet<String> = ctx.hooks.ids_of(&hook.label, start).into_iter().collect();
        let arrived = ids.iter().filter(|id| seen.contains(**id)).count();
        if arrived == ids.len() && now >= planned {
            break true;
        }
        if now >= give_up {
            break false;
        }
        if now >= next_look {
            match ctx
                .api
                .call(http::Method::GET, &path, Some(&t.key), None)
                .await
            {
                Ok(a) if a.status == 200 => {
                    looks += 1;
                    if a.body.get("throttled_since").is_some_and(|v| !v.is_null()) {
                        looks_throttled += 1;
                    }
                }
                Ok(a) => eprintln!("noisy: GET /webhooks/{{id}}: answered {}", a.status),
                Err(e) => eprintln!("noisy: {e}"),
            }
            if looks % 5 == 1 {
                eprintln!(
                    "noisy: phase {name}: {arrived} of {} arrived after {:.0} s; throttled_since shown in {looks_throttled} of {looks} looks",
                    ids.len(),
                    now.duration_since(start).as_secs_f64()
                );
            }
            next_look = now + LOOK_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    Ok(Burst {
        sent,
        sent_end,
        all_arrived,
        looks,
        looks_throttled,
    })
}
