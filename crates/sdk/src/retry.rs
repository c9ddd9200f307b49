//! Retry policy and exponential backoff.
//!
//! Retries are off by default.
//! With [`ClientBuilder::max_retries`](crate::ClientBuilder::max_retries) set, a request is sent
//! again only when all of these hold:
//!
//! - its method is `GET` or `HEAD`, so sending it twice cannot create two VMs;
//! - it failed with `502`, `503` or `504`, a timeout, or a connection error;
//!   never a TLS error (a bad certificate does not fix itself) and never another `4xx`/`5xx`.
//!
//! The delay before retry `attempt` (counting from 0) is `base * 2^attempt`, capped at 30 s.
//! The base is 0.5 s by default ([`DEFAULT_RETRY_BACKOFF`]), so the ceilings are 0.5 s, 1 s, 2 s,
//! 4 s, ... 30 s; [`ClientBuilder::retry_backoff`](crate::ClientBuilder::retry_backoff) or
//! `PROXMOX_API_RETRY_BACKOFF` changes it.
//!
//! Each delay has "equal jitter": half of the ceiling is fixed and the other half uniformly
//! random, so the first retry waits between 0.25 s and 0.5 s, the second between 0.5 s and 1 s.
//! Clients that failed together (a node rebooting under a fleet of scripts) then do not all come
//! back in the same instant, and no delay is ever shorter than half its ceiling.
//! The same doubling, without jitter, paces task polling (see [`crate::task`]).

use std::time::Duration;

use rand::Rng;

/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The default base delay of [`RetryPolicy`]: 0.5 s, doubling per retry up to [`MAX_BACKOFF`].
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// How often and how patiently idempotent requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The delay before the first retry; it doubles for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `attempt` (0 for the first retry): `backoff * 2^attempt` capped at
    /// [`MAX_BACKOFF`], of which the upper half is random (see the module docs).
    pub fn delay(&self, attempt: u32) -> Duration {
        let jitter: f64 = rand::rng().random();
        jittered(
            capped_exponential(self.backoff, attempt, MAX_BACKOFF),
            jitter,
        )
    }
}

/// `base * 2^attempt`, capped at `cap`, without overflowing.
pub(crate) fn capped_exponential(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(cap, |delay| delay.min(cap))
}

/// "Equal jitter": half of `delay`, plus `jitter` (in `[0, 1)`) times the other half.
pub(crate) fn jittered(delay: Duration, jitter: f64) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base_ms: u64, attempt: u32, expected_ms: u64) {
        let delay = capped_exponential(Duration::from_millis(base_ms), attempt, MAX_BACKOFF);
        assert_eq!(
            delay,
            Duration::from_millis(expected_ms),
            "base {base_ms} ms, attempt {attempt}"
        );
    }

    #[test]
    fn doubles_until_the_cap() {
        check(100, 0, 100);
        check(100, 1, 200);
        check(100, 4, 1_600);
        check(1_000, 4, 16_000);
        check(1_000, 5, 30_000);
        check(1_000, 31, 30_000);
        check(1_000, u32::MAX, 30_000);
        check(0, 10, 0);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let delay = Duration::from_secs(8);
        assert_eq!(jittered(delay, 0.0), Duration::from_secs(4));
        assert_eq!(jittered(delay, 0.5), Duration::from_secs(6));
        assert_eq!(jittered(delay, 1.0), Duration::from_secs(8));
        assert_eq!(jittered(delay, 7.0), Duration::from_secs(8));
    }

    #[test]
    fn random_delay_is_bounded() {
        let policy = RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(100),
        };
        for attempt in 0..40 {
            let delay = policy.delay(attempt);
            let ceiling = capped_exponential(policy.backoff, attempt, MAX_BACKOFF);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn retries_are_off_by_default() {
        assert_eq!(RetryPolicy::default().max_retries, 0);
    }

    #[test]
    fn default_backoff_starts_at_half_a_second() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (0..8)
            .map(|attempt| {
                capped_exponential(policy.backoff, attempt, MAX_BACKOFF).as_millis() as u64
            })
            .collect();
        assert_eq!(
            ceilings,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        let first = policy.delay(0);
        assert!(
            first >= Duration::from_millis(250) && first <= Duration::from_millis(500),
            "{first:?}"
        );
    }
}
