#!/usr/bin/env bash
# Collects the result folders of a load run on several machines and merges them into one result
# with `pgstorm merge` (see "Several load machines" in README.md).
#
#   scripts/collect-merge.sh [options] SOURCE...
#
# A SOURCE is where one or more load machines left their results:
#   k8s:[NAMESPACE/]CLAIM  the volume of scripts/k8s-load-job.yaml (claim pgstorm-results): every
#                          pod's folder on it (results/<completion index>/); read through a short
#                          helper pod running the job's image, removed afterwards
#   HOST:PATH              one machine's --results-dir, fetched with scp
#   PATH                   a folder already on this machine
# From each load machine's folder the newest result folder whose name matches --match is taken
# (folder names start with their UTC start time), so a volume reused by earlier jobs is no
# problem; merge then checks that the runs overlapped and measured the same server.
#
# Options:
#   --label L          label of the merged result (default: fleet)
#   --results-dir DIR  where the merged result folder goes (default: results)
#   --match GLOB       result folder names to take (default: *-load-*, the job's labels)
#   --collect-dir DIR  where fetched folders are kept (default: DIR/collected/<UTC time>)
#   --job NAME         the Kubernetes job whose image reads the volume (default: pgstorm-load)
#   --pgstorm BIN      the pgstorm binary (default: pgstorm on PATH, else target/release/pgstorm)
#
# Exit status: pgstorm merge's; 2 for a bad argument or a source holding no matching result.
set -euo pipefail

say() { printf 'collect-merge: %s\n' "$*" >&2; }
usage_error() {
  say "$*"
  say "usage: scripts/collect-merge.sh [--label L] [--results-dir DIR] [--match GLOB] SOURCE..."
  exit 2
}

label=fleet
results_dir=results
match='*-load-*'
collect_dir=
job='pgstorm-load'
pgstorm=
sources=()
while [ $# -gt 0 ]; do
  case "$1" in
    --label | --results-dir | --match | --collect-dir | --job | --pgstorm)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --label) label=$2 ;;
        --results-dir) results_dir=$2 ;;
        --match) match=$2 ;;
        --collect-dir) collect_dir=$2 ;;
        --job) job=$2 ;;
        --pgstorm) pgstorm=$2 ;;
      esac
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) usage_error "unknown option $1" ;;
    *)
      sources+=("$1")
      shift
      ;;
  esac
done
[ ${#sources[@]} -gt 0 ] || usage_error "give at least one SOURCE (k8s:CLAIM, HOST:PATH or a folder)"

if [ -z "$pgstorm" ]; then
  if command -v pgstorm > /dev/null; then
    pgstorm=pgstorm
  elif [ -x target/release/pgstorm ]; then
    pgstorm=target/release/pgstorm
  else
    usage_error "no pgstorm on PATH: build it (cargo build --release) or pass --pgstorm BIN"
  fi
fi
[ -n "$collect_dir" ] || collect_dir="$results_dir/collected/$(date -u +%Y%m%dT%H%M%SZ)"

helper_pod=
helper_ns=
remove_helper() {
  if [ -n "$helper_pod" ]; then
    kubectl delete pod "$helper_pod" -n "$helper_ns" --wait=false > /dev/null 2>&1 || true
  fi
}
trap remove_helper EXIT

# Copies every pod's folder on the claim into $2 through a helper pod mounting the claim.
fetch_k8s() {
  local spec=$1 dest=$2 claim image
  command -v kubectl > /dev/null || usage_error "$spec: kubectl is not on PATH"
  claim=${spec#k8s:}
  helper_ns=default
  if [[ $claim == */* ]]; then
    helper_ns=${claim%%/*}
    claim=${claim#*/}
  elif ns=$(kubectl config view --minify -o 'jsonpath={..namespace}' 2> /dev/null) && [ -n "$ns" ]; then
    helper_ns=$ns
  fi
  [ -n "$claim" ] || claim='pgstorm-results'
  image=$(kubectl get job "$job" -n "$helper_ns" \
    -o 'jsonpath={.spec.template.spec.containers[0].image}') ||
    usage_error "$spec: cannot read job $job in namespace $helper_ns (pass --job NAME)"
  helper_pod="pgstorm-collect-$(date -u +%s)"
  say "reading claim $claim in namespace $helper_ns through pod $helper_pod ($image)"
  kubectl apply -n "$helper_ns" -f - > /dev/null << EOF
apiVersion: v1
kind: Pod
metadata:
  name: $helper_pod
spec:
  restartPolicy: Never
  containers:
    - name: collect
      image: $image
      command: ["sleep", "600"]
      volumeMounts:
        - name: results
          mountPath: /results
          readOnly: true
  volumes:
    - name: results
      persistentVolumeClaim:
        claimName: $claim
        readOnly: true
EOF
  kubectl wait -n "$helper_ns" --for=condition=Ready "pod/$helper_pod" --timeout=5m > /dev/null
  kubectl exec -n "$helper_ns" "$helper_pod" -- tar -C /results -cf - . | tar -C "$dest" -xf -
  remove_helper
  helper_pod=
}

# The newest result folder (holding run.json) matching $match directly under $1, or nothing.
newest_run() {
  local dir=$1 found='' d
  for d in "$dir"/$match; do
    [ -f "$d/run.json" ] && found=$d
  done
  printf '%s' "$found"
}

# The load machines' folders among what was collected: a folder that itself holds matching
# result folders is one machine; otherwise each of its subfolders that does is one (the volume of
# the Kubernetes job holds one subfolder per pod).
machine_dirs=()
add_machines() {
  local dir=$1 sub
  if [ -n "$(newest_run "$dir")" ]; then
    machine_dirs+=("$dir")
    return
  fi
  for sub in "$dir"/*/; do
    sub=${sub%/}
    [ -n "$(newest_run "$sub")" ] && machine_dirs+=("$sub")
  done
  return 0
}

n=0
for src in "${sources[@]}"; do
  n=$((n + 1))
  before=${#machine_dirs[@]}
  if [[ $src == k8s:* ]]; then
    dest="$collect_dir/$n-k8s"
    mkdir -p "$dest"
    fetch_k8s "$src" "$dest"
    add_machines "$dest"
  elif [[ $src == *:* && ! -e $src ]]; then
    command -v scp > /dev/null || usage_error "$src: scp is not on PATH"
    dest="$collect_dir/$n-${src%%:*}"
    mkdir -p "$dest"
    say "fetching $src"
    # The whole results folder is fetched: the newest matching run is picked here, not remotely.
    scp -q -r "$src/." "$dest/"
    add_machines "$dest"
  elif [ -d "$src" ]; then
    add_machines "$src"
  else
    usage_error "$src: no such folder; give k8s:CLAIM, HOST:PATH or a results folder"
  fi
  [ ${#machine_dirs[@]} -gt "$before" ] ||
    usage_error "$src holds no result folder named $match (pass --match GLOB)"
done

runs=()
for m in "${machine_dirs[@]}"; do
  run=$(newest_run "$m")
  say "load machine $m: $(basename "$run")"
  runs+=("$run")
done
[ ${#runs[@]} -ge 2 ] ||
  usage_error "found ${#runs[@]} load machine(s); merging needs results from at least two"

exec "$pgstorm" merge --label "$label" --results-dir "$results_dir" "${runs[@]}"
