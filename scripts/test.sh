#!/usr/bin/env bash
# The single test command: install the system test dependencies (PostgreSQL 15,
# OpenSSH, compressors, python3), check the module rules of
# docs/architecture.md, then run every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
python3 scripts/check-architecture.py
cargo test --workspace --all-targets
cargo test --workspace --doc
