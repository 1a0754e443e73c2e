//! The registration API: webhook CRUD for API Gateway HTTP API (payload 2.0).

mod allowance;
mod api_keys;
pub mod apigw;
mod app;
mod audit_log;
mod auth;
mod body;
mod dashboard;
mod edge;
pub use edge::ORIGIN_VERIFY_HEADER;
mod egress;
mod error;
mod event_types;
mod events;
mod key_cache;
#[cfg(feature = "local")]
pub mod local;
mod openapi;
mod pagination;
mod query;
mod rate;
mod redeliver;
mod response;
mod rfc3339;
mod router;
mod settings;
#[cfg(test)]
mod testing;
mod views;
mod webhooks;

pub use app::App;
pub use error::ApiError;
pub use openapi::OPENAPI_JSON;
pub use router::{handle, routes};

/// Bodies over this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
