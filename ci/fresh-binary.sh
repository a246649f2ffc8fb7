#!/usr/bin/env bash
# Exit 0 when BIN was built from this checkout and nothing it was built from
# changed since: cargo's own dep-info (BIN.d) names every source file of the
# workspace it compiled, include_str! files too, and the manifests and the
# lock file name its dependencies. The front door then runs BIN without
# `cargo build`, whose no-op check alone costs more than the static tier on
# a busy machine; anything else (a newer, missing or foreign file) exits 1
# and the caller builds: never a stale binary.
#   fresh-binary.sh BIN   (CBAM_CHECKOUT: this checkout, as the Justfile sets)
set -euo pipefail
bin="$1"
checkout="${CBAM_CHECKOUT:?the Justfile sets CBAM_CHECKOUT}"
[ -x "$bin" ] && [ -f "$bin.d" ] || exit 1
for manifest in "$checkout/Cargo.lock" "$checkout/Cargo.toml" "$checkout"/suites/*/Cargo.toml; do
  [ "$manifest" -nt "$bin" ] && exit 1
done
# "BIN: SRC SRC ...", a space inside a path written as "\ ".
IFS= read -r line <"$bin.d"
line="${line#*: }"
line="${line//\\ /$'\x01'}"
read -r -a sources <<<"$line"
[ "${#sources[@]}" -gt 0 ] || exit 1
for source in "${sources[@]}"; do
  source="${source//$'\x01'/ }"
  case "$source" in "$checkout"/*) ;; *) exit 1 ;; esac
  [ -e "$source" ] && ! [ "$source" -nt "$bin" ] || exit 1
done
