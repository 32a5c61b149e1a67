#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The failover scenarios on kind: echo in both clusters behind a global Service with local
# affinity, a client in east (on its control-plane node, so a dead worker does not take it along).
# Each scenario breaks something, probes the Service in rounds until the expected answer is back,
# and puts things back; the table at the end has the lab's format (e2e/scenarios/result.ts).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=lib.sh
source "$here/lib.sh"
require_tools

readonly ECHO_REPLICAS=2
readonly ROUND_REQUESTS=5
readonly RECOVERY_TIMEOUT=180

deploy_echo() {
  local cluster=$1
  kc "$cluster" apply -f "$here/manifests/echo.yaml" >/dev/null
  kc "$cluster" -n "$DEMO_NAMESPACE" create configmap echo-identity --from-literal=cluster="$cluster" \
    --dry-run=client -o yaml | kc "$cluster" apply -f - >/dev/null
  kc "$cluster" -n "$DEMO_NAMESPACE" rollout status deployment/echo --timeout=300s >&2
}

scale_east_echo() {
  kc east -n "$DEMO_NAMESPACE" scale deployment/echo --replicas="$1" >/dev/null
}

# One round from the east client: prints {"answers":{...},"failed":n}.
probe() {
  kc east -n "$DEMO_NAMESPACE" exec deploy/client -- node /probe/probe.cjs "$ROUND_REQUESTS" 2>/dev/null \
    || printf '{"answers":{},"failed":%d}' "$ROUND_REQUESTS"
}

# meets ROUND WANT: east|west = every request answered from that cluster; ok = none failed.
meets() {
  node -e '
    const { answers, failed } = JSON.parse(process.argv[1]);
    const want = process.argv[2];
    const from = Object.keys(answers);
    process.exit(failed === 0 && (want === "ok" || (from.length === 1 && from[0] === want)) ? 0 : 1);
  ' "$1" "$2"
}

now_ms() { date +%s%3N; }
results=()
status=0
requests=0
failed=0

