//! The receiver that benchmarks deliver to, run in a process of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use api::local::{reply, serve};
use hyper::StatusCode;

/// `ok` answers 200 at once, `hang` never answers, `slow:<ms>` answers 200
/// after that long, `bighead:<bytes>` sends a 200 head of that size at once
/// and its body 4 s later (a hostile receiver holding the client's buffers).
pub async fn run(mode: &str) {
    if let Some(bytes) = mode.strip_prefix("bighead:").and_then(|b| b.parse().ok()) {
        return big_head(bytes).await;
    }
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

/// Answers every request with a head of `bytes` bytes, then holds the body
/// back for 4 s: each delivery keeps its connection and read buffer alive.
async fn big_head(bytes: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("addr").port());
    let start = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-padding: ";
    let padding = "a".repeat(bytes.saturating_sub(start.len() + 4));
    let head = format!("{start}{padding}\r\n\r\n");
    let head: &'static [u8] = Box::leak(head.into_bytes().into_boxed_slice());
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = vec![0u8; 64 * 1024];
            // One request per connection: enough of it to have been sent.
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
            let _ = socket.write_all(b"ok").await;
        });
    }
}
