//! SQS on moto, and SQS batches as Lambda hands them to the dispatcher.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_config::load_from_env().await;
    aws_sdk_sqs::Client::new(&config)
}

/// Receives until `want` messages are in hand (or a few empty polls).
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    want: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() >= want {
            break;
        }
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        got.extend(out.messages.unwrap_or_default());
    }
    got
}

/// What the Lambda event source mapping hands the function.
pub fn sqs_event(messages: &[(String, String)]) -> SqsEvent {
    let records: Vec<_> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:events",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("valid SQS event")
}

/// An invocation with `millis` left before the Lambda deadline.
pub fn invocation(event: SqsEvent, millis: u64) -> LambdaEvent<SqsEvent> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    let mut context = Context::default();
    context.deadline = now + millis;
    context.request_id = crate::unique("invocation");
    LambdaEvent::new(event, context)
}
