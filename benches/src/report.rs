//! What every scenario's report shares: where it goes, how its two
//! documents (`NAME.md`, `NAME.json`) are written and announced, and the
//! cells and verdicts of its tables. Each scenario supplies its own rows,
//! Markdown and JSON (`*/report.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use crate::machine::Machine;

/// The conditions a scenario ran in, at the head of every report: the
/// machine and the load average before the fixture was built and after
/// the last run.
#[derive(Debug, Clone)]
pub struct Conditions {
    /// The machine.
    pub machine: Machine,
    /// `/proc/loadavg` before the fixture was built.
    pub load_before: String,
    /// `/proc/loadavg` after the last run (empty until [`ended`](Self::ended)).
    pub load_after: String,
}

impl Conditions {
    /// The conditions of a scenario on `machine` whose load average before
    /// its fixture was `load_before`.
    pub fn new(machine: Machine, load_before: String) -> Self {
        Self {
            machine,
            load_before,
            load_after: String::new(),
        }
    }

    /// The same, with the load average now as the one after the last run.
    #[must_use]
    pub fn ended(mut self) -> Self {
        self.load_after = crate::machine::load_average();
        self
    }

    /// The machine's description and the load averages, as Markdown
    /// paragraphs (each followed by a blank line).
    pub fn markdown(&self) -> String {
        format!(
            "{}\n\nLoad average (1/5/15 min) before: {}; after: {}.\n\n",
            self.machine.to_markdown(),
            self.load_before,
            self.load_after
        )
    }

    /// The JSON document of `scenario`: its name, the machine and the load
    /// averages, then the keys of `rest` (an object) in their order.
    pub fn document(&self, scenario: &str, rest: Value) -> Value {
        let mut doc = Map::new();
        doc.insert("scenario".into(), scenario.into());
        doc.insert("machine".into(), self.machine.to_json());
        doc.insert(
            "load_average_before".into(),
            self.load_before.as_str().into(),
        );
        doc.insert("load_average_after".into(), self.load_after.as_str().into());
        if let Value::Object(rest) = rest {
            doc.extend(rest);
        }
        Value::Object(doc)
    }
}

/// Where reports go by default: `<cargo target dir>/bench-report`.
pub fn default_dir() -> PathBuf {
    barman_testkit::target_bin_dir()
        .ok()
        .and_then(|d| d.parent().map(|p| p.join("bench-report")))
        .unwrap_or_else(|| PathBuf::from("target/bench-report"))
}

/// Writes `NAME.md` and `NAME.json` (pretty-printed), each ending with a
/// newline, into `out` (created if needed; [`default_dir`] when `None`),
/// and returns that directory.
pub fn write(out: Option<&Path>, name: &str, markdown: &str, json: &Value) -> Result<PathBuf> {
    let out = out.map_or_else(default_dir, Path::to_path_buf);
    fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let json = serde_json::to_string_pretty(json)?;
    for (file, text) in [
        (format!("{name}.md"), markdown),
        (format!("{name}.json"), json.as_str()),
    ] {
        let path = out.join(file);
        fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(out)
}

/// A scenario's report: the Markdown and the JSON document (whose head is
/// [`Conditions::document`]).
pub trait Document {
    /// The Markdown report.
    fn markdown(&self) -> String;
    /// The JSON report, with every run.
    fn json(&self) -> Value;
}

/// A scenario's end: [`write`]s its report `doc` as `NAME.md` and
/// `NAME.json`, prints the Markdown on stdout and says on stderr where
/// both documents are.
pub fn publish(out: Option<&Path>, name: &str, doc: &dyn Document) -> Result<()> {
    let markdown = doc.markdown();
    let dir = write(out, name, &markdown, &doc.json())?;
    println!("{markdown}");
    eprintln!("report written to {}/{name}.{{md,json}}", dir.display());
    Ok(())
}

/// A target's verdict: `PASS`, `MISS`, or `n/a` when it was not measured.
pub fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "n/a",
    }
}

/// A table cell: `x` with `digits` decimals, or an en dash.
pub fn cell(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_verdicts() {
        assert_eq!(cell(Some(1.25), 1), "1.2");
        assert_eq!(cell(None, 2), "–");
        assert_eq!(verdict(Some(true)), "PASS");
        assert_eq!(verdict(Some(false)), "MISS");
        assert_eq!(verdict(None), "n/a");
    }

    #[test]
    fn writes_both_documents_with_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let out = write(
            Some(&dir.path().join("r")),
            "x",
            "## x",
            &serde_json::json!({"a": 1}),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(out.join("x.md")).unwrap(), "## x\n");
        assert_eq!(
            fs::read_to_string(out.join("x.json")).unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
    }
}
