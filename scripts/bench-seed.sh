#!/usr/bin/env bash
# Seeding throughput, side by side on one server: `pgbench -i -s P` against `pgstorm seed --scale
# S -j J` for comparable row counts (P = 10 is 1.0M pgbench_accounts rows; S = 250 is 1.03M POS
# rows), run alternately REPS times. Prints each run's seconds, rows/s and MB/s (MB = 10^6 bytes
# of tables and indexes afterwards, pg_total_relation_size), then the median ratio pgstorm /
# pgbench of rows/s and of MB/s for each --jobs value.
#
# Usage: scripts/bench-seed.sh --dsn CONNINFO [--pgbench-scale P] [--scale S] [--jobs 1,3] [--reps N]
#   PGSTORM (default target/release/pgstorm) is the binary measured. The target database gets
#   pgbench's tables and schema pgstorm; both are dropped at the end.
set -euo pipefail

DSN=""
PSCALE=10
SCALE=250
JOBS="1,3"
REPS=3
PGSTORM="${PGSTORM:-target/release/pgstorm}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dsn) DSN="$2"; shift 2 ;;
        --pgbench-scale) PSCALE="$2"; shift 2 ;;
        --scale) SCALE="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench-seed: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n "$DSN" ]] || { echo "bench-seed: give --dsn CONNINFO (the server to seed)" >&2; exit 2; }
[[ -x "$PGSTORM" ]] || { echo "bench-seed: $PGSTORM is not built: cargo build --release" >&2; exit 2; }

sql() { psql "$DSN" -XAtq -c "$1"; }
now() { date +%s.%N; }
bytes() { sql "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND $1"; }
cleanup() { sql "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers" || true
            "$PGSTORM" clean --dsn "$DSN" >/dev/null || true; }
trap cleanup EXIT

declare -A RATIO_ROWS RATIO_MB
IFS=, read -ra JOB_LIST <<< "$JOBS"
printf '%-22s %8s %10s %12s %8s\n' tool seconds rows rows/s MB/s
for rep in $(seq 1 "$REPS"); do
    t0=$(now); pgbench -i -q -s "$PSCALE" "$DSN" >/dev/null 2>&1; t1=$(now)
    b=$(bytes "c.relname LIKE 'pgbench\\_%'")
    rows=$(sql "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_branches)")
    pg_rps=$(echo "$rows / ($t1 - $t0)" | bc -l); pg_mbs=$(echo "$b / 1000000 / ($t1 - $t0)" | bc -l)
    printf '%-22s %8.2f %10d %12.0f %8.1f\n' "pgbench -i -s $PSCALE" "$(echo "$t1 - $t0" | bc -l)" "$rows" "$pg_rps" "$pg_mbs"
    sql "DROP TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers"
    for j in "${JOB_LIST[@]}"; do
        "$PGSTORM" clean --dsn "$DSN" >/dev/null
        t0=$(now); "$PGSTORM" seed --dsn "$DSN" --scale "$SCALE" -j "$j" >/dev/null 2>&1; t1=$(now)
        b=$(bytes "n.nspname = 'pgstorm' AND c.relname <> 'pgstorm_meta'")
        rows=$(sql "SELECT partners + orders + lines FROM pgstorm.pgstorm_meta")
        ps_rps=$(echo "$rows / ($t1 - $t0)" | bc -l); ps_mbs=$(echo "$b / 1000000 / ($t1 - $t0)" | bc -l)
        printf '%-22s %8.2f %10d %12.0f %8.1f\n' "pgstorm seed -s $SCALE -j $j" "$(echo "$t1 - $t0" | bc -l)" "$rows" "$ps_rps" "$ps_mbs"
        RATIO_ROWS[$j]+="$(echo "$ps_rps / $pg_rps" | bc -l) "
        RATIO_MB[$j]+="$(echo "$ps_mbs / $pg_mbs" | bc -l) "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for j in "${JOB_LIST[@]}"; do
    printf 'pgstorm -j %s / pgbench -i: rows/s %.2fx, MB/s %.2fx (median of %d)\n' "$j" \
        "$(echo "${RATIO_ROWS[$j]}" | median)" "$(echo "${RATIO_MB[$j]}" | median)" "$REPS"
done
