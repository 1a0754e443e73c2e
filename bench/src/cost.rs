//! Benchmark 6: what one million events, each delivered to one webhook, cost on AWS.

/// List prices, us-east-1, as published by AWS (checked 2026-11-25); update
/// them here when AWS changes them.
pub const PRICES_DATE: &str = "2026-11-25";
/// The template's `DispatchMemorySize` default.
pub const DISPATCH_MEMORY_MB: f64 = 512.0;
const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
const DYNAMODB_PER_MILLION_WRU: f64 = 0.625;
const DYNAMODB_PER_MILLION_RRU: f64 = 0.125;
const SQS_PER_MILLION_REQUESTS: f64 = 0.40;
/// The reference: EventBridge API destinations, per million invocations.
pub const EVENTBRIDGE_API_DESTINATIONS_PER_MILLION: f64 = 0.20;

pub struct Bill {
    pub lambda: f64,
    pub dynamodb: f64,
    pub sqs: f64,
}

impl Bill {
    pub fn total(&self) -> f64 {
        self.lambda + self.dynamodb + self.sqs
    }
}

/// `batch_ms`: measured wall time of one invocation (10 events);
/// `requests_per_delivery`: measured DynamoDB requests per delivery.
pub fn per_million_events(batch_ms: f64, memory_mb: f64) -> Bill {
    let events = 1_000_000.0;
    let invocations = events / 10.0;
    let billed_seconds = invocations * batch_ms.ceil() / 1000.0;
    let lambda = billed_seconds * (memory_mb / 1024.0) * LAMBDA_ARM_GB_SECOND
        + invocations / 1e6 * LAMBDA_PER_MILLION_REQUESTS;
    // Per delivery: one PutItem of a record under 1 KB, written to the table and
    // to GSI1 (2 WRU); one strongly consistent key in a BatchGetItem (1 RRU).
    // Per event: its copy for the catch-up API, under 1 KB, also on GSI1 (2 WRU).
    // Per batch: one eventually consistent query of the tenant's webhooks (0.5 RRU).
    let wru = events * 2.0 + events * 2.0;
    let rru = events * 1.0 + invocations * 0.5;
    let dynamodb = wru / 1e6 * DYNAMODB_PER_MILLION_WRU + rru / 1e6 * DYNAMODB_PER_MILLION_RRU;
    // Per event: the producer's SendMessage; per batch: the event source
    // mapping's ReceiveMessage and DeleteMessageBatch.
    let sqs_requests = events + invocations * 2.0;
    let sqs = sqs_requests / 1e6 * SQS_PER_MILLION_REQUESTS;
    Bill {
        lambda,
        dynamodb,
        sqs,
    }
}
