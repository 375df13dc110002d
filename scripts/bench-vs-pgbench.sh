#!/usr/bin/env bash
# pgstorm vs pgbench on the same server, the same pgbench script, the same clients and duration,
# run alternately (the order flips every repetition so drift hits both tools alike), printing the
# median of the per-repetition ratios (pgstorm / pgbench) against the goals of the suite, with the
# number of repetitions that met each goal on their own, the repetitions' range, and a verdict at
# stated confidence (met, missed or open) from the interval in which the ratio's median lies:
#
#   select-only -M prepared -c 8    TPS >= 1.05x and >= 1.0x, client CPU per transaction <= 1.0x
#   select-only -M prepared -c 500  TPS >= 1.0x,  CPU/tx <= 1.5x and <= 1.0x, pgstorm peak RSS
#                                   <= 128 MiB (the -j driver: 1.05x and 1.5x are its own issue's
#                                   goals, 1.0x and 1.0x the engine issue's, which it must keep)
#   the same two with the pool driver (c8pool, c500pool: no -j, one thread per client)
#                                   c8: TPS >= 1.0x, CPU/tx <= 1.1x;
#                                   c500: CPU/tx <= 1.5x, pgstorm peak RSS <= 64 MiB
#   tpcb-like   -M prepared -c 8    TPS >= 1.0x, with -j (tpcb) and with the pool driver (tpcbpool)
#   select-only -R 2000 -c 8        pgstorm p50 and p99 within 10% of the percentiles computed
#                                   from pgbench's own per-transaction log (-l), with -j 8
#                                   (latency) and with the pool driver (latencypool)
#   pg_sleep(2 ms) -R 200 -c 4      open loop well under capacity: pgstorm's p50 within 10% and
#                                   its p99 no worse than 1.1x pgbench's, with the pool driver
#                                   (punctual) and with -j 1 (punctualj)
#   c8floor (no goals: where the pool driver's cost comes from): select-only -M prepared -c 8
#   run by five clients in turn, the order reversed every repetition: pgbench -j <cpus>, pgbench
#   -j 8 (one thread per connection: pgbench's own thread-per-connection floor), the design's
#   floor (examples/floor.rs: one blocking thread per connection on pgstorm's wire layer, nothing
#   else), the same floor on the postgres crate (floorpg: what the crate's query path costs against
#   the wire layer) and pgstorm's pool driver; TPS and CPU/tx ratios between them are printed.
#   c500floor (no goals: what one thread per connection costs at -c 500): the same without the
#   postgres-crate floor, at -c 500: pgbench -j <cpus>, pgbench -j 500, the floor, the pool driver.
#   c500spread (no goals: how evenly each client serves its 500 connections): select-only
#   -M prepared -c 500 with -l, in turn: pgbench -j <cpus>, pgstorm -j <cpus> (pgstorm-j), pgbench
#   -j 500 and the pool driver. From each run's per-transaction log: the effective number of
#   clients (the inverse Simpson index of the per-client transaction counts, (sum n)^2 / sum n^2:
#   500 when every connection carries the same load, fewer when some carry more) and the ratio of
#   the 90th to the 10th percentile of the per-client counts.
#
# Client CPU (user + system) and peak RSS of each tool come from getrusage of the child process
# (GNU time). Both tools pay for their connections inside the measured process. The server's own
# count of committed transactions (pg_stat_database.xact_commit, read with psql before and after
# each run, after the tool's backends have exited and flushed their counters) is printed beside
# each tool's count, so a tool that counts what the server did not commit shows.
#
# Usage: scripts/bench-vs-pgbench.sh [--dsn CONNINFO] [-T seconds] [--reps N] [--scale N] [--cases LIST]
#                                     [--save FILE]
#        scripts/bench-vs-pgbench.sh --summarize FILE...
#        scripts/bench-vs-pgbench.sh --spread DIR
#   Without --dsn a sandbox is started (pgstorm sandbox code) and removed at exit.
#   --save FILE keeps the measured rounds (also those of a run that failed part way); --summarize
#   prints the tables and verdicts again from such files, pooling their rounds (several runs of one
#   build: more rounds narrow the interval an open verdict needs). --spread prints the effective
#   clients and p90/p10 (c500spread) of the per-transaction logs (pgbench_log.*) in DIR.
#   --cases: comma-separated subset of c8,c500,c8pool,c500pool,tpcb,tpcbpool,latency,latencypool,
#   punctual,punctualj,c8floor,c500floor,c500spread (default: all).
#   PGBENCH_JOBS (default: number of CPUs) is both tools' -j; PGSTORM_ARGS is appended to every
#   pgstorm command (e.g. PGSTORM_ARGS=--no-pin). PGSTORM=path runs that pgstorm binary (e.g. one
#   built from an older commit, to tell a regression from noise) instead of building this tree's;
#   FLOOR=path likewise for the floor client (default: this tree's examples/floor.rs).
set -euo pipefail

