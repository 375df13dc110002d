#!/usr/bin/env bash
# Effect of resource sampling on throughput: the same closed-loop load with sampling on
# (default 1 s interval) and off (--no-monitor), alternated on, off, on, off, ... so that drift of
# the machine hits both sides alike. Prints the TPS of every run, the mean of each side, their
# difference, and the samplers' own cost per sample as recorded in run.json.
#
# Usage: scripts/bench-monitor-overhead.sh [rounds=3] [seconds=10] [clients=8]
# Needs: PostgreSQL server binaries (scripts/test.sh installs them), jq.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
clients=${3:-8}

cargo build --release -q
bin=$PWD/target/release/pgstorm
work=$(mktemp -d)
# A private TMPDIR gives this script its own persistent sandbox, apart from any other one.
export TMPDIR=$work
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD
cleanup() { "$bin" sandbox stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" sandbox start >/dev/null
"$bin" seed --scale 1 >/dev/null 2>&1

run() { # $1 = on|off
  local flags=()
  [ "$1" = off ] && flags=(--no-monitor)
  "$bin" queries -c "$clients" -T "$secs" --warmup 2 --label "mon-$1" \
    --results-dir "$work/results" "${flags[@]}" >/dev/null 2>&1
  ls -td "$work/results/"*"-mon-$1"* | head -1
}

printf '%-6s %-4s %10s %14s %16s\n' round mode tps host_us/sample server_us/sample
on=() off=()
for r in $(seq 1 "$rounds"); do
  for mode in on off; do
    dir=$(run "$mode")
    tps=$(jq '.load.summary.tps' "$dir/run.json")
    host_us=$(jq '.monitoring.host.cost_us_mean // empty' "$dir/run.json")
    server_us=$(jq '.monitoring.server.cost_us_mean // empty' "$dir/run.json")
    printf '%-6s %-4s %10.1f %14s %16s\n' "$r" "$mode" "$tps" \
      "${host_us:+$(printf '%.0f' "$host_us")}" "${server_us:+$(printf '%.0f' "$server_us")}"
    if [ "$mode" = on ]; then on+=("$tps"); else off+=("$tps"); fi
  done
done
mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.1f", s/NR}'; }
m_on=$(mean "${on[@]}")
m_off=$(mean "${off[@]}")
echo "mean tps: sampling on $m_on, off $m_off, difference $(awk -v a="$m_on" -v b="$m_off" \
  'BEGIN {printf "%+.2f%%", (a-b)/b*100}') (${rounds} rounds of ${secs} s, ${clients} clients)"
