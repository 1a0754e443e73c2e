//! `webhooks-noisy`: the noisy-neighbour benchmark (scripts/noisy). Does one
//! tenant with a dead or slow endpoint slow the others down? It drives the
//! real local stack as a black box: `webhooks local` in a child process
//! (the api handler and the dispatch poller), whose AWS traffic goes through
//! a counting proxy to moto. Five quiet tenants send 2 events/s each to
//! receivers that answer at once; phase 1 measures them alone, phases 2a-2d
//! beside a noisy tenant (40 events/s to a receiver that never answers, to
//! one that answers after 3 s, redelivery calls fanning out to 50 hanging
//! webhooks, and 40 events/s to a receiver that answers at once for a third
//! of the phase and then never again), phase 2t beside a burst of 1,000
//! events to a webhook with `throttle_rate` 5 (the receiver must never see
//! more than 1.1 × 5/s over 10 s, nor lose or double one). Between phases
//! the queues must empty. It reports the
//! quiet tenants' emit → receipt latency, the noisy tenant's accounting from
//! its delivery log, the backlog and drain, and AWS requests per delivery;
//! prints Markdown, writes JSON, checks the goals. Never prints a token, an
//! API key, a signing secret or a payload.

mod accounting;
mod analysis;
mod api;
mod args;
mod assess;
mod aws_proxy;
mod goals;
mod hooks;
mod load;
mod phase;
mod report;
#[path = "../serve.rs"]
mod serve;
mod setup;
mod stack;
mod stats;
mod throttle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::Semaphore;

use crate::args::{Args, specs};
use crate::aws_proxy::{AwsProxy, Upstreams};
use crate::hooks::Hooks;
use crate::load::Emitter;
use crate::phase::Noise;
use crate::report::RunReport;
use crate::stack::{LocalStack, Queues};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("webhooks-noisy: {e}");
            return ExitCode::from(2);
        }
    };
    // Ending `run` early drops the child, which kills it.
    let result = tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("webhooks-noisy: {message}");
            ExitCode::from(2)
        }
    }
}

