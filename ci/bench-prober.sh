#!/usr/bin/env bash
# Benchmark of the open-loop prober (`just bench prober`): the rate one core
# sustains against a local server that answers at once, and the p99 of how
# late requests leave against their schedule. Target: >= 2,000 requests/s
# with a lateness p99 < 5 ms. Each request is a new TCP connection, as the
# in-cluster prober sends them. The first rate, 25/s, is a scenario's load
# to the Service (fixtures/disruption.yaml): its CPU line is the prober's
# share of a core during a scenario, next to the one each scenario reports
# from inside the cluster (summary.md, "in-cluster prober"). RATE and
# SECONDS_EACH override the defaults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --quiet --release -p cbam-prober --bin cbam-prober
bin="${CARGO_TARGET_DIR:-target}/release/cbam-prober"
for rate in ${RATE:-25 500 2000 8000}; do
  "$bin" bench --rate "$rate" --seconds "${SECONDS_EACH:-10}"
done
