#!/usr/bin/env bash
# Differential conformance against the installed pgbench (PostgreSQL 15): runs the corpus of
# tests/corpus/conformance/ and N generated expressions (default 5000) through both pgbench and
# pgstorm on a sandbox with the same seed, and prints the summary (cases, agreements,
# intentional and unintended differences) and every difference.
# Usage: scripts/conformance.sh [N] [generator seed]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count="${1:-5000}"
seed="${2:-19}"
command -v pgbench >/dev/null || { echo "conformance.sh: pgbench is not on PATH" >&2; exit 2; }
PGSTORM_CONFORMANCE_FUZZ="$count:$seed" \
  cargo test --test conformance pgstorm_runs_scripts_as_pgbench_does -- --nocapture 2>&1 |
  grep -E '^(conformance:|  )|^test result'