count() { # count ROUND: adds the round to the scenario's totals
  local n
  n=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(Object.values(r.answers).reduce((a, b) => a + b, 0) + r.failed, r.failed)' "$1")
  requests=$((requests + ${n% *}))
  failed=$((failed + ${n#* }))
}

record() { # record ID SCENARIO RECOVERY_MS|null MEANING
  results+=("$(node -e 'const [id, scenario, requests, failed, ms, meaning] = process.argv.slice(1);
    console.log(JSON.stringify({ id, scenario, requests: +requests, failed: +failed, recoveryMs: ms === "null" ? null : +ms, recoveryMeaning: meaning }))' \
    "$1" "$2" "$requests" "$failed" "$3" "$4")")
  say "scenario $1 ($2): $requests requests, $failed failed, recovery ${3} ms"
  requests=0
  failed=0
}

# recover ID SCENARIO WANT MEANING: probes until a round meets WANT; the time counts from
# fault_at (set just before the fault is caused).
recover() {
  local id=$1 name=$2 want=$3 meaning=$4 start=$fault_at round deadline=$((SECONDS + RECOVERY_TIMEOUT))
  while true; do
    round=$(probe)
    count "$round"
    if meets "$round" "$want"; then
      record "$id" "$name" $(($(now_ms) - start)) "$meaning"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "error: scenario $id ($name): no round met '$want' within ${RECOVERY_TIMEOUT}s (last: $round)"
      record "$id" "$name" null "$meaning (not within ${RECOVERY_TIMEOUT} s)"
      status=1
      return 1
    fi
  done
}

# hold ID SCENARIO WANT ROUNDS MEANING: every one of ROUNDS rounds must meet WANT.
hold() {
  local id=$1 name=$2 want=$3 rounds=$4 meaning=$5 round ok=1
  for _ in $(seq 1 "$rounds"); do
    round=$(probe)
    count "$round"
    meets "$round" "$want" || { ok=0; say "  round off '$want': $round"; }
  done
  record "$id" "$name" null "$meaning"
  [ "$ok" = 1 ] || { status=1; say "error: scenario $id ($name): a round did not meet '$want'"; }
}

back_to_east() { # after a scenario: east's echo healthy and answering again
  kc east -n "$DEMO_NAMESPACE" rollout status deployment/echo --timeout=300s >&2
  wait_until "every answer from east" "$RECOVERY_TIMEOUT" bash -c "source '$here/lib.sh'; $(declare -f probe meets); meets \"\$(probe)\" east"
}

for cluster in "${CLUSTERS[@]}"; do deploy_echo "$cluster"; done
kc east apply -f "$here/manifests/client.yaml" >/dev/null
kc east -n "$DEMO_NAMESPACE" rollout status deployment/client --timeout=300s >&2
back_to_east

say "1 graceful: east's echo scaled to 0"
fault_at=$(now_ms)
scale_east_echo 0
recover 1 "graceful: east scaled to 0" west "first round answered only by west" || true
scale_east_echo "$ECHO_REPLICAS"
back_to_east

say "2 abrupt: east's echo pods killed"
fault_at=$(now_ms)
kc east -n "$DEMO_NAMESPACE" delete pod -l app=echo --grace-period=0 --force --wait=false >/dev/null 2>&1
recover 2 "abrupt: east's pods killed" ok "first round with no failed request" || true
back_to_east

say "3 dead node: docker stop east-worker"
fault_at=$(now_ms)
docker stop east-worker >/dev/null
recover 3 "dead node: east's worker stopped" west "first round answered only by west" || true
docker start east-worker >/dev/null
wait_until "east-worker Ready" 300 kc east wait node/east-worker --for=condition=Ready --timeout=5s >/dev/null
back_to_east

say "4 partition: west's nodes disconnected from the kind network"
declare -A west_ip
for node in west-control-plane west-worker; do
  west_ip[$node]=$(docker inspect --format '{{(index .NetworkSettings.Networks "kind").IPAddress}}' "$node")
  docker network disconnect kind "$node"
done
hold 4 "partition: west cut off" east 5 "east's traffic stays in east"
for node in west-control-plane west-worker; do
  docker network connect --ip "${west_ip[$node]}" kind "$node"
done
timeout 330 node "$CLI_JS" status --context "$(context_of east)" --wait --wait-timeout 300s >/dev/null || say "east's status did not settle after the partition"

say "5 west's clustermesh-apiserver pod deleted"
start=$(now_ms)
kc west -n clustermesh delete pod -l app.kubernetes.io/name=clustermesh-apiserver --wait=false >/dev/null
hold 5 "clustermesh-apiserver pod deleted" east 3 "east's traffic stays in east" || true
if timeout 330 node "$CLI_JS" status --context "$(context_of east)" --wait --wait-timeout 300s >/dev/null; then
  results[-1]=$(node -e 'const r = JSON.parse(process.argv[1]); r.recoveryMs = +process.argv[2]; r.recoveryMeaning += "; east connected to west again"; console.log(JSON.stringify(r))' "${results[-1]}" $(($(now_ms) - start)))
else
  say "error: east's agents did not reconnect to west within 300 s"
  status=1
fi

say "6 disconnect"
clustermesh disconnect --context "$(context_of east)" --destination-context "$(context_of west)"
hold 6 "disconnect" east 3 "east's traffic stays in east"

(cd "$REPO_ROOT" && node --input-type=module -e '
  const { formatTable } = await import("./dist/e2e/scenarios/result.js");
  console.log(formatTable(process.argv.slice(1).map((line) => JSON.parse(line))));
' "${results[@]}")
if [ "$status" = 0 ]; then say "kind scenarios passed"; else say "error: a kind scenario failed (see above)"; fi
exit "$status"
