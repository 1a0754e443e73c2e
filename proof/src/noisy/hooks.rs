//! The receivers: real HTTP on 127.0.0.1, one listener per behaviour. A
//! webhook points at `/hooks/<label>`; every request is recorded with its
//! arrival time, its label, its event id (the `webhook-id` header, checked
//! against the body's `id`) and whether it carried the webhook's own
//! `Authorization: Basic <token>`. Tokens and bodies are never printed.

use std::collections::HashMap;
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
pub enum Behaviour {
    /// 200 at once.
    Ok,
    /// Reads the request and never answers (the connection is dropped, with
    /// no answer, after [`HANG_SECS`], long after the 5 s delivery deadline).
    Hang,
    /// 200 after 3 s.
    Slow3,
    /// 200 at once until [`Hooks::break_at`]'s moment, then as [`Self::Hang`]
    /// (a deploy gone wrong, a database outage).
    Breaks,
}

impl Behaviour {
    pub const ALL: [Behaviour; 4] = [
        Behaviour::Ok,
        Behaviour::Hang,
        Behaviour::Slow3,
        Behaviour::Breaks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Ok => "ok",
            Behaviour::Hang => "hang",
            Behaviour::Slow3 => "slow3",
            Behaviour::Breaks => "breaks",
        }
    }
}

/// How long a hanging receiver holds a request before dropping it unanswered.
const HANG_SECS: u64 = 30;

/// One request a receiver saw.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at: Instant,
    /// The path after `/hooks/`.
    pub label: String,
    /// The `webhook-id` header.
    pub event_id: Option<String>,
}

/// Everything the receivers saw.
#[derive(Default)]
pub struct Hooks {
    /// label → the `Authorization` value its requests must carry.
    expected: Mutex<HashMap<String, String>>,
    arrivals: Mutex<Vec<Arrival>>,
    /// Requests whose `Authorization` was not their webhook's.
    pub wrong_auth: AtomicU64,
    /// Requests to a path no webhook was registered with.
    pub unknown_path: AtomicU64,
    /// Requests whose body `id` was missing or not the `webhook-id` header.
    pub id_mismatch: AtomicU64,
    /// When the `breaks` receiver stops answering (never until set).
    breaks_at: Mutex<Option<Instant>>,
}

impl Hooks {
    /// Requests to `/hooks/<label>` must carry `Basic <token>`.
    pub fn expect(&self, label: &str, token: &str) {
        if let Ok(mut m) = self.expected.lock() {
            m.insert(label.to_owned(), format!("Basic {token}"));
        }
    }

    /// The `breaks` receiver answers at once before `at`, and hangs from it.
    pub fn break_at(&self, at: Instant) {
        if let Ok(mut b) = self.breaks_at.lock() {
            *b = Some(at);
        }
    }

    fn broken(&self, now: Instant) -> bool {
        self.breaks_at
            .lock()
            .ok()
            .and_then(|b| *b)
            .is_some_and(|at| now >= at)
    }

    /// The requests that arrived in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|x| x.at >= from && x.at < to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The event ids of the requests to `/hooks/<label>` from `from` on,
    /// one per request.
    pub fn ids_of(&self, label: &str, from: Instant) -> Vec<String> {
        self.arrivals
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|x| x.at >= from && x.label == label)
                    .filter_map(|x| x.event_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn record(&self, arrival: Arrival, auth: Option<&[u8]>) {
        let auth_ok = self.expected.lock().ok().and_then(|m| {
            m.get(&arrival.label)
                .map(|want| Some(want.as_bytes()) == auth)
        });
        match auth_ok {
            None => {
                self.unknown_path.fetch_add(1, Ordering::SeqCst);
            }
            Some(false) => {
                self.wrong_auth.fetch_add(1, Ordering::SeqCst);
            }
            Some(true) => {}
        }
        if let Ok(mut a) = self.arrivals.lock() {
            a.push(arrival);
        }
    }
}

/// Starts one receiver per behaviour; returns their addresses.
pub async fn start(hooks: Arc<Hooks>) -> std::io::Result<HashMap<Behaviour, SocketAddr>> {
    crate::serve::each(Behaviour::ALL, hooks, answer).await
}

async fn answer(
    req: Request<Incoming>,
    behaviour: Behaviour,
    hooks: Arc<Hooks>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let at = Instant::now();
    let label = req
        .uri()
        .path()
        .strip_prefix("/hooks/")
        .unwrap_or("")
        .to_owned();
    let (event_id, auth) = crate::serve::delivery_headers(&req);
    // The body is read for its `id` only, then dropped.
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body_id = body
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
    if body_id.is_none() || body_id != event_id {
        hooks.id_mismatch.fetch_add(1, Ordering::SeqCst);
    }
    hooks.record(
        Arrival {
            at,
            label,
            event_id,
        },
        auth.as_deref(),
    );
    let hangs = match behaviour {
        Behaviour::Ok => false,
        Behaviour::Slow3 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            false
        }
        Behaviour::Hang => true,
        Behaviour::Breaks => hooks.broken(at),
    };
    if hangs {
        tokio::time::sleep(Duration::from_secs(HANG_SECS)).await;
        // An error closes the connection without an answer.
        return Err(std::io::Error::other("hung up"));
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}
