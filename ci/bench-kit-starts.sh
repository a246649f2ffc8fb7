#!/usr/bin/env bash
# Kit start reliability (`just bench kit-starts`, issue 28): RUNS times
# (default 30) a kit server starts and an agent joins it over the network,
# as the provider starts them (k3s's interface, the node image of `just
# kit`), then both are removed. Every third run's join password is one
# whose bootstrap token id is all digits (the shape YAML read as a number:
# about 1 start in 16 failed before), every third one whose id is digits
# around an "e" or starts with 0 where one is found quickly, the rest random.
# Prints each run's time and id, then the counts; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${RUNS:-30}"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
image="$(cat "$kit/node-image")"
name=cbam-starts
join=ci/kit/node/cbam-join
# The bounds the provider passes, from fixtures/timeouts.yaml.
bound() { awk -v k="$1:" '$1 == k { print $2 }' fixtures/timeouts.yaml; }
bounds=(-e "CBAM_COMPONENT_TIMEOUT=$(bound node_component)" -e "CBAM_JOIN_TIMEOUT=$(bound node_start)"
  -e "CBAM_CRASH_WINDOW=$(bound crash_window)")

# -v: the node image declares volumes (containerd, kubelet, etcd, logs).
cleanup() { docker rm -f -v "$name-server" "$name-agent" >/dev/null 2>&1 || true; docker network rm "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

id_of() { bash "$join" token <<<"$1" | cut -d. -f1; }
random_password() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# password_where PATTERN: a random password whose token id matches PATTERN.
password_where() {
  local p
  while true; do p="$(random_password)"; [[ "$(id_of "$p")" =~ $1 ]] && { echo "$p"; return; }; done
}

# wait_line CONTAINER LINE SECONDS: until the container's log has LINE (0),
# says FATAL (1, printing it) or the bound passes (1).
wait_line() {
  local deadline=$(( $(date +%s) + $3 )) logs
  while [ "$(date +%s)" -lt "$deadline" ]; do
    logs="$(docker logs "$1" 2>&1)"
    grep -qF "$2" <<<"$logs" && return 0
    if grep -q "FATAL" <<<"$logs"; then grep -m1 FATAL <<<"$logs"; return 1; fi
    sleep 0.5
  done
  echo "no \"$2\" after $3 s: $(tail -1 <<<"$logs")"
  return 1
}

passed=0 failed=0 digits=0 shaped=0 times=()
for i in $(seq "$runs"); do
  case $(( i % 3 )) in
    0) password="$(password_where '^[0-9]{6}$')"; digits=$((digits + 1)) ;;
    1) password="$(password_where '^(0[0-9]{5}|[0-9]+e[0-9]+)$')"; shaped=$((shaped + 1)) ;;
    *) password="$(random_password)" ;;
  esac
  id="$(id_of "$password")"
  cleanup
  docker network create "$name" >/dev/null
  t0=$(date +%s%N)
  docker run -d --privileged --name "$name-server" --hostname server --network "$name" \
    --tmpfs /run --tmpfs /tmp "${bounds[@]}" -e "K3S_TOKEN=$password" "$image" \
    server --disable=traefik,servicelb,metrics-server,local-storage --tls-san=server >/dev/null
  if said="$(wait_line "$name-server" "k3s is up and running" 180)"; then
    token="$(docker exec "$name-server" cat /var/lib/rancher/k3s/server/token)"
    docker run -d --privileged --name "$name-agent" --hostname agent --network "$name" \
      --tmpfs /run --tmpfs /tmp "${bounds[@]}" -e "K3S_TOKEN=$token" -e K3S_URL=https://server:6443 "$image" agent >/dev/null
    said="$(wait_line "$name-agent" "Successfully registered node" 180)" && ok=1 || ok=0
  else
    ok=0
  fi
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ "$ok" = 1 ]; then
    passed=$((passed + 1)) times+=("$ms")
    echo "run $i: token id $id: server up and agent joined in $ms ms"
  else
    failed=$((failed + 1))
    echo "run $i: token id $id: FAILED after $ms ms: $said"
  fi
done
median="$(printf '%s\n' "${times[@]:-0}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "kit starts on $(nproc) cores, image $image: $passed of $runs passed, $failed failed ($digits with an all-digit token id, $shaped 0-prefixed or digits-e-digits); median server up + agent joined $median ms"
[ "$failed" = 0 ]
