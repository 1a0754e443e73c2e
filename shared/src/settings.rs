//! Configuration read from the environment, once, at cold start.

use std::net::IpAddr;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::UrlPolicy;
use crate::delivery::ClientConfig;
use crate::retry::{DEFAULT_SCHEDULE_SECS, MAX_SCHEDULE_STEPS};

#[derive(Debug, Clone)]
pub struct Settings {
    pub table_name: String,
    pub url_policy: UrlPolicy,
    pub max_webhooks_per_tenant: u32,
    /// The hard deadline of one delivery attempt (`DELIVERY_TIMEOUT_MS`).
    pub delivery_timeout: Duration,
    pub delivery_log_ttl_days: u32,
    /// Where producers send events (`EVENTS_QUEUE_URL`); only emitters need it.
    pub events_queue_url: Option<String>,
    /// The slow lane's queue (`SLOW_QUEUE_URL`); without it every attempt
    /// is made on the main lane.
    pub slow_queue_url: Option<String>,
    /// A main-lane attempt still going after this long marks its webhook
    /// slow (`SLOW_THRESHOLD_MS`); a slow-lane attempt done within it clears
    /// the mark.
    pub slow_threshold: Duration,
    /// Manual redelivery attempts a tenant may queue per minute
    /// (`REDELIVERY_LIMIT_PER_MINUTE`); beyond it the API answers 429.
    pub redeliveries_per_minute: u32,
    /// Events a tenant's recoveries may check per minute, all its webhooks
    /// together (`RECOVERY_CHECKS_PER_MINUTE`; a call or page takes 1,000):
    /// what one tenant's recoveries may read and hold of the slow lane.
    pub recovery_checks_per_minute: u32,
    /// Costly reads a tenant may make per minute
    /// (`COSTLY_READ_LIMIT_PER_MINUTE`): a webhook's stats and listings
    /// filtered by value, each up to a few hundred read units; beyond it
    /// the API answers 429.
    pub costly_reads_per_minute: u32,
    /// A webhook whose every attempt has failed for this long is set
    /// inactive, with a `webhook.disabled` notice
    /// (`AUTO_DISABLE_AFTER_SECONDS`; 0: never).
    pub auto_disable_after: Option<Duration>,
    /// Requests a tenant may make per second in one api container
    /// (`TENANT_REQUESTS_PER_SECOND`, twice that in a burst); beyond it 429.
    pub tenant_requests_per_second: u32,
    /// Requests with a key an api container has not seen yet, per client
    /// address and second (`UNKNOWN_KEY_REQUESTS_PER_SECOND`, twice that in
    /// a burst): each costs a table read.
    pub unknown_key_requests_per_second: u32,
    /// Test events a tenant may send per 10 seconds
    /// (`TEST_EVENT_LIMIT_PER_10_SECONDS`): each may hold an api function
    /// for the delivery deadline, so this bounds what one tenant holds of
    /// the api function's concurrency; beyond it the API answers 429.
    pub test_events_per_10_seconds: u32,
    /// Deliveries in flight at once in one container
    /// (`MAX_DELIVERIES_IN_FLIGHT`): with the response head capped, this
    /// bounds the memory hostile receivers can hold (see docs/capacity.md).
    pub max_deliveries_in_flight: u32,
    /// How long accepted events are kept for `GET /events` and redelivery
    /// (`EVENT_RETENTION_DAYS`).
    pub event_retention_days: u32,
    /// How long the previous signing secret still signs after a rotation
    /// (`SIGNING_SECRET_OVERLAP_HOURS`).
    pub secret_overlap: Duration,
    /// The waits of `retry_policy: exponential`: the wait before attempt
    /// n+1 is `retry_schedule[n-1]`; after the last, `exhausted`
    /// (`RETRY_SCHEDULE_SECONDS`, comma-separated; tests use short ones).
    pub retry_schedule: Vec<Duration>,
    /// How long an api container trusts an API key it read, for reads
    /// (`API_KEY_CACHE_TTL_SECONDS`; zero: it reads the key every request).
    /// A key revoked meanwhile may read that long on a warm container; a
    /// change is always decided on a strongly consistent read.
    pub api_key_cache_ttl: Duration,
    /// When the API is deployed behind the edge (CloudFront with a WAF web
    /// ACL), the secret the edge adds to every request it forwards
    /// (`ORIGIN_VERIFY_SECRET`): a request without it went around the edge
    /// and its per-address rule, and is refused.
    pub origin_secret: Option<OriginSecret>,
    /// The addresses deliveries leave from when the stack is deployed with
    /// static egress (`EGRESS_IPS`, comma-separated: the NAT gateways'
    /// Elastic IPs); empty without. Customers read them from
    /// `GET /egress-ips` to allowlist them.
    pub egress_ips: Vec<IpAddr>,
    /// Certificate authorities the delivery client trusts beside Mozilla's
    /// roots, read from the PEM file `EXTRA_CA_FILE`: so that the local
    /// stack and tests deliver to HTTPS receivers on loopback. Only with
    /// `ALLOW_PRIVATE_TARGETS=true`, which no deployed function has.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// A shared secret that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginSecret(pub String);

impl OriginSecret {
    /// Whether `presented` is this secret (in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        crate::api_key::hashes_match(&self.0, presented)
    }
}

