#!/usr/bin/env bash
# `just kit`: builds everything the offline cluster needs, from the Go module
# proxy and Debian's packages only, into $CBAM_KIT (default
# ~/.cache/cbam-conformance/kit), each part cached by its pinned version:
# Kubernetes binaries, etcd, containerd + ctr, CNI plugins, the addon images
# (pause, CoreDNS, metrics-server, local-path-provisioner + busybox helper,
# Traefik, Prometheus, prometheus-adapter), the node image `cbam-kit/node:TAG`
# in Docker, and the kind node image `cbam-kit/kind-node:TAG` (build-kind-node.sh).
# Prints the node image reference as its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../versions.env
source "$here/../versions.env"
# shellcheck source=../go-compiler.env
source "$here/../go-compiler.env"
versions="$here/../versions.env"
# shellcheck source=pinned.sh
source "$here/pinned.sh"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
export CBAM_KIT="$kit"
mkdir -p "$kit/images"
timings="$kit/timings.log"
total=18 n=0

step() { # step TITLE COMMAND...: numbered, timed progress
  local title="$1" started; shift
  n=$((n + 1)); started=$(date +%s)
  echo "kit: [$n/$total] $title" >&2
  "$@" >&2
  echo "$(date -u +%FT%TZ) $title $(( $(date +%s) - started ))s" >>"$timings"
}

go_build() { bash "$here/go-build.sh" "$@"; }

oci() { # oci NAME BINARY ENTRYPOINT UID REF [extra oci-image args]
  local name="$1" binary="$2" entry="$3" uid="$4" ref="$5"; shift 5
  "${CARGO_TARGET_DIR:-$root/target}/release/oci-image" --binary "$binary" --entrypoint "$entry" --uid "$uid" \
    --ref "$ref" --out "$kit/images/$name.tar" "$@" >&2
}

