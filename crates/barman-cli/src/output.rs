//! Console and JSON output, as Barman's output layer does it.
//!
//! Console: results on stdout, `WARNING:`/`ERROR:` messages on stderr.
//! JSON: everything is collected and printed as one document at exit; messages
//! go under `_WARNING`, `_ERROR` and `_INFO` keys, results under their own keys.

use std::io::Write;

use serde_json::{Map, Value};

use crate::args::Format;
use crate::exit::Exit;

/// The output writer of one `barman` run; remembers whether an error was
/// reported so the exit code can be derived from it.
#[derive(Debug)]
pub struct Output {
    format: Format,
    quiet: bool,
    json: Map<String, Value>,
    exit: Exit,
}

impl Output {
    /// A writer for the given format.
    pub fn new(format: Format, quiet: bool) -> Self {
        Self {
            format,
            quiet,
            json: Map::new(),
            exit: Exit::Ok,
        }
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
        if self.format == Format::Console {
            writeln!(std::io::stdout(), "{text}")?;
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

    /// Prints the JSON document (JSON mode) and flushes.
    pub fn finish(self) {
        if self.format == Format::Json {
            let doc = Value::Object(self.json);
            let _ = writeln!(std::io::stdout(), "{doc}");
        }
        let _ = std::io::stdout().flush();
    }
}
