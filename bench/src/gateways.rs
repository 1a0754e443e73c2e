//! Receivers behind a gateway: one webhook over TLS with the Basic token, with
//! a client certificate (mutual TLS), and with OAuth2 client credentials (a
//! token endpoint that takes 50 ms, as an identity provider does). The
//! figures a customer feels: the first delivery of a container (its own
//! connection pool and handshake, the token fetch), and the attempts after it.

use std::time::{Duration, Instant};

use serde_json::json;
use shared::EventType::AsyncCompleted;
use shared::Status::Active;
use shared::client_tls::{ClientTls, ClientTlsInput};
use shared::oauth2::{OAuth2, OAuth2Input};
use shared::store::MemoryStore;
use shared::store::prelude::*;
use shared::webhook::now_utc;
use shared::{UrlPolicy, Webhook};
use testkit::receiver::{Receiver, TlsAnswer};
use testkit::tls::TestCa;
use testkit::{add_webhook, envelope};

use crate::fanout::BATCH;
use crate::measure::percentile;

/// How the webhook meets its gateway.
#[derive(Clone, Copy)]
pub enum Auth {
    Basic,
    MutualTls,
    OAuth2,
}

impl Auth {
    pub const ALL: [Auth; 3] = [Auth::Basic, Auth::MutualTls, Auth::OAuth2];

    pub fn name(self) -> &'static str {
        match self {
            Auth::Basic => "Basic token",
            Auth::MutualTls => "client certificate",
            Auth::OAuth2 => "OAuth2",
        }
    }
}

pub struct Run {
    /// The container's first delivery, from the invocation to its end.
    pub first: Duration,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub token_fetches: usize,
}

/// `events` events to one webhook, in batches of 10, after a first one alone.
pub async fn run(auth: Auth, events: usize) -> Run {
    let (server, clients) = (TestCa::generate(), TestCa::generate());
    let rx = match auth {
        Auth::MutualTls => {
            let acceptor = server.acceptor_requiring_clients_of(&clients);
            Receiver::start_tls_with(acceptor, TlsAnswer::Ok).await
        }
        _ => Receiver::start_tls(&server).await,
    };
    let token_endpoint = Receiver::start_tls_answering(
        &server,
        TlsAnswer::Json {
            status: 200,
            body: r#"{"access_token":"at-bench","token_type":"Bearer","expires_in":3600}"#.into(),
            delay: Duration::from_millis(50),
        },
    )
    .await;
    let store = MemoryStore::default();
    let before = add_webhook(
        &store,
        "bench",
        &rx.https_url("/hook"),
        &[AsyncCompleted],
        Active,
    )
    .await;
    let mut webhook = before.clone();
    match auth {
        Auth::Basic => {}
        Auth::MutualTls => {
            let id = clients.client_identity("relay.bench.example");
            let input = ClientTlsInput {
                certificate: id.certificate_pem,
                private_key: id.private_key_pem,
                ca: None,
            };
            webhook.client_tls = Some(ClientTls::parse(&input, now_utc()).expect("identity"));
        }
        Auth::OAuth2 => {
            let input = OAuth2Input {
                token_url: token_endpoint.https_url("/token"),
                client_id: "bench".into(),
                client_secret: Some("bench-client-secret".into()),
                scope: None,
                auth_method: None,
            };
            let policy = UrlPolicy {
                allow_private_targets: true,
            };
            webhook.oauth2 = Some(OAuth2::resolve(&input, None, policy).expect("credentials"));
        }
    }
    save(&store, &before, &mut webhook).await;
    let d = testkit::tls::dispatcher_trusting(&server, store);

    let made: Vec<_> = (0..=events)
        .map(|i| envelope("bench", AsyncCompleted, json!({"n": i})))
        .collect();
    let messages: Vec<(String, String)> = made
        .iter()
        .enumerate()
        .map(|(i, (_, body))| (format!("m{i}"), body.clone()))
        .collect();
    let (first, rest) = messages.split_at(1);
    let started = Instant::now();
    invoke(&d, first).await;
    let first = started.elapsed();
    for batch in rest.chunks(BATCH) {
        invoke(&d, batch).await;
    }
    assert_eq!(rx.requests().len(), events + 1, "every delivery arrived");
    let mut durations = Vec::with_capacity(events);
    for (event, _) in &made[1..] {
        let (_, records) = d
            .store()
            .event_with_deliveries(&event.tenant_id, &event.id)
            .await
            .expect("read")
            .expect("kept");
        durations.extend(records.iter().map(|r| r.duration_ms));
    }
    Run {
        first,
        p50_ms: percentile(&mut durations, 50.0),
        p99_ms: percentile(&mut durations, 99.0),
        token_fetches: token_endpoint.requests().len(),
    }
}

/// Writes the webhook as changed (as a PATCH would).
async fn save(store: &MemoryStore, before: &Webhook, after: &mut Webhook) {
    after.updated_at += time::Duration::milliseconds(1);
    let entry = shared::audit::operator::updated(before, after);
    store
        .update_webhook(after, before.updated_at, &entry)
        .await
        .expect("update");
}

async fn invoke(d: &dispatch::Dispatcher<MemoryStore>, batch: &[(String, String)]) {
    let event = dispatch::local::sqs_event(batch.iter().cloned());
    let invocation =
        dispatch::local::invocation(event, shared::infra::DISPATCH_TIMEOUT_SECS * 1000, "bench");
    let response = dispatch::handle(d, invocation).await.expect("handler");
    assert!(response.batch_item_failures.is_empty(), "no batch failure");
}
