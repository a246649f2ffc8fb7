# Front door of the CBAM conformance harness. `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

tools := env("CBAM_TOOLS", env("HOME") / ".cache/cbam-conformance/tools")
export PATH := tools / "bin" + ":" + env("HOME") / ".cargo/bin" + ":" + env("PATH")

# List the recipes.
default:
    @just --list

# Install the pinned tools (just, cargo-nextest, kustomize) from the registries.
tools:
    bash ci/install-tools.sh

# Check ENV (dev | staging | production | all). Flags: --tier static|live|all,
# --infra DIR, --report DIR, --fit auto|N, --app-image TAR, -v.
# Exit 0 pass, 1 a check failed, 2 usage/input/environment error.
# Unless --tier static or --cluster existing: the engine, the kit and the app
# image come first.
conformance ENV *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    case " {{ FLAGS }} " in
      # No kit for the static tier or for a cluster the harness does not create.
      *" --tier static "*|*" --tier=static "*|*" --cluster existing "*|*" --cluster=existing "*) ;;
      *) if bash ci/engine.sh up; then just kit >/dev/null; just image >/dev/null
         else echo "conformance: no container engine could be started; the live tier will say so" >&2; fi ;;
    esac
    cargo build --quiet --release --bin conformance
    ./target/release/conformance {{ ENV }} {{ FLAGS }}

# Unit tests, the static tier on every environment, every mutation test,
# the double's contract and the workflow checks (no cluster needed).
test:
    cargo nextest run --workspace --profile ci -E 'not (binary(smoke) | binary(live))'

# The kit cluster's smoke suite: engine, kit and image first, then a 3-node
# cluster up, checked (pods, Service, HTTPS ingress, metrics, RWX) and down.
smoke: engine kit image
    cargo nextest run -p cbam-cluster --profile ci -E 'binary(smoke)' --no-capture

# Every live check shown to fail: mutations of infra/ applied to one kit
# cluster (fixtures/mutations/live.yaml). A broken rollout is waited for 45 s.
live-test: engine kit image
    CBAM_TIMEOUT_ROLLOUT_SECONDS=45 cargo nextest run -p cbam-conformance --profile ci -E 'binary(live)' --no-capture

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings

# Benchmarks: `just bench static|app|cluster|autoscaling` (ci/bench-TARGET.sh).
bench TARGET:
    bash ci/bench-{{ TARGET }}.sh

# Build the application double as a scratch OCI image tarball tagged with every
# image reference the overlays use (fixtures/environments/*.yaml); cached by digest.
image:
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target x86_64-unknown-linux-gnu -p cbam-api-double --bin cbam-api
    cargo run --quiet --release -p oci-image -- --binary target/x86_64-unknown-linux-gnu/release/cbam-api \
        --entrypoint /usr/local/bin/cbam-api --port 8000 --uid 1000 --out target/image/cbam-api.tar \
        $(sed -n 's/^image: {name: \(.*\), tag: \(.*\)}$/--ref \1:\2/p' fixtures/environments/*.yaml)

# Build the offline cluster kit: Kubernetes, containerd, CNI, addon images and
# the node image, from the Go module proxy and Debian only (cached by version).
kit:
    bash ci/kit/build.sh

# A kit cluster in Docker: `just cluster up [AGENTS]` (builds or reuses the
# kit first), `just cluster status`, `just cluster down`.
cluster ACTION *ARGS:
    if [ "{{ ACTION }}" = up ]; then just kit >/dev/null; fi
    bash ci/kit/cluster.sh {{ ACTION }} {{ ARGS }}

# Start (or find) the Docker engine.
engine:
    bash ci/engine.sh up
