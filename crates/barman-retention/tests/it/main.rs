//! Integration tests for barman-retention (one test binary).

mod evaluate;
mod policy;
mod wal;
