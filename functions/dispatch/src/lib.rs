//! Event dispatch: SQS batches in, one signed POST per (event, subscribed webhook) out.

mod attempt;
mod batch;
mod deadline;
mod deliver;
mod dispatcher;
mod handler;
mod handover;
mod lane;
pub mod local;
pub mod metrics;
mod pace;
mod plan;
mod recover;
mod schedule;
mod streak;
#[cfg(test)]
mod testing;
mod throttle;
mod unfinished;
mod waiting;

pub use deadline::{RECORD_MARGIN, SAFETY_MARGIN};
pub use dispatcher::Dispatcher;
pub use handler::handle;
