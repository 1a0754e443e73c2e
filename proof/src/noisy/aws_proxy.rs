//! A counting HTTP reverse proxy between the stack under test and moto. The
//! child's AWS traffic comes here (its `AWS_ENDPOINT_URL*` point at it); each
//! request goes to the moto of its service, chosen by the `X-Amz-Target`
//! prefix (`DynamoDB_20120810.` or `AmazonSQS.`), and is recorded with its
//! action and the time moto took to answer it (body included). Nothing of a
//! request or an answer is kept beyond the action's name.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Which moto a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Dynamodb,
    Sqs,
    /// No known `X-Amz-Target` (sent to the SQS moto).
    Other,
}

/// One request the child made.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the request reached the proxy.
    pub at: Instant,
    pub service: Service,
    /// `PutItem`, `ReceiveMessage`, ...
    pub action: String,
    /// From forwarding the request to having moto's whole answer.
    pub micros: u64,
    /// moto answered (any status); false when the proxy could not reach it.
    pub answered: bool,
}

/// The moto of each service.
#[derive(Clone, Copy, Debug)]
pub struct Upstreams {
    pub dynamodb: SocketAddr,
    pub sqs: SocketAddr,
}

/// The running proxy: its address and what it recorded.
pub struct AwsProxy {
    pub addr: SocketAddr,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl AwsProxy {
    /// Listens on a free loopback port and forwards to `upstreams`.
    pub async fn start(upstreams: Upstreams) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&samples);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                let recorded = Arc::clone(&recorded);
                tokio::spawn(serve(inbound, upstreams, recorded));
            }
        });
        Ok(Self { addr, samples })
    }

    /// The requests that reached the proxy in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|x| x.at >= from && x.at < to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `DynamoDB_20120810.PutItem` → (DynamoDB, "PutItem").
pub fn classify(target: &str) -> (Service, String) {
    match target.split_once('.') {
        Some((prefix, action)) if prefix.starts_with("DynamoDB") => {
            (Service::Dynamodb, action.to_owned())
        }
        Some(("AmazonSQS", action)) => (Service::Sqs, action.to_owned()),
        _ => (Service::Other, "unknown".to_owned()),
    }
}

/// The upstream connections of one inbound connection, one per moto.
type Senders = Arc<tokio::sync::Mutex<HashMap<SocketAddr, SendRequest<Full<Bytes>>>>>;

async fn serve(inbound: TcpStream, upstreams: Upstreams, samples: Arc<Mutex<Vec<Sample>>>) {
    let senders: Senders = Arc::default();
    let service = service_fn(move |req: Request<Incoming>| {
        let (senders, samples) = (Arc::clone(&senders), Arc::clone(&samples));
        async move { Ok::<_, Infallible>(forward(req, upstreams, senders, samples).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(inbound), service)
        .await;
}

async fn forward(
    req: Request<Incoming>,
    upstreams: Upstreams,
    senders: Senders,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> Response<Full<Bytes>> {
    let at = Instant::now();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (service, action) = classify(target);
    let upstream = match service {
        Service::Dynamodb => upstreams.dynamodb,
        Service::Sqs | Service::Other => upstreams.sqs,
    };
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad_gateway(),
    };
    let started = Instant::now();
    let answer = send(&senders, upstream, parts, body).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Ok(mut s) = samples.lock() {
        s.push(Sample {
            at,
            service,
            action,
            micros,
            answered: answer.is_some(),
        });
    }
    answer.unwrap_or_else(bad_gateway)
}

fn bad_gateway() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = http::StatusCode::BAD_GATEWAY;
    r
}

/// Sends on this inbound connection's connection to `upstream`, opening a new
/// one when there is none or moto closed it; once more on a fresh connection
/// when the request could not be sent at all.
async fn send(
    senders: &Senders,
    upstream: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
) -> Option<Response<Full<Bytes>>> {
    let mut senders = senders.lock().await;
    for _ in 0..2 {
        let pooled = match senders.remove(&upstream) {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match pooled {
            Some(s) => s,
            None => connect(upstream).await?,
        };
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        match sender.send_request(req).await {
            Ok(resp) => {
                let (head, incoming) = resp.into_parts();
                let bytes = incoming.collect().await.ok()?.to_bytes();
                senders.insert(upstream, sender);
                return Some(Response::from_parts(head, Full::new(bytes)));
            }
            // Not sent: the connection closed under it. Try a new one.
            Err(e) if e.is_canceled() || e.is_closed() => continue,
            Err(_) => return None,
        }
    }
    None
}

async fn connect(upstream: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_target_prefix() {
        assert_eq!(
            classify("DynamoDB_20120810.PutItem"),
            (Service::Dynamodb, "PutItem".to_owned())
        );
        assert_eq!(
            classify("AmazonSQS.ReceiveMessage"),
            (Service::Sqs, "ReceiveMessage".to_owned())
        );
        assert_eq!(classify(""), (Service::Other, "unknown".to_owned()));
    }
}
