//! Integration tests for barman-hooks (one test binary): real shell scripts
//! run by `ShellRunner`.

mod shell;
