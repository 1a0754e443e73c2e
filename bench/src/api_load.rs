//! Benchmark 5: the API through the local HTTP server, GET and POST /webhooks under load.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::App;
use futures_util::future::join_all;
use shared::api_key;
use shared::store::prelude::*;
use shared::store::{DynamoStore, MemoryStore};

use crate::measure::{Helper, percentile};

/// The server side, in a process of its own: prints `port key`.
pub async fn server(store: &str) {
    match store {
        "memory" => serve_with(MemoryStore::default(), "bench").await,
        _ => {
            let store = testkit::fresh_store().await;
            let table = store.table().to_owned();
            serve_with::<DynamoStore>(store, &table).await
        }
    }
}

async fn serve_with<S: Store + 'static>(store: S, table: &str) {
    let tenant = shared::TenantId::parse("bench").expect("tenant");
    let (key, _) =
        shared::key_lifecycle::issue(&store, tenant, "bench".into(), api_key::Scope::Full, None)
            .await
            .expect("api key");
    let mut settings = testkit::settings(table, 1_000_000);
    settings.url_policy.allow_private_targets = true;
    let app = Arc::new(App::new(store, settings));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    println!("{port} {key}");
    let _ = api::local::serve_api(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), app).await;
}

pub struct Load {
    /// Requests answered with anything but 2xx (moto sometimes fails under load).
    pub errors: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// `connections` clients, each sending one request after another for `duration`.
pub async fn load(store: &str, method: &str, duration: Duration, connections: usize) -> Load {
    let helper = Helper::spawn(&["api-server", store]);
    let mut parts = helper.first_line.split(' ');
    let (port, key) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/webhooks");
    let body = r#"{"url": "https://hooks.example.com/ekyc", "events": ["async.completed", "flowx.completed"]}"#;
    // Something to list.
    for _ in 0..20 {
        let seed = client
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body);
        let _ = seed.send().await;
    }
    let until = Instant::now() + duration;
    let start = Instant::now();
    let workers = (0..connections).map(|_| {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < until {
                let t = Instant::now();
                let request = if method == "POST" {
                    client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                } else {
                    client.get(&url)
                };
                let response = request.bearer_auth(&key).send().await;
                if response.is_ok_and(|r| r.status().is_success()) {
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }
    });
    let results = join_all(workers).await;
    let errors = results.iter().map(|(_, e)| e).sum();
    let mut latencies: Vec<u64> = results.into_iter().flat_map(|(l, _)| l).collect();
    let wall = start.elapsed();
    Load {
        errors,
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
        p50_us: percentile(&mut latencies, 50.0),
        p99_us: percentile(&mut latencies, 99.0),
    }
}
