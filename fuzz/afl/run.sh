#!/usr/bin/env bash
# One AFL++ campaign on one fuzz target:
#   fuzz/afl/run.sh TARGET [EXECUTIONS]   (default 1000000)
# Needs cargo-afl (`cargo install cargo-afl`, then `cargo afl config --build`).
# Findings land in fuzz/afl/out/TARGET/default/{crashes,hangs}; the
# execution count and wall time in fuzz/afl/out/TARGET/default/fuzzer_stats.
# A campaign that already ran EXECUTIONS is not run again; SKIP_BUILD=1 uses
# the binary as it was last built.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh TARGET [EXECUTIONS]}
executions=${2:-1000000}
stats="out/$target/default/fuzzer_stats"
summary() {
    grep -E '^(execs_done|run_time|saved_crashes|saved_hangs|corpus_count|bitmap_cvg) ' "$stats"
}
# A campaign that already ran its executions is not run again.
if [ -f "$stats" ] && [ "$(awk '/^execs_done/ {print $3}' "$stats")" -ge "$executions" ]; then
    summary
    exit 0
fi
[ -n "${SKIP_BUILD:-}" ] || cargo afl build --release
mkdir -p out
# -E: stop after that many executions; -m: memory limit (MiB) of the
# target, so that an input making a parser allocate gigabytes is a crash;
# -t: an input running longer than 2 s is a hang (the machine is shared).
AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
AFL_NO_UI=1 AFL_AUTORESUME=1 \
    nice -n 10 cargo afl fuzz -i "../corpus/$target" -o "out/$target" \
    -E "$executions" -m 1024 -t 2000 \
    -- target/release/barman-fuzz-afl "$target"
summary
