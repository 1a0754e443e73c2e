//! Dispatch as Lambda runs it: the real handler in a process
//! confined to the CPU share of a memory size (cgroup v1 `cpu.cfs_quota_us`:
//! 1,769 MB is one vCPU) and to that much memory, delivering batches of 10
//! events to HTTPS receivers on loopback (a CA made at run time, trusted
//! through the test-only `ClientConfig::extra_roots`). The receivers and
//! this parent stay outside the quota: in AWS they are other machines.
//!
//! `fresh`: a new delivery client for every batch, so every webhook costs a
//! TLS handshake (a cold container, or receivers that close connections);
//! `reuse`: one client for all batches (a warm container). The store is the
//! in-memory one: the function's own cost, apart from DynamoDB's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine;
use serde::{Deserialize, Serialize};
use shared::delivery::{ClientConfig, DeliveryClient};
use shared::event_type::EventType::AsyncCompleted;
use shared::store::prelude::*;
use shared::store::{DynamoStore, MemoryStore};
use shared::webhook::Status::Active;
use testkit::receiver::{Receiver, TlsAnswer};
use testkit::tls::TestCa;

use crate::measure::{cpu_time, percentile, status_kib};

/// One vCPU: AWS gives a function CPU in proportion to its memory.
const FULL_CPU_MB: u64 = 1769;
const BATCH: usize = 10;
/// Lambda's x86_64 price per GB-second (us-east-1, 2026-11-25).
const LAMBDA_X86_GB_SECOND: f64 = 0.000_016_666_7;

/// The fan-out of the hostile rows (a batch at the limits: 10 events x 50 webhooks).
const HOSTILE_FAN_OUT: usize = 50;

/// What a child reports for one configuration.
#[derive(Serialize, Deserialize, Default)]
pub struct ChildReport {
    batch_ms: Vec<u64>,
    first_ms: Vec<u64>,
    cpu_us: Vec<u64>,
    deliveries: usize,
    missed: usize,
    peak_rss_kib: u64,
}

/// A row of the table.
#[derive(Serialize)]
pub struct Row {
    pub store: String,
    pub memory_mb: u64,
    pub fan_out: usize,
    pub connections: &'static str,
    pub batch_p50_ms: u64,
    pub batch_p99_ms: u64,
    pub first_delivery_p50_ms: u64,
    pub missed: usize,
    pub deliveries: usize,
    pub peak_rss_mib: f64,
    pub cpu_us_per_delivery: f64,
    /// The batches after the first: a warm container's steady state (with
    /// `reuse`, kept connections and a made SDK client).
    pub warm_cpu_us_per_delivery: f64,
    pub lambda_cost_per_million_events: f64,
    /// Killed by the memory limit, or failed.
    pub failed: Option<String>,
}

/// cgroup v1 directories for one memory size, removed on drop.
struct Confinement {
    dirs: Vec<String>,
}

impl Confinement {
    fn new(memory_mb: u64) -> Result<Self, String> {
        let name = format!("webhooks-bench-{memory_mb}-{}", std::process::id());
        let cpu = format!("/sys/fs/cgroup/cpu/{name}");
        let memory = format!("/sys/fs/cgroup/memory/{name}");
        let write = |path: String, value: String| {
            std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
        };
        std::fs::create_dir_all(&cpu)
            .map_err(|e| format!("{cpu}: {e} (needs root and cgroup v1)"))?;
        let confinement = Self {
            dirs: vec![cpu.clone()],
        };
        let period = 100_000u64;
        write(format!("{cpu}/cpu.cfs_period_us"), period.to_string())?;
        let quota = (period * memory_mb / FULL_CPU_MB).max(1000);
        write(format!("{cpu}/cpu.cfs_quota_us"), quota.to_string())?;
        std::fs::create_dir_all(&memory).map_err(|e| format!("{memory}: {e}"))?;
        let mut confinement = confinement;
        confinement.dirs.push(memory.clone());
        write(
            format!("{memory}/memory.limit_in_bytes"),
            (memory_mb * 1024 * 1024).to_string(),
        )?;
        Ok(confinement)
    }