impl std::fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginSecret(…)")
    }
}

/// A function the template deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Api,
    Dispatch,
}

/// An environment variable the functions read, and the functions whose
/// template entry must set it; none for a variable a deployment leaves to
/// its default. The rehearsal (`scripts/rehearse`) holds the template to
/// this list; a unit test holds the code to it.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub set_for: &'static [Function],
}

const BOTH: &[Function] = &[Function::Api, Function::Dispatch];

/// Every variable [`Settings`] and the logging read.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "TABLE_NAME",
        set_for: BOTH,
    },
    Variable {
        name: "EVENTS_QUEUE_URL",
        set_for: BOTH,
    },
    Variable {
        name: "SLOW_QUEUE_URL",
        set_for: BOTH,
    },
    Variable {
        name: "RUST_LOG",
        set_for: BOTH,
    },
    Variable {
        name: "EVENT_RETENTION_DAYS",
        set_for: BOTH,
    },
    Variable {
        name: "SIGNING_SECRET_OVERLAP_HOURS",
        set_for: BOTH,
    },
    // Both make deliveries: the api sends test events.
    Variable {
        name: "DELIVERY_TIMEOUT_MS",
        set_for: BOTH,
    },
    Variable {
        name: "DELIVERY_LOG_TTL_DAYS",
        set_for: BOTH,
    },
    Variable {
        name: "SLOW_THRESHOLD_MS",
        set_for: BOTH,
    },
    Variable {
        name: "MAX_WEBHOOKS_PER_TENANT",
        set_for: &[Function::Api],
    },
    // The dispatcher paces recoveries by it.
    Variable {
        name: "REDELIVERY_LIMIT_PER_MINUTE",
        set_for: BOTH,
    },
    Variable {
        name: "TEST_EVENT_LIMIT_PER_10_SECONDS",
        set_for: &[Function::Api],
    },
    Variable {
        name: "API_KEY_CACHE_TTL_SECONDS",
        set_for: &[Function::Api],
    },
    Variable {
        name: "ORIGIN_VERIFY_SECRET",
        set_for: &[Function::Api],
    },
    // Empty unless the template's StaticEgress is on.
    Variable {
        name: "EGRESS_IPS",
        set_for: &[Function::Api],
    },
    // One test event at a time per request: the api keeps the default.
    Variable {
        name: "MAX_DELIVERIES_IN_FLIGHT",
        set_for: &[Function::Dispatch],
    },
    Variable {
        name: "AUTO_DISABLE_AFTER_SECONDS",
        set_for: &[Function::Dispatch],
    },
    // Tests and the local stack only: deployed functions never reach a
    // private address, and keep the documented retry schedule.
    Variable {
        name: "ALLOW_PRIVATE_TARGETS",
        set_for: &[],
    },
    Variable {
        name: "EXTRA_CA_FILE",
        set_for: &[],
    },
    Variable {
        name: "RETRY_SCHEDULE_SECONDS",
        set_for: &[],
    },
    Variable {
        name: "RECOVERY_CHECKS_PER_MINUTE",
        set_for: &[],
    },
    Variable {
        name: "COSTLY_READ_LIMIT_PER_MINUTE",
        set_for: &[],
    },
    Variable {
        name: "TENANT_REQUESTS_PER_SECOND",
        set_for: &[],
    },
    Variable {
        name: "UNKNOWN_KEY_REQUESTS_PER_SECOND",
        set_for: &[],
    },
];

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