/// The first of `vars` that is set, as a socket address.
async fn endpoint(vars: &[&str]) -> Result<SocketAddr, String> {
    let (var, value) = vars
        .iter()
        .find_map(|v| std::env::var(v).ok().map(|x| (*v, x)))
        .ok_or("AWS_ENDPOINT_URL is not set: run scripts/noisy, which starts moto")?;
    let url = url::Url::parse(&value).map_err(|e| format!("{var}: {e}"))?;
    let host = url.host_str().ok_or(format!("{var} has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or(format!("{var} has no port"))?;
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{var}: {e}"))?
        .next()
        .ok_or_else(|| format!("{var} resolves to nothing"))
}

/// Whether SQS takes `MessageGroupId` on a standard queue (a queue of its own).
async fn group_ids_accepted(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<bool, String> {
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}-probe"))
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateQueue: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let accepted = sqs
        .send_message()
        .queue_url(&url)
        .message_body("probe")
        .message_group_id("probe")
        .send()
        .await
        .is_ok();
    let _ = sqs.delete_queue().queue_url(&url).send().await;
    Ok(accepted)
}

async fn run(args: Args) -> Result<bool, String> {
    let wall = Instant::now();
    let started_at = shared::delivery_log::sortable_time(shared::webhook::now_utc());
    let upstreams = Upstreams {
        dynamodb: endpoint(&["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]).await?,
        sqs: endpoint(&["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"]).await?,
    };
    let config = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!(
        "noisy-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let mode = if args.quick { "quick" } else { "full" };
    let store = if args.memory { "memory" } else { "dynamodb" };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(match args.memory {
            true => format!("target/noisy/{mode}-memory.json"),
            false => format!("target/noisy/{mode}.json"),
        })
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let bin = match &args.poller {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("webhooks"),
    };
    if !bin.is_file() {
        return Err(format!("{}: no such binary", bin.display()));
    }
    let give_up = Duration::from_secs(args.give_up_secs);

    let group_ids = group_ids_accepted(&sqs, &name).await?;
    let hooks = Arc::new(Hooks::default());
    let receivers = hooks::start(Arc::clone(&hooks))
        .await
        .map_err(|e| format!("starting the receivers: {e}"))?;
    let proxy = AwsProxy::start(upstreams)
        .await
        .map_err(|e| format!("starting the proxy: {e}"))?;
    let local = LocalStack {
        bin: bin.clone(),
        table: name.clone(),
        queue: name.clone(),
        concurrency: args.concurrency,
        proxy: proxy.addr,
        log: out.with_extension("local.log"),
        memory: args.memory,
    };
    let (mut child, api, keys) = local.start().await?;
    let events_url = stack::queue_url(&sqs, &name)
        .await?
        .ok_or("webhooks local did not create the events queue")?;
    let mut queues = Queues {
        events: events_url.clone(),
        slow_name: format!("{name}-slow"),
        slow: None,
    };
    queues.refresh(&sqs).await;
    eprintln!(
        "noisy: {} at {}; table and queue {name}; slow lane {}; MessageGroupId {}",
        bin.display(),
        api.addr,
        if queues.slow.is_some() {
            "present"
        } else {
            "absent"
        },
        if group_ids {
            "accepted"
        } else {
            "refused: not set"
        },
    );
    let emitter = Emitter {
        sqs: sqs.clone(),
        queue_url: events_url,
        group_ids,
        slots: Arc::new(Semaphore::new(64)),
    };
    let pop = setup::Setup {
        keys: &keys,
        api,
        hooks: &hooks,
        receivers: &receivers,
        throttle_rate: args.burst().1,
    }
    .run(&emitter)
    .await?;
    // The seed event's message must be gone before phase 1 starts.
    if !stack::drain(&sqs, &queues, Instant::now(), give_up)
        .await
        .drained
    {
        return Err("the queues did not empty after setup".into());
    }
    eprintln!(
        "noisy: setup done after {:.1} s",
        wall.elapsed().as_secs_f64()
    );

    let mut ctx = phase::Ctx {
        sqs: sqs.clone(),
        queues,
        emitter,
        api,
        give_up,
        purge: !args.keep_backlog,
        noisy_slots: Arc::new(Semaphore::new(256)),
        hooks: Arc::clone(&hooks),
    };
    let sources = assess::Sources {
        api: &api,
        hooks: &hooks,
        proxy: &proxy,
        pop: &pop,
        give_up_secs: args.give_up_secs,
    };
    let mut phases = Vec::new();
    let mut phase1_p99 = None;
    for (spec, noise) in specs(&args, &pop)? {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "webhooks local exited ({status}) before {}; see {}",
                spec.name,
                out.with_extension("local.log").display()
            ));
        }
        if matches!(spec.noise, Noise::Redeliver) {
            setup::subscribe_redeliver(&api, &pop.redeliver).await?;
        }
        if spec.name == "phase2d" {
            // Healthy for the first third, then it hangs.
            hooks.break_at(Instant::now() + Duration::from_secs(spec.secs) / 3);
        }
        let data = phase::run(&mut ctx, &pop, &spec).await?;
        let report = assess::phase(&sources, &spec, noise, &data, phase1_p99).await?;
        if spec.name == "phase1" {
            phase1_p99 = report.quiet.latency.p99_ms;
        }
        eprintln!(
            "noisy: {}: quiet p99 {}, {} of {} arrived",
            report.name,
            stats::fmt_ms(report.quiet.latency.p99_ms),
            report.quiet.arrived,
            report.quiet.sent
        );
        phases.push(report);
    }
    let slow_lane = ctx.queues.slow.is_some();
    let _ = child.start_kill();
    let _ = child.wait().await;

    let wrong_auth = hooks.wrong_auth.load(std::sync::atomic::Ordering::SeqCst);
    let unknown_path = hooks.unknown_path.load(std::sync::atomic::Ordering::SeqCst);
    let thresholds = goals::Thresholds {
        quiet_p99_goal_ms: args.quiet_p99_goal_ms as f64,
        max_quiet_p99_ms: args.max_quiet_p99_ms as f64,
        drain_goal_secs: args.drain_goal_secs as f64,
        give_up_secs: args.give_up_secs,
        ratio_to_phase1_goal: args.memory.then_some(2.0),
    };
    let goals = goals::check(&phases, &thresholds, wrong_auth, unknown_path);
    let passed = goals::passed(&goals, args.quick);
    let report = RunReport {
        mode,
        store,
        started_at,
        poller: bin.display().to_string(),
        concurrency: args.concurrency,
        message_group_id: group_ids,
        slow_lane,
        wrong_auth,
        unknown_path,
        id_mismatch: hooks.id_mismatch.load(std::sync::atomic::Ordering::SeqCst),
        wall_secs: stats::round1(wall.elapsed().as_secs_f64()),
        phases,
        goals,
        passed,
    };
    let tables = report.markdown();
    let lines = report.goal_lines();
    println!("{tables}\n{lines}");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    let md = out.with_extension("md");
    let listed: String = lines.lines().map(|l| format!("- {l}\n")).collect();
    std::fs::write(&md, format!("{tables}\n{listed}"))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    eprintln!(
        "noisy: {} in {:.0} s; figures in {} and {}",
        if passed { "passed" } else { "FAILED" },
        report.wall_secs,
        out.display(),
        md.display()
    );
    Ok(passed)
}
