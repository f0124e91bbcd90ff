//! The bounded run of the test suite: every target on its seed corpus, then
//! on random mutations of it for a few seconds, with no external tool.
//!
//! The mutations are AFL's havoc stage in small: bit flips, interesting
//! values, arithmetic, block deletion, duplication and insertion, splicing
//! with another seed, and per-target tokens. The random generator is seeded
//! (`BARMAN_FUZZ_SEED`, else a fixed value), so a failure replays. An input
//! that panics, or that runs longer than [`SLOW`], fails the run; it is
//! saved by the test and its hex is printed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An input that takes longer than this is a hang (generous: the test
/// machine is shared and the test build is not optimised).
pub const SLOW: Duration = Duration::from_secs(10);

/// How many bytes of a failing input are shown (in hex).
const SHOWN: usize = 512;

/// The largest input the mutator makes.
const MAX_INPUT: usize = 64 * 1024;

/// How long each target runs on mutations by default.
const DEFAULT_SECONDS: f64 = 3.0;

/// Values AFL tries first: boundaries of signed and unsigned integers.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// A small, fast, seeded generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

/// Applies 1 to 8 random mutations to `data`, drawing splices from
/// `corpus` and tokens from `tokens`.
pub fn mutate(data: &mut Vec<u8>, corpus: &[Vec<u8>], tokens: &[&[u8]], rng: &mut Rng) {
    let rounds = 1 << rng.below(4);
    for _ in 0..rounds {
        mutate_once(data, corpus, tokens, rng);
    }
    data.truncate(MAX_INPUT);
}

fn mutate_once(data: &mut Vec<u8>, corpus: &[Vec<u8>], tokens: &[&[u8]], rng: &mut Rng) {
    let len = data.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.byte();
        }
        2 if len > 0 => {
            // Arithmetic on a byte.
            let i = rng.below(len);
            let delta = u8::try_from(rng.below(35)).unwrap_or(0).wrapping_sub(17);
            data[i] = data[i].wrapping_add(delta);
        }
        3 if len > 0 => {
            // An interesting value of 1, 2, 4 or 8 bytes, either endianness.
            let width = 1 << rng.below(4);
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let bytes = if rng.below(2) == 0 {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            let at = rng.below(len);
            let end = (at + width).min(len);
            let source = if rng.below(2) == 0 {
                &bytes[..width]
            } else {
                &bytes[8 - width..]
            };
            data[at..end].copy_from_slice(&source[..end - at]);
        }
        4 if len > 1 => {
            // Delete a block.
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            data.drain(at..at + n);
        }
        5 if len > 0 => {
            // Duplicate a block somewhere.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(256));
            let block = data[from..from + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, block);
        }
        6 => {
            // Insert random bytes.
            let n = 1 + rng.below(16);
            let at = rng.below(len + 1);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(at..at, bytes);
        }
        7 | 8 if !tokens.is_empty() => {
            // Insert or overwrite with a token.
            let token = tokens[rng.below(tokens.len())];
            let at = rng.below(len + 1);
            if rng.below(2) == 0 || at + token.len() > len {
                data.splice(at..at, token.iter().copied());
            } else {
                data[at..at + token.len()].copy_from_slice(token);
            }
        }
        9 if !corpus.is_empty() => {
            // Splice: our head, another seed's tail.
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ if len > 0 => {
            // Overwrite a block with a copy of another part.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(64));
            let block = data[from..from + n].to_vec();
            let at = rng.below(len);
            let end = (at + n).min(len);
            data[at..end].copy_from_slice(&block[..end - at]);
        }
        _ => data.push(rng.byte()),
    }
}

/// The files of `dir`, sorted by name (an absent directory is empty).
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// What a bounded run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    /// Seed inputs run.
    pub seeds: usize,
    /// Mutated inputs run.
    pub mutations: usize,
}

/// Why a bounded run failed: the input, and what happened.
#[derive(Debug)]
pub struct Failure {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message, or the hang's duration.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on a {}-byte input ", self.what, self.input.len())?;
        for b in self.input.iter().take(SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.input.len() > SHOWN {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Runs `target` once; a panic or a run longer than [`SLOW`] is a failure.
pub fn run_one(target: fn(&[u8]), input: &[u8]) -> Result<(), Failure> {
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = start.elapsed();
    let what = match outcome {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            format!("panic: {message}")
        }
        Ok(()) if took > SLOW => format!("hang: {took:?}"),
        Ok(()) => return Ok(()),
    };
    Err(Failure {
        input: input.to_vec(),
        what,
    })
}

/// Runs `target` on every seed of `corpus`, then on mutations of them for
/// `budget`. Stops at the first failure.
pub fn run_bounded(
    target: fn(&[u8]),
    corpus: &[Vec<u8>],
    tokens: &[&[u8]],
    budget: Duration,
    seed: u64,
) -> Result<RunStats, Failure> {
    for input in corpus {
        run_one(target, input)?;
    }
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut mutations = 0;
    while start.elapsed() < budget {
        let mut input = if corpus.is_empty() {
            Vec::new()
        } else {
            corpus[rng.below(corpus.len())].clone()
        };
        mutate(&mut input, corpus, tokens, &mut rng);
        run_one(target, &input)?;
        mutations += 1;
    }
    Ok(RunStats {
        seeds: corpus.len(),
        mutations,
    })
}

/// The time per target: `BARMAN_FUZZ_SECONDS`, else 3 seconds.
pub fn budget_from_env() -> Duration {
    let seconds = std::env::var("BARMAN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs_f64(seconds)
}

/// The generator's seed: `BARMAN_FUZZ_SEED`, else a fixed value.
pub fn seed_from_env() -> u64 {
    std::env::var("BARMAN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_ba12_3a4e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_bounded_and_change_inputs() {
        let corpus = vec![b"hello world".to_vec(), vec![0u8; 100]];
        let mut rng = Rng::new(7);
        let mut changed = 0;
        for _ in 0..10_000 {
            let mut input = corpus[rng.below(2)].clone();
            mutate(&mut input, &corpus, &[b"TOKEN"], &mut rng);
            assert!(input.len() <= MAX_INPUT);
            if !corpus.contains(&input) {
                changed += 1;
            }
        }
        assert!(changed > 9_000, "{changed}");
    }

    #[test]
    fn a_panicking_target_fails_the_run_with_its_input() {
        fn picky(data: &[u8]) {
            assert!(!data.starts_with(b"bad"), "picky");
        }
        let failure = run_bounded(
            picky,
            &[b"good".to_vec(), b"bad!".to_vec()],
            &[],
            Duration::ZERO,
            1,
        )
        .unwrap_err();
        assert_eq!(failure.input, b"bad!");
        assert!(failure.what.contains("picky"), "{}", failure.what);
        assert!(failure.to_string().ends_with("62616421"));
    }
}
