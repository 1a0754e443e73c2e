//! Benchmarks of the dispatcher, the API and the functions' cold start.
//! Run with `scripts/bench` (see docs/benchmarks.md); prints a table and writes JSON.

mod api_load;
mod coldstart;
mod cost;
mod deadline;
mod fanout;
mod gateways;
mod lambda_sizes;
mod measure;
mod receiver;
mod recover;
mod timing_store;

use std::path::PathBuf;
use std::time::Duration;

/// Starts of each binary in the cold start benchmark.
const COLD_STARTS: usize = 40;

use serde::Serialize;
use shared::store::MemoryStore;

#[derive(Serialize)]
struct Row {
    benchmark: &'static str,
    figure: String,
    value: String,
    goal: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        benchmark: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        goal: impl Into<String>,
    ) {
        let row = Row {
            benchmark,
            figure: figure.into(),
            value: value.into(),
            goal: goal.into(),
        };
        eprintln!("  {} | {} | {}", row.figure, row.value, row.goal);
        self.rows.push(row);
    }
}

struct Options {
    events: usize,
    out: PathBuf,
    release_dir: PathBuf,
    api_seconds: u64,
    /// `--only fan-out,cold-start`: just these benchmarks (while working on
    /// one); `fan-out:bare` and `fan-out:dispatcher` are the two in-memory
    /// sides of the fan-out alone (to run under a profiler).
    only: Option<Vec<String>>,
}

impl Options {
    fn runs(&self, benchmark: &str) -> bool {
        self.only.is_none() || self.names(benchmark)
    }

