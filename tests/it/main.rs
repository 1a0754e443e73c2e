//! The integration tests: DynamoDB and SQS on moto, real HTTP receivers on
//! loopback. One binary, one module per area: `scripts/test -p webhooks-tests
//! --test it <module>::` runs one area (`api_calls::`, `recovery::`, ...).
//! `tests/logs.rs` stays a binary of its own: it installs the process-wide
//! log subscriber.

#[path = "../api.rs"]
mod api_calls;
#[path = "../audit.rs"]
mod audit;
#[path = "../client_auth.rs"]
mod client_auth;
#[path = "../custom_headers.rs"]
mod custom_headers;
#[path = "../data_protection.rs"]
mod data_protection;
#[path = "../dispatch.rs"]
mod dispatch_batches;
#[path = "../hostile_receivers.rs"]
mod hostile_receivers;
#[path = "../lifecycle.rs"]
mod lifecycle;
#[path = "../openapi.rs"]
mod openapi;
#[path = "../recovery.rs"]
mod recovery;
#[path = "../security.rs"]
mod security;
#[path = "../store/mod.rs"]
mod store;
#[path = "../template.rs"]
mod template;
#[path = "../test_event.rs"]
mod test_event;
#[path = "../tls_receivers.rs"]
mod tls_receivers;