build_pause() {
  local out="$kit/pause-$PAUSE_VERSION/pause"
  [ -x "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  local source
  source="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
  [ -f "$source" ] || { echo "kit: pause.c not in the kubernetes module cache ($source)" >&2; return 2; }
  gcc -Os -static -DVERSION="v$PAUSE_VERSION-cbam-kit" -o "$out" "$source"
}

build_images() {
  cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p oci-image
  # busybox-static from the node rootfs (Debian's), for the storage helper pods.
  local bb="$kit/busybox-$DEBIAN_SUITE"
  [ -x "$bb" ] || { tar -xOf "$kit/rootfs-$DEBIAN_SUITE.tar" ./usr/bin/busybox >"$bb" && chmod 755 "$bb"; }
  oci pause "$kit/pause-$PAUSE_VERSION/pause" /pause 65535 "registry.k8s.io/pause:$PAUSE_VERSION"
  oci coredns "$kit/coredns-$COREDNS_VERSION/bin/coredns" /coredns 0 "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
  oci metrics-server "$kit/metrics-server-$METRICS_SERVER_VERSION/bin/metrics-server" /metrics-server 1000 \
    "registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"
  oci local-path-provisioner "$kit/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/bin/local-path-provisioner" \
    /usr/local/bin/local-path-provisioner 0 "docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION"
  oci traefik "$kit/traefik-$TRAEFIK_VERSION/bin/traefik" /traefik 65532 "docker.io/library/traefik:$TRAEFIK_VERSION"
  oci prometheus "$kit/prometheus-$PROMETHEUS_VERSION/bin/prometheus" /bin/prometheus 65534 \
    "quay.io/prometheus/prometheus:$PROMETHEUS_IMAGE_TAG"
  oci prometheus-adapter "$kit/prometheus-adapter-$PROMETHEUS_ADAPTER_VERSION/bin/adapter" /adapter 65534 \
    "registry.k8s.io/prometheus-adapter/prometheus-adapter:$PROMETHEUS_ADAPTER_VERSION"
  local links=() applet
  for applet in sh mkdir rm ls cat echo sleep chmod; do links+=(--link "/bin/$applet:/bin/busybox"); done
  oci busybox "$bb" /bin/busybox 0 "docker.io/library/busybox:$BUSYBOX_TAG" "${links[@]}"
}

node_tag() { # content hash of everything that goes into the node image
  { cat "$here/../versions.env" "$here/pinned.sh"; cat "$here"/node/cbam-node "$here"/node/cbam-join "$here"/node/wait.sh "$here"/node/runc-node "$here"/node/*.yaml "$here"/node/*.toml "$here"/node/*.conflist "$here"/node/addons/*.yaml
    sha256sum "$kit"/images/*.tar | cut -d' ' -f1; } | sha256sum | cut -c1-12
}

# Marks a node image run by cbam-node's supervisor: the harness reads its
# component states only there (an upstream k3s image has none).
# suites/cluster/src/provider.rs knows this name.
SUPERVISOR_LABEL=cbam.io/node-supervisor

build_node() {
  local ref="cbam-kit/node:$KUBERNETES_VERSION-$(node_tag)"
  if docker image inspect "$ref" >/dev/null 2>&1; then echo "kit: node image $ref present" >&2; echo "$ref" >"$kit/node-image"; return; fi
  local dir="$kit/node-rootfs.tmp"
  rm -rf "$dir" && mkdir -p "$dir"
  tar -C "$dir" -xf "$kit/rootfs-$DEBIAN_SUITE.tar"
  install -d "$dir/usr/local/bin" "$dir/opt/cni/bin" "$dir/etc/cbam/addons" "$dir/etc/containerd" \
    "$dir/var/lib/rancher/k3s/agent/images" "$dir/var/lib/cbam/storage"
  install -m 755 "$kit/kubernetes-$KUBERNETES_VERSION"/bin/* "$dir/usr/local/bin/"
  install -m 755 "$kit/etcd-$ETCD_VERSION/bin/etcd" "$dir/usr/local/bin/"
  install -m 755 "$kit/containerd-$CONTAINERD_VERSION"/bin/* "$dir/usr/local/bin/"
  install -m 755 "$kit/cni-plugins-$CNI_PLUGINS_VERSION"/bin/* "$dir/opt/cni/bin/"
  install -m 755 "$here/node/cbam-node" "$here/node/cbam-join" "$here/node/runc-node" "$dir/usr/local/bin/"
  install -D -m 644 "$here/node/wait.sh" "$dir/usr/local/lib/cbam/wait.sh"
  install -m 644 "$here/node/kubelet.yaml" "$here/node/join.yaml" "$here/node/authentication.yaml" \
    "$here/node/cni.conflist" "$dir/etc/cbam/"
  pinned "$here/node/containerd.toml" >"$dir/etc/containerd/config.toml"
  local addon
  for addon in "$here"/node/addons/*.yaml; do
    pinned "$addon" >"$dir/etc/cbam/addons/$(basename "$addon")"
  done
  cp "$kit"/images/*.tar "$dir/var/lib/rancher/k3s/agent/images/"
  echo "$KUBERNETES_VERSION" >"$dir/etc/cbam/kubernetes-version"
  tar -C "$dir" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/cbam-node"]' --change 'CMD ["agent"]' \
    --change "LABEL $SUPERVISOR_LABEL=cbam-node" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'VOLUME ["/var/lib/containerd", "/var/lib/kubelet", "/var/lib/etcd", "/var/log"]' - "$ref" >/dev/null
  rm -rf "$dir"
  echo "$ref" >"$kit/node-image"
  echo "kit: node image $ref ($(docker image inspect "$ref" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))" >&2
}

# Components: NAME MODULE VERSION BIN=PACKAGE..., with their build settings.
components() {
  echo "etcd|go.etcd.io/etcd/server/v3|$ETCD_VERSION|etcd=go.etcd.io/etcd/server/v3"
  echo "containerd|github.com/containerd/containerd/v2|$CONTAINERD_VERSION|containerd=github.com/containerd/containerd/v2/cmd/containerd containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 ctr=github.com/containerd/containerd/v2/cmd/ctr"
  # kind's four (host-local, loopback, ptp, portmap) and the kit node's bridge.
  echo "cni-plugins|github.com/containernetworking/plugins|$CNI_PLUGINS_VERSION|bridge=github.com/containernetworking/plugins/plugins/main/bridge loopback=github.com/containernetworking/plugins/plugins/main/loopback host-local=github.com/containernetworking/plugins/plugins/ipam/host-local portmap=github.com/containernetworking/plugins/plugins/meta/portmap ptp=github.com/containernetworking/plugins/plugins/main/ptp"
  # The kind node's runtime, as kind's base image builds it.
  echo "runc|github.com/opencontainers/runc|$RUNC_VERSION|runc=github.com/opencontainers/runc"
  echo "cri-tools|sigs.k8s.io/cri-tools|$CRI_TOOLS_VERSION|crictl=sigs.k8s.io/cri-tools/cmd/crictl"
  echo "fuse-overlayfs|github.com/containerd/fuse-overlayfs-snapshotter/v2|$CONTAINERD_FUSE_OVERLAYFS_VERSION|containerd-fuse-overlayfs-grpc=github.com/containerd/fuse-overlayfs-snapshotter/v2/cmd/containerd-fuse-overlayfs-grpc"
  # The plugins the Corefile uses, not all of them (ci/kit/main/coredns.go).
  echo "coredns|github.com/coredns/coredns|$COREDNS_VERSION|coredns=./coredns"
  echo "metrics-server|sigs.k8s.io/metrics-server|$METRICS_SERVER_VERSION|metrics-server=sigs.k8s.io/metrics-server/cmd/metrics-server"
  echo "local-path-provisioner|github.com/rancher/local-path-provisioner|$LOCAL_PATH_PROVISIONER_VERSION|local-path-provisioner=github.com/rancher/local-path-provisioner"
  echo "prometheus|github.com/prometheus/prometheus|$PROMETHEUS_VERSION|prometheus=github.com/prometheus/prometheus/cmd/prometheus"
  echo "prometheus-adapter|sigs.k8s.io/prometheus-adapter|$PROMETHEUS_ADAPTER_VERSION|adapter=sigs.k8s.io/prometheus-adapter/cmd/adapter"
}

# runc's seccomp support links Debian's libseccomp (the node has libseccomp2).
need_libseccomp() {
  [ -f /usr/include/seccomp.h ] && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev >/dev/null
}

component() { # component NAME: builds it (its module resolved ahead, see below)
  local line name module version bins
  line="$(components | grep "^$1|")"
  IFS='|' read -r name module version bins <<<"$line"
  # shellcheck disable=SC2086 # BIN=PACKAGE words
  case "$name" in
    # kind's build tags, and the version `containerd --version` reports.
    containerd) GO_TAGS="no_aufs no_zfs no_btrfs no_devmapper" \
      LDFLAGS_EXTRA="-X github.com/containerd/containerd/v2/version.Version=$version" \
      go_build "$name" "$module" "$version" $bins ;;
    # With seccomp (cgo, libseccomp), as runc's Makefile and kind build it.
    runc) need_libseccomp && CGO=1 GO_TAGS="seccomp urfave_cli_no_docs" LDFLAGS_EXTRA="-X main.version=${version#v}" \
      go_build "$name" "$module" "$version" $bins ;;
    cri-tools) LDFLAGS_EXTRA="-X sigs.k8s.io/cri-tools/pkg/version.Version=$version" go_build "$name" "$module" "$version" $bins ;;
    # Kubernetes service discovery only: the other discovery plugins are not needed.
    # The version each program reports is the one its image's tag says
    # (each project's own release ldflags).
    prometheus) GO_TAGS="remove_all_sd enable_kubernetes_sd" \
      LDFLAGS_EXTRA="-X github.com/prometheus/common/version.Version=${PROMETHEUS_IMAGE_TAG#v}" \
      go_build "$name" "$module" "$version" $bins ;;
    metrics-server) LDFLAGS_EXTRA="-X k8s.io/client-go/pkg/version.gitVersion=$version" go_build "$name" "$module" "$version" $bins ;;
    local-path-provisioner) LDFLAGS_EXTRA="-X main.VERSION=$version" go_build "$name" "$module" "$version" $bins ;;
    *) go_build "$name" "$module" "$version" $bins ;;
  esac
}

# Network while the compiler works: the Debian rootfs and every component's
# modules are fetched in the background from the start, one at a time (the
# compiler keeps both cores); each build step then finds them in place.
ahead() {
  bash "$here/build-rootfs.sh" >"$kit/rootfs-ahead.log" 2>&1 || true
  bash "$here/build-rootfs.sh" kind >>"$kit/rootfs-ahead.log" 2>&1 || true
  GO_BUILD_RESOLVE_ONLY=1 bash "$here/build-traefik.sh" >>"$kit/resolve-ahead.log" 2>&1 || true
  local line name module version bins
  while IFS='|' read -r name module version bins; do
    # shellcheck disable=SC2086 # BIN=PACKAGE words
    GO_BUILD_RESOLVE_ONLY=1 go_build "$name" "$module" "$version" $bins >>"$kit/resolve-ahead.log" 2>&1 || true
  done < <(components)
}

bash "$root/ci/engine.sh" up
# One build of the kit at a time: checkouts share it, and two builds wrote
# one image archive at once (a fresh-machine CI run failed so, 2026-12-04).
exec 7>"$kit/.build.lock"
flock 7
ahead &
ahead_job=$!
trap 'kill "$ahead_job" 2>/dev/null || true' EXIT
step "kubernetes $KUBERNETES_VERSION" bash "$here/build-kubernetes.sh"
step "etcd $ETCD_VERSION" component etcd
step "containerd $CONTAINERD_VERSION" component containerd
step "CNI plugins $CNI_PLUGINS_VERSION" component cni-plugins
step "runc $RUNC_VERSION" component runc
step "crictl $CRI_TOOLS_VERSION" component cri-tools
step "containerd-fuse-overlayfs $CONTAINERD_FUSE_OVERLAYFS_VERSION" component fuse-overlayfs
step "coredns $COREDNS_VERSION" component coredns
step "metrics-server $METRICS_SERVER_VERSION" component metrics-server
step "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION" component local-path-provisioner
step "traefik $TRAEFIK_VERSION" bash "$here/build-traefik.sh"
step "prometheus $PROMETHEUS_VERSION" component prometheus
step "prometheus-adapter $PROMETHEUS_ADAPTER_VERSION" component prometheus-adapter
step "pause $PAUSE_VERSION" build_pause
# The rootfs was started ahead: this waits for it (or builds it, showing why it failed).
wait "$ahead_job" || true
step "node rootfs (Debian $DEBIAN_SUITE)" bash "$here/build-rootfs.sh"
step "addon images" build_images
step "node image" build_node
step "kind node image" bash "$here/build-kind-node.sh"
cat "$kit/node-image"
