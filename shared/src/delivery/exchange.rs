//! The HTTP exchange under every delivery and token fetch: one hyper client
//! over the guarded resolver, a bounded response head, a bounded body read,
//! and errors mapped to outcomes.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::outcome::Outcome;
use super::resolver::{BlockedByPolicy, GuardedResolver};

pub const USER_AGENT: &str = concat!("ekyc-webhooks/", env!("CARGO_PKG_VERSION"));

/// The most a response head (status line and headers) may take: 16 KiB over
/// HTTP/1.1 (the connection's read buffer, hyper's floor is 8 KiB) and as
/// HTTP/2's header list. A receiver needs a few hundred bytes; hyper's
/// default (about 400 KiB per connection, held until the deadline) let 500
/// hostile receivers take 200 MB. A larger head ends the attempt as
/// `response_too_large`.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// The most headers a response may have (hyper's default is 100).
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// The client of one TLS configuration.
pub(super) type Http = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// The hyper client over the guarded resolver with `tls`: the container's
/// shared one, or one client identity's.
pub(super) fn http_client(
    allow_private_targets: bool,
    overrides: &Arc<HashMap<String, Vec<IpAddr>>>,
    tls: rustls::ClientConfig,
) -> Http {
    let resolver = GuardedResolver {
        allow_private_targets,
        overrides: Arc::clone(overrides),
    };
    let mut tcp = HttpConnector::new_with_resolver(resolver);
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .http1_max_buf_size(HEAD_LIMIT)
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http2_max_header_list_size(u32::try_from(HEAD_LIMIT).unwrap_or(u32::MAX))
        .build(connector)
}

/// At most `limit` bytes of the body, until `timer` (the delivery's deadline) fires.
pub(super) async fn read_head_of_body(
    response: Response<Incoming>,
    timer: Pin<&mut tokio::time::Sleep>,
    limit: usize,
) -> Vec<u8> {
    let mut head = Vec::new();
    let mut body = response.into_body();
    let read = async {
        while head.len() < limit {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        let room = limit - head.len();
                        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
    };
    tokio::select! {
        biased;
        () = read => {}
        () = timer => {}
    }
    head
}

/// Maps a client error to an outcome and a few words, from its source chain.
pub(super) fn classify(e: &(dyn StdError + 'static)) -> (Outcome, String) {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut innermost = String::from("request failed");
    while let Some(err) = source {
        if find_in_io::<BlockedByPolicy>(err).is_some() {
            return (Outcome::Blocked, err.to_string());
        }
        if let Some(tls) = find_in_io::<rustls::Error>(err) {
            return (Outcome::TlsError, format!("TLS: {tls}"));
        }
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large)
        {
            let why = format!(
                "the response head is over {} KiB or {MAX_RESPONSE_HEADERS} headers",
                HEAD_LIMIT / 1024
            );
            return (Outcome::ResponseTooLarge, why);
        }
        if err.source().is_none() {
            innermost = err.to_string();
        }
        source = err.source();
    }
    (Outcome::ConnectError, innermost)
}

/// `err` itself, or what it wraps when it is an `io::Error` (at any depth):
/// `io::Error::source()` skips the error it wraps, so the chain alone misses it.
fn find_in_io<'a, T: StdError + 'static>(mut err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    loop {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
        err = inner;
    }
}