impl Settings {
    pub const DEFAULT_MAX_WEBHOOKS: u32 = 50;
    pub const DEFAULT_DELIVERY_TIMEOUT_MS: u32 = 5000;
    pub const DEFAULT_LOG_TTL_DAYS: u32 = 30;
    pub const DEFAULT_SLOW_THRESHOLD_MS: u32 = 1000;
    pub const DEFAULT_REDELIVERIES_PER_MINUTE: u32 = 600;
    /// Ten calls or pages a minute. A page holds a slow-lane dispatch
    /// function for up to 4 s, so one tenant's recoveries hold at most about
    /// two thirds of one of the lane's invocations on average, however many
    /// webhooks it recovers at once.
    pub const DEFAULT_RECOVERY_CHECKS_PER_MINUTE: u32 = 10_000;
    /// One every two seconds: a person on the dashboard never meets it; a
    /// script polling stats meets it at 200 read units a call, about 100
    /// read units a second per tenant at most.
    pub const DEFAULT_COSTLY_READS_PER_MINUTE: u32 = 30;
    /// Half the API stage's default throttle: one tenant alone can use the
    /// API fully from a single container, and a flood from it is refused
    /// in microseconds instead of holding containers.
    pub const DEFAULT_TENANT_REQUESTS_PER_SECOND: u32 = 50;
    pub const DEFAULT_UNKNOWN_KEY_REQUESTS_PER_SECOND: u32 = 10;
    pub const DEFAULT_MAX_DELIVERIES_IN_FLIGHT: u32 = 500;
    pub const DEFAULT_TEST_EVENTS_PER_10_SECONDS: u32 = 3;
    pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 7;
    pub const DEFAULT_SECRET_OVERLAP_HOURS: u32 = 24;
    pub const DEFAULT_API_KEY_CACHE_TTL_SECONDS: u32 = 30;
    /// Five days of nothing but failures.
    pub const DEFAULT_AUTO_DISABLE_AFTER_SECONDS: u32 = 432_000;

    /// Every default, on `table`: the one constructor for tests and the CLI,
    /// which then override what they need; `from_lookup` starts from it too.
    pub fn with_table(table: impl Into<String>) -> Self {
        Self {
            table_name: table.into(),
            url_policy: UrlPolicy::default(),
            max_webhooks_per_tenant: Self::DEFAULT_MAX_WEBHOOKS,
            delivery_timeout: Duration::from_millis(u64::from(Self::DEFAULT_DELIVERY_TIMEOUT_MS)),
            delivery_log_ttl_days: Self::DEFAULT_LOG_TTL_DAYS,
            events_queue_url: None,
            slow_queue_url: None,
            slow_threshold: Duration::from_millis(u64::from(Self::DEFAULT_SLOW_THRESHOLD_MS)),
            redeliveries_per_minute: Self::DEFAULT_REDELIVERIES_PER_MINUTE,
            recovery_checks_per_minute: Self::DEFAULT_RECOVERY_CHECKS_PER_MINUTE,
            costly_reads_per_minute: Self::DEFAULT_COSTLY_READS_PER_MINUTE,
            tenant_requests_per_second: Self::DEFAULT_TENANT_REQUESTS_PER_SECOND,
            auto_disable_after: Some(Duration::from_secs(u64::from(
                Self::DEFAULT_AUTO_DISABLE_AFTER_SECONDS,
            ))),
            unknown_key_requests_per_second: Self::DEFAULT_UNKNOWN_KEY_REQUESTS_PER_SECOND,
            max_deliveries_in_flight: Self::DEFAULT_MAX_DELIVERIES_IN_FLIGHT,
            test_events_per_10_seconds: Self::DEFAULT_TEST_EVENTS_PER_10_SECONDS,
            event_retention_days: Self::DEFAULT_EVENT_RETENTION_DAYS,
            secret_overlap: hours(Self::DEFAULT_SECRET_OVERLAP_HOURS),
            retry_schedule: DEFAULT_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            api_key_cache_ttl: Duration::from_secs(u64::from(
                Self::DEFAULT_API_KEY_CACHE_TTL_SECONDS,
            )),
            origin_secret: None,
            egress_ips: Vec::new(),
            extra_roots: Vec::new(),
        }
    }

