//! A minimal HTTP/1.1 server on loopback, and the api handler behind it: the
//! local stack, the listener and the benchmarks use it (feature `local`; the
//! Lambda binary does not include it).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Bodies larger than this are refused before they reach a handler.
const MAX_BODY: usize = 1024 * 1024;

/// A request with its body read into memory.
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

pub type Reply = Response<Full<Bytes>>;

pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Serves `handler` on `addr` until the future is dropped.
pub async fn serve<H, F>(addr: SocketAddr, handler: H) -> Result<(), String>
where
    H: Fn(Received) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, std::convert::Infallible>(read(req, handler).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn read<H, F>(req: Request<Incoming>, handler: Arc<H>) -> Reply
where
    H: Fn(Received) -> F,
    F: Future<Output = Reply>,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| {
            v.to_str()
                .ok()
                .map(|v| (n.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    handler(Received {
        method: parts.method.to_string(),
        path_and_query,
        headers,
        body,
    })
    .await
}

/// One HTTP request through the same `lambda_http` entry the Lambda uses.
pub async fn api_call<S: shared::store::Store>(app: Arc<crate::App<S>>, req: Received) -> Reply {
    let request_id = ulid::Ulid::generate().to_string();
    let event = crate::apigw::request(
        &req.method,
        &req.path_and_query,
        &req.headers,
        Some(&req.body),
        &request_id,
    );
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("not a valid request: {e}\n"),
            );
        }
    };
    let Ok(response) = crate::handle(&app, event).await else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, "handler failed\n");
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = reply(parts.status, bytes);
    *out.headers_mut() = parts.headers;
    out
}

/// Serves the API on `addr` until the future is dropped.
pub async fn serve_api<S: shared::store::Store + 'static>(
    addr: SocketAddr,
    app: Arc<crate::App<S>>,
) -> Result<(), String> {
    serve(addr, move |req| api_call(Arc::clone(&app), req)).await
}
