//! What a report records about the machine and the software it ran on.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The machine and software versions a benchmark ran on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub nproc: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os: String,
    /// `MemTotal` from `/proc/meminfo`, in GiB.
    pub memory_gib: f64,
    /// The filesystem type and device under `/tmp` (where every file of the
    /// run lives), from `findmnt`.
    pub tmp_fs: String,
    /// `postgres --version`.
    pub postgres: String,
    /// `ssh -V`.
    pub openssh: String,
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
    /// UTC start time (`date -u`).
    pub date: String,
}

impl Machine {
    /// Collects the description; parts that cannot be read are `"unknown"`.
    pub fn probe(pg_bin: &Path) -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(unknown);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| unknown(), |s| s.trim().to_owned());
        let os = fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(unknown);
        let memory_kib: u32 = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new("."));
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            kernel,
            os,
            memory_gib: f64::from(memory_kib) / (1024.0 * 1024.0),
            tmp_fs: first_line(Command::new("findmnt").args([
                "-n",
                "-o",
                "FSTYPE,SOURCE",
                "--target",
                "/tmp",
            ]))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
            postgres: first_line(Command::new(pg_bin.join("postgres")).arg("--version")),
            openssh: first_line(Command::new("ssh").arg("-V")),
            commit: first_line(
                Command::new("git")
                    .arg("-C")
                    .arg(workspace)
                    .args(["describe", "--always", "--dirty"]),
            ),
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
        }
    }

    /// The description as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "nproc": self.nproc,
            "cpu": self.cpu,
            "kernel": self.kernel,
            "os": self.os,
            "memory_gib": (self.memory_gib * 10.0).round() / 10.0,
            "tmp_filesystem": self.tmp_fs,
            "postgres": self.postgres,
            "openssh": self.openssh,
            "commit": self.commit,
            "date": self.date,
        })
    }

    /// One Markdown paragraph.
    pub fn to_markdown(&self) -> String {
        format!(
            "Machine: {}, {} logical CPUs, {:.1} GiB RAM, {}, kernel {}, /tmp on {}. \
             {}; {}. barman-rs {}; run started {}.",
            self.cpu,
            self.nproc,
            self.memory_gib,
            self.os,
            self.kernel,
            self.tmp_fs,
            self.postgres,
            self.openssh,
            self.commit,
            self.date
        )
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| unknown(),
        |t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The first non-empty line a command prints (stdout, else stderr).
fn first_line(cmd: &mut Command) -> String {
    let Ok(out) = cmd.output() else {
        return unknown();
    };
    [out.stdout, out.stderr]
        .iter()
        .find_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(unknown)
}