DSN=""
DUR=10
REPS=3
SCALE=10
CASES="c8,c500,c8pool,c500pool,tpcb,tpcbpool,latency,latencypool,punctual,punctualj,c8floor,c500floor,c500spread"
SAVE=""
SUMMARIZE=()
SPREAD=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dsn) DSN="$2"; shift 2 ;;
        -T) DUR="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --scale) SCALE="$2"; shift 2 ;;
        --cases) CASES="$2"; shift 2 ;;
        --save) SAVE="$2"; shift 2 ;;
        --summarize) shift; SUMMARIZE=("$@"); [[ $# -gt 0 ]] || {
            echo "bench-vs-pgbench: --summarize needs the files --save wrote" >&2; exit 2; }; break ;;
        --spread) SPREAD="${2:?--spread needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,57p' "$0"; exit 0 ;;
        *) echo "bench-vs-pgbench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# client_spread DIR : "EFFECTIVE_CLIENTS P90/P10" of the per-client transaction counts in the
# pgbench-format per-transaction logs (-l) under DIR (pgbench's in DIR, pgstorm's in its results
# directory), or "nan nan" when the run kept none. The effective number of clients is the inverse
# Simpson index (sum n)^2 / sum n^2: the client count when all carry the same load.
client_spread() {
    python3 - "$1" <<'EOF'
import collections, glob, sys
n = collections.Counter()
for f in glob.glob(f"{sys.argv[1]}/pgbench_log.*") + glob.glob(f"{sys.argv[1]}/results/*/pgbench_log.*"):
    for line in open(f):
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            n[int(parts[0])] += 1
v = sorted(n.values())
if not v:
    print("nan nan")
else:
    k = len(v)
    print(f"{sum(v) ** 2 / sum(x * x for x in v):.1f} {v[k * 9 // 10] / max(v[k // 10], 1):.3f}")
EOF
}