    /// Attempts in all under `retry_policy: exponential`: the first and one
    /// per step of the schedule.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The delivery client's configuration these settings make.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            allow_private_targets: self.url_policy.allow_private_targets,
            max_in_flight: usize::try_from(self.max_deliveries_in_flight).unwrap_or(usize::MAX),
            extra_roots: self.extra_roots.clone(),
            ..ClientConfig::default()
        }
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let table_name = lookup("TABLE_NAME")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SettingsError {
                name: "TABLE_NAME",
                problem: "must be set".into(),
            })?;
        let d = Self::with_table(table_name);
        let millis = |name, default: &Duration| {
            let default = u32::try_from(default.as_millis()).unwrap_or(u32::MAX);
            positive(&lookup, name, default).map(|ms| Duration::from_millis(u64::from(ms)))
        };
        let allow_private_targets = parse_bool(&lookup, "ALLOW_PRIVATE_TARGETS")?
            .unwrap_or(d.url_policy.allow_private_targets);
        Ok(Self {
            url_policy: UrlPolicy {
                allow_private_targets,
            },
            max_webhooks_per_tenant: positive(
                &lookup,
                "MAX_WEBHOOKS_PER_TENANT",
                d.max_webhooks_per_tenant,
            )?,
            delivery_timeout: millis("DELIVERY_TIMEOUT_MS", &d.delivery_timeout)?,
            delivery_log_ttl_days: positive(
                &lookup,
                "DELIVERY_LOG_TTL_DAYS",
                d.delivery_log_ttl_days,
            )?,
            events_queue_url: lookup("EVENTS_QUEUE_URL").filter(|s| !s.is_empty()),
            slow_queue_url: lookup("SLOW_QUEUE_URL").filter(|s| !s.is_empty()),
            slow_threshold: millis("SLOW_THRESHOLD_MS", &d.slow_threshold)?,
            redeliveries_per_minute: positive(
                &lookup,
                "REDELIVERY_LIMIT_PER_MINUTE",
                d.redeliveries_per_minute,
            )?,
            recovery_checks_per_minute: positive(
                &lookup,
                "RECOVERY_CHECKS_PER_MINUTE",
                d.recovery_checks_per_minute,
            )?,
            costly_reads_per_minute: positive(
                &lookup,
                "COSTLY_READ_LIMIT_PER_MINUTE",
                d.costly_reads_per_minute,
            )?,
            tenant_requests_per_second: positive(
                &lookup,
                "TENANT_REQUESTS_PER_SECOND",
                d.tenant_requests_per_second,
            )?,
            unknown_key_requests_per_second: positive(
                &lookup,
                "UNKNOWN_KEY_REQUESTS_PER_SECOND",
                d.unknown_key_requests_per_second,
            )?,
            test_events_per_10_seconds: positive(
                &lookup,
                "TEST_EVENT_LIMIT_PER_10_SECONDS",
                d.test_events_per_10_seconds,
            )?,
            max_deliveries_in_flight: positive(
                &lookup,
                "MAX_DELIVERIES_IN_FLIGHT",
                d.max_deliveries_in_flight,
            )?,
            event_retention_days: positive(
                &lookup,
                "EVENT_RETENTION_DAYS",
                d.event_retention_days,
            )?,
            secret_overlap: hours(positive(
                &lookup,
                "SIGNING_SECRET_OVERLAP_HOURS",
                Self::DEFAULT_SECRET_OVERLAP_HOURS,
            )?),
            retry_schedule: match lookup("RETRY_SCHEDULE_SECONDS").filter(|v| !v.is_empty()) {
                Some(list) => schedule(&list)?,
                None => d.retry_schedule.clone(),
            },
            api_key_cache_ttl: Duration::from_secs(u64::from(
                match lookup("API_KEY_CACHE_TTL_SECONDS").filter(|v| !v.is_empty()) {
                    None => Self::DEFAULT_API_KEY_CACHE_TTL_SECONDS,
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n <= 3600)
                        .ok_or_else(|| SettingsError {
                            name: "API_KEY_CACHE_TTL_SECONDS",
                            problem: format!("must be 0 to 3600 seconds (got {v:?})"),
                        })?,
                },
            )),
            auto_disable_after: match lookup("AUTO_DISABLE_AFTER_SECONDS").filter(|v| !v.is_empty())
            {
                None => d.auto_disable_after,
                Some(v) => match v.parse::<u32>() {
                    Ok(0) => None,
                    Ok(secs) => Some(Duration::from_secs(u64::from(secs))),
                    Err(_) => {
                        return Err(SettingsError {
                            name: "AUTO_DISABLE_AFTER_SECONDS",
                            problem: format!(
                                "must be a whole number of seconds, 0 to turn it off (got {v:?})"
                            ),
                        });
                    }
                },
            },
            origin_secret: lookup("ORIGIN_VERIFY_SECRET")
                .filter(|v| !v.is_empty())
                .map(OriginSecret),
            egress_ips: match lookup("EGRESS_IPS").filter(|v| !v.is_empty()) {
                Some(list) => addresses(&list)?,
                None => d.egress_ips.clone(),
            },
            extra_roots: match lookup("EXTRA_CA_FILE").filter(|v| !v.is_empty()) {
                Some(path) => extra_roots(&path, allow_private_targets)?,
                None => Vec::new(),
            },
            ..d
        })
    }
}

