#!/usr/bin/env bash
# Client cost of holding many connections: pgstorm's peak resident memory and CPU per transaction
# while 500 connections run SELECT 1 (prepared) flat out, next to `pgbench -c 500` doing the same,
# both measured the same way (GNU time -v of the process) in the same run against the same
# throwaway sandbox server.
#
# Usage: scripts/bench-connections.sh [connections] [seconds]     (default 500 20)
# Goal (issue #3): pgstorm peak RSS <= 128 MiB, CPU per transaction <= 1.5x pgbench's.
set -euo pipefail

CONNS=${1:-500}
SECS=${2:-20}
cd "$(dirname "$0")/.."

command -v pgbench >/dev/null || { echo "pgbench not found: apt-get install postgresql-client" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 2; }

cargo build --release -q
BIN=$PWD/target/release/pgstorm

# A private temp dir: the sandbox started below lives there and is stopped on exit. It must be
# traversable by the unprivileged user the server runs as when this runs as root.
WORK=$(mktemp -d)
chmod 755 "$WORK"
export TMPDIR=$WORK
cleanup() {
    "$BIN" sandbox stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

DSN=$("$BIN" sandbox start --max-connections $((CONNS + 100)) | sed -n 's/.*running: //p')
[ -n "$DSN" ] || { echo "sandbox did not start" >&2; exit 3; }
echo 'SELECT 1;' > "$WORK/select1.sql"

# Field of GNU time -v output: "<label>: <value>".
field() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }

measure() { # name tx_count time_file
    local rss_kb user sys
    rss_kb=$(field "$3" "Maximum resident set size (kbytes)")
    user=$(field "$3" "User time (seconds)")
    sys=$(field "$3" "System time (seconds)")
    python3 - "$1" "$2" "$rss_kb" "$user" "$sys" "$SECS" <<'PY'
import sys
name, tx, rss_kb, user, sys_s, secs = sys.argv[1:]
tx = int(tx); cpu = float(user) + float(sys_s)
print(f"{name:<8} {tx:>10} {tx/float(secs):>9.0f} {int(rss_kb)/1024:>13.1f} {cpu:>8.2f} {cpu*1e6/max(tx,1):>12.2f}")
PY
}

/usr/bin/time -v -o "$WORK/pgstorm.time" "$BIN" connections --dsn "$DSN" --steps "$CONNS" \
    -T "$SECS" --connect-rate unlimited -M prepared -q --results-dir "$WORK/results" \
    > "$WORK/pgstorm.out"
PGSTORM_TX=$(python3 -c 'import json,glob,sys; d=json.load(open(glob.glob(sys.argv[1]+"/*/run.json")[0])); print(d["connections"]["operations"])' "$WORK/results")

/usr/bin/time -v -o "$WORK/pgbench.time" pgbench -n -c "$CONNS" -j 2 -T "$SECS" -M prepared \
    -f "$WORK/select1.sql" "$DSN" > "$WORK/pgbench.out" 2>&1
PGBENCH_TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")

grep -E '^ +[0-9]+ |^success rate|^client:' "$WORK/pgstorm.out" | sed 's/^/pgstorm| /'
grep -E '^(tps|initial connection time|latency average)' "$WORK/pgbench.out" | sed 's/^/pgbench| /'
echo "$CONNS connections, SELECT 1 prepared, ${SECS} s, $(nproc) CPUs, $("$BIN" --version 2>/dev/null || echo pgstorm) vs $(pgbench --version)"
printf '%-8s %10s %9s %13s %8s %12s\n' tool tx tps peak_rss_MiB cpu_s cpu_us_per_tx
A=$(measure pgstorm "$PGSTORM_TX" "$WORK/pgstorm.time")
B=$(measure pgbench "$PGBENCH_TX" "$WORK/pgbench.time")
echo "$A"
echo "$B"
python3 - "$A" "$B" <<'PY'
import sys
a, b = (l.split() for l in sys.argv[1:])
print(f"pgstorm/pgbench CPU per transaction: {float(a[5])/float(b[5]):.2f}x (goal <= 1.5x); "
      f"pgstorm peak RSS {float(a[3]):.1f} MiB (goal <= 128 MiB)")
PY
