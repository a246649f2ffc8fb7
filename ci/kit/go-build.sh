#!/usr/bin/env bash
# Builds static binaries of one Go module at a pinned version, into the kit
# cache, from the Go module proxy only:
#   go-build.sh NAME MODULE VERSION BIN=PACKAGE [BIN=PACKAGE ...]
# A wrapper module requires MODULE@VERSION and repeats its module-to-module
# replace directives (`go install pkg@version` refuses modules that have
# any). Env: GO_TAGS (build tags), CGO (default 0), LDFLAGS_EXTRA,
# GO_REPLACE ("old=new ..." replace directives that win over the module's own).
# A PACKAGE of `./BIN` is this project's own main package, ci/kit/main/BIN.go,
# built inside the wrapper module (a trimmed main of the module's packages).
# Output: $CBAM_KIT/NAME-VERSION/bin/BIN, skipped when already complete (and,
# with an own main, built from that same main).
# GO_BUILD_RESOLVE_ONLY=1 stops after the wrapper module is resolved (its
# modules downloaded): build.sh does that for every component ahead, in the
# background, while the compiler is busy with another; a lock keeps that and
# the build itself from resolving the same component at once.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: go-build.sh NAME MODULE VERSION BIN=PACKAGE..." >&2; exit 2; }
name="$1" module="$2" version="$3"; shift 3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go-compiler.env
source "$here/../go-compiler.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
out="$kit/$name-$version"
own=()
for spec in "$@"; do [[ "${spec#*=}" == ./* ]] && own+=("$here/main/${spec%%=*}.go"); done
complete=""
[ ${#own[@]} = 0 ] || complete="own main $(cat "${own[@]}" | sha256sum | cut -c1-16)"
own_key="$complete"
# Built with other link flags (a version stamped in), built again.
complete="$complete${LDFLAGS_EXTRA:+ ldflags $LDFLAGS_EXTRA}"
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$complete" ]; then echo "kit: $name $version cached"; exit 0; fi
src="$out/src"
mkdir -p "$src" "$out/bin"
cd "$src"
for spec in "$@"; do
  pkg="${spec#*=}"
  [[ "$pkg" == ./* ]] || continue
  mkdir -p "$src/${pkg#./}" && cp "$here/main/${spec%%=*}.go" "$src/${pkg#./}/main.go"
done
exec 9>"$out/.resolve.lock"
flock 9
resolved="$name $module $version $* ${GO_REPLACE:-} $own_key"
if [ "$(cat .resolved 2>/dev/null)" != "$resolved" ]; then
rm -f .resolved
info="$(go mod download -json "$module@$version")"
upstream="$(jq -r '.GoMod // empty' <<<"$info")" moddir="$(jq -r '.Dir // empty' <<<"$info")"
[ -n "$upstream" ] || { echo "kit: $module@$version is not served" >&2; exit 2; }
go_line="$(grep -m1 '^go ' "$upstream" || echo 'go 1.22')"
printf 'module cbam.local/kit/%s\n\n%s\n\nrequire %s %s\n' "$name" "$go_line" "$module" "$version" >go.mod
# Replace and exclude directives carry over. A local-path replace points into
# the module's own (read-only) copy in the module cache when that directory
# is part of the module; otherwise it names a sibling module of the same
# repository (`../api`, a nested module) or a guard (`./FORBIDDEN_DEPENDENCY`)
# and is dropped, so the requirement is taken from the proxy at its version.
awk -v dir="$moddir" '
  /^(replace|exclude) \(/ { block = $1; next }
  block && /^\)/ { block = ""; next }
  block { line = block " " $0 } !block && /^(replace|exclude) / { line = $0 }
  line && match(line, /=>[ \t]*\.\.?\/[^ \t]*/) {
    target = substr(line, RSTART, RLENGTH); sub(/=>[ \t]*/, "", target)
    if (target !~ /^\.\// || system("test -d \"" dir "/" substr(target, 3) "\"") != 0) { line = ""; next }
    sub(/=>[ \t]*\.\//, "=> " dir "/", line)
  }
  line { print line; line = "" }' "$upstream" >>go.mod
for spec in ${GO_REPLACE:-}; do go mod edit -replace "$spec"; done
{
  echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
  for spec in "$@"; do [[ "${spec#*=}" == ./* ]] || echo "	_ \"${spec#*=}\""; done
  echo ')'
} >tools.go
GOFLAGS=-mod=mod go mod tidy -e >tidy.log 2>&1 || { tail -20 tidy.log >&2; exit 2; }
echo "$resolved" >.resolved
fi
flock -u 9
[ "${GO_BUILD_RESOLVE_ONLY:-0}" = 1 ] && exit 0
for spec in "$@"; do
  bin="${spec%%=*}" pkg="${spec#*=}"
  started=$(date +%s)
  CGO_ENABLED="${CGO:-0}" GOFLAGS=-buildvcs=false go build -tags "tools ${GO_TAGS:-}" -trimpath \
    -ldflags "-s -w ${LDFLAGS_EXTRA:-}" -o "$out/bin/$bin" "$pkg"
  echo "kit: built $name/$bin $version in $(( $(date +%s) - started )) s"
done
echo -n "$complete" >"$out/.complete"
