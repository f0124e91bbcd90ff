//! Integration tests for barman-retention (one test binary).

mod policy;
