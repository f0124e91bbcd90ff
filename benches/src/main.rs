//! End-to-end benchmarks of barman-rs (whole commands against real clusters).
//!
//! The end-to-end scenarios (base backup, incremental backup, WAL archiving and
//! recovery, side by side with pgBackRest and Barman) are built with the
//! commands they measure; until then this binary only lists what exists.
//! Micro-benchmarks live in each crate's `benches/` (`cargo bench -p barman-wal`).

use std::io::Write;

fn main() {
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "barman-benches: no end-to-end scenario yet.\n\
         Micro-benchmarks: cargo bench -p barman-wal (WAL names; codecs vs gzip/bzip2/xz/zstd/lz4 CLIs)."
    );
}
