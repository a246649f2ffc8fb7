#!/usr/bin/env bash
# Renders each overlay (no cluster needed) and checks the inventory the
# summary documents: 10 resources of the expected kinds per environment,
# plus the four production governance files. Exit 0 when all hold.
#   validate.sh [dev|staging|production ...]   (default: all three)
set -euo pipefail
infra="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
envs=("$@")
[ ${#envs[@]} -gt 0 ] || envs=(dev staging production)

if command -v kustomize >/dev/null 2>&1; then render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then render=(kubectl kustomize)
else echo "validate: neither kustomize nor kubectl found" >&2; exit 2; fi

expected="ConfigMap:1 Deployment:1 Ingress:1 Namespace:1 PersistentVolumeClaim:4 Service:1 ServiceAccount:1"
status=0
for env in "${envs[@]}"; do
  overlay="$infra/kustomize/overlays/$env"
  [ -d "$overlay" ] || { echo "validate: no overlay $overlay" >&2; exit 2; }
  rendered="$("${render[@]}" "$overlay")" || { echo "validate: $env: kustomize failed" >&2; exit 2; }
  found="$(grep -E '^kind: ' <<<"$rendered" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}' | sed 's/ $//')"
  total="$(grep -cE '^kind: ' <<<"$rendered")"
  if [ "$found" = "$expected" ] && [ "$total" -eq 10 ]; then
    echo "validate: $env: 10 resources ($found)"
  else
    echo "validate: $env: expected 10 resources ($expected), found $total ($found)"; status=1
  fi
done
for file in resourcequota limitrange pdb hpa; do
  grep -q '^kind: ' "$infra/$file.yaml" || { echo "validate: $file.yaml has no object"; status=1; }
done
[ $status -eq 0 ] && echo "validate: ok (full checks: just conformance all --tier static)"
exit $status
