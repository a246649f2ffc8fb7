#!/bin/bash
# The join objects as the kit node wrote them at 34c116c (issue 28): its
# YAML heredoc, token and URL pasted into the text, behind cbam-join's
# `objects` interface. Not used by the node: join_objects.rs's
# every_token_shape_stays_a_string runs on it with
#   CBAM_JOIN_EMITTER=suites/cluster/tests/data/join-objects-34c116c.sh
# and must fail (all-digit ids read as numbers), as it passes on cbam-join.
set -euo pipefail
[ "${1:-}" = objects ] && [ $# = 3 ] || { echo "usage: $0 objects CA_FILE URL < TOKENS" >&2; exit 2; }
pki_ca="$2" url="$3"
while read -r bootstrap; do
  cat <<YAML
---
apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-${bootstrap%%.*}, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: ${bootstrap%%.*}
  token-secret: ${bootstrap#*.}
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: system:bootstrappers:cbam-node
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-info, namespace: kube-public}
data:
  kubeconfig: |
    apiVersion: v1
    kind: Config
    clusters:
    - name: ""
      cluster:
        certificate-authority-data: $(base64 -w0 "$pki_ca")
        server: $url
YAML
done
