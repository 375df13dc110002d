#!/usr/bin/env bash
# The README's screenshot of report.html: a real quick-profile run on a throwaway sandbox cluster
# (pgstorm starts and removes it), its report.html rendered by headless Chromium at 1200 x 900,
# the first screen only, written to docs/report.png. The run's folder goes to a temporary
# directory, not to results/: it exists to be looked at, not archived.
#
# Usage: scripts/screenshot.sh [-T SECONDS] [--out FILE]
#   PGSTORM (default target/debug/pgstorm, built if missing) is the binary that runs.
#   Needs chromium (scripts/test.sh installs it) and the PostgreSQL server binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_MEASURED=10
OUT=docs/report.png
PGSTORM="${PGSTORM:-target/debug/pgstorm}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        -T) SECONDS_MEASURED="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "screenshot: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v chromium >/dev/null || { echo "screenshot: chromium not found: apt-get install chromium" >&2; exit 2; }
[[ -x "$PGSTORM" ]] || cargo build --quiet

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Exit 1 (a criterion failed) still leaves a report worth showing.
"$PGSTORM" run --profile quick -T "$SECONDS_MEASURED" --warmup 2 --results-dir "$work/results" \
    >"$work/run.log" 2>&1 || [[ $? -eq 1 ]] || { cat "$work/run.log" >&2; exit 1; }
run_dir=$(ls -d "$work"/results/*-quick | head -n1)
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --window-size=1200,900 \
    --screenshot="$work/report.png" "file://$run_dir/report.html" >/dev/null 2>&1
[[ -s "$work/report.png" ]] || { echo "screenshot: chromium wrote no image" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
mv "$work/report.png" "$OUT"
echo "screenshot: $OUT from $(basename "$run_dir") ($(stat -c %s "$OUT") bytes)"
