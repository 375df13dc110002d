#!/usr/bin/env bash
# Effect of resource sampling on throughput: the same closed-loop load with sampling on
# (default 1 s interval) and off (--no-monitor), alternated in ABBA order (on off, off on, ...) so
# that drift of the machine, and any effect of running first or second, hits both sides alike. Prints the TPS of every run, the mean of each side, their
# difference, and the samplers' own cost per sample as recorded in run.json (wall time, and the
# sampler thread's CPU time).
#
# Usage: scripts/bench-monitor-overhead.sh [rounds=4] [seconds=10] [clients=8]
# Needs: PostgreSQL server binaries (scripts/test.sh installs them), jq.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
secs=${2:-10}
clients=${3:-8}

cargo build --release -q
bin=$PWD/target/release/pgstorm
work=$(mktemp -d)
# As root the sandbox server runs as an unprivileged user, which must be able to enter it.
chmod 755 "$work"
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

printf '%-6s %-4s %10s %12s %12s %12s %12s\n' round mode tps host_wall_us host_cpu_us \
  server_wall_us server_cpu_us
on=() off=()
us() { jq -r "$1 // empty | floor" "$2"; }
for r in $(seq 1 "$rounds"); do
  order="on off"
  [ $((r % 2)) = 0 ] && order="off on"
  for mode in $order; do
    dir=$(run "$mode")
    j=$dir/run.json
    printf '%-6s %-4s %10.1f %12s %12s %12s %12s\n' "$r" "$mode" "$(jq '.load.summary.tps' "$j")" \
      "$(us .monitoring.host.cost_us_mean "$j")" "$(us .monitoring.host.cpu_us_mean "$j")" \
      "$(us .monitoring.server.cost_us_mean "$j")" "$(us .monitoring.server.cpu_us_mean "$j")"
    tps=$(jq '.load.summary.tps' "$j")
    if [ "$mode" = on ]; then on+=("$tps"); else off+=("$tps"); fi
  done
done
mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.1f", s/NR}'; }
m_on=$(mean "${on[@]}")
m_off=$(mean "${off[@]}")
echo "mean tps: sampling on $m_on, off $m_off, difference $(awk -v a="$m_on" -v b="$m_off" \
  'BEGIN {printf "%+.2f%%", (a-b)/b*100}') (${rounds} rounds of ${secs} s, ${clients} clients)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
