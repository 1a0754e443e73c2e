//! Request rates in one container: each tenant's requests, and by client
//! address the requests whose key this container has not seen (a flood of
//! made-up keys would otherwise cost a table read each). A request over its
//! rate is answered `429 rate_limited` at once, so a tenant that floods the
//! API holds no more of a container than its rate, however many requests it
//! sends. The rates are per container: across `n` warm containers a tenant
//! gets up to `n` times its rate (the API stage's throttle, and the edge's
//! per-address rule when deployed, bound the whole).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::ApiError;

/// Callers tracked at most: past it, those whose bucket has filled up again
/// are forgotten (nothing is lost: a new bucket starts full).
const MAX_TRACKED: usize = 10_000;

/// Token buckets, one per caller: `per_second` tokens a second, at most
/// `2 × per_second` saved up (a burst).
pub struct Rates {
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Rates {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::default(),
        }
    }

    fn burst(&self) -> f64 {
        2.0 * self.per_second
    }

    /// Takes one request of `who`'s rate at `now`, or says in how many
    /// seconds it may call again.
    pub fn take(&self, who: &str, now: Instant) -> Result<(), u64> {
        // A poisoned lock only means another request panicked mid-update;
        // the counts are still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(who) {
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst());
            if buckets.len() >= MAX_TRACKED {
                // Every caller tracked is over its rate: the newcomer is
                // let through uncounted rather than forget one of them.
                return Ok(());
            }
        }
        let bucket = buckets.entry(who.to_owned()).or_insert(Bucket {
            tokens: self.burst(),
            at: now,
        });
        bucket.tokens = self.refilled(*bucket, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err((wait.ceil() as u64).max(1))
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.per_second).min(self.burst())
    }
}

/// The rates of one container.
pub struct Limits {
    /// Each tenant's requests (`TENANT_REQUESTS_PER_SECOND`).
    pub tenants: Rates,
    /// Requests with a key this container has not seen, per client address
    /// (`UNKNOWN_KEY_REQUESTS_PER_SECOND`).
    pub addresses: Rates,
}

impl Limits {
    pub fn new(settings: &shared::Settings) -> Self {
        Self {
            tenants: Rates::new(settings.tenant_requests_per_second),
            addresses: Rates::new(settings.unknown_key_requests_per_second),
        }
    }

    /// One request of `tenant`.
    pub fn tenant(&self, tenant: &str) -> Result<(), ApiError> {
        self.tenants
            .take(tenant, Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// One request from `req`'s client address whose key is not known here.
    pub fn address(&self, req: &Request) -> Result<(), ApiError> {
        self.addresses
            .take(&source_ip(req), Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }
}

/// The client's address as API Gateway saw it (one bucket for requests
/// without one: tests, local runs).
fn source_ip(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A burst of twice the rate passes, the next waits; time refills it;
    /// another caller has a bucket of its own.
    #[test]
    fn a_bucket_holds_a_burst_and_refills_at_the_rate() {
        let rates = Rates::new(5);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(rates.take("acme", t0), Ok(()));
        }
        assert_eq!(rates.take("acme", t0), Err(1));
        assert_eq!(rates.take("globex", t0), Ok(()), "another caller");
        let later = t0 + Duration::from_millis(400);
        assert_eq!(rates.take("acme", later), Ok(()), "two refilled");
        assert_eq!(rates.take("acme", later), Ok(()));
        assert_eq!(rates.take("acme", later), Err(1));
    }

    /// Past `MAX_TRACKED` callers, those whose bucket is full again are
    /// forgotten; the caller over its rate is still counted.
    #[test]
    fn many_callers_never_grow_without_bound() {
        let rates = Rates::new(1);
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED - 1 {
            rates.take(&n.to_string(), t0).unwrap();
        }
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..2 {
            rates.take("flooder", t1).unwrap();
        }
        assert!(rates.take("newcomer", t1).is_ok());
        let tracked = rates.buckets.lock().unwrap().len();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
        assert_eq!(tracked, 2, "the flooder and the newcomer");
        assert_eq!(rates.take("flooder", t1), Err(1), "still counted");
    }
}
