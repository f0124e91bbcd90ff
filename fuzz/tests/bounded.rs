//! The bounded fuzz run of the test suite: each target on its seed corpus
//! (`fuzz/corpus/<target>/`), then on random mutations of it for a few
//! seconds (`BARMAN_FUZZ_SECONDS`, default 3; `BARMAN_FUZZ_SEED` changes
//! the mutations). A panic or a hang fails the test and names the input.

use std::path::Path;

use barman_fuzz::runner::{budget_from_env, read_corpus, run_bounded, seed_from_env};
use barman_fuzz::{TARGETS, Target};

fn run(name: &str) {
    let target: &Target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let corpus = read_corpus(&dir);
    assert!(!corpus.is_empty(), "no seed in {}", dir.display());
    match run_bounded(
        target.run,
        &corpus,
        target.tokens,
        budget_from_env(),
        seed_from_env(),
    ) {
        Ok(stats) => eprintln!(
            "{name}: {} seeds, {} mutations, no failure",
            stats.seeds, stats.mutations
        ),
        Err(failure) => {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-failure-{name}"));
            let _ = std::fs::write(&out, &failure.input);
            panic!("{name}: {failure} (saved as {})", out.display());
        }
    }
}

#[test]
fn agent_client() {
    run("agent_client");
}

#[test]
fn agent_serve() {
    run("agent_serve");
}

#[test]
fn put_wal() {
    run("put_wal");
}

#[test]
fn backup_info() {
    run("backup_info");
}

#[test]
fn xlog_db() {
    run("xlog_db");
}

#[test]
fn barman_conf() {
    run("barman_conf");
}

#[test]
fn wal_header() {
    run("wal_header");
}

#[test]
fn replication() {
    run("replication");
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let source = include_str!("bounded.rs");
    for target in TARGETS {
        assert!(
            source.contains(&format!("fn {}()", target.name)),
            "no test for {}",
            target.name
        );
    }
}
