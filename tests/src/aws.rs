//! SQS on moto, and SQS batches as Lambda hands them to the dispatcher.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::LambdaEvent;

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
    dispatch::local::sqs_event(messages.iter().cloned())
}

/// An invocation with `millis` left before the Lambda deadline.
pub fn invocation(event: SqsEvent, millis: u64) -> LambdaEvent<SqsEvent> {
    dispatch::local::invocation(event, millis, &crate::unique("invocation"))
}
