# Front door of the CBAM conformance harness. `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

cache := env("CBAM_CACHE", env("HOME") / ".cache/cbam-conformance")
tools := env("CBAM_TOOLS", cache / "tools")
export PATH := tools / "bin" + ":" + env("HOME") / ".cargo/bin" + ":" + env("PATH")
# One cargo build directory for every checkout of this project: a clean clone
# (CI's) compiles only its own crates, never the dependencies again.
export CARGO_TARGET_DIR := env("CARGO_TARGET_DIR", cache / "target")
# ... and which checkout is building: its crates are rebuilt when another
# checkout built last (suites/checkout.rs says why).
export CBAM_CHECKOUT := justfile_directory()

# List the recipes.
default:
    @just --list

# Install the pinned tools (just, cargo-nextest, kustomize, actionlint); the
# recipes below do this themselves on first use.
tools:
    bash ci/install-tools.sh

# Check ENV (a fixtures/environments/ENV.yaml, or all). Flags: --tier static|live|all,
# --infra DIR, --report DIR, --fit auto|N, --app-image TAR, --skip-check ID,
# --timeout NAME=SECONDS, -v.
# Exit 0 every asked-for check ran and passed, 1 a check failed, 2 usage,
# input or environment error, 3 incomplete (something asked for not verified).
# Installs on first use what it lacks: the tools, and unless --tier static or
# --cluster existing, the engine, the kit and the application image.
conformance ENV *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    bash ci/install-tools.sh -q
    case " {{ FLAGS }} " in
      # No kit for the static tier; for a cluster the harness does not create,
      # only the prober it copies into a tool pod (`just image`).
      *" --tier static "*|*" --tier=static "*) ;;
      *" --cluster existing "*|*" --cluster=existing "*) just image ;;
      # A given node image (kind's published one, online) brings its own
      # parts: no kit build, the engine and the application image only.
      *" --node-image "*|*" --node-image="*)
        bash ci/engine.sh up || echo "conformance: no container engine could be started: the live tier is not verified (exit 3)" >&2
        just image ;;
      *) if bash ci/engine.sh up; then bash ci/kit/build.sh >/dev/null; just image
         else echo "conformance: no container engine could be started: the live tier is not verified (exit 3)" >&2; fi ;;
    esac
    # The dev profile: its dependencies are the ones `just test` compiled, so
    # CI builds no second (release) copy; the static tier stays well under
    # a second (kustomize dominates; `just bench static` measures both).
    # Built only when a source changed (ci/fresh-binary.sh says how it knows).
    bin="$CARGO_TARGET_DIR/debug/conformance"
    bash ci/fresh-binary.sh "$bin" || cargo build --quiet --bin conformance
    exec "$bin" {{ ENV }} {{ FLAGS }}

# Unit tests, the static tier on every environment, every mutation test,
# the double's contract and the workflow checks (no cluster needed).
# Installs the pinned tools on first use.
test:
    bash ci/install-tools.sh -q
    cargo nextest run --workspace --profile ci -E 'not (binary(smoke) | binary(live) | binary(cluster_command))'

# The kit cluster's smoke suite: engine, kit and image first, then a 3-node
# cluster up, checked (pods, Service, HTTPS ingress, metrics, RWX) and down;
# and `conformance cluster up|status|load|down` on a 2-node one.
smoke: engine kit image
    cargo nextest run --workspace --profile ci -E 'binary(smoke) | binary(cluster_command)' --no-capture

# Every live check shown to fail: each mutation of fixtures/mutations/live.yaml
# is its own test, run on one warm kit cluster with only the checks it names
# (and the rollout); the cluster is removed at the end. FILTER: a nextest
# filter expression, e.g. `just live-test 'test(pdb)'`.
live-test FILTER="all()": engine kit image
    just _cluster-tests 'binary(live) & ({{ FILTER }})'

# The nightly proof: every live mutation on every live check, each required to
# fail exactly the checks it names and pass all others.
live-test-exhaustive: engine kit image
    just _cluster-tests 'binary(live)' --run-ignored only

