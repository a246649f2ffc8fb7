#!/usr/bin/env bash
# A cluster of kit nodes in Docker, for people and scripts (the harness's
# Rust providers do the same through testcontainers):
#   cluster.sh up [AGENTS]   one server + AGENTS agents (default 2); prints the kubeconfig path
#   cluster.sh status        nodes and system pods
#   cluster.sh load ARCHIVE  imports an OCI image archive into every node's containerd
#   cluster.sh down          removes every container, volume and network it made
# Env: CBAM_CLUSTER (name, default cbam-kit), CBAM_NODE_IMAGE (default: the kit's).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
name="${CBAM_CLUSTER:-cbam-kit}"
label="cbam.io/kit-cluster=$name"
kubeconfig="$kit/$name.kubeconfig"
say() { echo "cluster: $*" >&2; }
# The kit's own kubectl (same version as the cluster), else one on PATH.
# shellcheck source=../versions.env
source "$here/../versions.env"
kubectl() { local own="$kit/kubernetes-$KUBERNETES_VERSION/bin/kubectl"; if [ -x "$own" ]; then "$own" "$@"; else command kubectl "$@"; fi; }
export -f kubectl; export kit KUBERNETES_VERSION

# bound NAME: a bound from fixtures/timeouts.yaml, as the harness reads it.
bound() { awk -F': *' -v k="$1" '$1 == k { print $2 }' "$here/../../fixtures/timeouts.yaml"; }

# until_ok WHAT SECONDS COMMAND...: polls until COMMAND succeeds; names what it waited for.
until_ok() {
  local what="$1" limit="$2"; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "timed out after ${limit}s waiting for $what"; return 1
    fi
    sleep 1
  done
}

up() {
  local agents="${1:-2}" image="${CBAM_NODE_IMAGE:-$(cat "$kit/node-image" 2>/dev/null || true)}"
  [ -n "$image" ] || { say "no node image: run just kit"; exit 2; }
  started=$(date +%s)
  docker network create --label "$label" "$name" >/dev/null
  docker volume create --label "$label" "$name-shared" >/dev/null
  docker volume create --label "$label" "$name-storage" >/dev/null
  run_node() { # run_node NAME ROLE [docker args]
    local node="$1" role="$2"; shift 2
    docker run -d --privileged --name "$name-$node" --hostname "$node" --network "$name" --network-alias "$node" \
      --label "$label" --tmpfs /run --tmpfs /tmp \
      -v "$name-shared:/var/lib/cbam/shared" -v "$name-storage:/var/lib/cbam/storage" \
      -e CBAM_ROLE="$role" -e CBAM_SERVER=server -e CBAM_COMPONENT_TIMEOUT="$(bound node_component)" \
      -e CBAM_JOIN_TIMEOUT="$(bound node_start)" -e CBAM_CRASH_WINDOW="$(bound crash_window)" "$@" "$image" >/dev/null
  }
  run_node server server -p 127.0.0.1::6443 -p 127.0.0.1::80 -p 127.0.0.1::443
  local i
  for i in $(seq 1 "$agents"); do run_node "agent$i" agent; done
  until_ok "the server's kubeconfig" "$(bound node_start)" docker exec "$name-server" test -f /var/lib/cbam/shared/kubeconfig/super-admin.conf
  local port
  port="$(docker port "$name-server" 6443/tcp | head -1 | cut -d: -f2)"
  docker exec "$name-server" cat /var/lib/cbam/shared/kubeconfig/super-admin.conf |
    sed "s|server: https://.*|server: https://127.0.0.1:$port|" >"$kubeconfig"
  chmod 600 "$kubeconfig"
  until_ok "$((agents + 1)) nodes Ready" "$(( $(bound node_start) + $(bound nodes_ready) ))" bash -c \
    "[ \"\$(kubectl --kubeconfig '$kubeconfig' get nodes --no-headers 2>/dev/null | awk '\$2==\"Ready\"' | wc -l)\" -eq $((agents + 1)) ]" || { status; exit 1; }
  say "up in $(( $(date +%s) - started )) s: https $(docker port "$name-server" 443/tcp | head -1), http $(docker port "$name-server" 80/tcp | head -1)"
  echo "$kubeconfig"
}

status() {
  docker ps -a --filter "label=$label" --format '{{.Names}}\t{{.Status}}' >&2
  [ -f "$kubeconfig" ] && kubectl --kubeconfig "$kubeconfig" get nodes -o wide >&2 && kubectl --kubeconfig "$kubeconfig" get pods -A -o wide >&2 || true
}

load() { # load ARCHIVE: e.g. the application image, for `--cluster existing` runs against this cluster;
  # served to every node from the oci-registry beside it, as the harness serves it (serve-image.sh)
  local archive="${1:?usage: cluster.sh load ARCHIVE}" node dir=/var/lib/cbam-registry
  local registry="$(dirname "$archive")/oci-registry"
  [ -f "$archive" ] && [ -f "$registry" ] || { say "no such archive, or no oci-registry beside it: $archive (run just image)"; exit 2; }
  for node in $(docker ps -q --filter "label=$label"); do
    docker exec "$node" mkdir -p "$dir"
    docker cp "$archive" "$node:$dir/image.tar"
    docker cp "$registry" "$node:$dir/oci-registry"
    docker exec "$node" sh -c "$(cat "$here/serve-image.sh")" serve-image "$dir" "$(bound node_component)"
  done
  say "serving $archive to $(docker ps -q --filter "label=$label" | wc -l) nodes"
}

down() {
  local ids
  ids="$(docker ps -aq --filter "label=$label")"
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  docker volume ls -q --filter "label=$label" | xargs -r docker volume rm >/dev/null
  docker network ls -q --filter "label=$label" | xargs -r docker network rm >/dev/null
  rm -f "$kubeconfig"
  say "removed cluster $name"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  status) status ;;
  load) shift; load "$@" ;;
  down) down ;;
  *) echo "usage: cluster.sh up [AGENTS] | status | load ARCHIVE | down" >&2; exit 2 ;;
esac
