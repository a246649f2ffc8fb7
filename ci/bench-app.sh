#!/usr/bin/env bash
# Benchmark of the application double (`just bench app`): requests/s and p99
# latency for /health and for pipeline-run creation, the server pinned to one
# core and wrk (Debian's) to the other, on 127.0.0.1 only; resident memory at
# rest and under load. Targets: >= 20k req/s for /health on one core,
# < 20 MiB resident at rest.
#   DURATION  seconds per load phase (default 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${DURATION:-10}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target x86_64-unknown-linux-gnu -p cbam-api-double --bin cbam-api
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/cbam-api"
work="$(mktemp -d)"
port=18123
PORT=$port LISTEN_HOST=127.0.0.1 LOG_LEVEL=INFO DATA_DIR="$work" LOGS_DIR="$work" OUTPUT_DIR="$work" UPLOADS_DIR="$work" \
  DATABASE_URL=bench REDIS_URL=bench PIPELINE_MAX_CONCURRENT_RUNS=100000 PIPELINE_MEMORY_BUDGET_MIB=0 SHUTDOWN_DELAY_SECONDS=0 \
  taskset -c 0 "$bin" >"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
# Wait (at most 5 s) for the double to answer /health before measuring.
ready=""
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && { ready=1; break; }; sleep 0.05; done
[ -n "$ready" ] || { echo "bench-app: the double did not answer /health on 127.0.0.1:$port within 5 s" >&2; cat "$work/log" >&2; exit 2; }
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
rest=$(rss)
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"duration_seconds": 0.001}'
wrk.headers["Content-Type"] = "application/json"
LUA
load() { # load NAME URL [wrk args]: prints "req/s p99 peak-rss"
  local name="$1" url="$2"; shift 2
  local peak=0 out
  ( while kill -0 $pid 2>/dev/null; do rss; echo; sleep 0.2; done ) >"$work/rss.${name//[^a-z]/_}" &
  local sampler=$!
  out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" --latency "$@" "$url")
  kill $sampler 2>/dev/null || true
  peak=$(sort -n "$work/rss.${name//[^a-z]/_}" | tail -1)
  local rps p99
  rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  printf "  %-28s %10s req/s   p99 %-8s  peak RSS %s MiB\n" "$name" "$rps" "$p99" "$peak"
}
echo "cbam-api double, server on 1 core, wrk -c64 on the other, ${duration}s per phase:"
load "GET /health" "http://127.0.0.1:$port/health"
load "POST /api/v1/pipeline/runs" "http://127.0.0.1:$port/api/v1/pipeline/runs" -s "$work/post.lua"
echo "  resident memory at rest: ${rest} MiB (target < 20 MiB)"
