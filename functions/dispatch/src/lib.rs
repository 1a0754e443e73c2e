//! Event dispatch: SQS batches in, one signed POST per (event, subscribed webhook) out.

mod attempt;
mod batch;
mod dispatcher;
mod handler;
mod lane;
pub mod local;
pub mod metrics;

pub use attempt::RECORD_MARGIN;
pub use dispatcher::Dispatcher;
pub use handler::{SAFETY_MARGIN, handle};
