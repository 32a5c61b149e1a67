#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs clustermesh in both kind clusters, connects them and waits until every agent of each
# cluster is connected to the other.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_tools

here=$(dirname "${BASH_SOURCE[0]}")
for cluster in "${CLUSTERS[@]}"; do
  say "installing clustermesh in $cluster (ID ${CLUSTER_ID[$cluster]})"
  sets=(--set "agent.cgroupHostPath=$(node_cgroup2_path "$cluster-control-plane")")
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    # the etcd image preloaded in a node image built here (scripts/kind/images.sh)
    sets+=(--set "apiserver.etcd.image=registry.k8s.io/etcd:$(docker image inspect \
      --format '{{index .Config.Labels "io.clustermesh.kind.etcd-tag"}}' "$KIND_NODE_IMAGE")")
  fi
  clustermesh install --context "$(context_of "$cluster")" --cluster-name "$cluster" \
    --cluster-id "${CLUSTER_ID[$cluster]}" --values "$here/values.yaml" "${sets[@]}"
done

say "connecting east and west"
clustermesh connect --context "$(context_of east)" --destination-context "$(context_of west)"

for cluster in "${CLUSTERS[@]}"; do
  say "waiting for $cluster's agents to reach their peer"
  timeout 330 node "$CLI_JS" status --context "$(context_of "$cluster")" --wait --wait-timeout 300s \
    || die "clustermesh status --wait did not succeed for $cluster within 300 s"
done
