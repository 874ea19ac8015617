//! Per-source rate limit on new SIP requests (`sip.max_requests_per_source`).
//!
//! Each source address has a token bucket refilled at the configured rate
//! and holding at most one second's worth. A request that finds the bucket
//! empty is refused: at most one a second with 503 and `Retry-After: 1`
//! (RFC 3261 §21.5.4), so that a misbehaving but honest client learns why,
//! the rest dropped without an answer, so that a flood is not amplified
//! into a flood of responses. Memory is bounded: past [`CAPACITY`] sources,
//! the ones whose buckets have refilled are forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources remembered before full buckets are pruned.
const CAPACITY: usize = 65_536;
/// At most one 503 per source in this time.
const REFUSAL_INTERVAL: Duration = Duration::from_secs(1);

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the rate: handle it.
    Pass,
    /// Over the rate, and no 503 for a second: answer 503 with Retry-After.
    Refuse,
    /// Over the rate again: drop it silently.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// When the last 503 went out.
    refused: Option<Instant>,
}

/// Token buckets by source address.
#[derive(Debug, Default)]
pub(super) struct SourceLimiter {
    buckets: HashMap<IpAddr, Bucket>,
}

impl SourceLimiter {
    /// Counts one new request from `ip` against `rate` requests per second
    /// (0: no limit).
    pub(super) fn check(&mut self, ip: IpAddr, rate: u32, now: Instant) -> Verdict {
        if rate == 0 {
            return Verdict::Pass;
        }
        let rate = f64::from(rate);
        if self.buckets.len() >= CAPACITY && !self.buckets.contains_key(&ip) {
            self.prune(rate, now);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: rate,
            last: now,
            refused: None,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Pass
        } else if b
            .refused
            .is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_INTERVAL)
        {
            Verdict::Drop
        } else {
            b.refused = Some(now);
            Verdict::Refuse
        }
    }

    /// Forgets the sources whose buckets would be full by now; if all are
    /// busy, forgets all (a flood from that many addresses is not stopped
    /// by a per-source limit anyway).
    fn prune(&mut self, rate: f64, now: Instant) {
        self.buckets
            .retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < rate);
        if self.buckets.len() >= CAPACITY {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_second_of_requests_passes_then_one_503_then_silence() {
        let mut l = SourceLimiter::default();
        let t = Instant::now();
        for i in 0..10 {
            assert_eq!(l.check(ip(1), 10, t), Verdict::Pass, "request {i}");
        }
        assert_eq!(l.check(ip(1), 10, t), Verdict::Refuse);
        assert_eq!(l.check(ip(1), 10, t), Verdict::Drop);
        assert_eq!(l.check(ip(1), 10, t), Verdict::Drop);
        // Another source is not affected.
        assert_eq!(l.check(ip(2), 10, t), Verdict::Pass);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_the_503_is_repeated_once_a_second() {
        let mut l = SourceLimiter::default();
        let t = Instant::now();
        for _ in 0..10 {
            l.check(ip(1), 10, t);
        }
        assert_eq!(l.check(ip(1), 10, t), Verdict::Refuse);
        // 100 ms at 10/s: one token; no second 503 within the second.
        let t1 = t + Duration::from_millis(100);
        assert_eq!(l.check(ip(1), 10, t1), Verdict::Pass);
        assert_eq!(l.check(ip(1), 10, t1), Verdict::Drop);
        // A second after the 503, the next refusal is told again.
        let t2 = t + Duration::from_millis(1000);
        for _ in 0..9 {
            assert_eq!(l.check(ip(1), 10, t2), Verdict::Pass);
        }
        assert_eq!(l.check(ip(1), 10, t2), Verdict::Refuse);
        // A long pause refills to one second's worth, not more.
        let t = t2 + Duration::from_secs(60);
        let passed = (0..20).filter(|_| l.check(ip(1), 10, t) == Verdict::Pass).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let mut l = SourceLimiter::default();
        let t = Instant::now();
        assert!((0..10_000).all(|_| l.check(ip(1), 0, t) == Verdict::Pass));
    }

    #[test]
    fn memory_stays_bounded_under_many_sources() {
        let mut l = SourceLimiter::default();
        let t = Instant::now();
        for i in 0..(CAPACITY as u32 + 1000) {
            let a = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            l.check(a, 5, t);
        }
        assert!(l.buckets.len() <= CAPACITY, "{} sources kept", l.buckets.len());
    }
}
