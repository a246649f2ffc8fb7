#!/usr/bin/env bash
# Builds the Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubelet, kubeadm, kubectl) at KUBERNETES_VERSION
# from the k8s.io/kubernetes Go module. That module's go.mod points its
# k8s.io/* staging modules at local directories, which `go install` of a
# dependency refuses; a small wrapper module pins each one to the published
# v0.X.Y instead. Output: $KIT/kubernetes-VERSION/bin, cached by version.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$here/versions.env"
# shellcheck source=../go-compiler.env
source "$here/go-compiler.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
version="$KUBERNETES_VERSION"
out="$kit/kubernetes-$version"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
if [ -f "$out/.complete" ]; then echo "kit: kubernetes $version cached in $out/bin"; exit 0; fi

src="$out/src"
mkdir -p "$src" "$out/bin"
cd "$src"
staging_version="v0.${version#v1.}"
echo "kit: resolving k8s.io/kubernetes $version (staging modules at $staging_version)"
cat >go.mod <<GOMOD
module cbam.local/kit/kubernetes

go 1.24

require k8s.io/kubernetes $version
GOMOD
upstream="$(go mod download -json "k8s.io/kubernetes@$version" | jq -r .GoMod)"
# Every `k8s.io/NAME => ./staging/...` replace becomes `k8s.io/NAME => k8s.io/NAME vX`.
grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$upstream" | awk '{print $1}' | sort -u | while read -r module; do
  echo "replace $module => $module $staging_version" >>go.mod
done
grep -q '^go ' "$upstream" && sed -i "s/^go .*/$(grep -m1 '^go ' "$upstream")/" go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>tidy.log || { tail -20 tidy.log; exit 2; }
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
# One invocation for all seven: the compiler shares one action graph, so a
# binary links while the next one's packages compile.
started=$(date +%s)
echo "kit: building ${binaries[*]} $version"
CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -tags tools -trimpath -ldflags "$ldflags" \
  -o "$out/bin/" "${binaries[@]/#/k8s.io/kubernetes/cmd/}"
echo "kit: built the Kubernetes binaries in $(( $(date +%s) - started )) s"
"$out/bin/kubeadm" version -o short
touch "$out/.complete"
