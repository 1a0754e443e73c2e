//! What happens after a failed attempt: the opt-in retry schedule (its
//! steps are a setting: `Settings::retry_schedule`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delivery::{Attempt, Outcome};

/// A webhook's choice. `none` is the platform's documented behaviour: one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryPolicy {
    #[default]
    None,
    Exponential,
}

/// SQS delays a message by at most this much; longer waits are chained.
pub const MAX_SQS_DELAY: Duration = Duration::from_secs(900);

/// Manual attempts (redeliveries) are numbered from here up, automatic ones
/// from 1 up to at most 100: the two never take each other's number.
pub const FIRST_MANUAL_ATTEMPT: u32 = 101;
/// The most steps a retry schedule may have (attempts 1 to 100).
pub const MAX_SCHEDULE_STEPS: usize = (FIRST_MANUAL_ATTEMPT - 2) as usize;

/// About 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h after each failure.
pub const DEFAULT_SCHEDULE_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 10_800, 21_600, 43_200];

/// Whether a failed attempt may be tried again: no answer, or an answer that
/// says "later" (5xx, 408, 429). Any other 4xx is final, and so is a target
/// the address rule forbids.
pub fn is_retryable(attempt: &Attempt) -> bool {
    match attempt.outcome {
        Outcome::Delivered | Outcome::Blocked | Outcome::Redirect | Outcome::ResponseTooLarge => {
            false
        }
        Outcome::Timeout | Outcome::ConnectError | Outcome::TlsError | Outcome::TokenError => true,
        Outcome::HttpError => matches!(attempt.status, Some(408 | 429 | 500..=599)),
    }
}

/// The wait before the attempt after `attempt_number`, or `None` when the
/// schedule is used up. `jitter` is in [0, 1): the step is scaled by 0.8 to
/// 1.2. A `Retry-After` (429 and 503) can only lengthen it, up to the step
/// plus an hour: a receiver that answers `Retry-After: 0` cannot make the
/// retries run back to back.
pub fn next_delay(
    schedule: &[Duration],
    attempt_number: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let index = usize::try_from(attempt_number.checked_sub(1)?).ok()?;
    let step = *schedule.get(index)?;
    if let Some(asked) = retry_after {
        return Some(asked.clamp(step, step + Duration::from_secs(3600)));
    }
    Some(step.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome, status: Option<u16>) -> Attempt {
        Attempt::bare(outcome, status, 1)
    }

    #[test]
    fn what_is_retried() {
        assert!(is_retryable(&attempt(Outcome::Timeout, None)));
        assert!(is_retryable(&attempt(Outcome::ConnectError, None)));
        for status in [500, 502, 503, 599, 408, 429] {
            assert!(
                is_retryable(&attempt(Outcome::HttpError, Some(status))),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(
                !is_retryable(&attempt(Outcome::HttpError, Some(status))),
                "{status}"
            );
        }
        assert!(!is_retryable(&attempt(Outcome::Delivered, Some(200))));
        assert!(!is_retryable(&attempt(Outcome::Blocked, None)));
        assert!(!is_retryable(&attempt(Outcome::Redirect, Some(302))));
    }

    #[test]
    fn the_schedule_with_jitter_and_retry_after() {
        let settings = crate::Settings::with_table("t");
        assert_eq!(settings.max_attempts(), 10);
        let c = settings.retry_schedule.as_slice();
        assert_eq!(next_delay(c, 1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(c, 1, None, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(next_delay(c, 1, None, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(
            next_delay(c, 9, None, 0.5),
            Some(Duration::from_secs(43_200))
        );
        assert_eq!(next_delay(c, 10, None, 0.5), None);
        assert_eq!(next_delay(c, 0, None, 0.5), None);
        // Retry-After is followed, up to the step plus an hour.
        let asked = Some(Duration::from_secs(120));
        assert_eq!(next_delay(c, 1, asked, 0.5), Some(Duration::from_secs(120)));
        // ...but never shortens the step.
        for hurried in [0, 1, 4] {
            assert_eq!(
                next_delay(c, 1, Some(Duration::from_secs(hurried)), 0.5),
                Some(Duration::from_secs(5)),
                "Retry-After: {hurried}"
            );
        }
        let greedy = Some(Duration::from_secs(86_400));
        assert_eq!(
            next_delay(c, 2, greedy, 0.5),
            Some(Duration::from_secs(30 + 3600))
        );
    }
}
