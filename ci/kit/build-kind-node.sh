#!/usr/bin/env bash
# The kind node image (issue 29), built here offline to kind's node-image
# contract from what the kit builds (Kubernetes, etcd, containerd, CNI
# plugins, CoreDNS, pause) and Debian's packages (systemd and the node's
# tools). The real kind CLI creates clusters on it: `kind create cluster
# --image cbam-kit/kind-node:TAG`. Run by ci/kit/build.sh after the kit's
# parts; cached by content like the kit's node. Prints nothing on stdout;
# the reference is written to $CBAM_KIT/kind-node-image.
#
# What kind expects of a node image, and where it is here:
#   /kind/version                       one line, the Kubernetes version
#   kubeadm, kubelet, kubectl           /usr/bin
#   crictl (kind export logs runs it)   /usr/local/bin, /etc/crictl.yaml
#   systemd as PID 1 (container=docker) ci/kit/kind/entrypoint execs it
#   containerd (Delegate=yes), kubelet  ci/kit/kind/systemd, enabled
#     with kubeadm's drop-in
#   CRI with the systemd cgroup driver  ci/kit/kind/containerd.toml
#   the control plane's images at       /kind/images, imported into k8s.io
#     kubeadm's references                before kubelet starts
#   /kind/manifests/default-cni.yaml    ci/kit/kind/default-cni.yaml (cbam-cni)
#   /kind/manifests/default-storage.yaml  ci/addons/20-local-path.yaml (pinned)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../versions.env
source "$here/../versions.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
k8s="$kit/kubernetes-$KUBERNETES_VERSION/bin"
images="$kit/kind-images"
mkdir -p "$images"

say() { echo "kit: kind node: $*" >&2; }

versions="$here/../versions.env"
# shellcheck source=pinned.sh
source "$here/pinned.sh"

oci() { # oci NAME BINARY ENTRYPOINT UID REF: a scratch image of one static binary
  "${CARGO_TARGET_DIR:-$root/target}/release/oci-image" --binary "$2" --entrypoint "$3" --uid "$4" \
    --ref "$5" --out "$images/$1.tar" >&2
}

# kubeadm's image references for this version: kind gives kubeadm no image
# repository, so the kubelet runs the control plane from exactly these.
kubeadm_ref() { "$k8s/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null | grep "/$1:"; }

# kube-proxy runs iptables and conntrack: the kit's Debian rootfs (no
# systemd) with the binary, as an image archive containerd imports.
kube_proxy_image() {
  local ref="$1" out="$images/kube-proxy.tar" stamp
  stamp="$(sha256sum "$k8s/kube-proxy" "$kit/rootfs-$DEBIAN_SUITE.tar" | sha256sum | cut -c1-16)"
  [ -f "$out" ] && [ "$(cat "$images/kube-proxy.digest" 2>/dev/null)" = "$stamp" ] && return 0
  local dir="$kit/kube-proxy-rootfs.tmp"
  rm -rf "$dir" && mkdir -p "$dir"
  tar -C "$dir" -xf "$kit/rootfs-$DEBIAN_SUITE.tar"
  install -m 755 "$k8s/kube-proxy" "$dir/usr/local/bin/kube-proxy"
  tar -C "$dir" -c . | docker import --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]' - "$ref" >/dev/null
  docker save -o "$out.partial" "$ref" && mv "$out.partial" "$out"
  rm -rf "$dir"
  echo "$stamp" >"$images/kube-proxy.digest"
}

