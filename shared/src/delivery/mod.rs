//! One delivery: one signed HTTP POST to a webhook, under a hard deadline,
//! through a client that never connects to a forbidden address.

mod client;
mod exchange;
mod lazy;
mod oauth;
mod outcome;
mod resolver;

pub use client::{ClientConfig, ClientError, DeliveryClient, Payload, Purpose, To};
pub use exchange::{HEAD_LIMIT, MAX_RESPONSE_HEADERS, USER_AGENT};
pub use lazy::LazyClient;
pub use outcome::{Attempt, Outcome};
