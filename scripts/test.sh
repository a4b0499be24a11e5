#!/usr/bin/env bash
# The kubefim test command (README): formatting, lints with warnings denied, every test, and the
# CRD drift check (a test). Installs the external tools the tests run for real (aide, b3sum,
# promtool, helm, and a debootstrapped Debian root) first; safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

tools_bin=$(bash scripts/install-tools.sh | tail -n 1)
export PATH="$tools_bin:$PATH"

# The Debian bookworm root of tests/bookworm.rs, made once with debootstrap from the machine's
# Debian mirror and cached outside the repository (a minute or two the first time).
echo "== bookworm root: $(bash scripts/bookworm-root.sh)"

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

echo "== rustfmt"
cargo fmt --all --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# The end-to-end scenarios need a cluster (scripts/e2e.sh); they are compiled here, and the
# unit tests of their helpers run, but the scenarios themselves do not.
cargo nextest run --workspace --locked --no-fail-fast -E 'not (package(kubefim-e2e) & kind(test))'

echo "== fuzz"
# Each fuzz target for a bounded time (scripts/fuzz.sh): a crash, hang or runaway input fails the
# run and is kept under fuzz/regressions/ for the replay test.
KUBEFIM_FUZZ_SECONDS=${KUBEFIM_FUZZ_SECONDS:-60} scripts/fuzz.sh
