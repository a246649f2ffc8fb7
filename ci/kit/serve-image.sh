# Runs inside a cluster node (sh, as root): serves the image archive DIR/image.tar
# with DIR/oci-registry on the node's loopback and points the node's containerd
# at it for each registry host the archive names (certs.d/HOST; containerd
# reads that directory on each pull, so no restart). Pods then pull the
# application image as in production, `imagePullPolicy: Always` resolves its
# tag on every start, and nothing of those hosts is fetched from outside: a
# reference the archive does not hold fails to pull. Callers: KitCluster::serve_image (Rust), also behind `conformance cluster load`.
# Usage: sh serve-image.sh DIR TIMEOUT_SECONDS
set -eu
dir=$1 timeout=$2 listen=127.0.0.1:5000
pidfile=$dir/oci-registry.pid log=$dir/oci-registry.log
# A reused node serves the new archive: stop the registry of the last load.
if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
fi
setsid "$dir/oci-registry" --archive "$dir/image.tar" --listen "$listen" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"
# k3s keeps its containerd's hosts directory under its data dir; the kit
# node has containerd's own.
hosts=/etc/containerd/certs.d
[ ! -d /var/lib/rancher/k3s/agent/etc/containerd ] || hosts=/var/lib/rancher/k3s/agent/etc/containerd/certs.d
# Exactly the registry hosts the archive names are served from it (a
# reference on such a host that the archive lacks fails to pull); any other
# image is pulled as the node would (a kit node has them all already).
rm -rf "$hosts/_default"
routed=$("$dir/oci-registry" --archive "$dir/image.tar" --hosts) || { echo "oci-registry --hosts failed" >&2; exit 1; }
[ -n "$routed" ] || { echo "the archive names no image" >&2; exit 1; }
for host in $routed; do
  mkdir -p "$hosts/$host"
  printf 'server = "http://%s"\n' "$listen" >"$hosts/$host/hosts.toml"
done
fetch=wget
! command -v busybox >/dev/null 2>&1 || fetch="busybox wget"
waited=0
until $fetch -q -O /dev/null "http://$listen/v2/" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "oci-registry exited: $(tail -n 3 "$log")" >&2; exit 1
  fi
  if [ "$waited" -ge "$((timeout * 10))" ]; then
    echo "oci-registry not answering on $listen after ${timeout}s: $(tail -n 3 "$log")" >&2; exit 1
  fi
  sleep 0.1; waited=$((waited + 1))
done
