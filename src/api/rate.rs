//! `--rate-limit N`: GraphQL requests per second per user over HTTP, a token bucket
//! each (bursts of up to N, refilled at N a second). A request past it gets
//! LIMIT_EXCEEDED with HTTP 429 before it is parsed, and the server stays as it was.
//! Buckets are keyed by the user's name (`local` with auth off, so then the limit is
//! the server's); there are as many as there are keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    per_second: f64,
    /// User -> (tokens left, when they were counted).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Takes a token of `user`'s bucket; false when it is empty.
    pub fn allow(&self, user: &str) -> bool {
        self.allow_at(user, Instant::now())
    }

    fn allow_at(&self, user: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, counted) = buckets
            .entry(user.to_owned())
            .or_insert((self.per_second, now));
        let refilled = now.saturating_duration_since(*counted).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refilled).min(self.per_second);
        *counted = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_per_user() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        let allowed: Vec<bool> = (0..4).map(|_| limiter.allow_at("ann", start)).collect();
        assert_eq!(allowed, [true, true, true, false]);
        assert!(limiter.allow_at("bob", start), "each user has a bucket");
        let later = start + Duration::from_millis(400);
        assert!(
            limiter.allow_at("ann", later),
            "a third of a second refills one"
        );
        assert!(!limiter.allow_at("ann", later));
    }
}
