//! Bandwidth limits: a thread-safe token bucket counted in bytes.
//!
//! A [`TokenBucket`] refills at `rate` bytes per second up to its burst
//! (a tenth of a second of the rate, at least 64 KiB). [`TokenBucket::take`]
//! takes tokens and, when the bucket runs dry, sleeps until the debt is paid:
//! tokens may go negative, so a chunk larger than the burst is allowed through
//! and the taker (and every later one) waits in proportion. The lock is never
//! held while sleeping. Time comes from a [`Clock`], so tests can run without
//! real sleeping.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Smallest burst, in bytes.
pub const MIN_BURST: u64 = 64 * 1024;

/// Longest single sleep while waiting for tokens, so that an interruption is
/// noticed promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A monotonic clock and a way to wait on it.
pub trait Clock: Send + Sync {
    /// Time elapsed since an arbitrary, fixed origin.
    fn now(&self) -> Duration;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock: [`Instant`] and [`std::thread::sleep`].
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

#[derive(Debug)]
struct State {
    /// Available tokens times 10⁹ (byte-nanoseconds per second), negative
    /// while in debt; integer arithmetic keeps refills exact.
    scaled_tokens: i128,
    /// When the bucket was last refilled.
    last: Duration,
}

/// A token bucket limiting a byte stream to `rate` bytes per second; shared
/// by reference between threads.
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl TokenBucket {
    /// A full bucket of `rate` bytes per second on the real clock. A rate of
    /// 0 means unlimited.
    pub fn new(rate: u64) -> Self {
        Self::with_clock(rate, Arc::new(SystemClock::new()))
    }

    /// A full bucket of `rate` bytes per second on `clock` (0: unlimited).
    pub fn with_clock(rate: u64, clock: Arc<dyn Clock>) -> Self {
        let burst = (rate / 10).max(MIN_BURST);
        let last = clock.now();
        Self {
            rate,
            burst,
            clock,
            state: Mutex::new(State {
                scaled_tokens: i128::from(burst) * NANOS_PER_SEC,
                last,
            }),
        }
    }

    /// The rate, in bytes per second (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The burst: how many bytes a full bucket lets through at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Takes `bytes` tokens, sleeping as long as the rate requires.
    pub fn take(&self, bytes: u64) {
        self.take_until(bytes, &|| false);
    }

    /// Takes `bytes` tokens, sleeping as long as the rate requires but
    /// checking `interrupted` at least every 50 ms; returns `false` when
    /// interrupted (the tokens stay taken).
    pub fn take_until(&self, bytes: u64, interrupted: &dyn Fn() -> bool) -> bool {
        if self.rate == 0 || bytes == 0 {
            return true;
        }
        let wait = self.reserve(bytes);
        let deadline = self.clock.now() + wait;
        loop {
            if interrupted() {
                return false;
            }
            let now = self.clock.now();
            if now >= deadline {
                return true;
            }
            self.clock
                .sleep(deadline.saturating_sub(now).min(SLEEP_SLICE));
        }
    }

    /// Refills, takes `bytes` tokens and returns how long the caller must
    /// wait for the bucket to be out of debt.
    fn reserve(&self, bytes: u64) -> Duration {
        let rate = i128::from(self.rate);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now();
        let elapsed =
            i128::try_from(now.saturating_sub(state.last).as_nanos()).unwrap_or(i128::MAX);
        state.last = now;
        let cap = i128::from(self.burst) * NANOS_PER_SEC;
        state.scaled_tokens = state
            .scaled_tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(cap);
        state.scaled_tokens -= i128::from(bytes) * NANOS_PER_SEC;
        if state.scaled_tokens >= 0 {
            return Duration::ZERO;
        }
        // Debt in byte·ns/s divided by bytes/s gives nanoseconds.
        let nanos = (-state.scaled_tokens + rate - 1) / rate;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that only moves when slept on.
    #[derive(Debug, Default)]
    struct FakeClock {
        now: Mutex<Duration>,
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, duration: Duration) {
            *self.now.lock().unwrap() += duration;
        }
    }

    fn fake(rate: u64) -> (Arc<FakeClock>, TokenBucket) {
        let clock = Arc::new(FakeClock::default());
        let bucket = TokenBucket::with_clock(rate, clock.clone());
        (clock, bucket)
    }

    #[test]
    fn burst_is_a_tenth_of_the_rate_or_64_kib() {
        assert_eq!(TokenBucket::new(10 << 20).burst(), 1 << 20);
        assert_eq!(TokenBucket::new(1000).burst(), MIN_BURST);
    }

    #[test]
    fn rate_is_respected_within_ten_percent() {
        for (rate, chunk) in [(1 << 20, 64 * 1024), (100_000, 1000), (4 << 20, 300_000)] {
            let (clock, bucket) = fake(rate);
            let total = rate * 5;
            let mut sent = 0;
            while sent < total {
                bucket.take(chunk);
                sent += chunk;
            }
            let secs = clock.now().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let expected = (sent - bucket.burst()) as f64 / rate as f64;
            assert!(
                (secs - expected).abs() <= expected * 0.1,
                "rate {rate}: {secs} s, expected {expected} s"
            );
        }
    }

    #[test]
    fn the_burst_passes_without_waiting_and_refills_with_time() {
        let (clock, bucket) = fake(1 << 20);
        bucket.take(bucket.burst());
        assert_eq!(clock.now(), Duration::ZERO);
        bucket.take(1 << 20);
        assert_eq!(clock.now(), Duration::from_secs(1));
        // An idle second refills at most one burst.
        clock.sleep(Duration::from_secs(10));
        let before = clock.now();
        bucket.take(bucket.burst());
        assert_eq!(clock.now(), before);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let (clock, bucket) = fake(0);
        bucket.take(u64::MAX / 2);
        assert_eq!(clock.now(), Duration::ZERO);
    }

    #[test]
    fn interruption_stops_the_wait() {
        let (clock, bucket) = fake(1000);
        assert!(!bucket.take_until(1_000_000, &|| true));
        assert!(clock.now() < Duration::from_secs(1));
        let calls = std::cell::Cell::new(0);
        let interrupted = || {
            calls.set(calls.get() + 1);
            calls.get() > 3
        };
        assert!(!bucket.take_until(1_000_000, &interrupted));
        assert!(clock.now() <= SLEEP_SLICE * 3);
    }

    #[test]
    fn shared_between_threads() {
        let (clock, bucket) = fake(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..16 {
                        bucket.take(16 * 1024);
                    }
                });
            }
        });
        // 1 MiB in total, a tenth of it free: nobody finishes before the
        // last reservation's deadline.
        let secs = clock.now().as_secs_f64();
        assert!(secs >= 0.899, "{secs}");
    }
}
