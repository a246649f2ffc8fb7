#!/usr/bin/env bash
# Installs the pinned tools the harness needs (just, cargo-nextest, kustomize,
# actionlint), from the package registries
# only (crates.io, the Go module proxy), into a cache outside the checkout.
# Idempotent: a tool already at its pinned version is left alone.
#   CBAM_TOOLS  where tools live (default ~/.cache/cbam-conformance/tools)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
tools="${CBAM_TOOLS:-$HOME/.cache/cbam-conformance/tools}"
mkdir -p "$tools/bin"
export PATH="$tools/bin:$HOME/.cargo/bin:$PATH"

need() { command -v "$1" >/dev/null 2>&1 || { echo "install-tools: $1 is required ($2)" >&2; exit 2; }; }
need cargo "Rust toolchain, https://rustup.rs"
need go "Go toolchain, to build kustomize from its module"

# has TOOL VERSION-TEXT: the tool on PATH prints exactly this version.
has() { command -v "$1" >/dev/null 2>&1 && "$1" "${@:3}" 2>/dev/null | grep -qF "$2"; }

if has just "just $JUST_VERSION" --version; then
  echo "install-tools: just $JUST_VERSION present"
else
  echo "install-tools: building just $JUST_VERSION from crates.io"
  cargo install --locked --quiet --root "$tools" just --version "$JUST_VERSION"
fi

if has cargo-nextest "cargo-nextest $NEXTEST_VERSION" --version; then
  echo "install-tools: cargo-nextest $NEXTEST_VERSION present"
else
  echo "install-tools: building cargo-nextest $NEXTEST_VERSION from crates.io (a few minutes on 2 cores)"
  cargo install --locked --quiet --root "$tools" cargo-nextest --version "$NEXTEST_VERSION"
fi

if has kustomize "$KUSTOMIZE_VERSION" version; then
  echo "install-tools: kustomize $KUSTOMIZE_VERSION present"
else
  echo "install-tools: building kustomize $KUSTOMIZE_VERSION from the Go module proxy"
  GOBIN="$tools/bin" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

if has actionlint "$ACTIONLINT_VERSION" -version; then
  echo "install-tools: actionlint $ACTIONLINT_VERSION present"
else
  echo "install-tools: building actionlint $ACTIONLINT_VERSION from the Go module proxy"
  GOBIN="$tools/bin" GOFLAGS=-buildvcs=false go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
echo "install-tools: tools in $tools/bin"
