//! What every write shares: a conditional write's outcome, a cancelled
//! transaction's reason, transactions sent again on a conflict, and the
//! rounds of a batch request sent again for what DynamoDB left unprocessed.

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::types::CancellationReason;

use super::backend;
use crate::store::{Conditional, StoreError};

/// A conditional write's result: `Some` of its output when written, `None`
/// when its condition did not hold.
pub(super) fn conditional<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<Option<O>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(e) => Err(backend(e)),
    }
}

/// A conditional write whose output is not needed: whether it was applied.
pub(super) fn applied<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<Conditional, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    Ok(match conditional(result)? {
        Some(_) => Conditional::Applied,
        None => Conditional::Refused,
    })
}

/// What sending a transaction came to.
pub(super) type Sent = Result<(), SdkError<TransactWriteItemsError, HttpResponse>>;

/// The first item of a cancelled transaction whose condition did not hold;
/// any other failure is the store's error.
pub(super) fn failed_condition(sent: Sent) -> Result<Option<usize>, StoreError> {
    let Err(e) = sent else { return Ok(None) };
    let failed = match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => None,
    };
    match failed {
        Some(i) => Ok(Some(i)),
        None => Err(backend(e)),
    }
}

/// Whether a cancelled transaction collided with another one on the same
/// item (the tenant's counter); the SDK does not retry these itself.
fn cancelled_by_conflict(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
}

/// Sends a transaction, again (up to 5 times, with a jittered pause) while
/// it only collides with concurrent ones, e.g. two creates of one tenant.
pub(super) async fn transact(send: impl Fn() -> TransactWriteItemsFluentBuilder) -> Sent {
    let mut attempt = 0u32;
    loop {
        let e = match send().send().await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let conflict = matches!(
            e.as_service_error(),
            Some(TransactWriteItemsError::TransactionCanceledException(c)) if cancelled_by_conflict(c.cancellation_reasons())
        );
        attempt += 1;
        if !conflict || attempt >= 5 {
            return Err(e);
        }
        crate::random::pause(10 * u64::from(attempt), 20).await;
    }
}

/// The rounds of a batch request (`BatchGetItem`, `BatchWriteItem`) sent
/// again for the keys or items DynamoDB leaves unprocessed (throttling):
/// a growing pause before each, at most [`Rounds::MAX`] in all.
pub(super) struct Rounds {
    done: u32,
    what: &'static str,
}

impl Rounds {
    pub const MAX: u32 = 8;

    pub fn new(what: &'static str) -> Self {
        Self { done: 0, what }
    }

    /// Waits for the next round; an error once [`Rounds::MAX`] are done.
    pub async fn next(&mut self) -> Result<(), StoreError> {
        if self.done == Self::MAX {
            return Err(StoreError::Backend(format!(
                "{} left items unprocessed {} times",
                self.what,
                Self::MAX
            )));
        }
        if self.done > 0 {
            tokio::time::sleep(Duration::from_millis(20 << self.done)).await;
        }
        self.done += 1;
        Ok(())
    }
}
