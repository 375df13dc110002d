#!/usr/bin/env bash
# The calibration table of `pgstorm compare` in docs/measurements.md: the false-positive rate of
# simulated A/A comparisons and the power for a 5 % and a 10 % true change, at 2, 3, 5 and 10
# runs per side, for independent sets and for the pairs of a study, from the same verdict code
# compare runs (src/compare/calibrate.rs). Deterministic: the same trials give the same table.
#
# Rows drawn from real runs: every archived set under results/ labelled calibration-aa (made
# with nothing changed, see the README, "How compare decides"), or the set folders given after
# the trials.
#
# Usage: scripts/calibrate-compare.sh [trials per cell=500] [set folder ...]
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-500}"
shift || true
sets=("$@")
if [ ${#sets[@]} -eq 0 ]; then
  for d in results/*-calibration-aa-set; do
    [ -d "$d" ] && sets+=("$d")
  done
fi
cargo bench -q --bench compare_calibration -- "$trials" "${sets[@]}"