# CI's cluster suites in one run: the smoke suite and `conformance cluster`'s
# test beside the live mutations (each of their clusters takes one of the two
# places, so two clusters at most).
cluster-suites: engine kit image
    just _cluster-tests 'binary(smoke) | binary(live) | binary(cluster_command)'

# nextest on the cluster tests (EXPR), the live suite's clusters removed
# before and after.
_cluster-tests EXPR *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    just _live-clusters-down >/dev/null 2>&1
    trap 'just _live-clusters-down' EXIT
    cargo nextest run --workspace --profile ci -E '{{ EXPR }}' {{ ARGS }}

# The live mutation suite's clusters (tests/live.rs, SLOTS), removed.
_live-clusters-down:
    cargo build --quiet --bin conformance
    for slot in 0 1; do "$CARGO_TARGET_DIR/debug/conformance" cluster down --name cbam-live-test-$slot; done

# Formatting and lints, as CI runs them. Clippy compiles this workspace's own
# crates in a normal dev build (`cargo clippy` runs the same driver the same
# way, but in a check build): the dependencies are then compiled once, for
# the lints and for `just test`, not a second time in check mode. From an
# empty target directory: 124 s of clippy + 181 s for the tests' build
# before, 190 s + 41 s now (the tests rebuild only our four crates).
# CLIPPY_ARGS is how cargo-clippy hands its `-- ARGS` to the driver.
lint:
    cargo fmt --all --check
    RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ \
        cargo build --workspace --all-targets --quiet

# Benchmarks: `just bench static|app|cluster|autoscaling|prober|kit-starts` (ci/bench-TARGET.sh).
bench TARGET:
    bash ci/bench-{{ TARGET }}.sh

# Build the application double as a scratch OCI image tarball tagged with every
# image reference the overlays use (fixtures/environments/*.yaml); beside it the
# harness's tool image (cbam-tool.tar: the static cbam-prober, which is also the
# inspector and SIGTERM tool, on scratch; suites/cluster/src/tool_image.rs) and
# the static oci-registry that serves both to a cluster's nodes (the pods pull
# them as in production); cached by digest.
image:
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target x86_64-unknown-linux-gnu \
        -p cbam-api-double -p oci-registry -p cbam-prober --bin cbam-api --bin oci-registry --bin cbam-prober
    install -D -m 755 "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/oci-registry" target/image/oci-registry
    cargo run --quiet --release -p oci-image -- --binary "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/cbam-api" \
        --entrypoint /usr/local/bin/cbam-api --port 8000 --uid 10001 --out target/image/cbam-api.tar \
        $(sed -n 's/^image: {name: \(.*\), tag: \(.*\)}$/--ref \1:\2/p' fixtures/environments/*.yaml)
    cargo run --quiet --release -p oci-image -- --binary "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/cbam-prober" \
        --entrypoint /cbam-prober --uid 65534 --out target/image/cbam-tool.tar \
        --ref "cbam-conformance.invalid/tool:$(sed -n 's/^version = "\(.*\)"$/\1/p' suites/prober/Cargo.toml)"

# Build the offline cluster kit: Kubernetes, containerd, CNI, addon images and
# the node image, from the Go module proxy and Debian only (cached by version).
kit:
    bash ci/kit/build.sh

# A kit or kind cluster in Docker, kept until `down` (the harness's own
# providers): `just cluster up [--cluster kind] [--agents N] [--name NAME]`
# (builds or reuses the kit first; prints the kubeconfig's path), `just
# cluster status`, `just cluster load target/image/cbam-api.tar`, `just
# cluster down [--name NAME]` (each with the same --cluster).
cluster ACTION *ARGS:
    if [ "{{ ACTION }}" = up ]; then bash ci/engine.sh up && just kit >/dev/null; fi
    cargo build --quiet --bin conformance
    "$CARGO_TARGET_DIR/debug/conformance" cluster {{ ACTION }} {{ ARGS }}

# Start (or find) the Docker engine.
engine:
    bash ci/engine.sh up
