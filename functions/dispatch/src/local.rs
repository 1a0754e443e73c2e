//! What Lambda's SQS event source mapping hands the function, built locally:
//! for the local poller and the tests.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};

/// An SQS event of (message id, body) pairs, from no queue in particular.
pub fn sqs_event(messages: impl IntoIterator<Item = (String, String)>) -> SqsEvent {
    sqs_event_from(None, messages)
}

/// An SQS event of (message id, body) pairs received from the queue at
/// `queue_url`: each record names the queue in its `eventSourceARN`, as
/// Lambda's do (the region and account are placeholders; the dispatcher
/// reads the queue's name).
pub fn sqs_event_from(
    queue_url: Option<&str>,
    messages: impl IntoIterator<Item = (String, String)>,
) -> SqsEvent {
    let arn = queue_url
        .and_then(|url| url.trim_end_matches('/').rsplit('/').next())
        .map(|name| format!("arn:aws:sqs:local:000000000000:{name}"));
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|(id, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(id);
            m.body = Some(body);
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = arn.clone();
            m
        })
        .collect();
    event
}

/// An invocation whose deadline is `millis` from now, as the runtime sets it.
pub fn invocation(event: SqsEvent, millis: u64, request_id: &str) -> LambdaEvent<SqsEvent> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut context = Context::default();
    context.deadline = u64::try_from(now).unwrap_or(0) + millis;
    context.request_id = request_id.to_owned();
    LambdaEvent::new(event, context)
}
