//! Console and JSON output, as Barman's output layer does it.
//!
//! Console: results on stdout, `WARNING:`/`ERROR:` messages on stderr.
//! JSON: everything is collected and printed as one document at exit; messages
//! go under `_WARNING`, `_ERROR` and `_INFO` keys, results under their own keys.
//! Nagios (`check --nagios`): nothing but the status line and its detail
//! lines, on stdout; messages are only logged, as Barman's Nagios writer
//! prints none of them.

use std::io::Write;

use serde_json::{Map, Value};

use crate::args::Format;
use crate::exit::Exit;

/// Barman's Nagios status when an error other than a failed check was
/// reported, or the configuration could not be loaded.
pub const GLOBAL_ERRORS: &str = "BARMAN CRITICAL - Global configuration errors";

/// The output writer of one `barman` run; remembers whether an error was
/// reported so the exit code can be derived from it.
#[derive(Debug)]
pub struct Output {
    format: Format,
    quiet: bool,
    json: Map<String, Value>,
    exit: Exit,
    nagios: Nagios,
}

/// Nagios mode (`check --nagios`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nagios {
    Off,
    /// On, no status printed yet.
    Pending,
    /// On, the status was printed.
    Printed,
}

impl Output {
    /// A writer for the given format.
    pub fn new(format: Format, quiet: bool) -> Self {
        Self {
            format,
            quiet,
            json: Map::new(),
            exit: Exit::Ok,
            nagios: Nagios::Off,
        }
    }

    /// Nagios mode: messages and results are not printed (only logged),
    /// the Nagios status comes from [`Output::nagios_status`], or, if no
    /// status was printed by the end (the configuration could not be
    /// loaded), [`GLOBAL_ERRORS`] with exit 2.
    pub fn set_nagios(&mut self) {
        self.nagios = Nagios::Pending;
    }

    /// Prints the Nagios status line and its detail lines on stdout.
    pub fn nagios_status(&mut self, lines: &[String]) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            writeln!(stdout, "{line}")?;
        }
        self.nagios = Nagios::Printed;
        Ok(())
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Reports an error; the run exits non-zero (1 unless overridden).
    pub fn error(&mut self, msg: &str) {
        self.error_with(msg, Exit::Failure);
    }

    /// Reports an error with a specific exit code (the last one set wins).
    pub fn error_with(&mut self, msg: &str, code: Exit) {
        tracing::error!("{msg}");
        self.exit = code;
        self.message("ERROR", msg, true);
    }

    /// Sets the exit code without printing a message (a failed `check`
    /// prints its own lines).
    pub fn set_exit(&mut self, code: Exit) {
        self.exit = code;
    }

    /// Reports a warning (logged always, printed unless `-q`).
    pub fn warning(&mut self, msg: &str) {
        tracing::warn!("{msg}");
        if !self.quiet {
            self.message("WARNING", msg, true);
        }
    }

    fn message(&mut self, level: &str, msg: &str, to_stderr: bool) {
        if self.nagios != Nagios::Off {
            return;
        }
        match self.format {
            Format::Console => {
                if to_stderr {
                    let _ = writeln!(std::io::stderr(), "{level}: {msg}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{msg}");
                }
            }
            Format::Json => {
                let key = format!("_{level}");
                if let Value::Array(list) = self
                    .json
                    .entry(key)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.push(Value::String(msg.to_owned()));
                }
            }
        }
    }

    /// Prints a console result line (ignored in JSON mode, where the command
    /// calls [`Output::json_result`] instead).
    pub fn line(&mut self, text: &str) -> std::io::Result<()> {
        if self.format == Format::Console && self.nagios == Nagios::Off {
            writeln!(std::io::stdout(), "{text}")?;
        }
        Ok(())
    }

    /// Prints a console line another barman process has logged already
    /// (a cron worker's): a `WARNING: ` or `ERROR: ` line as that message
    /// (an error sets the exit code), any other as a result line; nothing
    /// is logged again.
    pub fn relay(&mut self, text: &str) -> std::io::Result<()> {
        if let Some(w) = text.strip_prefix("WARNING: ") {
            if !self.quiet {
                self.message("WARNING", w, true);
            }
        } else if let Some(e) = text.strip_prefix("ERROR: ") {
            self.exit = Exit::Failure;
            self.message("ERROR", e, true);
        } else {
            self.line(text)?;
        }
        Ok(())
    }

    /// Sets a top-level key of the JSON document.
    pub fn json_result(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_owned(), value);
    }

    /// The exit code of the run so far.
    pub fn exit_code(&self) -> Exit {
        self.exit
    }

    /// Prints the JSON document (JSON mode) or, in Nagios mode, the
    /// global-errors status if no status was printed; flushes; the exit
    /// code of the run.
    pub fn finish(mut self) -> Exit {
        match self.nagios {
            Nagios::Pending => {
                let _ = writeln!(std::io::stdout(), "{GLOBAL_ERRORS}");
                self.exit = Exit::Critical;
            }
            Nagios::Printed => {}
            Nagios::Off => {
                if self.format == Format::Json {
                    let doc = Value::Object(self.json);
                    let _ = writeln!(std::io::stdout(), "{doc}");
                }
            }
        }
        let _ = std::io::stdout().flush();
        self.exit
    }
}
