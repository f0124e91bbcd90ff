//! `barman check SERVER...|all [--nagios]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use barman_core::check::{CheckContext, CheckResult, CommandRunner, check_server};
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use serde_json::{Map, Value, json};

use super::select_servers;
use crate::args::Format;
use crate::exit::Exit;
use crate::output::{GLOBAL_ERRORS, Output};

/// Runs shell commands with a deadline (the `ssh` check).
struct ShellRunner;

impl CommandRunner for ShellRunner {
    fn run(&self, shell_command: &str, timeout: Duration) -> std::result::Result<i32, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(shell_command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status.code().unwrap_or(-1)),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {}s", timeout.as_secs()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// One console line: `\t<check>: OK|FAILED[ (hint)]`.
fn console_line(r: &CheckResult) -> String {
    let status = if r.ok { "OK" } else { "FAILED" };
    match &r.hint {
        Some(hint) => format!("\t{}: {status} ({hint})", r.check),
        None => format!("\t{}: {status}", r.check),
    }
}

/// The JSON key of a check, as Barman's JSON writer builds it.
fn json_key(check: &str) -> String {
    check.replace(' ', "_").to_lowercase()
}

/// The Nagios status line and detail lines for every server's results, as
/// Barman's Nagios writer prints them; `global_errors`: an error was
/// reported besides the checks (an unknown server).
pub fn nagios_report(
    results: &[(String, Vec<CheckResult>)],
    global_errors: bool,
) -> (bool, Vec<String>) {
    let servers: Vec<&str> = results.iter().map(|(s, _)| s.as_str()).collect();
    let mut perf = Vec::new();
    for (server, checks) in results {
        for c in checks {
            match (c.check.as_str(), c.perfdata) {
                ("backup minimum size", Some(bytes)) => perf.push(format!("{server}={bytes}B")),
                ("wal size", Some(bytes)) => perf.push(format!("{server}_wals={bytes}B")),
                _ => {}
            }
        }
    }
    let perf = if perf.is_empty() {
        String::new()
    } else {
        format!("|{}", perf.join(" "))
    };
    let failing: Vec<(&str, Vec<&CheckResult>)> = results
        .iter()
        .filter_map(|(s, checks)| {
            let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
            (!failed.is_empty()).then_some((s.as_str(), failed))
        })
        .collect();
    let mut lines = Vec::new();
    if failing.is_empty() && global_errors {
        lines.push(GLOBAL_ERRORS.to_owned());
        return (false, lines);
    }
    if failing.is_empty() {
        lines.push(match servers.as_slice() {
            [] => "BARMAN OK - No server configured".to_owned(),
            [one] => format!("BARMAN OK - Ready to serve the Espresso backup for {one}{perf}"),
            many => format!(
                "BARMAN OK - Ready to serve the Espresso backup for {} servers * {}{perf}",
                many.len(),
                many.join(" * ")
            ),
        });
        return (true, lines);
    }
    let summary: Vec<String> = failing
        .iter()
        .map(|(s, failed)| {
            let names: Vec<&str> = failed.iter().map(|c| c.check.as_str()).collect();
            format!("{s} FAILED: {}", names.join(", "))
        })
        .collect();
    lines.push(if servers.len() == 1 {
        format!(
            "BARMAN CRITICAL - server {} has issues * {}{perf}",
            servers[0],
            summary.join(" * ")
        )
    } else {
        format!(
            "BARMAN CRITICAL - {} server out of {} have issues * {}{perf}",
            failing.len(),
            servers.len(),
            summary.join(" * ")
        )
    });
    for (s, failed) in &failing {
        for c in failed {
            lines.push(match &c.hint {
                Some(hint) => format!("{s}.{}: FAILED ({hint})", c.check),
                None => format!("{s}.{}: FAILED", c.check),
            });
        }
    }
    (false, lines)
}

/// `barman check`: exit 1 when a check fails (2 = CRITICAL with `--nagios`).
pub fn run(
    config: &Config,
    names: &[String],
    nagios: bool,
    check_timeout: Option<u64>,
    out: &mut Output,
) -> Result<()> {
    let servers = select_servers(config, names, out);
    let hooks = super::interruptible_hooks(config, &servers)?;
    let mut results = Vec::new();
    for server in servers {
        let ctx = CheckContext {
            clock: &SystemClock,
            runner: &ShellRunner,
            timeout: Duration::from_secs(check_timeout.unwrap_or(server.check_timeout).max(1)),
            hooks: &hooks,
        };
        let checks = check_server(config.global(), server, &ctx);
        for c in checks.iter().filter(|c| !c.ok) {
            tracing::error!(
                "check failed for server {}: {}{}",
                server.name,
                c.check,
                c.hint
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            );
        }
        results.push((server.name.clone(), checks));
    }
    let all_ok = results.iter().all(|(_, c)| c.iter().all(|r| r.ok));
    if nagios {
        // Errors reported before (an unknown server) are Barman's "global
        // configuration errors"; nothing but these lines is printed.
        let global_errors = out.exit_code() != Exit::Ok;
        let (ok, lines) = nagios_report(&results, global_errors);
        out.nagios_status(&lines)?;
        if !ok {
            out.set_exit(Exit::Critical);
        }
        return Ok(());
    }
    match out.format() {
        Format::Console => {
            for (server, checks) in &results {
                out.line(&format!("Server {server}:"))?;
                for c in checks {
                    out.line(&console_line(c))?;
                }
            }
        }
        Format::Json => {
            for (server, checks) in &results {
                let mut doc = Map::new();
                for c in checks {
                    doc.insert(
                        json_key(&c.check),
                        json!({
                            "status": if c.ok { "OK" } else { "FAILED" },
                            "hint": c.hint.clone().unwrap_or_default(),
                        }),
                    );
                }
                out.json_result(server, Value::Object(doc));
            }
        }
    }
    if !all_ok {
        out.set_exit(Exit::Failure);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, ok: bool, hint: Option<&str>) -> CheckResult {
        CheckResult {
            check: check.into(),
            ok,
            hint: hint.map(Into::into),
            perfdata: None,
        }
    }

    #[test]
    fn nagios_ok_for_one_and_many_servers() {
        let mut size = result("backup minimum size", true, Some("1 B"));
        size.perfdata = Some(789);
        let one = vec![("a".to_owned(), vec![result("PostgreSQL", true, None), size])];
        let (ok, lines) = nagios_report(&one, false);
        assert!(ok);
        assert_eq!(
            lines,
            ["BARMAN OK - Ready to serve the Espresso backup for a|a=789B"]
        );
        let many = vec![
            ("a".to_owned(), vec![result("x", true, None)]),
            ("b".to_owned(), vec![result("x", true, None)]),
        ];
        let (_, lines) = nagios_report(&many, false);
        assert_eq!(
            lines,
            ["BARMAN OK - Ready to serve the Espresso backup for 2 servers * a * b"]
        );
        assert_eq!(
            nagios_report(&[], false).1,
            ["BARMAN OK - No server configured"]
        );
    }

    #[test]
    fn nagios_critical_lists_every_failure() {
        let res = vec![(
            "pg".to_owned(),
            vec![
                result("PostgreSQL", true, None),
                result("archiver errors", false, Some("1 duplicate")),
                result("backup maximum age", false, None),
            ],
        )];
        let (ok, lines) = nagios_report(&res, false);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "BARMAN CRITICAL - server pg has issues * pg FAILED: archiver errors, backup maximum age",
                "pg.archiver errors: FAILED (1 duplicate)",
                "pg.backup maximum age: FAILED",
            ]
        );
    }

    #[test]
    fn nagios_global_errors_without_failed_checks_are_critical() {
        let res = vec![("pg".to_owned(), vec![result("PostgreSQL", true, None)])];
        assert_eq!(
            nagios_report(&res, true),
            (false, vec![GLOBAL_ERRORS.to_owned()])
        );
        assert_eq!(
            nagios_report(&[], true),
            (false, vec![GLOBAL_ERRORS.to_owned()])
        );
        // With failed checks the failures are listed, as Barman does.
        let failed = vec![("pg".to_owned(), vec![result("wal_level", false, None)])];
        let (ok, lines) = nagios_report(&failed, true);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "BARMAN CRITICAL - server pg has issues * pg FAILED: wal_level",
                "pg.wal_level: FAILED"
            ]
        );
    }

    #[test]
    fn console_lines_and_json_keys() {
        assert_eq!(
            console_line(&result("wal_level", true, None)),
            "\twal_level: OK"
        );
        assert_eq!(
            console_line(&result(
                "failed backups",
                false,
                Some("there are 1 failed backups")
            )),
            "\tfailed backups: FAILED (there are 1 failed backups)"
        );
        assert_eq!(json_key("continuous archiving"), "continuous_archiving");
    }
}
