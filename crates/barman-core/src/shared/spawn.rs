//! Process spawning, injected so that tests and embedders control it.

use std::process::Command;

/// Starts processes (injected so that tests and embedders control spawning).
pub trait Spawner: Send + Sync {
    /// A command running `shell_command` (a shell command line).
    fn shell(&self, shell_command: &str) -> Command;
}

/// Spawns through `sh -c`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShellSpawner;

impl Spawner for ShellSpawner {
    fn shell(&self, shell_command: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(shell_command);
        c
    }
}
