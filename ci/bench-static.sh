#!/usr/bin/env bash
# Benchmark of the static tier (`just bench static`), medians of the same
# run, two ratios:
# - the binary (release) `conformance all --tier static` against bare
#   `kustomize build` of the same three overlays in parallel: <= 1.2x;
# - the front door `just conformance all --tier static` when nothing changed
#   against the binary it runs (the dev build): <= 50 ms over it.
# And the whole static tier under a second.
#   RUNS  repetitions per command (default 15); medians are reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-15}"
cargo build --quiet --release --bin conformance
cargo build --quiet --bin conformance
bin="${CARGO_TARGET_DIR:-target}/release/conformance"
dev_bin="${CARGO_TARGET_DIR:-target}/debug/conformance"
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
dev_harness() { "$dev_bin" all --tier static --report "$report"; }
front_door() { just conformance all --tier static --report "$report"; }

harness_ms=$(measure harness harness)
dev_ms=$(measure dev-harness dev_harness)
front_ms=$(measure front-door front_door)
parallel_ms=$(measure kustomize-parallel kustomize_parallel)
serial_ms=$(measure kustomize-serial kustomize_serial)
ratio=$(awk -v h="$harness_ms" -v k="$parallel_ms" 'BEGIN { printf "%.2f", h / k }')
over=$(( front_ms - dev_ms ))
echo "static tier, 3 environments, median of $runs runs on $(nproc) cores, $(git rev-parse --short HEAD), $(date -u +%F):"
echo "  conformance all --tier static (release) : ${harness_ms} ms"
echo "  kustomize build x3, parallel            : ${parallel_ms} ms  (binary ${ratio}x, target <= 1.2x)"
echo "  kustomize build x3, serial              : ${serial_ms} ms"
echo "  the same, dev build (what just runs)    : ${dev_ms} ms"
echo "  just conformance all --tier static      : ${front_ms} ms  (${over} ms over the dev build, target <= 50 ms)"
echo "  $(kustomize version)"
awk -v h="$front_ms" -v r="$ratio" -v o="$over" 'BEGIN { exit !(h < 1000 && r <= 1.2 && o <= 50) }' \
  && echo "  targets met" || echo "  TARGET MISSED (< 1000 ms, <= 1.2x, <= 50 ms over)"
