#!/usr/bin/env bash
# The release gate's path, proved in CI: a kind cluster made as a user makes
# one (`conformance cluster up --cluster kind`), the application and tool
# images loaded into it (`conformance cluster load`), then the front door
# against it as a cluster the harness did not create (`--cluster existing`).
# The run must pass (exit 0), and the cluster must be left exactly as found:
# its objects are listed before and after and must be equal. The cluster is
# removed at the end, whatever happened.
# Usage: bash ci/release-gate-existing.sh ENV
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=versions.env
source ci/versions.env
env_name="${1:?usage: ci/release-gate-existing.sh ENV}"
name=cbam-release-gate
kit="${CBAM_KIT:-${CBAM_CACHE:-$HOME/.cache/cbam-conformance}/kit}"
kubectl="$kit/kubernetes-$KUBERNETES_VERSION/bin/kubectl"
report="target/release-gate/$env_name"
work="$(mktemp -d)"
down() { just cluster down --cluster kind --name "$name" >/dev/null 2>&1 || true; }
trap 'down; rm -rf "$work"' EXIT
# A cluster of this name left by an interrupted run goes first.
down
kubeconfig="$(just cluster up --cluster kind --name "$name" | tail -n 1)"
just cluster load target/image/cbam-api.tar target/image/cbam-tool.tar --cluster kind --name "$name"

# What a run could leave behind: every namespace, the objects of every
# namespace a workload lives in, cluster-scoped objects, and each node's
# schedulability and taints. Pods are left out (a system pod restarted by
# its controller gets a new name; its controller is listed).
snapshot() {
  local k=("$kubectl" --kubeconfig "$kubeconfig")
  "${k[@]}" get namespaces,persistentvolumes,storageclasses,ingressclasses,clusterroles,clusterrolebindings,apiservices,customresourcedefinitions,priorityclasses,validatingwebhookconfigurations,mutatingwebhookconfigurations -o name
  "${k[@]}" get deployments,daemonsets,statefulsets,services,configmaps,secrets,serviceaccounts,roles,rolebindings,persistentvolumeclaims,ingresses,networkpolicies,resourcequotas,limitranges,poddisruptionbudgets,horizontalpodautoscalers \
    -A --no-headers -o custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name
  "${k[@]}" get nodes --no-headers -o custom-columns=NODE:.metadata.name,UNSCHEDULABLE:.spec.unschedulable,TAINTS:.spec.taints[*].key
}
snapshot | sort >"$work/before"
echo "release gate: $(wc -l <"$work/before") objects listed before the run" >&2
rc=0
just conformance "$env_name" --cluster existing --kubeconfig "$kubeconfig" --report "$report" || rc=$?
snapshot | sort >"$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/diff"; then
  echo "release gate: the cluster was not left as found (- before, + after):" >&2
  cat "$work/diff" >&2
  [ "$rc" != 0 ] || rc=1
else
  echo "release gate: the cluster was left as found ($(wc -l <"$work/after") objects listed before and after, equal)" >&2
fi
exit "$rc"
