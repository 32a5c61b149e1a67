#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The failover scenario on kind: echo in both clusters behind a global Service with local
# affinity, a client in east. Checks that traffic stays in east, moves to west when east's echo
# is scaled to 0, and comes back when it is scaled up again.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=lib.sh
source "$here/lib.sh"
require_tools

readonly ECHO_REPLICAS=2
readonly PROBE_REQUESTS=20
readonly SWITCH_TIMEOUT=60

deploy_echo() {
  local cluster=$1
  kc "$cluster" apply -f "$here/manifests/echo.yaml" >/dev/null
  kc "$cluster" -n "$DEMO_NAMESPACE" create configmap echo-identity --from-literal=cluster="$cluster" \
    --dry-run=client -o yaml | kc "$cluster" apply -f - >/dev/null
  kc "$cluster" -n "$DEMO_NAMESPACE" rollout status deployment/echo --timeout=180s
}

scale_east_echo() {
  kc east -n "$DEMO_NAMESPACE" scale deployment/echo --replicas="$1" >/dev/null
}

# probe: one round of requests from the east client; prints {"answers":{...},"failed":n}.
probe() {
  kc east -n "$DEMO_NAMESPACE" exec deploy/client -- node /probe/probe.cjs "$PROBE_REQUESTS"
}

# A round where every request succeeded and every answer came from CLUSTER.
all_answers_from() {
  local cluster=$1 result
  result=$(probe) || return 1
  say "  $result"
  node -e '
    const { answers, failed } = JSON.parse(process.argv[1]);
    const others = Object.keys(answers).filter((c) => c !== process.argv[2]);
    process.exit(failed === 0 && others.length === 0 && answers[process.argv[2]] > 0 ? 0 : 1);
  ' "$result" "$cluster"
}

expect_traffic_in() { # expect_traffic_in CLUSTER WHY
  local cluster=$1 why=$2 started=$SECONDS
  say "expecting every answer from $cluster ($why)"
  wait_until "all answers from $cluster ($why)" "$SWITCH_TIMEOUT" all_answers_from "$cluster"
  say "traffic in $cluster after $((SECONDS - started))s"
}

for cluster in "${CLUSTERS[@]}"; do deploy_echo "$cluster"; done
kc east apply -f "$here/manifests/client.yaml" >/dev/null
kc east -n "$DEMO_NAMESPACE" rollout status deployment/client --timeout=180s

expect_traffic_in east "affinity local with healthy local backends"

say "scaling east's echo to 0"
scale_east_echo 0
expect_traffic_in west "no local backend left: failover"

say "scaling east's echo back to $ECHO_REPLICAS"
scale_east_echo "$ECHO_REPLICAS"
kc east -n "$DEMO_NAMESPACE" rollout status deployment/echo --timeout=180s
expect_traffic_in east "local backends back: failback"

say "failover scenario passed"
