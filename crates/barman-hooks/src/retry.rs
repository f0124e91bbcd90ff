//! [`RetryOutcome`]: what a retry hook's exit status means.

/// Exit status meaning success.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status meaning "give up on this hook, carry on with the operation".
pub const EXIT_ABORT_CONTINUE: i32 = 62;
/// Exit status meaning "give up, and stop the operation" (pre hooks only).
pub const EXIT_ABORT_STOP: i32 = 63;

/// The meaning of one run of a retry hook script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryOutcome {
    /// Exit 0: the hook succeeded.
    Success,
    /// Exit 62 (`ABORT_CONTINUE`): stop retrying, warn, run the operation anyway.
    AbortContinue,
    /// Exit 63 (`ABORT_STOP`): stop retrying; a pre hook aborts the operation,
    /// a post hook is logged and treated as [`AbortContinue`](Self::AbortContinue).
    AbortStop,
    /// Any other exit status, or death by a signal: run the hook again.
    Retry,
}

impl RetryOutcome {
    /// Classifies an exit code: 0, 62 and 63 end the retry loop, anything else
    /// means run the hook again.
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            EXIT_SUCCESS => Self::Success,
            EXIT_ABORT_CONTINUE => Self::AbortContinue,
            EXIT_ABORT_STOP => Self::AbortStop,
            _ => Self::Retry,
        }
    }

    /// Classifies a process exit status as [`std::process::ExitStatus::code`]
    /// gives it: `None` (killed by a signal) means retry, as Barman retries any
    /// status other than 0, 62 and 63.
    pub fn from_status_code(code: Option<i32>) -> Self {
        code.map_or(Self::Retry, Self::from_exit_code)
    }

    /// Whether the retry loop ends with this outcome.
    pub fn is_final(self) -> bool {
        self != Self::Retry
    }

    /// Whether the outcome aborts the operation: only `ABORT_STOP` from a pre hook.
    pub fn aborts_operation(self, phase: crate::HookPhase) -> bool {
        self == Self::AbortStop && phase == crate::HookPhase::Pre
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HookPhase;

    #[test]
    fn exit_codes_map_like_barman() {
        assert_eq!(RetryOutcome::from_exit_code(0), RetryOutcome::Success);
        assert_eq!(
            RetryOutcome::from_exit_code(62),
            RetryOutcome::AbortContinue
        );
        assert_eq!(RetryOutcome::from_exit_code(63), RetryOutcome::AbortStop);
        for other in [1, 2, 61, 64, 127, 255, -1] {
            assert_eq!(
                RetryOutcome::from_exit_code(other),
                RetryOutcome::Retry,
                "{other}"
            );
        }
        assert_eq!(RetryOutcome::from_status_code(None), RetryOutcome::Retry);
        assert_eq!(
            RetryOutcome::from_status_code(Some(63)),
            RetryOutcome::AbortStop
        );
    }

    #[test]
    fn only_retry_keeps_the_loop_going() {
        assert!(RetryOutcome::Success.is_final());
        assert!(RetryOutcome::AbortContinue.is_final());
        assert!(RetryOutcome::AbortStop.is_final());
        assert!(!RetryOutcome::Retry.is_final());
    }

    #[test]
    fn abort_stop_aborts_only_before_the_operation() {
        assert!(RetryOutcome::AbortStop.aborts_operation(HookPhase::Pre));
        assert!(!RetryOutcome::AbortStop.aborts_operation(HookPhase::Post));
        assert!(!RetryOutcome::AbortContinue.aborts_operation(HookPhase::Pre));
        assert!(!RetryOutcome::Retry.aborts_operation(HookPhase::Pre));
    }
}
