//! Event dispatch: SQS batches in, one signed POST per (event, subscribed webhook) out.

mod batch;
mod handler;
pub mod local;

pub use handler::{Dispatcher, SAFETY_MARGIN, handle};