cni_binary() {
  local out="$kit/cbam-cni/cbam-cni" stamp
  stamp="$({ cat "$here/cni/main.go"; go version; } | sha256sum | cut -c1-16)"
  [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  mkdir -p "$(dirname "$out")"
  (cd "$here/cni" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$out.partial" main.go)
  mv "$out.partial" "$out"
  echo "$stamp" >"$out.stamp"
}

# crictl from its Go module, at the Kubernetes minor's release.
crictl_binary() {
  local out="$kit/cri-tools-$CRI_TOOLS_VERSION/crictl"
  [ -x "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  GOBIN="$(dirname "$out")/bin.partial" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" >&2
  mv "$(dirname "$out")/bin.partial/crictl" "$out"
  rm -rf "$(dirname "$out")/bin.partial"
}

build_images() {
  local name
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    oci "$name" "$k8s/$name" "/usr/local/bin/$name" 0 "$(kubeadm_ref "$name")"
  done
  # etcd and CoreDNS are the kit's builds (ci/versions.env) under the tags
  # kubeadm asks for: the version inside is the kit's (README says so).
  oci etcd "$kit/etcd-$ETCD_VERSION/bin/etcd" /usr/local/bin/etcd 0 "$(kubeadm_ref etcd)"
  oci coredns "$kit/coredns-$COREDNS_VERSION/bin/coredns" /coredns 0 "$(kubeadm_ref coredns)"
  cni_binary
  oci cbam-cni "$kit/cbam-cni/cbam-cni" /cbam-cni 0 "$CNI_IMAGE"
  kube_proxy_image "$(kubeadm_ref kube-proxy)"
  # The harness's addon images (Traefik, metrics-server, Prometheus, the
  # adapter, local-path with its busybox helper): a run installs the addons
  # as on the kit, with nothing to pull.
  local addon
  for addon in metrics-server local-path-provisioner traefik prometheus prometheus-adapter busybox; do
    cp "$kit/images/$addon.tar" "$images/addon-$addon.tar"
    cp "$kit/images/$addon.digest" "$images/addon-$addon.digest"
  done
  cp "$kit/images/pause.tar" "$images/pause.tar"
  cp "$kit/images/pause.digest" "$images/pause.digest"
}

tag() { # content hash of everything that goes into the image
  { find "$here/kind" "$here/cni" -type f | sort | xargs cat
    cat "$root/ci/addons/20-local-path.yaml"
    cat "$here/../versions.env" "$here/node/runc-node" "$here/pinned.sh" "${BASH_SOURCE[0]}"
    sha256sum "$images"/*.tar "$k8s"/kubeadm "$k8s"/kubelet "$k8s"/kubectl "$kit/rootfs-$DEBIAN_SUITE-kind.tar" \
      "$kit/cri-tools-$CRI_TOOLS_VERSION/crictl" | cut -d' ' -f1
  } | sha256sum | cut -c1-12
}

# Fully qualified: containerd names an imported image exactly as its archive does.
CNI_IMAGE="docker.io/cbam-kit/cbam-cni:$KUBERNETES_VERSION"
bash "$here/build-rootfs.sh" kind >&2
build_images
crictl_binary
ref="cbam-kit/kind-node:$KUBERNETES_VERSION-$(tag)"
if docker image inspect "$ref" >/dev/null 2>&1; then
  say "$ref present"
  echo "$ref" >"$kit/kind-node-image"
  exit 0
fi
dir="$kit/kind-rootfs.tmp"
rm -rf "$dir" && mkdir -p "$dir"
tar -C "$dir" -xf "$kit/rootfs-$DEBIAN_SUITE-kind.tar"
install -d "$dir/kind/manifests" "$dir/kind/images" "$dir/opt/cni/bin" "$dir/etc/containerd" \
  "$dir/etc/kubernetes/manifests" "$dir/etc/systemd/system/kubelet.service.d" "$dir/etc/systemd/system/multi-user.target.wants"
install -m 755 "$k8s/kubeadm" "$k8s/kubelet" "$k8s/kubectl" "$dir/usr/bin/"
install -m 755 "$kit/cri-tools-$CRI_TOOLS_VERSION/crictl" "$dir/usr/local/bin/"
install -m 644 "$here/kind/crictl.yaml" "$dir/etc/crictl.yaml"
install -m 755 "$kit/containerd-$CONTAINERD_VERSION"/bin/* "$dir/usr/local/bin/"
install -m 755 "$kit/cni-plugins-$CNI_PLUGINS_VERSION"/bin/* "$dir/opt/cni/bin/"
install -m 755 "$here/node/runc-node" "$dir/usr/local/bin/"
install -m 755 "$here/kind/entrypoint" "$dir/usr/local/bin/entrypoint"
install -m 755 "$here/kind/import-images" "$dir/usr/local/bin/cbam-import-images"
install -m 755 "$here/kind/kubelet-cgroup" "$dir/usr/local/bin/cbam-kubelet-cgroup"
install -m 644 "$here/kind/kubelet.default" "$dir/etc/default/kubelet"
pinned "$here/kind/containerd.toml" >"$dir/etc/containerd/config.toml"
sed "s|__CNI_IMAGE__|$CNI_IMAGE|" "$here/kind/default-cni.yaml" >"$dir/kind/manifests/default-cni.yaml"
# kind's default storage is the harness's: local-path on /var/lib/cbam/storage
# (ReadWriteMany across nodes when that directory is one host directory
# mounted into every node, as the harness's kind config does).
# Every pin substituted: kind applies this before the harness's addons, and
# the provisioner may read it before their update reaches its mount.
pinned "$root/ci/addons/20-local-path.yaml" >"$dir/kind/manifests/default-storage.yaml"
install -m 644 "$here"/kind/systemd/*.service "$here"/kind/systemd/*.slice "$dir/etc/systemd/system/"
install -m 644 "$here"/kind/systemd/kubelet.service.d/*.conf "$dir/etc/systemd/system/kubelet.service.d/"
cp "$images"/*.tar "$images"/*.digest "$dir/kind/images/"
echo "$KUBERNETES_VERSION" >"$dir/kind/version"
# systemd in a container: only what a node needs starts (as kind's base
# image: no units wanted by default, journald not reading the kernel's
# log, binfmt registration, kernel-global, masked).
rm -f "$dir"/lib/systemd/system/multi-user.target.wants/* "$dir"/etc/systemd/system/*.wants/* \
  "$dir"/lib/systemd/system/local-fs.target.wants/* "$dir"/lib/systemd/system/sockets.target.wants/*udev* \
  "$dir"/lib/systemd/system/sockets.target.wants/*initctl* "$dir"/lib/systemd/system/basic.target.wants/*
find "$dir/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
echo "ReadKMsg=no" >>"$dir/etc/systemd/journald.conf"
ln -sf /dev/null "$dir/etc/systemd/system/systemd-binfmt.service"
for unit in containerd.service cbam-images.service kubelet.service; do
  ln -sf "/etc/systemd/system/$unit" "$dir/etc/systemd/system/multi-user.target.wants/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$dir/etc/systemd/system/default.target"
say "importing $ref"
tar -C "$dir" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint"]' \
  --change 'ENV container=docker' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$ref-base" >/dev/null
rm -rf "$dir"
# systemd shuts down on SIGRTMIN+3 (SIGTERM makes it re-execute itself):
# `docker stop` sends it. `docker import` cannot set it; a one-line build can.
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$ref-base" | docker build --quiet -t "$ref" - >/dev/null
docker image rm "$ref-base" >/dev/null
echo "$ref" >"$kit/kind-node-image"
say "$ref ($(docker image inspect "$ref" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
