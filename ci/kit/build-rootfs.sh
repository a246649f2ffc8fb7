#!/usr/bin/env bash
# The node's root filesystem, from Debian's packages only (debootstrap
# minbase + what kubelet, kube-proxy and containerd need on a node).
#   build-rootfs.sh        the kit node's: $CBAM_KIT/rootfs-SUITE.tar
#   build-rootfs.sh kind   what kind's base image starts from (its BASE_IMAGE,
#                          debian:trixie-slim): Debian KIND_DEBIAN_SUITE,
#                          minbase, with the slim image's apt sources; kind's
#                          own recipe installs its packages on top
#                          (build-kind-node.sh): $CBAM_KIT/rootfs-SUITE-minbase.tar
# Each cached.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$here/versions.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
variant="${1:-kit}"
case "$variant" in
  kit)
    suite=$DEBIAN_SUITE out="$kit/rootfs-$DEBIAN_SUITE.tar"
    packages=iptables,nftables,iproute2,ca-certificates,conntrack,ebtables,ethtool,socat,util-linux,mount,kmod,procps,runc,jq,busybox-static,e2fsprogs,findutils
    ;;
  kind) suite=$KIND_DEBIAN_SUITE out="$kit/rootfs-$KIND_DEBIAN_SUITE-minbase.tar" packages="" ;;
  *) echo "usage: build-rootfs.sh [kind]" >&2; exit 2 ;;
esac
if [ -f "$out" ]; then echo "kit: rootfs $suite ($variant) cached"; exit 0; fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
dir="$out.tmp"
rm -rf "$dir"
echo "kit: debootstrap $suite (minbase${packages:+ + $packages})"
debootstrap --variant=minbase ${packages:+--include="$packages"} "$suite" "$dir" http://deb.debian.org/debian >"$kit/debootstrap-$variant.log" 2>&1 ||
  { tail -20 "$kit/debootstrap-$variant.log" >&2; exit 2; }
if [ "$variant" = kind ]; then
  # As Debian's slim image: the release, its updates and its security fixes.
  rm -f "$dir/etc/apt/sources.list"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$suite" "$suite" "$suite" >"$dir/etc/apt/sources.list.d/debian.sources"
fi
# Smaller image: no package caches, docs or man pages.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
tar -C "$dir" -cf "$out.partial" . && mv "$out.partial" "$out"
rm -rf "$dir"
echo "kit: rootfs $out ($(du -h "$out" | cut -f1))"
