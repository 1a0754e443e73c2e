//! JSON logs for the Lambda functions.

use tracing_subscriber::EnvFilter;

/// Libraries that log raw invocations, requests or bodies at debug or trace:
/// API keys, webhook tokens and event payloads would reach the logs. They
/// stay at `info` whatever `RUST_LOG` says.
const CAPPED: [&str; 10] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
];

/// The filter: `RUST_LOG` (default `info`) with [`CAPPED`] held at `info`.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = EnvFilter::new(rust_log.filter(|s| !s.is_empty()).unwrap_or("info"));
    for target in CAPPED {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// One JSON object per line, without the span context that would repeat fields.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(rust_log.as_deref()))
        .with_current_span(false)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn libraries_that_log_secrets_stay_at_info() {
        for rust_log in ["trace", "lambda_runtime=trace", "debug,lambda_http=trace"] {
            let rendered = filter(Some(rust_log)).to_string();
            for target in CAPPED {
                assert!(
                    rendered.contains(&format!("{target}=info")),
                    "{rust_log}: {rendered}"
                );
                assert!(
                    !rendered.contains(&format!("{target}=trace")),
                    "{rust_log}: {rendered}"
                );
            }
        }
        assert_eq!(filter(None).max_level_hint(), Some(LevelFilter::INFO));
    }
}
