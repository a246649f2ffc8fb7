# Runs inside a cluster node (sh, as root): serves the image archives
# DIR/image-*.tar (the application's, the harness's tool image) with
# DIR/oci-registry on the node's loopback and points the node's containerd
# at it for each registry host the archives name (certs.d/HOST; containerd
# reads that directory on each pull, so no restart). Pods then pull the
# application image as in production, `imagePullPolicy: Always` resolves its
# tag on every start, and nothing of those hosts is fetched from outside: a
# reference the archives do not hold fails to pull. Callers:
# docker::serve_image (Rust), behind the harness and `conformance cluster load`.
# It uses only what kind's base image and the kit's node both have (sh,
# coreutils, grep): the registry's own start line says it listens.
# Usage: sh serve-image.sh DIR TIMEOUT_SECONDS
set -eu
dir=$1 timeout=$2 listen=127.0.0.1:5000
pidfile=$dir/oci-registry.pid log=$dir/oci-registry.log
# A reused node serves the new archives: stop the registry of the last load.
if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
fi
set --
for archive in "$dir"/image-*.tar; do
  [ -f "$archive" ] || { echo "no image archive in $dir" >&2; exit 1; }
  set -- "$@" --archive "$archive"
done
# The last load's request log is kept (which images the nodes pulled); the
# new one starts empty, so its start line is this registry's.
[ ! -f "$log" ] || cat "$log" >>"$log.previous"
: >"$log"
setsid "$dir/oci-registry" "$@" --listen "$listen" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"
# k3s keeps its containerd's hosts directory under its data dir; the kit
# node has containerd's own.
hosts=/etc/containerd/certs.d
[ ! -d /var/lib/rancher/k3s/agent/etc/containerd ] || hosts=/var/lib/rancher/k3s/agent/etc/containerd/certs.d
# Exactly the registry hosts the archives name are served from it (a
# reference on such a host that they lack fails to pull); any other image
# is pulled as the node would (a kit node has them all already).
rm -rf "$hosts/_default"
routed=$("$dir/oci-registry" "$@" --hosts) || { echo "oci-registry --hosts failed" >&2; exit 1; }
[ -n "$routed" ] || { echo "the archives name no image" >&2; exit 1; }
for host in $routed; do
  mkdir -p "$hosts/$host"
  printf 'server = "http://%s"\n' "$listen" >"$hosts/$host/hosts.toml"
done
# The registry prints {"listening": ...} once its socket is bound.
waited=0
until grep -q '"listening"' "$log"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "oci-registry exited: $(tail -n 3 "$log")" >&2; exit 1
  fi
  if [ "$waited" -ge "$((timeout * 10))" ]; then
    echo "oci-registry not listening on $listen after ${timeout}s: $(tail -n 3 "$log")" >&2; exit 1
  fi
  sleep 0.1; waited=$((waited + 1))
done
