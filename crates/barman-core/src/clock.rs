//! Time, injected: operations ask a [`Clock`] instead of the system, so
//! tests can fix the instant they see.

use std::fmt::Debug;

/// A source of the current time.
pub trait Clock: Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock stopped at one instant (for tests and reproducible runs).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}
