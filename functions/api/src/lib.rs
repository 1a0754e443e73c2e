//! The registration API: webhook CRUD for API Gateway HTTP API (payload 2.0).

mod allowance;
mod api_keys;
pub mod apigw;
mod auth;
mod body;
mod dashboard;
mod error;
mod events;
mod key_cache;
#[cfg(feature = "local")]
pub mod local;
mod openapi;
mod pagination;
mod recover;
mod response;
mod router;
mod stats;
mod test_event;
#[cfg(test)]
mod testing;
mod views;
mod webhooks;

pub use error::ApiError;
pub use openapi::OPENAPI_JSON;
pub use router::{App, handle, routes};

/// Bodies over this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
