#!/usr/bin/env bash
# Benchmark of the kit cluster (`just bench cluster`): warm `conformance
# cluster up` of 1 server + 2 agents through the readiness gate (nodes Ready,
# DNS, storage, metrics API, ingress serving, every component steady), and
# `cluster down`, RUNS times (default 3); medians, and the nodes' memory once
# up. Target: <= 45 s to ready.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-3}"
name=cbam-bench
cargo build --quiet --bin conformance
conformance="${CARGO_TARGET_DIR:-target}/debug/conformance"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ups=() downs=() mem=""
for i in $(seq "$runs"); do
  t0=$(date +%s%N)
  "$conformance" cluster up --agents 2 --name "$name" >/dev/null
  t1=$(date +%s%N)
  ups+=($(( (t1 - t0) / 1000000 )))
  if [ "$i" -eq 1 ]; then
    mem=$(docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(docker ps -q --filter "label=cbam.io/kit-cluster=$name"))
  fi
  t2=$(date +%s%N)
  "$conformance" cluster down --name "$name" 2>/dev/null
  downs+=($(( ($(date +%s%N) - t2) / 1000000 )))
done
echo "kit cluster, 1 server + 2 agents, $runs runs on $(nproc) cores:"
echo "  up, gate passed:     median $(printf '%s\n' "${ups[@]}" | median) ms (runs: ${ups[*]}; target <= 45000)"
echo "  down:                median $(printf '%s\n' "${downs[@]}" | median) ms (runs: ${downs[*]})"
echo "  memory once up (first run):"
echo "$mem" | sed 's/^/    /'
