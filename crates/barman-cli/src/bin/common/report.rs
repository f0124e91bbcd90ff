//! Messages on standard error, in the form Barman's client scripts use
//! (`ERROR: ...`, `WARNING: ...`): PostgreSQL copies them into its log.

/// Prints `ERROR: message` on standard error.
pub fn error(message: &str) {
    eprintln!("ERROR: {message}");
}

/// Prints `WARNING: message` on standard error.
pub fn warning(message: &str) {
    eprintln!("WARNING: {message}");
}