fn hours(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 3600)
}

/// `RETRY_SCHEDULE_SECONDS`: 1 to 99 comma-separated whole seconds.
fn schedule(list: &str) -> Result<Vec<Duration>, SettingsError> {
    let parsed: Option<Vec<Duration>> = list
        .split(',')
        .map(|s| s.trim().parse::<u64>().ok().map(Duration::from_secs))
        .collect();
    parsed
        .filter(|s| !s.is_empty() && s.len() <= MAX_SCHEDULE_STEPS)
        .ok_or(SettingsError {
            name: "RETRY_SCHEDULE_SECONDS",
            problem: format!(
                "must be 1 to {MAX_SCHEDULE_STEPS} comma-separated whole seconds (got {list:?})"
            ),
        })
}

/// `EXTRA_CA_FILE`: the certificates of a PEM file, only where private
/// targets are allowed (tests, the local stack).
fn extra_roots(
    path: &str,
    allow_private_targets: bool,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let error = |problem: String| SettingsError {
        name: "EXTRA_CA_FILE",
        problem,
    };
    if !allow_private_targets {
        return Err(error(
            "is for tests and the local stack only: it needs ALLOW_PRIVATE_TARGETS=true".into(),
        ));
    }
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(format!("cannot be read ({path}: {e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("is not a file of PEM certificates ({path}: {e})")))?;
    if certs.is_empty() {
        return Err(error(format!("holds no certificate ({path})")));
    }
    Ok(certs)
}

/// `EGRESS_IPS`: comma-separated IP addresses, each once. One that does not
/// parse stops the function at start: customers would allowlist what the
/// API answers, so it never answers a partial list.
fn addresses(list: &str) -> Result<Vec<IpAddr>, SettingsError> {
    let mut parsed: Vec<IpAddr> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let ip = item.parse().map_err(|_| SettingsError {
            name: "EGRESS_IPS",
            problem: format!("must be comma-separated IP addresses ({item:?} is not one)"),
        })?;
        if !parsed.contains(&ip) {
            parsed.push(ip);
        }
    }
    Ok(parsed)
}

/// A positive whole number from `name`, or `default` when it is unset or empty.
pub(crate) fn positive(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
) -> Result<u32, SettingsError> {
    match lookup(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingsError {
                name,
                problem: format!("must be a positive integer (got {v:?})"),
            }),
    }
}

