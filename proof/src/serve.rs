//! One HTTP/1.1 receiver per kind of answer on 127.0.0.1, shared by the
//! proof and the noisy-neighbour benchmark.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Binds a listener per kind and serves each request with
/// `answer(request, kind, state)`; returns the addresses.
pub async fn each<K, S, E, F, Fut>(
    kinds: impl IntoIterator<Item = K>,
    state: Arc<S>,
    answer: F,
) -> std::io::Result<HashMap<K, SocketAddr>>
where
    K: Copy + Eq + Hash + Send + Sync + 'static,
    S: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(Request<Incoming>, K, Arc<S>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
{
    let mut addrs = HashMap::new();
    for kind in kinds {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        addrs.insert(kind, listener.local_addr()?);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, kind, Arc::clone(&state)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Ok(addrs)
}

/// A delivery's `webhook-id` and `Authorization` (compared in memory, never printed).
pub fn delivery_headers(req: &Request<Incoming>) -> (Option<String>, Option<Vec<u8>>) {
    let event_id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    (event_id, auth)
}
