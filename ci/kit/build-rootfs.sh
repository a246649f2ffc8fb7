#!/usr/bin/env bash
# The node's root filesystem, from Debian's packages only (debootstrap
# minbase + what kubelet, kube-proxy and containerd need on a node).
#   build-rootfs.sh        the kit node's: $CBAM_KIT/rootfs-SUITE.tar
#   build-rootfs.sh kind   the kind node's, with systemd (PID 1 of a kind
#                          node) and dbus: $CBAM_KIT/rootfs-SUITE-kind.tar
# Each cached.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$here/versions.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
variant="${1:-kit}"
case "$variant" in
  kit) out="$kit/rootfs-$DEBIAN_SUITE.tar" ;;
  kind) out="$kit/rootfs-$DEBIAN_SUITE-kind.tar" ;;
  *) echo "usage: build-rootfs.sh [kind]" >&2; exit 2 ;;
esac
if [ -f "$out" ]; then echo "kit: rootfs $DEBIAN_SUITE ($variant) cached"; exit 0; fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
dir="$out.tmp"
rm -rf "$dir"
packages=iptables,nftables,iproute2,ca-certificates,conntrack,ebtables,ethtool,socat,util-linux,mount,kmod,procps,runc,jq,busybox-static,e2fsprogs,findutils
[ "$variant" = kit ] || packages+=,systemd,systemd-sysv,dbus,libseccomp2
echo "kit: debootstrap $DEBIAN_SUITE (minbase + $packages)"
debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$dir" http://deb.debian.org/debian >"$kit/debootstrap-$variant.log" 2>&1 ||
  { tail -20 "$kit/debootstrap-$variant.log" >&2; exit 2; }
# Smaller image: no package caches, docs or man pages.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
tar -C "$dir" -cf "$out.partial" . && mv "$out.partial" "$out"
rm -rf "$dir"
echo "kit: rootfs $out ($(du -h "$out" | cut -f1))"
