#!/usr/bin/env bash
# What kind's own base-image recipe says, read from the pinned kind module
# (sigs.k8s.io/kind at KIND_VERSION, from the Go module proxy) at build
# time: its files are a dependency, used unchanged, never copied here.
#   kind-recipe.sh dir        the module's images/base directory
#   kind-recipe.sh arg NAME   the default of the Dockerfile's `ARG NAME=...`
#   kind-recipe.sh copies     the base stage's file copies: MODE SOURCE DEST
#   kind-recipe.sh binaries   what the final image takes from the build
#                             stages: BINARY DEST (licenses aside)
#   kind-recipe.sh dockerfile the Dockerfile this project builds (legacy
#                             builder, no BuildKit here): kind's own, with
#                             the base stage's copies as one COPY of
#                             base-files/, the Go build stages (git clones)
#                             dropped for one COPY of runtime/ (the same
#                             binaries, built from their Go modules), and
#                             every RUN, ENV, STOPSIGNAL and ENTRYPOINT kept
#                             verbatim
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../versions.env
source "$here/../versions.env"
base="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base"
if [ ! -f "$base/Dockerfile" ]; then
  GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kind@$KIND_VERSION" >&2
fi
[ -f "$base/Dockerfile" ] || { echo "kind-recipe: no $base/Dockerfile (sigs.k8s.io/kind@$KIND_VERSION not served?)" >&2; exit 2; }
case "${1:-}" in
  dir) echo "$base" ;;
  arg)
    [ -n "${2:-}" ] || { echo "usage: kind-recipe.sh arg NAME" >&2; exit 2; }
    sed -n "s/^ARG $2=\"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}\$/\\1/p" "$base/Dockerfile" | head -1 | grep . ||
      { echo "kind-recipe: the Dockerfile has no ARG $2=..." >&2; exit 2; }
    ;;
  copies | binaries | dockerfile)
    # One record per instruction (continuations joined, comments dropped),
    # with the stage it belongs to: base, build, final (FROM scratch), or
    # another (a Go build stage).
    awk -v want="$1" '
      function stage_of(text,   words) {
        split(text, words, /[ \t]+/)
        if (words[2] == "scratch") return "final"
        return tolower(words[length(words)])
      }
      function emit(text,   keyword, words, n, i, line) {
        keyword = toupper(substr(text, 1, index(text " ", " ") - 1))
        if (keyword == "FROM") { stage = stage_of(text) }
        if (want == "copies" && stage == "base" && keyword == "COPY") {
          n = split(text, words, /[ \t]+/); sub(/^--chmod=/, "", words[2])
          for (i = 3; i < n; i++) print words[2], words[i], words[n]
        }
        if (want == "binaries" && stage == "build" && keyword == "COPY" && text ~ /--from=/ && text !~ /_LICENSES/) {
          n = split(text, words, /[ \t]+/)
          line = words[3]; sub(/.*\//, "", line); print line, words[n]
        }
        if (want == "dockerfile") {
          if (stage == "" && keyword == "ARG") print text
          else if (keyword == "FROM" && stage == "base") print text "\nCOPY base-files/ /"
          else if (keyword == "FROM" && stage == "build") print text "\nCOPY runtime/ /"
          else if ((stage == "base" || stage == "build") && keyword == "RUN") print text
          else if (stage == "final") print text
        }
      }
      /^[ \t]*#/ { next }
      !inst && /^[ \t]*$/ { next }
      { inst = inst ? inst "\n" $0 : $0 }
      /\\$/ { next }
      { emit(inst); inst = "" }
    ' "$base/Dockerfile"
    ;;
  *) echo "usage: kind-recipe.sh dir | arg NAME | copies | binaries | dockerfile" >&2; exit 2 ;;
esac