pub fn parse_bool(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<bool>, SettingsError> {
    match lookup(name).as_deref() {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(SettingsError {
            name,
            problem: format!("must be \"true\" or \"false\" (got {other:?})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_errors() {
        let s = from(&[("TABLE_NAME", "t")]).unwrap();
        assert!(!s.url_policy.allow_private_targets);
        assert_eq!(s.max_webhooks_per_tenant, 50);
        assert_eq!(s.delivery_timeout, Duration::from_millis(5000));
        assert_eq!(s.delivery_log_ttl_days, 30);
        assert_eq!(s.events_queue_url, None);
        assert_eq!(s.slow_queue_url, None);
        assert_eq!(s.slow_threshold, Duration::from_millis(1000));
        assert_eq!(s.redeliveries_per_minute, 600);
        assert_eq!(s.client_config().max_in_flight, 500);
        assert_eq!(s.test_events_per_10_seconds, 3);
        let s = from(&[("TABLE_NAME", "t"), ("MAX_DELIVERIES_IN_FLIGHT", "40")]).unwrap();
        assert_eq!(s.client_config().max_in_flight, 40);
        let e = from(&[("TABLE_NAME", "t"), ("MAX_DELIVERIES_IN_FLIGHT", "0")]).unwrap_err();
        assert!(e.to_string().contains("MAX_DELIVERIES_IN_FLIGHT"));
        let e = from(&[("TABLE_NAME", "t"), ("SLOW_THRESHOLD_MS", "0")]).unwrap_err();
        assert!(e.to_string().contains("SLOW_THRESHOLD_MS"));
        let e = from(&[("TABLE_NAME", "t"), ("REDELIVERY_LIMIT_PER_MINUTE", "-1")]).unwrap_err();
        assert!(e.to_string().contains("REDELIVERY_LIMIT_PER_MINUTE"));
        let s = Settings::with_table("x");
        assert_eq!(s.table_name, "x");
        assert_eq!(s.max_webhooks_per_tenant, 50);
        let s = from(&[("TABLE_NAME", "t"), ("DELIVERY_TIMEOUT_MS", "1500")]).unwrap();
        assert_eq!(s.delivery_timeout, Duration::from_millis(1500));
        let e = from(&[("TABLE_NAME", "t"), ("DELIVERY_LOG_TTL_DAYS", "x")]).unwrap_err();
        assert!(e.to_string().contains("DELIVERY_LOG_TTL_DAYS"));
        assert!(from(&[]).unwrap_err().to_string().contains("TABLE_NAME"));
        let s = from(&[("TABLE_NAME", "t"), ("ALLOW_PRIVATE_TARGETS", "true")]).unwrap();
        assert!(s.url_policy.allow_private_targets);
        let e = from(&[("TABLE_NAME", "t"), ("ALLOW_PRIVATE_TARGETS", "yes")]).unwrap_err();
        assert!(e.to_string().contains("ALLOW_PRIVATE_TARGETS"));
        let e = from(&[("TABLE_NAME", "t"), ("MAX_WEBHOOKS_PER_TENANT", "0")]).unwrap_err();
        assert!(e.to_string().contains("MAX_WEBHOOKS_PER_TENANT"));
    }

    #[test]
    fn the_variables_list_is_what_the_code_reads() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let lookup = |name: &str| {
            asked.lock().expect("lock").insert(name.to_owned());
            (name == "TABLE_NAME").then(|| "t".to_owned())
        };
        Settings::from_lookup(lookup).expect("settings");
        let mut asked = asked.into_inner().expect("lock");
        // Read by `logging::init`, from the process environment.
        asked.insert("RUST_LOG".to_owned());
        let listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(asked, listed);
    }

    #[test]
    fn retention_overlap_and_retry_schedule() {
        let s = from(&[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(s.event_retention_days, 7);
        assert_eq!(s.secret_overlap, Duration::from_secs(24 * 3600));
        assert_eq!(s.max_attempts(), 10);
        let s = from(&[
            ("TABLE_NAME", "t"),
            ("RETRY_SCHEDULE_SECONDS", "1, 2,3"),
            ("EVENT_RETENTION_DAYS", "3"),
            ("SIGNING_SECRET_OVERLAP_HOURS", "2"),
        ])
        .unwrap();
        let secs: Vec<u64> = s.retry_schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 3]);
        assert_eq!(s.event_retention_days, 3);
        assert_eq!(
            Settings::with_table("t").auto_disable_after,
            Some(Duration::from_secs(432_000))
        );
        let off = from(&[("TABLE_NAME", "t"), ("AUTO_DISABLE_AFTER_SECONDS", "0")]).unwrap();
        assert_eq!(off.auto_disable_after, None);
        let short = from(&[("TABLE_NAME", "t"), ("AUTO_DISABLE_AFTER_SECONDS", "3")]).unwrap();
        assert_eq!(short.auto_disable_after, Some(Duration::from_secs(3)));
        let e = from(&[("TABLE_NAME", "t"), ("AUTO_DISABLE_AFTER_SECONDS", "-1")]).unwrap_err();
        assert!(e.to_string().contains("AUTO_DISABLE_AFTER_SECONDS"));
        assert_eq!(s.api_key_cache_ttl, Duration::from_secs(30));
        let off = from(&[("TABLE_NAME", "t"), ("API_KEY_CACHE_TTL_SECONDS", "0")]).unwrap();
        assert_eq!(off.api_key_cache_ttl, Duration::ZERO);
        for bad in ["-1", "x", "3601"] {
            let e = from(&[("TABLE_NAME", "t"), ("API_KEY_CACHE_TTL_SECONDS", bad)]).unwrap_err();
            assert_eq!(e.name, "API_KEY_CACHE_TTL_SECONDS");
        }
        assert_eq!(s.secret_overlap, Duration::from_secs(7200));
        let e = from(&[("TABLE_NAME", "t"), ("RETRY_SCHEDULE_SECONDS", "5,x")]).unwrap_err();
        assert!(e.to_string().contains("RETRY_SCHEDULE_SECONDS"));
        let e = from(&[("TABLE_NAME", "t"), ("EVENT_RETENTION_DAYS", "0")]).unwrap_err();
        assert!(e.to_string().contains("EVENT_RETENTION_DAYS"));
    }

    #[test]
    fn an_extra_ca_file_is_read_only_where_private_targets_are_allowed() {
        let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/src/amazon_roots.pem");
        let lax = |file: &str| {
            from(&[
                ("TABLE_NAME", "t"),
                ("ALLOW_PRIVATE_TARGETS", "true"),
                ("EXTRA_CA_FILE", file),
            ])
        };
        let read = lax(pem).unwrap();
        assert!(!read.extra_roots.is_empty());
        assert_eq!(
            read.client_config().extra_roots.len(),
            read.extra_roots.len()
        );
        assert!(from(&[("TABLE_NAME", "t")]).unwrap().extra_roots.is_empty());
        // Production settings refuse it, by name (the negative control).
        let strict = from(&[("TABLE_NAME", "t"), ("EXTRA_CA_FILE", pem)]).unwrap_err();
        assert_eq!(strict.name, "EXTRA_CA_FILE");
        assert!(
            strict.problem.contains("ALLOW_PRIVATE_TARGETS"),
            "{}",
            strict.problem
        );
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        for bad in ["/nonexistent/ca.pem", manifest] {
            let e = lax(bad).unwrap_err();
            assert_eq!(e.name, "EXTRA_CA_FILE", "{bad}");
            assert!(e.problem.contains(bad), "{bad}: {}", e.problem);
        }
    }

    #[test]
    fn egress_addresses_are_a_list_of_ips_or_none() {
        assert!(from(&[("TABLE_NAME", "t")]).unwrap().egress_ips.is_empty());
        let none = from(&[("TABLE_NAME", "t"), ("EGRESS_IPS", "")]).unwrap();
        assert!(
            none.egress_ips.is_empty(),
            "the template's value without static egress"
        );
        let two = from(&[
            ("TABLE_NAME", "t"),
            ("EGRESS_IPS", "203.0.113.7, 198.51.100.9,203.0.113.7"),
        ])
        .unwrap();
        let ips: Vec<String> = two.egress_ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["203.0.113.7", "198.51.100.9"], "in order, each once");
        let six = from(&[("TABLE_NAME", "t"), ("EGRESS_IPS", "2001:db8::1")]).unwrap();
        assert_eq!(six.egress_ips.len(), 1);
        for bad in [
            "203.0.113.7,",
            "203.0.113",
            "203.0.113.7;198.51.100.9",
            "nat-gateway",
        ] {
            let e = from(&[("TABLE_NAME", "t"), ("EGRESS_IPS", bad)]).unwrap_err();
            assert_eq!(e.name, "EGRESS_IPS", "{bad}");
        }
    }
}
