#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Creates the kind clusters east and west (if absent), builds the clustermesh image and loads it,
# with the etcd image the chart's sidecar uses, into every node.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_tools

create_cluster() {
  local cluster=$1
  if grep -qx "$cluster" <<<"$(kind get clusters 2>/dev/null)"; then
    say "cluster $cluster exists, keeping it"
  else
    local config started=$SECONDS
    config=$(cluster_config "$cluster")
    say "creating cluster $cluster${KIND_NODE_IMAGE:+ from $KIND_NODE_IMAGE}${KIND_WORKERS:+ with $KIND_WORKERS worker(s)}"
    kind create cluster --config "$config" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 300s \
      || { rm -f "$config"; die "kind could not create cluster $cluster (see above)"; }
    rm -f "$config"
    say "cluster $cluster created in $((SECONDS - started)) s"
  fi
}

build_image() {
  say "building $image"
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    # no registry for the official node base either: the one built here (cached by its inputs)
    local built
    built=$("$REPO_ROOT/scripts/kind/images.sh" project) || die "building the product image failed (see above)"
    docker tag "$built" "$image" && docker tag "$built" "$SCENARIO_IMAGE"
  else
    docker build -f "$REPO_ROOT/deploy/Dockerfile" -t "$image" -t "$SCENARIO_IMAGE" "$REPO_ROOT"
  fi
}

# The etcd sidecar image, read from the chart's values so the two never disagree.
etcd_image() {
  (cd "$REPO_ROOT" && node -e '
    const { parse } = require("yaml");
    const values = parse(require("fs").readFileSync("deploy/helm/clustermesh/values.yaml", "utf8"));
    process.stdout.write(values.apiserver.etcd.image);')
}

load_images() {
  local etcd="" cluster
  # a node image built here carries an etcd image already (install.sh points the chart at it)
  if [ -z "${KIND_NODE_IMAGE:-}" ]; then
    etcd=$(etcd_image)
    [ -n "$etcd" ] || die "could not read apiserver.etcd.image from deploy/helm/clustermesh/values.yaml (run 'npm run setup' for node_modules)"
    docker image inspect "$etcd" >/dev/null 2>&1 || docker pull "$etcd"
  fi
  for cluster in "${CLUSTERS[@]}"; do
    say "loading images into $cluster"
    kind load docker-image --name "$cluster" "$image" "$SCENARIO_IMAGE" ${etcd:+"$etcd"}
  done
}

# kind's network, made here when absent (kind reuses it) so its range is one of ours: a range given
# at creation also lets the partition scenario reconnect a node at its old address. Either way it
# must stay clear of the host uplink and the lab (scripts/kind/ranges.mjs).
ensure_network() {
  local subnets
  if ! docker network inspect kind >/dev/null 2>&1; then
    node "$REPO_ROOT/scripts/kind/ranges.mjs" "KIND_NETWORK_SUBNET" "$KIND_NETWORK_SUBNET" || exit 1
    say "creating the kind network on $KIND_NETWORK_SUBNET"
    docker network create --driver bridge --subnet "$KIND_NETWORK_SUBNET" \
      --opt com.docker.network.bridge.enable_ip_masquerade=true kind >/dev/null
  fi
  subnets=$(docker network inspect kind --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}')
  # shellcheck disable=SC2086  # one argument per subnet
  node "$REPO_ROOT/scripts/kind/ranges.mjs" "the kind network" $subnets || exit 1
}

image=$(product_image)
ensure_network
for cluster in "${CLUSTERS[@]}"; do create_cluster "$cluster"; done
build_image
load_images
say "clusters ready: ${CLUSTERS[*]}"
