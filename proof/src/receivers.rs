//! Real HTTP receivers on 127.0.0.1, one listener per kind of answer. Each
//! webhook points at `/hooks/<webhook id>` on the receiver of its kind; every
//! request is recorded by (path, `webhook-id` header) with the time it came.
//! Tokens are compared in memory, never printed; bodies are read and dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 200 at once.
    Ok,
    /// 500 at once.
    Error,
    /// 200 after 1 to 2 s.
    Slow,
    /// Never answers: the 5 s delivery deadline ends it.
    Hang,
    /// 200 at once, but after 1.5 s while the run has it slowed
    /// ([`Recorder::set_flip_slow`]): its webhooks move to the slow lane and back.
    Flip,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Ok, Kind::Error, Kind::Slow, Kind::Hang, Kind::Flip];
}

/// Every request the receivers saw.
#[derive(Default)]
pub struct Recorder {
    /// The `Authorization` value each webhook path must carry.
    expected_auth: Mutex<HashMap<String, String>>,
    /// (webhook id from the path, `webhook-id` header) → arrival times.
    seen: Mutex<HashMap<(String, String), Vec<Instant>>>,
    pub total: AtomicU64,
    pub wrong_auth: AtomicU64,
    pub no_event_id: AtomicU64,
    pub unknown_path: AtomicU64,
    in_flight: AtomicU64,
    /// Whether the `Flip` receiver answers slowly now.
    flip_slow: std::sync::atomic::AtomicBool,
}

impl Recorder {
    pub fn expect(&self, webhook_id: &str, token: &str) {
        if let Ok(mut m) = self.expected_auth.lock() {
            m.insert(webhook_id.to_owned(), format!("Basic {token}"));
        }
    }

    pub fn set_flip_slow(&self, slow: bool) {
        self.flip_slow.store(slow, Ordering::SeqCst);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> HashMap<(String, String), Vec<Instant>> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn record(&self, path: &str, event_id: Option<&str>, auth: Option<&[u8]>) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let Some(webhook) = path.strip_prefix("/hooks/") else {
            self.unknown_path.fetch_add(1, Ordering::SeqCst);
            return;
        };
        let auth_ok = self
            .expected_auth
            .lock()
            .ok()
            .and_then(|m| m.get(webhook).map(|want| Some(want.as_bytes()) == auth));
        match auth_ok {
            None => {
                self.unknown_path.fetch_add(1, Ordering::SeqCst);
            }
            Some(false) => {
                self.wrong_auth.fetch_add(1, Ordering::SeqCst);
            }
            Some(true) => {}
        }
        let Some(event_id) = event_id else {
            self.no_event_id.fetch_add(1, Ordering::SeqCst);
            return;
        };
        if let Ok(mut m) = self.seen.lock() {
            m.entry((webhook.to_owned(), event_id.to_owned()))
                .or_default()
                .push(Instant::now());
        }
    }
}

/// Counts a request in flight until dropped (answered, or abandoned by the client).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts one receiver per kind; returns their addresses.
pub async fn start(recorder: Arc<Recorder>) -> std::io::Result<HashMap<Kind, SocketAddr>> {
    crate::serve::each(Kind::ALL, recorder, answer).await
}

async fn answer(
    req: Request<Incoming>,
    kind: Kind,
    recorder: Arc<Recorder>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let (event_id, auth) = crate::serve::delivery_headers(&req);
    recorder.record(&path, event_id.as_deref(), auth.as_deref());
    recorder.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&recorder.in_flight);
    // Read the body (and drop it): the payload is never kept or printed.
    let _ = req.into_body().collect().await;
    let status = match kind {
        Kind::Ok => 200,
        Kind::Error => 500,
        Kind::Slow => {
            // 1 to 2 s, fixed per event.
            let spread = event_id
                .as_deref()
                .map(|id| {
                    id.bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                })
                .unwrap_or(0)
                % 1000;
            tokio::time::sleep(Duration::from_millis(1000 + spread)).await;
            200
        }
        Kind::Hang => {
            // Well past the 5 s deadline; the client gives up first.
            tokio::time::sleep(Duration::from_secs(20)).await;
            200
        }
        Kind::Flip => {
            // Past the 1 s slow threshold, well within the deadline.
            if recorder.flip_slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            200
        }
    };
    let mut response = Response::new(Full::new(Bytes::from_static(if status == 200 {
        b"ok"
    } else {
        b"boom"
    })));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}
