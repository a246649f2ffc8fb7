#!/usr/bin/env bash
# The node's root filesystem, from Debian's packages only (debootstrap
# minbase + what kubelet, kube-proxy and containerd need on a node).
# Output: $CBAM_KIT/rootfs-SUITE.tar, cached.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$here/versions.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
out="$kit/rootfs-$DEBIAN_SUITE.tar"
if [ -f "$out" ]; then echo "kit: rootfs $DEBIAN_SUITE cached"; exit 0; fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
dir="$kit/rootfs-$DEBIAN_SUITE.tmp"
rm -rf "$dir"
packages=iptables,nftables,iproute2,ca-certificates,conntrack,ebtables,ethtool,socat,util-linux,mount,kmod,procps,runc,jq,busybox-static,e2fsprogs,findutils
echo "kit: debootstrap $DEBIAN_SUITE (minbase + $packages)"
debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$dir" http://deb.debian.org/debian >"$kit/debootstrap.log" 2>&1 ||
  { tail -20 "$kit/debootstrap.log" >&2; exit 2; }
# Smaller image: no package caches, docs or man pages.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
tar -C "$dir" -cf "$out.partial" . && mv "$out.partial" "$out"
rm -rf "$dir"
echo "kit: rootfs $out ($(du -h "$out" | cut -f1))"
