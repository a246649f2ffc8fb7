#!/usr/bin/env bash
# Benchmark of the harness's clusters (`just bench cluster`), warm, one
# provider after the other (PROVIDERS, default "k3s kind"): `conformance
# cluster up` of 1 server/control plane + 2 agents/workers through the
# readiness gate (nodes Ready, DNS, storage, metrics API, ingress serving;
# the kit also every component steady), and `cluster down`, RUNS times
# (default 5); medians, and the nodes' memory once up.
# Targets: kit <= 45 s to ready; kind <= 60 s to nodes Ready (kind create,
# addons applied) and <= 45 s more to addons ready.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-5}"
providers="${PROVIDERS:-k3s kind}"
name=cbam-bench
cargo build --quiet --bin conformance
conformance="${CARGO_TARGET_DIR:-target}/debug/conformance"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "$(date -u +%F) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
for provider in $providers; do
  case "$provider" in
    kind) label="io.x-k8s.kind.cluster=$name" ;;
    *) label="cbam.io/kit-cluster=$name" ;;
  esac
  ups=() downs=() creates=() addons=() mem=""
  for i in $(seq "$runs"); do
    log="$(mktemp)"
    t0=$(date +%s%N)
    "$conformance" cluster up --cluster "$provider" --agents 2 --name "$name" >/dev/null 2>"$log" ||
      { echo "bench: $provider up failed: $(tail -3 "$log")" >&2; "$conformance" cluster down --cluster "$provider" --name "$name" >/dev/null 2>&1 || true; exit 1; }
    t1=$(date +%s%N)
    ups+=($(( (t1 - t0) / 1000000 )))
    # kind's up says how long its create and its addons took (cluster_command.rs).
    if [ "$provider" = kind ]; then
      creates+=("$(sed -n 's/.*kind create and addons applied \([0-9.]*\) s.*/\1/p' "$log")")
      addons+=("$(sed -n 's/.*then addons ready \([0-9.]*\) s.*/\1/p' "$log")")
    fi
    rm -f "$log"
    if [ "$i" -eq 1 ]; then
      mem=$(docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(docker ps -q --filter "label=$label"))
    fi
    t2=$(date +%s%N)
    "$conformance" cluster down --cluster "$provider" --name "$name" 2>/dev/null
    downs+=($(( ($(date +%s%N) - t2) / 1000000 )))
  done
  echo "$provider cluster, 1 server/control plane + 2 agents/workers, $runs runs:"
  echo "  up, gate passed:     median $(printf '%s\n' "${ups[@]}" | median) ms (runs: ${ups[*]})"
  if [ "$provider" = kind ]; then
    echo "    kind create + addons applied: median $(printf '%s\n' "${creates[@]}" | median) s (runs: ${creates[*]}; target <= 60)"
    echo "    then addons ready:            median $(printf '%s\n' "${addons[@]}" | median) s (runs: ${addons[*]}; target <= 45)"
  else
    echo "    target <= 45000"
  fi
  echo "  down:                median $(printf '%s\n' "${downs[@]}" | median) ms (runs: ${downs[*]})"
  echo "  memory once up (first run):"
  echo "$mem" | sed 's/^/    /'
done
