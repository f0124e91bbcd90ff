//! What every scenario's report shares: where it goes, how its two
//! documents (`NAME.md`, `NAME.json`) are written and announced, and the
//! cells and verdicts of its tables. Each scenario supplies its own rows,
//! Markdown and JSON (`*/report.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

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

/// A scenario's end: [`write`]s its report, prints the Markdown on stdout
/// and says on stderr where both documents are.
pub fn publish(out: Option<&Path>, name: &str, markdown: &str, json: &Value) -> Result<()> {
    let dir = write(out, name, markdown, json)?;
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