    fn admit(&self, pid: u32) -> Result<(), String> {
        for dir in &self.dirs {
            std::fs::write(format!("{dir}/cgroup.procs"), pid.to_string())
                .map_err(|e| format!("{dir}/cgroup.procs: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for Confinement {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Which rows to run: `--stores memory,moto`, `--sizes 512,1769`,
/// `--fan-outs 10,50` keep only those (to measure one change on a few rows);
/// `--batches N` runs N batches per row instead of 6 (a steadier warm figure).
#[derive(Default)]
pub struct Only {
    pub stores: Option<Vec<String>>,
    pub sizes: Option<Vec<u64>>,
    pub fan_outs: Option<Vec<usize>>,
    /// `fresh`, `reuse`, `hostile`.
    pub connections: Option<Vec<String>>,
    pub batches: Option<usize>,
}

impl Only {
    /// From the command line's flags; a value that is not a number is an error.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let list = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        };
        let numbers = |flag: &str| -> Result<Option<Vec<u64>>, String> {
            list(flag)
                .map(|v| {
                    v.iter()
                        .map(|n| {
                            n.parse()
                                .map_err(|_| format!("{flag}: {n:?} is not a number"))
                        })
                        .collect()
                })
                .transpose()
        };
        Ok(Only {
            stores: list("--stores"),
            sizes: numbers("--sizes")?,
            fan_outs: numbers("--fan-outs")?.map(|v| v.into_iter().map(|n| n as usize).collect()),
            connections: list("--connections"),
            batches: numbers("--batches")?.and_then(|v| v.first().map(|&n| n.max(2) as usize)),
        })
    }
}

/// Runs every configuration (less what `only` leaves out); `quick` runs the
/// worst case at two sizes.
pub async fn run(quick: bool, only: Only) -> Result<Vec<Row>, String> {
    // DynamoDB on moto too in the full run, when moto is there (scripts/bench-lambda starts it).
    let moto = !quick && std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let stores: Vec<String> = match only.stores {
        Some(stores) => stores,
        None if moto => vec!["memory".into(), "moto".into()],
        None => vec!["memory".into()],
    };
    let ca = TestCa::generate();
    let fan_outs: Vec<usize> = match only.fan_outs {
        Some(f) => f,
        None if quick => vec![50],
        None => vec![1, 10, 50],
    };
    let sizes: Vec<u64> = match only.sizes {
        Some(s) => s,
        None if quick => vec![128, 1769],
        None => vec![128, 256, 512, 1024, 1769],
    };
    let batches = match only.batches {
        Some(n) => n,
        None if quick => 2,
        None => 6,
    };
    let max_fan_out = fan_outs.iter().copied().max().unwrap_or(1);
    let mut receivers = Vec::with_capacity(max_fan_out);
    for _ in 0..max_fan_out {
        receivers.push(Receiver::start_tls(&ca).await);
    }
    // Hostile receivers, for the worst case: every one sends the
    // largest head the client reads and holds the body 4 s.
    let hostile = !quick && max_fan_out == HOSTILE_FAN_OUT;
    let mut hostile_receivers = Vec::new();
    for _ in 0..if hostile { HOSTILE_FAN_OUT } else { 0 } {
        let answer = TlsAnswer::BigHead {
            head_bytes: shared::delivery::HEAD_LIMIT - 64,
            hold: std::time::Duration::from_secs(4),
        };
        hostile_receivers.push(Receiver::start_tls_answering(&ca, answer).await);
    }
    let port_list = |receivers: &[Receiver], n: usize| {
        receivers
            .iter()
            .take(n)
            .map(|r| r.addr.port().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let root = base64::engine::general_purpose::STANDARD.encode(ca.root.as_ref());
    let mut rows = Vec::new();
    for store in &stores {
        let store = store.as_str();
        for &memory_mb in &sizes {
            for &fan_out in &fan_outs {
                let kinds: &[&'static str] =
                    if hostile && store == "memory" && fan_out == HOSTILE_FAN_OUT {
                        &["fresh", "reuse", "hostile"]
                    } else {
                        &["fresh", "reuse"]
                    };
                for &connections in kinds {
                    if only
                        .connections
                        .as_ref()
                        .is_some_and(|c| !c.iter().any(|c| c == connections))
                    {
                        continue;
                    }
                    let ports = match connections {
                        "hostile" => port_list(&hostile_receivers, fan_out),
                        _ => port_list(&receivers, fan_out),
                    };
                    let store_arg = match store {
                        "moto" => format!("dynamo:{}", testkit::fresh_store().await.table()),
                        _ => "memory".to_owned(),
                    };
                    let confinement = Confinement::new(memory_mb)?;
                    let args = [
                        "lambda-child".to_owned(),
                        fan_out.to_string(),
                        batches.to_string(),
                        connections.to_owned(),
                        ports,
                        root.clone(),
                        store_arg,
                    ];
                    let report =
                        tokio::task::spawn_blocking(move || child_run(&confinement, &args))
                            .await
                            .map_err(|e| e.to_string())?;
                    rows.push(row(store, memory_mb, fan_out, connections, report));
                }
            }
        }
    }
    Ok(rows)
}

/// Starts the child, moves it into the cgroups before it does anything,
/// and reads its report.
fn child_run(confinement: &Confinement, args: &[String]) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    confinement.admit(child.id())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"go\n")
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        return Err(match status.signal() {
            Some(9) => "killed (the memory limit)".to_owned(),
            _ => format!("exited with {status}"),
        });
    }
    serde_json::from_str(&line).map_err(|e| format!("child report: {e}: {line}"))
}

fn row(
    store: &str,
    memory_mb: u64,
    fan_out: usize,
    connections: &'static str,
    report: Result<ChildReport, String>,
) -> Row {
    let (mut r, failed) = match report {
        Ok(r) => (r, None),
        Err(e) => (ChildReport::default(), Some(e)),
    };
    let p50 = percentile(&mut r.batch_ms, 50.0);
    let cpu_total: u64 = r.cpu_us.iter().sum();
    let lambda_cost = {
        let invocations = 1_000_000.0 / BATCH as f64;
        invocations * (p50 as f64 / 1000.0) * (memory_mb as f64 / 1024.0) * LAMBDA_X86_GB_SECOND
            + invocations / 1e6 * 0.20
    };
    Row {
        store: store.to_owned(),
        memory_mb,
        fan_out,
        connections,
        batch_p50_ms: p50,
        batch_p99_ms: percentile(&mut r.batch_ms, 99.0),
        first_delivery_p50_ms: percentile(&mut r.first_ms, 50.0),
        missed: r.missed,
        deliveries: r.deliveries,
        peak_rss_mib: r.peak_rss_kib as f64 / 1024.0,
        cpu_us_per_delivery: if r.deliveries == 0 {
            0.0
        } else {
            cpu_total as f64 / r.deliveries as f64
        },
        warm_cpu_us_per_delivery: {
            let warm: u64 = r.cpu_us.iter().skip(1).sum();
            let attempts = r.cpu_us.len().saturating_sub(1) * BATCH * fan_out;
            if attempts == 0 {
                0.0
            } else {
                warm as f64 / attempts as f64
            }
        },
        lambda_cost_per_million_events: (lambda_cost * 100.0).round() / 100.0,
        failed,
    }
}

/// What the child was asked to measure.
struct Opts {
    fan_out: usize,
    batches: usize,
    fresh: bool,
    ports: Vec<String>,
    config: ClientConfig,
    settings: shared::Settings,
}

/// A container: a store holding a tenant's webhooks (one per receiver),
/// and a delivery client of its own.
async fn container<S: Store>(store: S, tenant: &str, o: &Opts) -> dispatch::Dispatcher<S> {
    for port in o.ports.iter().take(o.fan_out) {
        let url = format!("https://localhost:{port}/hook");
        testkit::add_webhook(&store, tenant, &url, &[AsyncCompleted], Active).await;
    }
    let client = DeliveryClient::new(o.config.clone()).expect("client");
    dispatch::Dispatcher::new(store, client, &o.settings)
}

/// The batches, on stores `make_store` makes: one container for all of
/// them (`reuse`), or one per batch (`fresh`, each with a tenant of its
/// own, so that a table keeps one tenant's webhooks apart from the next).
async fn measure<S: Store>(make_store: impl Fn() -> S, o: &Opts) -> ChildReport {
    let mut report = ChildReport::default();
    let mut dispatcher = container(make_store(), "bench-0", o).await;
    for b in 0..o.batches {
        let tenant = format!("bench-{}", if o.fresh { b } else { 0 });
        if o.fresh && b > 0 {
            dispatcher = container(make_store(), &tenant, o).await;
        }
        let events: Vec<(shared::event::Event, String)> = (0..BATCH)
            .map(|_| testkit::envelope(&tenant, AsyncCompleted, serde_json::json!({"ok": true})))
            .collect();
        let batch: Vec<(String, String)> = events
            .iter()
            .enumerate()
            .map(|(i, (_, body))| (format!("m{i}"), body.clone()))
            .collect();
        let (cpu, started) = (cpu_time(), Instant::now());
        let sqs = dispatch::local::sqs_event(batch);
        let invocation = dispatch::local::invocation(
            sqs,
            shared::infra::DISPATCH_TIMEOUT_SECS * 1000,
            "lambda-size",
        );
        let _ = dispatch::handle(&dispatcher, invocation).await;
        report.batch_ms.push(started.elapsed().as_millis() as u64);
        report.cpu_us.push((cpu_time() - cpu).as_micros() as u64);
        // The attempts start together: the quickest one is the first delivery.
        let mut first = u64::MAX;
        for (event, _) in &events {
            let Ok(Some((_, records))) = dispatcher
                .store()
                .event_with_deliveries(&event.tenant_id, &event.id)
                .await
            else {
                continue;
            };
            for r in records {
                report.deliveries += 1;
                if r.outcome.as_str() == "delivered" {
                    first = first.min(r.duration_ms);
                } else {
                    report.missed += 1;
                }
            }
        }
        report
            .first_ms
            .push(if first == u64::MAX { 0 } else { first });
    }
    report
}

/// The confined process: waits for the parent's go (it is in the cgroups
/// by then), runs the batches, prints one JSON line.
pub async fn child(args: &[String]) {
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let fan_out: usize = arg(0).parse().unwrap_or(1);
    let batches: usize = arg(1).parse().unwrap_or(1);
    // Hostile receivers are met with new connections, the worst case.
    let fresh = matches!(arg(2).as_str(), "fresh" | "hostile");
    let ports: Vec<String> = arg(3).split(',').map(str::to_owned).collect();
    let root = base64::engine::general_purpose::STANDARD
        .decode(arg(4))
        .expect("the CA, base64");
    let config = ClientConfig {
        allow_private_targets: true,
        dns_overrides: HashMap::from([(
            "localhost".to_owned(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )]),
        extra_roots: vec![rustls::pki_types::CertificateDer::from(root)],
        ..ClientConfig::default()
    };
    let mut settings = testkit::settings("bench", 1000);
    settings.url_policy.allow_private_targets = true;
    let opts = Opts {
        fan_out,
        batches,
        fresh,
        ports,
        config,
        settings,
    };
    let mut report = match arg(5).strip_prefix("dynamo:") {
        Some(table) => {
            let aws = aws_config::load_from_env().await;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            measure(|| DynamoStore::new(client.clone(), table.to_owned()), &opts).await
        }
        None => measure(MemoryStore::default, &opts).await,
    };
    report.peak_rss_kib = status_kib("VmHWM");
    println!("{}", serde_json::to_string(&report).expect("report"));
}

/// `webhooks-bench lambda-sizes [--quick]`: prints the table (Markdown) and
/// writes `target/lambda-sizes.json`. Exits non-zero if a configuration
/// could not run (an out-of-memory kill is a result, not a failure); it
/// asserts no figure (`--quick` in `scripts/test` keeps it working).
pub async fn main(quick: bool, args: &[String]) {
    let rows = match Only::from_args(args) {
        Ok(only) => run(quick, only).await,
        Err(e) => Err(e),
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("lambda-sizes: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "| store | memory | fan-out | connections | batch p50 / p99 | first delivery p50 | missed | peak RSS | CPU per delivery | warm CPU per delivery | Lambda $ per 1M events |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        match &r.failed {
            Some(why) => println!(
                "| {} | {} MB | 10 × {} | {} | failed: {why} | | | | | | |",
                r.store, r.memory_mb, r.fan_out, r.connections
            ),
            None => println!(
                "| {} | {} MB | 10 × {} | {} | {} / {} ms | {} ms | {} of {} | {:.1} MiB | {:.0} µs | {:.0} µs | {:.2} |",
                r.store,
                r.memory_mb,
                r.fan_out,
                r.connections,
                r.batch_p50_ms,
                r.batch_p99_ms,
                r.first_delivery_p50_ms,
                r.missed,
                r.deliveries,
                r.peak_rss_mib,
                r.cpu_us_per_delivery,
                r.warm_cpu_us_per_delivery,
                r.lambda_cost_per_million_events
            ),
        }
    }
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write(
        "target/lambda-sizes.json",
        serde_json::to_string_pretty(&rows).unwrap_or_default(),
    );
    let broken = rows.iter().any(|r| {
        r.failed
            .as_deref()
            .is_some_and(|f| !f.starts_with("killed"))
    });
    if broken {
        eprintln!("lambda-sizes: a configuration could not run");
        std::process::exit(1);
    }
}
