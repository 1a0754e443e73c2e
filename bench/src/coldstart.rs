//! Benchmark 4, cold start: from exec of a release binary to its first request for work
//! at a Lambda Runtime API served here on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api::local::{reply, serve};
use hyper::StatusCode;
use tokio::sync::mpsc;

use crate::measure::percentile;

pub struct ColdStart {
    pub binary: String,
    pub p50_us: u64,
    pub p90_us: u64,
    pub size_bytes: u64,
}

/// Starts each binary `runs` times, in turns (floor, api, dispatch, floor, ...)
/// so that whatever else the machine does weighs on each alike; each run ends
/// at the binary's first `GET .../invocation/next`.
pub async fn measure(binaries: &[PathBuf], runs: usize) -> Vec<ColdStart> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let server = tokio::spawn(serve(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        move |req| {
            let tx = tx.clone();
            async move {
                if req.path_and_query.ends_with("/runtime/invocation/next") {
                    let _ = tx.send(Instant::now());
                    // Never hand out work: the process is killed next.
                    std::future::pending::<()>().await;
                }
                reply(StatusCode::ACCEPTED, "")
            }
        },
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut samples = vec![Vec::with_capacity(runs); binaries.len()];
    for _ in 0..runs {
        for (binary, samples) in binaries.iter().zip(&mut samples) {
            samples.push(once(binary, port, &mut rx).await);
        }
    }
    server.abort();
    binaries
        .iter()
        .zip(samples)
        .map(|(binary, mut samples)| ColdStart {
            binary: binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            p50_us: percentile(&mut samples, 50.0),
            p90_us: percentile(&mut samples, 90.0),
            size_bytes: std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0),
        })
        .collect()
}

/// One start of `binary`: microseconds from exec to its first request for work.
async fn once(binary: &Path, port: u16, rx: &mut mpsc::UnboundedReceiver<Instant>) -> u64 {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("TABLE_NAME", "bench")
        .env("EVENTS_QUEUE_URL", "http://127.0.0.1:1/queue")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let reached = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    let _ = child.kill();
    let _ = child.wait();
    match reached {
        Ok(Some(at)) => at.duration_since(start).as_micros() as u64,
        _ => panic!("{} never asked for work", binary.display()),
    }
}