# summarize FILE... : the table of rounds and the goals' verdicts, from the rounds recorded in the
# given files (one line per tool and round, as run_pgbench and run_pgstorm append them). Rounds of
# several files (runs of the same build, saved with --save) are pooled, each file's rounds kept
# apart.
summarize() {
    python3 - "$@" <<'EOF'
import math, statistics, sys
runs = {}
for i, path in enumerate(sys.argv[1:]):
    try:
        lines = [l.rstrip("\n") for l in open(path) if l.strip()]
    except OSError as e:
        sys.exit(f"bench-vs-pgbench: cannot read {path}: {e.strerror} (give a file written by --save)")
    for n, line in enumerate(lines, 1):
        f = line.split("\t")
        try:
            # Rounds saved before the spread columns have 11 fields.
            case, rep, tool, tps, tx, cpu, rss, p50, p99, steal, commits, *spread = f
            eff, p90p10 = spread if len(spread) == 2 else ("nan", "nan") if not spread else ()
            row = dict(tps=float(tps), tx=int(tx), cpu=float(cpu), rss=int(rss), p50=float(p50),
                       p99=float(p99), steal=int(steal) / 1000, commits=int(commits),
                       eff=float(eff), p90p10=float(p90p10))
            key = (case, i + 1, int(rep))
        except ValueError:
            sys.exit(f"bench-vs-pgbench: {path}, line {n}: not a round of this script (11 or 13 "
                     f"tab-separated fields: case rep tool tps tx cpu rss p50 p99 steal commits "
                     f"[effective_clients p90/p10])")
        runs.setdefault(key, {})[tool] = row
if not runs:
    sys.exit(f"bench-vs-pgbench: no rounds in {', '.join(sys.argv[1:])} (nothing was measured yet?)")
files = len(sys.argv) - 1
def each(case, f, a="pgstorm", b="pgbench"):
    return [f(r[a], r[b]) for (c, _, _), r in sorted(runs.items()) if c == case and a in r and b in r]
def med(case, f, a="pgstorm", b="pgbench"):
    vals = each(case, f, a, b)
    return statistics.median(vals) if vals else None
def median_interval(xs, level=0.95):
    """The distribution-free interval for the median of the rounds' population: the k-th smallest
    and k-th largest of n rounds, k the largest whose coverage 1 - 2 P(Binomial(n, 1/2) < k) is at
    least `level` (k = 1, the whole range, when no k reaches it). Returns (low, high, coverage)."""
    xs, n = sorted(xs), len(xs)
    coverage = lambda k: 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= level:
        k += 1
    return xs[k - 1], xs[n - k], coverage(k)
tps_ratio = lambda s, b: s["tps"] / b["tps"]
cpu_ratio = lambda s, b: (s["cpu"] / s["tx"]) / (b["cpu"] / b["tx"])
# c8floor and c500floor: no goals, the ratios between their clients (numerator / denominator);
# pgbenchN is pgbench with a thread per client (pgbench8, pgbench500); in c500spread pgstorm-j is
# pgstorm's -j driver beside its pool driver (pgstorm). A pair whose tools a case lacks is skipped.
floor_pairs = [("pgstorm", "pgbench"), ("floor", "pgbench"), ("pgbenchN", "pgbench"),
               ("pgstorm", "floor"), ("floor", "pgbenchN"), ("pgstorm", "pgbenchN"),
               ("floorpg", "floor"), ("floorpg", "pgbenchN"), ("pgstorm", "floorpg"),
               ("pgstorm-j", "pgbench"), ("pgstorm-j", "pgbenchN"), ("pgstorm", "pgstorm-j")]
floor_cases = [("c8floor", "pgbench8"), ("c500floor", "pgbench500"), ("c500spread", "pgbench500")]
goals = {
    "c8": [("TPS ratio", tps_ratio, ">=", 1.05),
           ("TPS ratio", tps_ratio, ">=", 1.0),
           ("CPU/tx ratio", cpu_ratio, "<=", 1.0)],
    "c500": [("TPS ratio", tps_ratio, ">=", 1.0),
             ("CPU/tx ratio", cpu_ratio, "<=", 1.5),
             ("CPU/tx ratio", cpu_ratio, "<=", 1.0),
             ("pgstorm peak RSS MiB", lambda s, b: s["rss"] / 1024, "<=", 128)],
    "c8pool": [("TPS ratio", tps_ratio, ">=", 1.0),
               ("CPU/tx ratio", cpu_ratio, "<=", 1.1)],
    "c500pool": [("TPS ratio", tps_ratio, ">=", 1.0),
                 ("CPU/tx ratio", cpu_ratio, "<=", 1.5),
                 ("pgstorm peak RSS MiB", lambda s, b: s["rss"] / 1024, "<=", 64)],
    "tpcb": [("TPS ratio", tps_ratio, ">=", 1.0)],
    "tpcbpool": [("TPS ratio", tps_ratio, ">=", 1.0)],
    "latency": [("p50 ratio", lambda s, b: s["p50"] / b["p50"], "within10%", 1.0),
                ("p99 ratio", lambda s, b: s["p99"] / b["p99"], "within10%", 1.0)],
    "latencypool": [("p50 ratio", lambda s, b: s["p50"] / b["p50"], "within10%", 1.0),
                    ("p99 ratio", lambda s, b: s["p99"] / b["p99"], "within10%", 1.0)],
    "punctual": [("p50 ratio", lambda s, b: s["p50"] / b["p50"], "within10%", 1.0),
                 ("p99 ratio", lambda s, b: s["p99"] / b["p99"], "<=", 1.1)],
    "punctualj": [("p50 ratio", lambda s, b: s["p50"] / b["p50"], "within10%", 1.0),
                  ("p99 ratio", lambda s, b: s["p99"] / b["p99"], "<=", 1.1)],
}
print()
tools = ("pgbench", *dict.fromkeys(per_client for _, per_client in floor_cases), "floor", "floorpg",
         "pgstorm-j", "pgstorm")
rep_w = 5 if files > 1 else 3
spread_shown = any(not math.isnan(x["eff"]) for r in runs.values() for x in r.values())
print(f"{'case':<9} {'rep':>{rep_w}} {'tool':<10} {'tps':>10} {'tx':>9} {'server tx':>9} {'cpu s':>7} {'us cpu/tx':>9} {'rss MiB':>8} {'p50 ms':>8} {'p99 ms':>8} {'steal s':>7}"
      + (f" {'eff cl':>6} {'p90/p10':>7}" if spread_shown else ""))
for (case, fi, rep), r in sorted(runs.items()):
    shown_rep = f"{fi}.{rep}" if files > 1 else str(rep)
    for tool in tools:
        x = r.get(tool)
        if x:
            print(f"{case:<9} {shown_rep:>{rep_w}} {tool:<10} {x['tps']:>10.1f} {x['tx']:>9} {x['commits']:>9} {x['cpu']:>7.2f} "
                  f"{x['cpu'] / max(x['tx'], 1) * 1e6:>9.1f} {x['rss'] / 1024:>8.1f} {x['p50']:>8.3f} {x['p99']:>8.3f} "
                  f"{x['steal']:>7.2f}" + (f" {x['eff']:>6.0f} {x['p90p10']:>7.2f}" if spread_shown else ""))
print()
# Beside each median: how many rounds met the goal on their own, the rounds' range, and the
# verdict of the interval in which the median of such rounds lies with the coverage printed (the
# order statistics of the rounds, as a sign test reads them: no assumption about the ratios'
# distribution, only that rounds are independent draws, which the alternating order approaches).
# "met" or "missed" holds at that confidence; "open" means the interval straddles the goal, and
# the median's side of it may flip on the next run. Five rounds give the whole range at 93.8 %,
# so a 5-round verdict needs every round on one side; 15 give the 4th..12th at 96.5 %.
checked = any(c in goals for c, _, _ in runs)
if checked:
    print(f"{'case':<8} {'measure (median over reps)':<28} {'value':>8}  {'goal':<10} {'':<6} {'rounds':>6}  "
          f"{'range':<13}  {'median lies in':<13} {'at':>6}  verdict")
failed = 0
verdicts = {"met": 0, "missed": 0, "open": 0}
for case, checks in goals.items():
    if not any(c == case for c, _, _ in runs):
        continue
    for name, f, op, goal in checks:
        rounds = each(case, f)
        if not rounds:
            continue
        v = med(case, f)
        meets = lambda x: x >= goal if op == ">=" else x <= goal if op == "<=" else abs(x - 1) <= 0.10
        ok = meets(v)
        failed += not ok
        lo, hi, coverage = median_interval(rounds)
        if meets(lo) and meets(hi):
            verdict = "met"
        elif op == "within10%":
            verdict = "missed" if hi < 0.9 or lo > 1.1 else "open"
        else:
            verdict = "missed" if not meets(lo) and not meets(hi) else "open"
        verdicts[verdict] += 1
        shown = f"{op} {goal}" if op != "within10%" else "0.90..1.10"
        span = f"{min(rounds):.3f}..{max(rounds):.3f}"
        inside = f"{lo:.3f}..{hi:.3f}"
        print(f"{case:<8} {name:<28} {v:>8.3f}  {shown:<10} {'ok' if ok else 'MISSED':<6} "
              f"{sum(map(meets, rounds)):>2}/{len(rounds):<3}  {span:<13}  {inside:<13} {coverage:>6.1%}  {verdict}")
for fcase, per_client in floor_cases:
    if not any(c == fcase for c, _, _ in runs):
        continue
    print()
    print(f"{fcase:<9} {'ratio (median over reps)':<28} {'TPS':>8} {'CPU/tx':>8}")
    for a, b in floor_pairs:
        a, b = (per_client if x == "pgbenchN" else x for x in (a, b))
        t, c = med(fcase, tps_ratio, a, b), med(fcase, cpu_ratio, a, b)
        if t is not None:
            print(f"{fcase:<9} {a + ' / ' + b:<28} {t:>8.3f} {c:>8.3f}")
# How evenly each tool served its connections, from the per-transaction logs (-l): the median
# over the rounds of the effective number of clients and of the p90/p10 of per-client counts.
for case in sorted({c for c, _, _ in runs}):
    rows = [r for (c, _, _), r in sorted(runs.items()) if c == case]
    shown = [t for t in tools if any(t in r and not math.isnan(r[t]["eff"]) for r in rows)]
    if not shown:
        continue
    print()
    print(f"{case:<10} {'tool':<10} {'effective clients (range)':<26} {'p90/p10 of per-client tx (range)'}")
    for t in shown:
        eff = [r[t]["eff"] for r in rows if t in r and not math.isnan(r[t]["eff"])]
        spr = [r[t]["p90p10"] for r in rows if t in r and not math.isnan(r[t]["p90p10"])]
        e = f"{statistics.median(eff):.0f} ({min(eff):.0f}-{max(eff):.0f})"
        p = f"{statistics.median(spr):.2f} ({min(spr):.2f}-{max(spr):.2f})"
        print(f"{case:<10} {t:<10} {e:<26} {p}")
print()
if not checked:
    print("no goals in these cases")
else:
    print(("all goals met" if not failed else f"{failed} goal(s) missed") + " on the medians; "
          f"on the intervals: {verdicts['met']} met, {verdicts['missed']} missed, "
          f"{verdicts['open']} open (more rounds decide an open one)")
EOF
}

