# Sourced by ci/kit/build.sh and build-kind-node.sh (after ci/versions.env's
# path is known as $versions). pinned FILE prints FILE with each __NAME__ of
# ci/versions.env replaced by its pin (each placeholder sits inside a string:
# suites/cluster/tests/node_templates.rs); a placeholder without a pin fails,
# so no image carries one (a helper image left as __BUSYBOX_TAG__ once
# stopped every volume on kind).
pinned() {
  local text name value left
  text="$(cat "$1")"
  while IFS='=' read -r name value; do
    [[ "$name" =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
    text="${text//__${name}__/$value}"
  done <"$versions"
  left="$(grep -o '__[A-Z][A-Z0-9_]*__' <<<"$text" | head -1 || true)"
  [ -z "$left" ] || { echo "kit: $1: no pin in ci/versions.env for $left" >&2; return 1; }
  printf '%s\n' "$text"
}
