#!/usr/bin/env bash
# The kind node image (issue 37), built offline by kind's own recipe, in
# kind's two steps. Run by ci/kit/build.sh after the kit's parts; cached by
# content. Prints nothing on stdout; the reference goes to
# $CBAM_KIT/kind-node-image.
#
# 1. The base image, by kind v0.33.0's images/base/Dockerfile, read from the
#    pinned kind module at build time (ci/kit/kind-recipe.sh): its
#    BASE_IMAGE (debian:trixie-slim) is Debian trixie from debootstrap; its
#    files, unchanged, at its paths and modes; its RUN steps verbatim (kind's
#    package list, by its own clean-install); containerd, runc (seccomp),
#    crictl, the CNI plugins and containerd-fuse-overlayfs at the versions its
#    ARGs pin, built from their Go modules by the kit (its build stages clone
#    git, which this machine cannot); ENV, STOPSIGNAL, ENTRYPOINT verbatim.
# 2. The node layer, as `kind build node-image` lays it out
#    (pkg/build/nodeimage): kubeadm, kubelet, kubectl in /usr/bin,
#    /kind/version, /kind/manifests/default-{cni,storage}.yaml, and every
#    image imported into containerd's k8s.io namespace by the node's own
#    containerd with kind's own ctr command, then committed as kind commits.
#
# The deviations, each named: the pod network is the project's own cbam-cni
# (kindnetd has no source the proxy serves); kind's storage manifest names
# the kit's local-path-provisioner and busybox builds where it names
# kindest/ images; go-licenses' license files are not collected. Every
# image is tagged with the version it contains; where kubeadm or kind's
# containerd expect another tag (etcd, CoreDNS, pause), the image's labels
# say what it carries and the harness tells kubeadm and containerd through
# kind's cluster configuration (suites/cluster/src/kind.rs).
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
recipe() { bash "$here/kind-recipe.sh" "$@"; }
base_dir="$(recipe dir)"

# The pins here are kind's: a new kind version that moves one stops the build.
for pair in CONTAINERD_VERSION=CONTAINERD_VERSION RUNC_VERSION=RUNC_VERSION CRICTL_VERSION=CRI_TOOLS_VERSION \
  CNI_PLUGINS_VERSION=CNI_PLUGINS_VERSION CONTAINERD_FUSE_OVERLAYFS_VERSION=CONTAINERD_FUSE_OVERLAYFS_VERSION; do
  theirs="$(recipe arg "${pair%%=*}")" var="${pair#*=}"
  ours="${!var}"
  [ "$theirs" = "$ours" ] || { say "kind $KIND_VERSION pins ${pair%%=*}=$theirs, ci/versions.env has $ours" ; exit 2; }
done
[ "$(recipe arg BASE_IMAGE)" = "debian:$KIND_DEBIAN_SUITE-slim" ] ||
  { say "kind $KIND_VERSION starts from $(recipe arg BASE_IMAGE), ci/versions.env has KIND_DEBIAN_SUITE=$KIND_DEBIAN_SUITE"; exit 2; }

oci() { # oci NAME BINARY ENTRYPOINT UID REF: a scratch image of one static binary
  "${CARGO_TARGET_DIR:-$root/target}/release/oci-image" --binary "$2" --entrypoint "$3" --uid "$4" \
    --ref "$5" --out "$images/$1.tar" >&2
}

# kubeadm's image references for this version (the control plane's, whose
# tags are the version inside).
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

# The pod network's content (its source and the compiler): its binary's
# cache key and its image's tag (it has no version).
CNI_STAMP="$( { cat "$here/cni/main.go"; go version; } | sha256sum | cut -c1-16)"

