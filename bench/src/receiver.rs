//! The receiver that benchmarks deliver to, run in a process of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use api::local::{reply, serve};
use hyper::StatusCode;

/// `ok` answers 200 at once, `hang` never answers, `slow:<ms>` answers 200 after that long.
pub async fn run(mode: &str) {
    let delay: Option<Duration> = match mode {
        "ok" => Some(Duration::ZERO),
        "hang" => None,
        other => other
            .strip_prefix("slow:")
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    println!("{port}");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let _ = serve(addr, move |_req| async move {
        match delay {
            Some(d) if d.is_zero() => {}
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        reply(StatusCode::OK, "")
    })
    .await;
}
