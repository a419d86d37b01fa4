//! A token bucket: up to `burst` tokens, refilled continuously at `per_sec`.
//! Pure arithmetic: the caller passes the time.

use std::time::{Duration, Instant};

/// The shape of a bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Most tokens the bucket holds.
    pub burst: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

impl Rate {
    /// `burst` tokens, refilling `per_hour` tokens an hour.
    pub fn per_hour(burst: u32, per_hour: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: per_hour / 3600.0,
        }
    }
}

/// One bucket's state.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            updated: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.updated = now;
    }

    /// Take `n` tokens, or take nothing and say when `n` will be there
    /// (`None`: never, because `n` exceeds the burst or nothing refills).
    pub fn try_take(&mut self, n: f64, rate: Rate, now: Instant) -> Result<(), Option<Duration>> {
        self.refill(rate, now);
        if n <= self.tokens {
            self.tokens -= n;
            return Ok(());
        }
        if n > rate.burst || rate.per_sec <= 0.0 {
            return Err(None);
        }
        // A wait too long to represent is as good as never.
        Err(Duration::try_from_secs_f64((n - self.tokens) / rate.per_sec).ok())
    }

    /// Give back `n` tokens taken earlier (never above the burst).
    pub fn put_back(&mut self, n: f64, rate: Rate) {
        self.tokens = (self.tokens + n).min(rate.burst);
    }

    /// Whether the bucket is full at `now` (its state carries no information).
    pub fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }

    /// A bucket holding `tokens` (at most the burst) at `now`.
    pub fn with_tokens(tokens: f64, rate: Rate, now: Instant) -> Self {
        Self {
            tokens: tokens.clamp(0.0, rate.burst),
            updated: now,
        }
    }

    /// Tokens available at `now`.
    pub fn available(&mut self, rate: Rate, now: Instant) -> f64 {
        self.refill(rate, now);
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 10.0,
        per_sec: 2.0,
    };

    #[test]
    fn a_full_bucket_serves_its_burst_then_refuses_with_the_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        assert!(b.try_take(10.0, RATE, t0).is_ok());
        let wait = b.try_take(4.0, RATE, t0).expect_err("empty");
        assert_eq!(wait, Some(Duration::from_secs(2)));
        assert!(b.try_take(4.0, RATE, t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn a_refused_take_takes_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        assert!(b.try_take(11.0, RATE, t0).is_err());
        assert_eq!(b.available(RATE, t0), 10.0);
    }

    #[test]
    fn more_than_the_burst_is_never_possible() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        assert_eq!(b.try_take(11.0, RATE, t0), Err(None));
    }

    #[test]
    fn a_tiny_refill_rate_means_never_rather_than_a_panic() {
        let rate = Rate {
            burst: 10.0,
            per_sec: 1e-300,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::full(rate, t0);
        b.try_take(10.0, rate, t0).expect("fits");
        assert_eq!(b.try_take(1.0, rate, t0), Err(None));
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        assert!(b.try_take(1.0, RATE, t0).is_ok());
        assert!(b.is_full(RATE, t0 + Duration::from_secs(3600)));
        assert_eq!(b.available(RATE, t0 + Duration::from_secs(3600)), 10.0);
    }

    #[test]
    fn put_back_restores_a_refunded_charge() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        b.try_take(6.0, RATE, t0).expect("fits");
        b.put_back(6.0, RATE);
        assert_eq!(b.available(RATE, t0), 10.0);
    }
}