    /// Whether `--only` names `benchmark` itself.
    fn names(&self, benchmark: &str) -> bool {
        self.only
            .as_ref()
            .is_some_and(|only| only.iter().any(|o| o == benchmark))
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("receiver" | "memory-child" | "api-server" | "lambda-child")
    ) {
        // A helper process dies with the process that started it.
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
    }
    match args.first().map(String::as_str) {
        Some("receiver") => return receiver::run(args.get(1).map_or("ok", String::as_str)).await,
        Some("memory-child") => {
            let receiver = args.get(1).map_or("slow:2000", String::as_str);
            let webhooks = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
            return deadline::memory_child(receiver, webhooks).await;
        }
        Some("api-server") => {
            return api_load::server(args.get(1).map_or("memory", String::as_str)).await;
        }
        Some("lambda-child") => return lambda_sizes::child(&args[1..]).await,
        Some("recover") => return recover::main(&args[1..]).await,
        Some("lambda-sizes") => {
            return lambda_sizes::main(args.iter().any(|a| a == "--quick"), &args).await;
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let opts = Options {
        events: if quick { 50 } else { 1000 },
        out: value_of("--out")
            .unwrap_or_else(|| "bench/results.json".into())
            .into(),
        release_dir: value_of("--release-dir")
            .unwrap_or_else(|| "target/release".into())
            .into(),
        api_seconds: if quick { 1 } else { 5 },
        only: value_of("--only").map(|v| v.split(',').map(str::to_owned).collect()),
    };
    let report = run(&opts).await;
    print_table(&report);
    write_json(&report, &opts);
}

fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

async fn run(opts: &Options) -> Report {
    let mut r = Report::default();
    let moto = std::env::var_os("AWS_ENDPOINT_URL").is_some();

    let mut batch_ms = None;
    for (side, name) in [
        ("bare", "bare client"),
        ("dispatcher", "dispatcher, in-memory"),
    ] {
        if opts.names(&format!("fan-out:{side}")) {
            eprintln!("1. fan-out, {side} only");
            let run = match side {
                "bare" => fanout::bare_client(opts.events).await,
                _ => fanout::dispatcher(MemoryStore::default(), opts.events).await,
            };
            let figures = [
                ("deliveries/s", format!("{:.0}", run.per_second())),
                (
                    "CPU per delivery",
                    format!("{:.1} µs", run.cpu_us_per_delivery()),
                ),
            ];
            for (figure, value) in figures {
                r.add("fan-out", format!("{name}: {figure}"), value, "");
            }
        }
    }
    if opts.runs("fan-out") {
        eprintln!(
            "1. fan-out, {} events x {} webhooks",
            opts.events,
            fanout::WEBHOOKS
        );
        let bare = fanout::bare_client(opts.events).await;
        let memory = fanout::dispatcher(MemoryStore::default(), opts.events).await;
        let ratio = memory.per_second() / bare.per_second();
        r.add(
            "fan-out",
            "bare reqwest client: deliveries/s",
            format!("{:.0}", bare.per_second()),
            "the limit",
        );
        r.add(
            "fan-out",
            "bare client: CPU per delivery",
            format!("{:.1} µs", bare.cpu_us_per_delivery()),
            "",
        );
        r.add(
            "fan-out",
            "bare client: p50 / p99 latency",
            format!("{} / {}", us(bare.p50_us), us(bare.p99_us)),
            "",
        );
        r.add(
            "fan-out",
            "dispatcher, in-memory store: deliveries/s",
            format!("{:.0}", memory.per_second()),
            "",
        );
        r.add(
            "fan-out",
            "dispatcher ÷ bare client",
            format!("{ratio:.2}"),
            ">= 0.80",
        );
        r.add(
            "fan-out",
            "dispatcher, in-memory: CPU per delivery",
            format!("{:.1} µs", memory.cpu_us_per_delivery()),
            "",
        );
        r.add(
            "fan-out",
            "dispatcher, in-memory: p50 / p99 latency",
            format!("{} / {}", us(memory.p50_us), us(memory.p99_us)),
            "",
        );
        r.add(
            "fan-out",
            "dispatcher, in-memory: wall time per batch of 10",
            format!("{:.1} ms", memory.per_batch.as_secs_f64() * 1e3),
            "",
        );
        batch_ms = Some(memory.per_batch.as_secs_f64() * 1e3);
        if moto {
            let store = testkit::fresh_store().await;
            let dynamo = fanout::dispatcher(store, opts.events).await;
            let dynamo_ms = dynamo.per_batch.as_secs_f64() * 1e3;
            batch_ms = Some(dynamo_ms);
            r.add(
                "fan-out",
                "dispatcher, DynamoDB on moto: deliveries/s",
                format!("{:.0}", dynamo.per_second()),
                "moto-bound",
            );
            r.add(
                "fan-out",
                "dispatcher, moto: CPU per delivery",
                format!("{:.1} µs", dynamo.cpu_us_per_delivery()),
                "",
            );
            r.add(
                "fan-out",
                "dispatcher, moto: p50 / p99 latency (to recorded)",
                format!("{} / {}", us(dynamo.p50_us), us(dynamo.p99_us)),
                "",
            );
            r.add(
                "fan-out",
                "dispatcher, moto: wall time per batch of 10",
                format!("{dynamo_ms:.1} ms"),
                "",
            );
            r.add(
                "fan-out",
                "DynamoDB requests per delivery",
                format!(
                    "{:.3}",
                    dynamo.dynamodb_requests as f64 / dynamo.deliveries as f64
                ),
                "<= 1 write + the tenant read per batch",
            );
        } else {
            eprintln!(
                "   (no AWS_ENDPOINT_URL: the DynamoDB run is skipped; scripts/bench starts moto)"
            );
        }
    }

    if opts.runs("deadline") {
        eprintln!("2. deadline under hanging receivers");
        let hang = deadline::hanging().await;
        r.add(
            "deadline",
            "10 x 10 to hanging receivers: invocation wall time",
            format!("{:.3} s", hang.wall.as_secs_f64()),
            "<= 5.2 s (deadline 5.0 s)",
        );
        r.add(
            "deadline",
            "deliveries recorded as timeout",
            format!("{} of {}", hang.timeouts, hang.deliveries),
            "100 of 100",
        );
    }

    if opts.runs("memory") {
        eprintln!("3. memory with 1,000 deliveries in flight, and 500 to hostile receivers");
        let mem = deadline::memory("slow:2000", 100);
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        r.add("memory", "RSS after setup", mib(mem.setup_kib), "");
        r.add(
            "memory",
            "peak RSS, 10 x 100 in flight",
            mib(mem.peak_kib),
            "< 64 MiB (dispatch function: 512 MB)",
        );
        r.add(
            "memory",
            "RSS at rest after the batch",
            mib(mem.rest_kib),
            "",
        );
        // Every receiver sends the largest head the client accepts and
        // holds the body 4 s: the worst a batch at the limits (10 events x
        // 50 webhooks) can be made to hold.
        let largest = shared::delivery::HEAD_LIMIT - 64;
        let hostile = deadline::memory(&format!("bighead:{largest}"), 50);
        r.add(
            "memory",
            "peak RSS, 10 x 50 in flight, every head 16 KiB and held 4 s",
            mib(hostile.peak_kib),
            "< 96 MiB (dispatch function: 512 MB)",
        );
    }

    if opts.runs("cold-start") {
        eprintln!("4. cold start");
        coldstart_rows(&mut r, opts).await;
    }

    if opts.runs("api") {
        eprintln!("5. API load");
        let stores: &[&str] = if moto {
            &["memory", "moto"]
        } else {
            &["memory"]
        };
        for store in stores {
            for method in ["GET", "POST"] {
                let load =
                    api_load::load(store, method, Duration::from_secs(opts.api_seconds), 16).await;
                r.add(
                    "api",
                    format!(
                        "{method} /webhooks, {store} store, 16 connections: req/s, p50 / p99, errors"
                    ),
                    format!(
                        "{:.0}, {} / {}, {} errors",
                        load.per_second,
                        us(load.p50_us),
                        us(load.p99_us),
                        load.errors
                    ),
                    "",
                );
            }
        }
    }

    if let Some(batch_ms) = batch_ms {
        eprintln!("6. cost model");
        let bill = cost::per_million_events(batch_ms, cost::DISPATCH_MEMORY_MB);
        r.add(
            "cost",
            format!(
                "1M events to 1 webhook each (prices of {}, batch {batch_ms:.1} ms)",
                cost::PRICES_DATE
            ),
            format!(
                "${:.2} (Lambda ${:.2}, DynamoDB ${:.2}, SQS ${:.2})",
                bill.total(),
                bill.lambda,
                bill.dynamodb,
                bill.sqs
            ),
            format!(
                "EventBridge API destinations: ${:.2}",
                cost::EVENTBRIDGE_API_DESTINATIONS_PER_MILLION
            ),
        );
    }
    if opts.runs("gateways") {
        eprintln!(
            "2b. receivers behind a gateway, {} events to one webhook over TLS",
            opts.events
        );
        // A first run warms what every variant shares (the allocator, the runtime).
        gateways::run(gateways::Auth::Basic, fanout::BATCH).await;
        for auth in gateways::Auth::ALL {
            let run = gateways::run(auth, opts.events).await;
            let name = auth.name();
            let figures = [
                (
                    "first delivery",
                    format!("{:.1} ms", run.first.as_secs_f64() * 1e3),
                ),
                (
                    "p50 / p99 attempt",
                    format!("{} / {} ms", run.p50_ms, run.p99_ms),
                ),
                ("token fetches", run.token_fetches.to_string()),
            ];
            for (figure, value) in figures {
                r.add("gateways", format!("{name}: {figure}"), value, "");
            }
        }
    }
    r
}

/// The floor and both functions, measured in turns.
async fn coldstart_rows(r: &mut Report, opts: &Options) {
    let names = ["noop-lambda", "webhooks-api", "webhooks-dispatch"];
    let paths: Vec<PathBuf> = names.iter().map(|n| opts.release_dir.join(n)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        eprintln!(
            "   {} is not built (cargo build --release): skipped",
            missing.display()
        );
        return;
    }
    let results = coldstart::measure(&paths, COLD_STARTS).await;
    let floor_us = results.first().map_or(0, |c| c.p50_us).max(1);
    for (i, c) in results.iter().enumerate() {
        let goal = if i == 0 {
            "the floor".to_owned()
        } else {
            format!("<= 1.5x floor ({:.2}x)", c.p50_us as f64 / floor_us as f64)
        };
        r.add(
            "cold start",
            format!("{}: exec to first /next, p50 / p90", c.binary),
            format!("{} / {}", us(c.p50_us), us(c.p90_us)),
            goal,
        );
        let size_goal = if i == 0 { "" } else { "< 8 MiB" };
        r.add(
            "size",
            format!("{} release binary", c.binary),
            format!("{:.1} MiB", c.size_bytes as f64 / 1048576.0),
            size_goal,
        );
    }
}

fn print_table(report: &Report) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "\nmachine: {cores} cores, commit {}\n",
        measure::git_commit()
    );
    println!("| benchmark | figure | value | limit or goal |");
    println!("|---|---|---|---|");
    for row in &report.rows {
        println!(
            "| {} | {} | {} | {} |",
            row.benchmark, row.figure, row.value, row.goal
        );
    }
}

fn write_json(report: &Report, opts: &Options) {
    let json = serde_json::json!({
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "commit": measure::git_commit(),
            "date": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        },
        "events": opts.events,
        "rows": report.rows,
    });
    match std::fs::write(
        &opts.out,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    ) {
        Ok(()) => eprintln!("\nwritten: {}", opts.out.display()),
        Err(e) => eprintln!("\ncould not write {}: {e}", opts.out.display()),
    }
}
