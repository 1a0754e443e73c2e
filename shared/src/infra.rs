//! The infrastructure the code assumes. template.yaml declares the same, the
//! local stack creates it from here, and a test keeps the two from drifting.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

/// The dispatch function's timeout: just above the 5 s delivery deadline,
/// with room before it for the batch's reads (a cold start's first request
/// opens a TLS connection) and after it for up to 100 records written at
/// once, so that neither side cuts an attempt short of its 5 s.
pub const DISPATCH_TIMEOUT_SECS: u64 = 7;
/// AWS's guidance for Lambda event sources: at least six times the function timeout.
pub const QUEUE_VISIBILITY_TIMEOUT_SECS: u64 = 6 * DISPATCH_TIMEOUT_SECS;
/// Messages per dispatch invocation.
pub const SQS_BATCH_SIZE: usize = 10;
/// Messages per slow-lane invocation: each may wait the whole 5 s, all at
/// once, so a large batch costs no more time than a small one.
pub const SLOW_BATCH_SIZE: usize = 100;
/// How long the slow lane's event source gathers a batch.
pub const SLOW_BATCHING_WINDOW_SECS: u64 = 1;
/// Slow-lane invocations at once (template default `SlowLaneMaxConcurrency`).
pub const DEFAULT_SLOW_CONCURRENCY: usize = 10;
/// Main-lane invocations at once (template default `DispatchMaxConcurrency`).
pub const DEFAULT_DISPATCH_CONCURRENCY: usize = 10;
/// Receives before SQS moves a message to the dead-letter queue (template default).
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
/// 14 days, the SQS maximum.
pub const DLQ_RETENTION_SECS: u64 = 14 * 24 * 3600;
/// How long both lanes keep a message: 4 days (SQS's default), set
/// explicitly so that the template and the code agree.
pub const QUEUE_RETENTION_SECS: u64 = 4 * 24 * 3600;
/// The largest message either lane takes: 256 KiB, set explicitly (new SQS
/// queues now default to 1 MiB, which a batch of 10 would take over Lambda's
/// 6 MB payload). An event leaves room to travel again inside a targeted
/// message: [`crate::event::MAX_EVENT_BYTES`].
pub const QUEUE_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Queue URLs of the events queue, the slow lane's queue and their
/// dead-letter queue.
pub struct Queues {
    pub events: String,
    pub slow: String,
    pub dead_letter: String,
}

/// Creates the events queue, the slow lane's queue (`<name>-slow`) and their
/// dead-letter queue as template.yaml does.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> Result<Queues, String> {
    let err = |e: aws_sdk_sqs::Error| aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
    let dead_letter = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .send()
        .await
        .map_err(|e| err(e.into()))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(e.into()))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes returned no ARN")?;
    let redrive = json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count});
    let lane = |queue_name: String| {
        sqs.create_queue()
            .queue_name(queue_name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                QUEUE_VISIBILITY_TIMEOUT_SECS.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                QUEUE_RETENTION_SECS.to_string(),
            )
            .attributes(
                QueueAttributeName::MaximumMessageSize,
                QUEUE_MAX_MESSAGE_BYTES.to_string(),
            )
            .send()
    };
    let events = lane(name.to_owned())
        .await
        .map_err(|e| err(e.into()))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let slow = lane(format!("{name}-slow"))
        .await
        .map_err(|e| err(e.into()))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    Ok(Queues {
        events,
        slow,
        dead_letter,
    })
}