cni_binary() {
  local out="$kit/cbam-cni/cbam-cni" stamp="$CNI_STAMP"
  [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  mkdir -p "$(dirname "$out")"
  (cd "$here/cni" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$out.partial" main.go)
  mv "$out.partial" "$out"
  echo "$stamp" >"$out.stamp"
}

# Every image the node holds, as archives: the control plane at kubeadm's
# references, etcd and CoreDNS at their own versions, the pause image, the
# pod network, kind's storage (the kit's provisioner and helper), and the
# harness's addon images (a run installs the addons with nothing to pull).
ADDONS=(pause coredns metrics-server local-path-provisioner traefik prometheus prometheus-adapter busybox)
ARCHIVES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd cbam-cni "${ADDONS[@]/#/addon-}")
build_images() {
  local name keep=" ${ARCHIVES[*]} " archive
  # Only this list goes into the node: an archive an older build left is removed.
  for archive in "$images"/*; do
    name="$(basename "$archive")"
    [[ "$keep" == *" ${name%.*} "* ]] || rm -f "$archive"
  done
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    oci "$name" "$k8s/$name" "/usr/local/bin/$name" 0 "$(kubeadm_ref "$name")"
  done
  oci etcd "$kit/etcd-$ETCD_VERSION/bin/etcd" /usr/local/bin/etcd 0 "registry.k8s.io/etcd:$ETCD_VERSION"
  cni_binary
  oci cbam-cni "$kit/cbam-cni/cbam-cni" /cbam-cni 0 "$CNI_IMAGE"
  kube_proxy_image "$(kubeadm_ref kube-proxy)"
  local addon
  for addon in "${ADDONS[@]}"; do cp "$kit/images/$addon.tar" "$images/addon-$addon.tar"; done
}

# Docker's COPY, as the base stage's lines say it (kind-recipe.sh copies):
# a directory's contents go into DEST, a file into DEST/ or onto DEST; the
# mode is set on every file copied (directories are 0755: the recipe's own
# RUN makes /kind and /kind/bin so, and /etc stays as Debian has it).
stage_copies() {
  local into="$1" mode source dest match rel
  while read -r mode source dest; do
    for match in "$base_dir"/$source; do
      if [ -d "$match" ]; then
        while IFS= read -r rel; do
          install -D -m "$mode" "$match/$rel" "$into$dest/$rel"
        done < <(cd "$match" && find . -type f | sed 's|^\./||' | sort)
      elif [[ "$dest" == */ ]]; then install -D -m "$mode" "$match" "$into$dest$(basename "$match")"
      else install -D -m "$mode" "$match" "$into$dest"; fi
    done
  done < <(recipe copies)
}

# The binaries the final image takes from kind's build stages, from the kit's
# builds of the same modules at the same versions (kind-recipe.sh binaries).
stage_runtime() {
  local into="$1" name dest found dir
  while read -r name dest; do
    found=""
    for dir in containerd-$CONTAINERD_VERSION runc-$RUNC_VERSION cri-tools-$CRI_TOOLS_VERSION \
      cni-plugins-$CNI_PLUGINS_VERSION fuse-overlayfs-$CONTAINERD_FUSE_OVERLAYFS_VERSION; do
      [ -x "$kit/$dir/bin/$name" ] && found="$kit/$dir/bin/$name" && break
    done
    [ -n "$found" ] || { say "kind's recipe installs $name; the kit builds none"; exit 2; }
    if [[ "$dest" == */ ]]; then install -D -m 755 "$found" "$into$dest$name"
    else install -D -m 755 "$found" "$into$dest"; fi
  done < <(recipe binaries)
}

# Step 1: kind's base image.
base_image() {
  bash "$here/build-rootfs.sh" kind >&2
  local minbase="$kit/rootfs-$KIND_DEBIAN_SUITE-minbase.tar" from tag ctx
  from="cbam-kit/debian:$KIND_DEBIAN_SUITE-minbase-$(sha256sum "$minbase" | cut -c1-12)"
  docker image inspect "$from" >/dev/null 2>&1 || docker import - "$from" <"$minbase" >/dev/null
  ctx="$kit/kind-base.ctx"
  rm -rf "$ctx" && mkdir -p "$ctx/base-files" "$ctx/runtime"
  stage_copies "$ctx/base-files"
  stage_runtime "$ctx/runtime"
  recipe dockerfile >"$ctx/Dockerfile"
  tag="$( (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$from") | sha256sum | cut -c1-12)"
  base="cbam-kit/kind-base:$KIND_VERSION-$tag"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    say "building $base by kind $KIND_VERSION's base Dockerfile"
    # The host's network: apt reaches Debian's mirror as the host does.
    docker build --quiet --force-rm --network=host --build-arg "BASE_IMAGE=$from" -t "$base" "$ctx" >/dev/null
  fi
  rm -rf "$ctx"
}

