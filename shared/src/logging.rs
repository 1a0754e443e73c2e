//! JSON logs for the Lambda functions.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// `RUST_LOG` as `level` or `target=level,...` (default `info`; an invalid value
/// also means `info`), with [`CAPPED`] held at `info` at most. A plain target
/// filter, not `EnvFilter`: no regex engine in the binary or at start-up.
pub fn filter(rust_log: Option<&str>) -> Targets {
    let parsed = rust_log
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<Targets>().ok());
    let mut targets = parsed.unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    for target in CAPPED {
        let level = targets.iter().find(|(t, _)| *t == target).map(|(_, l)| l);
        let level = level
            .or(targets.default_level())
            .unwrap_or(LevelFilter::OFF);
        let capped = level.min(LevelFilter::INFO);
        targets = targets.with_target(target, capped);
    }
    targets
}

/// One JSON object per line, without the span context that would repeat fields.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing_subscriber::registry()
        .with(layer(std::io::stdout, rust_log.as_deref()))
        .init();
}

/// The local stack's logs (`webhooks local` and `webhooks poll`): the
/// functions' format and filter on standard error, where the commands' own
/// output does not go, at `warn` unless `RUST_LOG` says otherwise, and with
/// the time, which CloudWatch adds in Lambda.
pub fn init_local() {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    tracing_subscriber::registry()
        .with(timed_layer(
            std::io::stderr,
            Some(rust_log.as_deref().unwrap_or("warn")),
            tracing_subscriber::fmt::time::SystemTime,
        ))
        .init();
}

/// The functions' log layer, writing to `writer`: tests capture what the
/// functions would log, through the same format and filter.
pub fn layer<S, W>(writer: W, rust_log: Option<&str>) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    timed_layer(writer, rust_log, ())
}

fn timed_layer<S, W, T>(writer: W, rust_log: Option<&str>, timer: T) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    T: tracing_subscriber::fmt::time::FormatTime + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_timer(timer)
        .with_writer(writer)
        .with_filter(filter(rust_log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn libraries_that_log_secrets_stay_at_info() {
        for rust_log in [
            "trace",
            "trace,lambda_runtime=trace",
            "debug,lambda_http=trace",
            "nonsense===",
        ] {
            let f = filter(Some(rust_log));
            for target in CAPPED {
                assert!(f.would_enable(target, &Level::INFO), "{rust_log}: {target}");
                assert!(
                    !f.would_enable(target, &Level::DEBUG),
                    "{rust_log}: {target}"
                );
            }
        }
        assert!(filter(Some("debug")).would_enable("shared::delivery", &Level::DEBUG));
        assert!(!filter(None).would_enable("shared::delivery", &Level::DEBUG));
        assert!(filter(None).would_enable("shared::delivery", &Level::INFO));
        let only = filter(Some("lambda_runtime=trace"));
        assert!(!only.would_enable("lambda_runtime", &Level::DEBUG));
        let quiet = filter(Some("warn"));
        assert!(
            !quiet.would_enable("lambda_runtime", &Level::INFO),
            "a lower level stays lower"
        );
    }
}
