//! Retry pacing: [`RetryPacing`] says how long to wait after a failed run of
//! a retry hook, a [`Sleeper`] waits (injected, so tests take no time).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Waits between runs of a retry hook.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Waits `duration`, or less if `cancel` is set meanwhile.
    fn sleep(&self, duration: Duration, cancel: Option<&AtomicBool>);
}

/// The real [`Sleeper`]: `thread::sleep` in slices of at most 100 ms,
/// checking the cancel flag between slices.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, duration: Duration, cancel: Option<&AtomicBool>) {
        let end = Instant::now() + duration;
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// Barman's pacing of a retry hook that keeps failing
/// (`RetryHookScriptRunner`: `BREAK_TIME`, `NAP_TIME`, `ATTEMPTS_BEFORE_NAP`).
///
/// After each failed run Barman takes a short break while its attempt
/// counter is at most `attempts_before_nap`, and otherwise a nap that resets
/// the counter. The counter starts at 1, so with the defaults the pauses are
/// 3 s after failures 1 to 5, 60 s after failure 6, then again 3 s × 5 and
/// 60 s, for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPacing {
    /// The short break (`BREAK_TIME`, 3 s).
    pub break_time: Duration,
    /// The long nap (`NAP_TIME`, 60 s).
    pub nap_time: Duration,
    /// Short breaks before a nap (`ATTEMPTS_BEFORE_NAP`, 5).
    pub attempts_before_nap: u32,
}

impl Default for RetryPacing {
    fn default() -> Self {
        Self {
            break_time: Duration::from_secs(3),
            nap_time: Duration::from_secs(60),
            attempts_before_nap: 5,
        }
    }
}

impl RetryPacing {
    /// Whether the pause after the `failures`-th consecutive failed run
    /// (1-based) is the long nap.
    pub fn naps_after(&self, failures: u32) -> bool {
        let cycle = u64::from(self.attempts_before_nap) + 1;
        u64::from(failures.max(1)) % cycle == 0
    }

    /// The pause after the `failures`-th consecutive failed run (1-based).
    pub fn pause_after(&self, failures: u32) -> Duration {
        if self.naps_after(failures) {
            self.nap_time
        } else {
            self.break_time
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barman_pauses_five_short_breaks_then_a_nap() {
        let pacing = RetryPacing::default();
        let pauses: Vec<u64> = (1..=13).map(|n| pacing.pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [3, 3, 3, 3, 3, 60, 3, 3, 3, 3, 3, 60, 3]);
    }

    #[test]
    fn other_counts() {
        let pacing = RetryPacing {
            break_time: Duration::from_millis(1),
            nap_time: Duration::from_millis(7),
            attempts_before_nap: 2,
        };
        let pauses: Vec<u128> = (1..=6).map(|n| pacing.pause_after(n).as_millis()).collect();
        assert_eq!(pauses, [1, 1, 7, 1, 1, 7]);
        let always_nap = RetryPacing {
            attempts_before_nap: 0,
            ..pacing
        };
        assert_eq!(always_nap.pause_after(1), Duration::from_millis(7));
    }

    #[test]
    fn thread_sleeper_returns_early_when_cancelled() {
        let cancel = AtomicBool::new(true);
        let started = Instant::now();
        ThreadSleeper.sleep(Duration::from_secs(30), Some(&cancel));
        assert!(started.elapsed() < Duration::from_secs(1));
        let started = Instant::now();
        ThreadSleeper.sleep(Duration::from_millis(30), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