# kind's storage manifest (pkg/build/nodeimage/const_storage.go), its two
# image constants replaced by the kit's builds.
storage_manifest() {
  local source="$base_dir/../../pkg/build/nodeimage/const_storage.go"
  awk '/^const defaultStorageManifest = `/ { on = 1; next } on && /^`$/ { exit } on { print }' "$source" |
    sed -e "s|\` + storageProvisionerImage + \`|docker.io/rancher/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|" \
      -e "s|\` + storageHelperImage + \`|docker.io/library/busybox:$BUSYBOX_TAG|"
}

tag() { # content hash of everything that goes into the node layer
  { echo "$base"; cat "$here/kind/default-cni.yaml" "${BASH_SOURCE[0]}"; storage_manifest
    (cd "$images" && sha256sum "${ARCHIVES[@]/%/.tar}") | cut -d' ' -f1
    sha256sum "$k8s"/kubeadm "$k8s"/kubelet "$k8s"/kubectl | cut -d' ' -f1
  } | sha256sum | cut -c1-12
}

# Step 2: the node layer, in a container of the base image, as kind's
# buildImage does it.
node_layer() {
  local ref="$1" id="cbam-kind-build-$$" binary archive
  docker rm -f -v "$id" >/dev/null 2>&1 || true
  trap 'docker rm -f -v "'"$id"'" >/dev/null 2>&1 || true' EXIT
  docker run -d --entrypoint=sleep --name="$id" --security-opt seccomp=unconfined "$base" infinity >/dev/null
  for binary in kubeadm kubelet kubectl; do
    docker cp "$k8s/$binary" "$id:/usr/bin/$binary"
    docker exec "$id" chmod +x "/usr/bin/$binary"
    docker exec "$id" chown root:root "/usr/bin/$binary"
  done
  printf '%s' "$KUBERNETES_VERSION" | docker exec -i "$id" cp /dev/stdin /kind/version
  docker exec "$id" mkdir -p /kind/manifests
  sed "s|__CNI_IMAGE__|$CNI_IMAGE|" "$here/kind/default-cni.yaml" | docker exec -i "$id" cp /dev/stdin /kind/manifests/default-cni.yaml
  storage_manifest | docker exec -i "$id" cp /dev/stdin /kind/manifests/default-storage.yaml
  docker exec "$id" bash -c "nohup containerd > /dev/null 2>&1 &"
  docker exec "$id" bash -c 'for i in {0..3}; do [ -S /run/containerd/containerd.sock ] && break; sleep "$i"; done; ctr info >/dev/null'
  for archive in "${ARCHIVES[@]/%/.tar}"; do
    docker exec -i "$id" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
      --all-platforms --no-unpack --digests - <"$images/$archive" >/dev/null
  done
  docker exec "$id" pkill containerd
  # Its exit (sleep, PID 1 here, reaps nobody: a zombie has exited).
  docker exec "$id" bash -c 'while ps -C containerd -o stat= | grep -qv Z; do sleep 0.2; done'
  docker commit \
    --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
    --change "LABEL cbam.io/kubeadm-etcd-image-tag=$ETCD_VERSION" \
    --change "LABEL cbam.io/kubeadm-dns-image-tag=$COREDNS_VERSION" \
    --change "LABEL cbam.io/sandbox-image=registry.k8s.io/pause:$PAUSE_VERSION" \
    "$id" "$ref" >/dev/null
  docker rm -f -v "$id" >/dev/null
  trap - EXIT
}

CNI_IMAGE="docker.io/cbam-kit/cbam-cni:${CNI_STAMP:0:12}"
base_image
build_images
ref="cbam-kit/kind-node:$KUBERNETES_VERSION-$(tag)"
if docker image inspect "$ref" >/dev/null 2>&1; then
  say "$ref present"
else
  say "building $ref"
  node_layer "$ref"
fi
echo "$ref" >"$kit/kind-node-image"
say "$ref ($(docker image inspect "$ref" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