if [[ -n "$SPREAD" ]]; then
    [[ -d "$SPREAD" ]] || { echo "bench-vs-pgbench: --spread $SPREAD: not a directory" >&2; exit 2; }
    client_spread "$SPREAD"
    exit
fi
if [[ ${#SUMMARIZE[@]} -gt 0 ]]; then
    command -v python3 >/dev/null || { echo "bench-vs-pgbench: python3 is required" >&2; exit 2; }
    summarize "${SUMMARIZE[@]}"
    exit
fi

# Paths given relative are the caller's: resolve them before moving to the repository.
[[ -n "$SAVE" ]] && SAVE="$(realpath -m "$SAVE")"
[[ -n "${PGSTORM:-}" ]] && PGSTORM="$(realpath -m "$PGSTORM")"
[[ -n "${FLOOR:-}" ]] && FLOOR="$(realpath -m "$FLOOR")"
cd "$(dirname "$0")/.."
for tool in pgbench psql python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-vs-pgbench: $tool is required" >&2; exit 2; }
done
JOBS="${PGBENCH_JOBS:-$(nproc)}"
if [[ -z "${PGSTORM:-}" ]]; then
    cargo build --release --quiet
    PGSTORM="$PWD/target/release/pgstorm"
fi
[[ -x "$PGSTORM" ]] || { echo "bench-vs-pgbench: PGSTORM=$PGSTORM is not an executable" >&2; exit 2; }
if [[ ",$CASES," == *",c8floor,"* || ",$CASES," == *",c500floor,"* ]]; then
    if [[ -z "${FLOOR:-}" ]]; then
        cargo build --release --quiet --example floor
        FLOOR="$PWD/target/release/examples/floor"
    fi
    [[ -x "$FLOOR" ]] || { echo "bench-vs-pgbench: FLOOR=$FLOOR is not an executable" >&2; exit 2; }
fi
WORK="$(mktemp -d)"
chmod 755 "$WORK"

cleanup() {
    # The rounds measured so far, even when a run failed: --summarize reads them back.
    if [[ -n "$SAVE" && -s "${RESULTS:-}" ]]; then
        cp "$RESULTS" "$SAVE" && echo "rounds saved to $SAVE" >&2
    fi
    if [[ -z "${DSN_GIVEN:-}" ]]; then
        TMPDIR="$WORK" "$PGSTORM" sandbox stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "$DSN" ]]; then
    # A private state folder, so this sandbox is not one another `pgstorm sandbox` command sees.
    DSN="$(TMPDIR="$WORK" "$PGSTORM" sandbox start --max-connections 600 | sed -n 's/.*running: //p')"
else
    DSN_GIVEN=1
fi
echo "server: $DSN"
echo "-j $JOBS for both tools; $DUR s per run; $REPS repetitions per case, alternating order"
TMPDIR="$WORK" "$PGSTORM" seed --pgbench -s "$SCALE" --dsn "$DSN" >/dev/null 2>&1

# CPU time the hypervisor gave to other guests (/proc/stat "steal"), in clock ticks: on a shared
# VM it is the usual reason two repetitions of the same command differ.
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }
TICK=$(getconf CLK_TCK)

# Transactions the server committed in the benchmark database so far. Backends flush their
# counters when they exit; the pause lets the last ones do so.
commits() {
    sleep 1
    psql "$DSN" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measured DIR LABEL CMD... : runs CMD in DIR (its output in DIR/out and DIR/err) under GNU time
# (DIR/rusage: user s, system s, peak RSS KiB), and records the steal time (DIR/steal_ms) and the
# server's commits (DIR/commits) around it; a failing CMD ends the script with its last errors.
measured() {
    local dir="$1" label="$2"; shift 2
    mkdir -p "$dir"
    local c0; c0=$(commits)
    local st0; st0=$(steal_ticks)
    (cd "$dir" && /usr/bin/time -f "%U %S %M" -o "$dir/rusage" "$@" >"$dir/out" 2>"$dir/err") || {
        echo "$label failed:" >&2; tail -5 "$dir/err" >&2; exit 1; }
    echo $(( ($(steal_ticks) - st0) * 1000 / TICK )) >"$dir/steal_ms"
    echo $(( $(commits) - c0 )) >"$dir/commits"
}

# run_pgbench CASE REP ARGS... : appends "case rep TOOL tps tx cpu_s rss_kib p50_ms p99_ms steal
# commits", TOOL being $PGBENCH_TOOL (default pgbench: the name the goals compare against).
run_pgbench() {
    local case="$1" rep="$2"; shift 2
    local tool="${PGBENCH_TOOL:-pgbench}"
    local dir="$WORK/$tool-$case-$rep"
    measured "$dir" "pgbench ($case)" pgbench -n -j "$JOBS" -T "$DUR" "$@" "$DSN"
    # shellcheck disable=SC2046 # two numbers
    python3 - "$dir" "$case" "$rep" "$tool" $(client_spread "$dir") >>"$RESULTS" <<'EOF'
import glob, re, sys
d, case, rep, tool, eff, spread = sys.argv[1:7]
out = open(f"{d}/out").read()
tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
tx = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
fail = re.search(r"number of failed transactions: (\d+)", out)
tx += int(fail.group(1)) if fail else 0
u, s, rss = open(f"{d}/rusage").read().split()[-3:]
p50 = p99 = float("nan")
lat = []
for f in glob.glob(f"{d}/pgbench_log.*"):
    for line in open(f):
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            lat.append(int(parts[2]))
if lat:
    lat.sort()
    rank = lambda q: lat[min(len(lat) - 1, max(0, int(q * len(lat) + 0.5) - 1))]
    p50, p99 = rank(0.50) / 1000, rank(0.99) / 1000
steal = open(f"{d}/steal_ms").read().strip()
commits = open(f"{d}/commits").read().strip()
print(case, rep, tool, tps, tx, float(u) + float(s), rss, p50, p99, steal, commits, eff, spread,
      sep="\t")
EOF
}

# run_floor CASE REP TOOL ARGS... : the floor client (examples/floor.rs), as tool TOOL ("floor" on
# the wire layer, "floorpg" with --postgres-crate).
run_floor() {
    local case="$1" rep="$2" tool="$3"; shift 3
    local dir="$WORK/$tool-$case-$rep"
    measured "$dir" "$tool ($case)" "$FLOOR" --dsn "$DSN" -T "$DUR" "$@"
    python3 - "$dir" "$case" "$rep" "$tool" >>"$RESULTS" <<'EOF'
import re, sys
d, case, rep, tool = sys.argv[1:5]
out = open(f"{d}/out").read()
m = re.search(r"floor(?:-postgres)?: clients \d+ tx (\d+) errors (\d+) seconds \S+ tps ([0-9.]+)", out)
u, s, rss = open(f"{d}/rusage").read().split()[-3:]
steal = open(f"{d}/steal_ms").read().strip()
commits = open(f"{d}/commits").read().strip()
print(case, rep, tool, float(m.group(3)), int(m.group(1)) + int(m.group(2)), float(u) + float(s),
      rss, float("nan"), float("nan"), steal, commits, float("nan"), float("nan"), sep="\t")
EOF
}

# run_pgstorm CASE REP ARGS... : as run_pgbench, TOOL being $PGSTORM_TOOL (default pgstorm).
run_pgstorm() {
    local case="$1" rep="$2"; shift 2
    local tool="${PGSTORM_TOOL:-pgstorm}"
    local dir="$WORK/$tool-$case-$rep"
    # shellcheck disable=SC2086 # PGSTORM_ARGS is a list of words
    measured "$dir" "pgstorm ($case)" "$PGSTORM" queries --dsn "$DSN" -T "$DUR" \
        --results-dir "$dir/results" --label "$case" "$@" ${PGSTORM_ARGS:-}
    # shellcheck disable=SC2046 # two numbers
    python3 - "$dir" "$case" "$rep" "$tool" $(client_spread "$dir") >>"$RESULTS" <<'EOF'
import glob, json, sys
d, case, rep, tool, eff, spread = sys.argv[1:7]
doc = json.load(open(glob.glob(f"{d}/results/*/run.json")[0]))
s = doc["load"]["summary"]
tx = s["count"] + sum(s["errors"].values())
u, sy, rss = open(f"{d}/rusage").read().split()[-3:]
steal = open(f"{d}/steal_ms").read().strip()
commits = open(f"{d}/commits").read().strip()
print(case, rep, tool, s["tps"], tx, float(u) + float(sy), rss,
      s["latency"]["p50_ms"], s["latency"]["p99_ms"], steal, commits, eff, spread, sep="\t")
EOF
}

# bench CASE "PGBENCH ARGS" "PGSTORM ARGS"
bench() {
    local case="$1" pgb="$2" pgs="$3"
    [[ ",$CASES," == *",$case,"* ]] || return 0
    echo "case $case: pgbench $pgb | pgstorm queries $pgs" >&2
    for rep in $(seq 1 "$REPS"); do
        if (( rep % 2 )); then
            run_pgbench "$case" "$rep" $pgb; run_pgstorm "$case" "$rep" $pgs
        else
            run_pgstorm "$case" "$rep" $pgs; run_pgbench "$case" "$rep" $pgb
        fi
    done
}

# Both tools get the same threads (-j): each thread serves its share of the connections.
bench c8 "-b select-only -M prepared -c 8" "-b select-only -M prepared -c 8 -j $JOBS"
bench c500 "-b select-only -M prepared -c 500" "-b select-only -M prepared -c 500 -j $JOBS"
# The pool driver (one pinned thread per client, a checkout per transaction) beside pgbench's -j.
bench c8pool "-b select-only -M prepared -c 8" "-b select-only -M prepared -c 8"
bench c500pool "-b select-only -M prepared -c 500" "-b select-only -M prepared -c 500"
bench tpcb "-b tpcb-like -M prepared -c 8" "-b tpcb-like -M prepared -c 8 -j $JOBS"
bench tpcbpool "-b tpcb-like -M prepared -c 8" "-b tpcb-like -M prepared -c 8"
# One thread per client here in both tools: this case compares measurement, and a thread serving
# four clients would add its own queueing to the latencies.
bench latency "-b select-only -M prepared -c 8 -j 8 -R 2000 -l" "-b select-only -M prepared -c 8 -j 8 -R 2000"
bench latencypool "-b select-only -M prepared -c 8 -j 8 -R 2000 -l" "-b select-only -M prepared -c 8 -R 2000"
# Open loop well under capacity: a transaction that sleeps 2 ms on the server, 200 tx/s over 4
# clients. Any schedule lag the client adds shows in the tail.
SLEEP_SQL="$WORK/sleep-2ms.sql"
echo "SELECT pg_sleep(0.002);" >"$SLEEP_SQL"
bench punctual "-f $SLEEP_SQL -c 4 -j 1 -R 200 -l" "-f $SLEEP_SQL -c 4 -R 200"
bench punctualj "-f $SLEEP_SQL -c 4 -j 1 -R 200 -l" "-f $SLEEP_SQL -c 4 -j 1 -R 200"

# Where the pool driver's cost comes from, at -c 8 and at -c 500: pgbench -j <cpus>, pgbench with
# a thread per client (pgbench's last -j counts), the design's floor on the wire layer (and, at
# -c 8, on the postgres crate) and the pool driver, in turn, the order reversed every repetition.
# floor_run CASE CLIENTS REP I runs the I-th of them.
floor_run() {
    local case="$1" n="$2" rep="$3" select_only="-b select-only -M prepared -c $2"
    # The spread case reads each run's per-transaction log.
    [[ "$case" == *spread ]] && select_only+=" -l"
    case "$4" in
        0) run_pgbench "$case" "$rep" $select_only ;;
        1) PGBENCH_TOOL="pgbench$n" run_pgbench "$case" "$rep" $select_only -j "$n" ;;
        2) run_floor "$case" "$rep" floor -c "$n" --scale "$SCALE" ;;
        3) run_floor "$case" "$rep" floorpg -c "$n" --scale "$SCALE" --postgres-crate ;;
        4) run_pgstorm "$case" "$rep" $select_only ;;
        5) PGSTORM_TOOL="pgstorm-j" run_pgstorm "$case" "$rep" $select_only -j "$JOBS" ;;
    esac
}
# floor_case CASE CLIENTS "I..." "DESCRIPTION"
floor_case() {
    local case="$1" n="$2" order="$3" reversed rep i
    [[ ",$CASES," == *",$case,"* ]] || return 0
    echo "case $case: $4, -c $n" >&2
    reversed="$(tr ' ' '\n' <<<"$order" | tac | tr '\n' ' ')"
    for rep in $(seq 1 "$REPS"); do
        if (( rep % 2 )); then
            for i in $order; do floor_run "$case" "$n" "$rep" "$i"; done
        else
            for i in $reversed; do floor_run "$case" "$n" "$rep" "$i"; done
        fi
    done
}
floor_case c8floor 8 "0 1 2 3 4" \
    "pgbench -j $JOBS | pgbench -j 8 | floor | floor on the postgres crate | pgstorm pool driver"
# At -c 500, where the pool driver misses its goals by the most: does a thread per connection
# (pgbench's own, and the floor's) cost what the pool driver costs?
floor_case c500floor 500 "0 1 2 4" "pgbench -j $JOBS | pgbench -j 500 | floor | pgstorm pool driver"
# How evenly each client serves its 500 connections (per-transaction logs): pgbench -j <cpus>
# favours some connections over the others, and at -c 500 on a small host the server's CPU per
# transaction grows with the number of connections that carry load (docs/performance.md).
floor_case c500spread 500 "0 5 1 4" \
    "pgbench -j $JOBS | pgstorm -j $JOBS | pgbench -j 500 | pgstorm pool driver (each with -l)"

summarize "$RESULTS"
