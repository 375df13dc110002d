#!/usr/bin/env bash
# Seeding throughput, side by side on one server: `pgbench -i -s P` against `pgstorm seed --scale
# S -j J` for comparable row counts (P = 10 is 1.0M pgbench_accounts rows; S = 250 is 1.03M POS
# rows), run alternately REPS times. Prints each run's seconds, rows/s and MB/s (MB = 10^6 bytes
# of tables and indexes afterwards, pg_total_relation_size), then the median ratio pgstorm /
# pgbench of rows/s and of MB/s for each --jobs value.
# Each run also gets the CPU seconds of the whole machine while it ran (/proc/stat: user, nice,
# system, irq, softirq) and the tool's own (GNU time). With the server on this machine and
# nothing else running, their difference per row is the server's work per row ("srv us/row"),
# and busy seconds near nproc times the run's seconds mean the seed was CPU-bound.
# "load s" is the part of each run that loads the rows (pgbench's "client-side generate" phase;
# pgstorm's COPY phases, first start to last end, from its "seed phase" lines), so "load rows/s"
# compares the loading apart from the index builds, VACUUM and keys that follow it.
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

# Quiet NOTICEs (the cleanup's DROP ... IF EXISTS of tables already gone).
sql() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql "$DSN" -XAtq -c "$1"; }
now() { date +%s.%N; }
# Busy CPU seconds of the whole machine so far.
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
# timed OUT CMD... : runs CMD with its output in file OUT; prints "seconds busy_s client_s"
# (fails, showing the end of OUT, if CMD does).
timed() {
    local t0 t1 b0 b1 rus out="$1"; shift
    rus=$(mktemp)
    b0=$(busy); t0=$(now)
    /usr/bin/time -f "%U %S" -o "$rus" "$@" >"$out" 2>&1 || { tail -5 "$out" >&2; rm -f "$rus"; return 1; }
    t1=$(now); b1=$(busy)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$b1 - $b0" | bc -l) $(awk 'END {print $1 + $2}' "$rus")"
    rm -f "$rus"
}
# report TOOL ROWS BYTES "seconds busy_s client_s" LOAD_S : prints one line; sets RPS, MBS, SRV
# and LRPS (rows per second of the load phase).
report() {
    local secs busy_s client_s; read -r secs busy_s client_s <<< "$4"
    RPS=$(echo "$2 / $secs" | bc -l); MBS=$(echo "$3 / 1000000 / $secs" | bc -l)
    SRV=$(echo "($busy_s - $client_s) * 1000000 / $2" | bc -l)
    LRPS=$(echo "$2 / $5" | bc -l)
    printf '%-22s %8.2f %10d %12.0f %8.1f %8.2f %8.2f %10.2f %7.2f %12.0f\n' "$1" "$secs" "$2" "$RPS" \
        "$MBS" "$busy_s" "$client_s" "$SRV" "$5" "$LRPS"
}
# Seconds of pgbench -i's "client-side generate" phase, from its output file.
pgbench_load_s() {
    local s; s=$(grep -o 'client-side generate [0-9.]* s' "$1" | awk '{print $3}')
    [[ -n "$s" ]] || { echo "bench-seed: no client-side generate time in pgbench's output" >&2; return 1; }
    echo "$s"
}
# Seconds from the first COPY's start to the last one's end, from pgstorm seed's phase lines.
pgstorm_load_s() {
    awk '/^seed phase: .* loading /{ if (min == "" || $6 < min) min = $6; if ($8 > max) max = $8 }
         END { if (min == "") exit 1; printf "%.3f", max - min }' "$1" ||
        { echo "bench-seed: no loading phases in pgstorm seed's output" >&2; return 1; }
}
bytes() { sql "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND $1"; }
cleanup() { sql "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers" || true
            "$PGSTORM" clean --dsn "$DSN" >/dev/null 2>&1 || true; }
# Drops pgstorm's schema quietly; its errors are shown only if it fails.
drop_pgstorm() { local e; e=$("$PGSTORM" clean --dsn "$DSN" 2>&1 >/dev/null) || { echo "$e" >&2; return 1; }; }

declare -A RATIO_ROWS RATIO_MB RATIO_SRV RATIO_LOAD
IFS=, read -ra JOB_LIST <<< "$JOBS"
OUT=$(mktemp)
trap 'rm -f "$OUT"; cleanup' EXIT
printf '%-22s %8s %10s %12s %8s %8s %8s %10s %7s %12s\n' tool seconds rows rows/s MB/s "busy s" "tool s" \
    "srv us/row" "load s" "load rows/s"
for _ in $(seq 1 "$REPS"); do
    m=$(timed "$OUT" pgbench -i -q -s "$PSCALE" "$DSN")
    b=$(bytes "c.relname LIKE 'pgbench\\_%'")
    rows=$(sql "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_branches)")
    report "pgbench -i -s $PSCALE" "$rows" "$b" "$m" "$(pgbench_load_s "$OUT")"
    pg_rps=$RPS; pg_mbs=$MBS; pg_srv=$SRV; pg_lrps=$LRPS
    sql "DROP TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers"
    for j in "${JOB_LIST[@]}"; do
        drop_pgstorm
        m=$(timed "$OUT" "$PGSTORM" seed --dsn "$DSN" --scale "$SCALE" -j "$j")
        b=$(bytes "n.nspname = 'pgstorm' AND c.relname <> 'pgstorm_meta'")
        rows=$(sql "SELECT partners + orders + lines FROM pgstorm.pgstorm_meta")
        report "pgstorm seed -s $SCALE -j $j" "$rows" "$b" "$m" "$(pgstorm_load_s "$OUT")"
        RATIO_LOAD[$j]+="$(echo "$LRPS / $pg_lrps" | bc -l) "
        RATIO_ROWS[$j]+="$(echo "$RPS / $pg_rps" | bc -l) "
        RATIO_MB[$j]+="$(echo "$MBS / $pg_mbs" | bc -l) "
        RATIO_SRV[$j]+="$(echo "$SRV / $pg_srv" | bc -l) "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for j in "${JOB_LIST[@]}"; do
    printf 'pgstorm -j %s / pgbench -i: rows/s %.2fx, MB/s %.2fx, server CPU per row %.2fx, load rows/s %.2fx (median of %d)\n' \
        "$j" "$(echo "${RATIO_ROWS[$j]}" | median)" "$(echo "${RATIO_MB[$j]}" | median)" \
        "$(echo "${RATIO_SRV[$j]}" | median)" "$(echo "${RATIO_LOAD[$j]}" | median)" "$REPS"
done
