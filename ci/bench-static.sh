#!/usr/bin/env bash
# Benchmark of the static tier (`just bench static`): wall time of
# `conformance all --tier static` against bare `kustomize build` of the same
# three overlays, measured in the same run. Target: <= 1.5x kustomize, < 1 s.
#   RUNS  repetitions per command (default 15); medians are reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-15}"
cargo build --quiet --release --bin conformance
bin="${CARGO_TARGET_DIR:-target}/release/conformance"
report="$(mktemp -d)"
trap 'rm -rf "$report"' EXIT
overlays=(infra/kustomize/overlays/{dev,staging,production})

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
measure() { # measure NAME COMMAND...: prints the median wall time in ms
  local name="$1" t0; shift
  "$@" >/dev/null 2>&1 # warm-up (page cache, binary load)
  for _ in $(seq "$runs"); do
    t0=$(now_ms); "$@" >/dev/null 2>&1; echo $(( $(now_ms) - t0 ))
  done | median
}
kustomize_parallel() { for o in "${overlays[@]}"; do kustomize build "$o" >/dev/null & done; wait; }
kustomize_serial() { for o in "${overlays[@]}"; do kustomize build "$o" >/dev/null; done; }
harness() { "$bin" all --tier static --report "$report"; }

harness_ms=$(measure harness harness)
parallel_ms=$(measure kustomize-parallel kustomize_parallel)
serial_ms=$(measure kustomize-serial kustomize_serial)
ratio=$(awk -v h="$harness_ms" -v k="$parallel_ms" 'BEGIN { printf "%.2f", h / k }')
echo "static tier, 3 environments, median of $runs runs on $(nproc) cores:"
echo "  conformance all --tier static : ${harness_ms} ms"
echo "  kustomize build x3, parallel  : ${parallel_ms} ms  (ratio ${ratio}x, target <= 1.5x)"
echo "  kustomize build x3, serial    : ${serial_ms} ms"
echo "  $(kustomize version)"
awk -v h="$harness_ms" -v r="$ratio" 'BEGIN { exit !(h < 1000 && r <= 1.5) }' \
  && echo "  targets met" || echo "  TARGET MISSED (< 1000 ms and <= 1.5x)"
