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
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    say "cluster $cluster exists, keeping it"
  else
    say "creating cluster $cluster"
    kind create cluster --config "$REPO_ROOT/kind-configs/$cluster.yaml" --wait 180s
  fi
}

build_image() {
  say "building $image"
  docker build -f "$REPO_ROOT/deploy/Dockerfile" -t "$image" -t "$SCENARIO_IMAGE" "$REPO_ROOT"
}

# The etcd sidecar image, read from the chart's values so the two never disagree.
etcd_image() {
  (cd "$REPO_ROOT" && node -e '
    const { parse } = require("yaml");
    const values = parse(require("fs").readFileSync("deploy/helm/clustermesh/values.yaml", "utf8"));
    process.stdout.write(values.apiserver.etcd.image);')
}

load_images() {
  local etcd cluster
  etcd=$(etcd_image)
  [ -n "$etcd" ] || die "could not read apiserver.etcd.image from deploy/helm/clustermesh/values.yaml (run 'npm run setup' for node_modules)"
  docker image inspect "$etcd" >/dev/null 2>&1 || docker pull "$etcd"
  for cluster in "${CLUSTERS[@]}"; do
    say "loading images into $cluster"
    kind load docker-image --name "$cluster" "$image" "$SCENARIO_IMAGE" "$etcd"
  done
}

image=$(product_image)
for cluster in "${CLUSTERS[@]}"; do create_cluster "$cluster"; done
build_image
load_images
say "clusters ready: ${CLUSTERS[*]}"
