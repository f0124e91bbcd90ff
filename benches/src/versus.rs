//! Side by side: each barman-rs operation beside the peers' operations with
//! the same settings, as time ratios (peer ÷ barman-rs: > 1 means barman-rs
//! is faster), for every scenario's report.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// One measured row: its id, median seconds (or another "lower is
/// better" figure) and, for a peer's row, the barman-rs row it is compared
/// with.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The operation's id.
    pub id: &'a str,
    /// Median seconds (lower is better).
    pub seconds: f64,
    /// The barman-rs operation a peer's row is compared with.
    pub peer_of: Option<&'a str>,
}

/// The peer a row id belongs to.
fn peer_name(id: &str) -> &'static str {
    if id.starts_with("pgbackrest") {
        "pgBackRest"
    } else if id.starts_with("barman-py") {
        "Barman"
    } else {
        "peer"
    }
}

/// One comparison: barman-rs's row and a peer's.
#[derive(Debug, Clone)]
pub struct Pair<'a> {
    /// barman-rs's operation and median.
    pub ours: (&'a str, f64),
    /// The peer's name, operation and median.
    pub peer: (&'static str, &'a str, f64),
}

impl Pair<'_> {
    /// Peer's time ÷ ours (> 1: barman-rs is faster).
    pub fn ratio(&self) -> f64 {
        self.peer.2 / self.ours.1
    }

    /// Whether barman-rs is faster.
    pub fn faster(&self) -> bool {
        self.ours.1 < self.peer.2
    }
}

/// Every comparison among `rows`, in the order of the peers' rows.
pub fn pairs<'a>(rows: &[Row<'a>]) -> Vec<Pair<'a>> {
    rows.iter()
        .filter_map(|p| {
            let of = p.peer_of?;
            let ours = rows.iter().find(|r| r.id == of && r.peer_of.is_none())?;
            Some(Pair {
                ours: (ours.id, ours.seconds),
                peer: (peer_name(p.id), p.id, p.seconds),
            })
        })
        .collect()
}

/// The Markdown section (empty when no peer ran). `unit` names the
/// figure ("s", "ms").
pub fn markdown(rows: &[Row<'_>], unit: &str) -> String {
    let pairs = pairs(rows);
    if pairs.is_empty() {
        return String::new();
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\nSide by side at equal settings (peer ÷ barman-rs: > 1 means barman-rs is faster):\n"
    );
    let _ = writeln!(
        md,
        "| barman-rs | {unit} | peer | peer's operation | {unit} | peer ÷ barman-rs | verdict |"
    );
    let _ = writeln!(md, "|---|--:|---|---|--:|--:|---|");
    for p in &pairs {
        let verdict = if p.faster() {
            "**PASS** (faster)".to_owned()
        } else {
            format!("**MISS** ({:.0} % slower)", (1.0 / p.ratio() - 1.0) * 100.0)
        };
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {} | {:.2} | {:.2}× | {verdict} |",
            p.ours.0,
            p.ours.1,
            p.peer.0,
            p.peer.1,
            p.peer.2,
            p.ratio()
        );
    }
    md
}

/// The JSON array of the comparisons.
pub fn json(rows: &[Row<'_>]) -> Value {
    Value::Array(
        pairs(rows)
            .iter()
            .map(|p| {
                json!({
                    "barman_rs": p.ours.0,
                    "barman_rs_value": p.ours.1,
                    "peer": p.peer.0,
                    "peer_operation": p.peer.1,
                    "peer_value": p.peer.2,
                    "peer_over_barman_rs": p.ratio(),
                    "verdict": crate::report::verdict(Some(p.faster())),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_match_peer_rows_to_ours() {
        let rows = [
            Row {
                id: "local-j1",
                seconds: 2.0,
                peer_of: None,
            },
            Row {
                id: "pgbackrest-p1",
                seconds: 3.0,
                peer_of: Some("local-j1"),
            },
            Row {
                id: "barman-py-local-j1",
                seconds: 1.0,
                peer_of: Some("local-j1"),
            },
            Row {
                id: "barman-py-x",
                seconds: 1.0,
                peer_of: Some("missing"),
            },
        ];
        let p = pairs(&rows);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].peer.0, "pgBackRest");
        assert!(p[0].faster());
        assert!((p[0].ratio() - 1.5).abs() < 1e-9);
        assert_eq!(p[1].peer.0, "Barman");
        assert!(!p[1].faster());
        let md = markdown(&rows, "s");
        assert!(md.contains("**MISS** (100 % slower)"), "{md}");
        assert!(md.contains("| local-j1 | 2.00 | pgBackRest | pgbackrest-p1 | 3.00 | 1.50× | **PASS** (faster) |"), "{md}");
        assert!(markdown(&rows[..1], "s").is_empty());
    }
}
